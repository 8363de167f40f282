//! A request with a bearer token, for both remote sources (Retail Server, Key Vault): the
//! token from the token cache, and when the store answers 401, one fresh token and one retry
//! (the token may have been revoked or rotated early; Key Vault may also name a new tenant).
//! There is no third round: a second 401 is the caller's UNAUTHORIZED.

use crate::error::{ErrorCode, SecretError};
use crate::http::{Call, Http, HttpResponse};
use crate::identity::TokenCache;
use tokio::time::Instant;

/// Which token a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFor {
    pub resource: String,
    pub tenant: Option<String>,
}

/// Where and by when: the HTTP layer, the token cache, the request's name in messages, the
/// call's deadline.
pub struct Upstream<'a> {
    pub http: &'a Http,
    pub tokens: &'a TokenCache,
    pub what: &'a str,
    pub deadline: Instant,
}

/// Sends `call()` (a request without a token) with a bearer token for `target`. After a 401,
/// `relearn` may name another token target (Key Vault's fresh challenge); the retry uses it,
/// with a token other than the refused one. A failure to get the first token goes through
/// `token_error`.
pub async fn send_with_token(
    upstream: Upstream<'_>,
    mut target: TokenFor,
    call: impl Fn() -> Call<'static>,
    mut relearn: impl FnMut(&HttpResponse) -> Option<TokenFor>,
    token_error: impl Fn(SecretError) -> SecretError,
) -> Result<HttpResponse, SecretError> {
    let Upstream {
        http,
        tokens,
        what,
        deadline,
    } = upstream;
    // The token a 401 refused: the next round asks for a fresh one, and there is no third.
    let mut refused = None;
    // Whether the 401's challenge named another target (a tenant the policy may refuse).
    let mut moved = false;
    loop {
        let token = tokens
            .get(
                http,
                &target.resource,
                target.tenant.as_deref(),
                deadline,
                refused.as_ref(),
            )
            .await
            .map_err(|e| match refused {
                // The challenge moved us to a tenant that may not be used: that refusal is
                // the answer (IDENTITY_UNAVAILABLE, naming both tenants), as without a token.
                Some(_) if moved && !e.transient && e.code == ErrorCode::IdentityUnavailable => {
                    token_error(e)
                }
                // The store said 401: whatever keeps us from a fresh token, the answer stays
                // UNAUTHORIZED (never a stale value after a 401).
                Some(_) => crate::identity::after_refusal(what, e),
                None => token_error(e),
            })?;
        let mut request = call();
        request.bearer = Some(&token.value);
        let response = http.send(&request, deadline, what).await?;
        drop(request);
        if response.status == 401 && refused.is_none() {
            if let Some(next) = relearn(&response) {
                moved = next != target;
                target = next;
            }
            refused = Some(token);
            continue;
        }
        return Ok(response);
    }
}

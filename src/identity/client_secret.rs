//! Service principals against the AAD v2 token endpoint (client credentials): with a client
//! secret here; `client_certificate.rs` and `workload_identity.rs` send an assertion instead.

use super::*;

/// A POST of client credentials to `{authority}/{tenant}/oauth2/v2.0/token`. `credential` makes,
/// from that token url (an assertion's audience), the form fragment that proves who the client
/// is (`client_secret=…` or a client assertion), and the handle that keeps that credential
/// scrubbed from messages until the request is over; it is wiped after the request, as the form is.
#[allow(clippy::too_many_arguments)]
pub(super) async fn aad_client_credentials(
    http: &Http,
    label: &str,
    authority: &Url,
    tenant: Option<&str>,
    client_id: &str,
    credential: impl FnOnce(&str) -> Result<(String, Scrubbed), SecretError>,
    resource: &str,
    deadline: Instant,
    allow_insecure_loopback: bool,
) -> Result<Token, SecretError> {
    let tenant = tenant.ok_or_else(|| {
        fail(format!(
            "{label} identity: no tenant (set tenantId or AZURE_TENANT_ID)"
        ))
    })?;
    if !valid_tenant(tenant) {
        return Err(fail(format!(
            "{label} identity: the tenant is not a tenant id or domain"
        )));
    }
    // A client credential goes only over https (or to loopback when opted in).
    let secure = authority.scheme() == "https"
        || (allow_insecure_loopback && is_loopback(authority) && authority.scheme() == "http");
    if !secure || !authority.username().is_empty() || authority.password().is_some() {
        return Err(SecretError::new(
            ErrorCode::HostNotAllowed,
            format!("{label} identity: the authority {authority} is not https; nothing was sent"),
        ));
    }
    let url = authority
        .join(&format!("{tenant}/oauth2/v2.0/token"))
        .map_err(|_| fail(format!("{label} identity: the authority is not a url")))?;
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let (mut credential, _scrubbed) = credential(url.as_str())?;
    let form = format!(
        "grant_type=client_credentials&client_id={}&{credential}&scope={}",
        form_encode(client_id),
        form_encode(&scope)
    );
    zeroize::Zeroize::zeroize(&mut credential);
    let mut call = Call::get(url);
    call.method = Method::POST;
    call.form = Some(form);
    token_request(http, call, deadline, "the AAD token endpoint")
        .await
        .map_err(|e| SecretError {
            message: format!("{label} identity: {}", e.message),
            ..e
        })
}

/// The form fragment of a client assertion (a JWT: a certificate's, or a federated token).
pub(super) fn assertion_credential(assertion: &str) -> String {
    format!(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
        form_encode(assertion)
    )
}

/// A service principal with a client secret (AAD v2, client credentials).
pub struct ClientSecret {
    pub authority: Url,
    pub tenant: Option<String>,
    pub client_id: String,
    pub secret: SecretString,
    pub allow_insecure_loopback: bool,
}

impl Provider for ClientSecret {
    fn describe(&self) -> String {
        format!(
            "client-secret (client {} at {})",
            self.client_id, self.authority
        )
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(aad_client_credentials(
            http,
            "client-secret",
            &self.authority,
            tenant.or(self.tenant.as_deref()),
            &self.client_id,
            |_| {
                Ok((
                    format!("client_secret={}", form_encode(self.secret.expose())),
                    Scrubbed::new(self.secret.expose()),
                ))
            },
            resource,
            deadline,
            self.allow_insecure_loopback,
        ))
    }
}

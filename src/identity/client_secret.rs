//! A service principal with a client secret (AAD v2 client credentials).

use super::*;

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
        Box::pin(async move {
            let tenant = tenant.or(self.tenant.as_deref()).ok_or_else(|| {
                fail("client-secret identity: no tenant (set tenantId or AZURE_TENANT_ID)".into())
            })?;
            if !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(fail(
                    "client-secret identity: the tenant is not a tenant id or domain".into(),
                ));
            }
            // The client secret goes only over https (or to loopback when opted in).
            let secure = self.authority.scheme() == "https"
                || (self.allow_insecure_loopback
                    && is_loopback(&self.authority)
                    && self.authority.scheme() == "http");
            if !secure || !self.authority.username().is_empty() {
                return Err(SecretError::new(
                    ErrorCode::HostNotAllowed,
                    format!(
                        "client-secret identity: the authority {} is not https; nothing was sent",
                        self.authority
                    ),
                ));
            }
            let url = self
                .authority
                .join(&format!("{tenant}/oauth2/v2.0/token"))
                .map_err(|_| fail("client-secret identity: the authority is not a url".into()))?;
            let scope = format!("{}/.default", resource.trim_end_matches('/'));
            let form = format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                form_encode(&self.client_id),
                form_encode(self.secret.expose()),
                form_encode(&scope)
            );
            let mut call = Call::get(url);
            call.method = Method::POST;
            call.form = Some(form);
            token_request(http, call, deadline, "the AAD token endpoint").await
        })
    }
}

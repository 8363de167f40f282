//! Cloud Shell's managed identity: `MSI_ENDPOINT` without a secret, a POST with `Metadata: true`.

use super::*;

pub struct CloudShell {
    pub endpoint: Url,
}

impl Provider for CloudShell {
    fn describe(&self) -> String {
        format!(
            "cloud-shell managed identity (MSI_ENDPOINT {})",
            self.endpoint
        )
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        _tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let mut call = Call::get(self.endpoint.clone());
            call.method = Method::POST;
            call.headers.push(("metadata", "true".into()));
            call.form = Some(format!("resource={}", form_encode(resource)));
            token_request(http, call, deadline, "the Cloud Shell identity endpoint").await
        })
    }
}

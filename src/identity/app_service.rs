//! App Service managed identity (current and legacy protocols).

use super::*;

/// App Service managed identity (current or legacy protocol).
pub struct AppService {
    pub endpoint: Url,
    pub header: SecretString,
    pub client_id: Option<String>,
    pub legacy: bool,
}

impl Provider for AppService {
    fn describe(&self) -> String {
        if self.legacy {
            format!("app-service (legacy MSI_ENDPOINT {})", self.endpoint)
        } else {
            format!("app-service (IDENTITY_ENDPOINT {})", self.endpoint)
        }
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        _tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let mut url = self.endpoint.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("resource", resource);
                q.append_pair(
                    "api-version",
                    if self.legacy {
                        "2017-09-01"
                    } else {
                        "2019-08-01"
                    },
                );
                if let Some(id) = &self.client_id {
                    q.append_pair(if self.legacy { "clientid" } else { "client_id" }, id);
                }
            }
            let mut call = Call::get(url);
            call.secret_headers.push((
                if self.legacy {
                    "secret"
                } else {
                    "x-identity-header"
                },
                &self.header,
            ));
            token_request(http, call, deadline, "the App Service identity endpoint").await
        })
    }
}

//! The Azure Instance Metadata Service (VMs, AKS node identities): probed with a short first
//! timeout, its absence remembered.

use super::*;

/// The instance metadata service (VMs, AKS).
pub struct Imds {
    pub base: Url,
    pub client_id: Option<String>,
    /// Whether IMDS answered before (`Some(true)`), or was found absent (`Some(false)`) and
    /// until when that is remembered; `None`: not asked yet.
    presence: Mutex<(Option<bool>, f64)>,
}

/// The first request to IMDS gets this long: where there is no IMDS (a developer's machine,
/// a container without it) the link-local address never answers, and every call would
/// otherwise wait out its whole deadline.
pub const IMDS_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// How long an absent IMDS is remembered before it is probed again.
pub const IMDS_ABSENCE_SECONDS: f64 = 60.0;

impl Imds {
    pub fn new(base: Url, client_id: Option<String>) -> Self {
        Imds {
            base,
            client_id,
            presence: Mutex::new((None, 0.0)),
        }
    }

    fn call(&self, resource: &str) -> Result<Call<'static>, SecretError> {
        let mut url = self
            .base
            .join("/metadata/identity/oauth2/token")
            .map_err(|_| fail("the IMDS address is not a url".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", "2018-02-01");
            q.append_pair("resource", resource);
            if let Some(id) = &self.client_id {
                q.append_pair("client_id", id);
            }
        }
        let mut call = Call::get(url);
        call.headers.push(("metadata", "true".into()));
        // 404: the identity is not assigned yet; 410: IMDS is still starting.
        call.retry_statuses = &[404, 410];
        call.max_attempts = 6;
        Ok(call)
    }

    fn presence(&self) -> std::sync::MutexGuard<'_, (Option<bool>, f64)> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Provider for Imds {
    fn describe(&self) -> String {
        format!("imds ({})", self.base)
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        _tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let now = SystemClock.now();
            let (known, until) = *self.presence();
            if known == Some(false) && now < until {
                let mut e = fail(format!(
                    "no IMDS at {} (it did not answer within {} ms; not asked again for {} s)",
                    self.base,
                    IMDS_PROBE_TIMEOUT.as_millis(),
                    IMDS_ABSENCE_SECONDS
                ));
                e.transient = true;
                return Err(e);
            }
            if known != Some(true) {
                // The probe: one attempt, a short deadline.
                let mut probe = self.call(resource)?;
                probe.max_attempts = 1;
                let short = deadline.min(crate::time::after(IMDS_PROBE_TIMEOUT));
                match http.send(&probe, short, "IMDS").await {
                    Err(e) if matches!(e.code, ErrorCode::Timeout | ErrorCode::Unavailable) => {
                        *self.presence() = (Some(false), SystemClock.now() + IMDS_ABSENCE_SECONDS);
                        let mut e = fail(format!(
                            "no IMDS at {} (no answer within {} ms: {}); not asked again for {} s",
                            self.base,
                            IMDS_PROBE_TIMEOUT.as_millis(),
                            e.message,
                            IMDS_ABSENCE_SECONDS
                        ));
                        e.transient = true;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                    Ok(reply) => {
                        *self.presence() = (Some(true), 0.0);
                        if reply.ok() {
                            return parse_token_reply(&reply.body, SystemClock.now())
                                .map_err(|why| fail(format!("token from IMDS: {why}")));
                        }
                        // It answered (404/410/5xx...): present; the full request follows.
                    }
                }
            }
            token_request(http, self.call(resource)?, deadline, "IMDS").await
        })
    }
}

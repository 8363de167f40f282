//! Workload identity (AKS and other federated issuers): the federated token file is read anew
//! for every token request (the platform rotates it) and sent as a client assertion.

use super::client_secret::aad_client_credentials;
use super::*;

/// The largest federated token file read.
const MAX_ASSERTION_BYTES: u64 = 64 * 1024;

pub struct WorkloadIdentity {
    pub authority: Url,
    pub tenant: Option<String>,
    pub client_id: String,
    pub token_file: std::path::PathBuf,
    pub allow_insecure_loopback: bool,
}

impl Provider for WorkloadIdentity {
    fn describe(&self) -> String {
        format!(
            "workload-identity (client {}, token file {}, at {})",
            self.client_id,
            self.token_file.display(),
            self.authority
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
            let path = self.token_file.clone();
            // A regular file only (a FIFO, a directory, a device: refused at once, see
            // files.rs), read off the runtime's threads, and never waited for past the deadline.
            let read = tokio::task::spawn_blocking(move || {
                super::files::read_small_regular(&path, MAX_ASSERTION_BYTES).and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|e| {
                        let mut b = e.into_bytes();
                        zeroize::Zeroize::zeroize(&mut b);
                        format!("{} is not UTF-8 text", path.display())
                    })
                })
            });
            let mut assertion =
                match tokio::time::timeout_at(deadline, read).await {
                    Ok(Ok(Ok(t))) => t,
                    Ok(Ok(Err(why))) => {
                        return Err(fail(format!(
                            "workload-identity: the federated token file {why}"
                        )))
                    }
                    Ok(Err(_)) => {
                        return Err(fail(
                            "workload-identity: the federated token file could not be read".into(),
                        ))
                    }
                    Err(_) => return Err(SecretError::new(
                        ErrorCode::Timeout,
                        "workload-identity: reading the federated token file: the deadline passed",
                    )),
                };
            let trimmed = assertion.trim().to_owned();
            zeroize::Zeroize::zeroize(&mut assertion);
            if trimmed.is_empty() {
                return Err(fail(format!(
                    "workload-identity: the federated token file {} is empty",
                    self.token_file.display()
                )));
            }
            // Scrubbed from messages until the request is over.
            let scrubbed = Scrubbed::new(&trimmed);
            let r = aad_client_credentials(
                http,
                "workload-identity",
                &self.authority,
                tenant.or(self.tenant.as_deref()),
                &self.client_id,
                |_| {
                    Ok((
                        super::client_secret::assertion_credential(&trimmed),
                        scrubbed,
                    ))
                },
                resource,
                deadline,
                self.allow_insecure_loopback,
            )
            .await;
            let mut t = trimmed;
            zeroize::Zeroize::zeroize(&mut t);
            r
        })
    }
}

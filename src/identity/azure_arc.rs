//! Azure Arc's managed identity (`IDENTITY_ENDPOINT` with `IMDS_ENDPOINT`): a first request is
//! answered 401 with `WWW-Authenticate: Basic realm=<file>`; that file's contents, read only
//! from the agent's token folder, authorize the second.

use super::*;

pub struct AzureArc {
    pub endpoint: Url,
    /// The only folder the challenge's key file may be in (the agent's token folder).
    pub token_dir: std::path::PathBuf,
    /// The last key read, scrubbed from messages (bare, and so as `Basic <key>` too) for as
    /// long as the provider lives.
    pub key: Mutex<Option<Scrubbed>>,
}

/// The Arc agent's token folder on this OS.
pub fn arc_token_dir() -> std::path::PathBuf {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        std::path::Path::new(&base)
            .join("AzureConnectedMachineAgent")
            .join("Tokens")
    } else {
        std::path::PathBuf::from("/var/opt/azcmagent/tokens")
    }
}

impl AzureArc {
    fn call<'c>(&self, resource: &str) -> Call<'c> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", "2020-06-01")
            .append_pair("resource", resource);
        let mut call = Call::get(url);
        call.headers.push(("metadata", "true".into()));
        call.max_attempts = 1;
        call
    }

    /// The key file a challenge names, if it is one the agent would have written.
    fn key_file(&self, challenge: &str) -> Result<std::path::PathBuf, String> {
        let realm = challenge
            .trim()
            .strip_prefix("Basic realm=")
            .or_else(|| challenge.trim().strip_prefix("basic realm="))
            .ok_or_else(|| "the 401 carries no Basic realm".to_owned())?
            .trim_matches('"');
        let path = std::path::PathBuf::from(realm);
        let file_ok = path.extension().is_some_and(|e| e == "key")
            && path.parent().is_some_and(|p| p == self.token_dir);
        if !file_ok {
            return Err(format!(
                "the challenge names a file outside {} (or not a .key file); it was not read",
                self.token_dir.display()
            ));
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() <= 4096 => Ok(path),
            Ok(_) => Err("the challenge's key file is not a small regular file".into()),
            Err(e) => Err(format!(
                "the challenge's key file cannot be read ({})",
                e.kind()
            )),
        }
    }
}

impl Provider for AzureArc {
    fn describe(&self) -> String {
        format!(
            "azure-arc managed identity (IDENTITY_ENDPOINT {})",
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
            let first = self.call(resource);
            let reply = http
                .send(&first, deadline, "the Azure Arc identity endpoint")
                .await
                .map_err(|e| SecretError {
                    code: ErrorCode::IdentityUnavailable,
                    transient: true,
                    ..e
                })?;
            drop(first);
            if reply.status != 401 {
                return Err(fail(format!(
                    "the Azure Arc identity endpoint answered {} where a 401 challenge was expected",
                    reply.status
                )));
            }
            let challenge = reply
                .headers
                .get("www-authenticate")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let path = self
                .key_file(&challenge)
                .map_err(|why| fail(format!("Azure Arc identity: {why}")))?;
            // A small regular file only, never waited on (files.rs).
            let bytes = super::files::read_small_regular(&path, 4096)
                .map_err(|why| fail(format!("Azure Arc identity: the key file {why}")))?;
            let mut key = String::from_utf8(bytes).map_err(|e| {
                let mut b = e.into_bytes();
                zeroize::Zeroize::zeroize(&mut b);
                fail("Azure Arc identity: the key file is not UTF-8 text".into())
            })?;
            let scrubbed = Scrubbed::new(key.trim());
            *self.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(scrubbed);
            let secret = SecretString::new(format!("Basic {}", key.trim()));
            zeroize::Zeroize::zeroize(&mut key);
            let mut second = self.call(resource);
            second.max_attempts = crate::http::MAX_ATTEMPTS;
            second.secret_headers.push(("authorization", &secret));
            token_request(http, second, deadline, "the Azure Arc identity endpoint").await
        })
    }
}

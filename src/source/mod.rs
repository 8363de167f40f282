//! Where values come from. Each source is one small impl of `Source`.

pub mod bearer;
pub mod challenge;
pub mod key_vault;
pub mod local;
pub mod memory;
pub mod reference;
pub mod retail_server;
pub mod vault_response;

use crate::error::{ErrorCode, SecretError};
use crate::secret::Secret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// Which store the values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Local,
    Memory,
    RetailServer,
    KeyVault,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Local => "local",
            SourceKind::Memory => "memory",
            SourceKind::RetailServer => "retail-server",
            SourceKind::KeyVault => "key-vault",
        }
    }

    pub fn parse(s: &str) -> Option<Option<SourceKind>> {
        Some(match s {
            "auto" => None,
            "local" => Some(SourceKind::Local),
            "memory" => Some(SourceKind::Memory),
            "retail-server" => Some(SourceKind::RetailServer),
            "key-vault" => Some(SourceKind::KeyVault),
            _ => return None,
        })
    }
}

pub const MAX_KEY_CHARS: usize = 256;

/// What a source's `fetch` resolves to.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Secret, SecretError>> + Send>>;

/// What `doctor` learns from a source's probe: a sentence, never a secret.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<String, SecretError>> + Send>>;

pub trait Source: Send + Sync {
    fn kind(&self) -> SourceKind;

    /// Whether `baseRetailServerUrl` is part of the cache key (only Retail Server uses it).
    fn keyed_by_url(&self) -> bool {
        false
    }

    /// Sources that already hold every value in this process answer here, synchronously,
    /// and are not cached (a cache would only add staleness). `None`: use `fetch`.
    fn read_now(&self, _key: &str) -> Option<Result<Secret, SecretError>> {
        None
    }

    /// The key's canonical form, checked before the cache (no request for a bad key): keys
    /// that name the same secret have the same cache key, so they share one entry and one
    /// flight. It is itself a key that names that secret (`fetch` is given it).
    fn cache_key(&self, key: &str) -> Result<String, SecretError> {
        Ok(key.to_owned())
    }

    /// Push invalidation: the cache keys a change of secret `name` in `vault` can make stale.
    /// Only the key-vault source knows vaults.
    /// `holds`: whether the cache holds a key now.
    fn changed_keys(
        &self,
        _vault: &str,
        _name: &str,
        _holds: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, SecretError> {
        Err(SecretError::new(
            ErrorCode::InvalidArgument,
            format!(
                "secretChanged is for the key-vault source (this manager reads {}); nothing was refreshed",
                self.kind().as_str()
            ),
        ))
    }

    /// For `doctor`: whether this source can get a token now.
    fn probe(self: Arc<Self>, _deadline: Instant) -> Option<ProbeFuture> {
        None
    }

    /// Ask the store. Runs on the runtime; `deadline` is the call's (retries must fit in it).
    fn fetch(self: Arc<Self>, key: String, url: String, deadline: Instant) -> FetchFuture;
}

/// A source that cannot answer: every call gets NOT_CONFIGURED with the reason.
pub struct Unconfigured {
    pub kind: SourceKind,
    pub reason: String,
}

impl Unconfigured {
    fn error(&self, key: &str) -> SecretError {
        SecretError::new(
            ErrorCode::NotConfigured,
            format!("secret '{key}': {}", self.reason),
        )
    }
}

impl Source for Unconfigured {
    fn kind(&self) -> SourceKind {
        self.kind
    }

    fn read_now(&self, key: &str) -> Option<Result<Secret, SecretError>> {
        Some(Err(self.error(key)))
    }

    fn fetch(self: Arc<Self>, key: String, _url: String, _deadline: Instant) -> FetchFuture {
        Box::pin(async move { Err(self.error(&key)) })
    }
}

/// Checks a secret key before anything else looks at it. The message quotes the key with
/// control characters escaped, so it is safe to log.
pub fn validate_key(key: &str) -> Result<(), SecretError> {
    let invalid = |why: String| Err(SecretError::new(ErrorCode::InvalidArgument, why));
    if key.is_empty() {
        return invalid("secret key is empty".into());
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_CHARS {
        return invalid(format!(
            "secret key is {chars} characters long; the limit is {MAX_KEY_CHARS}"
        ));
    }
    if let Some(pos) = key.chars().position(char::is_control) {
        return invalid(format!(
            "secret key '{}' has a control character at position {pos}",
            key.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("paymentKey").is_ok());
        assert!(validate_key("it's/a key ü").is_ok());
        assert!(validate_key(&"k".repeat(256)).is_ok());
        for bad in ["", "a\0b", "line\nbreak", "tab\t", "\u{7f}", "\u{85}"] {
            let e = validate_key(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
            assert!(!e.message.contains('\0') && !e.message.contains('\n'));
        }
        assert!(validate_key(&"k".repeat(257))
            .unwrap_err()
            .message
            .contains("257"));
        // Characters, not bytes.
        assert!(validate_key(&"é".repeat(256)).is_ok());
    }
}

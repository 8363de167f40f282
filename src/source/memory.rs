//! The in-memory source, for app tests. It stands in for a remote store: reads go through
//! the cache and the single flight like Key Vault's do. Tests of this crate (and only they)
//! can also change values, inject a delay and make a key fail (`TestControl`).

use super::FetchFuture;
use super::Source;
use super::SourceKind;
use crate::error::{ErrorCode, SecretError};
use crate::secret::{Secret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Default)]
struct State {
    values: HashMap<String, SecretString>,
    faults: HashMap<String, ErrorCode>,
    delay: Option<Duration>,
    reads: u64,
}

pub struct MemorySource {
    state: RwLock<State>,
}

impl MemorySource {
    pub fn new(secrets: Vec<(String, SecretString)>) -> Self {
        let values = secrets.into_iter().collect();
        MemorySource {
            state: RwLock::new(State {
                values,
                ..State::default()
            }),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Test hooks: set or remove a value, make a key fail with a code, delay every read.
    pub fn set_value(&self, key: &str, value: Option<String>) {
        let mut s = self.write();
        match value {
            Some(v) => {
                s.values.insert(key.to_owned(), SecretString::new(v));
            }
            None => {
                s.values.remove(key);
            }
        }
    }

    pub fn set_fault(&self, key: &str, code: Option<ErrorCode>) {
        let mut s = self.write();
        match code {
            Some(c) => {
                s.faults.insert(key.to_owned(), c);
            }
            None => {
                s.faults.remove(key);
            }
        }
    }

    pub fn set_delay(&self, delay: Option<Duration>) {
        self.write().delay = delay;
    }

    /// How many reads reached this store (the "upstream requests" of a test).
    pub fn reads(&self) -> u64 {
        self.state.read().map(|s| s.reads).unwrap_or(0)
    }

    fn read(&self, key: &str) -> Result<Secret, SecretError> {
        let mut s = self.write();
        s.reads += 1;
        if let Some(code) = s.faults.get(key) {
            return Err(SecretError::new(
                *code,
                format!("secret '{key}': the memory source was told to fail with {code}"),
            ));
        }
        match s.values.get(key) {
            Some(v) => Ok(Secret::new(v.expose().to_owned())),
            None => Err(SecretError::new(
                ErrorCode::NotFound,
                format!("secret '{key}' is not in the memory source"),
            )
            .with_status(404)),
        }
    }
}

impl Source for MemorySource {
    fn kind(&self) -> SourceKind {
        SourceKind::Memory
    }

    fn fetch(
        self: Arc<Self>,
        key: String,
        _url: String,
        _deadline: tokio::time::Instant,
    ) -> FetchFuture {
        Box::pin(async move {
            // Read first, then take the delay: like a store whose answer is slow to arrive, so
            // a test can change a value while an older answer is still on its way.
            let delay = self.state.read().ok().and_then(|s| s.delay);
            let answer = self.read(&key);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(60)
    }

    #[tokio::test]
    async fn reads_values_and_faults() {
        let m = Arc::new(MemorySource::new(vec![(
            "a".into(),
            SecretString::new("1".into()),
        )]));
        assert_eq!(
            m.clone()
                .fetch("a".into(), String::new(), far())
                .await
                .unwrap()
                .value
                .expose(),
            "1"
        );
        assert_eq!(
            m.clone()
                .fetch("b".into(), String::new(), far())
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        m.set_fault("a", Some(ErrorCode::Unavailable));
        assert_eq!(
            m.clone()
                .fetch("a".into(), String::new(), far())
                .await
                .unwrap_err()
                .code,
            ErrorCode::Unavailable
        );
        m.set_fault("a", None);
        m.set_value("a", Some("2".into()));
        assert_eq!(
            m.clone()
                .fetch("a".into(), String::new(), far())
                .await
                .unwrap()
                .value
                .expose(),
            "2"
        );
        assert_eq!(m.reads(), 4);
    }
}

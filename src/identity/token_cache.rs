//! One token cache per manager: one request (with its retries) per (resource, tenant) serves
//! every waiter, and its failure too, for a few seconds.

use super::*;

/// One (resource, tenant)'s token, or the failure of the last request for it.
#[derive(Default)]
struct TokenSlotState {
    token: Option<Arc<Token>>,
    /// The last token request failed: its error, and until when it is the answer (so a
    /// failing endpoint is asked once, with its retries, for every waiter).
    failure: Option<(SecretError, f64)>,
}

type TokenSlot = Arc<tokio::sync::Mutex<TokenSlotState>>;

/// How long a failed token request is the answer for every caller, before one asks again.
pub const FAILURE_MEMORY_SECONDS: f64 = 5.0;

pub struct TokenCache {
    provider: Box<dyn Provider>,
    slots: Mutex<HashMap<(String, Option<String>), TokenSlot>>,
    requests: AtomicU64,
}

impl TokenCache {
    pub fn new(provider: Box<dyn Provider>) -> Self {
        TokenCache {
            provider,
            slots: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    pub fn describe(&self) -> String {
        self.provider.describe()
    }

    /// Token requests made so far (for tests and stats).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn slot(&self, resource: &str, tenant: Option<&str>) -> TokenSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((resource.to_owned(), tenant.map(str::to_owned)))
            .or_default()
            .clone()
    }

    /// A fresh token for `resource`. `stale`: the token the caller was just refused with; a
    /// new one is fetched unless another caller has already replaced it. One request (with
    /// its retries) at a time per (resource, tenant): its waiters take its token, or its
    /// failure for `FAILURE_MEMORY_SECONDS`.
    pub async fn get(
        &self,
        http: &Http,
        resource: &str,
        tenant: Option<&str>,
        deadline: Instant,
        stale: Option<&Arc<Token>>,
    ) -> Result<Arc<Token>, SecretError> {
        let slot = self.slot(resource, tenant);
        let mut guard = match tokio::time::timeout_at(deadline, slot.lock()).await {
            Ok(g) => g,
            Err(_) => {
                return Err(SecretError::new(
                    ErrorCode::Timeout,
                    "waiting for a token: the deadline passed",
                ))
            }
        };
        let now = SystemClock.now();
        if let Some(t) = guard.token.as_ref() {
            let refused = stale.is_some_and(|s| Arc::ptr_eq(s, t));
            if !refused && t.fresh(now) {
                return Ok(t.clone());
            }
        }
        if let Some((err, until)) = &guard.failure {
            if now < *until {
                return Err(err.clone());
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        match self.provider.fetch(http, resource, tenant, deadline).await {
            Ok(token) => {
                let token = Arc::new(token);
                guard.token = Some(token.clone());
                guard.failure = None;
                Ok(token)
            }
            Err(err) => {
                guard.failure = Some((err.clone(), SystemClock.now() + FAILURE_MEMORY_SECONDS));
                Err(err)
            }
        }
    }
}

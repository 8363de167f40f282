//! The cache engine. Pure Rust: no napi, no HTTP, the clock and the jitter injected.
//!
//! Rules (api.md, `cache` options):
//! - key: the composite of `compose_key` (the url only where the source uses it);
//! - single flight: concurrent callers of a cold or expired key share one upstream fetch;
//! - refresh-ahead: after `refresh_after` (jittered ±10%) a hit is still served at once and
//!   exactly one caller is told to start a background refresh;
//! - hard expiry at `max_age`, bounded by the source's own expiry;
//! - stale-if-error: on TIMEOUT/UNAVAILABLE/THROTTLED the last good value is served for up to
//!   `stale_if_error` past expiry; on UNAUTHORIZED/FORBIDDEN/NOT_FOUND the entry is dropped;
//! - NOT_FOUND is remembered for `negative_ttl`;
//! - at most `max_entries`, least recently used evicted first. Values are wiped when the
//!   last reference to them goes (see `secret::SecretString`).

use crate::error::{ErrorCode, SecretError};
use crate::secret::{Secret, SecretString};
use lru::LruCache;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

use crate::source::FetchFuture;
use crate::time::{Clock, SystemClock};

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// `cache: false` turns storage off; single flight still applies.
    pub enabled: bool,
    pub refresh_after: f64,
    pub max_age: f64,
    pub stale_if_error: f64,
    pub negative_ttl: f64,
    pub max_entries: usize,
    /// The longest refresh interval adaptive refresh may reach.
    pub max_refresh_after: f64,
    /// How long a background refresh handed to a caller holds the key's claim (seconds): the
    /// call's deadline. No other refresh is handed out meanwhile, however late the runtime
    /// gets to the one handed out; it ends the claim by storing or failing.
    pub refresh_claim: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            refresh_after: 300.0,
            max_age: 86_400.0,
            stale_if_error: 3_600.0,
            negative_ttl: 5.0,
            max_entries: 10_000,
            max_refresh_after: 3_600.0,
            refresh_claim: 10.0,
        }
    }
}

impl Policy {
    /// The refresh interval after `doublings` unchanged refreshes: refresh_after × 2^doublings,
    /// at most max_refresh_after (and never less than refresh_after).
    pub fn interval(&self, doublings: u8) -> f64 {
        let cap = self.max_refresh_after.max(self.refresh_after);
        (self.refresh_after * 2f64.powi(i32::from(doublings.min(60)))).min(cap)
    }

    /// One more doubling, unless the interval is already at its cap.
    pub fn next_doublings(&self, d: u8) -> u8 {
        if self.interval(d) >= self.max_refresh_after.max(self.refresh_after) {
            d
        } else {
            d.saturating_add(1).min(60)
        }
    }

    /// How long to wait before another background attempt after one failed.
    fn retry_backoff(&self) -> f64 {
        (self.refresh_after * 0.1).clamp(0.001, 30.0)
    }

    /// Until when a refresh handed out now holds the key: the call's deadline (a refresh that
    /// was lost, a task that never ran, lets another be handed out after it).
    fn claim_until(&self, now: f64) -> f64 {
        now + self.refresh_claim.max(self.retry_backoff())
    }
}

/// Why the caller is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary read after a miss: answer from the cache if someone filled it meanwhile,
    /// and fall back to a stale value when the store is briefly down.
    Get,
    /// An explicit `refresh`: a new flight now (never one begun before), no cache answer, no
    /// stale fallback: the caller wants to know what the store says.
    Refresh,
    /// Refresh-ahead, started by the cache itself: joins the key's flight if there is one.
    Background,
}

/// What the caller saw, for its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Hit,
    Miss,
    Stale,
    Refresh,
    Error,
}

#[derive(Clone, Debug)]
pub enum Answer {
    Value {
        secret: Arc<Secret>,
        expires_at: f64,
    },
    Error(SecretError),
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub answer: Answer,
    pub event: Event,
    /// Set on a `Stale` reply: the error that made the value stale.
    pub code: Option<ErrorCode>,
    /// This caller should start a background refresh (`Mode::Refresh`) of the key.
    pub refresh: bool,
    /// Until when (unix seconds) this same answer may be given again without asking the
    /// cache: before refresh-ahead is due and before expiry. 0 when it must not be reused.
    pub fresh_until: f64,
    /// The stamp of the cache entry this answer came from (0: none): the mirror may keep it
    /// only while that entry is current (`Cache::sync`).
    pub stamp: u64,
    /// The `expiresOn` of an error answer (the local source keeps the platform's 1).
    pub error_expires_on: f64,
    /// On a refresh: whether the value differs from the one it replaced (`None`: none was).
    pub changed: Option<bool>,
}

impl Reply {
    pub fn value(secret: Arc<Secret>, expires_at: f64, event: Event) -> Self {
        Reply {
            answer: Answer::Value { secret, expires_at },
            event,
            code: None,
            refresh: false,
            fresh_until: 0.0,
            stamp: 0,
            error_expires_on: 0.0,
            changed: None,
        }
    }

    pub fn error(err: SecretError) -> Self {
        Reply {
            answer: Answer::Error(err),
            event: Event::Error,
            code: None,
            refresh: false,
            fresh_until: 0.0,
            stamp: 0,
            error_expires_on: 0.0,
            changed: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale_served: u64,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    pub in_flight: u64,
}

fn copy_of(value: &SecretString, id: &Option<Box<Box<str>>>) -> Arc<Secret> {
    Arc::new(Secret {
        value: SecretString::new(value.expose().to_owned()),
        id: id.as_deref().cloned(),
        expires_at: None,
    })
}

/// The separator between url and key in a composite key. Keys cannot contain control
/// characters (validated before they get here), so the last NUL always splits correctly.
const SEP: char = '\0';

/// The cache key: the secret key alone, or `url NUL key` where the source uses the url.
pub fn compose_key<'a>(url: Option<&str>, key: &'a str) -> Cow<'a, str> {
    match url {
        Some(url) => Cow::Owned(format!("{url}{SEP}{key}")),
        None => Cow::Borrowed(key),
    }
}

/// The secret key part of a composite key.
pub fn secret_key_of(composite: &str) -> &str {
    composite.rsplit(SEP).next().unwrap_or(composite)
}

enum Cached {
    /// The value is held here, not shared: one allocation less per entry, and a lookup hands
    /// out a copy (which the caller wipes when done with it).
    /// `id` is a thin pointer: most stores send none, and it keeps `Entry` at 56 bytes
    /// (with the LRU node, one 96-byte allocation instead of 112).
    Good {
        value: SecretString,
        id: Option<Box<Box<str>>>,
    },
    /// Boxed: rare, and it would double the size of every entry.
    Missing(Box<SecretError>),
}

// Kept small: there may be many. Past `expires_at`, a Good value may still be served until
// `expires_at + policy.stale_if_error` while the store is failing.
struct Entry {
    value: Cached,
    refresh_at: f64,
    expires_at: f64,
    /// The last upstream attempt failed with a code that allows stale serving.
    failing: Option<ErrorCode>,
    /// No background attempt before this.
    retry_at: f64,
    /// Which put made this entry (the low 32 bits of its flight id, so the entry stays 56
    /// bytes): the mirror keeps answers of this stamp only. A stamp is compared only while a
    /// reply is on its way (at most the call's deadline), far shorter than 2^32 flights.
    stamp: u32,
    /// Adaptive refresh: this key's interval is refresh_after × 2^doublings (capped).
    doublings: u8,
}

/// What a flight publishes to its waiters when the store answered a value.
#[derive(Clone)]
struct Stored {
    /// The value, shared while in transit.
    secret: Arc<Secret>,
    /// Its hard expiry (unix seconds).
    expires_at: f64,
    /// How long the answer may be reused (0: it was not stored).
    fresh_until: f64,
    /// The stamp of the entry it stored (0: none).
    stamp: u64,
    /// Whether the value differs from the one it replaced (`None`: there was none).
    changed: Option<bool>,
}
type Outcome = Option<Result<Stored, SecretError>>;

/// One line of the change log the mirror follows.
struct LogEntry {
    /// The change number.
    change: u64,
    /// The cache key removed or replaced.
    key: Box<str>,
    /// Removed to make room (an `evict` event).
    evicted: bool,
}

/// One upstream fetch under way for a key. Only the flight registered in `Inner::flights`
/// may write its result into the cache: `invalidate`, an explicit `refresh` and `close`
/// replace or remove it, so a fetch that began before them never writes back (per key: other
/// keys' flights are untouched).
struct Flight {
    id: u64,
    rx: watch::Receiver<Outcome>,
    abort: Option<tokio::task::AbortHandle>,
}

/// What happened in the background (a refresh-ahead), for the JS layer's events.
#[derive(Clone, Debug, PartialEq)]
pub struct BackgroundEvent {
    pub key: Box<str>,
    pub code: Option<ErrorCode>,
    pub duration_ms: f64,
    pub changed: Option<bool>,
    /// Key Vault's version (the last segment of the id), when known.
    pub version: Option<Box<str>>,
    /// When it ended (unix ms), for its span.
    pub ended_ms: f64,
    /// The store's request id of a failure, when it gave one.
    pub request_id: Option<String>,
    /// Its upstream requests (trace.rs), for spans and metrics.
    pub upstream: crate::trace::Upstream,
}

/// The change log the JS mirror follows (see `Cache::sync`).
#[derive(Debug, Default, PartialEq)]
pub struct MirrorSync {
    /// The change number the mirror has now seen.
    pub changes: u64,
    /// Cache keys removed or replaced since the mirror's last sync; `None`: too many to list,
    /// the mirror must forget everything.
    pub removed: Option<Vec<Box<str>>>,
    /// Those of them evicted for size (for `evict` events).
    pub evicted: Vec<Box<str>>,
    /// Whether the entry with the stamp asked about is still the cache's entry for its key.
    pub current: bool,
    pub events: Vec<BackgroundEvent>,
}

/// The mirror stops answering a value this long before its hard expiry: the drop is made by
/// a timer, which may fire a little late; this keeps even a late one before the expiry.
pub const MIRROR_MARGIN: f64 = 0.25;

/// Until when the mirror may answer an entry: before refresh-ahead is due and before expiry.
fn mirror_until(e: &Entry) -> f64 {
    match e.value {
        Cached::Missing(_) => e.expires_at,
        Cached::Good { .. } => e.refresh_at.min(e.expires_at - MIRROR_MARGIN),
    }
}

/// The longest change log kept for the mirror; past it the mirror is told to start over.
const LOG_CAP: usize = 4096;
const EVENTS_CAP: usize = 1024;

struct Inner {
    entries: LruCache<Box<str>, Entry>,
    flights: HashMap<Box<str>, Flight>,
    /// Ids of flights and stamps of entries: one counter, never reused.
    next_id: u64,
    /// Every removal or replacement of an entry, numbered: (change number, cache key,
    /// evicted for size).
    log: VecDeque<LogEntry>,
    /// Change numbers at or below this are no longer in `log`.
    log_floor: u64,
    changes: u64,
    events: Vec<BackgroundEvent>,
    /// Flights that `invalidate` or an explicit refresh detached (their waiters still get
    /// their answers): `close` aborts them too. Finished ones are pruned as more come.
    detached: Vec<tokio::task::AbortHandle>,
    /// When the mirror's earliest answer must stop being given (unix ms; 0: none), as the
    /// mirror said at its last sync: the timer task moves the change counter then, so the
    /// mirror needs no clock on its hit path.
    wake_at_ms: u64,
    stats: Stats,
    closed: bool,
}

/// The change counter, shared with the JS mirror as one f64 it reads on every hit (exposed
/// by the napi layer as a Float64Array over this memory). Written only under the cache lock.
pub struct ChangeCell(pub AtomicU64);

impl ChangeCell {
    pub fn get(&self) -> u64 {
        f64::from_bits(self.0.load(Ordering::Acquire)) as u64
    }
}

pub struct Cache {
    policy: Policy,
    clock: Arc<dyn Clock>,
    jitter: Box<dyn Fn() -> f64 + Send + Sync>,
    inner: Mutex<Inner>,
    cell: Arc<ChangeCell>,
    /// Wakes the timer task when an earlier due time is scheduled (or on close).
    pub wake: tokio::sync::Notify,
}

/// A factor in [0.9, 1.1): cheap, unpredictable enough to spread fleets apart.
pub fn default_jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    if x == 0 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(SystemClock.now().to_bits());
        x = h.finish();
        STATE.store(x, Ordering::Relaxed);
    }
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    0.9 + 0.2 * ((x >> 11) as f64 / (1u64 << 53) as f64)
}

impl Inner {
    /// A flight no longer in `flights`: it runs on for its waiters, and `close` aborts it.
    fn detach(&mut self, f: Flight) {
        if let Some(a) = f.abort {
            self.remember_detached(a);
        }
    }

    fn remember_detached(&mut self, a: tokio::task::AbortHandle) {
        // Pruned at 64, 128, 256, ... entries: amortized O(1) however many are running.
        let n = self.detached.len();
        if n >= 64 && n.is_power_of_two() {
            self.detached.retain(|h| !h.is_finished());
        }
        self.detached.push(a);
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Note a change for the mirror: an entry of `key` removed or replaced (or, with `None`,
    /// only something to sync, such as a background event).
    fn changed(&mut self, key: Option<&str>, cell: &ChangeCell) {
        self.logged(key, false, cell)
    }

    fn logged(&mut self, key: Option<&str>, evicted: bool, cell: &ChangeCell) {
        self.changes += 1;
        if let Some(k) = key {
            self.log.push_back(LogEntry {
                change: self.changes,
                key: k.into(),
                evicted,
            });
            while self.log.len() > LOG_CAP {
                if let Some(old) = self.log.pop_front() {
                    self.log_floor = old.change;
                }
            }
        }
        cell.0
            .store((self.changes as f64).to_bits(), Ordering::Release);
    }

    fn remove(&mut self, key: &str, cell: &ChangeCell) {
        if self.entries.pop(key).is_some() {
            self.changed(Some(key), cell);
        }
    }
}

impl Cache {
    pub fn new(policy: Policy) -> Self {
        Cache::with_clock(policy, Arc::new(SystemClock), Box::new(default_jitter))
    }

    pub fn with_clock(
        policy: Policy,
        clock: Arc<dyn Clock>,
        jitter: Box<dyn Fn() -> f64 + Send + Sync>,
    ) -> Self {
        Cache {
            policy,
            clock,
            jitter,
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                flights: HashMap::new(),
                next_id: 0,
                log: VecDeque::new(),
                log_floor: 0,
                changes: 0,
                events: Vec::new(),
                detached: Vec::new(),
                wake_at_ms: 0,
                stats: Stats::default(),
                closed: false,
            }),
            cell: Arc::new(ChangeCell(AtomicU64::new(0f64.to_bits()))),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn clock_ref(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The change counter the JS mirror reads (see `ChangeCell`).
    pub fn change_cell(&self) -> Arc<ChangeCell> {
        self.cell.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data is still consistent
        // (every mutation is a single step), so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn closed_error(key: &str) -> SecretError {
        SecretError::new(
            ErrorCode::Closed,
            format!("secret '{key}': the secret manager was closed"),
        )
    }

    /// The synchronous hit path: an answer from the cache, or `None` when the caller must
    /// `fetch`. Never waits, never touches the runtime.
    pub fn lookup(&self, key: &str) -> Option<Reply> {
        let now = self.clock.now();
        let mut g = self.lock();
        if g.closed {
            return Some(Reply::error(Cache::closed_error(secret_key_of(key))));
        }
        let reply = self.lookup_locked(&mut g, key, now);
        if reply.is_some() {
            g.stats.hits += 1;
        }
        reply
    }

    fn lookup_locked(&self, g: &mut Inner, key: &str, now: f64) -> Option<Reply> {
        if !self.policy.enabled {
            return None;
        }
        let in_flight = g.flights.contains_key(key);
        let entry = g.entries.get_mut(key)?;
        let stamp = u64::from(entry.stamp);
        let reply = match &entry.value {
            Cached::Missing(err) if now < entry.expires_at => Some(Reply {
                event: Event::Hit,
                fresh_until: entry.expires_at,
                stamp,
                ..Reply::error((**err).clone())
            }),
            Cached::Missing(_) => None,
            Cached::Good { .. } if now >= entry.expires_at + self.policy.stale_if_error => None,
            Cached::Good { value, id } if now < entry.expires_at => {
                let mut reply = Reply::value(copy_of(value, id), entry.expires_at, Event::Hit);
                reply.stamp = stamp;
                if now >= entry.refresh_at && now >= entry.retry_at && !in_flight {
                    // The refresh runs on the runtime, which may get to it late (a loaded
                    // machine): the claim, not the flight, keeps a second one from starting.
                    entry.retry_at = self.policy.claim_until(now);
                    reply.refresh = true;
                } else {
                    reply.fresh_until = mirror_until(entry).max(0.0);
                }
                Some(reply)
            }
            Cached::Good { value, id } => match entry.failing {
                // Expired, and the store was failing at the last attempt: serve the last good
                // value at once rather than make every caller wait on a store that is down.
                Some(code) => {
                    let mut reply =
                        Reply::value(copy_of(value, id), entry.expires_at, Event::Stale);
                    reply.code = Some(code);
                    if now >= entry.retry_at && !in_flight {
                        entry.retry_at = self.policy.claim_until(now);
                        reply.refresh = true;
                    }
                    g.stats.stale_served += 1;
                    Some(reply)
                }
                None => None,
            },
        };
        if reply.is_none() {
            // Past every bound it could still be served in: drop it now.
            let dead = match g.entries.peek(key) {
                Some(e) => match e.value {
                    Cached::Missing(_) => now >= e.expires_at,
                    Cached::Good { .. } => now >= e.expires_at + self.policy.stale_if_error,
                },
                None => false,
            };
            if dead {
                g.remove(key, &self.cell);
            }
        }
        reply
    }

    /// Go upstream through the single flight for `key`. `start` makes the fetch and is called
    /// only when a new flight is started. Must run inside a tokio runtime.
    /// - `Get` answers from the cache when it can, else joins the key's flight or starts one;
    ///   on a transient failure it falls back to the last good value.
    /// - `Refresh` (an explicit refresh) always starts a new flight: one begun before it may
    ///   carry the value from before a rotation. The older flight can no longer write back.
    /// - `Background` (refresh-ahead) joins the key's flight or starts one.
    pub async fn fetch(
        self: &Arc<Self>,
        key: &str,
        mode: Mode,
        start: impl FnOnce() -> FetchFuture,
    ) -> Reply {
        let (mut rx, flight_id) = {
            let now = self.clock.now();
            let mut g = self.lock();
            if g.closed {
                return Reply::error(Cache::closed_error(secret_key_of(key)));
            }
            if mode == Mode::Get {
                if let Some(reply) = self.lookup_locked(&mut g, key, now) {
                    g.stats.hits += 1;
                    return reply;
                }
                g.stats.misses += 1;
            }
            match g.flights.get(key) {
                Some(f) if mode != Mode::Refresh => (f.rx.clone(), f.id),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    let id = g.next_id();
                    g.stats.upstream_requests += 1;
                    // Replacing a flight detaches it: its waiters still get its answer, but
                    // it no longer writes into the cache.
                    let replaced = g.flights.insert(
                        key.into(),
                        Flight {
                            id,
                            rx: rx.clone(),
                            abort: None,
                        },
                    );
                    if let Some(old) = replaced {
                        g.detach(old);
                    }
                    drop(g);
                    let fut = start();
                    let this = Arc::clone(self);
                    let owned: Box<str> = key.into();
                    let task = tokio::spawn(async move {
                        let result = fut.await;
                        let outcome = this.complete(&owned, result, id);
                        // Nobody left to tell is fine: the cache was updated all the same.
                        let _ = tx.send(Some(outcome));
                    });
                    let mut g = self.lock();
                    if g.closed {
                        task.abort();
                    } else if let Some(f) = g.flights.get_mut(key).filter(|f| f.id == id) {
                        f.abort = Some(task.abort_handle());
                    } else {
                        // Detached already (invalidated or refreshed before it got here).
                        g.remember_detached(task.abort_handle());
                    }
                    (rx, id)
                }
            }
        };
        let outcome = match rx.wait_for(|o| o.is_some()).await {
            Ok(o) => o.clone(),
            Err(_) => None,
        };
        let outcome = match outcome {
            Some(o) => o,
            None => {
                // The task ended without an answer: aborted by `close`, or it panicked.
                let mut g = self.lock();
                if g.flights.get(key).is_some_and(|f| f.id == flight_id) {
                    g.flights.remove(key);
                }
                if g.closed {
                    return Reply::error(Cache::closed_error(secret_key_of(key)));
                }
                Err(SecretError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "secret '{}': the fetch ended without an answer",
                        secret_key_of(key)
                    ),
                ))
            }
        };
        let mut g = self.lock();
        if g.closed {
            return Reply::error(Cache::closed_error(secret_key_of(key)));
        }
        match outcome {
            Ok(Stored {
                secret,
                expires_at,
                fresh_until,
                stamp,
                changed,
            }) => {
                let mut reply = Reply::value(
                    secret,
                    expires_at,
                    if mode == Mode::Get {
                        Event::Miss
                    } else {
                        Event::Refresh
                    },
                );
                reply.fresh_until = fresh_until;
                reply.stamp = stamp;
                reply.changed = changed;
                reply
            }
            Err(err) => {
                if mode == Mode::Get && err.allows_stale() && self.policy.enabled {
                    let now = self.clock.now();
                    if let Some(Entry {
                        value: Cached::Good { value, id },
                        expires_at,
                        ..
                    }) = g.entries.peek(key)
                    {
                        if now < *expires_at + self.policy.stale_if_error {
                            let mut reply =
                                Reply::value(copy_of(value, id), *expires_at, Event::Stale);
                            reply.code = Some(err.code);
                            g.stats.stale_served += 1;
                            return reply;
                        }
                    }
                }
                let (fresh_until, stamp) = match g.entries.peek(key) {
                    Some(Entry {
                        value: Cached::Missing(e),
                        expires_at,
                        stamp,
                        ..
                    }) if e.code == err.code => (*expires_at, u64::from(*stamp)),
                    _ => (0.0, 0),
                };
                Reply {
                    fresh_until,
                    stamp,
                    ..Reply::error(err)
                }
            }
        }
    }

    /// Mark keys as recently used: hits answered by a mirror of this cache (the JS layer's)
    /// never reach `lookup`, so the mirror reports them before anything can be evicted.
    pub fn touch<S: AsRef<str>>(&self, keys: &[S]) {
        if keys.is_empty() {
            return;
        }
        let mut g = self.lock();
        for k in keys {
            g.entries.promote(k.as_ref());
        }
    }

    /// Record what the store said. Runs once per flight, before its waiters wake. Writes into
    /// the cache only while this flight is the key's registered one.
    fn complete(
        &self,
        key: &str,
        result: Result<Secret, SecretError>,
        flight_id: u64,
    ) -> Result<Stored, SecretError> {
        let now = self.clock.now();
        let mut g = self.lock();
        let current = g.flights.get(key).is_some_and(|f| f.id == flight_id);
        if current {
            g.flights.remove(key);
        }
        let store = self.policy.enabled && !g.closed && current;
        match result {
            Ok(secret) => {
                let mut expires_at = now + self.policy.max_age;
                if let Some(exp) = secret.expires_at {
                    expires_at = expires_at.min(exp);
                }
                let mut fresh_until = 0.0;
                let mut stamp = 0;
                // Adaptive refresh: the same version as the entry it replaces (Key Vault's id;
                // without ids, the same value) doubles the key's interval, up to
                // max_refresh_after; a change starts over.
                let previous = g.entries.peek(key).and_then(|e| match &e.value {
                    Cached::Good { value, id } => Some((
                        match (id.as_deref(), secret.id.as_deref()) {
                            (Some(a), Some(b)) => **a == *b,
                            _ => value.expose() == secret.value.expose(),
                        },
                        e.doublings,
                    )),
                    Cached::Missing(_) => None,
                });
                let changed = previous.map(|(same, _)| !same);
                let doublings = match previous {
                    Some((true, d)) => self.policy.next_doublings(d),
                    _ => 0,
                };
                if store && expires_at > now {
                    // ±10% on the first interval; once it has doubled, [½, 1) of it, so
                    // instances that started together drift apart instead of doubling in step
                    // (bench/simulate.mjs).
                    let j = (self.jitter)();
                    let factor = if doublings == 0 {
                        j
                    } else {
                        0.5 + 0.5 * ((j - 0.9) / 0.2).clamp(0.0, 1.0)
                    };
                    let refresh_at = now + self.policy.interval(doublings) * factor;
                    fresh_until = refresh_at.min(expires_at - MIRROR_MARGIN).max(0.0);
                    stamp = flight_id as u32;
                    let replaced = g.entries.put(
                        key.into(),
                        Entry {
                            value: Cached::Good {
                                value: SecretString::new(secret.value.expose().to_owned()),
                                id: secret.id.clone().map(Box::new),
                            },
                            refresh_at,
                            expires_at,
                            failing: None,
                            retry_at: 0.0,
                            stamp,
                            doublings,
                        },
                    );
                    if replaced.is_some() {
                        g.changed(Some(key), &self.cell);
                    }
                    self.evict_over_capacity(&mut g);
                } else if store {
                    g.remove(key, &self.cell);
                }
                Ok(Stored {
                    secret: Arc::new(secret),
                    expires_at,
                    fresh_until,
                    stamp: u64::from(stamp),
                    changed,
                })
            }
            Err(err) => {
                g.stats.upstream_errors += 1;
                if err.code.drops_entry() && current {
                    g.remove(key, &self.cell);
                    if store && err.code == ErrorCode::NotFound && self.policy.negative_ttl > 0.0 {
                        let expires_at = now + self.policy.negative_ttl;
                        g.entries.put(
                            key.into(),
                            Entry {
                                value: Cached::Missing(Box::new(err.clone())),
                                refresh_at: expires_at,
                                expires_at,
                                failing: None,
                                retry_at: 0.0,
                                stamp: flight_id as u32,
                                doublings: 0,
                            },
                        );
                        self.evict_over_capacity(&mut g);
                    }
                } else if let Some(entry) = g.entries.peek_mut(key).filter(|_| current) {
                    entry.failing = err.allows_stale().then_some(err.code);
                    entry.retry_at = now + self.policy.retry_backoff();
                }
                Err(err)
            }
        }
    }

    fn evict_over_capacity(&self, g: &mut Inner) {
        while g.entries.len() > self.policy.max_entries {
            match g.entries.pop_lru() {
                Some((k, _)) => g.logged(Some(&k), true, &self.cell),
                None => break,
            }
        }
    }

    /// Bring a mirror up to date: the keys removed or replaced since change `seen`, whether
    /// the entry of `key` with `stamp` is still current, and the background events. Called on
    /// the mirror's own thread, so after it the mirror holds nothing the cache has dropped; any
    /// later drop moves the change counter, which the mirror checks before every hit.
    /// `wake_ms`: the earliest time (unix ms, 0: none) one of the mirror's answers stops being
    /// good; with the entry asked about, if current, the timer is set for the earlier of both.
    pub fn sync(&self, seen: u64, key: Option<&str>, stamp: u64, wake_ms: f64) -> MirrorSync {
        let mut g = self.lock();
        let since = g.log.iter().filter(|e| e.change > seen);
        let evicted = since
            .clone()
            .filter(|e| e.evicted)
            .map(|e| e.key.clone())
            .collect();
        let removed = if seen < g.log_floor {
            None
        } else {
            Some(since.map(|e| e.key.clone()).collect())
        };
        let now = self.clock.now();
        let current_until = if g.closed || stamp == 0 {
            None
        } else {
            key.and_then(|k| g.entries.peek(k))
                .filter(|e| u64::from(e.stamp) == stamp)
                .map(mirror_until)
                .filter(|until| now < *until)
        };
        let current = current_until.is_some();
        let mut wake = if wake_ms.is_finite() && wake_ms > 0.0 {
            wake_ms.min(u64::MAX as f64) as u64
        } else {
            0
        };
        if let Some(until) = current_until {
            let ms = (until * 1000.0).ceil().min(u64::MAX as f64) as u64;
            wake = if wake == 0 { ms } else { wake.min(ms) };
        }
        let earlier = wake != 0 && (g.wake_at_ms == 0 || wake < g.wake_at_ms);
        g.wake_at_ms = wake;
        if earlier {
            self.wake.notify_one();
        }
        MirrorSync {
            changes: g.changes,
            removed,
            evicted,
            current,
            events: std::mem::take(&mut g.events),
        }
    }

    /// When the timer should next move the change counter (unix seconds), if at all.
    pub fn wake_at(&self) -> Option<f64> {
        let g = self.lock();
        (g.wake_at_ms > 0).then(|| g.wake_at_ms as f64 / 1000.0)
    }

    /// The wake time has come: move the change counter (the mirror drops what is due at its
    /// next call and says when to wake next). Whether it had come.
    pub fn wake_if_due(&self) -> bool {
        let now_ms = (self.clock.now() * 1000.0).max(0.0) as u64;
        let mut g = self.lock();
        if g.wake_at_ms == 0 || g.wake_at_ms > now_ms {
            return false;
        }
        g.wake_at_ms = 0;
        g.changed(None, &self.cell);
        true
    }

    /// Move the change counter (the JS layer checks at start that it sees the shared memory).
    pub fn bump(&self) -> u64 {
        let mut g = self.lock();
        g.changed(None, &self.cell);
        g.changes
    }

    /// Queue what a background refresh found, for the mirror's next sync.
    pub fn record_event(&self, event: BackgroundEvent) {
        let mut g = self.lock();
        if g.events.len() < EVENTS_CAP {
            g.events.push(event);
        }
        g.changed(None, &self.cell);
    }

    /// Whether the cache holds this key now: an entry, or a read under way.
    pub fn holds(&self, key: &str) -> bool {
        let g = self.lock();
        g.entries.contains(key) || g.flights.contains_key(key)
    }

    /// Forget one secret key (under every url) or, with `None`, everything. Flights of those
    /// keys are detached: their callers get their answers, but nothing is written back.
    pub fn invalidate(&self, secret_key: Option<&str>) {
        let mut g = self.lock();
        let doomed: Vec<Box<str>> = g
            .entries
            .iter()
            .filter(|(k, _)| secret_key.is_none_or(|s| secret_key_of(k) == s))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            g.remove(&k, &self.cell);
        }
        let doomed: Vec<Box<str>> = g
            .flights
            .keys()
            .filter(|k| secret_key.is_none_or(|s| secret_key_of(k) == s))
            .cloned()
            .collect();
        for k in doomed {
            if let Some(f) = g.flights.remove(&k) {
                g.detach(f);
            }
        }
    }

    /// Wipe everything and cancel every flight (their callers answer CLOSED at once); from
    /// now on every call answers CLOSED.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        for (_, f) in g.flights.drain() {
            if let Some(a) = f.abort {
                a.abort();
            }
        }
        for a in g.detached.drain(..) {
            a.abort();
        }
        let keys: Vec<Box<str>> = g.entries.iter().map(|(k, _)| k.clone()).collect();
        for k in keys {
            g.remove(&k, &self.cell);
        }
        g.events.clear();
        g.wake_at_ms = 0;
        drop(g);
        self.wake.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub fn stats(&self) -> Stats {
        let g = self.lock();
        Stats {
            entries: g.entries.len() as u64,
            in_flight: g.flights.len() as u64,
            ..g.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::Notify;

    /// A clock the test moves by hand.
    struct TestClock(Mutex<f64>);
    impl Clock for TestClock {
        fn now(&self) -> f64 {
            *self.0.lock().unwrap()
        }
    }
    impl TestClock {
        fn advance(&self, s: f64) {
            *self.0.lock().unwrap() += s;
        }
    }

    fn policy() -> Policy {
        Policy {
            refresh_after: 100.0,
            max_age: 1000.0,
            stale_if_error: 500.0,
            negative_ttl: 5.0,
            ..Policy::default()
        }
    }

    fn cache_with(p: Policy) -> (Arc<Cache>, Arc<TestClock>) {
        let clock = Arc::new(TestClock(Mutex::new(1_000_000.0)));
        (
            Arc::new(Cache::with_clock(p, clock.clone(), Box::new(|| 1.0))),
            clock,
        )
    }

    /// A fake store: counts calls, answers from a script.
    #[derive(Clone)]
    struct Store {
        calls: Arc<AtomicUsize>,
        answer: Arc<Mutex<Result<String, ErrorCode>>>,
        gate: Option<Arc<Notify>>,
        exp: Arc<Mutex<Option<f64>>>,
    }

    impl Store {
        fn new(value: &str) -> Self {
            Store {
                calls: Arc::new(AtomicUsize::new(0)),
                answer: Arc::new(Mutex::new(Ok(value.into()))),
                gate: None,
                exp: Arc::new(Mutex::new(None)),
            }
        }
        fn set(&self, a: Result<&str, ErrorCode>) {
            *self.answer.lock().unwrap() = a.map(String::from);
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
        fn start(&self) -> impl FnOnce() -> FetchFuture {
            let s = self.clone();
            move || {
                Box::pin(async move {
                    s.calls.fetch_add(1, Ordering::SeqCst);
                    if let Some(g) = &s.gate {
                        g.notified().await;
                    }
                    let answer = s.answer.lock().unwrap().clone();
                    match answer {
                        Ok(v) => Ok(Secret {
                            expires_at: *s.exp.lock().unwrap(),
                            ..Secret::new(v)
                        }),
                        Err(code) => Err(SecretError::new(code, "store says no")),
                    }
                })
            }
        }
    }

    fn removed_since(cache: &Cache, seen: u64) -> Vec<String> {
        cache
            .sync(seen, None, 0, 0.0)
            .removed
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn value_of(r: &Reply) -> &str {
        match &r.answer {
            Answer::Value { secret, .. } => secret.value.expose(),
            Answer::Error(e) => panic!("expected a value, got {e}"),
        }
    }

    fn code_of(r: &Reply) -> ErrorCode {
        match &r.answer {
            Answer::Error(e) => e.code,
            Answer::Value { .. } => panic!("expected an error"),
        }
    }

    #[tokio::test]
    async fn miss_then_hit() {
        let (cache, _) = cache_with(policy());
        let store = Store::new("v1");
        assert!(cache.lookup("k").is_none());
        let r = cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!((value_of(&r), r.event), ("v1", Event::Miss));
        let r = cache.lookup("k").expect("hit");
        assert_eq!(
            (value_of(&r), r.event, r.refresh),
            ("v1", Event::Hit, false)
        );
        let s = cache.stats();
        assert_eq!(
            (s.hits, s.misses, s.upstream_requests, s.entries),
            (1, 1, 1, 1)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_serves_every_waiter_from_one_fetch() {
        let (cache, _) = cache_with(policy());
        let gate = Arc::new(Notify::new());
        let store = Store {
            gate: Some(gate.clone()),
            ..Store::new("v1")
        };
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (c, s) = (cache.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                c.fetch("k", Mode::Get, s.start()).await
            }));
        }
        // Let every caller join before the store answers.
        while cache.stats().misses < 1000 {
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.stats().in_flight, 1);
        gate.notify_one();
        for t in tasks {
            assert_eq!(value_of(&t.await.unwrap()), "v1");
        }
        assert_eq!(store.calls(), 1);
        assert_eq!(cache.stats().upstream_requests, 1);
        assert_eq!(cache.stats().in_flight, 0);
    }

    #[tokio::test]
    async fn refresh_ahead_serves_at_once_and_asks_exactly_one_caller_to_refresh() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("v1");
        cache.fetch("k", Mode::Get, store.start()).await;
        clock.advance(99.0);
        assert!(!cache.lookup("k").unwrap().refresh);
        clock.advance(2.0);
        let first = cache.lookup("k").unwrap();
        assert_eq!((value_of(&first), first.refresh), ("v1", true));
        let second = cache.lookup("k").unwrap();
        assert!(!second.refresh, "only one caller starts the refresh");
        store.set(Ok("v2"));
        let r = cache.fetch("k", Mode::Refresh, store.start()).await;
        assert_eq!((value_of(&r), r.event), ("v2", Event::Refresh));
        let r = cache.lookup("k").unwrap();
        assert_eq!((value_of(&r), r.refresh), ("v2", false));
        assert_eq!(store.calls(), 2);
    }

    /// Issue 20: under load the adaptive schedule refreshed twice within a second. The cause was
    /// the driving, not the schedule: a hit handed a refresh out and held the key only for
    /// `retry_backoff` (10% of refresh_after: 1 ms at 10 ms); when the runtime got to that
    /// refresh later than that, the next hit handed out a second one, which then also doubled
    /// the interval. Now the claim lasts until the refresh stores or fails (at most the deadline).
    #[tokio::test]
    async fn a_refresh_handed_out_holds_the_key_until_it_ends_however_late_it_runs() {
        let p = Policy {
            refresh_after: 0.01,
            max_refresh_after: 10.0,
            refresh_claim: 10.0,
            ..policy()
        };
        let (cache, clock) = cache_with(p);
        let store = Store::new("v1");
        cache.fetch("k", Mode::Get, store.start()).await;
        clock.advance(0.02);
        assert!(cache.lookup("k").unwrap().refresh, "due: handed out");
        // The runtime is slow: 5 ms (five times retry_backoff) pass before the refresh starts.
        for _ in 0..50 {
            clock.advance(0.0001);
            assert!(
                !cache.lookup("k").unwrap().refresh,
                "never a second one while it is claimed"
            );
        }
        cache.fetch("k", Mode::Background, store.start()).await;
        assert_eq!(store.calls(), 2);
        // Its interval doubled once (same version), from when it ended: 20 ms, × 0.75 (jitter
        // 1.0 over [½, 1)) = 15 ms.
        clock.advance(0.014);
        assert!(!cache.lookup("k").unwrap().refresh);
        clock.advance(0.002);
        assert!(cache.lookup("k").unwrap().refresh);
        // A lost refresh (never run) frees the key after the claim.
        clock.advance(9.0);
        assert!(!cache.lookup("k").unwrap().refresh);
        clock.advance(1.5);
        assert!(cache.lookup("k").unwrap().refresh);
    }

    #[tokio::test]
    async fn fresh_until_bounds_reuse_by_refresh_and_expiry() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("v1");
        let t0 = clock.now();
        let r = cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!(r.fresh_until, t0 + 100.0);
        assert_eq!(cache.lookup("k").unwrap().fresh_until, t0 + 100.0);
        *store.exp.lock().unwrap() = Some(t0 + 20.0);
        assert_eq!(
            cache.fetch("e", Mode::Get, store.start()).await.fresh_until,
            t0 + 20.0 - MIRROR_MARGIN,
            "the store's expiry first (less the mirror's margin)"
        );
        clock.advance(150.0);
        let due = cache.lookup("k").unwrap();
        assert_eq!(
            (due.refresh, due.fresh_until),
            (true, 0.0),
            "not to be reused: a refresh is due"
        );
        store.set(Err(ErrorCode::NotFound));
        let r = cache.fetch("gone", Mode::Get, store.start()).await;
        assert_eq!(r.fresh_until, clock.now() + 5.0, "a remembered NOT_FOUND");
        store.set(Err(ErrorCode::Unavailable));
        assert_eq!(
            cache
                .fetch("down", Mode::Get, store.start())
                .await
                .fresh_until,
            0.0
        );
    }

    #[tokio::test]
    async fn touch_makes_mirror_hits_count_for_recency() {
        let (cache, _) = cache_with(Policy {
            max_entries: 2,
            ..policy()
        });
        let store = Store::new("v");
        cache.fetch("a", Mode::Get, store.start()).await;
        cache.fetch("b", Mode::Get, store.start()).await;
        cache.touch(&["a", "not-there"]);
        cache.fetch("c", Mode::Get, store.start()).await;
        assert_eq!(removed_since(&cache, 0), ["b"]);
    }

    #[tokio::test]
    async fn refresh_is_jittered_within_ten_percent() {
        for (factor, due_at) in [(0.9, 90.0), (1.1, 110.0)] {
            let clock = Arc::new(TestClock(Mutex::new(0.0)));
            let cache = Arc::new(Cache::with_clock(
                policy(),
                clock.clone(),
                Box::new(move || factor),
            ));
            cache.fetch("k", Mode::Get, Store::new("v").start()).await;
            clock.advance(due_at - 0.5);
            assert!(!cache.lookup("k").unwrap().refresh);
            clock.advance(1.0);
            assert!(cache.lookup("k").unwrap().refresh);
        }
        for _ in 0..1000 {
            let f = default_jitter();
            assert!((0.9..1.1).contains(&f), "{f}");
        }
    }

    #[tokio::test]
    async fn hard_expiry_at_max_age_and_at_the_store_expiry() {
        let (cache, clock) = cache_with(Policy {
            stale_if_error: 0.0,
            ..policy()
        });
        let store = Store::new("v1");
        cache.fetch("k", Mode::Get, store.start()).await;
        clock.advance(999.0);
        assert!(cache.lookup("k").is_some());
        clock.advance(1.0);
        assert!(cache.lookup("k").is_none(), "expired at max_age");

        let now = clock.now();
        *store.exp.lock().unwrap() = Some(now + 10.0);
        let r = cache.fetch("e", Mode::Get, store.start()).await;
        match r.answer {
            Answer::Value { expires_at, .. } => assert_eq!(expires_at, now + 10.0),
            _ => panic!(),
        }
        clock.advance(10.0);
        assert!(
            cache.lookup("e").is_none(),
            "bounded by the store's own expiry"
        );
    }

    #[tokio::test]
    async fn a_value_already_expired_at_the_store_is_not_cached() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("v1");
        *store.exp.lock().unwrap() = Some(clock.now() - 1.0);
        cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!(cache.stats().entries, 0);
    }

    #[tokio::test]
    async fn stale_if_error_serves_the_last_good_value_for_transient_errors_only() {
        for code in [
            ErrorCode::Timeout,
            ErrorCode::Unavailable,
            ErrorCode::Throttled,
        ] {
            let (cache, clock) = cache_with(policy());
            let store = Store::new("good");
            cache.fetch("k", Mode::Get, store.start()).await;
            clock.advance(1000.0); // expired
            assert!(cache.lookup("k").is_none());
            store.set(Err(code));
            let r = cache.fetch("k", Mode::Get, store.start()).await;
            assert_eq!(
                (value_of(&r), r.event, r.code),
                ("good", Event::Stale, Some(code))
            );
            // While the store is failing, later callers get the stale value without waiting.
            let r = cache.lookup("k").expect("stale hit");
            assert_eq!((value_of(&r), r.event), ("good", Event::Stale));
            clock.advance(499.0);
            assert_eq!(cache.lookup("k").unwrap().event, Event::Stale);
            clock.advance(1.0);
            assert!(cache.lookup("k").is_none(), "no stale past stale_if_error");
            let r = cache.fetch("k", Mode::Get, store.start()).await;
            assert_eq!(code_of(&r), code);
            assert_eq!(cache.stats().stale_served, 3);
        }
    }

    #[tokio::test]
    async fn definite_answers_drop_the_entry_at_once() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
        ] {
            let (cache, clock) = cache_with(Policy {
                negative_ttl: 0.0,
                ..policy()
            });
            let store = Store::new("good");
            cache.fetch("k", Mode::Get, store.start()).await;
            clock.advance(150.0); // fresh, refresh due
            assert!(cache.lookup("k").unwrap().refresh);
            store.set(Err(code));
            let r = cache.fetch("k", Mode::Refresh, store.start()).await;
            assert_eq!(code_of(&r), code);
            assert!(cache.lookup("k").is_none(), "{code}: never served again");
            assert_eq!(cache.stats().entries, 0);
            let r = cache.fetch("k", Mode::Get, store.start()).await;
            assert_eq!(code_of(&r), code);
        }
    }

    #[tokio::test]
    async fn a_failed_background_refresh_keeps_the_good_value_until_expiry() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("good");
        cache.fetch("k", Mode::Get, store.start()).await;
        clock.advance(150.0);
        assert!(cache.lookup("k").unwrap().refresh);
        store.set(Err(ErrorCode::BadResponse));
        let r = cache.fetch("k", Mode::Refresh, store.start()).await;
        assert_eq!(code_of(&r), ErrorCode::BadResponse);
        let r = cache.lookup("k").unwrap();
        assert_eq!(
            (value_of(&r), r.event, r.refresh),
            ("good", Event::Hit, false)
        );
        clock.advance(10.0); // past the retry backoff
        assert!(
            cache.lookup("k").unwrap().refresh,
            "tries again after the backoff"
        );
    }

    #[tokio::test]
    async fn not_found_is_remembered_for_negative_ttl() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("x");
        store.set(Err(ErrorCode::NotFound));
        let r = cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!(code_of(&r), ErrorCode::NotFound);
        let r = cache.lookup("k").expect("negative hit");
        assert_eq!((code_of(&r), r.event), (ErrorCode::NotFound, Event::Hit));
        clock.advance(5.0);
        assert!(cache.lookup("k").is_none());
        store.set(Ok("now-here"));
        assert_eq!(
            value_of(&cache.fetch("k", Mode::Get, store.start()).await),
            "now-here"
        );
        assert_eq!(store.calls(), 2);
    }

    #[tokio::test]
    async fn other_errors_are_not_cached() {
        let (cache, _) = cache_with(policy());
        let store = Store::new("x");
        store.set(Err(ErrorCode::BadResponse));
        cache.fetch("k", Mode::Get, store.start()).await;
        assert!(cache.lookup("k").is_none());
        assert_eq!(cache.stats().upstream_errors, 1);
    }

    #[tokio::test]
    async fn least_recently_used_is_evicted_past_max_entries() {
        let (cache, _) = cache_with(Policy {
            max_entries: 2,
            ..policy()
        });
        let store = Store::new("v");
        cache.fetch("a", Mode::Get, store.start()).await;
        cache.fetch("b", Mode::Get, store.start()).await;
        cache.lookup("a"); // a is now more recent than b
        cache.fetch("c", Mode::Get, store.start()).await;
        assert_eq!(removed_since(&cache, 0), ["b"]);
        let seen = cache.sync(0, None, 0, 0.0).changes;
        assert!(removed_since(&cache, seen).is_empty(), "reported once");
        assert!(
            cache.lookup("a").is_some()
                && cache.lookup("c").is_some()
                && cache.lookup("b").is_none()
        );
        assert_eq!(cache.stats().entries, 2);
    }

    #[tokio::test]
    async fn a_hit_hands_out_a_copy_the_cache_does_not_share() {
        let (cache, _) = cache_with(policy());
        let store = Store::new("v");
        let from_fetch = cache.fetch("a", Mode::Get, store.start()).await;
        let from_hit = cache.lookup("a").unwrap();
        match (&from_fetch.answer, &from_hit.answer) {
            (Answer::Value { secret: a, .. }, Answer::Value { secret: b, .. }) => {
                assert!(!Arc::ptr_eq(a, b));
                assert_eq!(
                    Arc::strong_count(b),
                    1,
                    "dropping the reply drops (and wipes) its copy"
                );
            }
            _ => panic!(),
        }
    }

    #[tokio::test]
    async fn invalidate_one_or_all_and_in_flight_results_do_not_write_back() {
        let (cache, _) = cache_with(policy());
        let store = Store::new("v");
        for k in ["a", "b"] {
            cache
                .fetch(
                    &compose_key(Some("https://x/"), k),
                    Mode::Get,
                    store.start(),
                )
                .await;
            cache
                .fetch(
                    &compose_key(Some("https://y/"), k),
                    Mode::Get,
                    store.start(),
                )
                .await;
        }
        cache.invalidate(Some("a"));
        assert_eq!(cache.stats().entries, 2, "'a' is gone under both urls");
        assert!(cache
            .lookup(&compose_key(Some("https://y/"), "b"))
            .is_some());
        cache.invalidate(None);
        assert_eq!(cache.stats().entries, 0);

        let gate = Arc::new(Notify::new());
        let slow = Store {
            gate: Some(gate.clone()),
            ..Store::new("old")
        };
        let c = cache.clone();
        let s = slow.clone();
        let t = tokio::spawn(async move { c.fetch("k", Mode::Get, s.start()).await });
        while cache.stats().in_flight == 0 {
            tokio::task::yield_now().await;
        }
        cache.invalidate(Some("k"));
        gate.notify_one();
        assert_eq!(value_of(&t.await.unwrap()), "old");
        assert!(
            cache.lookup("k").is_none(),
            "a fetch begun before invalidate does not write back"
        );
    }

    #[tokio::test]
    async fn close_wipes_and_answers_closed() {
        let (cache, _) = cache_with(policy());
        let store = Store::new("v");
        cache.fetch("k", Mode::Get, store.start()).await;
        cache.close();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(code_of(&cache.lookup("k").unwrap()), ErrorCode::Closed);
        assert_eq!(
            code_of(&cache.fetch("k", Mode::Get, store.start()).await),
            ErrorCode::Closed
        );
        assert_eq!(store.calls(), 1);
    }

    #[tokio::test]
    async fn disabled_cache_stores_nothing_but_still_single_flights() {
        let (cache, _) = cache_with(Policy {
            enabled: false,
            ..policy()
        });
        let store = Store::new("v");
        cache.fetch("k", Mode::Get, store.start()).await;
        assert!(cache.lookup("k").is_none());
        assert_eq!(cache.stats().entries, 0);
        cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!(store.calls(), 2);
    }

    /// A store whose next answer waits for the test (one gate per call).
    fn gated(value: &str) -> (Store, Arc<Notify>) {
        let gate = Arc::new(Notify::new());
        (
            Store {
                gate: Some(gate.clone()),
                ..Store::new(value)
            },
            gate,
        )
    }

    async fn until_in_flight(cache: &Cache, n: u64) {
        while cache.stats().in_flight < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn an_explicit_refresh_never_joins_a_flight_begun_before_it() {
        let (cache, _) = cache_with(policy());
        let (slow, gate) = gated("old");
        let c = cache.clone();
        let s = slow.clone();
        let before = tokio::spawn(async move { c.fetch("k", Mode::Get, s.start()).await });
        until_in_flight(&cache, 1).await;
        // The store rotates; a refresh must see the new value, not join the old request.
        let fresh = Store::new("new");
        let r = cache.fetch("k", Mode::Refresh, fresh.start()).await;
        assert_eq!(value_of(&r), "new");
        gate.notify_one();
        assert_eq!(
            value_of(&before.await.unwrap()),
            "old",
            "its own caller gets its answer"
        );
        assert_eq!(
            value_of(&cache.lookup("k").unwrap()),
            "new",
            "the older flight did not write back over the refresh"
        );
    }

    #[tokio::test]
    async fn invalidate_detaches_only_its_own_keys_flights() {
        let (cache, _) = cache_with(policy());
        let (slow_a, gate_a) = gated("a1");
        let (slow_b, gate_b) = gated("b1");
        let (c1, c2) = (cache.clone(), cache.clone());
        let (sa, sb) = (slow_a.clone(), slow_b.clone());
        let a = tokio::spawn(async move { c1.fetch("a", Mode::Refresh, sa.start()).await });
        let b = tokio::spawn(async move { c2.fetch("b", Mode::Get, sb.start()).await });
        until_in_flight(&cache, 2).await;
        cache.invalidate(Some("b"));
        gate_a.notify_one();
        gate_b.notify_one();
        assert_eq!(value_of(&a.await.unwrap()), "a1");
        assert_eq!(value_of(&b.await.unwrap()), "b1");
        assert!(cache.lookup("a").is_some(), "a's flight still wrote back");
        assert!(
            cache.lookup("b").is_none(),
            "b's flight began before invalidate: no write"
        );
        // A get after invalidate starts its own flight.
        let after = Store::new("b2");
        assert_eq!(
            value_of(&cache.fetch("b", Mode::Get, after.start()).await),
            "b2"
        );
    }

    #[tokio::test]
    async fn close_cancels_flights_and_their_callers_answer_closed() {
        let (cache, _) = cache_with(policy());
        let (slow, _gate) = gated("never");
        let c = cache.clone();
        let s = slow.clone();
        let waiter = tokio::spawn(async move { c.fetch("k", Mode::Get, s.start()).await });
        until_in_flight(&cache, 1).await;
        cache.close();
        let r = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("answered at once, not at the store's pace")
            .unwrap();
        assert_eq!(code_of(&r), ErrorCode::Closed);
        assert_eq!(cache.stats().in_flight, 0);
    }

    #[tokio::test]
    async fn sync_lists_removals_once_and_says_which_stamp_is_current() {
        let (cache, _) = cache_with(Policy {
            max_entries: 1,
            ..policy()
        });
        let store = Store::new("v");
        let a = cache.fetch("a", Mode::Get, store.start()).await;
        assert!(a.stamp != 0);
        let s0 = cache.sync(0, Some("a"), a.stamp, 0.0);
        assert!(s0.current);
        let b = cache.fetch("b", Mode::Get, store.start()).await;
        let s1 = cache.sync(s0.changes, Some("a"), a.stamp, 0.0);
        assert!(!s1.current, "a was evicted");
        assert_eq!(s1.removed.unwrap(), vec![Box::<str>::from("a")]);
        assert_eq!(s1.evicted, vec![Box::<str>::from("a")]);
        assert!(s1.changes > s0.changes);
        assert_eq!(
            cache.change_cell().get(),
            s1.changes,
            "the shared counter moved too"
        );
        // A refresh replaces b: its old stamp is no longer current, and the change is logged.
        let b2 = cache.fetch("b", Mode::Refresh, store.start()).await;
        let s2 = cache.sync(s1.changes, Some("b"), b.stamp, 0.0);
        assert!(!s2.current);
        assert_eq!(s2.removed.unwrap(), vec![Box::<str>::from("b")]);
        assert!(cache.sync(s2.changes, Some("b"), b2.stamp, 0.0).current);
    }

    #[tokio::test]
    async fn a_long_silence_overflows_the_log_and_the_mirror_starts_over() {
        let (cache, _) = cache_with(Policy {
            max_entries: 1,
            ..policy()
        });
        let store = Store::new("v");
        for i in 0..(LOG_CAP + 10) {
            cache
                .fetch(&format!("k{i}"), Mode::Get, store.start())
                .await;
        }
        assert!(cache.sync(0, None, 0, 0.0).removed.is_none());
    }

    #[tokio::test]
    async fn the_timer_wakes_at_the_earliest_answer_the_mirror_holds() {
        let (cache, clock) = cache_with(policy());
        let store = Store::new("v");
        let t0 = clock.now();
        let a = cache.fetch("a", Mode::Get, store.start()).await;
        // The mirror holds nothing yet and says so; with `a` current, the wake is a's time.
        let s = cache.sync(0, Some("a"), a.stamp, 0.0);
        assert!(s.current);
        assert_eq!(
            cache.wake_at(),
            Some(((t0 + 100.0) * 1000.0).ceil() / 1000.0)
        );
        // The mirror's own earliest time, when earlier, wins.
        cache.sync(s.changes, None, 0, (t0 + 50.0) * 1000.0);
        assert_eq!(cache.wake_at(), Some(t0 + 50.0));
        assert!(!cache.wake_if_due(), "not yet");
        let before = cache.change_cell().get();
        clock.advance(60.0);
        assert!(cache.wake_if_due());
        assert_eq!(cache.change_cell().get(), before + 1, "the counter moved");
        assert_eq!(cache.wake_at(), None);
        // Past its mirror time, an entry is no longer current for the mirror.
        clock.advance(50.0);
        assert!(!cache.sync(0, Some("a"), a.stamp, 0.0).current);
    }

    #[tokio::test]
    async fn adaptive_refresh_doubles_while_the_version_stays_and_resets_on_a_change() {
        let (cache, clock) = cache_with(Policy {
            refresh_after: 100.0,
            max_refresh_after: 700.0,
            max_age: 100_000.0,
            ..policy()
        });
        let store = Store::new("v1");
        let first = cache.fetch("k", Mode::Get, store.start()).await;
        assert_eq!(first.changed, None, "nothing was replaced");
        let interval = |cache: &Cache| {
            let g = cache.lock();
            let e = g.entries.peek("k").unwrap();
            e.refresh_at - clock.now()
        };
        assert_eq!(interval(&cache), 100.0);
        // Unchanged refreshes: 200, 400, then the cap, 700, and it stays there; once doubled,
        // the jitter is [½, 1) of the interval (¾ with this test's fixed jitter).
        for expected in [150.0, 300.0, 525.0, 525.0] {
            clock.advance(interval(&cache));
            let r = cache.fetch("k", Mode::Background, store.start()).await;
            assert_eq!(r.changed, Some(false));
            assert_eq!(interval(&cache), expected);
        }
        // A rotation: the change is reported and the interval starts over.
        store.set(Ok("v2"));
        let r = cache.fetch("k", Mode::Refresh, store.start()).await;
        assert_eq!(r.changed, Some(true));
        assert_eq!(interval(&cache), 100.0);
        // The staleness bound: a rotation is picked up within max_refresh_after (plus jitter).
        assert!(
            Policy {
                refresh_after: 100.0,
                max_refresh_after: 700.0,
                ..policy()
            }
            .interval(60)
                <= 700.0
        );
    }

    #[test]
    fn entries_stay_small() {
        // Memory per entry is a target (bench (d)); this guards the layout it relies on.
        assert_eq!(std::mem::size_of::<Entry>(), 56);
    }

    #[test]
    fn composite_keys_split_back() {
        assert_eq!(compose_key(None, "k"), "k");
        let c = compose_key(Some("https://a/"), "k");
        assert_eq!(secret_key_of(&c), "k");
        assert_ne!(
            compose_key(Some("https://a/"), "k"),
            compose_key(Some("https://b/"), "k")
        );
        assert_ne!(compose_key(None, "Alpha"), compose_key(None, "alpha"));
    }
}

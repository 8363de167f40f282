//! The napi surface only: one class the JS layer wraps, argument conversion, and replies as
//! plain data (a code and a message, never an Error object: those are made in the caller's
//! realm by `index.js`). Everything else lives in pure-Rust modules with their own tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cache;
pub mod config;
pub mod error;
pub mod hosts;
pub mod http;
pub mod identity;
pub mod manager;
pub mod secret;
pub mod source;
pub mod time;
pub mod trace;

use cache::{Answer, Event, Mode};
use config::Config;
use error::ErrorCode;
use manager::Manager;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One answer, as data. `code` is set on failure (then `value` is absent).
#[napi(object)]
pub struct NativeReply {
    pub value: Option<String>,
    pub id: Option<String>,
    /// Unix seconds until which the value may be used.
    pub expires_on: f64,
    pub code: Option<String>,
    pub message: Option<String>,
    pub status: Option<u32>,
    /// 'hit' | 'miss' | 'stale' | 'refresh' | 'error'
    pub event: String,
    /// On a stale answer: the error that made it stale.
    pub stale_code: Option<String>,
    /// Until when (unix milliseconds) this answer may be reused without asking again; 0: never.
    pub fresh_until_ms: f64,
    /// The stamp of the cache entry behind this answer (0: none); see `sync`.
    pub stamp: f64,
    pub duration_ms: Option<f64>,
    /// On a refresh: whether the value differs from the one it replaced.
    pub changed: Option<bool>,
    /// Key Vault's version, when known.
    pub version: Option<String>,
    /// The cache key this is the answer of (the canonical form of the key, with the url where
    /// the source uses it); absent when the cache was not asked. The JS mirror keeps an answer
    /// only under the key it was asked with, and only when that key is this one.
    pub cache_key: Option<String>,
    /// On a failure: the store's request id, when it gave one.
    pub request_id: Option<String>,
    /// Key Vault: the host of the vault this answer (or failure) is from, and its index.
    pub vault: Option<String>,
    pub vault_index: Option<u32>,
    /// On a stale answer: how long past its expiry the value is (seconds).
    pub stale_age_seconds: Option<f64>,
    /// The upstream requests made for this caller (none for a hit or a joined flight).
    pub upstream: Vec<NativeUpstream>,
}

/// One upstream HTTP request (its retries included), for telemetry: names, hosts, statuses,
/// ids and codes only.
#[napi(object)]
pub struct NativeUpstream {
    /// 'secret' | 'token' | 'challenge'
    pub operation: String,
    pub host: String,
    pub vault_index: Option<u32>,
    pub status: Option<u32>,
    pub started_ms: f64,
    pub duration_ms: f64,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    /// 'success' | 'http_error' | 'throttled' | 'timeout' | 'connection_error' | 'bad_response'
    pub outcome: String,
    pub error_type: Option<String>,
    pub retries: Vec<NativeRetry>,
}

#[napi(object)]
pub struct NativeRetry {
    pub status: Option<u32>,
    pub error_type: String,
    pub wait_ms: f64,
    pub at_ms: f64,
}

fn native_upstream(records: Vec<trace::UpstreamRecord>) -> Vec<NativeUpstream> {
    records
        .into_iter()
        .map(|r| NativeUpstream {
            operation: r.operation.as_str().to_owned(),
            host: r.host,
            vault_index: r.vault_index.map(u32::from),
            status: r.status.map(u32::from),
            started_ms: r.started_ms,
            duration_ms: r.duration_ms,
            request_id: r.request_id,
            client_request_id: r.client_request_id,
            outcome: r.outcome.to_owned(),
            error_type: r.error_type.map(str::to_owned),
            retries: r
                .retries
                .into_iter()
                .map(|x| NativeRetry {
                    status: x.status.map(u32::from),
                    error_type: x.error_type.to_owned(),
                    wait_ms: x.wait_ms,
                    at_ms: x.at_ms,
                })
                .collect(),
        })
        .collect()
}

/// Push invalidation's targets: the cache keys to refresh, or why the call was refused.
#[napi(object)]
pub struct NativeChanged {
    pub keys: Vec<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What the JS mirror needs to follow the cache (see `Cache::sync`).
#[napi(object)]
pub struct NativeSync {
    /// The change number now seen.
    pub changes: f64,
    /// Cache keys removed or replaced since; absent: forget everything.
    pub removed: Option<Vec<String>>,
    /// Those of them evicted for size.
    pub evicted: Vec<String>,
    /// Whether the entry asked about is still the cache's.
    pub current: bool,
    /// What background refreshes found since the last sync.
    pub events: Vec<NativeEvent>,
}

#[napi(object)]
pub struct NativeEvent {
    /// The secret key (not the cache key).
    pub key: String,
    pub code: Option<String>,
    pub duration_ms: f64,
    pub changed: Option<bool>,
    pub version: Option<String>,
    /// When it ended (unix ms).
    pub ended_ms: f64,
    pub request_id: Option<String>,
    pub vault: Option<String>,
    pub vault_index: Option<u32>,
    pub upstream: Vec<NativeUpstream>,
}

#[napi(object)]
pub struct NativeStats {
    pub entries: f64,
    pub hits: f64,
    pub misses: f64,
    pub stale_served: f64,
    pub upstream_requests: f64,
    pub upstream_errors: f64,
    pub in_flight: f64,
}

/// What `doctor` shows: the resolved configuration, with no secret in it.
#[napi(object)]
pub struct NativeDescription {
    pub source: String,
    pub reason: String,
    pub configured: bool,
    pub secrets_files: Vec<String>,
    pub secrets_file_in_use: Option<String>,
    pub watch: bool,
    pub oun: String,
    pub oun_origin: String,
    pub allowed_hosts: Vec<String>,
    /// Where each of `allowed_hosts` comes from (same order).
    pub allowed_host_origins: Vec<String>,
    pub allow_insecure_loopback: bool,
    pub allow_insecure_loopback_origin: String,
    /// The identity setting ('auto', ...) and the provider it resolved to.
    pub identity: String,
    pub identity_provider: Option<String>,
    pub vault_urls: Vec<String>,
    pub timeout_ms: f64,
    pub cache_enabled: bool,
}

/// Whether a token can be had (for `doctor`); never the token.
#[napi(object)]
pub struct NativeTokenCheck {
    pub ok: bool,
    pub code: Option<String>,
    pub message: String,
}

#[napi(object)]
pub struct NativeKeys {
    pub keys: Vec<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Test hooks of the memory source (not part of the public API).
#[napi(object)]
pub struct TestControl {
    pub key: Option<String>,
    pub value: Option<String>,
    pub remove: Option<bool>,
    /// An error code the key should fail with; '' clears it.
    pub fault: Option<String>,
    pub delay_ms: Option<f64>,
    /// Move the cache's clock forward by this many milliseconds (the JS side moves Date).
    pub advance_ms: Option<f64>,
}

fn event_name(e: Event) -> &'static str {
    match e {
        Event::Hit => "hit",
        Event::Miss => "miss",
        Event::Stale => "stale",
        Event::Refresh => "refresh",
        Event::Error => "error",
    }
}

fn to_native(keyed: manager::Keyed, clock: &dyn time::Clock) -> NativeReply {
    let r = keyed.reply;
    let upstream = keyed.upstream;
    let stale_age_seconds = match (&r.answer, r.event) {
        (Answer::Value { expires_at, .. }, Event::Stale) => {
            Some((clock.now() - expires_at).max(0.0))
        }
        _ => None,
    };
    let request_id = match &r.answer {
        Answer::Error(e) => e.request_id.clone(),
        Answer::Value { .. } => None,
    };
    let (value, id, expires_on, code, message, status, event) = match &r.answer {
        Answer::Value { secret, expires_at } => (
            Some(secret.value.expose().to_owned()),
            secret.id.as_deref().map(String::from),
            expires_at.floor(),
            None,
            None,
            None,
            event_name(r.event),
        ),
        Answer::Error(e) => (
            None,
            None,
            r.error_expires_on,
            Some(e.code.as_str().to_owned()),
            Some(e.message.clone()),
            e.status.map(u32::from),
            "error",
        ),
    };
    NativeReply {
        value,
        id,
        expires_on,
        code,
        message,
        status,
        event: event.to_owned(),
        stale_code: r.code.map(|c| c.as_str().to_owned()),
        fresh_until_ms: (r.fresh_until * 1000.0).floor(),
        stamp: r.stamp as f64,
        duration_ms: None,
        changed: r.changed,
        version: match &r.answer {
            Answer::Value { secret, .. } => {
                manager::version_of(secret.id.as_deref()).map(String::from)
            }
            Answer::Error(_) => None,
        },
        cache_key: keyed.cache_key,
        request_id,
        vault: upstream.vault,
        vault_index: upstream.vault_index.map(u32::from),
        stale_age_seconds,
        upstream: native_upstream(upstream.records),
    }
}

#[napi]
pub struct NativeManager {
    inner: Arc<Manager>,
    counter_taken: AtomicBool,
}

#[napi]
impl NativeManager {
    /// `options` is the user's options object less `onEvent`; `env` the environment; `cwd`
    /// the working directory. A misuse throws with a message naming the option.
    #[napi(constructor)]
    pub fn new(
        options: serde_json::Value,
        env: HashMap<String, String>,
        cwd: String,
    ) -> Result<Self> {
        let config = Config::from_parts(&options, &env, &PathBuf::from(cwd))
            .map_err(|m| Error::new(Status::InvalidArg, m))?;
        Ok(NativeManager {
            inner: Arc::new(Manager::new(config)),
            counter_taken: AtomicBool::new(false),
        })
    }

    #[napi(getter)]
    pub fn source(&self) -> String {
        self.inner.source.kind().as_str().to_owned()
    }

    /// The cache's change counter as a one-element Float64Array over the cache's own memory:
    /// the JS mirror reads it before every hit and syncs when it moved (see `sync`). Once per
    /// manager.
    #[napi]
    pub fn change_counter(&self, env: &Env) -> Result<Float64ArraySlice<'_>> {
        if self.counter_taken.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                Status::GenericFailure,
                "the change counter was already taken",
            ));
        }
        let cell = self.inner.cache.change_cell();
        let ptr = cell.0.as_ptr() as *mut f64;
        // SAFETY: `ptr` points at the AtomicU64 inside `cell`, kept alive by the clone handed
        // to the finalizer until the engine drops the buffer. Rust writes it only atomically
        // (under the cache lock); JS only reads it.
        unsafe { Float64ArraySlice::from_external(env, ptr, 1, cell, |_, cell| drop(cell)) }
    }

    /// Moves the change counter and returns it: the JS layer checks that its Float64Array sees
    /// it (a runtime that copies external buffers would not), else it keeps no mirror.
    #[napi]
    pub fn probe_counter(&self) -> f64 {
        self.inner.cache.bump() as f64
    }

    /// Bring the JS mirror up to date (see `Cache::sync`): keys removed or replaced since change
    /// `seen`, whether `cacheKey`'s entry with `stamp` is still current, background events.
    #[napi]
    pub fn sync(
        &self,
        seen: f64,
        cache_key: Option<String>,
        stamp: f64,
        wake_ms: f64,
    ) -> NativeSync {
        let s = self
            .inner
            .sync(seen as u64, cache_key.as_deref(), stamp as u64, wake_ms);
        NativeSync {
            changes: s.changes as f64,
            removed: s.removed.map(|r| r.into_iter().map(String::from).collect()),
            evicted: s.evicted.into_iter().map(String::from).collect(),
            current: s.current,
            events: s
                .events
                .into_iter()
                .map(|e| NativeEvent {
                    key: e.key.into(),
                    code: e.code.map(|c| c.as_str().to_owned()),
                    duration_ms: e.duration_ms,
                    changed: e.changed,
                    version: e.version.map(String::from),
                    ended_ms: e.ended_ms,
                    request_id: e.request_id,
                    vault: e.upstream.vault,
                    vault_index: e.upstream.vault_index.map(u32::from),
                    upstream: native_upstream(e.upstream.records),
                })
                .collect(),
        }
    }

    /// The synchronous path: an answer now (a cache hit, an in-process source, a bad
    /// argument, closed), or null when the caller must `fetch`. A hit that finds
    /// refresh-ahead due has started it in the background.
    #[napi]
    pub fn lookup(&self, key: String, url: String) -> Option<NativeReply> {
        self.inner
            .lookup(&key, &url)
            .map(|k| to_native(k, &*self.inner.clock))
    }

    /// Whether the url is part of the cache key (`url NUL key`).
    #[napi(getter)]
    pub fn keyed_by_url(&self) -> bool {
        self.inner.source.keyed_by_url()
    }

    /// Go upstream through the single flight (`refresh`: a new flight even when cached).
    /// `touched`: cache keys the JS mirror answered since the last call, for the LRU order.
    /// `traceparent`: the caller's span (W3C), sent upstream when well-formed (trace.rs).
    #[napi(ts_return_type = "Promise<NativeReply>")]
    pub fn fetch<'env>(
        &self,
        env: &'env Env,
        key: String,
        url: String,
        refresh: bool,
        touched: Vec<String>,
        traceparent: Option<String>,
    ) -> Result<PromiseRaw<'env, NativeReply>> {
        let inner = self.inner.clone();
        let mode = if refresh { Mode::Refresh } else { Mode::Get };
        env.spawn_future(async move {
            let started = Instant::now();
            inner.cache.touch(&touched);
            let keyed = inner.clone().fetch(key, url, mode, traceparent).await;
            let mut out = to_native(keyed, &*inner.clock);
            out.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            Ok(out)
        })
    }

    #[napi]
    pub fn invalidate(&self, key: Option<String>) {
        self.inner.invalidate(key.as_deref());
    }

    /// Push invalidation (`secretChanged`): the cache keys a change of (`vault`, `name`) makes
    /// stale and the cache holds; or a refusal (nothing is sent either way).
    #[napi]
    pub fn changed_keys(&self, vault: String, name: String) -> NativeChanged {
        match self.inner.changed_keys(&vault, &name) {
            Ok(keys) => NativeChanged {
                keys,
                code: None,
                message: None,
            },
            Err(e) => NativeChanged {
                keys: Vec::new(),
                code: Some(e.code.as_str().to_owned()),
                message: Some(e.message),
            },
        }
    }

    #[napi]
    pub fn stats(&self) -> NativeStats {
        let s = self.inner.cache.stats();
        NativeStats {
            entries: s.entries as f64,
            hits: s.hits as f64,
            misses: s.misses as f64,
            stale_served: s.stale_served as f64,
            upstream_requests: s.upstream_requests as f64,
            upstream_errors: s.upstream_errors as f64,
            in_flight: s.in_flight as f64,
        }
    }

    /// Wipes cached values and cancels every request in flight (their callers answer CLOSED
    /// at once); every later call answers CLOSED.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    #[napi]
    pub fn describe(&self) -> NativeDescription {
        let c = &self.inner.config;
        let policy =
            hosts::HostPolicy::new(c.token_store(), &c.allowed_hosts, c.allow_insecure_loopback);
        NativeDescription {
            source: c.source.as_str().to_owned(),
            reason: c.reason.clone(),
            configured: c.not_configured.is_none(),
            secrets_files: c
                .secrets_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            secrets_file_in_use: self
                .inner
                .local
                .as_ref()
                .and_then(|l| l.path_in_use())
                .map(|p| p.display().to_string()),
            watch: c.watch,
            oun: c.oun.clone(),
            oun_origin: c.oun_origin.to_owned(),
            allowed_hosts: policy.hosts().iter().map(|h| h.pattern.clone()).collect(),
            allowed_host_origins: policy.hosts().iter().map(|h| h.origin.clone()).collect(),
            allow_insecure_loopback: c.allow_insecure_loopback,
            allow_insecure_loopback_origin: c.allow_insecure_loopback_origin.to_owned(),
            identity: c.identity.choice.clone(),
            identity_provider: self.inner.remote.as_ref().map(|r| r.tokens.describe()),
            vault_urls: c.vault_urls.clone(),
            timeout_ms: c.timeout_ms,
            cache_enabled: c.policy.enabled,
        }
    }

    /// Whether a token for the remote source can be had now (for `doctor`); never the token.
    #[napi(ts_return_type = "Promise<NativeTokenCheck>")]
    pub fn check_token<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeTokenCheck>> {
        let inner = self.inner.clone();
        env.spawn_future(async move {
            let deadline = time::after(inner.timeout);
            let Some(probe) = inner.source.clone().probe(deadline) else {
                return Ok(NativeTokenCheck {
                    ok: false,
                    code: None,
                    message: "this source uses no token".into(),
                });
            };
            Ok(match probe.await {
                Ok(message) => NativeTokenCheck {
                    ok: true,
                    code: None,
                    message,
                },
                Err(e) => NativeTokenCheck {
                    ok: false,
                    code: Some(e.code.as_str().to_owned()),
                    message: e.message,
                },
            })
        })
    }

    /// Token requests made so far by the remote source (tests count them).
    #[napi]
    pub fn token_requests(&self) -> f64 {
        self.inner
            .remote
            .as_ref()
            .map(|r| r.tokens.requests() as f64)
            .unwrap_or(0.0)
    }

    /// Every key of the local secrets file (for `validate`); names only.
    #[napi]
    pub fn local_keys(&self) -> NativeKeys {
        match &self.inner.local {
            None => NativeKeys {
                keys: Vec::new(),
                code: Some(ErrorCode::InvalidArgument.as_str().to_owned()),
                message: Some(format!(
                    "the {} source cannot list its keys; name them",
                    self.inner.source.kind().as_str()
                )),
            },
            Some(l) => match l.keys() {
                Ok(keys) => NativeKeys {
                    keys,
                    code: None,
                    message: None,
                },
                Err(e) => NativeKeys {
                    keys: Vec::new(),
                    code: Some(e.code.as_str().to_owned()),
                    message: Some(e.message),
                },
            },
        }
    }
}

/// Test hooks of the memory source (not part of the public API, and not a method of the
/// production class): set or remove values, inject faults and delays. Returns how many reads
/// reached the store.
#[napi]
pub fn test_control(manager: &NativeManager, control: TestControl) -> Result<f64> {
    let this = manager;
    if let Some(ms) = control.advance_ms.filter(|ms| ms.is_finite()) {
        this.inner.clock.advance_ms(ms.clamp(-1e12, 1e12) as i64);
        this.inner.cache.wake_if_due();
        if this.inner.memory.is_none() {
            return Ok(0.0);
        }
    }

    let m = this
        .inner
        .memory
        .as_ref()
        .ok_or_else(|| Error::new(Status::InvalidArg, "test hooks need the memory source"))?;
    if let Some(key) = &control.key {
        if control.remove == Some(true) {
            m.set_value(key, None);
        } else if let Some(v) = control.value {
            m.set_value(key, Some(v));
        }
        if let Some(f) = &control.fault {
            let code =
                match f.as_str() {
                    "" => None,
                    s => Some(ErrorCode::parse(s).ok_or_else(|| {
                        Error::new(Status::InvalidArg, format!("unknown code {s}"))
                    })?),
                };
            m.set_fault(key, code);
        }
    }
    if let Some(ms) = control.delay_ms {
        m.set_delay(time::millis(ms).filter(|d| !d.is_zero()));
    }
    Ok(m.reads() as f64)
}

/// Benchmark anchor: an awaited no-op `async fn` across napi (a thread hand-off and back),
/// what a cache hit would cost if it went through the runtime.
#[napi]
pub async fn noop_async() -> u32 {
    0
}

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
pub mod http;
pub mod identity;
pub mod secret;
pub mod source;
pub mod time;

use cache::{compose_key, Answer, Cache, Event, Mode};
use config::{Config, SourceKind};
use error::{ErrorCode, SecretError};
use http::{HostPolicy, Http};
use identity::TokenCache;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use secret::Secret;
use source::key_vault::{KeyVaultSource, Vault};
use source::local::LocalSource;
use source::memory::MemorySource;
use source::retail_server::{self as retail, RetailServerSource};
use source::{validate_key, Source, Unconfigured};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The caller should start a background refresh of this key.
    pub refresh: bool,
    /// Until when (unix milliseconds) this answer may be reused without asking again; 0: never.
    pub fresh_until_ms: f64,
    pub duration_ms: Option<f64>,
    /// Cache keys evicted for size since the last reply that carried evictions.
    pub evicted: Option<Vec<String>>,
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
    pub allow_insecure_loopback: bool,
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
}

struct Manager {
    config: Config,
    source: Arc<dyn Source>,
    cache: Arc<Cache>,
    timeout: Duration,
    closed: AtomicBool,
    local: Option<Arc<LocalSource>>,
    memory: Option<Arc<MemorySource>>,
    /// The HTTP layer and token cache of the remote sources.
    remote: Option<(Arc<Http>, Arc<TokenCache>)>,
}

fn error_reply(err: &SecretError, expires_on: f64) -> NativeReply {
    NativeReply {
        value: None,
        id: None,
        expires_on,
        code: Some(err.code.as_str().to_owned()),
        message: Some(err.message.clone()),
        status: err.status.map(u32::from),
        event: "error".to_owned(),
        stale_code: None,
        refresh: false,
        fresh_until_ms: 0.0,
        duration_ms: None,
        evicted: None,
    }
}

fn value_reply(secret: &Secret, expires_on: f64, event: &str) -> NativeReply {
    NativeReply {
        value: Some(secret.value.expose().to_owned()),
        id: secret.id.as_deref().map(String::from),
        expires_on,
        code: None,
        message: None,
        status: None,
        event: event.to_owned(),
        stale_code: None,
        refresh: false,
        fresh_until_ms: 0.0,
        duration_ms: None,
        evicted: None,
    }
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

fn cache_reply(r: cache::Reply) -> NativeReply {
    let mut out = match &r.answer {
        Answer::Value { secret, expires_at } => {
            value_reply(secret, expires_at.floor(), event_name(r.event))
        }
        Answer::Error(e) => error_reply(e, 0.0),
    };
    out.refresh = r.refresh;
    out.fresh_until_ms = (r.fresh_until * 1000.0).floor();
    out.stale_code = r.code.map(|c| c.as_str().to_owned());
    out
}

/// Sources read in-process (local) keep the platform's `expiresOn: 1`: not for callers to cache.
const LOCAL_EXPIRES_ON: f64 = 1.0;

impl Manager {
    fn new(mut config: Config) -> Manager {
        let mut local = None;
        let mut memory = None;
        let mut remote = None;
        let source: Arc<dyn Source> = match (&config.not_configured, config.source) {
            (Some(reason), kind) => Arc::new(Unconfigured {
                kind,
                reason: reason.clone(),
            }),
            (None, SourceKind::Local) => {
                let l = Arc::new(LocalSource::new(config.secrets_files.clone(), config.watch));
                local = Some(l.clone());
                l
            }
            (None, SourceKind::Memory) => {
                let m = Arc::new(MemorySource::new(std::mem::take(&mut config.secrets)));
                memory = Some(m.clone());
                m
            }
            (None, SourceKind::RetailServer) => {
                let http = Arc::new(Http::new(HostPolicy::new(
                    &config.allowed_hosts,
                    config.allow_insecure_loopback,
                )));
                let tokens = Arc::new(TokenCache::new(identity::provider_from(&config.identity)));
                remote = Some((http.clone(), tokens.clone()));
                Arc::new(RetailServerSource {
                    http,
                    tokens,
                    oun: config.oun.clone(),
                    version_problem: retail::version_problem(
                        config.retail_server_version.as_deref(),
                    ),
                })
            }
            (None, SourceKind::KeyVault) if config.vault_urls.is_empty() => {
                Arc::new(Unconfigured {
                    kind: SourceKind::KeyVault,
                    reason: "no vault: set the vaultUrls option or COMMERCE_SECRETS_VAULT_URLS"
                        .into(),
                })
            }
            (None, SourceKind::KeyVault) => {
                let http = Arc::new(Http::new(HostPolicy::new(
                    &config.allowed_hosts,
                    config.allow_insecure_loopback,
                )));
                let tokens = Arc::new(TokenCache::new(identity::provider_from(&config.identity)));
                remote = Some((http.clone(), tokens.clone()));
                // The urls were checked by the configuration; one that will not parse is skipped.
                let vaults = config
                    .vault_urls
                    .iter()
                    .filter_map(|u| url::Url::parse(u).ok())
                    .map(Vault::new)
                    .collect();
                Arc::new(KeyVaultSource {
                    http,
                    tokens,
                    vaults,
                })
            }
        };
        let timeout = time::millis(config.timeout_ms).unwrap_or(Duration::from_secs(10));
        Manager {
            cache: Arc::new(Cache::new(config.policy.clone())),
            config,
            source,
            timeout,
            closed: AtomicBool::new(false),
            local,
            memory,
            remote,
        }
    }

    fn closed_reply(key: &str) -> NativeReply {
        error_reply(
            &SecretError::new(
                ErrorCode::Closed,
                format!("secret '{key}': the secret manager was closed"),
            ),
            0.0,
        )
    }

    /// Bad argument, closed, or an in-process source: answered without the cache.
    fn answer_now(&self, key: &str) -> Option<NativeReply> {
        if let Err(e) = validate_key(key) {
            return Some(error_reply(&e, 0.0));
        }
        if self.closed.load(Ordering::Acquire) {
            return Some(Manager::closed_reply(key));
        }
        if let Err(e) = self.source.check_key(key) {
            return Some(error_reply(&e, 0.0));
        }
        let result = self.source.read_now(key)?;
        let expires_on = if self.source.kind() == SourceKind::Local {
            LOCAL_EXPIRES_ON
        } else {
            0.0
        };
        Some(match result {
            Ok(secret) => value_reply(&secret, expires_on, "hit"),
            Err(e) => error_reply(&e, expires_on),
        })
    }

    fn lookup(&self, key: &str, url: &str) -> Option<NativeReply> {
        if let Some(reply) = self.answer_now(key) {
            return Some(reply);
        }
        let ck = compose_key(self.source.keyed_by_url().then_some(url), key);
        self.cache.lookup(&ck).map(cache_reply)
    }

    async fn fetch(
        self: Arc<Self>,
        key: String,
        url: String,
        mode: Mode,
        touched: Vec<String>,
    ) -> NativeReply {
        let started = Instant::now();
        self.cache.touch(&touched);
        if let Some(reply) = self.answer_now(&key) {
            return reply;
        }
        let ck = compose_key(self.source.keyed_by_url().then_some(url.as_str()), &key).into_owned();
        let (source, timeout, kind) = (self.source.clone(), self.timeout, self.source.kind());
        let timeout_ms = self.config.timeout_ms;
        let reply = self
            .cache
            .fetch(&ck, mode, move || {
                let k = key.clone();
                Box::pin(async move {
                    let deadline = time::after(timeout);
                    match tokio::time::timeout_at(deadline, source.fetch(key, url, deadline)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(SecretError::new(
                            ErrorCode::Timeout,
                            format!(
                                "secret '{k}': no answer from the {} source within {timeout_ms} ms",
                                kind.as_str()
                            ),
                        )),
                    }
                })
            })
            .await;
        let mut out = cache_reply(reply);
        out.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let evicted = self.cache.take_evicted();
        if !evicted.is_empty() {
            out.evicted = Some(evicted);
        }
        out
    }
}

#[napi]
pub struct NativeManager {
    inner: Arc<Manager>,
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
        })
    }

    #[napi(getter)]
    pub fn source(&self) -> String {
        self.inner.source.kind().as_str().to_owned()
    }

    /// The synchronous path: an answer now (a cache hit, an in-process source, a bad
    /// argument, closed), or null when the caller must `fetch`.
    #[napi]
    pub fn lookup(&self, key: String, url: String) -> Option<NativeReply> {
        self.inner.lookup(&key, &url)
    }

    /// Whether the url is part of the cache key (see `cacheKey`).
    #[napi(getter)]
    pub fn keyed_by_url(&self) -> bool {
        self.inner.source.keyed_by_url()
    }

    /// Go upstream through the single flight (`refresh`: even when cached). `touched`: cache
    /// keys the JS mirror answered since the last call, to keep the LRU order true.
    #[napi(ts_return_type = "Promise<NativeReply>")]
    pub fn fetch<'env>(
        &self,
        env: &'env Env,
        key: String,
        url: String,
        refresh: bool,
        touched: Vec<String>,
    ) -> Result<PromiseRaw<'env, NativeReply>> {
        let inner = self.inner.clone();
        let mode = if refresh { Mode::Refresh } else { Mode::Get };
        env.spawn_future(async move { Ok(inner.fetch(key, url, mode, touched).await) })
    }

    #[napi]
    pub fn invalidate(&self, key: Option<String>) {
        self.inner.cache.invalidate(key.as_deref());
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

    /// Wipes cached values; every later call answers CLOSED.
    #[napi]
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.cache.close();
    }

    #[napi]
    pub fn describe(&self) -> NativeDescription {
        let c = &self.inner.config;
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
            allowed_hosts: config::DEFAULT_TOKEN_HOSTS
                .iter()
                .map(|h| h.to_string())
                .chain(c.allowed_hosts.iter().cloned())
                .collect(),
            allow_insecure_loopback: c.allow_insecure_loopback,
            identity: c.identity.choice.clone(),
            identity_provider: self.inner.remote.as_ref().map(|(_, t)| t.describe()),
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
            .map(|(_, t)| t.requests() as f64)
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

    /// Test hooks of the memory source; returns how many reads reached it.
    #[napi]
    pub fn test_control(&self, control: TestControl) -> Result<f64> {
        let m =
            self.inner.memory.as_ref().ok_or_else(|| {
                Error::new(Status::InvalidArg, "test hooks need the memory source")
            })?;
        if let Some(key) = &control.key {
            if control.remove == Some(true) {
                m.set_value(key, None);
            } else if let Some(v) = control.value {
                m.set_value(key, Some(v));
            }
            if let Some(f) = &control.fault {
                let code = match f.as_str() {
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
}

/// Benchmark anchor: an awaited no-op `async fn` across napi (a thread hand-off and back),
/// what a cache hit would cost if it went through the runtime.
#[napi]
pub async fn noop_async() -> u32 {
    0
}

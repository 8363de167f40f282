//! One secret manager: the configured source behind the cache, the deadline of each call,
//! refresh-ahead in the background, and close. Pure Rust (no napi types): `lib.rs` converts.

use crate::cache::{compose_key, secret_key_of, Answer, BackgroundEvent, Cache, Mode, Reply};
use crate::config::{Config, SourceKind};
use crate::error::{ErrorCode, SecretError};
use crate::hosts::HostPolicy;
use crate::http::Http;
use crate::identity::{self, TokenCache};
use crate::source::key_vault::{KeyVaultSource, Vault};
use crate::source::local::LocalSource;
use crate::source::memory::MemorySource;
use crate::source::retail_server::{self as retail, RetailServerSource};
use crate::source::{validate_key, Source, Unconfigured};
use crate::time;
use crate::trace::{FlightTrace, Upstream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a remote source (Retail Server, Key Vault) talks through.
pub struct Remote {
    pub http: Arc<Http>,
    pub tokens: Arc<TokenCache>,
}

/// An answer, and the cache key it is the answer of (`None`: the cache was not asked).
pub struct Keyed {
    pub reply: Reply,
    pub cache_key: Option<String>,
    /// What the upstream requests made for this caller were (none for a hit or a joined
    /// flight): for telemetry (trace.rs).
    pub upstream: Upstream,
}

pub struct Manager {
    pub config: Config,
    pub source: Arc<dyn Source>,
    pub cache: Arc<Cache>,
    /// The cache's clock: the system clock, which tests may move forward (`testControl`).
    pub clock: Arc<crate::time::OffsetClock>,
    pub timeout: Duration,
    closed: AtomicBool,
    timer_started: AtomicBool,
    pub local: Option<Arc<LocalSource>>,
    pub key_vault: Option<Arc<KeyVaultSource>>,
    pub memory: Option<Arc<MemorySource>>,
    /// The HTTP layer and token cache of the remote sources.
    pub remote: Option<Remote>,
}

/// The mirror's clock, so that its hit path needs none: sleeps until the next scheduled drop
/// (`Cache::schedule`) and logs it as a change, which the mirror sees on its next call. A tokio
/// task: Node does not wait for it. Ends when the cache is gone or closed.
async fn mirror_timer(cache: std::sync::Weak<Cache>) {
    loop {
        let Some(c) = cache.upgrade() else { return };
        if c.is_closed() {
            return;
        }
        c.wake_if_due();
        let now = c.clock_ref().now();
        let wait = match c.wake_at() {
            Some(at) => time::secs((at - now).max(0.0))
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(60)),
            None => Duration::from_secs(60),
        };
        // A sync that set an earlier time since `wake_at` left a permit in `wake`.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = c.wake.notified() => {}
        }
    }
}

/// Key Vault's version: the last segment of a secret id (`…/secrets/<name>/<version>`).
pub fn version_of(id: Option<&str>) -> Option<Box<str>> {
    let id = id?;
    let mut parts = id.trim_end_matches('/').rsplit('/');
    let version = parts.next()?;
    let name = parts.next()?;
    (parts.next() == Some("secrets") && !name.is_empty() && !version.is_empty())
        .then(|| version.into())
}

/// Sources read in-process (local) keep the platform's `expiresOn: 1`: not for callers to cache.
const LOCAL_EXPIRES_ON: f64 = 1.0;

impl Manager {
    pub fn new(mut config: Config) -> Manager {
        let mut local = None;
        let mut memory = None;
        let mut remote = None;
        let mut key_vault = None;
        let remote_parts = |config: &Config| {
            let http = Arc::new(Http::new(HostPolicy::new(
                config.token_store(),
                &config.allowed_hosts,
                config.allow_insecure_loopback,
            )));
            let tokens = Arc::new(TokenCache::new(identity::provider_from(&config.identity)));
            (http, tokens)
        };
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
                let (http, tokens) = remote_parts(&config);
                remote = Some(Remote {
                    http: http.clone(),
                    tokens: tokens.clone(),
                });
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
                let (http, tokens) = remote_parts(&config);
                remote = Some(Remote {
                    http: http.clone(),
                    tokens: tokens.clone(),
                });
                // The urls were checked by the configuration; one that will not parse is skipped.
                let vaults = config
                    .vault_urls
                    .iter()
                    .filter_map(|u| url::Url::parse(u).ok())
                    .map(|u| Arc::new(Vault::new(u)))
                    .collect();
                let kv = Arc::new(KeyVaultSource {
                    http,
                    tokens,
                    vaults,
                    authority_host: config.identity.authority_host.clone(),
                    tenant: config.identity.tenant_id.clone(),
                    learnt_tenant: std::sync::Mutex::new(None),
                    referenced: std::sync::Mutex::new(lru::LruCache::new(
                        std::num::NonZeroUsize::new(config.policy.max_entries.max(1))
                            .unwrap_or(std::num::NonZeroUsize::MIN),
                    )),
                });
                key_vault = Some(kv.clone());
                kv
            }
        };
        let timeout = time::millis(config.timeout_ms).unwrap_or(Duration::from_secs(10));
        let clock = Arc::new(crate::time::OffsetClock::default());
        let cache = Arc::new(Cache::with_clock(
            config.policy.clone(),
            clock.clone(),
            Box::new(crate::cache::default_jitter),
        ));
        Manager {
            cache,
            clock,
            config,
            source,
            timeout,
            closed: AtomicBool::new(false),
            timer_started: AtomicBool::new(false),
            local,
            key_vault,
            memory,
            remote,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn closed_error(key: &str) -> SecretError {
        SecretError::new(
            ErrorCode::Closed,
            format!("secret '{key}': the secret manager was closed"),
        )
    }

    /// Bad argument, closed, or an in-process source: answered without the cache (`Err`).
    /// Otherwise the cache key: the canonical form of `key` (`Source::cache_key`), with the
    /// url where the source uses it.
    fn resolve(&self, key: &str, url: &str) -> Result<String, Reply> {
        if let Err(e) = validate_key(key) {
            return Err(Reply::error(e));
        }
        if self.is_closed() {
            return Err(Reply::error(Manager::closed_error(key)));
        }
        let canonical = self.source.cache_key(key).map_err(Reply::error)?;
        if let Some(result) = self.source.read_now(key) {
            let local = self.source.kind() == SourceKind::Local;
            return Err(match result {
                Ok(secret) => {
                    let expires_at = if local { LOCAL_EXPIRES_ON } else { 0.0 };
                    Reply::value(Arc::new(secret), expires_at, crate::cache::Event::Hit)
                }
                Err(e) => {
                    let mut r = Reply::error(e);
                    if local {
                        r.error_expires_on = LOCAL_EXPIRES_ON;
                    }
                    r
                }
            });
        }
        Ok(compose_key(self.source.keyed_by_url().then_some(url), &canonical).into_owned())
    }

    /// The synchronous path (the JS thread): an answer now, or `None` when the caller must
    /// `fetch`; with it, the cache key it is the answer of (none when the cache was not
    /// asked). A hit that finds refresh-ahead due starts the refresh in the background
    /// (a tokio task: it holds nothing that keeps Node's event loop alive).
    pub fn lookup(self: &Arc<Self>, key: &str, url: &str) -> Option<Keyed> {
        let ck = match self.resolve(key, url) {
            Ok(ck) => ck,
            Err(reply) => {
                return Some(Keyed {
                    reply,
                    cache_key: None,
                    upstream: Upstream::default(),
                })
            }
        };
        let mut reply = self.cache.lookup(&ck)?;
        if reply.refresh {
            reply.refresh = false;
            let this = Arc::clone(self);
            let (key, url) = (key.to_owned(), url.to_owned());
            napi::bindgen_prelude::spawn(async move { this.refresh_in_background(key, url).await });
        }
        Some(Keyed {
            reply,
            cache_key: Some(ck),
            upstream: Upstream::default(),
        })
    }

    /// Forget one key (every key that names the same secret, under every url) or everything.
    pub fn invalidate(&self, key: Option<&str>) {
        match key {
            None => self.cache.invalidate(None),
            // A key this source could not have cached has nothing to forget.
            Some(k) => {
                if let Ok(canonical) = self.source.cache_key(k) {
                    self.cache.invalidate(Some(&canonical));
                }
            }
        }
    }

    /// Push invalidation: the cache keys (with their url part, if any) that a change of
    /// (`vault`, `name`) can make stale and that the cache holds now (an entry, or a read
    /// under way). Refused (nothing to refresh) for anything not a vault this manager reads.
    pub fn changed_keys(&self, vault: &str, name: &str) -> Result<Vec<String>, SecretError> {
        if self.is_closed() {
            return Err(Manager::closed_error(name));
        }
        let holds = |k: &str| self.cache.holds(k);
        let candidates = self.source.changed_keys(vault, name, &holds)?;
        Ok(candidates
            .into_iter()
            .filter(|k| self.cache.holds(k))
            .collect())
    }

    async fn refresh_in_background(self: Arc<Self>, key: String, url: String) {
        let started = Instant::now();
        let Keyed {
            reply, upstream, ..
        } = self
            .clone()
            .fetch(key.clone(), url, Mode::Background, None)
            .await;
        let (code, version, request_id) = match &reply.answer {
            Answer::Error(e) => (Some(e.code), None, e.request_id.clone()),
            Answer::Value { secret, .. } => (None, version_of(secret.id.as_deref()), None),
        };
        if code != Some(ErrorCode::Closed) {
            self.cache.record_event(BackgroundEvent {
                key: key.into(),
                code,
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                changed: reply.changed,
                version,
                ended_ms: crate::trace::now_ms(),
                request_id,
                upstream,
            });
        }
    }

    /// Go upstream through the single flight (see `Cache::fetch` for the modes), within the
    /// call's deadline.
    /// `traceparent`: the caller's span (W3C), sent with every request of a flight this call
    /// starts (checked: a malformed one is dropped).
    pub async fn fetch(
        self: Arc<Self>,
        key: String,
        url: String,
        mode: Mode,
        traceparent: Option<String>,
    ) -> Keyed {
        let ck = match self.resolve(&key, &url) {
            Ok(ck) => ck,
            Err(reply) => {
                return Keyed {
                    reply,
                    cache_key: None,
                    upstream: Upstream::default(),
                }
            }
        };
        let trace = FlightTrace::new(traceparent);
        let flight_trace = trace.clone();
        // The source is given the canonical key: every form of it shares this flight.
        let key = secret_key_of(&ck).to_owned();
        let (source, timeout, kind) = (self.source.clone(), self.timeout, self.source.kind());
        let timeout_ms = self.config.timeout_ms;
        let reply = self
            .cache
            .fetch(&ck, mode, move || {
                let k = key.clone();
                Box::pin(crate::trace::scope(flight_trace, async move {
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
                }))
            })
            .await;
        Keyed {
            reply,
            cache_key: Some(ck),
            upstream: trace.take(),
        }
    }

    /// The mirror's sync (see `Cache::sync`); starts the mirror's timer the first time it has
    /// something to wait for.
    pub fn sync(
        &self,
        seen: u64,
        key: Option<&str>,
        stamp: u64,
        wake_ms: f64,
    ) -> crate::cache::MirrorSync {
        let s = self.cache.sync(seen, key, stamp, wake_ms);
        if self.cache.wake_at().is_some() && !self.timer_started.swap(true, Ordering::AcqRel) {
            napi::bindgen_prelude::spawn(mirror_timer(Arc::downgrade(&self.cache)));
        }
        s
    }

    /// Wipes cached values and cancels every flight: their callers answer CLOSED at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.cache.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_vault_manager(max_entries: usize) -> Arc<Manager> {
        let config = Config::from_parts(
            &json!({
                "vaultUrls": ["https://configured.vault.azure.net"],
                "cache": { "maxEntries": max_entries }
            }),
            &Default::default(),
            std::path::Path::new("/nonexistent"),
        )
        .unwrap();
        Arc::new(Manager::new(config))
    }

    #[test]
    fn referenced_vaults_are_bounded_and_a_lookup_adds_none() {
        let m = key_vault_manager(100);
        let kv = m.key_vault.clone().unwrap();
        for i in 0..150_000 {
            let key = format!("https://v{i}.vault.azure.net/secrets/k");
            // The synchronous path: checked and canonicalized, nothing remembered.
            assert!(m.lookup(&key, "").is_none());
        }
        assert_eq!(kv.referenced_vaults(), 0);
        for i in 0..150_000 {
            kv.vault_at(&format!("https://v{i}.vault.azure.net"))
                .unwrap();
        }
        assert_eq!(kv.referenced_vaults(), 100);
        // A configured vault is never a referenced one.
        kv.vault_at("https://configured.vault.azure.net").unwrap();
        assert_eq!(kv.referenced_vaults(), 100);
    }

    #[test]
    fn every_form_has_one_cache_key() {
        let m = key_vault_manager(10);
        let keys = [
            "db",
            "vault:///db",
            "https://configured.vault.azure.net/secrets/db",
            "HTTPS://Configured.Vault.Azure.Net:443/secrets/db/",
            "@Microsoft.KeyVault(SecretUri=https://configured.vault.azure.net/secrets/db)",
            "@Microsoft.KeyVault(VaultName=configured;SecretName=db)",
        ];
        for k in keys.iter().chain(&[
            "DB",
            "@Microsoft.KeyVault(VaultName=configured;SecretName=Db)",
        ]) {
            assert_eq!(m.resolve(k, "").ok().as_deref(), Some("db"), "{k}");
        }
        assert_eq!(
            m.resolve(
                "@microsoft.keyvault(vaultname=Other;secretname=db;secretversion=abc)",
                ""
            )
            .ok()
            .as_deref(),
            Some("https://other.vault.azure.net/secrets/db/abc")
        );
    }
}

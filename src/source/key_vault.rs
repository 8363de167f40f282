//! Direct Azure Key Vault: one or two vaults, tried in order (the Business Central model).
//!
//! `GET {vault}/secrets/{name}[/{version}]?api-version=7.4`. Challenge-based auth: the first
//! request to a vault goes without a token; its 401 `WWW-Authenticate` names the tenant and the
//! resource, which must belong to the vault's own domain (a vault on one host must not harvest
//! a token for another). The challenge is remembered per vault, and found once however many
//! callers wait. Only the tenant is taken from it: a client secret still goes only to the
//! configured authority.

use super::bearer::{send_with_token, TokenFor, Upstream};
use super::challenge::{parse_challenge, resource_belongs, Challenge};
use super::reference::{
    check_name, check_vault_name, parse_key, parse_reference, vault_origin, SecretId,
};
use super::vault_response::map_reply;
use super::SourceKind;
use super::{FetchFuture, ProbeFuture, Source};
use crate::error::{ErrorCode, SecretError};
use crate::http::{Call, Http, HttpResponse};
use crate::identity::TokenCache;
use crate::secret::Secret;
use crate::time::{Clock, SystemClock};
use lru::LruCache;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use url::Url;

/// One api-version for every request (7.4 … 2025-07-01 answer the same shape).
pub const API_VERSION: &str = "7.4";

pub struct Vault {
    pub url: Url,
    challenge: Mutex<Option<Challenge>>,
    /// One challenge round trip at a time per vault.
    discovering: tokio::sync::Mutex<()>,
}

impl Vault {
    pub fn new(url: Url) -> Vault {
        Vault {
            url,
            challenge: Mutex::new(None),
            discovering: tokio::sync::Mutex::new(()),
        }
    }

    fn known(&self) -> Option<Challenge> {
        self.challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember(&self, c: Challenge) {
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }

    /// The vault as it is named in messages and compared: its origin.
    pub fn origin(&self) -> String {
        vault_origin(&self.url)
    }

    /// `{vault}/secrets/{name}[/{version}]?api-version=…`
    fn secret_url(&self, name: &str, version: Option<&str>) -> Url {
        let mut url = self.url.clone();
        url.set_path(&match version {
            Some(v) => format!("secrets/{name}/{v}"),
            None => format!("secrets/{name}"),
        });
        url.set_query(Some(&format!("api-version={API_VERSION}")));
        url
    }
}

pub struct KeyVaultSource {
    pub http: Arc<Http>,
    pub tokens: Arc<TokenCache>,
    /// The configured vaults, tried in order.
    pub vaults: Vec<Arc<Vault>>,
    /// The configured authority (`authorityHost` / AZURE_AUTHORITY_HOST), if any: a challenge's
    /// authority must belong to its cloud.
    pub authority_host: Option<String>,
    /// The configured tenant (`tenantId` / AZURE_TENANT_ID), if any: with it, a configured
    /// vault's first request carries the token (no challenge round trip).
    pub tenant: Option<String>,
    /// The tenant the first verified challenge of a configured vault named: the other configured
    /// vault (same cloud) is then asked with the token at once too.
    pub learnt_tenant: Mutex<Option<String>>,
    /// Vaults named by Key Vault references in keys (allowed hosts not in `vaults`), with their
    /// challenges, by origin: added when a read needs one, the least recently used dropped
    /// past `maxEntries` (there cannot be more vaults in use than cache entries).
    pub referenced: Mutex<LruCache<String, Arc<Vault>>>,
}

impl KeyVaultSource {
    fn loopback_allowed(&self) -> bool {
        self.http.policy.allow_insecure_loopback()
    }

    /// The vault's challenge: remembered, or learnt from a request without a token. Returns
    /// the reply instead when the vault answered that request with something other than 401.
    async fn challenge(
        &self,
        vault: &Vault,
        url: &Url,
        key: &str,
        index: Option<u8>,
        deadline: Instant,
    ) -> Result<Result<Challenge, HttpResponse>, SecretError> {
        if let Some(c) = vault.known() {
            return Ok(Ok(c));
        }
        let _one = tokio::time::timeout_at(deadline, vault.discovering.lock())
            .await
            .map_err(|_| {
                SecretError::new(
                    ErrorCode::Timeout,
                    format!("secret '{key}' in {}: the deadline passed", vault.origin()),
                )
            })?;
        if let Some(c) = vault.known() {
            return Ok(Ok(c));
        }
        let what = format!("secret '{key}' in {}", vault.origin());
        let mut call = Call::get(url.clone());
        call.operation = Some(crate::trace::Operation::Challenge);
        call.vault_index = index;
        let reply = self.http.send(&call, deadline, &what).await?;
        if reply.status != 401 {
            return Ok(Err(reply));
        }
        let challenge = self.learn(vault, &reply, key)?;
        self.remember(vault, challenge.clone());
        Ok(Ok(challenge))
    }

    fn remember(&self, vault: &Vault, c: Challenge) {
        if self.vaults.iter().any(|v| std::ptr::eq(&**v, vault)) {
            *self.learnt_tenant.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.tenant.clone());
        }
        vault.remember(c);
    }

    /// What a configured vault's challenge will say, when it is known without asking: the
    /// tenant (configured, or learnt from a verified challenge of a configured vault) and the
    /// token resource of the vault's own cloud (chosen here from the vault's domain, so no
    /// challenge can widen it). Then the first request carries the token; a 401 still makes the
    /// full challenge, with its resource verified (`learn`). Never for a referenced vault.
    fn presumed(&self, vault: &Vault) -> Option<Challenge> {
        if !self.vaults.iter().any(|v| std::ptr::eq(&**v, vault)) {
            return None;
        }
        let tenant = self.tenant.clone().or_else(|| {
            self.learnt_tenant
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })?;
        let host = vault.url.host_str()?.to_ascii_lowercase();
        let resource = crate::identity::CLOUDS
            .iter()
            .find(|c| {
                host.strip_suffix(c.vault_suffix)
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.'))
            })
            .map(|c| format!("https://{}", c.vault_suffix))
            .or_else(|| {
                (self.loopback_allowed() && crate::hosts::is_loopback(&vault.url))
                    .then(|| super::challenge::PUBLIC_RESOURCE.to_owned())
            })?;
        Some(Challenge {
            tenant,
            authority_host: String::new(),
            resource,
        })
    }

    /// The challenge of a 401, if acceptable for this vault.
    fn learn(
        &self,
        vault: &Vault,
        reply: &HttpResponse,
        key: &str,
    ) -> Result<Challenge, SecretError> {
        let refuse = |why: String| {
            SecretError::new(
                ErrorCode::Unauthorized,
                format!(
                    "secret '{key}' in {}: {why}; no token was sent",
                    vault.origin()
                ),
            )
            .with_status(401)
        };
        let header = reply
            .headers
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let c = parse_challenge(header).ok_or_else(|| {
            refuse("the 401 carries no Bearer challenge with an authority and a resource".into())
        })?;
        if let Err(why) = crate::identity::authority_belongs(
            self.authority_host.as_deref(),
            &c.authority_host,
            self.loopback_allowed(),
        ) {
            return Err(refuse(why));
        }
        if !resource_belongs(&vault.url, &c.resource, self.loopback_allowed()) {
            return Err(refuse(format!(
                "the challenge asks a token for {}, which is not this vault's domain",
                c.resource
            )));
        }
        Ok(c)
    }

    /// One vault's answer for `name[/version]`; `key` is how messages name the secret.
    async fn read_from(
        &self,
        vault: &Vault,
        index: Option<u8>,
        key: &str,
        name: &str,
        version: Option<&str>,
        deadline: Instant,
    ) -> Result<Secret, SecretError> {
        let url = vault.secret_url(name, version);
        let what = format!("secret '{key}' in {}", vault.origin());
        let known = vault.known().or_else(|| self.presumed(vault));
        let challenge = match known {
            Some(c) => Ok(c),
            None => self.challenge(vault, &url, key, index, deadline).await?,
        };
        let challenge = match challenge {
            Ok(c) => c,
            Err(reply) => return map_reply(key, &vault.origin(), &reply, SystemClock.now()),
        };
        let with_key = |e: SecretError| SecretError {
            message: format!("{what}: {}", e.message),
            ..e
        };
        let target = TokenFor {
            resource: challenge.resource.clone(),
            tenant: Some(challenge.tenant.clone()),
        };
        // After a 401 the token or the challenge changed (e.g. a tenant move): learn again.
        let relearn = |response: &HttpResponse| {
            let c = self.learn(vault, response, key).ok()?;
            self.remember(vault, c.clone());
            Some(TokenFor {
                resource: c.resource,
                tenant: Some(c.tenant),
            })
        };
        let response = send_with_token(
            Upstream {
                http: &self.http,
                tokens: &self.tokens,
                what: &what,
                deadline,
            },
            target,
            || {
                let mut call = Call::get(url.clone());
                call.vault_index = index;
                call
            },
            relearn,
            with_key,
        )
        .await?;
        map_reply(key, &vault.origin(), &response, SystemClock.now())
    }

    /// The configured cloud's Key Vault domain.
    fn vault_suffix(&self) -> &'static str {
        let host = self
            .authority_host
            .as_deref()
            .and_then(|a| Url::parse(a).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        crate::identity::cloud_of(&host)
            .map(|c| c.vault_suffix)
            .unwrap_or("vault.azure.net")
    }

    fn invalid(key: &str, why: String) -> SecretError {
        SecretError::new(ErrorCode::InvalidArgument, format!("secret '{key}': {why}"))
    }

    /// The configured vault with this origin, if any.
    fn configured(&self, origin: &str) -> Option<&Arc<Vault>> {
        self.vaults.iter().find(|v| v.origin() == origin)
    }

    /// What `key` names, in canonical form, checked: a plain name is the configured vaults'; a
    /// reference to the only configured vault is that vault's plain name; a reference to
    /// another vault must be to a host that may receive a token (HOST_NOT_ALLOWED, and
    /// nothing sent, otherwise). Remembers nothing: a lookup costs no memory.
    pub fn secret_id(&self, key: &str) -> Result<SecretId, SecretError> {
        let Some(parsed) = parse_reference(key, self.vault_suffix()) else {
            let (name, version) = parse_key(key).map_err(|m| Self::invalid(key, m))?;
            return Ok(SecretId {
                vault: None,
                name: name.to_ascii_lowercase(),
                version: version.map(str::to_ascii_lowercase),
            });
        };
        let r = parsed.map_err(|m| Self::invalid(key, m))?;
        let origin = vault_origin(&r.vault);
        let vault = if self.configured(&origin).is_some() {
            // A configured vault is that vault (its challenge reused). With one vault, its
            // plain names are the same secrets: one entry, one flight.
            (self.vaults.len() > 1).then_some(origin)
        } else {
            self.http.policy.check_token_url(&r.vault).map_err(|why| {
                SecretError::new(
                    ErrorCode::HostNotAllowed,
                    format!("secret '{key}': its vault {origin} is neither in vaultUrls nor an allowed host ({why}); nothing was sent"),
                )
            })?;
            Some(origin)
        };
        Ok(SecretId {
            vault,
            name: r.name.to_ascii_lowercase(),
            version: r.version.map(|v| v.to_ascii_lowercase()),
        })
    }

    /// The vault of an origin that `secret_id` accepted: a configured one, else the
    /// remembered (or a new) referenced vault.
    pub fn vault_at(&self, origin: &str) -> Result<Arc<Vault>, SecretError> {
        if let Some(v) = self.configured(origin) {
            return Ok(v.clone());
        }
        let url = Url::parse(origin).map_err(|_| {
            SecretError::new(
                ErrorCode::InvalidArgument,
                format!("the vault {origin} is not a url"),
            )
        })?;
        let mut referenced = self.referenced.lock().unwrap_or_else(|p| p.into_inner());
        Ok(referenced
            .get_or_insert(origin.to_owned(), || Arc::new(Vault::new(url)))
            .clone())
    }

    /// The number of referenced vaults remembered (tests of the memory bound).
    pub fn referenced_vaults(&self) -> usize {
        self.referenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    async fn read(&self, key: String, deadline: Instant) -> Result<Secret, SecretError> {
        let id = self.secret_id(&key)?;
        let version = id.version.as_deref();
        if let Some(origin) = &id.vault {
            let vault = self.vault_at(origin)?;
            crate::trace::note_vault(vault.url.host_str().unwrap_or(""), None);
            return self
                .read_from(&vault, None, &key, &id.name, version, deadline)
                .await;
        }
        let mut failures: Vec<SecretError> = Vec::new();
        for (i, vault) in self.vaults.iter().enumerate() {
            let last = i + 1 == self.vaults.len();
            // The first of two vaults gets half of what is left, so a vault that hangs does
            // not take the second one's chance.
            let now = Instant::now();
            let budget = if last {
                deadline
            } else {
                now + (deadline.saturating_duration_since(now)) / 2
            };
            let index = u8::try_from(i).ok();
            let read = self.read_from(vault, index, &key, &id.name, version, budget);
            let result = match tokio::time::timeout_at(budget, read).await {
                Ok(r) => r,
                Err(_) => Err(SecretError::new(
                    ErrorCode::Timeout,
                    format!("secret '{key}' in {}: no answer in time", vault.origin()),
                )),
            };
            match result {
                Ok(secret) => {
                    crate::trace::note_vault(vault.url.host_str().unwrap_or(""), index);
                    return Ok(secret);
                }
                Err(e) => {
                    let next = matches!(
                        e.code,
                        ErrorCode::NotFound
                            | ErrorCode::Forbidden
                            | ErrorCode::Unavailable
                            | ErrorCode::Timeout
                            | ErrorCode::Throttled
                    );
                    failures.push(e);
                    if !next {
                        break;
                    }
                }
            }
        }
        let (error, at) = combine(&key, failures);
        if let Some(v) = self.vaults.get(at) {
            crate::trace::note_vault(v.url.host_str().unwrap_or(""), u8::try_from(at).ok());
        }
        Err(error)
    }

    /// The cache keys a change of (`vault`, `name`) can make stale: the plain name when the
    /// vault is a configured one, and its references. `vault` is a vault url or a vault's
    /// short name; it must be a vault this source reads (configured, or referenced by a key
    /// in use), and `name` a Key Vault secret name: anything else is refused, nothing sent.
    pub fn changed_keys(
        &self,
        vault: &str,
        name: &str,
        holds: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, SecretError> {
        let refuse = |code: ErrorCode, why: String| {
            SecretError::new(code, format!("secretChanged: {why}; nothing was refreshed"))
        };
        check_name(name).map_err(|why| {
            refuse(
                ErrorCode::InvalidArgument,
                format!(
                    "'{}' is not a Key Vault secret name ({why})",
                    name.escape_debug()
                ),
            )
        })?;
        let vault = vault.trim();
        let lower = vault.to_ascii_lowercase();
        let origin = if lower.starts_with("https://") || lower.starts_with("http://") {
            let url = Url::parse(vault).ok().filter(|u| {
                matches!(u.path(), "" | "/")
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.host_str().is_some()
            });
            match url {
                Some(u) => vault_origin(&u),
                None => {
                    return Err(refuse(
                        ErrorCode::InvalidArgument,
                        format!(
                            "'{}' is not a vault url (e.g. https://myvault.vault.azure.net)",
                            vault.escape_debug()
                        ),
                    ))
                }
            }
        } else {
            check_vault_name(vault).map_err(|why| {
                refuse(
                    ErrorCode::InvalidArgument,
                    format!(
                        "'{}' is neither a vault url nor a vault name ({why})",
                        vault.escape_debug()
                    ),
                )
            })?;
            format!("https://{}.{}", lower, self.vault_suffix())
        };
        // Key Vault compares names case-insensitively: so do cache keys (see SecretId).
        let name = name.to_ascii_lowercase();
        let reference = format!("{origin}/secrets/{name}");
        if self.configured(&origin).is_some() {
            return Ok(if self.vaults.len() > 1 {
                vec![name.to_owned(), reference]
            } else {
                vec![name.to_owned()]
            });
        }
        // A referenced vault is one this manager reads while it is remembered, or while an
        // entry read from it is cached (it may have left the bounded list of vaults since).
        let remembered = self
            .referenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&origin);
        if remembered || holds(&reference) {
            return Ok(vec![reference]);
        }
        Err(refuse(
            ErrorCode::HostNotAllowed,
            format!(
                "{origin} is not a vault this manager reads (vaults: {})",
                self.vaults
                    .iter()
                    .map(|v| v.origin())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

/// One error naming every vault asked. A transient failure wins: the secret may well be in
/// the vault that could not answer, so this must not look like a definite NOT_FOUND.
/// Also says which failure (the vault's index) it took the code of.
fn combine(key: &str, mut failures: Vec<SecretError>) -> (SecretError, usize) {
    if failures.len() <= 1 {
        return (
            failures.pop().unwrap_or_else(|| {
                SecretError::new(
                    ErrorCode::NotConfigured,
                    format!("secret '{key}': no vault is configured"),
                )
            }),
            0,
        );
    }
    let pick = failures
        .iter()
        .rposition(|e| e.allows_stale())
        .unwrap_or(failures.len() - 1);
    let prefix = format!("secret '{key}' in ");
    let message = format!(
        "secret '{key}': every vault failed: {}",
        failures
            .iter()
            .map(|e| e
                .message
                .strip_prefix(&prefix)
                .unwrap_or(&e.message)
                .to_owned())
            .collect::<Vec<_>>()
            .join("; then ")
    );
    let chosen = failures.swap_remove(pick);
    (SecretError { message, ..chosen }, pick)
}

impl KeyVaultSource {
    /// For `doctor`: the first vault's challenge, and whether a token for it can be had.
    fn probe_first_vault(self: Arc<Self>, deadline: Instant) -> ProbeFuture {
        Box::pin(async move {
            let vault = self.vaults.first().ok_or_else(|| {
                SecretError::new(ErrorCode::NotConfigured, "no vault is configured")
            })?;
            let url = vault.secret_url("commerce-secret-manager-probe", None);
            let c = match self
                .challenge(
                    vault,
                    &url,
                    "commerce-secret-manager-probe",
                    Some(0),
                    deadline,
                )
                .await?
            {
                Ok(c) => c,
                Err(reply) => {
                    return Err(SecretError::new(
                        ErrorCode::BadResponse,
                        format!(
                            "{} answered {} without a challenge",
                            vault.origin(),
                            reply.status
                        ),
                    ))
                }
            };
            let t = self
                .tokens
                .get(&self.http, &c.resource, Some(&c.tenant), deadline, None)
                .await?;
            Ok(format!(
                "vault {}: challenge tenant {}, resource {}; a token was obtained; it expires in {} s",
                vault.origin(),
                c.tenant,
                c.resource,
                (t.expires_at - SystemClock.now()).round()
            ))
        })
    }
}

impl Source for KeyVaultSource {
    fn kind(&self) -> SourceKind {
        SourceKind::KeyVault
    }

    fn cache_key(&self, key: &str) -> Result<String, SecretError> {
        self.secret_id(key).map(|id| id.cache_key())
    }

    fn changed_keys(
        &self,
        vault: &str,
        name: &str,
        holds: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, SecretError> {
        KeyVaultSource::changed_keys(self, vault, name, holds)
    }

    fn fetch(self: Arc<Self>, key: String, _url: String, deadline: Instant) -> FetchFuture {
        Box::pin(async move { self.read(key, deadline).await })
    }

    fn probe(self: Arc<Self>, deadline: Instant) -> Option<ProbeFuture> {
        Some(self.probe_first_vault(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_errors_name_every_vault_and_prefer_transient_codes() {
        let a = SecretError::new(
            ErrorCode::Unavailable,
            "secret 'k' in https://a: 503 after retrying",
        )
        .with_status(503);
        let b = SecretError::new(ErrorCode::NotFound, "secret 'k' in https://b: not found")
            .with_status(404);
        let (e, at) = combine("k", vec![a, b]);
        assert_eq!((e.code, at), (ErrorCode::Unavailable, 0));
        assert_eq!(e.message, "secret 'k': every vault failed: https://a: 503 after retrying; then https://b: not found");
        let (both_missing, _) = combine(
            "k",
            vec![
                SecretError::new(ErrorCode::NotFound, "x"),
                SecretError::new(ErrorCode::NotFound, "y"),
            ],
        );
        assert_eq!(both_missing.code, ErrorCode::NotFound);
    }
}

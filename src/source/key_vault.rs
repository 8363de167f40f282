//! Direct Azure Key Vault: one or two vaults, tried in order (the Business Central model).
//!
//! `GET {vault}/secrets/{name}[/{version}]?api-version=7.4`. Challenge-based auth: the first
//! request to a vault goes without a token; its 401 `WWW-Authenticate` names the tenant and the
//! resource, which must belong to the vault's own domain (a vault on one host must not harvest
//! a token for another). The challenge is remembered per vault, and found once however many
//! callers wait. Only the tenant is taken from it: a client secret still goes only to the
//! configured authority.

use super::{ProbeFuture, Source};
use crate::cache::{Clock, FetchFuture, SystemClock};
use crate::config::SourceKind;
use crate::error::{ErrorCode, SecretError};
use crate::hosts::is_loopback;
use crate::http::{Call, Http, Reply};
use crate::identity::TokenCache;
use crate::secret::Secret;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use url::Url;

/// One api-version for every request (7.4 … 2025-07-01 answer the same shape).
pub const API_VERSION: &str = "7.4";
const PUBLIC_RESOURCE: &str = "https://vault.azure.net";

#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    pub tenant: String,
    /// The host of the challenge's authority, e.g. `login.microsoftonline.com`.
    pub authority_host: String,
    /// The token's resource, e.g. `https://vault.azure.net` (scope: resource + `/.default`).
    pub resource: String,
}

/// Parses a `WWW-Authenticate: Bearer authorization="…/{tenant}", resource="…"` header
/// (`authorization_uri` and `scope` are accepted too). Never panics, whatever the text.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header
        .trim()
        .strip_prefix("Bearer")
        .or_else(|| header.trim().strip_prefix("bearer"))?;
    let mut authorization = None;
    let mut resource = None;
    let mut scope = None;
    let mut s = rest;
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(eq) = s.find('=') else { break };
        let name = s[..eq].trim().to_ascii_lowercase();
        s = &s[eq + 1..];
        let value;
        if let Some(quoted) = s.strip_prefix('"') {
            let end = quoted.find('"')?;
            value = &quoted[..end];
            s = &quoted[end + 1..];
        } else {
            let end = s.find([',', ' ']).unwrap_or(s.len());
            value = &s[..end];
            s = &s[end..];
        }
        match name.as_str() {
            "authorization" | "authorization_uri" => authorization = Some(value.to_owned()),
            "resource" => resource = Some(value.to_owned()),
            "scope" => scope = Some(value.to_owned()),
            _ => {}
        }
    }
    let authority = Url::parse(&authorization?).ok()?;
    let tenant = authority
        .path_segments()?
        .rfind(|p| !p.is_empty())?
        .to_owned();
    let resource =
        resource.or_else(|| scope.map(|s| s.trim_end_matches("/.default").to_owned()))?;
    Url::parse(&resource).ok()?;
    Some(Challenge {
        authority_host: authority.host_str().unwrap_or("").to_ascii_lowercase(),
        tenant,
        resource: resource.trim_end_matches('/').to_owned(),
    })
}

/// Whether a challenge's resource may be given a token by this vault: its host is the vault's
/// own host or the vault's domain, the host less its first label (`myvault.vault.azure.net` →
/// `vault.azure.net`; never a higher parent such as `azure.net`). A loopback vault
/// (tests, local fakes, only with allowInsecureLoopback) cannot be in a Key Vault domain; it
/// may name itself or the public `https://vault.azure.net`.
pub fn resource_belongs(vault: &Url, resource: &str, loopback_allowed: bool) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    let (Some(rh), Some(vh)) = (r.host_str(), vault.host_str()) else {
        return false;
    };
    let (rh, vh) = (rh.to_ascii_lowercase(), vh.to_ascii_lowercase());
    if r.scheme() != "https" && !(loopback_allowed && is_loopback(&r)) {
        return false;
    }
    if loopback_allowed && is_loopback(vault) {
        return rh == vh || resource.trim_end_matches('/') == PUBLIC_RESOURCE;
    }
    vh == rh
        || vh
            .split_once('.')
            .is_some_and(|(_, domain)| domain == rh && domain.contains('.'))
}

/// `name`, `name/version` or `vault:///name[/version]`. Names: 1–127 of `0-9a-zA-Z-`.
pub fn parse_key(key: &str) -> Result<(&str, Option<&str>), String> {
    let bare = key.strip_prefix("vault:///").unwrap_or(key);
    let (name, version) = match bare.split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (bare, None),
    };
    let name_ok = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !name_ok {
        return Err(
            "a Key Vault secret name is 1 to 127 characters of 0-9, a-z, A-Z and '-'".into(),
        );
    }
    if let Some(v) = version {
        if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("a Key Vault secret version is 1 to 64 letters and digits".into());
        }
    }
    Ok((name, version))
}

/// A Key Vault reference in a key, as App Service and Key Vault write them:
/// `https://<vault>/secrets/<name>[/<version>]`, `@Microsoft.KeyVault(SecretUri=…)` or
/// `@Microsoft.KeyVault(VaultName=…;SecretName=…[;SecretVersion=…])`. `None`: not a reference;
/// `Some(Err)`: a reference that does not parse. `vault_suffix`: the configured cloud's
/// Key Vault domain, for `VaultName=`.
pub fn parse_reference(key: &str, vault_suffix: &str) -> Option<Result<Reference, String>> {
    let bad = |why: &str| Some(Err(format!("the Key Vault reference {why}")));
    let uri = if let Some(inner) = key.strip_prefix("@Microsoft.KeyVault(") {
        let Some(inner) = inner.strip_suffix(')') else {
            return bad("does not end with ')'");
        };
        let mut fields = std::collections::HashMap::new();
        for part in inner.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return bad("has a part without '='");
            };
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        match (
            fields.get("secreturi"),
            fields.get("vaultname"),
            fields.get("secretname"),
        ) {
            (Some(u), None, None) => u.clone(),
            (None, Some(vault), Some(name)) => {
                if vault.is_empty()
                    || !vault
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return bad("has a VaultName that is not a vault name");
                }
                match fields.get("secretversion") {
                    Some(v) => format!("https://{vault}.{vault_suffix}/secrets/{name}/{v}"),
                    None => format!("https://{vault}.{vault_suffix}/secrets/{name}"),
                }
            }
            _ => return bad("needs SecretUri=…, or VaultName=… and SecretName=…"),
        }
    } else if key.starts_with("https://") || key.starts_with("http://") {
        key.to_owned()
    } else {
        return None;
    };
    let Ok(url) = Url::parse(&uri) else {
        return bad("is not a url");
    };
    // http only to loopback (a local fake; the host policy still wants allowInsecureLoopback).
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && crate::hosts::is_loopback(&url));
    if !scheme_ok || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty()
    {
        return bad("must be an https url with no query, fragment or user info");
    }
    let segments: Vec<&str> = url
        .path()
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .collect();
    let (name, version) = match segments.as_slice() {
        ["secrets", name] => (*name, None),
        ["secrets", name, version] => (*name, Some(*version)),
        _ => return bad("must be https://<vault>/secrets/<name>[/<version>]"),
    };
    let joined = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    };
    if let Err(why) = parse_key(&joined) {
        return Some(Err(why));
    }
    let mut vault = url.clone();
    vault.set_path("/");
    if vault.host_str().is_none() {
        return bad("has no vault host");
    }
    Some(Ok((vault, name.to_owned(), version.map(str::to_owned))))
}

/// A parsed reference: the vault, the secret name, the version if pinned.
pub type Reference = (Url, String, Option<String>);

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

    fn origin(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
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
    pub vaults: Vec<Vault>,
    /// The configured authority (`authorityHost` / AZURE_AUTHORITY_HOST), if any: a challenge's
    /// authority must belong to its cloud.
    pub authority_host: Option<String>,
    /// Vaults named by Key Vault references in keys (allowed hosts not in `vaults`), with their
    /// challenges, by origin.
    pub referenced: Mutex<std::collections::HashMap<String, Arc<Vault>>>,
}

fn body_error(body: &[u8]) -> (String, String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    let text = |x: &Value| {
        x.as_str()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
    };
    (
        text(&e["code"]),
        text(&e["message"]),
        text(&e["innererror"]["code"]),
    )
}

fn map_reply(key: &str, vault: &str, reply: &Reply, now: f64) -> Result<Secret, SecretError> {
    let status = reply.status;
    let err = |code: ErrorCode, m: String| {
        Err(SecretError::new(code, format!("secret '{key}' in {vault}: {m}")).with_status(status))
    };
    if reply.ok() {
        let v = match crate::secret::WipedJson::parse(&reply.body) {
            Ok(v) => v,
            Err(_) => return err(ErrorCode::BadResponse, "the reply is not JSON".into()),
        };
        let Some(value) = v.get("value").and_then(Value::as_str) else {
            return err(
                ErrorCode::BadResponse,
                "the reply has no string value".into(),
            );
        };
        let attrs = &v["attributes"];
        if attrs["enabled"].as_bool() == Some(false) {
            return err(ErrorCode::Forbidden, "the secret is disabled".into());
        }
        if let Some(nbf) = attrs["nbf"].as_f64().filter(|nbf| *nbf > now) {
            return err(
                ErrorCode::Forbidden,
                format!("the secret is not valid before {nbf} (nbf)"),
            );
        }
        let exp = attrs["exp"].as_f64();
        if let Some(exp) = exp.filter(|exp| *exp <= now) {
            return err(
                ErrorCode::Forbidden,
                format!("the secret expired at {exp} (exp)"),
            );
        }
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .map(|s| s.to_owned().into_boxed_str());
        return Ok(Secret {
            id,
            expires_at: exp,
            ..Secret::new(value.to_owned())
        });
    }
    let (code, message, inner) = body_error(&reply.body);
    let said = match (code.is_empty(), inner.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" ({code}: {message})"),
        (false, false) => format!(" ({code}/{inner}: {message})"),
    };
    match status {
        404 => err(ErrorCode::NotFound, format!("not found{said}")),
        403 => err(ErrorCode::Forbidden, format!("403 Forbidden{said}")),
        401 => err(
            ErrorCode::Unauthorized,
            format!("401 Unauthorized, with a fresh token too{said}"),
        ),
        429 => err(
            ErrorCode::Throttled,
            format!("still 429 Too Many Requests after retrying{said}"),
        ),
        s if s >= 500 => err(ErrorCode::Unavailable, format!("{s} after retrying{said}")),
        s if (300..400).contains(&s) => err(
            ErrorCode::BadResponse,
            format!("a {s} redirect, not followed"),
        ),
        s => err(
            ErrorCode::BadResponse,
            format!("unexpected status {s}{said}"),
        ),
    }
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
        deadline: Instant,
    ) -> Result<Result<Challenge, Reply>, SecretError> {
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
        let reply = self
            .http
            .send(&Call::get(url.clone()), deadline, &what)
            .await?;
        if reply.status != 401 {
            return Ok(Err(reply));
        }
        let challenge = self.learn(vault, &reply, key)?;
        vault.remember(challenge.clone());
        Ok(Ok(challenge))
    }

    /// The challenge of a 401, if acceptable for this vault.
    fn learn(&self, vault: &Vault, reply: &Reply, key: &str) -> Result<Challenge, SecretError> {
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

    async fn read_from(
        &self,
        vault: &Vault,
        key: &str,
        deadline: Instant,
    ) -> Result<Secret, SecretError> {
        let (name, version) = parse_key(key).map_err(|m| {
            SecretError::new(ErrorCode::InvalidArgument, format!("secret '{key}': {m}"))
        })?;
        let url = vault.secret_url(name, version);
        let what = format!("secret '{key}' in {}", vault.origin());
        let mut challenge = match self.challenge(vault, &url, key, deadline).await? {
            Ok(c) => c,
            Err(reply) => return map_reply(key, &vault.origin(), &reply, SystemClock.now()),
        };
        let with_key = |e: SecretError| SecretError {
            message: format!("{what}: {}", e.message),
            ..e
        };
        // The token a 401 refused: the next round asks for a fresh one, and there is no third.
        let mut refused = None;
        loop {
            let token = self
                .tokens
                .get(
                    &self.http,
                    &challenge.resource,
                    Some(&challenge.tenant),
                    deadline,
                    refused.as_ref(),
                )
                .await
                .map_err(|e| match refused {
                    Some(_) => crate::identity::after_refusal(&what, e),
                    None => with_key(e),
                })?;
            let mut call = Call::get(url.clone());
            call.bearer = Some(&token.value);
            let reply = self.http.send(&call, deadline, &what).await?;
            drop(call);
            if reply.status == 401 && refused.is_none() {
                // The token or the challenge changed (e.g. a tenant move): learn again, once.
                if let Ok(c) = self.learn(vault, &reply, key) {
                    vault.remember(c.clone());
                    challenge = c;
                }
                refused = Some(token);
                continue;
            }
            return map_reply(key, &vault.origin(), &reply, SystemClock.now());
        }
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

    /// The vault a reference names: a configured one (same origin), else one on an allowed
    /// host (a token may go there), remembered with its challenge.
    fn vault_for(&self, key: &str, vault_url: &Url) -> Result<Arc<Vault>, SecretError> {
        let origin = vault_url.origin().ascii_serialization();
        if let Some(i) = self
            .vaults
            .iter()
            .position(|v| v.url.origin().ascii_serialization() == origin)
        {
            // The configured vault itself, with its remembered challenge.
            let v = &self.vaults[i];
            let mut referenced = self.referenced.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(referenced
                .entry(format!("configured:{i}"))
                .or_insert_with(|| Arc::new(Vault::new(v.url.clone())))
                .clone());
        }
        self.http.policy.check_token_url(vault_url).map_err(|why| {
            SecretError::new(
                ErrorCode::HostNotAllowed,
                format!("secret '{key}': its vault {origin} is neither in vaultUrls nor an allowed host ({why}); nothing was sent"),
            )
        })?;
        let mut referenced = self.referenced.lock().unwrap_or_else(|p| p.into_inner());
        Ok(referenced
            .entry(origin)
            .or_insert_with(|| Arc::new(Vault::new(vault_url.clone())))
            .clone())
    }

    async fn read(&self, key: String, deadline: Instant) -> Result<Secret, SecretError> {
        if let Some(parsed) = parse_reference(&key, self.vault_suffix()) {
            let (vault_url, name, version) = parsed.map_err(|m| {
                SecretError::new(ErrorCode::InvalidArgument, format!("secret '{key}': {m}"))
            })?;
            let vault = self.vault_for(&key, &vault_url)?;
            let plain = match version {
                Some(v) => format!("{name}/{v}"),
                None => name,
            };
            return self
                .read_from(&vault, &plain, deadline)
                .await
                .map_err(|e| SecretError {
                    message: e.message.replacen(
                        &format!("secret '{plain}'"),
                        &format!("secret '{key}'"),
                        1,
                    ),
                    ..e
                });
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
            let result =
                match tokio::time::timeout_at(budget, self.read_from(vault, &key, budget)).await {
                    Ok(r) => r,
                    Err(_) => Err(SecretError::new(
                        ErrorCode::Timeout,
                        format!("secret '{key}' in {}: no answer in time", vault.origin()),
                    )),
                };
            match result {
                Ok(secret) => return Ok(secret),
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
        Err(combine(&key, failures))
    }
}

/// One error naming every vault asked. A transient failure wins: the secret may well be in
/// the vault that could not answer, so this must not look like a definite NOT_FOUND.
fn combine(key: &str, mut failures: Vec<SecretError>) -> SecretError {
    if failures.len() <= 1 {
        return failures.pop().unwrap_or_else(|| {
            SecretError::new(
                ErrorCode::NotConfigured,
                format!("secret '{key}': no vault is configured"),
            )
        });
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
    SecretError { message, ..chosen }
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
                .challenge(vault, &url, "commerce-secret-manager-probe", deadline)
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

    fn check_key(&self, key: &str) -> Result<(), SecretError> {
        if let Some(parsed) = parse_reference(key, self.vault_suffix()) {
            let (vault_url, _, _) = parsed.map_err(|m| {
                SecretError::new(ErrorCode::InvalidArgument, format!("secret '{key}': {m}"))
            })?;
            return self.vault_for(key, &vault_url).map(|_| ());
        }
        parse_key(key).map(|_| ()).map_err(|m| {
            SecretError::new(ErrorCode::InvalidArgument, format!("secret '{key}': {m}"))
        })
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
    fn key_vault_references() {
        let ok = |k: &str| parse_reference(k, "vault.azure.net").unwrap().unwrap();
        let (v, n, ver) = ok("https://myvault.vault.azure.net/secrets/db-password");
        assert_eq!(
            (v.as_str(), n.as_str(), ver),
            ("https://myvault.vault.azure.net/", "db-password", None)
        );
        let (_, _, ver) = ok(
            "https://myvault.vault.azure.net/secrets/db-password/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f/",
        );
        assert_eq!(ver.as_deref(), Some("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"));
        let (v, n, _) =
            ok("@Microsoft.KeyVault(SecretUri=https://other.vault.azure.net/secrets/api-key/)");
        assert_eq!(
            (v.as_str(), n.as_str()),
            ("https://other.vault.azure.net/", "api-key")
        );
        let (v, n, ver) =
            ok("@Microsoft.KeyVault(VaultName=myvault; SecretName=api-key; SecretVersion=abc123)");
        assert_eq!(
            (v.as_str(), n.as_str(), ver.as_deref()),
            (
                "https://myvault.vault.azure.net/",
                "api-key",
                Some("abc123")
            )
        );
        let (v, _, _) = parse_reference(
            "@Microsoft.KeyVault(VaultName=cn;SecretName=k)",
            "vault.azure.cn",
        )
        .unwrap()
        .unwrap();
        assert_eq!(v.as_str(), "https://cn.vault.azure.cn/");
        assert!(parse_reference("db-password", "vault.azure.net").is_none());
        assert!(parse_reference("vault:///db-password", "vault.azure.net").is_none());
        for bad in [
            "https://myvault.vault.azure.net/keys/k",
            "https://myvault.vault.azure.net/secrets/",
            "https://myvault.vault.azure.net/secrets/a_b",
            "https://u:p@myvault.vault.azure.net/secrets/k",
            "https://myvault.vault.azure.net/secrets/k?x=1",
            "http://myvault.vault.azure.net/secrets/k",
            "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/k",
            "@Microsoft.KeyVault(VaultName=v)",
            "@Microsoft.KeyVault(VaultName=a.b;SecretName=k)",
        ] {
            assert!(
                parse_reference(bad, "vault.azure.net").unwrap().is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn challenges_as_recorded_and_variants() {
        let c = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge {
                tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                authority_host: "login.microsoftonline.com".into(),
                resource: "https://vault.azure.net".into()
            }
        );
        let c = parse_challenge(r#"Bearer authorization_uri="https://login.windows.net/t1/", scope="https://vault.azure.net/.default""#).unwrap();
        assert_eq!(
            (c.tenant.as_str(), c.resource.as_str()),
            ("t1", "https://vault.azure.net")
        );
        for bad in [
            "",
            "Basic realm=x",
            "Bearer",
            r#"Bearer resource="https://vault.azure.net""#,
            r#"Bearer authorization="x", resource="y""#,
            "Bearer authorization=\"unterminated",
        ] {
            assert!(parse_challenge(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn parse_challenge_never_panics() {
        let alphabet: Vec<char> =
            "Bearer authorization_uri=\"https://a/b\", resource=scope,./é\u{0}"
                .chars()
                .collect();
        let mut seed = 0x9e37_79b9_u64;
        for len in 0..300 {
            let s: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse_challenge(&s);
        }
    }

    #[test]
    fn a_challenge_must_name_the_vaults_own_domain() {
        let v = Url::parse("https://myvault.vault.azure.net").unwrap();
        assert!(resource_belongs(&v, "https://vault.azure.net", false));
        assert!(!resource_belongs(&v, "https://management.azure.com", false));
        assert!(resource_belongs(
            &v,
            "https://myvault.vault.azure.net/",
            false
        ));
        assert!(!resource_belongs(&v, "https://azure.net", false));
        assert!(!resource_belongs(&v, "https://net", false));
        assert!(!resource_belongs(&v, "http://vault.azure.net", false));
        assert!(!resource_belongs(&v, "https://evilvault.azure.net", false));
        let lo = Url::parse("http://127.0.0.1:9999").unwrap();
        assert!(resource_belongs(&lo, "https://vault.azure.net", true));
        assert!(resource_belongs(&lo, "http://127.0.0.1:9999", true));
        assert!(!resource_belongs(&lo, "https://management.azure.com", true));
        assert!(!resource_belongs(&lo, "https://vault.azure.net", false));
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("db-password").unwrap(), ("db-password", None));
        assert_eq!(
            parse_key("db-password/0123abcd").unwrap(),
            ("db-password", Some("0123abcd"))
        );
        assert_eq!(
            parse_key("vault:///db-password").unwrap(),
            ("db-password", None)
        );
        assert_eq!(parse_key(&"a".repeat(127)).unwrap().0.len(), 127);
        for bad in [
            "",
            "has space",
            "under_score",
            "dot.ted",
            "ü",
            "a/",
            "a/b/c",
            "a/ver-sion",
            "vault:///",
            &"a".repeat(128),
            "../x",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_map_to_codes_and_attributes_are_honoured() {
        let now = 1_700_000_000.0;
        let r = |status: u16, body: &str| Reply {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        let ok = map_reply("k", "v", &r(200, r#"{"value":"x","id":"https://v/secrets/k/1","attributes":{"enabled":true,"exp":1700000100}}"#), now).unwrap();
        assert_eq!(
            (ok.value.expose(), ok.id.as_deref(), ok.expires_at),
            ("x", Some("https://v/secrets/k/1"), Some(1_700_000_100.0))
        );
        for (status, body, code, needle) in [
            (
                200,
                r#"{"value":"x","attributes":{"enabled":false}}"#,
                ErrorCode::Forbidden,
                "disabled",
            ),
            (
                200,
                r#"{"value":"x","attributes":{"nbf":1700000100}}"#,
                ErrorCode::Forbidden,
                "not valid before",
            ),
            (
                200,
                r#"{"value":"x","attributes":{"exp":1699999999}}"#,
                ErrorCode::Forbidden,
                "expired",
            ),
            (
                200,
                r#"{"id":"x"}"#,
                ErrorCode::BadResponse,
                "no string value",
            ),
            (
                404,
                r#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) k was not found"}}"#,
                ErrorCode::NotFound,
                "SecretNotFound",
            ),
            (
                403,
                r#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#,
                ErrorCode::Forbidden,
                "Forbidden/SecretDisabled",
            ),
            (
                429,
                r#"{"error":{"code":"Throttled","message":"slow down"}}"#,
                ErrorCode::Throttled,
                "Throttled",
            ),
            (500, "", ErrorCode::Unavailable, "500"),
            (401, "", ErrorCode::Unauthorized, "401"),
            (301, "", ErrorCode::BadResponse, "redirect"),
        ] {
            let e = map_reply("k", "v", &r(status, body), now).unwrap_err();
            assert_eq!(e.code, code, "{status} {body}");
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }

    #[test]
    fn combined_errors_name_every_vault_and_prefer_transient_codes() {
        let a = SecretError::new(
            ErrorCode::Unavailable,
            "secret 'k' in https://a: 503 after retrying",
        )
        .with_status(503);
        let b = SecretError::new(ErrorCode::NotFound, "secret 'k' in https://b: not found")
            .with_status(404);
        let e = combine("k", vec![a, b]);
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.message, "secret 'k': every vault failed: https://a: 503 after retrying; then https://b: not found");
        let both_missing = combine(
            "k",
            vec![
                SecretError::new(ErrorCode::NotFound, "x"),
                SecretError::new(ErrorCode::NotFound, "y"),
            ],
        );
        assert_eq!(both_missing.code, ErrorCode::NotFound);
    }
}

//! Token providers behind one trait, and one token cache per manager.
//!
//! Providers: App Service (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, api-version 2019-08-01),
//! legacy App Service (`MSI_ENDPOINT` + `MSI_SECRET`, 2017-09-01), IMDS (`Metadata: true`) and
//! client secret (AAD v2). The cache holds one token per (resource, tenant): concurrent callers
//! share one request, and a token is refreshed 5 minutes before it expires.
//! A token is a `SecretString`: never in a message, a `Debug` or an event.

use crate::error::{ErrorCode, SecretError};
use crate::hosts::is_loopback;
use crate::http::{Call, Http};
use crate::secret::{Scrubbed, SecretString};
use crate::time::{Clock, SystemClock};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use url::Url;

/// Refresh this long before expiry (the Rust Azure SDK's margin).
pub const REFRESH_MARGIN_SECONDS: f64 = 300.0;
const IMDS_DEFAULT: &str = "http://169.254.169.254";
const AUTHORITY_DEFAULT: &str = "https://login.microsoftonline.com";

#[derive(Debug)]
pub struct Token {
    pub value: SecretString,
    pub expires_at: f64,
    pub fetched_at: f64,
    /// The token is scrubbed from every error message for as long as it is held (by the token
    /// cache, by a request), so for as long as it can be sent and echoed.
    _scrubbed: Scrubbed,
}

impl Token {
    pub fn new(value: String, expires_at: f64, fetched_at: f64) -> Token {
        Token {
            _scrubbed: Scrubbed::new(&value),
            value: SecretString::new(value),
            expires_at,
            fetched_at,
        }
    }

    /// Usable now: before expiry less the margin (half the lifetime for short-lived tokens).
    fn fresh(&self, now: f64) -> bool {
        let margin = REFRESH_MARGIN_SECONDS.min((self.expires_at - self.fetched_at) / 2.0);
        now < self.expires_at - margin
    }
}

pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, SecretError>> + Send + 'a>>;

pub trait Provider: Send + Sync {
    /// How this provider was chosen, for `doctor` (no secret in it).
    fn describe(&self) -> String;
    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a>;
}

fn form_encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn fail(message: String) -> SecretError {
    SecretError::new(ErrorCode::IdentityUnavailable, message)
}

use crate::time::days_from_civil;

/// App Service's date form of `expires_on`: "05/22/2021 17:18:21 +00:00".
fn parse_app_service_date(s: &str) -> Option<f64> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next().unwrap_or("+00:00");
    let d: Vec<i64> = date
        .split('/')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 || !(1..=12).contains(&d[0]) || !(1..=31).contains(&d[1]) {
        return None;
    }
    let (sign, zone) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let z: Vec<i64> = zone
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let offset = sign * (z.first()? * 3600 + z.get(1).copied().unwrap_or(0) * 60);
    let days = days_from_civil(d[2], d[0], d[1]);
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2] - offset) as f64)
}

fn number_or_string(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

/// A token reply of any of the shapes protocol.md lists: `expires_on` as epoch seconds
/// (string or number) or App Service's date string, or `expires_in` (string or number).
pub fn parse_token_reply(body: &[u8], now: f64) -> Result<Token, String> {
    let v = crate::secret::WipedJson::parse(body)
        .map_err(|_| "the token reply is not JSON".to_owned())?;
    let token = match v.get("access_token") {
        // A bearer token is visible ASCII: CR/LF or anything else could not go in a header
        // (and would be the endpoint's fault, not the caller's).
        Some(Value::String(s))
            if !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            s.clone()
        }
        Some(Value::String(s)) if !s.is_empty() => {
            return Err(
                "the token reply's access_token has characters a bearer token cannot have".into(),
            )
        }
        _ => return Err("the token reply has no access_token".into()),
    };
    let expires_at = number_or_string(v.get("expires_on"))
        .or_else(|| match v.get("expires_on") {
            Some(Value::String(s)) => parse_app_service_date(s),
            _ => None,
        })
        .or_else(|| number_or_string(v.get("expires_in")).map(|s| now + s))
        .ok_or_else(|| "the token reply has no usable expires_on or expires_in".to_owned())?;
    Ok(Token::new(token, expires_at, now))
}

/// The error text of a token endpoint's reply: AAD's `error`/`error_description`, IMDS's,
/// App Service's `message`. Trimmed, control characters dropped.
fn endpoint_message(body: &[u8]) -> String {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return String::new(),
    };
    let pick = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let parts: Vec<String> = [
        pick("error"),
        pick("error_description"),
        pick("message"),
        v.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    ]
    .into_iter()
    .flatten()
    .collect();
    let text: String = parts
        .join(": ")
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if text.is_empty() {
        text
    } else {
        format!(": {text}")
    }
}

async fn token_request(
    http: &Http,
    call: Call<'_>,
    deadline: Instant,
    endpoint: &str,
) -> Result<Token, SecretError> {
    token_request_via(http, None, call, deadline, endpoint).await
}

/// `token_request` through a client of its own (Service Fabric's pinned certificate).
async fn token_request_via(
    http: &Http,
    client: Option<&reqwest::Client>,
    call: Call<'_>,
    deadline: Instant,
    endpoint: &str,
) -> Result<Token, SecretError> {
    let what = format!("token from {endpoint}");
    let sent = match client {
        Some(c) => http.send_via(c, &call, deadline, &what).await,
        None => http.send(&call, deadline, &what).await,
    };
    let reply = sent.map_err(|e| match e.code {
        ErrorCode::Timeout => e,
        ErrorCode::Unavailable => SecretError {
            code: ErrorCode::IdentityUnavailable,
            transient: true,
            ..e
        },
        _ => SecretError {
            code: ErrorCode::IdentityUnavailable,
            ..e
        },
    })?;
    if !reply.ok() {
        let mut err = fail(format!(
            "{what}: the endpoint answered {}{}",
            reply.status,
            endpoint_message(&reply.body)
        ))
        .with_status(reply.status);
        err.transient = reply.status == 429 || reply.status >= 500;
        return Err(err);
    }
    parse_token_reply(&reply.body, SystemClock.now()).map_err(|why| fail(format!("{what}: {why}")))
}

/// A store refused the token with 401 and no fresh one could be had: the answer stays
/// UNAUTHORIZED (not transient), so no stale value is served after a 401.
pub fn after_refusal(what: &str, e: SecretError) -> SecretError {
    SecretError::new(
        ErrorCode::Unauthorized,
        format!(
            "{what}: 401 Unauthorized, and a fresh token could not be had ({}: {})",
            e.code.as_str(),
            e.message
        ),
    )
    .with_status(401)
}

mod app_service;
mod azure_arc;
mod chain;
mod client_certificate;
mod client_secret;
mod cloud_shell;
mod developer_cli;
mod files;
mod imds;
mod service_fabric;
mod tenants;
mod token_cache;
mod workload_identity;

pub use app_service::AppService;
pub use azure_arc::{arc_token_dir, AzureArc};
pub use chain::Chain;
pub use client_certificate::ClientCertificate;
pub use client_secret::ClientSecret;
pub use cloud_shell::CloudShell;
pub use developer_cli::{parse_cli_token, parse_datetime, DeveloperCli};
pub use imds::{Imds, IMDS_ABSENCE_SECONDS, IMDS_PROBE_TIMEOUT};
pub use service_fabric::ServiceFabric;
pub use tenants::{valid_tenant, TenantGate, Tenants};
pub use token_cache::{TokenCache, FAILURE_MEMORY_SECONDS};
pub use workload_identity::WorkloadIdentity;

/// No provider could be set up: every request says why.
pub struct Unavailable(pub String);

impl Provider for Unavailable {
    fn describe(&self) -> String {
        format!("none ({})", self.0)
    }

    fn fetch<'a>(
        &'a self,
        _: &'a Http,
        _: &'a str,
        _: Option<&'a str>,
        _: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move { Err(fail(self.0.clone())) })
    }
}

/// What the environment and options say about identity.
#[derive(Debug, Default)]
pub struct IdentitySettings {
    pub choice: String,
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<SecretString>,
    pub user_assigned_client_id: Option<String>,
    pub msi_endpoint: Option<String>,
    pub msi_secret: Option<SecretString>,
    /// Azure Arc sets it beside IDENTITY_ENDPOINT.
    pub imds_endpoint: Option<String>,
    /// Service Fabric sets it beside IDENTITY_ENDPOINT and IDENTITY_HEADER.
    pub identity_server_thumbprint: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// Tenants a vault's challenge may name besides `tenant_id` (`*`: any).
    pub additionally_allowed_tenants: Vec<String>,
    pub client_secret: Option<SecretString>,
    pub client_certificate_path: Option<String>,
    pub federated_token_file: Option<String>,
    /// The authority (the `authorityHost` option, else AZURE_AUTHORITY_HOST), if set.
    pub authority_host: Option<String>,
    pub pod_identity_host: Option<String>,
    /// The PATH of the manager's environment (the developer CLIs are looked for on it).
    pub path: Option<String>,
    pub allow_insecure_loopback: bool,
}

/// The Azure clouds: the authorities that issue their tokens, and their Key Vault domain.
pub struct Cloud {
    pub name: &'static str,
    pub authorities: &'static [&'static str],
    pub vault_suffix: &'static str,
}

pub const CLOUDS: &[Cloud] = &[
    Cloud {
        name: "public",
        authorities: &[
            "login.microsoftonline.com",
            "login.windows.net",
            "sts.windows.net",
        ],
        vault_suffix: "vault.azure.net",
    },
    Cloud {
        name: "China",
        authorities: &["login.chinacloudapi.cn", "login.partner.microsoftonline.cn"],
        vault_suffix: "vault.azure.cn",
    },
    Cloud {
        name: "US Government",
        authorities: &["login.microsoftonline.us", "login.usgovcloudapi.net"],
        vault_suffix: "vault.usgovcloudapi.net",
    },
];

/// The cloud an authority host belongs to.
pub fn cloud_of(host: &str) -> Option<&'static Cloud> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    CLOUDS
        .iter()
        .find(|c| c.authorities.contains(&host.as_str()))
}

/// Whether a Key Vault challenge's authority (`challenge_host`) belongs to the configured
/// cloud (`configured`: the authority host setting, else the public cloud). An authority
/// outside the known clouds (Azure Stack, a private cloud) must be the configured host itself;
/// a loopback authority (tests, local fakes, with allowInsecureLoopback) checks nothing.
pub fn authority_belongs(
    configured: Option<&str>,
    challenge_host: &str,
    loopback_ok: bool,
) -> Result<(), String> {
    let configured = configured.unwrap_or(AUTHORITY_DEFAULT);
    let Ok(url) = Url::parse(configured) else {
        return Err("the authority host setting is not a url".into());
    };
    if loopback_ok && crate::hosts::is_loopback(&url) {
        return Ok(());
    }
    // A plain-http loopback authority without allowInsecureLoopback: the identity refuses it
    // for what it is (`insecure_authority`), before any token is asked for, whatever the
    // challenge; no "not of the configured cloud" about the challenge.
    if insecure_authority(Some(configured), loopback_ok).is_some() {
        return Ok(());
    }
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let ok = match cloud_of(&host) {
        Some(cloud) => cloud.authorities.contains(&challenge_host),
        None => challenge_host == host,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the challenge's authority {challenge_host} is not of the configured cloud ({}; set authorityHost or AZURE_AUTHORITY_HOST for another cloud)",
            cloud_of(&host).map(|c| c.name).unwrap_or(host.as_str())
        ))
    }
}

/// Why the authority host setting cannot be used, when it is plain http to loopback without
/// `allowInsecureLoopback` (a fake's address left in the environment): every provider then
/// refuses, saying so, and nothing is sent anywhere.
pub fn insecure_authority(configured: Option<&str>, loopback_ok: bool) -> Option<String> {
    let url = Url::parse(configured?).ok()?;
    (url.scheme() == "http" && is_loopback(&url) && !loopback_ok).then(|| {
        format!(
            "the authority host (authorityHost or AZURE_AUTHORITY_HOST) {} is plain http: that needs allowInsecureLoopback (or COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK=1), for a local fake only; nothing was sent",
            url.origin().ascii_serialization()
        )
    })
}

/// Every `identity` value api.md names.
pub const IDENTITY_KINDS: &[&str] = &[
    "auto",
    "app-service",
    "imds",
    "client-secret",
    "client-certificate",
    "workload-identity",
    "azure-cli",
    "azure-developer-cli",
];

type Built = Result<Box<dyn Provider>, String>;

/// The managed identity this environment offers, as DefaultAzureCredential looks for it:
/// App Service (or Service Fabric), Azure Arc, Cloud Shell, legacy App Service, else IMDS.
fn managed_identity(s: &IdentitySettings) -> Built {
    let parse = |u: &str, what: &str| Url::parse(u).map_err(|_| format!("{what} is not a url"));
    let client_id = || {
        s.user_assigned_client_id
            .clone()
            .or_else(|| s.client_id.clone())
    };
    if let Some(ep) = &s.identity_endpoint {
        if let Some(h) = &s.identity_header {
            if let Some(thumbprint) = &s.identity_server_thumbprint {
                return Ok(Box::new(ServiceFabric::new(
                    parse(ep, "IDENTITY_ENDPOINT")?,
                    SecretString::new(h.expose().to_owned()),
                    thumbprint,
                    client_id(),
                )?));
            }
            return Ok(Box::new(AppService {
                endpoint: parse(ep, "IDENTITY_ENDPOINT")?,
                header: SecretString::new(h.expose().to_owned()),
                client_id: client_id(),
                legacy: false,
            }));
        }
        if s.imds_endpoint.is_some() {
            return Ok(Box::new(AzureArc {
                endpoint: parse(ep, "IDENTITY_ENDPOINT")?,
                token_dir: arc_token_dir(),
                key: Mutex::new(None),
            }));
        }
    }
    if let Some(ep) = &s.msi_endpoint {
        return Ok(match &s.msi_secret {
            Some(secret) => Box::new(AppService {
                endpoint: parse(ep, "MSI_ENDPOINT")?,
                header: SecretString::new(secret.expose().to_owned()),
                client_id: client_id(),
                legacy: true,
            }),
            None => Box::new(CloudShell {
                endpoint: parse(ep, "MSI_ENDPOINT")?,
            }),
        });
    }
    Ok(Box::new(Imds::new(
        parse(
            s.pod_identity_host.as_deref().unwrap_or(IMDS_DEFAULT),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        )?,
        s.client_id.clone(),
    )))
}

/// The provider `identity` names; `auto`: DefaultAzureCredential's order (api.md).
pub fn provider_from(s: &IdentitySettings) -> Box<dyn Provider> {
    // What may be sent is known now: scrubbed from any upstream text that echoes it, for as
    // long as the provider lives (the manager's life).
    let scrubbed: Vec<Scrubbed> = [&s.identity_header, &s.msi_secret, &s.client_secret]
        .into_iter()
        .flatten()
        .map(|c| Scrubbed::new(c.expose()))
        .collect();
    let authority = || -> Result<Url, String> {
        let a = s.authority_host.as_deref().unwrap_or(AUTHORITY_DEFAULT);
        let mut u = Url::parse(a).map_err(|_| {
            "the authority host (authorityHost or AZURE_AUTHORITY_HOST) is not a url".to_owned()
        })?;
        if !u.path().ends_with('/') {
            let p = format!("{}/", u.path());
            u.set_path(&p);
        }
        Ok(u)
    };
    let needs_client = |what: &str| format!("{what}: clientId (or AZURE_CLIENT_ID) is not set");
    let client_secret = || -> Built {
        match (&s.client_id, &s.client_secret) {
            (Some(id), Some(secret)) => Ok(Box::new(ClientSecret {
                authority: authority()?,
                tenant: s.tenant_id.clone(),
                client_id: id.clone(),
                secret: SecretString::new(secret.expose().to_owned()),
                allow_insecure_loopback: s.allow_insecure_loopback,
            })),
            _ => Err("client-secret identity: clientId and clientSecret (or AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) are not set".into()),
        }
    };
    let client_certificate = || -> Built {
        let path = s.client_certificate_path.as_deref().ok_or("client-certificate identity: clientCertificatePath (or AZURE_CLIENT_CERTIFICATE_PATH) is not set")?;
        let id = s
            .client_id
            .clone()
            .ok_or_else(|| needs_client("client-certificate identity"))?;
        Ok(Box::new(ClientCertificate::load(
            authority()?,
            s.tenant_id.clone(),
            id,
            path.into(),
            s.allow_insecure_loopback,
        )?))
    };
    let workload_identity = || -> Built {
        let file = s.federated_token_file.as_deref().ok_or(
            "workload-identity: federatedTokenFile (or AZURE_FEDERATED_TOKEN_FILE) is not set",
        )?;
        let id = s
            .client_id
            .clone()
            .ok_or_else(|| needs_client("workload-identity"))?;
        Ok(Box::new(WorkloadIdentity {
            authority: authority()?,
            tenant: s.tenant_id.clone(),
            client_id: id,
            token_file: file.into(),
            allow_insecure_loopback: s.allow_insecure_loopback,
        }))
    };
    let cli = |kind: &'static str| -> Built {
        Ok(Box::new(DeveloperCli {
            kind,
            path: s.path.clone(),
            tenant: s.tenant_id.clone(),
        }))
    };
    let chosen: Built = match s.choice.as_str() {
        "app-service" => managed_identity(s).and_then(|p| {
            if p.describe().starts_with("app-service") { Ok(p) } else {
                Err("app-service identity: IDENTITY_ENDPOINT and IDENTITY_HEADER (or MSI_ENDPOINT and MSI_SECRET) are not set".into())
            }
        }),
        "imds" => Url::parse(s.pod_identity_host.as_deref().unwrap_or(IMDS_DEFAULT))
            .map_err(|_| "AZURE_POD_IDENTITY_AUTHORITY_HOST is not a url".to_owned())
            .map(|base| Box::new(Imds::new(base, s.client_id.clone())) as Box<dyn Provider>),
        "client-secret" => client_secret(),
        "client-certificate" => client_certificate(),
        "workload-identity" => workload_identity(),
        "azure-cli" => cli("azure-cli"),
        "azure-developer-cli" => cli("azure-developer-cli"),
        _ => {
            // DefaultAzureCredential's order; a credential the environment does not set up is
            // left out, with why (for doctor).
            let mut links: Vec<Box<dyn Provider>> = Vec::new();
            let mut skipped: Vec<String> = Vec::new();
            let env_credential = if s.client_secret.is_some() { client_secret() } else if s.client_certificate_path.is_some() { client_certificate() } else {
                Err("environment: neither a client secret nor a certificate is set".into())
            };
            for built in [env_credential, workload_identity(), managed_identity(s), cli("azure-cli"), cli("azure-developer-cli")] {
                match built {
                    Ok(p) => links.push(p),
                    Err(why) => skipped.push(why),
                }
            }
            Ok(Box::new(Chain::new(links, skipped)))
        }
    };
    let chosen = match insecure_authority(s.authority_host.as_deref(), s.allow_insecure_loopback) {
        Some(why) => Err(why),
        None => chosen,
    };
    let provider = chosen.unwrap_or_else(|why| Box::new(Unavailable(why)));
    // Every provider is asked only for the tenant the policy resolves (tenants.rs).
    Box::new(TenantGate {
        inner: provider,
        tenants: Tenants {
            configured: s.tenant_id.clone(),
            additionally_allowed: s.additionally_allowed_tenants.clone(),
        },
        held: scrubbed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_reply_shapes() {
        let now = 1_600_000_000.0;
        // IMDS: every field a string.
        let t = parse_token_reply(
            br#"{"access_token":"a","expires_in":"28799","expires_on":"1580179303"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.expires_at, 1_580_179_303.0);
        // App Service: epoch seconds in a string, or a date string.
        assert_eq!(
            parse_token_reply(br#"{"access_token":"a","expires_on":"1621617501"}"#, now)
                .unwrap()
                .expires_at,
            1_621_617_501.0
        );
        let d = parse_token_reply(
            br#"{"access_token":"a","expires_on":"05/22/2021 17:18:21 +00:00"}"#,
            now,
        )
        .unwrap();
        assert_eq!(d.expires_at, 1_621_703_901.0);
        let z = parse_token_reply(
            br#"{"access_token":"a","expires_on":"05/22/2021 19:18:21 +02:00"}"#,
            now,
        )
        .unwrap();
        assert_eq!(z.expires_at, 1_621_703_901.0);
        // AAD v2: expires_in a number, no expires_on.
        assert_eq!(
            parse_token_reply(br#"{"access_token":"a","expires_in":3599}"#, now)
                .unwrap()
                .expires_at,
            now + 3599.0
        );
        for bad in [
            &b"nope"[..],
            br#"{"expires_in":1}"#,
            br#"{"access_token":"","expires_in":1}"#,
            br#"{"access_token":"a"}"#,
            br#"{"access_token":"a","expires_on":"soon"}"#,
        ] {
            assert!(parse_token_reply(bad, now).is_err());
        }
    }

    #[test]
    fn token_freshness_keeps_a_margin() {
        let t = Token::new("t".into(), 10_000.0, 6_400.0);
        assert!(t.fresh(9_699.0));
        assert!(!t.fresh(9_700.0), "refreshed 5 minutes before expiry");
        let short = Token::new("t".into(), 100.0, 0.0);
        assert!(
            short.fresh(49.0) && !short.fresh(50.0),
            "a short-lived token: at half its life"
        );
    }

    #[test]
    fn endpoint_messages_keep_only_the_error_text() {
        assert_eq!(
            endpoint_message(br#"{"error":"invalid_request","error_description":"Bad\nthing"}"#),
            ": invalid_request: Badthing"
        );
        assert_eq!(endpoint_message(b"<html>"), "");
    }

    #[test]
    fn auto_follows_default_azure_credentials_order() {
        let mut s = IdentitySettings {
            choice: "auto".into(),
            path: Some("/nonexistent".into()),
            ..Default::default()
        };
        let order = |s: &IdentitySettings| provider_from(s).describe();
        let d = order(&s);
        assert!(d.starts_with("imds"), "{d}");
        assert!(
            d.contains("→ azure-cli") && d.contains("→ azure-developer-cli"),
            "{d}"
        );
        s.identity_endpoint = Some("http://127.0.0.1:41741/msi/token/".into());
        s.identity_header = Some(SecretString::new("h".into()));
        assert!(
            order(&s).starts_with("app-service (IDENTITY_ENDPOINT"),
            "{}",
            order(&s)
        );
        s.client_id = Some("c".into());
        s.federated_token_file = Some("/var/run/token".into());
        assert!(order(&s).starts_with("workload-identity"), "{}", order(&s));
        s.client_secret = Some(SecretString::new("sentinel-secret".into()));
        let d = order(&s);
        assert!(d.starts_with("client-secret"), "{d}");
        let chain = &d[d.find("the first of the chain").unwrap()..];
        let positions: Vec<usize> = [
            "client-secret",
            "workload-identity",
            "app-service",
            "azure-cli",
            "azure-developer-cli",
        ]
        .iter()
        .map(|k| chain.find(k).unwrap())
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{d}");
        // Explicit choices.
        s.choice = "imds".into();
        assert!(provider_from(&s).describe().starts_with("imds"));
        s.choice = "azure-cli".into();
        assert!(provider_from(&s).describe().starts_with("azure-cli"));
        let none = IdentitySettings {
            choice: "app-service".into(),
            ..Default::default()
        };
        assert!(provider_from(&none).describe().starts_with("none"));
        assert!(!format!("{:?}", s).contains("sentinel"));
        // Other managed identities.
        let arc = IdentitySettings {
            choice: "auto".into(),
            identity_endpoint: Some("http://localhost:40342/metadata/identity/oauth2/token".into()),
            imds_endpoint: Some("http://localhost:40342".into()),
            ..Default::default()
        };
        assert!(order(&arc).contains("azure-arc"), "{}", order(&arc));
        let shell = IdentitySettings {
            choice: "auto".into(),
            msi_endpoint: Some("http://localhost:50342/oauth2/token".into()),
            ..Default::default()
        };
        assert!(order(&shell).contains("cloud-shell"), "{}", order(&shell));
    }

    #[test]
    fn challenge_authorities_belong_to_the_configured_cloud() {
        assert!(authority_belongs(None, "login.microsoftonline.com", false).is_ok());
        assert!(authority_belongs(None, "login.windows.net", false).is_ok());
        assert!(authority_belongs(None, "login.chinacloudapi.cn", false).is_err());
        assert!(authority_belongs(None, "login.attacker.example", false).is_err());
        let china = Some("https://login.chinacloudapi.cn");
        assert!(authority_belongs(china, "login.chinacloudapi.cn", false).is_ok());
        assert!(authority_belongs(china, "login.microsoftonline.com", false).is_err());
        let gov = Some("https://login.microsoftonline.us/");
        assert!(authority_belongs(gov, "login.microsoftonline.us", false).is_ok());
        assert!(authority_belongs(gov, "login.microsoftonline.com", false).is_err());
        let stack = Some("https://adfs.local.azurestack.external/");
        assert!(authority_belongs(stack, "adfs.local.azurestack.external", false).is_ok());
        assert!(authority_belongs(stack, "login.microsoftonline.com", false).is_err());
        assert!(authority_belongs(
            Some("http://127.0.0.1:5000/"),
            "login.microsoftonline.com",
            true
        )
        .is_ok());
        // Plain http to loopback without the opt-in: the identity refuses it for what it is.
        assert!(authority_belongs(
            Some("http://127.0.0.1:5000/"),
            "login.microsoftonline.com",
            false
        )
        .is_ok());
        let none = provider_from(&IdentitySettings {
            choice: "auto".into(),
            authority_host: Some("http://127.0.0.1:5000/".into()),
            ..Default::default()
        });
        assert!(none
            .describe()
            .contains("is plain http: that needs allowInsecureLoopback"));
        assert!(authority_belongs(
            Some("http://login.example.com/"),
            "login.microsoftonline.com",
            false
        )
        .is_err());
    }

    #[test]
    fn cli_token_outputs() {
        let now = 1_700_000_000.0;
        let az = parse_cli_token(br#"{"accessToken":"az-tok","expiresOn":"2023-11-14 22:13:20.000000","expires_on":1700003600,"tokenType":"Bearer"}"#, now).unwrap();
        assert_eq!(
            (az.value.expose(), az.expires_at),
            ("az-tok", 1_700_003_600.0)
        );
        let old_az = parse_cli_token(
            br#"{"accessToken":"t2","expiresOn":"2023-11-14 23:13:20.000000"}"#,
            now,
        )
        .unwrap();
        assert_eq!(old_az.expires_at, 1_700_003_600.0);
        let azd = parse_cli_token(
            br#"{"token":"azd-tok","expiresOn":"2023-11-14T23:13:20Z"}"#,
            now,
        )
        .unwrap();
        assert_eq!(
            (azd.value.expose(), azd.expires_at),
            ("azd-tok", 1_700_003_600.0)
        );
        assert_eq!(
            parse_datetime("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000.0)
        );
        assert!(parse_cli_token(b"not json", now).is_err());
        assert!(parse_cli_token(br#"{"accessToken":"a b"}"#, now).is_err());
    }
}

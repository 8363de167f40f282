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
mod choose;
mod client_certificate;
mod client_secret;
mod cloud_shell;
mod clouds;
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
pub use choose::{provider_from, IdentitySettings, IDENTITY_KINDS};
pub use client_certificate::ClientCertificate;
pub use client_secret::ClientSecret;
pub use cloud_shell::CloudShell;
pub use clouds::{authority_belongs, cloud_of, insecure_authority, Cloud, CLOUDS};
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

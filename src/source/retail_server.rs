//! Deployed Commerce: a managed identity token goes to Retail Server, which reads Key Vault.
//!
//! `GET {baseRetailServerUrl}Commerce/GetUserDefinedSecretString(secretName='NAME')` with
//! `Authorization: Bearer` and `OUN`. NAME is an OData string literal (`'` doubled), then
//! percent-encoded (the platform does neither). The url is checked before anything is sent,
//! the token request included: a refused host gets HOST_NOT_ALLOWED and no request at all.

use super::bearer::{send_with_token, TokenFor, Upstream};
use super::FetchFuture;
use super::SourceKind;
use super::{ProbeFuture, Source};
use crate::error::{ErrorCode, SecretError};
use crate::http::{Call, Http, HttpResponse};
use crate::identity::TokenCache;
use crate::secret::Secret;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::sync::Arc;
use tokio::time::Instant;
use url::Url;

/// The resource (audience) of the token Retail Server accepts.
pub const RESOURCE: &str = "https://commerce.dynamics.com";
/// The first Retail Server version with the secret API.
const MIN_VERSION: [u64; 3] = [9, 24, 2];

/// Everything but unreserved characters is encoded; `'` stays, doubled, as OData wants it.
const ODATA_LITERAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'\'');

pub struct RetailServerSource {
    pub http: Arc<Http>,
    pub tokens: Arc<TokenCache>,
    pub oun: String,
    /// Set when `MSDyn365Commerce_RSVERSION` is older than 9.24.2.
    pub version_problem: Option<String>,
}

/// Why `MSDyn365Commerce_RSVERSION` rules the source out, if it does. Unset or unreadable:
/// nothing to say (the platform's own parser throws there, and breaks its contract).
pub fn version_problem(version: Option<&str>) -> Option<String> {
    let v = version?.trim();
    let parts: Vec<u64> = v
        .split('.')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let mut padded = [0u64; 3];
    for (i, p) in parts.iter().take(3).enumerate() {
        padded[i] = *p;
    }
    (padded < MIN_VERSION).then(|| {
        format!("Retail Server {v} (MSDyn365Commerce_RSVERSION) is older than 9.24.2, the first version that serves secrets")
    })
}

/// The request url for `key` under `base`.
pub fn secret_url(base: &str, key: &str) -> Result<Url, String> {
    let parsed = Url::parse(base.trim()).map_err(|_| "is not an absolute url".to_owned())?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if parsed.cannot_be_a_base() {
        return Err("is not a base url".into());
    }
    let mut text = parsed.to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    let literal = utf8_percent_encode(&key.replace('\'', "''"), ODATA_LITERAL).to_string();
    Url::parse(&format!(
        "{text}Commerce/GetUserDefinedSecretString(secretName='{literal}')"
    ))
    .map_err(|_| "does not make a valid request url".to_owned())
}

/// Retail Server's error details: `ErrorResourceId` and `LocalizedMessage`, wherever they are
/// (top level, under `error`, or inside an `Exception` text that is itself JSON).
pub fn error_details(body: &[u8]) -> String {
    fn find(v: &Value, depth: u8, id: &mut Option<String>, msg: &mut Option<String>) {
        if depth > 5 {
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("ErrorResourceId", Value::String(s)) if id.is_none() => {
                            *id = Some(s.clone())
                        }
                        ("LocalizedMessage", Value::String(s)) if msg.is_none() => {
                            *msg = Some(s.clone())
                        }
                        (_, Value::String(s)) if s.trim_start().starts_with('{') => {
                            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                                find(&inner, depth + 1, id, msg);
                            }
                        }
                        _ => find(v, depth + 1, id, msg),
                    }
                }
            }
            Value::Array(items) => items
                .iter()
                .take(16)
                .for_each(|i| find(i, depth + 1, id, msg)),
            _ => {}
        }
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let (mut id, mut msg) = (None, None);
    find(&v, 0, &mut id, &mut msg);
    let clean = |s: String| {
        s.chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
    };
    match (id.map(clean), msg.map(clean)) {
        (Some(i), Some(m)) => format!(" ({i}: {m})"),
        (Some(i), None) => format!(" ({i})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

fn map_reply(key: &str, what: &str, reply: HttpResponse) -> Result<Secret, SecretError> {
    let status = reply.status;
    // Retail Server's request id (request-id / ms-request-id; trace::request_id), quoted.
    let request_id = crate::trace::request_id(&reply.headers);
    if reply.ok() {
        let bad = || {
            SecretError::new(
                ErrorCode::BadResponse,
                format!(
                    "{what}: the reply is not OData JSON with a string value{}",
                    crate::trace::quoted(request_id.as_deref())
                ),
            )
            .with_status(status)
            .with_request_id(request_id.as_deref())
        };
        let v = crate::secret::WipedJson::parse(&reply.body).map_err(|_| bad())?;
        return match v.get("value") {
            Some(Value::String(s)) => Ok(Secret::new(s.clone())),
            _ => Err(bad()),
        };
    }
    let details = error_details(&reply.body);
    let (code, said) = match status {
        404 => (
            ErrorCode::NotFound,
            format!("secret '{key}' was not found by Retail Server"),
        ),
        401 => (
            ErrorCode::Unauthorized,
            format!("{what}: 401 Unauthorized, with a fresh token too"),
        ),
        403 => (ErrorCode::Forbidden, format!("{what}: 403 Forbidden")),
        429 => (
            ErrorCode::Throttled,
            format!("{what}: still 429 Too Many Requests after retrying"),
        ),
        s if s >= 500 => (
            ErrorCode::Unavailable,
            format!("{what}: {s} after retrying"),
        ),
        s if (300..400).contains(&s) => (
            ErrorCode::BadResponse,
            format!("{what}: a {s} redirect, not followed"),
        ),
        s => (
            ErrorCode::BadResponse,
            format!("{what}: unexpected status {s}"),
        ),
    };
    Err(SecretError::new(
        code,
        format!(
            "{said}{details}{}",
            crate::trace::quoted(request_id.as_deref())
        ),
    )
    .with_status(status)
    .with_request_id(request_id.as_deref()))
}

impl RetailServerSource {
    async fn read(
        &self,
        key: String,
        base: String,
        deadline: Instant,
    ) -> Result<Secret, SecretError> {
        if let Some(problem) = &self.version_problem {
            return Err(SecretError::new(
                ErrorCode::NotConfigured,
                format!("secret '{key}': {problem}"),
            ));
        }
        let url = secret_url(&base, &key).map_err(|why| {
            SecretError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "secret '{key}': baseRetailServerUrl '{}' {why}",
                    base.escape_debug()
                ),
            )
        })?;
        self.http.policy.check_token_url(&url).map_err(|why| {
            SecretError::new(
                ErrorCode::HostNotAllowed,
                format!("secret '{key}': Retail Server url: {why}; nothing was sent"),
            )
        })?;
        let what = format!(
            "secret '{key}' from Retail Server {}",
            url.host_str().unwrap_or("")
        );
        let with_key = |e: SecretError| SecretError {
            message: format!("secret '{key}': {}", e.message),
            ..e
        };
        let oun = self.oun.clone();
        let call = || {
            let mut call = Call::get(url.clone());
            call.headers.push(("oun", oun.clone()));
            call.headers.push(("accept", "application/json".into()));
            call
        };
        let target = TokenFor {
            resource: RESOURCE.to_owned(),
            tenant: None,
        };
        let reply = send_with_token(
            Upstream {
                http: &self.http,
                tokens: &self.tokens,
                what: &what,
                deadline,
            },
            target,
            call,
            |_| None,
            with_key,
        )
        .await?;
        map_reply(&key, &what, reply)
    }
}

impl Source for RetailServerSource {
    fn kind(&self) -> SourceKind {
        SourceKind::RetailServer
    }

    fn keyed_by_url(&self) -> bool {
        true
    }

    fn fetch(self: Arc<Self>, key: String, url: String, deadline: Instant) -> FetchFuture {
        Box::pin(async move { self.read(key, url, deadline).await })
    }

    fn probe(self: Arc<Self>, deadline: Instant) -> Option<ProbeFuture> {
        Some(Box::pin(async move {
            let t = self
                .tokens
                .get(&self.http, RESOURCE, None, deadline, None)
                .await?;
            let left = (t.expires_at - crate::time::Clock::now(&crate::time::SystemClock)).round();
            Ok(format!(
                "a token for {RESOURCE} was obtained; it expires in {left} s"
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_literal_is_escaped_and_encoded() {
        let u = secret_url("https://scu1.commerce.dynamics.com/", "it's/a key").unwrap();
        assert_eq!(
            u.path(),
            "/Commerce/GetUserDefinedSecretString(secretName='it''s%2Fa%20key')"
        );
        let u = secret_url("https://scu1.commerce.dynamics.com", "plain-Key_1.x~").unwrap();
        assert_eq!(u.as_str(), "https://scu1.commerce.dynamics.com/Commerce/GetUserDefinedSecretString(secretName='plain-Key_1.x~')");
        let u = secret_url("https://h.commerce.dynamics.com/base/", "ü?#&%").unwrap();
        assert_eq!(
            u.path(),
            "/base/Commerce/GetUserDefinedSecretString(secretName='%C3%BC%3F%23%26%25')"
        );
        for bad in [
            "",
            "not a url",
            "https://h/?q=1",
            "https://h/#f",
            "mailto:x@y",
        ] {
            assert!(secret_url(bad, "k").is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_before_9_24_2_are_refused() {
        assert!(version_problem(None).is_none());
        assert!(version_problem(Some("garbage")).is_none());
        for old in ["9.24.1", "9.23", "8.99.99.99", "9.24.1.9"] {
            assert!(version_problem(Some(old)).is_some(), "{old}");
        }
        for ok in ["9.24.2", "9.24.2.0", "9.25", "10.0.1", "9.24.10"] {
            assert!(version_problem(Some(ok)).is_none(), "{ok}");
        }
    }

    #[test]
    fn error_details_are_found_wherever_they_are() {
        let top = br#"{"ErrorResourceId":"Microsoft_Dynamics_Commerce_Runtime_X","LocalizedMessage":"Secret not mapped."}"#;
        assert_eq!(
            error_details(top),
            " (Microsoft_Dynamics_Commerce_Runtime_X: Secret not mapped.)"
        );
        let nested = br#"{"error":{"code":"x","Exception":"{\"ErrorResourceId\":\"Id_1\",\"LocalizedMessage\":\"Nope\\nline\"}"}}"#;
        assert_eq!(error_details(nested), " (Id_1: Nopeline)");
        assert_eq!(error_details(b"<html>oops</html>"), "");
    }

    #[test]
    fn replies_map_to_codes() {
        let r = |status: u16, body: &[u8]| HttpResponse {
            status,
            headers: Default::default(),
            body: body.to_vec(),
        };
        let ok = map_reply("k", "w", r(200, br#"{"@odata.context":"x","value":"v"}"#)).unwrap();
        assert_eq!(ok.value.expose(), "v");
        for (status, body, code) in [
            (200, &b"<html>"[..], ErrorCode::BadResponse),
            (200, br#"{"value": 5}"#, ErrorCode::BadResponse),
            (200, br#"[]"#, ErrorCode::BadResponse),
            (404, b"", ErrorCode::NotFound),
            (401, b"", ErrorCode::Unauthorized),
            (403, b"", ErrorCode::Forbidden),
            (429, b"", ErrorCode::Throttled),
            (503, b"", ErrorCode::Unavailable),
            (302, b"", ErrorCode::BadResponse),
            (400, b"", ErrorCode::BadResponse),
        ] {
            let e = map_reply("k", "w", r(status, body)).unwrap_err();
            assert_eq!((e.code, e.status), (code, Some(status)), "{status}");
        }
    }
}

//! Correlation and the facts telemetry needs, per upstream read (misses only: a hit never
//! gets here).
//!
//! - Every HTTP request carries `x-ms-client-request-id`, a fresh UUID v4 (one per logical
//!   request: its retries keep it, as the Azure SDKs do), and, when the JS layer had a span
//!   active, the W3C `traceparent` it passed in (checked here; anything malformed is dropped).
//! - Each logical request leaves a record (operation, host, vault index, status, duration,
//!   the store's request id, outcome, retries) in the flight's trace, a tokio task-local set
//!   around the source's fetch; the reply carries the records to JS, which makes spans and
//!   metrics of them. Names, hosts, codes, statuses and ids only: never a value, a token, a
//!   header value other than the two ids, or upstream text.

use reqwest::header::HeaderMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// At most this many records per flight (two vaults, a challenge, tokens, a 401 round: far less).
const MAX_RECORDS: usize = 16;
/// At most this many retries noted per record (`http::MAX_ATTEMPTS` is far less).
const MAX_RETRIES: usize = 8;

tokio::task_local! {
    static CURRENT: Arc<FlightTrace>;
}

/// What one request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// The secret itself (Retail Server, Key Vault with a token).
    Secret,
    /// A token (managed identity, AAD).
    Token,
    /// Key Vault's challenge: the first request to a vault, without a token.
    Challenge,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Secret => "secret",
            Operation::Token => "token",
            Operation::Challenge => "challenge",
        }
    }
}

/// One attempt that was retried: what it got, and how long the wait before the next was.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub status: Option<u16>,
    /// Our error code for what the attempt got (THROTTLED, UNAVAILABLE, ...).
    pub error_type: &'static str,
    pub wait_ms: f64,
    /// When the attempt ended (unix ms).
    pub at_ms: f64,
}

/// One logical HTTP request (its retries included).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamRecord {
    pub operation: Operation,
    /// The host only (no port, path or query).
    pub host: String,
    /// Key Vault: 0 or 1, the vault's place in the ordered fallback.
    pub vault_index: Option<u8>,
    /// The last status read, if any.
    pub status: Option<u16>,
    /// Unix ms when the request began.
    pub started_ms: f64,
    pub duration_ms: f64,
    /// The store's request id (`x-ms-request-id`, ...), checked by `sane_request_id`.
    pub request_id: Option<String>,
    /// The `x-ms-client-request-id` sent.
    pub client_request_id: Option<String>,
    /// 'success' | 'http_error' | 'throttled' | 'timeout' | 'connection_error' | 'bad_response'
    pub outcome: &'static str,
    /// Our error code for a failed request (None on success).
    pub error_type: Option<&'static str>,
    pub retries: Vec<Retry>,
}

/// Where a flight's requests leave their records.
#[derive(Debug, Default)]
pub struct FlightTrace {
    traceparent: Option<String>,
    records: Mutex<Vec<UpstreamRecord>>,
    /// Key Vault: the vault whose answer (or failure) this is: (host, index).
    vault: Mutex<Option<(String, Option<u8>)>>,
}

/// What a fetch learnt, for the reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Upstream {
    pub records: Vec<UpstreamRecord>,
    pub vault: Option<String>,
    pub vault_index: Option<u8>,
}

impl FlightTrace {
    pub fn new(traceparent: Option<String>) -> Arc<FlightTrace> {
        Arc::new(FlightTrace {
            traceparent: traceparent.as_deref().and_then(valid_traceparent),
            ..FlightTrace::default()
        })
    }

    /// What the flight's requests left (taken: a second call sees none).
    pub fn take(&self) -> Upstream {
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|p| p.into_inner()));
        let vault = self.vault.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (vault, vault_index) = match vault {
            Some((h, i)) => (Some(h), i),
            None => (None, None),
        };
        Upstream {
            records,
            vault,
            vault_index,
        }
    }
}

/// Runs `f` with `trace` as the flight's trace.
pub async fn scope<F: Future>(trace: Arc<FlightTrace>, f: F) -> F::Output {
    CURRENT.scope(trace, f).await
}

/// The flight's `traceparent`, if the caller had a span.
pub fn traceparent() -> Option<String> {
    CURRENT.try_with(|t| t.traceparent.clone()).ok().flatten()
}

pub fn record(r: UpstreamRecord) {
    let _ = CURRENT.try_with(|t| {
        let mut records = t.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() < MAX_RECORDS {
            records.push(r);
        }
    });
}

/// Key Vault: which vault this answer (or failure) is from.
pub fn note_vault(host: &str, index: Option<u8>) {
    let _ = CURRENT.try_with(|t| {
        *t.vault.lock().unwrap_or_else(|p| p.into_inner()) = Some((host.to_owned(), index));
    });
}

pub fn push_retry(retries: &mut Vec<Retry>, r: Retry) {
    if retries.len() < MAX_RETRIES {
        retries.push(r);
    }
}

/// Unix time in ms (0 if the clock is before 1970).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// W3C trace context, version 00: `00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all
/// zero. Anything else: None (the header is not sent).
pub fn valid_traceparent(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex = |r: &[u8]| r.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let zero = |r: &[u8]| r.iter().all(|c| *c == b'0');
    let ok = b.len() == 55
        && &b[0..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(&b[3..35])
        && !zero(&b[3..35])
        && hex(&b[36..52])
        && !zero(&b[36..52])
        && hex(&b[53..55]);
    ok.then(|| s.to_owned())
}

/// A request id is not a secret, but it goes into messages, spans and events: only a sane
/// token (1–64 characters of `[0-9A-Za-z-]`) is kept.
/// A store that echoes a credential it was sent as its request id gets no request id.
pub fn sane_request_id(s: &str) -> Option<String> {
    let s = s.trim();
    let token =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    (token && crate::secret::scrub(s.to_owned()) == s).then(|| s.to_owned())
}

/// The store's request id: Key Vault's `x-ms-request-id`; Retail Server's `request-id` or
/// `ms-request-id` (the first present, checked).
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-ms-request-id", "request-id", "ms-request-id"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .and_then(sane_request_id)
}

/// ` (request id …)`, for a message a person would quote to support; '' without one.
pub fn quoted(request_id: Option<&str>) -> String {
    match request_id {
        Some(id) => format!(" (request id {id})"),
        None => String::new(),
    }
}

/// A fresh UUID v4 from the system's secure random source (None if it failed: then no
/// header rather than a guessable one).
pub fn client_request_id() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Our error code for a status (what a request's failure would become).
pub fn error_type_of_status(operation: Operation, status: u16) -> &'static str {
    if operation == Operation::Token {
        return "IDENTITY_UNAVAILABLE";
    }
    match status {
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        429 => "THROTTLED",
        s if s >= 500 => "UNAVAILABLE",
        _ => "BAD_RESPONSE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn traceparents_are_checked() {
        let good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(valid_traceparent(good).as_deref(), Some(good));
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx: y",
        ] {
            assert_eq!(valid_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_ids_must_be_sane_tokens() {
        assert_eq!(sane_request_id(" 1234-abcd ").as_deref(), Some("1234-abcd"));
        assert_eq!(sane_request_id(&"a".repeat(64)).map(|s| s.len()), Some(64));
        for bad in [
            "",
            "   ",
            "has space",
            "a=b",
            "SENTINEL;x",
            "é",
            &"a".repeat(65),
        ] {
            assert_eq!(sane_request_id(bad), None, "{bad:?}");
        }
        let held = crate::secret::Scrubbed::new("SENTINEL-ECHOED-TOKEN-1");
        assert_eq!(
            sane_request_id("SENTINEL-ECHOED-TOKEN-1"),
            None,
            "an echoed credential"
        );
        drop(held);
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h), None);
        h.insert("request-id", HeaderValue::from_static("rs-1"));
        assert_eq!(request_id(&h).as_deref(), Some("rs-1"));
        h.insert("x-ms-request-id", HeaderValue::from_static("kv-1"));
        assert_eq!(request_id(&h).as_deref(), Some("kv-1"));
        h.insert("x-ms-request-id", HeaderValue::from_static("bad id"));
        assert_eq!(
            request_id(&h),
            None,
            "the first present is the one; a bad one is dropped"
        );
    }

    #[test]
    fn client_request_ids_are_uuid_v4() {
        let a = client_request_id().unwrap();
        let b = client_request_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[tokio::test]
    async fn records_stay_in_their_flight() {
        let t = FlightTrace::new(Some("not a traceparent".into()));
        assert_eq!(t.traceparent, None);
        let rec = |host: &str| UpstreamRecord {
            operation: Operation::Secret,
            host: host.into(),
            vault_index: None,
            status: Some(200),
            started_ms: 0.0,
            duration_ms: 1.0,
            request_id: None,
            client_request_id: None,
            outcome: "success",
            error_type: None,
            retries: Vec::new(),
        };
        record(rec("outside")); // no flight: dropped
        scope(t.clone(), async {
            for _ in 0..40 {
                record(rec("inside"));
            }
            note_vault("v", Some(1));
        })
        .await;
        let u = t.take();
        assert_eq!(u.records.len(), MAX_RECORDS);
        assert!(u.records.iter().all(|r| r.host == "inside"));
        assert_eq!((u.vault.as_deref(), u.vault_index), (Some("v"), Some(1)));
        assert!(t.take().records.is_empty());
    }
}

//! One HTTP layer for every remote source and identity provider.
//!
//! - a connect timeout and the call's overall deadline (retries included);
//! - retries of connection errors, 5xx and 429 with exponential backoff and full jitter, at
//!   most `MAX_ATTEMPTS`, honouring `Retry-After`, `retry-after-ms` and `x-ms-retry-after-ms`
//!   when the wait fits in the deadline;
//! - a response size cap; redirects never followed (a 3xx is the caller's BAD_RESPONSE);
//! - a bearer token only to an allowed https host (plain http only to loopback, and only when
//!   the caller opted in), never to a url with user info: checked here, so no source can
//!   forget it. A refused url gets HOST_NOT_ALLOWED and no request at all.
//!
//! Errors are described in our own words: reqwest's text is never passed on.

use crate::error::{ErrorCode, SecretError};
use crate::hosts::HostPolicy;
use crate::secret::SecretString;
use crate::trace::{self, Operation, Retry, UpstreamRecord};
use once_cell::sync::Lazy;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::Method;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(4);

/// One request. Secrets go in `bearer` or in `secret_headers` (marked sensitive).
pub struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub secret_headers: Vec<(&'static str, &'a SecretString)>,
    pub bearer: Option<&'a SecretString>,
    pub form: Option<String>,
    /// Statuses retried besides 429 and 5xx (IMDS: 404, 410).
    pub retry_statuses: &'static [u16],
    pub max_attempts: u32,
    /// What the request is for, in its telemetry record; None: a secret when it carries a
    /// bearer token, else a token request (identity endpoints make most token-less calls).
    pub operation: Option<Operation>,
    /// Key Vault: the vault's place (0, 1) in the ordered fallback.
    pub vault_index: Option<u8>,
}

/// A form may carry a client secret or a client assertion: wiped when the call is dropped.
impl Drop for Call<'_> {
    fn drop(&mut self) {
        if let Some(form) = &mut self.form {
            zeroize::Zeroize::zeroize(form);
        }
    }
}

impl<'a> Call<'a> {
    pub fn get(url: Url) -> Self {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            bearer: None,
            form: None,
            retry_statuses: &[],
            max_attempts: MAX_ATTEMPTS,
            operation: None,
            vault_index: None,
        }
    }

    fn operation(&self) -> Operation {
        self.operation.unwrap_or(if self.bearer.is_some() {
            Operation::Secret
        } else {
            Operation::Token
        })
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A body may hold a secret or a token: wiped when the reply is dropped.
impl Drop for HttpResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl HttpResponse {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why an attempt failed before a status was read.
enum Fault {
    /// Connection refused/reset, DNS, a body cut short: worth another attempt.
    Transport(String),
    TooLarge,
    Timeout,
    Build(String),
}

/// Extra trusted CA certificates (PEM), like Node's NODE_EXTRA_CA_CERTS: for a private CA, or a
/// loopback fake with a certificate made at run time. Read once, at the first remote call.
pub const EXTRA_CA_ENV: &str = "COMMERCE_SECRETS_EXTRA_CA_CERTS";

/// A client with this package's settings (no redirects, no proxy, connect timeout, pool);
/// `tls`: a TLS configuration of its own (a pinned certificate), else the default trust.
pub fn build_client(tls: Option<rustls::ClientConfig>) -> Result<reqwest::Client, String> {
    settings(reqwest::Client::builder(), tls)
}

/// The settings every client of this package has.
fn settings(
    builder: reqwest::ClientBuilder,
    tls: Option<rustls::ClientConfig>,
) -> Result<reqwest::Client, String> {
    let builder = match tls {
        Some(config) => builder.use_preconfigured_tls(config),
        None => builder,
    };
    builder
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        // No proxy: the identity endpoints are plain http on loopback or link-local, and a
        // proxy taken from the environment would see their secret headers.
        .no_proxy()
        .user_agent(concat!(
            "commerce-secret-manager/",
            env!("CARGO_PKG_VERSION")
        ))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|_| "the HTTP client could not be built".to_owned())
}

static CLIENT: Lazy<Result<reqwest::Client, String>> = Lazy::new(|| {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = std::env::var_os(EXTRA_CA_ENV) {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("{EXTRA_CA_ENV} cannot be read ({})", e.kind()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| format!("{EXTRA_CA_ENV} does not hold PEM certificates"))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    settings(builder, None)
});

#[derive(Clone, Debug)]
pub struct Http {
    pub policy: HostPolicy,
}

/// What went wrong on the wire, in words a person can act on, from the HTTP stack's error chain
/// (its text is only classified, never quoted: it could carry a url).
fn describe_transport(e: &reqwest::Error, host: &str, place: &str) -> String {
    let mut texts = Vec::new();
    let mut kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            kind = kind.or(Some(io.kind()));
        }
        texts.push(s.to_string().to_ascii_lowercase());
        source = s.source();
    }
    classify_transport(
        &texts.join(" | "),
        kind,
        host,
        place,
        e.is_body() || e.is_decode(),
    )
}

/// `describe_transport` on the chain's text (lower case) and its first io error kind.
pub fn classify_transport(
    text: &str,
    kind: Option<std::io::ErrorKind>,
    host: &str,
    place: &str,
    body: bool,
) -> String {
    use std::io::ErrorKind as K;
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "nodename nor servname",
        "temporary failure in name resolution",
    ]) {
        return format!(
            "the DNS lookup of {host} failed (check the host name, and this machine's DNS)"
        );
    }
    if has(&[
        "certificate",
        "invalidcertificate",
        "unknownissuer",
        "notvalidforname",
    ]) {
        let reason = if has(&["unknownissuer", "unknown issuer"]) {
            "its issuer is not a trusted CA (a private CA needs COMMERCE_SECRETS_EXTRA_CA_CERTS)"
        } else if has(&["notvalidforname", "not valid for name"]) {
            "it is not valid for this host name"
        } else if has(&["expired"]) {
            "it has expired"
        } else if has(&["causedasendentity", "self-signed", "self signed"]) {
            "it is self-signed (a CA certificate used as a server's); trust its CA with COMMERCE_SECRETS_EXTRA_CA_CERTS"
        } else {
            "it was rejected"
        };
        return format!("the TLS certificate of {host} is not trusted: {reason}");
    }
    match kind {
        Some(K::ConnectionRefused) => {
            format!("{place} refused the connection (nothing listens there?)")
        }
        Some(K::ConnectionReset) | Some(K::ConnectionAborted) | Some(K::BrokenPipe) => {
            format!("the connection to {place} was reset")
        }
        Some(K::TimedOut) => format!("connecting to {place} timed out"),
        Some(K::NetworkUnreachable) | Some(K::HostUnreachable) => {
            format!("{place} cannot be reached from this machine (no route)")
        }
        _ if has(&["connection refused"]) => {
            format!("{place} refused the connection (nothing listens there?)")
        }
        _ if has(&[
            "reset",
            "connection closed before message completed",
            "unexpected eof",
            "incomplete message",
        ]) =>
        {
            format!("the connection to {place} was reset")
        }
        _ if body => format!("the reply from {place} was cut short"),
        _ => format!("the connection to {place} failed"),
    }
}

fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or("(no host)").to_owned()
}

fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => "(no host)".into(),
    }
}

/// The server's requested wait: `retry-after-ms`, `x-ms-retry-after-ms`, or `Retry-After`
/// (seconds or an HTTP-date), capped (see `time::secs`): any number a server sends is safe.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let num = |name: &str| text(name)?.parse::<f64>().ok();
    if let Some(ms) = num("retry-after-ms").or_else(|| num("x-ms-retry-after-ms")) {
        return crate::time::millis(ms);
    }
    let value = text("retry-after")?;
    if let Ok(s) = value.parse::<f64>() {
        return crate::time::secs(s);
    }
    let at = crate::time::parse_http_date(value)?;
    let now = crate::time::Clock::now(&crate::time::SystemClock);
    crate::time::secs((at - now).max(0.0))
}

fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Full jitter: a random wait in [0, min(cap, base * 2^(attempt-1))].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << (attempt - 1).min(10))
        .min(BACKOFF_CAP);
    crate::time::secs(ceiling.as_secs_f64() * jitter_fraction()).unwrap_or(Duration::ZERO)
}

impl Http {
    pub fn new(policy: HostPolicy) -> Self {
        Http { policy }
    }

    async fn attempt(
        client: &reqwest::Client,
        call: &Call<'_>,
        extra: &[(&'static str, String)],
        remaining: Duration,
    ) -> Result<HttpResponse, Fault> {
        let mut headers = HeaderMap::new();
        for (name, value) in call.headers.iter().chain(extra) {
            let v = HeaderValue::from_str(value)
                .map_err(|_| Fault::Build(format!("header {name} is not valid")))?;
            headers.insert(HeaderName::from_static(name), v);
        }
        for (name, value) in &call.secret_headers {
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| Fault::Build(format!("header {name} is not valid")))?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), v);
        }
        if let Some(token) = call.bearer {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| Fault::Build("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let mut req = client
            .request(call.method.clone(), call.url.clone())
            .headers(headers)
            .timeout(remaining);
        if let Some(form) = &call.form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone());
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                Fault::Timeout
            } else {
                Fault::Transport(describe_transport(
                    &e,
                    &host_of(&call.url),
                    &origin(&call.url),
                ))
            }
        })?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(Fault::TooLarge);
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        zeroize::Zeroize::zeroize(&mut body);
                        return Err(Fault::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(Fault::Timeout),
                Err(e) => {
                    return Err(Fault::Transport(describe_transport(
                        &e,
                        &host_of(&call.url),
                        &origin(&call.url),
                    )))
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Send `call`, retrying as the module says, until `deadline`. `what` names the call in
    /// messages ("secret 'k' from Retail Server"). A non-2xx status that is not retried, or
    /// still failing after the last attempt, comes back as a `HttpResponse` for the caller to map.
    pub async fn send(
        &self,
        call: &Call<'_>,
        deadline: Instant,
        what: &str,
    ) -> Result<HttpResponse, SecretError> {
        let client = CLIENT
            .as_ref()
            .map_err(|m| SecretError::new(ErrorCode::Unavailable, format!("{what}: {m}")))?;
        self.send_via(client, call, deadline, what).await
    }

    /// `send` through another client (one that pins a certificate, for Service Fabric).
    pub async fn send_via(
        &self,
        client: &reqwest::Client,
        call: &Call<'_>,
        deadline: Instant,
        what: &str,
    ) -> Result<HttpResponse, SecretError> {
        if call.bearer.is_some() {
            self.policy.check_token_url(&call.url).map_err(|why| {
                SecretError::new(
                    ErrorCode::HostNotAllowed,
                    format!("{what}: {why}; nothing was sent"),
                )
            })?;
        }
        // Correlation: one client request id for the request and its retries; the caller's
        // traceparent when it had a span (trace.rs).
        let client_request_id = trace::client_request_id();
        let mut extra = Vec::with_capacity(2);
        if let Some(id) = &client_request_id {
            extra.push(("x-ms-client-request-id", id.clone()));
        }
        if let Some(tp) = trace::traceparent() {
            extra.push(("traceparent", tp));
        }
        let started = Instant::now();
        let started_ms = trace::now_ms();
        let mut retries = Vec::new();
        let result = self
            .attempts(client, call, &extra, deadline, what, &mut retries)
            .await;
        let operation = call.operation();
        let (status, outcome, error_type, request_id) = match &result {
            Ok(r) => {
                let (outcome, error_type) = match r.status {
                    s if (200..300).contains(&s) => ("success", None),
                    // The challenge is a 401 by design.
                    401 if operation == Operation::Challenge => ("success", None),
                    429 => ("throttled", Some("THROTTLED")),
                    s => (
                        "http_error",
                        Some(trace::error_type_of_status(operation, s)),
                    ),
                };
                (
                    Some(r.status),
                    outcome,
                    error_type,
                    trace::request_id(&r.headers),
                )
            }
            Err(e) => {
                let outcome = match e.code {
                    ErrorCode::Timeout => "timeout",
                    ErrorCode::Unavailable => "connection_error",
                    _ => "bad_response",
                };
                (None, outcome, Some(e.code.as_str()), None)
            }
        };
        trace::record(UpstreamRecord {
            operation,
            host: host_of(&call.url),
            vault_index: call.vault_index,
            status,
            started_ms,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            request_id,
            client_request_id,
            outcome,
            error_type,
            retries,
        });
        result
    }

    /// The attempts of one request, retried as the module says, until `deadline`.
    async fn attempts(
        &self,
        client: &reqwest::Client,
        call: &Call<'_>,
        extra: &[(&'static str, String)],
        deadline: Instant,
        what: &str,
        retries: &mut Vec<Retry>,
    ) -> Result<HttpResponse, SecretError> {
        let place = origin(&call.url);
        let timeout = || {
            SecretError::new(
                ErrorCode::Timeout,
                format!("{what}: no answer from {place} before the deadline"),
            )
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(timeout());
            }
            let outcome = match tokio::time::timeout_at(
                deadline,
                Http::attempt(client, call, extra, deadline - now),
            )
            .await
            {
                Err(_) => return Err(timeout()),
                Ok(o) => o,
            };
            let (retry, wait, last) = match outcome {
                Err(Fault::Timeout) => return Err(timeout()),
                Err(Fault::TooLarge) => {
                    return Err(SecretError::new(
                        ErrorCode::BadResponse,
                        format!(
                            "{what}: the reply from {place} is larger than {} KiB",
                            MAX_BODY_BYTES / 1024
                        ),
                    ))
                }
                Err(Fault::Build(m)) => {
                    return Err(SecretError::new(
                        ErrorCode::InvalidArgument,
                        format!("{what}: {m}"),
                    ))
                }
                Err(Fault::Transport(m)) => {
                    let err = SecretError::new(ErrorCode::Unavailable, format!("{what}: {m}"));
                    (true, None, Err(err))
                }
                Ok(reply) => {
                    let retryable = reply.status == 429
                        || reply.status >= 500
                        || call.retry_statuses.contains(&reply.status);
                    (retryable, retry_after(&reply.headers), Ok(reply))
                }
            };
            if !retry || attempt >= call.max_attempts {
                return last;
            }
            // A server's Retry-After gets up to 20% more, at random: a fleet told the same wait
            // does not come back all at once.
            let wait = wait
                .and_then(|w| crate::time::secs(w.as_secs_f64() * (1.0 + 0.2 * jitter_fraction())))
                .unwrap_or_else(|| backoff(attempt));
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|t| t >= deadline)
            {
                // The wait the server asks for does not fit: answer now rather than time out.
                return last;
            }
            let (status, error_type) = match &last {
                Ok(r) => (
                    Some(r.status),
                    trace::error_type_of_status(call.operation(), r.status),
                ),
                Err(e) => (None, e.code.as_str()),
            };
            trace::push_retry(
                retries,
                Retry {
                    status,
                    error_type,
                    wait_ms: wait.as_secs_f64() * 1000.0,
                    at_ms: trace::now_ms(),
                },
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("x-ms-retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.insert("retry-after-ms", HeaderValue::from_static("50"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(50)));
        // An HTTP-date in the past: no wait.
        let mut past = HeaderMap::new();
        past.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        // Huge numbers from a hostile server are capped, never a panic.
        for (name, v) in [
            ("retry-after", "1e300"),
            ("retry-after", "1e19"),
            ("retry-after-ms", "1e300"),
            ("x-ms-retry-after-ms", "1e19"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(v));
            assert_eq!(retry_after(&h), Some(crate::time::MAX_WAIT), "{name}: {v}");
        }
        let mut junk = HeaderMap::new();
        junk.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&junk), None);
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= BACKOFF_CAP);
        }
    }
}

#[cfg(test)]
mod words {
    use super::classify_transport;
    use std::io::ErrorKind as K;

    #[test]
    fn network_failures_in_words() {
        let c = |t: &str, k| {
            classify_transport(
                t,
                k,
                "myvault.vault.azure.net",
                "myvault.vault.azure.net:443",
                false,
            )
        };
        assert_eq!(
            c("error sending request | client error (connect) | dns error: failed to lookup address information: name or service not known", None),
            "the DNS lookup of myvault.vault.azure.net failed (check the host name, and this machine's DNS)"
        );
        assert!(
            c("invalid peer certificate: unknownissuer", None).starts_with(
                "the TLS certificate of myvault.vault.azure.net is not trusted: its issuer"
            )
        );
        assert!(c("invalid peer certificate: notvalidforname", None)
            .ends_with("not valid for this host name"));
        assert_eq!(
            c("x", Some(K::ConnectionRefused)),
            "myvault.vault.azure.net:443 refused the connection (nothing listens there?)"
        );
        assert_eq!(
            c("x", Some(K::ConnectionReset)),
            "the connection to myvault.vault.azure.net:443 was reset"
        );
        assert_eq!(
            c("connection closed before message completed", None),
            "the connection to myvault.vault.azure.net:443 was reset"
        );
        assert_eq!(
            c("x", None),
            "the connection to myvault.vault.azure.net:443 failed"
        );
    }
}

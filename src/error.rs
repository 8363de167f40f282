//! The error codes of the public surface, in one place.
//!
//! A `SecretError` carries a code, a message that names the key and the fault, and the
//! upstream HTTP status when there was one. Messages never contain a secret value or a token:
//! every place that builds one formats only names, paths, codes and statuses.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    LocalFileMissing,
    LocalFileInvalid,
    HostNotAllowed,
    Unauthorized,
    Forbidden,
    Throttled,
    Timeout,
    Unavailable,
    BadResponse,
    IdentityUnavailable,
    NotConfigured,
    Closed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::LocalFileMissing,
        ErrorCode::LocalFileInvalid,
        ErrorCode::HostNotAllowed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Throttled,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::BadResponse,
        ErrorCode::IdentityUnavailable,
        ErrorCode::NotConfigured,
        ErrorCode::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::LocalFileMissing => "LOCAL_FILE_MISSING",
            ErrorCode::LocalFileInvalid => "LOCAL_FILE_INVALID",
            ErrorCode::HostNotAllowed => "HOST_NOT_ALLOWED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::Throttled => "THROTTLED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::BadResponse => "BAD_RESPONSE",
            ErrorCode::IdentityUnavailable => "IDENTITY_UNAVAILABLE",
            ErrorCode::NotConfigured => "NOT_CONFIGURED",
            ErrorCode::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The store may be only briefly unreachable: a last good value may still be served.
    pub fn allows_stale(self) -> bool {
        matches!(
            self,
            ErrorCode::Timeout | ErrorCode::Unavailable | ErrorCode::Throttled
        )
    }

    /// The store has said the value is gone or not ours: stop serving it at once.
    pub fn drops_entry(self) -> bool {
        matches!(
            self,
            ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::NotFound
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SecretError {
    pub code: ErrorCode,
    pub message: String,
    pub status: Option<u16>,
    /// A passing fault whatever the code (e.g. the identity endpoint refused the connection:
    /// IDENTITY_UNAVAILABLE, but as transient as a 5xx): stale values may be served.
    pub transient: bool,
    /// The store's request id (Key Vault `x-ms-request-id`, Retail Server's), when it gave
    /// one: not a secret, and only a sane token (`trace::sane_request_id`) is kept.
    pub request_id: Option<String>,
}

impl SecretError {
    /// The message is scrubbed of every credential this process sent and of user info in
    /// urls (`secret::scrub`): upstream text quoted in it cannot leak one.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SecretError {
            code,
            message: crate::secret::scrub(message.into()),
            status: None,
            transient: false,
            request_id: None,
        }
    }

    /// Whether a last good value may be served instead of this error.
    pub fn allows_stale(&self) -> bool {
        self.code.allows_stale() || (self.transient && !self.code.drops_entry())
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the store's request id, if it is a sane token (else there is none).
    pub fn with_request_id(mut self, id: Option<&str>) -> Self {
        self.request_id = id.and_then(crate::trace::sane_request_id);
        self
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let e = SecretError::new(ErrorCode::NotFound, "x");
        assert_eq!(
            e.clone()
                .with_request_id(Some("ab-12"))
                .request_id
                .as_deref(),
            Some("ab-12")
        );
        assert_eq!(e.clone().with_request_id(Some("a b")).request_id, None);
        assert_eq!(e.with_request_id(None).request_id, None);
    }

    #[test]
    fn only_transient_codes_allow_stale_and_only_definite_answers_drop() {
        let stale: Vec<_> = ErrorCode::ALL.iter().filter(|c| c.allows_stale()).collect();
        assert_eq!(
            stale,
            [
                &ErrorCode::Throttled,
                &ErrorCode::Timeout,
                &ErrorCode::Unavailable
            ]
        );
        let drops: Vec<_> = ErrorCode::ALL.iter().filter(|c| c.drops_entry()).collect();
        assert_eq!(
            drops,
            [
                &ErrorCode::NotFound,
                &ErrorCode::Unauthorized,
                &ErrorCode::Forbidden
            ]
        );
    }
}

//! Key Vault's replies in our words: a value with its id and expiry, or the error code and
//! what the vault said (its error code and message, never the request).

use crate::error::{ErrorCode, SecretError};
use crate::http::HttpResponse;
use crate::secret::Secret;
use serde_json::Value;

/// What a Key Vault error body says: `{ "error": { "code", "message", "innererror": { "code" } } }`,
/// each cut to 300 characters with control characters dropped.
struct VaultError {
    code: String,
    message: String,
    inner: String,
}

fn body_error(body: &[u8]) -> VaultError {
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
    VaultError {
        code: text(&e["code"]),
        message: text(&e["message"]),
        inner: text(&e["innererror"]["code"]),
    }
}

pub fn map_reply(
    key: &str,
    vault: &str,
    reply: &HttpResponse,
    now: f64,
) -> Result<Secret, SecretError> {
    let status = reply.status;
    // Key Vault's x-ms-request-id: what Azure support asks for, so it is in the message too.
    let request_id = crate::trace::request_id(&reply.headers);
    let err = |code: ErrorCode, m: String| {
        Err(SecretError::new(
            code,
            format!(
                "secret '{key}' in {vault}: {m}{}",
                crate::trace::quoted(request_id.as_deref())
            ),
        )
        .with_status(status)
        .with_request_id(request_id.as_deref()))
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
    let VaultError {
        code,
        message,
        inner,
    } = body_error(&reply.body);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_codes_and_attributes_are_honoured() {
        let now = 1_700_000_000.0;
        let r = |status: u16, body: &str| HttpResponse {
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
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-ms-request-id",
            "4c5b1c6e-0000-4000-8000-000000000001".parse().unwrap(),
        );
        let e = map_reply(
            "k",
            "v",
            &HttpResponse {
                status: 404,
                headers: h,
                body: Vec::new(),
            },
            now,
        )
        .unwrap_err();
        assert_eq!(
            e.request_id.as_deref(),
            Some("4c5b1c6e-0000-4000-8000-000000000001")
        );
        assert!(
            e.message
                .ends_with("(request id 4c5b1c6e-0000-4000-8000-000000000001)"),
            "{}",
            e.message
        );
    }
}

//! Property tests: every conversion of a number we do not control (options, Retry-After and
//! its millisecond variants, HTTP-dates, token lifetimes) into a `Duration` or an `Instant`
//! saturates or is refused; nothing panics, overflows or aborts.
use commerce_secret_manager::config::Config;
use commerce_secret_manager::http::retry_after;
use commerce_secret_manager::time::{after, millis, parse_http_date, secs, MAX_WAIT};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue};
use std::collections::HashMap;
use std::path::Path;

/// Any f64, with the hostile ones (huge, tiny, NaN, infinities, negative zero) weighted in.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        prop::sample::select(vec![
            1e300,
            1e23,
            1e22,
            1e19,
            1.8446744073709552e19,
            f64::MAX,
            f64::MIN_POSITIVE,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            600000.0,
            600000.0001,
        ]),
    ]
}

fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        number().prop_map(|n| format!("{n}")),
        number().prop_map(|n| format!("{n:e}")),
        "[0-9]{1,40}",
        "[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        "[ -~]{0,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn seconds_and_millis(x in number()) {
        for d in [secs(x), millis(x)].into_iter().flatten() {
            prop_assert!(d <= MAX_WAIT);
            let _ = after(d);
        }
    }

    #[test]
    fn retry_after_headers(value in header_text()) {
        for name in ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                let mut h = HeaderMap::new();
                h.insert(name, v);
                if let Some(d) = retry_after(&h) {
                    prop_assert!(d <= MAX_WAIT);
                }
            }
        }
    }

    #[test]
    fn http_dates(value in header_text()) {
        let _ = parse_http_date(&value);
    }

    #[test]
    fn number_options(x in number()) {
        let env = HashMap::new();
        for options in [
            serde_json::json!({ "source": "memory", "secrets": {}, "timeoutMs": x }),
            serde_json::json!({ "source": "memory", "secrets": {}, "cache": { "refreshAfterSeconds": x, "maxAgeSeconds": x } }),
            serde_json::json!({ "source": "memory", "secrets": {}, "cache": { "staleIfErrorSeconds": x, "negativeTtlSeconds": x } }),
            serde_json::json!({ "source": "memory", "secrets": {}, "cache": { "maxEntries": x, "maxRefreshAfterSeconds": x } }),
        ] {
            match Config::from_parts(&options, &env, Path::new("/")) {
                Ok(c) => {
                    prop_assert!(c.timeout_ms >= 1.0 && c.timeout_ms <= 600000.0);
                    prop_assert!(c.policy.max_entries >= 1);
                }
                Err(m) => prop_assert!(m.starts_with("option `"), "{}", m),
            }
        }
    }
}

//! Checked conversions from numbers we do not control (options, headers, token replies) to
//! `Duration` and `Instant`. `Duration::from_secs_f64(1e300)` panics, and so does
//! `Instant + Duration` on overflow: everything here saturates or answers `None` instead.

use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// The longest wait or deadline this crate ever uses; anything longer is capped to it.
pub const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Seconds (finite, >= 0) as a Duration, capped at `MAX_WAIT`; `None` for NaN or negatives.
pub fn secs(x: f64) -> Option<Duration> {
    if x.is_nan() || x < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(x).map_or(MAX_WAIT, |d| d.min(MAX_WAIT)))
}

/// Milliseconds, as `secs`.
pub fn millis(x: f64) -> Option<Duration> {
    secs(x / 1000.0)
}

/// `now + d`, saturating at `now + MAX_WAIT` (never a panic).
pub fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(MAX_WAIT))
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of an HTTP-date in the preferred IMF-fixdate form
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), or `None`.
pub fn parse_http_date(s: &str) -> Option<f64> {
    let s = s.trim();
    let rest = s.get(5..)?; // "Sun, "
    if s.as_bytes().get(3) != Some(&b',') {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() != 5 || parts[4] != "GMT" {
        return None;
    }
    let day: u32 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as u32
        + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<u32> = parts[3]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=31).contains(&day) {
        return None;
    }
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, i64::from(month), i64::from(day));
    Some((days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate() {
        assert_eq!(secs(1e300), Some(MAX_WAIT));
        assert_eq!(secs(1e19), Some(MAX_WAIT));
        assert_eq!(secs(f64::INFINITY), Some(MAX_WAIT));
        assert_eq!(secs(f64::NAN), None);
        assert_eq!(secs(-1.0), None);
        assert_eq!(millis(1500.0), Some(Duration::from_millis(1500)));
        let _ = after(Duration::MAX);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777.0)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        for bad in [
            "",
            "Sun, 06 Nov 1994",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 99 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 PST",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}

/// Unix time in (fractional) seconds.
pub trait Clock: Send + Sync {
    fn now(&self) -> f64;
}

pub struct SystemClock;

/// The system clock moved by an offset that tests set (the addon's `testControl`, never the
/// public API): the cache's policy times are then tested without sleeping through them.
#[derive(Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> f64 {
        SystemClock.now() + self.offset_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

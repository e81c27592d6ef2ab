//! Wall-clock timestamps for journals and state. Scheduling uses `tokio::time` (monotonic,
//! pausable in tests); only what is written to disk reads the wall clock, through here.

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds since the Unix epoch, as journals store them.
pub fn epoch() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9
}

/// Milliseconds since the Unix epoch, for file names that must sort and never collide.
pub fn epoch_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// UTC ISO-8601 with a `Z` suffix for an epoch-seconds value.
pub fn iso(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let nanos = ((epoch - epoch.floor()) * 1e9) as u32;
    DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// UTC time as `YYYY-MM-DD HH:MM:SS` for the Markdown quarantine log.
pub fn human(epoch: f64) -> String {
    DateTime::<Utc>::from_timestamp(epoch.floor() as i64, 0).unwrap_or_default().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_is_utc_with_z() {
        assert_eq!(iso(0.5), "1970-01-01T00:00:00.500Z");
        assert_eq!(human(86_400.9), "1970-01-02 00:00:00");
    }
}

//! Times in statuses: RFC 3339, whole seconds, UTC. Formatting and parsing only; `now`
//! always comes from the caller.

use std::time::{Duration, SystemTime};

/// `2024-01-01T00:00:00Z`.
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses what [`format`] wrote; `None` for anything else (an older or hand-edited
/// status is treated as if the time were not recorded).
pub fn parse(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// An attempt's id: `now` in Unix seconds and the attempt number, so a new attempt (and
/// the restart token derived from it) differs from every earlier one.
pub fn attempt_id(now: SystemTime, attempt: u32) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}-{attempt}")
}

/// `later - earlier`, zero when `later` is not later.
pub fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// A short human form of a duration: `45s`, `3m`, `2h`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(format(t), "2023-11-14T22:13:20Z");
        assert_eq!(parse(&format(t)), Some(t));
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn short_durations() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(600)), "10m");
        assert_eq!(short(Duration::from_secs(7200)), "2h");
    }
}

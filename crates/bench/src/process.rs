//! What the kernel says about a function's process, and the function's own log timeline.

use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Peak resident set size (`VmHWM`) of a live process, in MiB, from `/proc/<pid>/status`.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time a live process has used so far, all its threads together, from the scheduler's
/// nanosecond accounting (`/proc/<pid>/task/*/schedstat`, first field). Unlike wall time it does
/// not count waiting for moto or the database, nor time other processes took from this one, so
/// it compares builds on a noisy machine (the release profiles, BENCHMARKS.md).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        nanos += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(nanos))
}

/// The higher of two peaks, either of which may be unknown.
pub fn higher(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// One line of a function's JSON log: when, and what it said.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub at: SystemTime,
    pub fields: Value,
}

/// The JSON lines of `logs` that carry an RFC 3339 `timestamp`, in order.
pub fn log_events(logs: &str) -> Vec<LogEvent> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|fields| {
            let at = parse_rfc3339(fields.get("timestamp")?.as_str()?)?;
            Some(LogEvent { at, fields })
        })
        .collect()
}

/// `2026-01-01T12:34:56.123456Z` (UTC, any number of fraction digits) as a `SystemTime`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (date_parts.next()?.ok()?, date_parts.next()?.ok()?, date_parts.next()?.ok()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock_parts = clock.split(':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (clock_parts.next()?.ok()?, clock_parts.next()?.ok()?, clock_parts.next()?.ok()?);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(SystemTime::UNIX_EPOCH + Duration::new(u64::try_from(seconds).ok()?, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_parse_to_the_microsecond() {
        let at = parse_rfc3339("2026-03-01T00:00:01.250000Z").unwrap();
        let since_epoch = at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        // 2026-03-01 is day 20513 since the epoch.
        assert_eq!(since_epoch, Duration::from_secs(20_513 * 86_400 + 1) + Duration::from_millis(250));
        assert!(parse_rfc3339("2026-03-01 00:00:01").is_none());
    }

    #[test]
    fn this_process_has_used_some_cpu_and_it_only_grows() {
        let before = cpu_time(std::process::id()).expect("schedstat is readable");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = cpu_time(std::process::id()).unwrap();
        assert!(after > before && before > Duration::ZERO, "{before:?} -> {after:?}");
    }

    #[test]
    fn json_lines_with_a_timestamp_become_events() {
        let logs = "not json\n{\"timestamp\":\"2026-01-01T00:00:00.5Z\",\"message\":\"hello\",\"step\":\"init\"}\n{\"message\":\"no time\"}";
        let events = log_events(logs);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].fields["message"], "hello");
        assert_eq!(events[0].fields["step"], "init");
    }
}

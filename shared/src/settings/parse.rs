//! Parsers for the value forms settings take: rates, byte sizes, durations.

use std::time::Duration;

/// A budget of `count` requests in any window of `period` (`10/min`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    /// Parses `N/s`, `N/min` or `N/h` (also `N/sec`, `N/m`, `N/hour`).
    pub fn parse(text: &str) -> Result<Rate, String> {
        let (count, unit) =
            text.trim().split_once('/').ok_or_else(|| format!("expected N/s, N/min or N/h, got {text:?}"))?;
        let count: u32 = count.trim().parse().map_err(|_| format!("the count in {text:?} is not a whole number"))?;
        if count == 0 {
            return Err(format!("a rate of zero would stop all work: {text:?}"));
        }
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("unknown period {other:?}; use s, min or h")),
        };
        Ok(Rate { count, period })
    }

    /// The spacing between two requests when `margin` of slack is added to
    /// every window, so that jitter between reserving a slot and the request
    /// arriving never fits `count + 1` requests into one window.
    pub fn interval_with_margin(&self, margin: Duration) -> Duration {
        (self.period + margin) / self.count
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Parses `1GiB`, `512MiB`, `100MB`, `4096` (bytes).
pub fn byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("expected a size such as 1GiB or 512MiB, got {text:?}"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" | "ki" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" | "mi" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" | "gi" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    Ok((number * scale as f64) as u64)
}

/// Parses `250ms`, `2s`, `5min`, `1h 30m` (humantime's forms).
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("expected a duration such as 2s or 5min, got {text:?}: {e}"))
}

/// Parses a comma-separated list of durations, sorted and deduplicated.
pub fn duration_list(text: &str) -> Result<Vec<Duration>, String> {
    let mut list = text.split(',').filter(|s| !s.trim().is_empty()).map(duration).collect::<Result<Vec<_>, _>>()?;
    list.sort();
    list.dedup();
    if list.is_empty() || list[0].is_zero() {
        return Err(format!("expected a list of positive durations, got {text:?}"));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_every_unit() {
        assert_eq!(Rate::parse("10/min").map(|r| r.period), Ok(Duration::from_secs(60)));
        assert_eq!(Rate::parse(" 10 / s ").map(|r| r.count), Ok(10));
        assert_eq!(Rate::parse("3/h").map(|r| r.period), Ok(Duration::from_secs(3600)));
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("10").is_err());
        assert!(Rate::parse("10/day").is_err());
    }

    #[test]
    fn margin_widens_the_spacing() {
        let r = Rate::parse("10/s").expect("valid");
        assert_eq!(r.interval_with_margin(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(r.interval_with_margin(Duration::from_millis(50)), Duration::from_millis(105));
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(byte_size("1GiB"), Ok(1 << 30));
        assert_eq!(byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(byte_size("1.5GiB"), Ok(3 << 29));
        assert!(byte_size("lots").is_err());
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            duration_list("30s,1s,5s,1s"),
            Ok(vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)])
        );
    }
}

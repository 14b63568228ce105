//! The value types behind the settings (rates, ranges) and how they parse from text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A budget: at most `limit` requests in any sliding window of `period`.
///
/// Parses from the pipeline's notation `N/s`, `N/min` or `N/h`, so the stub
/// and the pipeline read the same settings the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Requests allowed in one window; at least 1.
    pub limit: u32,
    /// The window's length.
    #[serde(with = "millis")]
    pub period: Duration,
}

impl Rate {
    /// `n` requests per second.
    pub const fn per_second(n: u32) -> Self {
        Rate { limit: n, period: Duration::from_secs(1) }
    }
    /// `n` requests per minute.
    pub const fn per_minute(n: u32) -> Self {
        Rate { limit: n, period: Duration::from_secs(60) }
    }
    /// `n` requests per `period` (any length, for tests that need short windows).
    pub const fn per(n: u32, period: Duration) -> Self {
        Rate { limit: n, period }
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, unit) = s.trim().split_once('/').ok_or("expected N/s, N/min or N/h")?;
        let limit: u32 = n.trim().parse().map_err(|_| format!("{n:?} is not a whole number"))?;
        if limit == 0 {
            return Err("the limit must be at least 1".into());
        }
        let period = match unit.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "min" | "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => return Err(format!("unknown unit {other:?}; use s, min or h")),
        };
        Ok(Rate { limit, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_millis() {
            1000 => write!(f, "{}/s", self.limit),
            60_000 => write!(f, "{}/min", self.limit),
            3_600_000 => write!(f, "{}/h", self.limit),
            ms => write!(f, "{}/{ms}ms", self.limit),
        }
    }
}

/// A range of durations, `2s..8s`, from which a value is drawn uniformly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationRange {
    /// Shortest value.
    #[serde(with = "millis")]
    pub min: Duration,
    /// Longest value (inclusive).
    #[serde(with = "millis")]
    pub max: Duration,
}

impl DurationRange {
    /// The range `min..=max`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        DurationRange { min, max }
    }
    /// A value drawn uniformly from the range.
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        let (lo, hi) = (self.min.as_millis() as u64, self.max.as_millis() as u64);
        Duration::from_millis(if hi > lo { rng.random_range(lo..=hi) } else { lo })
    }
}

impl FromStr for DurationRange {
    type Err = String;
    /// `2s..8s`, `500ms..2s`, or a single duration such as `3s`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |p: &str| humantime::parse_duration(p.trim()).map_err(|e| format!("{p:?}: {e}"));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b.trim_start_matches('='))?),
            None => (parse(s)?, parse(s)?),
        };
        if min > max {
            return Err("the range's start is after its end".into());
        }
        Ok(DurationRange { min, max })
    }
}

/// A range of whole numbers, both ends included: `0..12` means 0 to 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRange {
    /// Smallest value.
    pub min: u32,
    /// Largest value (inclusive).
    pub max: u32,
}

impl CountRange {
    /// The range `min..=max`.
    pub const fn new(min: u32, max: u32) -> Self {
        CountRange { min, max }
    }
    /// Picks a value from the range by a hash, so the same input gives the same count.
    pub fn pick(&self, hash: u64) -> u32 {
        let span = u64::from(self.max - self.min) + 1;
        self.min + (hash % span) as u32
    }
}

impl FromStr for CountRange {
    type Err = String;
    /// `0..12`, `0..=12` or a single number; both ends included, at most 3000.
    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |p: &str| p.trim().parse::<u32>().map_err(|_| format!("{p:?} is not a whole number"));
        let (min, max) = match s.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b.trim_start_matches('='))?),
            None => (parse(s)?, parse(s)?),
        };
        if min > max || max > 3000 {
            return Err("expected lo..hi with lo <= hi <= 3000".into());
        }
        Ok(CountRange { min, max })
    }
}

/// Serialises a `Duration` as whole milliseconds, the unit every admin endpoint uses.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_the_pipelines_notation() {
        assert_eq!("10/min".parse::<Rate>(), Ok(Rate::per_minute(10)));
        assert_eq!("10/s".parse::<Rate>(), Ok(Rate::per_second(10)));
        assert_eq!("5/h".parse::<Rate>().map(|r| r.period), Ok(Duration::from_secs(3600)));
        assert!("0/s".parse::<Rate>().is_err());
        assert!("ten/s".parse::<Rate>().is_err());
        assert!("10/day".parse::<Rate>().is_err());
        assert_eq!(Rate::per_minute(10).to_string(), "10/min");
    }

    #[test]
    fn ranges_parse_with_both_ends_included() {
        let r: DurationRange = "2s..8s".parse().expect("valid range");
        assert_eq!((r.min, r.max), (Duration::from_secs(2), Duration::from_secs(8)));
        let one: DurationRange = "500ms".parse().expect("a single duration");
        assert_eq!(one.min, one.max);
        assert!("8s..2s".parse::<DurationRange>().is_err());
        assert_eq!("0..12".parse::<CountRange>(), Ok(CountRange::new(0, 12)));
        assert_eq!("3..=3".parse::<CountRange>(), Ok(CountRange::new(3, 3)));
        assert!("0..3001".parse::<CountRange>().is_err());
        assert!((0..50).all(|h| CountRange::new(2, 4).pick(h) <= 4));
    }
}

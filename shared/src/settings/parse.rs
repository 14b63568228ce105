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

/// Parses `AMQP_URL`: one AMQP URL, or several separated by commas (the
/// nodes of one cluster), each with its own credentials and vhost. Errors
/// name the address by its place in the list, never by its text, which may
/// hold a password.
pub fn amqp_urls(text: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if parts.is_empty() {
        return Err("expected one or more amqp:// URLs separated by commas".into());
    }
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let which = if count == 1 { "the address".to_string() } else { format!("address {} of {count}", i + 1) };
            let url = url::Url::parse(part).map_err(|e| format!("{which} is not a URL ({e})"))?;
            if !matches!(url.scheme(), "amqp" | "amqps") {
                return Err(format!("{which} has scheme {:?}; use amqp:// or amqps://", url.scheme()));
            }
            // lapin's own parser must take it too (its error would echo the
            // URL, password included, so only its verdict is kept).
            part.parse::<lapin::uri::AMQPUri>().map_err(|_| format!("{which} is not a valid AMQP URL"))?;
            Ok(part.to_string())
        })
        .collect()
}

/// An AMQP address as logs may show it: host, port and vhost, no credentials.
pub fn amqp_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(if u.scheme() == "amqps" { 5671 } else { 5672 }),
            u.path()
        ),
        Err(_) => "an unparseable address".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_url_takes_a_list_each_with_its_own_credentials_and_vhost() {
        let urls = amqp_urls(" amqp://a:pw1@node1:5681/%2f , amqps://b:pw2@node2/orders,amqp://node3:5683/v%2Fx ,")
            .expect("three valid URLs");
        assert_eq!(urls.len(), 3);
        let parsed: Vec<lapin::uri::AMQPUri> = urls.iter().map(|u| u.parse().expect("valid")).collect();
        let users: Vec<&str> = parsed.iter().map(|u| u.authority.userinfo.username.as_str()).collect();
        assert_eq!(users, ["a", "b", "guest"]);
        assert_eq!(parsed[1].authority.userinfo.password, "pw2");
        let vhosts: Vec<&str> = parsed.iter().map(|u| u.vhost.as_str()).collect();
        assert_eq!(vhosts, ["/", "orders", "v/x"]);
        assert_eq!(parsed[1].authority.port, 5671);
        assert_eq!(amqp_address(&urls[0]), "node1:5681/%2f");
        assert_eq!(amqp_address(&urls[1]), "node2:5671/orders");
        assert_eq!(amqp_urls("amqp://guest:guest@127.0.0.1:5672/%2f").map(|u| u.len()), Ok(1));
    }

    #[test]
    fn a_bad_amqp_address_is_named_by_place_never_by_its_password() {
        let err = amqp_urls("amqp://u:secret1@h1/,http://u:secret2@h2/").expect_err("http is not AMQP");
        assert!(err.contains("address 2 of 2") && !err.contains("secret"), "{err}");
        let err = amqp_urls("amqp://u:secret1@h1/,not a url").expect_err("not a URL");
        assert!(err.contains("address 2 of 2") && !err.contains("secret"), "{err}");
        assert!(amqp_urls(" , ").is_err());
    }

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

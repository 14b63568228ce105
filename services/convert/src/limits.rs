//! Caps on one conversion (`CONVERT_MEMORY_LIMIT`, `CONVERT_TIMEOUT`) and how many run at once (`CONVERT_PREFETCH`).

use std::time::Duration;

/// Caps applied to one conversion's child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Address-space cap (`RLIMIT_AS`) of the child, in bytes. `CONVERT_MEMORY_LIMIT`, default 1 GiB.
    pub memory_bytes: u64,
    /// Wall-clock limit; past it the child's whole process group is killed. `CONVERT_TIMEOUT`, default 120 s.
    pub timeout: Duration,
    /// CPU seconds (`RLIMIT_CPU`) of each process in the child's group. Default 60 s.
    pub cpu_seconds: u64,
}

pub const GIB: u64 = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: GIB, timeout: Duration::from_secs(120), cpu_seconds: 60 }
    }
}

impl Limits {
    /// Reads `CONVERT_MEMORY_LIMIT` (e.g. `1GiB`, `512MiB`, `800M`, bytes) and `CONVERT_TIMEOUT`
    /// (e.g. `120s`, `2m`, seconds), failing on a malformed value so a typo stops the service at start.
    /// `CONVERT_CPU_SECONDS` overrides the CPU limit; by default it is half the timeout, at least 1 s.
    pub fn from_env() -> Result<Limits, String> {
        let mut limits = Limits::default();
        if let Some(v) = env("CONVERT_MEMORY_LIMIT") {
            limits.memory_bytes =
                parse_bytes(&v).ok_or(format!("CONVERT_MEMORY_LIMIT={v:?} is not a size like 1GiB"))?;
        }
        if let Some(v) = env("CONVERT_TIMEOUT") {
            limits.timeout = parse_duration(&v).ok_or(format!("CONVERT_TIMEOUT={v:?} is not a duration like 120s"))?;
            limits.cpu_seconds = (limits.timeout.as_secs() / 2).max(1);
        }
        if let Some(v) = env("CONVERT_CPU_SECONDS") {
            limits.cpu_seconds = v.parse().map_err(|_| format!("CONVERT_CPU_SECONDS={v:?} is not a whole number"))?;
        }
        if limits.memory_bytes < 64 << 20 {
            return Err("CONVERT_MEMORY_LIMIT below 64 MiB leaves no room to convert anything".into());
        }
        Ok(limits)
    }
}

/// `CONVERT_PREFETCH` when set, else [`default_prefetch`] for this host (cores, memory or cgroup limit).
pub fn prefetch_from_env(limits: &Limits) -> Result<usize, String> {
    match env("CONVERT_PREFETCH") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("CONVERT_PREFETCH={v:?} is not a positive whole number")),
        },
        None => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            Ok(default_prefetch(cores, host_memory_bytes(), limits.memory_bytes))
        }
    }
}

/// Conversions in flight per instance: each is single-threaded, so no more than the cores;
/// each may grow to the cap, so no more than fit in memory after a reserve for the service itself,
/// its page cache and a LibreOffice or two running over their share.
pub fn default_prefetch(cores: usize, mem_bytes: u64, cap: u64) -> usize {
    let reserve = (512 << 20) + mem_bytes / 16;
    let by_memory = mem_bytes.saturating_sub(reserve) / cap.max(1);
    cores.min(usize::try_from(by_memory).unwrap_or(usize::MAX)).max(1)
}

/// Physical memory, or the container's cgroup limit when that is smaller (v2, then v1).
pub fn host_memory_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(4 * GIB, |kib| kib * 1024);
    let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
        .min();
    cgroup.map_or(total, |c| c.min(total))
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Sizes with binary (`KiB`, `MiB`, `GiB`) or decimal (`K`, `M`, `G`, `KB`…) units; bare numbers are bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" | "ki" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" | "mi" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" | "gi" => 1 << 30,
        _ => return None,
    };
    let bytes = num * mult as f64;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

/// Durations as `120s`, `2m`, `1h`, `500ms`, or bare seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => num,
        "ms" => num / 1000.0,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// "1 GiB", "512 MiB": how a cap reads in a reason for staff.
pub fn human_bytes(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(1 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_as_operators_write_them() {
        assert_eq!(parse_bytes("1GiB"), Some(GIB));
        assert_eq!(parse_bytes("512 MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("800M"), Some(800_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_duration("120s"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(human_bytes(GIB), "1 GiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
    }

    #[test]
    fn default_prefetch_is_bounded_by_cores_and_by_memory() {
        assert_eq!(default_prefetch(8, 12 * GIB, GIB), 8);
        assert_eq!(default_prefetch(16, 12 * GIB, GIB), 10);
        assert_eq!(default_prefetch(8, 2 * GIB, GIB), 1);
        assert_eq!(default_prefetch(2, GIB / 2, GIB), 1);
    }
}

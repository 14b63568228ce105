//! Caps on one conversion (`CONVERT_MEMORY_LIMIT`, `CONVERT_TIMEOUT`, read with the other settings in docket-shared) and how many run at once by default (`CONVERT_PREFETCH` unset).

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
        Limits::new(GIB, Duration::from_secs(120))
    }
}

impl Limits {
    /// The caps from `CONVERT_MEMORY_LIMIT` and `CONVERT_TIMEOUT` (read and
    /// checked with the other settings); CPU time is half the timeout, at
    /// least 1 s, so a busy loop is stopped before the wall clock runs out.
    pub fn new(memory_bytes: u64, timeout: Duration) -> Limits {
        Limits { memory_bytes, timeout, cpu_seconds: (timeout.as_secs() / 2).max(1) }
    }
}

/// [`default_prefetch`] for this host: its cores, and its memory or cgroup limit.
pub fn host_prefetch(cap: u64) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    default_prefetch(cores, host_memory_bytes(), cap)
}

/// What one conversion slot really holds, measured (docs/benchmarks.md): its warm office worker
/// (about 210 MiB resident) and the child converting beside it; `scripts/bench-documents` measured
/// 298 MiB a slot at prefetch 2 on a mixed archive, rounded up here for a margin.
pub const SLOT_BYTES: u64 = 384 << 20;

/// Conversions in flight per instance: each is single-threaded, so no more than the cores; each
/// costs [`SLOT_BYTES`] as measured, and one document at a time may grow to the cap `cap`, so no
/// more than fit in memory after a reserve for the service itself and its page cache and room for
/// that one document. (The 1 GiB worst case for every slot at once is what the container's memory
/// limit turns into the out-of-memory killer's choice of a conversion, never the service.)
pub fn default_prefetch(cores: usize, mem_bytes: u64, cap: u64) -> usize {
    let reserve = (512 << 20) + mem_bytes / 16;
    let by_memory = mem_bytes.saturating_sub(reserve).saturating_sub(cap.saturating_sub(SLOT_BYTES)) / SLOT_BYTES;
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
    fn caps_read_as_staff_write_them_and_cpu_time_follows_the_timeout() {
        assert_eq!(Limits::new(GIB, Duration::from_secs(120)).cpu_seconds, 60);
        assert_eq!(Limits::new(GIB, Duration::from_secs(1)).cpu_seconds, 1);
        assert_eq!(human_bytes(GIB), "1 GiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
    }

    #[test]
    fn default_prefetch_is_bounded_by_cores_and_by_the_measured_cost_of_a_slot() {
        assert_eq!(default_prefetch(8, 12 * GIB, GIB), 8);
        assert_eq!(default_prefetch(32, 12 * GIB, GIB), 27);
        // The k8s pod: 4 cores, 512 MiB + 4 slots x 384 MiB + one document's 1 GiB = 3 GiB.
        assert_eq!(default_prefetch(4, 3 * GIB, GIB), 4);
        assert_eq!(default_prefetch(8, 2 * GIB, GIB), 2);
        assert_eq!(default_prefetch(2, GIB / 2, GIB), 1);
    }
}

//! CPU time of processes, from `/proc`, for the benchmarks that print it.

/// This process's reaped children's CPU (cutime + cstime), in seconds.
pub fn reaped_children() -> f64 {
    stat_seconds("/proc/self/stat", 13..=14)
}

/// A live process's CPU and that of the children it reaped (utime, stime, cutime, cstime), in seconds.
pub fn process(pid: u32) -> f64 {
    stat_seconds(&format!("/proc/{pid}/stat"), 11..=14)
}

/// The sum of `/proc/…/stat` fields (counted after the command name, in clock ticks of 1/100 s).
fn stat_seconds(path: &str, fields: std::ops::RangeInclusive<usize>) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let values: Vec<f64> =
        stat.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect());
    fields.map(|i| values.get(i).copied().unwrap_or(0.0)).sum::<f64>() / 100.0
}

//! CPU time of processes, from `/proc`, for the benchmarks that print it.

/// This process's reaped children's CPU (cutime + cstime), in seconds.
pub fn reaped_children() -> f64 {
    stat_seconds("/proc/self/stat", 13..=14)
}

/// A live process's CPU and that of the children it reaped (utime, stime, cutime, cstime), in seconds.
pub fn process(pid: u32) -> f64 {
    stat_seconds(&format!("/proc/{pid}/stat"), 11..=14)
}

/// A live process's own CPU (utime, stime), without its children's, in seconds.
pub fn own(pid: u32) -> f64 {
    stat_seconds(&format!("/proc/{pid}/stat"), 11..=12)
}

/// The sum of `/proc/…/stat` fields (counted after the command name, in clock ticks of 1/100 s).
fn stat_seconds(path: &str, fields: std::ops::RangeInclusive<usize>) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let values: Vec<f64> =
        stat.rsplit_once(')').map_or(vec![], |(_, r)| r.split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect());
    fields.map(|i| values.get(i).copied().unwrap_or(0.0)).sum::<f64>() / 100.0
}

/// Every live process's CPU (as [`process`], reaped children included), summed by command name:
/// two snapshots, one before and one after a run, say where that run's CPU went.
pub fn by_command() -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(name) = stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map(|(n, _)| n.to_owned()) else {
            continue;
        };
        *out.entry(name).or_insert(0.0) += process(pid);
    }
    out
}

/// What each command name spent between two [`by_command`] snapshots, largest first.
pub fn spent(
    before: &std::collections::HashMap<String, f64>,
    after: &std::collections::HashMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .iter()
        .map(|(name, cpu)| (name.clone(), cpu - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, cpu)| *cpu >= 0.05)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

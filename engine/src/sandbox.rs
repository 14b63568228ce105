//! The system calls that confine a conversion child: limits set between fork and exec, the group kill,
//! and the child's own setup. The crate's only `unsafe` is the `pre_exec` registration below.

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Caps for the child, applied before it executes a single instruction of the converter, so no code
/// path in it (or in the tools it runs, which inherit them) escapes them.
///
/// - `RLIMIT_AS` = `memory`: an allocation past the cap fails, and the Rust child aborts.
/// - `RLIMIT_CPU`: SIGXCPU at `cpu` seconds, SIGKILL at `cpu_hard` (a child: five seconds later,
///   if SIGXCPU is ignored; an office worker: never, since it moves its own soft limit per document).
/// - `RLIMIT_CORE` = 0: a crash must not write a gigabyte core file into the container.
/// - `PR_SET_PDEATHSIG`: if the service dies, its children die with it rather than run on unowned.
///
/// The process group is set by `Command::process_group(0)` (safe API) and `oom_score_adj` by the
/// child itself ([`child_setup`]), which keeps this closure to plain system calls.
#[allow(unsafe_code)]
pub(crate) fn confine(cmd: &mut tokio::process::Command, memory: u64, cpu: u64, cpu_hard: u64) {
    let parent = std::process::id();
    let hook = move || -> std::io::Result<()> {
        setrlimit(Resource::RLIMIT_AS, memory, memory)?;
        setrlimit(Resource::RLIMIT_CPU, cpu, cpu_hard.max(cpu))?;
        setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        // The parent may have died between fork and prctl: then nobody would ever send the signal.
        if nix::unistd::getppid().as_raw() as u32 != parent {
            return Err(std::io::Error::other("parent exited before the child started"));
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs the closure in the forked child before exec, where only
    // async-signal-safe work is allowed, since another thread of the parent may have held a lock
    // (the allocator's, say) at the moment of the fork. The closure only makes system calls
    // (setrlimit, prctl, getppid) through nix's thin wrappers, which take integers and do not
    // allocate; it captures four integers by value and touches no shared state. Returning an error
    // makes spawn fail cleanly in the parent.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Kills every process in the group led by `pgid` (the child and whatever it started). A group
/// that is already gone is fine.
pub(crate) fn kill_group(pgid: u32) {
    // killpg(0) would signal our own process group, the service itself.
    if pgid <= 1 {
        return;
    }
    if let Ok(raw) = i32::try_from(pgid) {
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// First thing the child does: volunteer as the out-of-memory killer's first victim, so a
/// conversion, never the service, is what dies when the container runs short. Raising one's own
/// score needs no privilege. Failure (no /proc) only loses that preference.
pub(crate) fn child_setup() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
}

/// Peak resident memory of this process and of the largest tool it ran (LibreOffice, qpdf), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    let own = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let children = getrusage(UsageWho::RUSAGE_CHILDREN).map(|u| u64::try_from(u.max_rss()).unwrap_or(0)).unwrap_or(0);
    own.max(children)
}

/// Moves this process's soft CPU limit to what it has used plus `seconds`, before a warm worker's
/// next document: RLIMIT_CPU counts a process's whole life, and a worker lives for many documents.
/// The hard limit was left open by the parent for this; lowering the soft limit below what is used
/// would stop us at once, so it only ever sits ahead.
pub(crate) fn allow_cpu(seconds: u64) {
    let used = cpu_used().as_secs() + 1;
    let hard = getrlimit(Resource::RLIMIT_CPU).map_or(u64::MAX, |(_, hard)| hard);
    let _ = setrlimit(Resource::RLIMIT_CPU, used.saturating_add(seconds).min(hard), hard);
}

/// CPU time this process has used in all.
pub(crate) fn cpu_used() -> std::time::Duration {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let (user, sys) = (u.user_time(), u.system_time());
            let secs = user.tv_sec() + sys.tv_sec();
            let micros = user.tv_usec() + sys.tv_usec();
            std::time::Duration::from_micros(u64::try_from(secs * 1_000_000 + micros).unwrap_or(0))
        })
        .unwrap_or_default()
}

/// This process's resident memory now, in KiB (a warm worker's restart rule).
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

//! The parent's side of the one-shot child (tests and benchmarks; the service uses warm workers):
//! runs one conversion in a child process under the caps, waits without blocking the runtime,
//! kills the child's whole process group on timeout, and turns how it ended into a result with a
//! reason staff can read. Its reasons (how a conversion died, the timeout) are the workers' too.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::limits::human_bytes;
use crate::worker::Answer;
use crate::{ConvertError, Converted, DocKind, Limits, sandbox};

/// How one isolated run went, with what the benchmark wants to know besides the result.
#[derive(Debug)]
pub struct ChildReport {
    pub result: Result<Converted, ConvertError>,
    /// Peak resident memory of the child (or of the tool it ran, if larger); `None` if it was killed.
    pub peak_rss_bytes: Option<u64>,
    pub elapsed: Duration,
}

/// Convert `input` (a local file) into a PDF at `output`, in a child process of `exe` (the docket-convert binary).
///
/// Must be called from a tokio worker thread (not `spawn_blocking`): the child's parent-death
/// signal is tied to the thread that spawns it.
pub async fn convert_isolated(
    exe: &Path,
    input: &Path,
    output: &Path,
    name: &str,
    limits: &Limits,
) -> Result<Converted, ConvertError> {
    let report = run_isolated(exe, input, output, name, limits).await;
    if report.result.is_err() {
        // A killed child may have left a partial file; the output is ours to clear.
        let _ = tokio::fs::remove_file(output).await;
    }
    report.result
}

/// [`convert_isolated`] with the child's peak memory and duration.
pub async fn run_isolated(exe: &Path, input: &Path, output: &Path, name: &str, limits: &Limits) -> ChildReport {
    // Absolute paths: the child must never mistake an input for one of its own options. The
    // document's name (which may name the patient) goes in the environment, which only the
    // service's own user can read, not on the command line, which anyone on the host can.
    let args: Vec<OsString> = vec!["child".into(), absolute(input).into(), absolute(output).into()];
    run_child_with(exe, &args, &[(NAME_VAR, name)], limits).await
}

/// The environment variable that carries the document's name to the child.
pub(crate) const NAME_VAR: &str = "DOCKET_DOC_NAME";

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Runs `exe args…` as a capped conversion child and interprets its outcome. Public for the tests,
/// which run the child's test modes through it.
#[doc(hidden)]
pub async fn run_child(exe: &Path, args: &[OsString], limits: &Limits) -> ChildReport {
    run_child_with(exe, args, &[], limits).await
}

async fn run_child_with(exe: &Path, args: &[OsString], env: &[(&str, &str)], limits: &Limits) -> ChildReport {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(args)
        // Only what a conversion needs: the service's own settings (credentials) stay out.
        .env_clear()
        .envs(std::env::vars_os().filter(|(k, _)| passed_through(k)))
        .envs(env.iter().copied())
        // glibc's per-thread arenas reserve address space the cap counts; one arena is enough.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    sandbox::confine(&mut cmd, limits.memory_bytes, limits.cpu_seconds, limits.cpu_seconds.saturating_add(5));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return report(
                Err(ConvertError::Internal(format!("cannot start the converter child: {e}"))),
                None,
                started,
            );
        }
    };
    let pgid = child.id().unwrap_or(0);
    // If this future is dropped mid-conversion (the stage lost its broker
    // connection and abandons in-flight work), the whole group dies with it,
    // grandchildren such as LibreOffice included, not just the child.
    let mut group = GroupGuard(Some(pgid));
    let stdout = tokio::spawn(read_capped(child.stdout.take(), 64 << 10));
    let stderr = tokio::spawn(read_capped(child.stderr.take(), 16 << 10));
    let waited = tokio::time::timeout(limits.timeout, child.wait()).await;
    // Whatever the child left behind in its group (soffice, qpdf, a straggler) dies now; this also
    // closes their ends of our pipes, so the reads below finish. The group outlives a reaped leader
    // while any member remains, so its id cannot have been reused by then.
    sandbox::kill_group(pgid);
    group.0 = None;
    let status = match waited {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            return report(
                Err(ConvertError::Internal(format!("cannot wait for the converter child: {e}"))),
                None,
                started,
            );
        }
        Err(_) => {
            let _ = child.wait().await;
            None
        }
    };
    let out = collect(stdout).await;
    let err = collect(stderr).await;
    let answer = last_answer(&out);
    let kind = answer.as_ref().and_then(|a| a.kind).unwrap_or(DocKind::Unknown);
    let done = answer.filter(|a| !a.early);
    let peak = done.as_ref().map(|a| a.peak_rss_kib * 1024);
    if let Some(a) = &done {
        crate::child::log_notes(kind, &a.notes);
    }
    let result = match (status, done) {
        (None, _) => Err(timed_out(kind, limits)),
        (Some(_), Some(a)) => a.into_result(kind).map(|a| Converted { pages: a.pages, kind }),
        (Some(status), None) => Err(died(Some(status), kind, &err, limits, false)),
    };
    report(result, peak, started)
}

/// Kills a conversion's process group when dropped while still armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            sandbox::kill_group(pgid);
        }
    }
}

fn report(result: Result<Converted, ConvertError>, peak_rss_bytes: Option<u64>, started: Instant) -> ChildReport {
    ChildReport { result, peak_rss_bytes, elapsed: started.elapsed() }
}

/// Environment the child keeps: finding tools, locale, scratch, and the converter's own settings.
pub(crate) fn passed_through(key: &std::ffi::OsStr) -> bool {
    let key = key.to_string_lossy();
    matches!(&*key, "PATH" | "HOME" | "LANG" | "LC_ALL" | "TMPDIR" | "RUST_BACKTRACE") || key.starts_with("CONVERT_")
}

/// Why a child or warm worker ended without (the final line of) its outcome, in words for the
/// report. `office`: an office worker, whose crashes are LibreOffice's and whose exit without an
/// answer is a document LibreOffice stopped on; otherwise the converter's (a child or doc worker).
pub(crate) fn died(
    status: Option<std::process::ExitStatus>,
    kind: DocKind,
    stderr: &str,
    limits: &Limits,
    office: bool,
) -> ConvertError {
    let cap = human_bytes(limits.memory_bytes);
    if stderr.contains("bad_alloc")
        || stderr.contains("memory allocation of")
        || stderr.contains("out of memory")
        || stderr.contains("Cannot allocate memory")
    {
        return ConvertError::doc(kind, format!("the conversion exceeded the {cap} memory cap and was stopped"));
    }
    let (process, program) =
        if office { ("the office worker", "LibreOffice") } else { ("the converter child", "the converter") };
    let code = status.and_then(|s| s.code());
    match status.and_then(|s| s.signal()) {
        Some(nix::libc::SIGXCPU) => ConvertError::doc(
            kind,
            format!("the conversion used more than {} s of CPU time and was stopped", limits.cpu_seconds),
        ),
        // Not our kill (that is the timeout): the container's out-of-memory killer, most likely,
        // which picks conversions first. That says more about the host's load than the document.
        Some(nix::libc::SIGKILL) => ConvertError::Internal(format!(
            "{process} was killed by the system (probably the container ran out of memory)"
        )),
        Some(sig) => ConvertError::doc(kind, format!("{program} crashed on this document (signal {sig})")),
        None if office => ConvertError::doc(
            kind,
            format!(
                "LibreOffice stopped on this document without converting it{}",
                code.map_or(String::new(), |c| format!(" (status {c})"))
            ),
        ),
        None => ConvertError::Internal(format!(
            "the converter child exited with status {} without reporting an outcome: {}",
            code.unwrap_or(-1),
            crate::text::decode::prefix(stderr.trim(), 300)
        )),
    }
}

/// A document stopped at the wall timeout.
pub(crate) fn timed_out(kind: DocKind, limits: &Limits) -> ConvertError {
    ConvertError::doc(kind, format!("the conversion took longer than {} and was stopped", secs(limits.timeout)))
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

/// The last complete JSON line the child printed.
fn last_answer(out: &str) -> Option<Answer> {
    out.lines().rev().find_map(|l| serde_json::from_str::<Answer>(l).ok())
}

async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: u64) -> String {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(cap).read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A pipe's contents, waiting briefly: a process that left the group could still hold it open.
async fn collect(task: tokio::task::JoinHandle<String>) -> String {
    match tokio::time::timeout(Duration::from_secs(2), task).await {
        Ok(Ok(s)) => s,
        _ => String::new(),
    }
}

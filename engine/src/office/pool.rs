//! The parent's side of the office workers: one warm LibreOffice per conversion slot, fed one
//! document after another, replaced when it misbehaves.
//!
//! A worker is started on first need (LibreOffice takes about a second to start) and kept while it
//! behaves. It is retired, and the next document starts a fresh one, when:
//! - a document took longer than `CONVERT_TIMEOUT` (its whole process group is killed; that
//!   document fails with the timeout as its reason);
//! - it died on a document (memory cap, CPU limit, a crash): that document fails with the reason;
//!   the next document gets a fresh worker, so one bad document never fails another;
//! - it has converted `CONVERT_OFFICE_MAX_DOCS` documents, or its resident memory after a document
//!   is over `CONVERT_OFFICE_MAX_RSS` (LibreOffice's caches and leaks grow with use).
//!
//! Each worker runs under the caps of a conversion child: `RLIMIT_AS` = `CONVERT_MEMORY_LIMIT`,
//! its own process group, a parent-death signal, `oom_score_adj` 1000, a cleared environment, no
//! network (`unshare --net` where permitted), its own profile and scratch directory.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::worker::{Answer, Request};
use crate::limits::human_bytes;
use crate::{ConvertError, DocKind, Limits, sandbox};

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Workers at most: one per conversion slot (`CONVERT_PREFETCH`).
    pub size: usize,
    /// The caps of one document (memory of the worker, wall time and CPU per document).
    pub limits: Limits,
    /// Documents a worker converts before it is replaced (`CONVERT_OFFICE_MAX_DOCS`, default 200).
    pub max_docs: u32,
    /// Resident memory past which a worker is replaced after its document (`CONVERT_OFFICE_MAX_RSS`, default 768 MiB).
    pub max_rss_bytes: u64,
    /// Where workers keep their profiles and scratch (the service's `WORK_DIR`).
    pub work_dir: PathBuf,
}

/// Counters for tests, metrics and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Workers started in all.
    pub started: u64,
    /// Workers retired because a document hung, crashed or overran them.
    pub failed: u64,
    /// Workers retired by the document count or memory rule.
    pub recycled: u64,
}

/// A pool of warm office workers. Cheap to share behind an `Arc`.
pub struct OfficePool {
    exe: PathBuf,
    settings: PoolSettings,
    idle: Mutex<Vec<Worker>>,
    started: AtomicU64,
    failed: AtomicU64,
    recycled: AtomicU64,
}

/// How long a worker may take to start LibreOffice: not the document's time.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// CPU a worker may use starting LibreOffice, before its first document moves the limit on.
const START_CPU_SECONDS: u64 = 60;

impl OfficePool {
    /// A pool whose workers are `exe office-worker <dir>` (the service's own binary).
    pub fn new(exe: PathBuf, settings: PoolSettings) -> OfficePool {
        OfficePool {
            exe,
            settings,
            idle: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            started: self.started.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            recycled: self.recycled.load(Ordering::Relaxed),
        }
    }

    /// Process IDs of the warm workers waiting for a document.
    pub fn idle_pids(&self) -> Vec<u32> {
        self.lock().iter().map(|w| w.pid).collect()
    }

    /// Converts the office document `input` (judged to be `kind`) to a PDF at `output`; its pages.
    ///
    /// At most [`PoolSettings::size`] callers at once (the stage's slots see to that); a caller
    /// past that starts a worker of its own, which joins the pool if there is room.
    pub async fn convert(&self, kind: DocKind, input: &Path, output: &Path) -> Result<u32, ConvertError> {
        let popped = self.lock().pop();
        // A worker that died while idle (the system killed it) is not this document's fault.
        let alive = popped.and_then(|mut w| matches!(w.child.try_wait(), Ok(None)).then_some(w));
        let mut worker = match alive {
            Some(w) => w,
            None => self.start().await?,
        };
        let limits = &self.settings.limits;
        let request = Request {
            input: std::path::absolute(input).unwrap_or_else(|_| input.to_path_buf()),
            output: std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf()),
            kind,
            cpu_seconds: limits.cpu_seconds,
        };
        match tokio::time::timeout(limits.timeout, worker.ask(&request)).await {
            Ok(Ok(answer)) => {
                let result = match (answer.error, answer.internal) {
                    (None, _) => Ok(answer.pages),
                    (Some(reason), false) => Err(ConvertError::Document { kind, reason }),
                    (Some(why), true) => Err(ConvertError::Internal(why)),
                };
                worker.docs += 1;
                if worker.docs >= self.settings.max_docs || answer.rss_kib * 1024 > self.settings.max_rss_bytes {
                    self.recycled.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(docs = worker.docs, rss_kib = answer.rss_kib, "office worker recycled");
                } else {
                    self.give_back(worker);
                }
                result
            }
            Ok(Err(())) => {
                // The worker died on this document: say why, from how it ended.
                self.failed.fetch_add(1, Ordering::Relaxed);
                let status = worker.finish().await;
                let _ = std::fs::remove_file(output);
                Err(died(kind, status, &worker.stderr_tail(), limits))
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                worker.kill();
                let _ = std::fs::remove_file(output);
                Err(ConvertError::doc(
                    kind,
                    format!("the conversion took longer than {} and was stopped", crate::isolate::secs(limits.timeout)),
                ))
            }
        }
    }

    fn give_back(&self, worker: Worker) {
        let mut idle = self.lock();
        if idle.len() < self.settings.size {
            idle.push(worker);
        }
        // Otherwise it is dropped, which kills it: more callers than slots came at once.
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        // The list is only pushed and popped: a panic elsewhere cannot leave it inconsistent.
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a worker and waits until LibreOffice is up in it.
    async fn start(&self) -> Result<Worker, ConvertError> {
        let limits = &self.settings.limits;
        let dir = tempfile::Builder::new()
            .prefix("office-")
            .tempdir_in(&self.settings.work_dir)
            .map_err(|e| ConvertError::Internal(format!("cannot make an office worker's directory: {e}")))?;
        let jail = super::network_jail();
        let mut cmd = tokio::process::Command::new(jail.first().map_or(self.exe.as_os_str(), |p| p.as_ref()));
        cmd.args(jail.iter().skip(1))
            .args(if jail.is_empty() { None } else { Some(&self.exe) })
            .arg("office-worker")
            .arg(dir.path())
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| crate::isolate::passed_through(k)))
            // LibreOffice writes its caches under HOME: keep them in the worker's own directory.
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // The hard CPU limit stays open: the worker moves its soft limit on before each document.
        sandbox::confine(&mut cmd, limits.memory_bytes, START_CPU_SECONDS, nix::sys::resource::RLIM_INFINITY);
        let mut child =
            cmd.spawn().map_err(|e| ConvertError::Internal(format!("cannot start an office worker: {e}")))?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            tokio::spawn(keep_tail(pipe, stderr.clone()));
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ConvertError::Internal("an office worker's pipes were not set up".into()));
        };
        let mut worker = Worker { pid, child, stdin, stdout: BufReader::new(stdout), docs: 0, stderr, _dir: dir };
        match tokio::time::timeout(START_TIMEOUT, worker.read_answer()).await {
            Ok(Ok(answer)) if answer.ready => {
                if answer.missing {
                    tracing::warn!("LibreOffice is not installed: office documents fail with that reason");
                }
                Ok(worker)
            }
            Ok(Ok(answer)) => Err(ConvertError::Internal(format!(
                "LibreOffice did not start in an office worker: {}",
                answer.error.unwrap_or_default()
            ))),
            Ok(Err(())) => {
                let status = worker.finish().await;
                Err(ConvertError::Internal(format!(
                    "an office worker died while starting LibreOffice ({}): {}",
                    status.map_or_else(|| "no status".into(), |s| s.to_string()),
                    crate::text::decode::prefix(worker.stderr_tail().trim(), 300)
                )))
            }
            Err(_) => Err(ConvertError::Internal(format!(
                "an office worker did not start LibreOffice within {} s",
                START_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// One running worker. Dropping it kills its whole process group (LibreOffice, qpdf) and removes
/// its directory: whatever path leaves it behind (a timeout, a cancelled conversion, retirement).
struct Worker {
    pid: u32,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    docs: u32,
    /// The last few KiB the worker wrote to stderr: why it died, when it does.
    stderr: Arc<Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

impl Worker {
    /// Sends one request and reads its answer; `Err` when the worker is gone.
    async fn ask(&mut self, request: &Request) -> Result<Answer, ()> {
        let mut line = serde_json::to_vec(request).map_err(|_| ())?;
        line.push(b'\n');
        self.stdin.write_all(&line).await.map_err(|_| ())?;
        self.stdin.flush().await.map_err(|_| ())?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> Result<Answer, ()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).await.map_err(|_| ())? == 0 {
                return Err(());
            }
            if let Ok(answer) = serde_json::from_str::<Answer>(&line) {
                return Ok(answer);
            }
        }
    }

    /// Waits briefly for a dying worker's status, then makes sure its group is gone.
    async fn finish(&mut self) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.ok().and_then(Result::ok);
        self.kill();
        status
    }

    fn kill(&mut self) {
        sandbox::kill_group(self.pid);
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        String::from_utf8_lossy(&tail).into_owned()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps the last 8 KiB of a worker's stderr.
async fn keep_tail(mut pipe: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&buf[..n]);
            let excess = t.len().saturating_sub(8 << 10);
            t.drain(..excess);
        }
    }
}

/// Why a worker died on a document, in words for the report.
fn died(kind: DocKind, status: Option<std::process::ExitStatus>, stderr: &str, limits: &Limits) -> ConvertError {
    let cap = human_bytes(limits.memory_bytes);
    if stderr.contains("bad_alloc")
        || stderr.contains("memory allocation of")
        || stderr.contains("out of memory")
        || stderr.contains("Cannot allocate memory")
    {
        return ConvertError::doc(kind, format!("the conversion exceeded the {cap} memory cap and was stopped"));
    }
    match status.and_then(|s| s.signal()) {
        Some(nix::libc::SIGXCPU) => ConvertError::doc(
            kind,
            format!("the conversion used more than {} s of CPU time and was stopped", limits.cpu_seconds),
        ),
        // Not ours: the container's out-of-memory killer, most likely (a host condition).
        Some(nix::libc::SIGKILL) => ConvertError::Internal(
            "the office worker was killed by the system (probably the container ran out of memory)".into(),
        ),
        Some(sig) => ConvertError::doc(kind, format!("LibreOffice crashed on this document (signal {sig})")),
        None => ConvertError::doc(
            kind,
            format!(
                "LibreOffice stopped on this document without converting it{}",
                status.and_then(|s| s.code()).map_or(String::new(), |c| format!(" (status {c})"))
            ),
        ),
    }
}

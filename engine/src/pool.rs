//! The parent's side of the warm workers: one long-lived process of the service's own binary per
//! conversion slot, fed one document after another, replaced when it misbehaves. Two pools of them:
//! - doc workers (`docket-convert doc-worker`, [`crate::doc_worker_main`]): judge every document and
//!   convert all but office documents, as the one-shot child does, without a fork and exec each;
//! - office workers (`docket-convert office-worker`, [`crate::office_worker_main`]): a warm
//!   LibreOffice each (it takes about a second to start).
//!
//! A worker is started on first need and kept while it behaves. It is retired, and the next
//! document starts a fresh one, when:
//! - a document took longer than `CONVERT_TIMEOUT` (its whole process group is killed; that
//!   document fails with the timeout as its reason);
//! - it died on a document (memory cap, CPU limit, a crash): that document fails with the reason;
//!   the next document gets a fresh worker, so one bad document never fails another;
//! - a converter panicked in it (the document fails; the worker says it retires, since a panic may
//!   have left its state inconsistent);
//! - it has converted `max_docs` documents, or its resident memory after a document is over
//!   `max_rss_bytes` (LibreOffice's caches and leaks grow with use; glibc keeps freed memory).
//!
//! Each worker runs under the caps of a conversion child: `RLIMIT_AS` = `CONVERT_MEMORY_LIMIT`,
//! its own process group, a parent-death signal, `oom_score_adj` 1000, a cleared environment, no
//! network (`unshare --net` where permitted), its own scratch directory; before each document it
//! moves its own soft CPU limit on by one document's allowance.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::worker::{Answer, Request};
use crate::{ConvertError, Converted, DocKind, Limits, sandbox};

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Workers at most: one per conversion slot (`CONVERT_PREFETCH`).
    pub size: usize,
    /// The caps of one document (memory of the worker, wall time and CPU per document).
    pub limits: Limits,
    /// Documents a worker converts before it is replaced (the service's `CONVERT_OFFICE_MAX_DOCS`,
    /// default 200, and `CONVERT_DOC_MAX_DOCS`, default 1000).
    pub max_docs: u32,
    /// Resident memory past which a worker is replaced after its document (the service's
    /// `CONVERT_OFFICE_MAX_RSS`, default 768 MiB, and `CONVERT_DOC_MAX_RSS`, default 256 MiB).
    pub max_rss_bytes: u64,
    /// Where workers keep their profiles and scratch (the service's `WORK_DIR`).
    pub work_dir: PathBuf,
}

/// Counters for tests, metrics and the benchmark.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Workers started in all.
    pub started: u64,
    /// Workers retired because a document hung, crashed, panicked or overran them.
    pub failed: u64,
    /// Workers retired by the document count or memory rule.
    pub recycled: u64,
}

/// A pool of warm workers, office or doc workers. Cheap to share behind an `Arc`.
pub struct WorkerPool {
    exe: PathBuf,
    mode: Mode,
    settings: PoolSettings,
    idle: Mutex<Vec<Worker>>,
    started: AtomicU64,
    failed: AtomicU64,
    recycled: AtomicU64,
}

/// The pool of office workers (what the tests and the benchmark call it).
pub type OfficePool = WorkerPool;

/// Which workers a pool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Office,
    Documents,
}

impl Mode {
    /// The worker's mode of the service's binary.
    fn arg(self) -> &'static str {
        match self {
            Mode::Office => "office-worker",
            Mode::Documents => "doc-worker",
        }
    }

    /// The worker, in reasons.
    fn what(self) -> &'static str {
        match self {
            Mode::Office => "an office worker",
            Mode::Documents => "a converter worker",
        }
    }
}

/// How long a worker may take to start (LibreOffice's start): not the document's time.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// CPU a worker may use starting, before its first document moves the limit on.
const START_CPU_SECONDS: u64 = 60;

impl WorkerPool {
    /// A pool whose workers are `exe office-worker <dir>` (the service's own binary).
    pub fn new(exe: PathBuf, settings: PoolSettings) -> WorkerPool {
        WorkerPool::with_mode(exe, Mode::Office, settings)
    }

    /// A pool whose workers are `exe doc-worker <dir>`.
    pub(crate) fn for_documents(exe: PathBuf, settings: PoolSettings) -> WorkerPool {
        WorkerPool::with_mode(exe, Mode::Documents, settings)
    }

    fn with_mode(exe: PathBuf, mode: Mode, settings: PoolSettings) -> WorkerPool {
        WorkerPool {
            exe,
            mode,
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
        self.ask(kind, input, output, "").await.map(|answer| answer.pages)
    }

    /// Judges `input` (a doc worker's pool) and converts it to a PDF at `output`, unless it is an
    /// office document: then the flag is set and no pages are given, for the office workers.
    pub(crate) async fn judge(
        &self,
        input: &Path,
        output: &Path,
        name: &str,
    ) -> Result<(Converted, bool), ConvertError> {
        let answer = self.ask(DocKind::Unknown, input, output, name).await?;
        Ok((Converted { pages: answer.pages, kind: answer.kind.unwrap_or(DocKind::Unknown) }, answer.office))
    }

    /// One document in a worker: its answer, or why it failed (the worker's own report, or how it died).
    async fn ask(&self, kind: DocKind, input: &Path, output: &Path, name: &str) -> Result<Answer, ConvertError> {
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
            name: name.to_owned(),
            cpu_seconds: limits.cpu_seconds,
        };
        worker.judged = None;
        if let Ok(mut tail) = worker.stderr.lock() {
            tail.clear();
        }
        let asked = tokio::time::timeout(limits.timeout, worker.ask(&request)).await;
        // What the worker said the document is before it converted it, if it did.
        let kind = worker.judged.unwrap_or(kind);
        let answer = match asked {
            Ok(Ok(answer)) => answer,
            Ok(Err(())) => {
                // The worker died on this document: say why, from how it ended.
                self.failed.fetch_add(1, Ordering::Relaxed);
                let status = worker.finish().await;
                let _ = std::fs::remove_file(output);
                return Err(crate::isolate::died(
                    status,
                    kind,
                    &worker.stderr_tail(),
                    limits,
                    self.mode == Mode::Office,
                ));
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                worker.kill();
                let _ = std::fs::remove_file(output);
                return Err(crate::isolate::timed_out(kind, limits));
            }
        };
        let kind = answer.kind.unwrap_or(kind);
        crate::child::log_notes(kind, &answer.notes);
        worker.docs += 1;
        if answer.retire {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else if worker.docs >= self.settings.max_docs || answer.rss_kib * 1024 > self.settings.max_rss_bytes {
            self.recycled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(worker = self.mode.arg(), docs = worker.docs, rss_kib = answer.rss_kib, "worker recycled");
        } else {
            self.give_back(worker);
        }
        answer.into_result(kind)
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

    /// Starts a worker and waits until it is ready (LibreOffice is up in an office worker).
    async fn start(&self) -> Result<Worker, ConvertError> {
        let (limits, what) = (&self.settings.limits, self.mode.what());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", self.mode.arg()))
            .tempdir_in(&self.settings.work_dir)
            .map_err(|e| ConvertError::Internal(format!("cannot make {what}'s directory: {e}")))?;
        let jail = crate::office::network_jail();
        let mut cmd = tokio::process::Command::new(jail.first().map_or(self.exe.as_os_str(), |p| p.as_ref()));
        cmd.args(jail.iter().skip(1))
            .args(if jail.is_empty() { None } else { Some(&self.exe) })
            .arg(self.mode.arg())
            .arg(dir.path())
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| crate::isolate::passed_through(k)))
            // glibc's per-thread arenas reserve address space the cap counts; one arena is enough
            // for the single-threaded converters (LibreOffice keeps its own threads and default).
            .envs((self.mode == Mode::Documents).then_some(("MALLOC_ARENA_MAX", "1")))
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
        let mut child = cmd.spawn().map_err(|e| ConvertError::Internal(format!("cannot start {what}: {e}")))?;
        self.started.fetch_add(1, Ordering::Relaxed);
        let pid = child.id().unwrap_or(0);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = child.stderr.take().map(|pipe| tokio::spawn(keep_tail(pipe, stderr.clone())));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ConvertError::Internal(format!("{what}'s pipes were not set up")));
        };
        let stdout = BufReader::new(stdout);
        let mut worker = Worker { pid, child, stdin, stdout, docs: 0, judged: None, stderr, tail, _dir: dir };
        match tokio::time::timeout(START_TIMEOUT, worker.read_answer()).await {
            Ok(Ok(answer)) if answer.ready => {
                if answer.missing {
                    tracing::warn!("LibreOffice is not installed: office documents fail with that reason");
                }
                Ok(worker)
            }
            Ok(Ok(answer)) => {
                Err(ConvertError::Internal(format!("{what} did not start: {}", answer.error.unwrap_or_default())))
            }
            Ok(Err(())) => {
                let status = worker.finish().await;
                Err(ConvertError::Internal(format!(
                    "{what} died while starting ({}): {}",
                    status.map_or_else(|| "no status".into(), |s| s.to_string()),
                    crate::text::decode::prefix(worker.stderr_tail().trim(), 300)
                )))
            }
            Err(_) => Err(ConvertError::Internal(format!("{what} did not start within {} s", START_TIMEOUT.as_secs()))),
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
    /// The kind a doc worker's early line gave for the document in hand.
    judged: Option<DocKind>,
    /// The last few KiB the worker wrote to stderr for the document in hand: why it died, when it does.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The task that keeps `stderr`.
    tail: Option<tokio::task::JoinHandle<()>>,
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
            match serde_json::from_str::<Answer>(&line) {
                Ok(answer) if answer.early => self.judged = answer.kind,
                Ok(answer) => return Ok(answer),
                Err(_) => {}
            }
        }
    }

    /// Waits briefly for a dying worker's status, then makes sure its group is gone and its last
    /// words on stderr are read.
    async fn finish(&mut self) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.ok().and_then(Result::ok);
        self.kill();
        if let Some(tail) = self.tail.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), tail).await;
        }
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

//! Benchmark (not a test): the convert bulkhead and a 3000-file archive.
//!
//!   [BIG_PREFETCH=N] cargo run --release -p docket-e2e --bin bench-documents -- [documents] [memory-docs, 0 to skip]
//!
//! 1. For CONVERT_PREFETCH 2 and 4: the convert service runs as its own
//!    process on mixed archives; the resident memory of it and all its
//!    children (LibreOffice included) is sampled from /proc every 20 ms, and
//!    the peak is printed against prefetch × CONVERT_MEMORY_LIMIT + base.
//!    Also the measured cost of a slot: (peak - base) / prefetch.
//! 2. One patient with a 3000-file mixed archive: the time from the archive's
//!    download to the report, against its bound: the sum of the per-document
//!    CPU times of the same files (each converted once more afterwards, one at
//!    a time, by the engine as the service runs it, warm office worker
//!    included) divided by the cores; and the ratio of the two.
//!    BOUND_CORES=N divides by N instead of this process's cores
//!    (`scripts/bench-documents-pinned`: the convert service alone on one core).
//!    Also the same sum as the run's workers spent it (the convert service's
//!    CPU less its own process's), and the ratio to that.

use docket_stubs::samples::cpu;
use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use docket_convert::engine::{Engine, Limits, PoolSettings};
use docket_e2e::{
    Patient, Stage, TestEnv, TestOptions,
    stages::{ALL, metric},
};
use docket_stubs::{ArchiveKind, Profile};

const MIB: u64 = 1 << 20;
const CAP: u64 = 1 << 30;

/// (pid, parent pid, resident bytes) of every process.
fn processes() -> Vec<(u32, u32, u64)> {
    let page = 4096;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may hold spaces: fields start after its ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let rss_pages: u64 = fields.get(21).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, rss_pages * page));
    }
    out
}

/// Resident memory of `root` and every descendant.
fn tree_rss(root: u32) -> u64 {
    let all = processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut rss: HashMap<u32, u64> = HashMap::new();
    for (pid, ppid, r) in &all {
        children.entry(*ppid).or_default().push(*pid);
        rss.insert(*pid, *r);
    }
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        total += rss.get(&p).copied().unwrap_or(0);
        stack.extend(children.get(&p).into_iter().flatten());
    }
    total
}

async fn options(prefetch: u16) -> TestOptions {
    let mut o = TestOptions::default();
    o.vars.push(("CONVERT_PREFETCH", prefetch.to_string()));
    o.vars.push(("CONVERT_MEMORY_LIMIT", "1GiB".into()));
    o.vars.push(("DATABASE_POOL", "8".into()));
    o
}

async fn memory(prefetch: u16, docs: u32) {
    let mut env = TestEnv::new(options(prefetch).await).await;
    let patients: Vec<Patient> = (0..4).map(|i| Patient::new(&format!("MEM{i}"))).collect();
    for p in &patients {
        env.docex.set_profile(
            &p.first,
            &p.last,
            Profile { documents: docs / 4, kind: ArchiveKind::Mixed, job_ms: Some(200), ..Profile::default() },
        );
    }
    env.seed(&patients).await;
    for stage in ALL.into_iter().filter(|s| *s != Stage::Convert) {
        env.start(stage, 1).await;
    }
    let index = env.spawn_process(Stage::Convert);
    let pid = env.process_id(index);
    docket_e2e::rabbit::wait_for_queue(&env.vhost, "docket.convert").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base = tree_rss(pid);
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    let peak = std::sync::Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(tree_rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    env.wait_finished(patients.len() as i64, Duration::from_secs(3600)).await;
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let bound = u64::from(prefetch) * CAP + base;
    println!(
        "prefetch {prefetch}: peak {:>5} MiB for the convert service and its children and office workers (base {} MiB); \
         bound prefetch × cap + base = {} MiB ({}); measured cost of a slot (peak - base) / prefetch = {} MiB",
        peak / MIB,
        base / MIB,
        bound / MIB,
        if peak <= bound { "under" } else { "OVER" },
        peak.saturating_sub(base) / u64::from(prefetch) / MIB
    );
    env.cleanup().await;
}

async fn big_archive(docs: u32) {
    // BIG_PREFETCH overrides the host's default, to see what the slots wait for.
    let prefetch = std::env::var("BIG_PREFETCH").ok().and_then(|v| v.parse().ok());
    let prefetch = prefetch.unwrap_or(docket_convert::engine::limits::host_prefetch(CAP) as u16);
    println!("3000-file archive at CONVERT_PREFETCH {prefetch}");
    let mut env = TestEnv::new(options(prefetch).await).await;
    let p = Patient::new("BIG3000");
    env.docex.set_profile(
        &p.first,
        &p.last,
        Profile { documents: docs, kind: ArchiveKind::Mixed, job_ms: Some(200), ..Profile::default() },
    );
    env.seed(&[p]).await;
    // Each stage its own process (its real binary), so the CPU below is told apart by stage.
    let mut convert = 0;
    for stage in ALL {
        let index = env.spawn_process(stage);
        if stage == Stage::Convert {
            convert = index;
        }
    }
    for queue in ["docket.search", "docket.status", "docket.fetch", "docket.convert", "docket.store", "docket.report"] {
        docket_e2e::rabbit::wait_for_queue(&env.vhost, queue).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let service = env.process_id(convert);
    let (before, own_before) = (cpu::by_command(), cpu::own(service));
    env.publish(&["BIG3000"]).await;
    env.wait_finished(1, Duration::from_secs(4 * 3600)).await;
    let spent = cpu::spent(&before, &cpu::by_command());
    let own = cpu::own(service) - own_before;
    let (downloaded, reported): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT (SELECT min(at) FROM docket.run_events WHERE event LIKE 'archive extracted%'), max(finished_at)
         FROM docket.runs",
    )
    .fetch_one(&env.pool)
    .await
    .expect("reading the run");
    let (done, failed): (i32, i32) = sqlx::query_as("SELECT docs_done, docs_failed FROM docket.runs")
        .fetch_one(&env.pool)
        .await
        .expect("reading the run");
    let secs = (reported - downloaded).num_milliseconds() as f64 / 1000.0;
    println!(
        "{docs}-file mixed archive: {secs:.1} s from download to report ({} converted, {failed} failed, {:.1} documents/s on {} cores)",
        done - failed,
        f64::from(done) / secs,
        bound_cores()
    );
    let total: f64 = spent.iter().map(|(_, c)| c).sum();
    println!(
        "CPU of the whole run, by process ({total:.1} s in all; docket-convert includes its conversions, the stubs are bench-documents):"
    );
    for (name, c) in &spent {
        println!("  {name:<16} {c:>7.1} s  {:>5.1} ms per document", c * 1000.0 / f64::from(docs));
    }
    println!("  of docket-convert, the service's own process (not its workers): {own:.1} s");
    let metrics = env.process_metrics(Stage::Convert, convert).await;
    for pool in ["doc", "office"] {
        let n = |event: &str| {
            metric(&metrics, &format!("pipeline_converter_workers_total{{pool=\"{pool}\",event=\"{event}\"}}"))
        };
        println!(
            "  {pool} workers: {} started, {} recycled (document count or memory), {} failed",
            n("started"),
            n("recycled"),
            n("failed")
        );
    }
    let (cpu, by_kind) = cpu_of_each(&env.storage_root()).await;
    // The bound printed, and the run against it.
    let against = |what: &str, cpu: f64| {
        let (cores, bound) = (bound_cores(), cpu / bound_cores() as f64);
        let ratio = secs / bound;
        println!(
            "{what} {cpu:.1} s / {cores} cores = {bound:.1} s; download to report / bound = {ratio:.3} ({:+.1} %)",
            (ratio - 1.0) * 100.0
        );
    };
    against("bound: sum of per-document CPU times", cpu);
    // The same sum as the workers spent it during the run (worker starts and failed documents
    // included, as above): what converting cost there, beside the other processes, rather than
    // again later, alone. The gap between the two bounds is the conversions' own noise and the
    // contention of the run; the gap between the run and this bound is the pipeline.
    let workers = spent.iter().find(|(name, _)| name == "docket-convert").map_or(0.0, |(_, c)| *c) - own;
    against("bound as converted in the run: the workers' CPU", workers);
    let mut by_kind: Vec<_> = by_kind.into_iter().collect();
    by_kind.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    for (kind, (n, cpu)) in by_kind {
        println!("  {kind:<8} {n:>5} documents, {cpu:>7.1} s CPU, {:>6.1} ms each", cpu * 1000.0 / f64::from(n));
    }
    env.cleanup().await;
}

/// Converts every stored original once more, one at a time, with the engine as the service runs
/// it (a warm doc worker, then a warm office worker for office documents), and sums the CPU each
/// took: the workers' (live, and reaped once retired). Returns the sum and (count, CPU) per kind.
async fn cpu_of_each(storage: &Path) -> (f64, HashMap<String, (u32, f64)>) {
    let mut files = Vec::new();
    let mut stack = vec![storage.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().and_then(Path::file_name).is_some_and(|n| n == "originals") {
                files.push(path);
            }
        }
    }
    files.sort();
    let work = tempfile::tempdir().expect("a scratch directory");
    let settings = PoolSettings {
        size: 1,
        limits: Limits::default(),
        max_docs: 200,
        max_rss_bytes: 768 << 20,
        work_dir: work.path().to_path_buf(),
    };
    let engine = Engine::new(docket_e2e::env::convert_exe(), settings);
    let output = work.path().join("out.pdf");
    let (mut total, mut by_kind) = (0.0, HashMap::<String, (u32, f64)>::new());
    // Each worker's CPU when last looked at.
    let mut seen: HashMap<u32, f64> = HashMap::new();
    for file in &files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // The stored name is "<doc>-<archive name>"; the archive name is the hint the stage uses.
        let name = name.split_once('-').map_or(name.clone(), |(_, n)| n.to_owned());
        let reaped = cpu::reaped_children();
        let result = engine.convert(file, &output, &name).await;
        // What this document cost: the children reaped meanwhile (workers retired), and what
        // each worker spent since it was last looked at. A worker started for this document
        // counts whole (LibreOffice's start included): the service pays that once per worker too.
        // A worker retired after this document is remembered until it is reaped, and its CPU
        // already counted is taken off the reaped sum then, so nothing is counted twice.
        let mut cpu = cpu::reaped_children() - reaped;
        let live = engine.worker_pids();
        for pid in &live {
            let now = cpu::process(*pid);
            cpu += now - seen.insert(*pid, now).unwrap_or(0.0);
        }
        for (pid, last) in seen.clone() {
            if !live.contains(&pid) && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                cpu -= last;
                seen.remove(&pid);
            }
        }
        total += cpu;
        let kind = match result {
            Ok(c) => c.kind.to_string(),
            Err(docket_convert::engine::ConvertError::Document { kind, .. }) => kind.to_string(),
            Err(_) => "error".into(),
        };
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += cpu;
    }
    (total, by_kind)
}

/// The cores the conversions had: BOUND_CORES, else this process's.
fn bound_cores() -> usize {
    std::env::var("BOUND_CORES").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or_else(num_cpus)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let docs: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let memory_docs: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(160);
    // SAFETY of set_var: before any other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()));
    }
    // memory-docs 0 skips the memory part.
    for prefetch in [2, 4].into_iter().filter(|_| memory_docs > 0) {
        memory(prefetch, memory_docs).await;
    }
    big_archive(docs).await;
}

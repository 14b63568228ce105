//! Conversion benchmark (not a test): converts generated files of each type in-process, in
//! isolated children (for office documents: a cold `soffice` each time) and through the engine as
//! the service runs it (for office documents: a warm LibreOffice worker), and prints conversions
//! per second, per second of CPU, and the children's peak memory.
//!
//! `cargo run --release -p docket-engine --example convert-bench -- [--iterations N] [--keep DIR]`
//!
//! Each conversion is single-threaded and they run one after another here, so conversions per
//! second is also per core. The benchmark is its own child binary (`convert-bench child …`
//! behaves as `docket-convert child …`), so it needs no other build.

use docket_samples::cpu;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use docket_engine::{Engine, Limits, PoolSettings, convert_file, run_isolated};
use docket_samples::fixtures as samples;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("child") => return docket_engine::child_main(&args[2..]),
        Some("doc-worker") => return docket_engine::doc_worker_main(&args[2..]),
        Some("office-worker") => return docket_engine::office_worker_main(&args[2..]),
        _ => {}
    }
    let mut iterations = 10usize;
    let mut keep: Option<PathBuf> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iterations" => iterations = it.next().and_then(|v| v.parse().ok()).unwrap_or(iterations),
            "--keep" => keep = it.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: convert-bench [--iterations N] [--keep DIR]");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench(iterations, keep));
    ExitCode::SUCCESS
}

/// (label, archive name, bytes, how many times to repeat relative to `--iterations`)
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, f64)> {
    let soffice = docket_engine_has("soffice");
    let mut v = vec![
        ("text 200 lines", "notes.txt", samples::text(200), 1.0),
        ("text 1 MB", "big.txt", samples::text(16_000), 0.2),
        ("html", "summary.html", samples::html(), 1.0),
        ("cda xml", "ccd.xml", samples::cda(), 1.0),
        ("xml", "lab.xml", samples::xml(), 1.0),
        ("tiff g4 3 pages", "fax.tif", samples::g4_tiff(3, 2200), 1.0),
        ("tiff g4 multistrip 3p", "fax2.tif", samples::g4_tiff_multistrip(3, 2200), 1.0),
        ("tiff g3 3 pages", "fax3.tif", samples::g3_tiff(3, 1100), 1.0),
        ("tiff lzw rgb 2 pages", "scan.tif", samples::lzw_rgb_tiff(2, 1700, 2200), 0.5),
        ("jpeg 3000x2000", "photo.jpg", samples::jpeg(3000, 2000, 6), 1.0),
        ("png 1600x1200", "scan.png", samples::png(1600, 1200, false), 0.5),
        ("pdf 20 pages", "report.pdf", samples::pdf(20), 1.0),
        ("pdf damaged", "damaged.pdf", samples::damaged_pdf(5), 1.0),
    ];
    if soffice {
        v.push(("rtf (LibreOffice)", "letter.rtf", samples::rtf(), 0.2));
        v.push(("docx (LibreOffice)", "letter.docx", samples::docx(&["Referral", "Dear colleague."]), 0.2));
        let long: Vec<String> =
            (0..3000).map(|i| format!("Paragraph {i}: the patient was seen and examined.")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        v.push(("docx 3000 paragraphs", "long.docx", samples::docx(&long), 0.2));
    }
    v
}

fn docket_engine_has(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

async fn bench(iterations: usize, keep: Option<PathBuf>) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let exe = std::env::current_exe().expect("own path");
    let limits = Limits::default();
    let settings = PoolSettings {
        size: 1,
        limits: limits.clone(),
        max_docs: 200,
        max_rss_bytes: 768 << 20,
        work_dir: dir.path().to_path_buf(),
    };
    let engine = Engine::new(exe.clone(), settings);
    println!(
        "{:<24} {:>5} {:>10} {:>11} {:>11} {:>9} {:>9} {:>12} {:>7}",
        "type", "runs", "in-proc/s", "isolated/s", "engine/s", "iso/CPUs", "eng/CPUs", "child peak", "pages"
    );
    let mut office = Vec::new();
    for (label, name, bytes, weight) in cases() {
        let n = ((iterations as f64 * weight).ceil() as usize).max(1);
        let input = dir.path().join("input");
        std::fs::write(&input, &bytes).expect("write input");
        let output = dir.path().join("out.pdf");

        let (in_rate, pages) =
            timed(n, || convert_file(&input, &output, name).map(|c| c.pages).map_err(|e| e.to_string()));
        if let Some(keep) = &keep {
            let _ = std::fs::create_dir_all(keep);
            let _ = std::fs::copy(&output, keep.join(format!("{}.pdf", label.replace(' ', "_"))));
        }
        // Isolated: a fresh child per document (for office documents a cold soffice in it).
        let mut peak = 0u64;
        let mut failed = None;
        let cpu = Cpu::now(&[]);
        let started = Instant::now();
        for _ in 0..n {
            let report = run_isolated(&exe, &input, &output, name, &limits).await;
            peak = peak.max(report.peak_rss_bytes.unwrap_or(0));
            if let Err(e) = report.result {
                failed = Some(e.to_string());
            }
        }
        let iso_rate = n as f64 / started.elapsed().as_secs_f64();
        let iso_cpu = n as f64 / cpu.since(&[]).max(1e-6);
        // The engine as the service runs it: a warm doc worker, then (office) a warm office worker.
        // One conversion first to start the workers: a warm rate is what it says.
        let is_office = label.contains("LibreOffice") || label.starts_with("docx");
        let warm_n = if is_office { (n * 25).max(20) } else { n };
        let _ = engine.convert(&input, &output, name).await;
        let pids = engine.worker_pids();
        let cpu = Cpu::now(&pids);
        let started = Instant::now();
        for _ in 0..warm_n {
            if let Err(e) = engine.convert(&input, &output, name).await {
                failed = Some(e.to_string());
            }
        }
        let eng_rate = warm_n as f64 / started.elapsed().as_secs_f64();
        let eng_cpu = warm_n as f64 / cpu.since(&pids).max(1e-6);
        let pages = match (pages, failed) {
            (Ok(p), None) => p.to_string(),
            (Err(e), _) | (_, Some(e)) => format!("FAILED: {e}"),
        };
        println!(
            "{label:<24} {n:>5} {in_rate:>10.1} {iso_rate:>11.1} {eng_rate:>11.1} {iso_cpu:>9.1} {eng_cpu:>9.1} {:>8.1} MiB {pages:>7}",
            peak as f64 / (1 << 20) as f64
        );
        if is_office {
            office.push((label, iso_cpu, eng_cpu, warm_n));
        }
    }
    println!(
        "(host: {} cores; one conversion at a time; /CPUs = conversions per second of CPU time, i.e. per core, counting \
         the children, the office worker and the tools they ran)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (label, cold, warm, runs) in office {
        // The target is for the letters and notes archives carry; the long
        // DOCX measures LibreOffice's layout of 56 pages, not its start-up.
        let target = if label.contains("LibreOffice") {
            format!("target warm >= 5/s per core: {}", if warm >= 5.0 { "met" } else { "NOT met" })
        } else {
            "no target (56 pages of layout, not start-up)".into()
        };
        println!(
            "{label}: cold {cold:.1}/s per core, warm {warm:.1}/s per core over {runs} documents ({:.0}x); {target}",
            warm / cold.max(1e-6),
        );
    }
    let stats = engine.office().stats();
    println!("office workers: {} started, {} failed, {} recycled", stats.started, stats.failed, stats.recycled);
}

/// CPU seconds used so far by this process's reaped children and by the given live workers
/// (their own time and that of the tools they ran and reaped).
struct Cpu(f64);

impl Cpu {
    fn now(pids: &[u32]) -> Cpu {
        Cpu(cpu::reaped_children() + pids.iter().map(|p| cpu::process(*p)).sum::<f64>())
    }

    fn since(&self, pids: &[u32]) -> f64 {
        Cpu::now(pids).0 - self.0
    }
}

fn timed(n: usize, mut f: impl FnMut() -> Result<u32, String>) -> (f64, Result<u32, String>) {
    let started = Instant::now();
    let mut last = Ok(0);
    for _ in 0..n {
        last = f();
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    (n as f64 / elapsed.as_secs_f64(), last)
}

//! Conversion benchmark (not a test): converts generated files of each type in-process and in
//! isolated children, and prints conversions per second per core and the children's peak memory.
//!
//! `cargo run --release -p docket-convert --bin convert-bench -- [--iterations N] [--keep DIR]`
//!
//! Each conversion is single-threaded and they run one after another here, so conversions per
//! second is also per core. The benchmark is its own child binary (`convert-bench child …`
//! behaves as `docket-convert child …`), so it needs no other build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use docket_convert::{Limits, convert_file, run_isolated, samples};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return docket_convert::child_main(&args[2..]);
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
    let soffice = docket_convert_has("soffice");
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

fn docket_convert_has(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

async fn bench(iterations: usize, keep: Option<PathBuf>) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let exe = std::env::current_exe().expect("own path");
    let limits = Limits::default();
    println!(
        "{:<24} {:>6} {:>12} {:>12} {:>14} {:>7}",
        "type", "runs", "in-proc /s", "isolated /s", "child peak RSS", "pages"
    );
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
        let mut peak = 0u64;
        let mut failed = None;
        let started = Instant::now();
        for _ in 0..n {
            let report = run_isolated(&exe, &input, &output, name, &limits).await;
            peak = peak.max(report.peak_rss_bytes.unwrap_or(0));
            if let Err(e) = report.result {
                failed = Some(e.to_string());
            }
        }
        let iso_rate = n as f64 / started.elapsed().as_secs_f64();
        let pages = match (pages, failed) {
            (Ok(p), None) => p.to_string(),
            (Err(e), _) | (_, Some(e)) => format!("FAILED: {e}"),
        };
        println!(
            "{label:<24} {n:>6} {in_rate:>12.1} {iso_rate:>12.1} {:>11.1} MiB {pages:>7}",
            peak as f64 / (1 << 20) as f64
        );
    }
    println!(
        "(host: {} cores; one conversion at a time, so the rates are per core)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
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

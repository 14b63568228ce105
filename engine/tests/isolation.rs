//! Conversions in capped child processes: results come back, a child over its memory cap or its
//! time fails alone with a reason, and the others carry on.
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use docket_engine::{ConvertError, DocKind, Limits, convert_isolated, run_child};
use docket_samples::fixtures as samples;

fn limits(memory_mib: u64, timeout: Duration) -> Limits {
    Limits { memory_bytes: memory_mib << 20, timeout, cpu_seconds: 30 }
}

async fn isolated(
    bytes: &[u8],
    name: &str,
    limits: &Limits,
) -> (tempfile::TempDir, std::path::PathBuf, Result<docket_engine::Converted, ConvertError>) {
    let (dir, input, output) = scratch(bytes);
    let result = convert_isolated(&child_exe(), &input, &output, name, limits).await;
    (dir, output, result)
}

fn document_reason(result: &Result<docket_engine::Converted, ConvertError>) -> String {
    match result {
        Err(ConvertError::Document { reason, .. }) => reason.clone(),
        other => panic!("expected a document failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_three_page_tiff_converts_in_a_child_process() {
    let (_dir, output, result) = isolated(&samples::g4_tiff(3, 1000), "fax.tif", &Limits::default()).await;
    let c = result.unwrap();
    assert_eq!((c.pages, c.kind), (3, DocKind::Tiff));
    assert_valid(&output);
    assert_eq!(qpdf_pages(&output), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_allocating_2_gib_fails_alone_under_a_1_gib_cap_while_others_succeed() {
    let cap = limits(1024, Duration::from_secs(60));
    let args: Vec<OsString> = vec!["child".into(), "--test".into(), "hog".into()];
    let (text, pdf) = (samples::text(50), samples::pdf(2));
    let exe = child_exe();
    let (hog, a, b) = tokio::join!(
        run_child(&exe, &args, &cap),
        isolated(&text, "notes.txt", &cap),
        isolated(&pdf, "report.pdf", &cap),
    );
    let reason = document_reason(&hog.result);
    assert!(reason.contains("exceeded the 1 GiB memory cap"), "{reason}");
    assert_eq!(a.2.unwrap().kind, DocKind::Text);
    assert_eq!(b.2.unwrap().pages, 2);
}

#[tokio::test]
async fn a_real_image_too_big_for_its_cap_fails_with_the_cap_as_reason() {
    // 6000×6000 RGBA decodes to 144 MB and krilla keeps copies: over a 160 MiB cap, under 150 megapixels.
    let png = samples::png(6000, 6000, true);
    let (_dir, output, result) = isolated(&png, "scan.png", &limits(160, Duration::from_secs(60))).await;
    let reason = document_reason(&result);
    assert!(reason.contains("exceeded the 160 MiB memory cap"), "{reason}");
    assert!(!output.exists(), "no partial PDF is left behind");
}

#[tokio::test]
async fn a_hanging_child_and_its_grandchild_are_killed_at_the_timeout() {
    let args: Vec<OsString> = vec!["child".into(), "--test".into(), "orphan".into()];
    let started = Instant::now();
    let report = run_child(&child_exe(), &args, &limits(1024, Duration::from_secs(1))).await;
    let reason = document_reason(&report.result);
    assert!(reason.contains("took longer than 1 s"), "{reason}");
    // The grandchild held the child's stdout: returning promptly means the whole group died
    // (otherwise reading the pipe would wait out its 2 s grace).
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_child_over_its_cpu_limit_is_stopped_with_that_reason() {
    let args: Vec<OsString> = vec!["child".into(), "--test".into(), "spin".into()];
    let cpu = Limits { memory_bytes: 1 << 30, timeout: Duration::from_secs(20), cpu_seconds: 1 };
    let report = run_child(&child_exe(), &args, &cpu).await;
    let reason = document_reason(&report.result);
    assert!(reason.contains("more than 1 s of CPU time"), "{reason}");
}

#[tokio::test]
async fn a_document_failure_in_the_child_keeps_its_kind_and_reason() {
    let (_dir, _output, result) = isolated(&samples::forged_png(), "bomb.png", &Limits::default()).await;
    match result {
        Err(ConvertError::Document { kind, reason }) => {
            assert_eq!(kind, DocKind::Png);
            assert!(reason.contains("too large"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_converter_binary_is_an_internal_error() {
    let (_dir, input, output) = scratch(b"hello");
    let result =
        convert_isolated(Path::new("/nonexistent/docket-convert"), &input, &output, "a.txt", &Limits::default()).await;
    assert!(matches!(result, Err(ConvertError::Internal(_))), "{result:?}");
}

#[tokio::test]
async fn libreoffice_converts_under_the_1_gib_cap_or_is_reported_missing() {
    let docx = samples::docx(&["Referral", "Dear colleague, café.", "Kind regards"]);
    let (_dir, output, result) = isolated(&docx, "letter.docx", &Limits::default()).await;
    if soffice_installed() {
        assert_eq!(result.unwrap().kind, DocKind::Docx);
        assert_valid(&output);
    } else {
        assert!(document_reason(&result).contains("LibreOffice is needed"));
    }
}

#[tokio::test]
async fn a_timeout_kills_libreoffice_with_the_child() {
    if !soffice_installed() {
        return;
    }
    let (dir, input, output) = scratch(&samples::rtf());
    let result =
        convert_isolated(&child_exe(), &input, &output, "letter.rtf", &limits(1024, Duration::from_millis(800))).await;
    assert!(document_reason(&result).contains("took longer than 0.8 s"));
    // No process may still be working in this conversion's scratch directory. SIGKILL is sent;
    // a large process takes a moment to finish dying, so poll with a deadline.
    let ours = dir.path().to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut survivors = processes_mentioning(&ours);
    while !survivors.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        survivors = processes_mentioning(&ours);
    }
    assert!(survivors.is_empty(), "left running: {survivors:?}");
    // Killed, not merely finished: LibreOffice never wrote its PDF (the child's scratch remains).
    let wrote = std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.path().join("out/document.pdf").exists());
    assert!(!wrote, "LibreOffice finished its PDF after the timeout");
}

/// Command lines of live processes that mention `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

//! Office documents in warm LibreOffice workers: one worker converts document after document; a
//! document that is damaged fails with LibreOffice's reason and the worker carries on; a document
//! that hangs, balloons or spins its worker fails alone with its reason and the worker is replaced
//! (counted by the pool and seen as a new process ID); workers are recycled by count and by memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use docket_engine::{ConvertError, Converted, DocKind, Engine, Limits, OfficePool, PoolSettings, PoolStats};
use docket_samples::fixtures as samples;

fn settings(dir: &Path, limits: Limits) -> PoolSettings {
    PoolSettings { size: 1, limits, max_docs: 200, max_rss_bytes: 4 << 30, work_dir: dir.to_path_buf() }
}

fn limits(timeout_secs: u64, cpu_seconds: u64) -> Limits {
    Limits { memory_bytes: 1 << 30, timeout: Duration::from_secs(timeout_secs), cpu_seconds }
}

/// Converts `bytes` (judged `kind`) with the pool; the run keeps the scratch directory alive.
async fn office(pool: &OfficePool, kind: DocKind, bytes: &[u8]) -> Run {
    let (dir, input, output) = scratch(bytes);
    let result = pool.convert(kind, &input, &output).await.map(|pages| Converted { pages, kind });
    Run { dir, input, output, result }
}

/// An RTF letter that carries a marker the test worker's hook acts on.
fn marked_rtf(marker: &str) -> Vec<u8> {
    format!(r"{{\rtf1\ansi\deff0{{\fonttbl{{\f0 Helvetica;}}}}\f0 {marker}\par}}").into_bytes()
}

fn one_pid(pool: &OfficePool) -> u32 {
    let pids = pool.idle_pids();
    assert_eq!(pids.len(), 1, "one warm worker waits: {pids:?}");
    pids[0]
}

#[tokio::test]
async fn one_warm_worker_converts_rtf_and_docx_one_after_another_to_valid_pdfs() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pool = OfficePool::new(child_exe(), settings(work.path(), Limits::default()));
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    let pid = one_pid(&pool);
    assert_pdf(&office(&pool, DocKind::Docx, &samples::docx(&["Referral", "Dear colleague, café."])).await, 1);
    for seed in 0..3 {
        let run = office(&pool, DocKind::Rtf, &docket_samples::rtf(seed)).await;
        let pages = run.result.clone().unwrap().pages;
        assert_pdf(&run, pages);
        let run = office(&pool, DocKind::Docx, &docket_samples::docx(seed)).await;
        let pages = run.result.clone().unwrap().pages;
        assert_pdf(&run, pages);
    }
    let long: Vec<String> = (0..3000).map(|i| format!("Paragraph {i}: the patient was seen.")).collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let run = office(&pool, DocKind::Docx, &samples::docx(&long)).await;
    assert!(run.result.clone().unwrap().pages > 20, "{:?}", run.result);
    assert_valid(&run.output);
    assert_eq!(one_pid(&pool), pid, "the same worker converted every document");
    assert_eq!(pool.stats(), PoolStats { started: 1, failed: 0, recycled: 0 });
}

#[tokio::test]
async fn the_engine_sends_office_documents_to_the_pool_and_everything_else_to_a_child() {
    let work = tempfile::tempdir().unwrap();
    let engine = Engine::new(child_exe(), settings(work.path(), Limits::default()));
    let convert = |bytes: Vec<u8>, name: &'static str| {
        let engine = &engine;
        async move {
            let (dir, input, output) = scratch(&bytes);
            let result = engine.convert(&input, &output, name).await;
            Run { dir, input, output, result }
        }
    };
    assert_eq!(assert_pdf(&convert(samples::text(40), "notes.txt").await, 2).kind, DocKind::Text);
    assert_eq!(assert_pdf(&convert(samples::g4_tiff(3, 500), "fax.tif").await, 3).kind, DocKind::Tiff);
    let bomb = convert(samples::forged_png(), "bomb.png").await;
    assert!(reason(&bomb).contains("too large"), "{}", reason(&bomb));
    assert_eq!(engine.office().stats().started, 0, "no office document yet, no worker");
    // Judged by content: an RTF named .txt is still an office document.
    let rtf = convert(samples::rtf(), "letter.txt").await;
    if soffice_installed() {
        assert_eq!(assert_pdf(&rtf, 2).kind, DocKind::Rtf);
        assert_eq!(engine.office().stats().started, 1);
    } else {
        assert!(reason(&rtf).contains("LibreOffice is needed"), "{}", reason(&rtf));
    }
}

#[tokio::test]
async fn a_damaged_office_document_fails_with_a_reason_and_the_worker_carries_on() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pool = OfficePool::new(child_exe(), settings(work.path(), Limits::default()));
    // An OLE2 signature and nothing a Word reader could use after it; a DOCX cut in half.
    let mut ole = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    ole.extend([0u8; 4096]);
    let docx = samples::docx(&["Referral", "Dear colleague."]);
    for (kind, bytes) in [(DocKind::Doc, ole), (DocKind::Docx, docx[..docx.len() / 2].to_vec())] {
        let run = office(&pool, kind, &bytes).await;
        let why = reason(&run);
        assert!(why.contains("LibreOffice could not convert the document: it cannot be opened"), "{why}");
        assert!(!run.output.exists(), "no PDF for a failed document");
    }
    let pid = one_pid(&pool);
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    assert_eq!(one_pid(&pool), pid, "a document LibreOffice refuses does not cost the worker");
    assert_eq!(pool.stats().failed, 0);
}

#[tokio::test]
async fn a_document_that_hangs_its_worker_fails_alone_at_the_timeout_and_the_worker_is_replaced() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pool = OfficePool::new(child_exe(), settings(work.path(), limits(3, 30)));
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    let before = one_pid(&pool);
    let hung = office(&pool, DocKind::Rtf, &marked_rtf("HANG-THE-WORKER")).await;
    assert!(reason(&hung).contains("took longer than 3 s"), "{}", reason(&hung));
    assert!(pool.idle_pids().is_empty(), "the hung worker is not kept");
    assert!(gone(before).await, "the hung worker's process is killed");
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    assert_ne!(one_pid(&pool), before, "a fresh worker converted the next document");
    assert_eq!(pool.stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn a_document_that_balloons_its_worker_fails_alone_with_the_memory_cap_and_the_worker_is_replaced() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pool = OfficePool::new(child_exe(), settings(work.path(), limits(60, 30)));
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    let before = one_pid(&pool);
    let ballooned = office(&pool, DocKind::Rtf, &marked_rtf("BALLOON-THE-WORKER")).await;
    assert!(reason(&ballooned).contains("exceeded the 1 GiB memory cap"), "{}", reason(&ballooned));
    assert!(gone(before).await);
    assert_pdf(&office(&pool, DocKind::Docx, &samples::docx(&["After the balloon"])).await, 1);
    assert_ne!(one_pid(&pool), before);
    assert_eq!(pool.stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn a_document_that_spins_its_worker_is_stopped_by_its_own_cpu_allowance() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // Three CPU seconds a document, though the worker has used more than that in all by the end.
    let pool = OfficePool::new(child_exe(), settings(work.path(), limits(60, 3)));
    for _ in 0..3 {
        assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    }
    let spun = office(&pool, DocKind::Rtf, &marked_rtf("SPIN-THE-WORKER")).await;
    assert!(reason(&spun).contains("more than 3 s of CPU time"), "{}", reason(&spun));
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    assert_eq!(pool.stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn workers_are_recycled_after_their_document_count_and_when_they_grow_too_large() {
    if !soffice_installed() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut by_count = settings(work.path(), Limits::default());
    by_count.max_docs = 2;
    let pool = OfficePool::new(child_exe(), by_count);
    for _ in 0..3 {
        assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    }
    assert_eq!(pool.stats(), PoolStats { started: 2, failed: 0, recycled: 1 });

    let mut by_memory = settings(work.path(), Limits::default());
    by_memory.max_rss_bytes = 400 << 20;
    let pool = OfficePool::new(child_exe(), by_memory);
    assert_pdf(&office(&pool, DocKind::Rtf, &samples::rtf()).await, 2);
    assert_eq!(pool.stats().recycled, 0, "a fresh worker is under 400 MiB");
    // The document converts; the worker, 300 MiB larger after it, is replaced.
    let run = office(&pool, DocKind::Rtf, &marked_rtf("GROW-THE-WORKER")).await;
    assert_pdf(&run, 1);
    assert_eq!(pool.stats(), PoolStats { started: 1, failed: 0, recycled: 1 });
    assert!(pool.idle_pids().is_empty());
}

#[tokio::test]
async fn without_libreoffice_office_documents_fail_with_that_reason() {
    let work = tempfile::tempdir().unwrap();
    let missing = MissingOffice::new(work.path());
    let run = office(&missing.pool, DocKind::Docx, &samples::docx(&["x"])).await;
    match &run.result {
        Err(ConvertError::Document { reason, .. }) => assert!(reason.contains("LibreOffice is needed"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// A pool whose workers look for LibreOffice where there is none.
struct MissingOffice {
    pool: OfficePool,
}

impl MissingOffice {
    fn new(dir: &Path) -> MissingOffice {
        let wrapper = dir.join("no-office-worker");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nCONVERT_OFFICE_PROGRAM=/nonexistent exec {} \"$@\"\n", child_exe().display()),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        MissingOffice { pool: OfficePool::new(wrapper, settings(dir, Limits::default())) }
    }
}

//! Every document judged and (unless an office document) converted in a warm doc worker: one worker
//! converts document after document; a document that hangs, balloons, spins or panics its worker
//! fails alone, with the one-shot child's reasons and the kind the worker judged before converting,
//! and the next document gets a fresh worker; workers are recycled by count and by memory; the
//! document's name never appears on a command line.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use docket_engine::{ConvertError, DocKind, Engine, Limits, PoolSettings, PoolStats};
use docket_samples::fixtures as samples;

fn settings(dir: &Path, limits: Limits) -> PoolSettings {
    PoolSettings { size: 1, limits, max_docs: 1000, max_rss_bytes: 4 << 30, work_dir: dir.to_path_buf() }
}

fn limits(timeout_secs: u64, cpu_seconds: u64) -> Limits {
    Limits { memory_bytes: 1 << 30, timeout: Duration::from_secs(timeout_secs), cpu_seconds }
}

fn engine(dir: &Path, limits: Limits) -> Engine {
    Engine::with_pools(child_exe(), settings(dir, limits.clone()), settings(dir, limits))
}

async fn convert(engine: &Engine, bytes: &[u8], name: &str) -> Run {
    let (dir, input, output) = scratch(bytes);
    let result = engine.convert(&input, &output, name).await;
    Run { dir, input, output, result }
}

/// A text note that carries a marker the test worker's hook acts on.
fn marked(marker: &str) -> Vec<u8> {
    format!("Clinic letter\n{marker}\nThe patient was seen today.\n").into_bytes()
}

fn one_pid(engine: &Engine) -> u32 {
    let pids = engine.documents().idle_pids();
    assert_eq!(pids.len(), 1, "one warm doc worker waits: {pids:?}");
    pids[0]
}

/// The reason of a document failure, after checking it kept the kind the worker judged.
fn text_failure(run: &Run) -> String {
    match &run.result {
        Err(ConvertError::Document { kind, reason }) => {
            assert_eq!(*kind, DocKind::Text, "the kind judged before converting: {reason}");
            assert!(!run.output.exists(), "no PDF for a failed document");
            reason.clone()
        }
        other => panic!("expected a document failure, got {other:?}"),
    }
}

#[tokio::test]
async fn one_warm_doc_worker_judges_and_converts_document_after_document() {
    let work = tempfile::tempdir().unwrap();
    let engine = engine(work.path(), Limits::default());
    let name = "Jane Doe referral.txt";
    assert_eq!(assert_pdf(&convert(&engine, &samples::text(40), name).await, 2).kind, DocKind::Text);
    let pid = one_pid(&engine);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!contains(&cmdline, b"Jane Doe"), "the document's name is not on the worker's command line");
    assert!(contains(&cmdline, b"doc-worker"));
    for _ in 0..3 {
        assert_eq!(assert_pdf(&convert(&engine, &samples::g4_tiff(3, 500), "fax.tif").await, 3).kind, DocKind::Tiff);
        assert_eq!(assert_pdf(&convert(&engine, &samples::text(40), name).await, 2).kind, DocKind::Text);
    }
    // Documents that fail on their own account cost the worker nothing.
    let bomb = convert(&engine, &samples::forged_png(), "bomb.png").await;
    assert!(reason(&bomb).contains("too large"), "{}", reason(&bomb));
    let empty = convert(&engine, b"", "empty.txt").await;
    assert!(reason(&empty).contains("empty"), "{}", reason(&empty));
    assert_eq!(one_pid(&engine), pid, "the same worker converted every document");
    assert_eq!(engine.documents().stats(), PoolStats { started: 1, failed: 0, recycled: 0 });
    assert_eq!(engine.office().stats().started, 0, "no office document, no office worker");
    assert_eq!(engine.worker_pids(), vec![pid]);
}

#[tokio::test]
async fn a_document_that_hangs_its_doc_worker_fails_alone_at_the_timeout_and_the_worker_is_replaced() {
    let work = tempfile::tempdir().unwrap();
    let engine = engine(work.path(), limits(3, 30));
    assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    let before = one_pid(&engine);
    let hung = convert(&engine, &marked("HANG-THE-WORKER"), "hang.txt").await;
    assert!(text_failure(&hung).contains("the conversion took longer than 3 s and was stopped"), "{:?}", hung.result);
    assert!(engine.documents().idle_pids().is_empty(), "the hung worker is not kept");
    assert!(gone(before).await, "the hung worker's process is killed");
    assert_pdf(&convert(&engine, &samples::text(40), "b.txt").await, 2);
    assert_ne!(one_pid(&engine), before, "a fresh worker converted the next document");
    assert_eq!(engine.documents().stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn a_document_that_balloons_its_doc_worker_fails_alone_with_the_memory_cap() {
    let work = tempfile::tempdir().unwrap();
    let engine = engine(work.path(), limits(60, 30));
    assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    let before = one_pid(&engine);
    let ballooned = convert(&engine, &marked("BALLOON-THE-WORKER"), "balloon.txt").await;
    let why = text_failure(&ballooned);
    assert!(why.contains("the conversion exceeded the 1 GiB memory cap and was stopped"), "{why}");
    assert!(gone(before).await);
    assert_pdf(&convert(&engine, &samples::g4_tiff(2, 500), "fax.tif").await, 2);
    assert_ne!(one_pid(&engine), before);
    assert_eq!(engine.documents().stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn a_document_that_spins_its_doc_worker_is_stopped_by_its_own_cpu_allowance() {
    let work = tempfile::tempdir().unwrap();
    // Two CPU seconds a document; the wall timeout is far off, so only the allowance can stop it.
    let engine = engine(work.path(), limits(60, 2));
    for _ in 0..3 {
        assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    }
    let spun = convert(&engine, &marked("SPIN-THE-WORKER"), "spin.txt").await;
    let why = text_failure(&spun);
    assert!(why.contains("the conversion used more than 2 s of CPU time and was stopped"), "{why}");
    assert_pdf(&convert(&engine, &samples::text(40), "b.txt").await, 2);
    assert_eq!(engine.documents().stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn a_document_that_panics_the_converter_fails_and_retires_its_worker() {
    let work = tempfile::tempdir().unwrap();
    let engine = engine(work.path(), Limits::default());
    assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    let before = one_pid(&engine);
    let panicked = convert(&engine, &marked("PANIC-THE-WORKER"), "panic.txt").await;
    let why = text_failure(&panicked);
    assert!(why.contains("the converter failed on this document (told to panic)"), "{why}");
    assert!(engine.documents().idle_pids().is_empty(), "a worker that panicked is not kept");
    assert!(gone(before).await, "it has stopped");
    assert_pdf(&convert(&engine, &samples::text(40), "b.txt").await, 2);
    assert_ne!(one_pid(&engine), before);
    assert_eq!(engine.documents().stats(), PoolStats { started: 2, failed: 1, recycled: 0 });
}

#[tokio::test]
async fn while_one_document_hangs_its_worker_the_others_convert_beside_it() {
    let work = tempfile::tempdir().unwrap();
    let mut both = settings(work.path(), limits(4, 30));
    both.size = 2;
    let engine = Engine::with_pools(child_exe(), both.clone(), both);
    let hang = marked("HANG-THE-WORKER");
    let text = samples::text(40);
    let others = async {
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(convert(&engine, &text, "note.txt").await);
        }
        runs
    };
    let (hung, runs) = tokio::join!(convert(&engine, &hang, "hang.txt"), others);
    assert!(text_failure(&hung).contains("took longer than 4 s"), "{:?}", hung.result);
    for run in &runs {
        assert_pdf(run, 2);
    }
    let stats = engine.documents().stats();
    assert_eq!((stats.started, stats.failed), (2, 1), "{stats:?}");
    assert_eq!(engine.documents().idle_pids().len(), 1, "the worker of the good documents is kept");
}

#[tokio::test]
async fn doc_workers_are_recycled_after_their_document_count_and_when_they_grow_too_large() {
    let work = tempfile::tempdir().unwrap();
    let mut by_count = settings(work.path(), Limits::default());
    by_count.max_docs = 2;
    let engine = Engine::with_pools(child_exe(), settings(work.path(), Limits::default()), by_count);
    for _ in 0..3 {
        assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    }
    assert_eq!(engine.documents().stats(), PoolStats { started: 2, failed: 0, recycled: 1 });

    let mut by_memory = settings(work.path(), Limits::default());
    by_memory.max_rss_bytes = 256 << 20;
    let engine = Engine::with_pools(child_exe(), settings(work.path(), Limits::default()), by_memory);
    assert_pdf(&convert(&engine, &samples::text(40), "a.txt").await, 2);
    assert_eq!(engine.documents().stats().recycled, 0, "a fresh worker is under 256 MiB");
    // The document converts; the worker, 300 MiB larger after it, is replaced.
    assert_pdf(&convert(&engine, &marked("GROW-THE-WORKER"), "grow.txt").await, 1);
    assert_eq!(engine.documents().stats(), PoolStats { started: 1, failed: 0, recycled: 1 });
    assert!(engine.worker_pids().is_empty());
}

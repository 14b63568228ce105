//! The engine tests' converter binary: the production `child` mode, plus misbehaving modes that
//! let the tests prove the caps without crafted documents. It lives here, not in the service, so no
//! test scaffolding is compiled into a production binary.
//!
//! `test-child child <input> <output>`: exactly the service's child.
//! `test-child office-worker <dir>`: the service's office worker, with a hook that hangs on a
//! document holding `HANG-THE-WORKER`, balloons (allocates until the memory cap stops it) on one
//! holding `BALLOON-THE-WORKER`, spins on `SPIN-THE-WORKER`, panics on `PANIC-THE-WORKER`, and keeps
//! 300 MiB more resident after one holding `GROW-THE-WORKER`.
//! `test-child doc-worker <dir>`: the service's doc worker, with the same hook (run after the
//! document is judged, before it is converted).
//! `test-child child --test hog|spin|hang|orphan`: allocate 2 GiB, burn CPU, hang, or leave a
//! grandchild holding the output pipe and hang; the caps apply to them as to a real conversion.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2).map(String::as_str)) {
        (Some("child"), Some("--test")) => test_mode(args.get(3).map_or("", String::as_str)),
        (Some("child"), _) => docket_engine::child_main(&args[2..]),
        (Some("office-worker"), _) => docket_engine::office_worker_main_with(&args[2..], Some(misbehave)),
        (Some("doc-worker"), _) => docket_engine::doc_worker_main_with(&args[2..], Some(misbehave)),
        _ => {
            eprintln!(
                "usage: test-child child <input> <output> | child --test hog|spin|hang|orphan | doc-worker <dir> | office-worker <dir>"
            );
            ExitCode::from(2)
        }
    }
}

/// The workers' test hook: misbehave as LibreOffice or a converter might on a marked document.
fn misbehave(input: &std::path::Path) {
    let bytes = std::fs::read(input).unwrap_or_default();
    let has = |marker: &[u8]| bytes.windows(marker.len()).any(|w| w == marker);
    if has(b"HANG-THE-WORKER") {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
    if has(b"BALLOON-THE-WORKER") {
        // Touched, 64 MiB at a time, until the address-space cap makes an allocation fail.
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 64 << 20]);
        }
    }
    if has(b"SPIN-THE-WORKER") {
        // Burn CPU until the worker's per-document allowance stops it.
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    if has(b"PANIC-THE-WORKER") {
        panic!("told to panic");
    }
    if has(b"GROW-THE-WORKER") {
        // As a leak would: memory kept for the rest of the worker's life.
        std::mem::forget(std::hint::black_box(vec![1u8; 300 << 20]));
    }
}

fn test_mode(mode: &str) -> ExitCode {
    // The early line a real child prints once it has judged the content.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, r#"{{"early":true,"kind":"unknown"}}"#);
    let _ = out.flush();
    drop(out);
    match mode {
        "hog" => {
            // Touch every page so the memory is really used, 64 MiB at a time, up to 2 GiB.
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            for _ in 0..32 {
                hoard.push(vec![1u8; 64 << 20]);
            }
            eprintln!("allocated {} MiB", hoard.len() * 64);
            ExitCode::SUCCESS
        }
        "spin" => {
            // Burn CPU until RLIMIT_CPU stops us.
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        "orphan" => {
            // A grandchild in our process group that keeps stdout open for a long time.
            let _ = std::process::Command::new("sleep").arg("300").spawn();
            std::thread::sleep(std::time::Duration::from_secs(300));
            ExitCode::SUCCESS
        }
        _ => {
            std::thread::sleep(std::time::Duration::from_secs(300));
            ExitCode::SUCCESS
        }
    }
}

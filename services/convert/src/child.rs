//! The child's side: `DOCKET_DOC_NAME=<name> docket-convert child <input> <output>` converts one file in-process and
//! prints its outcome as JSON lines on stdout for the parent.
//!
//! Two lines: first `{"kind":…}` as soon as the content is judged, so that a child killed later
//! (memory cap, timeout) can still be reported with its kind; then the outcome.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::{ConvertError, DocKind, convert_file, kind, sandbox};

/// One line the child prints. The parent reads the last complete one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Outcome {
    pub kind: DocKind,
    /// Set on the final line only.
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub pages: u32,
    #[serde(default)]
    pub error: Option<String>,
    /// The error is the host's (retry later), not the document's.
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub peak_rss_kib: u64,
    /// Things the operator may want to know (a repaired PDF, missing glyphs): never document content.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Notes gathered during this process's conversions, for the outcome line; capped, since an
/// in-process caller (tests, the benchmark) may convert many files.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records a note for the parent to log. The child has no log subscriber of its own: its stderr is
/// only read when it dies, so notes travel in the outcome.
pub(crate) fn note(text: impl Into<String>) {
    if let Ok(mut notes) = NOTES.lock()
        && notes.len() < 16
    {
        notes.push(text.into());
    }
}

fn take_notes() -> Vec<String> {
    NOTES.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
}

/// What the child runs; `args` are the arguments after `child`.
///
/// `--test hog|spin|hang|orphan` are test modes: allocate 2 GiB, burn CPU, hang, or leave a
/// grandchild holding the output pipe and hang. They let the tests prove the caps without a crafted document; they do
/// nothing a hostile document could not try, and the caps apply to them just the same.
pub fn child_main(args: &[String]) -> ExitCode {
    sandbox::child_setup();
    if args.first().map(String::as_str) == Some("--test") {
        return test_mode(args.get(1).map_or("", String::as_str));
    }
    let [input, output] = args else {
        eprintln!("usage: {}=<document name> docket-convert child <input> <output>", crate::isolate::NAME_VAR);
        return ExitCode::from(2);
    };
    let (input, output) = (Path::new(input), Path::new(output));
    let name = std::env::var(crate::isolate::NAME_VAR).unwrap_or_default();
    let name = name.as_str();
    // Judged here once for the early line; convert_file judges again, which costs microseconds.
    let early = std::fs::read(input).map(|b| kind::sniff(&b, name)).unwrap_or(DocKind::Unknown);
    emit(&Outcome { kind: early, done: false, pages: 0, error: None, internal: false, peak_rss_kib: 0, notes: vec![] });

    let result = std::panic::catch_unwind(|| convert_file(input, output, name)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ConvertError::doc(
            early,
            format!("the converter failed on this document ({})", crate::text::decode::prefix(&what, 200)),
        ))
    });
    let mut outcome = Outcome {
        kind: early,
        done: true,
        pages: 0,
        error: None,
        internal: false,
        peak_rss_kib: sandbox::peak_rss_kib(),
        notes: take_notes(),
    };
    let code = match result {
        Ok(c) => {
            outcome.kind = c.kind;
            outcome.pages = c.pages;
            0
        }
        Err(ConvertError::Document { kind, reason }) => {
            outcome.kind = kind;
            outcome.error = Some(reason);
            1
        }
        Err(ConvertError::Internal(why)) => {
            outcome.error = Some(why);
            outcome.internal = true;
            3
        }
    };
    emit(&outcome);
    ExitCode::from(code)
}

fn emit(outcome: &Outcome) {
    // Serialising a struct of plain fields cannot fail.
    let line = serde_json::to_string(outcome).expect("outcome serialises");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn test_mode(mode: &str) -> ExitCode {
    emit(&Outcome {
        kind: DocKind::Unknown,
        done: false,
        pages: 0,
        error: None,
        internal: false,
        peak_rss_kib: 0,
        notes: vec![],
    });
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

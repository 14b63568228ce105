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
    /// The document is an office document and the parent has warm office workers for it: the child
    /// judged it and stopped there (no conversion), leaving it to [`crate::office::pool`].
    #[serde(default)]
    pub office: bool,
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

/// What the child runs; `args` are the arguments after `child`. (The tests' misbehaving modes are
/// in `examples/test-child.rs`, not here.)
pub fn child_main(args: &[String]) -> ExitCode {
    sandbox::child_setup();
    let [input, output] = args else {
        eprintln!("usage: {}=<document name> docket-convert child <input> <output>", crate::isolate::NAME_VAR);
        return ExitCode::from(2);
    };
    let (input, output) = (Path::new(input), Path::new(output));
    let name = std::env::var(crate::isolate::NAME_VAR).unwrap_or_default();
    let name = name.as_str();
    // Judged here once for the early line; convert_file judges again, which costs microseconds.
    let early = std::fs::read(input).map(|b| kind::sniff(&b, name)).unwrap_or(DocKind::Unknown);
    let office = early.is_office() && std::env::var_os(crate::isolate::OFFICE_POOL_VAR).is_some();
    emit(&Outcome {
        kind: early,
        done: office,
        pages: 0,
        error: None,
        internal: false,
        peak_rss_kib: 0,
        office,
        notes: vec![],
    });
    if office {
        // Judged here, in the capped child, so the service never parses a document itself.
        return ExitCode::SUCCESS;
    }

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
        office: false,
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

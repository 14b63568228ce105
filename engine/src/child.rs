//! The one-shot child and the warm doc worker, which do the same for each document: judge its
//! kind, then (unless a doc worker leaves an office document to the office workers) convert it.
//!
//! `DOCKET_DOC_NAME=<name> docket-convert child <input> <output>` converts one file in-process and
//! prints its outcome as JSON lines ([`Answer`]s) on stdout for the parent: first an `early` one
//! with the kind as soon as the content is judged, so that a child killed later (memory cap,
//! timeout) can still be reported with its kind; then the outcome.
//!
//! `docket-convert doc-worker <dir>` does the same for one document after another, read as
//! requests from stdin ([`crate::worker`]'s protocol, [`crate::pool`] the parent's side). It caps
//! its own CPU per document as office workers do; a converter that panics fails its document and
//! retires the worker.

use std::path::Path;
use std::process::ExitCode;

use crate::worker::{Answer, Hook, answer_for, send, serve};
use crate::{ConvertError, Converted, DocKind, convert_judged, kind, sandbox};

/// Notes gathered during this process's conversions, for the outcome line; capped, since an
/// in-process caller (tests, the benchmark) may convert many files.
static NOTES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records a note for the parent to log. A child or worker has no log subscriber of its own: its
/// stderr is only read when it dies, so notes travel in the outcome.
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

/// Logs, in the parent, the notes a child or worker sent with a document's outcome.
pub(crate) fn log_notes(kind: DocKind, notes: &[String]) {
    for note in notes {
        tracing::warn!(kind = %kind, "conversion note: {note}");
    }
}

/// What the child runs; `args` are the arguments after `child`. (The tests' misbehaving modes are
/// in `examples/test-child.rs`, not here.)
pub fn child_main(args: &[String]) -> ExitCode {
    sandbox::child_setup();
    let [input, output] = args else {
        eprintln!("usage: {}=<document name> docket-convert child <input> <output>", crate::isolate::NAME_VAR);
        return ExitCode::from(2);
    };
    let name = std::env::var(crate::isolate::NAME_VAR).unwrap_or_default();
    let mut out = std::io::stdout();
    let done = judge_and_convert(Path::new(input), Path::new(output), &name, false, None, |kind, _| {
        let _ = send(&mut out, &Answer { early: true, kind: Some(kind), ..Answer::default() });
    });
    let answer = Answer { peak_rss_kib: sandbox::peak_rss_kib(), ..finished(done) };
    let code = match (&answer.error, answer.internal) {
        (None, _) => 0,
        (Some(_), false) => 1,
        (Some(_), true) => 3,
    };
    let _ = send(&mut out, &answer);
    ExitCode::from(code)
}

/// The doc worker's main; `args` are the arguments after `doc-worker` (its directory).
pub fn doc_worker_main(args: &[String]) -> ExitCode {
    doc_worker_main_with(args, None)
}

/// [`doc_worker_main`] with a hook run before converting each document (tests only).
pub fn doc_worker_main_with(args: &[String], hook: Option<Hook>) -> ExitCode {
    let (_dir, mut answers) = match crate::worker::open(args, "doc-worker") {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    serve(&mut answers, &Answer { ready: true, ..Answer::default() }, |req, out| {
        sandbox::allow_cpu(req.cpu_seconds);
        let done = judge_and_convert(&req.input, &req.output, &req.name, true, hook, |kind, office| {
            if !office {
                let _ = send(out, &Answer { early: true, kind: Some(kind), ..Answer::default() });
            }
        });
        finished(done)
    })
}

/// The final answer for a document (the child's or a doc worker's), with the notes taken meanwhile.
fn finished(done: Done) -> Answer {
    Answer {
        kind: Some(done.kind),
        office: done.office,
        notes: take_notes(),
        retire: done.panicked,
        ..answer_for(done.result.map(|c| c.pages))
    }
}

/// One document judged and, unless left to the office workers, converted.
struct Done {
    /// What it is: as converted or as failed, or as judged if the host failed.
    kind: DocKind,
    /// An office document, judged only (when `office_pool` was asked for).
    office: bool,
    result: Result<Converted, ConvertError>,
    /// The converter panicked (caught; the document failed with it).
    panicked: bool,
}

/// Judges `input`, tells `early` its kind (and whether it is left to the office workers, which it is
/// when `office_pool` and it is an office document), then converts it unless so; a panic in the
/// converter fails the document.
fn judge_and_convert(
    input: &Path,
    output: &Path,
    name: &str,
    office_pool: bool,
    hook: Option<Hook>,
    early: impl FnOnce(DocKind, bool),
) -> Done {
    // Read and judged once, here: the early line needs the kind before the conversion starts.
    let bytes = std::fs::read(input).map_err(|e| e.to_string());
    let judged = bytes.as_ref().map(|b| kind::sniff(b, name)).unwrap_or(DocKind::Unknown);
    let office = office_pool && judged.is_office();
    early(judged, office);
    if office {
        // Judged here, in the capped worker, so the service never parses a document itself.
        return Done { kind: judged, office, result: Ok(Converted { pages: 0, kind: judged }), panicked: false };
    }
    let mut panicked = false;
    let result = std::panic::catch_unwind(|| {
        if let Some(hook) = hook {
            hook(input);
        }
        match bytes {
            Ok(bytes) => convert_judged(judged, bytes, input, output, name),
            Err(e) => Err(ConvertError::Internal(format!("cannot read the input file: {e}"))),
        }
    })
    .unwrap_or_else(|panic| {
        panicked = true;
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ConvertError::doc(
            judged,
            format!("the converter failed on this document ({})", crate::text::decode::prefix(&what, 200)),
        ))
    });
    let kind = match &result {
        Ok(c) => c.kind,
        Err(ConvertError::Document { kind, .. }) => *kind,
        Err(ConvertError::Internal(_)) => judged,
    };
    Done { kind, office: false, result, panicked }
}

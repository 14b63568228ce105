//! The worker's side of the protocol both pools of warm workers speak ([`crate::pool`]): a
//! long-lived process of the service's own binary reads one [`Request`] a line on stdin and answers
//! one [`Answer`] a line on its original stdout (anything else that writes to stdout, LibreOffice's
//! chatter say, is sent to stderr). Two kinds share it: the doc worker
//! (`docket-convert doc-worker`, [`crate::doc_worker_main`]) and the office worker
//! (`docket-convert office-worker`, [`crate::office_worker_main`]).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::{ConvertError, DocKind, sandbox};

/// One document for a worker.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Request {
    pub input: PathBuf,
    pub output: PathBuf,
    /// What the document was judged to be (for an office worker; a doc worker judges it itself).
    pub kind: DocKind,
    /// The document's name in its archive (for a doc worker: a tie-breaker for its type and the
    /// header of text pages). It may name the patient, so it travels here, on a pipe only the
    /// service reads, never on a command line.
    #[serde(default)]
    pub name: String,
    /// CPU seconds this document may use.
    pub cpu_seconds: u64,
}

/// A worker's answer: first once when it is ready (`ready`), then one per document, which a doc
/// worker (and the one-shot child, whose outcome lines these are too) precedes with an `early`
/// line as soon as it has judged the document.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Answer {
    #[serde(default)]
    pub ready: bool,
    /// Only the document's kind, sent before converting it: a worker killed while converting (memory
    /// cap, CPU limit, timeout) has still said what the document was.
    #[serde(default)]
    pub early: bool,
    /// What a doc worker judged the document to be.
    #[serde(default)]
    pub kind: Option<DocKind>,
    /// An office document: a doc worker judged it and left it to the office workers.
    #[serde(default)]
    pub office: bool,
    #[serde(default)]
    pub pages: u32,
    #[serde(default)]
    pub error: Option<String>,
    /// The error is the host's (retry later), not the document's.
    #[serde(default)]
    pub internal: bool,
    /// LibreOffice is not installed here (on an office worker's ready line).
    #[serde(default)]
    pub missing: bool,
    /// Things the operator may want to know (a repaired PDF, missing glyphs): never document content.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The worker stops after this answer: it caught a panic, after which its state is not trusted.
    #[serde(default)]
    pub retire: bool,
    /// The worker's resident memory after the document, for the parent's restart rule.
    #[serde(default)]
    pub rss_kib: u64,
    /// CPU time the worker has used in all, in milliseconds (the benchmark's per-core figure).
    #[serde(default)]
    pub cpu_ms: u64,
    /// The one-shot child's peak resident memory (or that of the tool it ran, if larger).
    #[serde(default)]
    pub peak_rss_kib: u64,
}

impl Answer {
    /// The document's result: this answer, or its error as the document's (`kind`) or the host's.
    pub(crate) fn into_result(mut self, kind: DocKind) -> Result<Answer, ConvertError> {
        match (self.error.take(), self.internal) {
            (None, _) => Ok(self),
            (Some(reason), false) => Err(ConvertError::Document { kind, reason }),
            (Some(why), true) => Err(ConvertError::Internal(why)),
        }
    }
}

/// Called before each document with the request's input path. The service passes none; the engine's
/// tests pass one that hangs, balloons, spins or panics on a marked document, to prove the pools' recovery.
pub type Hook = fn(&Path);

/// A worker's first steps: volunteer for the out-of-memory killer, take its one argument (its
/// directory) and the answer pipe (the original stdout; stdout itself then goes to stderr).
pub(crate) fn open(args: &[String], mode: &str) -> Result<(PathBuf, std::io::LineWriter<std::fs::File>), ExitCode> {
    sandbox::child_setup();
    let [dir] = args else {
        eprintln!("usage: docket-convert {mode} <directory>");
        return Err(ExitCode::from(2));
    };
    match crate::office::take_stdout() {
        Ok(f) => Ok((PathBuf::from(dir), std::io::LineWriter::new(f))),
        Err(e) => {
            eprintln!("{mode}: cannot set up its answer pipe: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Says `ready`, then answers each request with `each` (which may send early lines of its own)
/// until stdin closes or an answer retires the worker.
pub(crate) fn serve<W: Write>(
    answers: &mut W,
    ready: &Answer,
    mut each: impl FnMut(&Request, &mut W) -> Answer,
) -> ExitCode {
    if send(answers, ready).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => each(&req, answers),
            Err(e) => Answer { error: Some(format!("bad request: {e}")), internal: true, ..Answer::default() },
        };
        if send(answers, &answer).is_err() || answer.retire {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The answer for one document's result, with the worker's memory and CPU after it.
pub(crate) fn answer_for(result: Result<u32, ConvertError>) -> Answer {
    let mut answer =
        Answer { rss_kib: sandbox::rss_kib(), cpu_ms: sandbox::cpu_used().as_millis() as u64, ..Answer::default() };
    match result {
        Ok(pages) => answer.pages = pages,
        Err(ConvertError::Document { reason, .. }) => answer.error = Some(reason),
        Err(ConvertError::Internal(why)) => {
            answer.error = Some(why);
            answer.internal = true;
        }
    }
    answer
}

pub(crate) fn send(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    // A struct of plain fields always serialises.
    let line = serde_json::to_string(answer).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

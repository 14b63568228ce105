//! The office worker: `docket-convert office-worker <dir>`, one long-lived process of the service's
//! own binary that starts LibreOfficeKit once and converts one document after another.
//!
//! It reads one [`Request`] a line on stdin and answers one [`Answer`] a line on its original stdout
//! (LibreOffice's own chatter is sent to stderr). The parent ([`super::pool`]) started it under the
//! caps of a conversion child (address space, its own process group, no network, parent-death
//! signal); before each document the worker moves its own CPU limit to what it has used so far plus
//! one document's allowance, so a document that spins is stopped by SIGXCPU like in a child. A
//! document that hangs or crashes LibreOffice takes this process with it, and only this process: the
//! parent records that document's failure and starts a fresh worker.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};

use super::lok::{Kit, KitError, StartError};
use super::{PDF_OPTIONS, checked_pages, could_not, extension, not_installed};
use crate::{ConvertError, DocKind};

/// Where LibreOffice's program directory is; `CONVERT_OFFICE_PROGRAM` overrides it.
const PROGRAM_DIR: &str = "/usr/lib/libreoffice/program";

/// One document to convert.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Request {
    pub input: PathBuf,
    pub output: PathBuf,
    pub kind: DocKind,
    /// CPU seconds this document may use.
    pub cpu_seconds: u64,
}

/// The worker's answer: first once when LibreOffice has started (`ready`), then one per document.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Answer {
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub pages: u32,
    #[serde(default)]
    pub error: Option<String>,
    /// The error is the host's (retry later), not the document's.
    #[serde(default)]
    pub internal: bool,
    /// LibreOffice is not installed here (on the ready line).
    #[serde(default)]
    pub missing: bool,
    /// The worker's resident memory after the document, for the parent's restart rule.
    #[serde(default)]
    pub rss_kib: u64,
    /// CPU time the worker has used in all, in milliseconds (the benchmark's per-core figure).
    #[serde(default)]
    pub cpu_ms: u64,
}

/// Called before each document with the request's input path. The service passes none; the engine's
/// tests pass one that hangs or balloons on a marked document, to prove the pool's recovery.
pub type Hook = fn(&Path);

/// The worker's main; `args` are the arguments after `office-worker` (its directory).
pub fn office_worker_main(args: &[String]) -> ExitCode {
    office_worker_main_with(args, None)
}

/// [`office_worker_main`] with a hook run before each document (tests only).
pub fn office_worker_main_with(args: &[String], hook: Option<Hook>) -> ExitCode {
    crate::sandbox::child_setup();
    let [dir] = args else {
        eprintln!("usage: docket-convert office-worker <directory>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let mut answers = match super::lok::take_stdout() {
        Ok(f) => std::io::LineWriter::new(f),
        Err(e) => {
            eprintln!("office worker: cannot set up its answer pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let program = std::env::var("CONVERT_OFFICE_PROGRAM").unwrap_or_else(|_| PROGRAM_DIR.into());
    let profile = file_url(&dir.join("profile"));
    let kit = match Kit::start(&program, &profile) {
        Ok(kit) => {
            super::lok::default_cpu_limit_signal();
            Some(kit)
        }
        Err(StartError::Missing(why)) => {
            eprintln!("office worker: {why}");
            None
        }
        Err(StartError::Failed(why)) => {
            let _ = send(&mut answers, &Answer { error: Some(why), internal: true, ..Answer::default() });
            return ExitCode::FAILURE;
        }
    };
    if send(&mut answers, &Answer { ready: true, missing: kit.is_none(), ..Answer::default() }).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                if let Some(hook) = hook {
                    hook(&req.input);
                }
                let result = match &kit {
                    Some(kit) => convert(kit, &dir, &req),
                    None => Err(not_installed(req.kind)),
                };
                answer_for(result)
            }
            Err(e) => Answer { error: Some(format!("bad request: {e}")), internal: true, ..Answer::default() },
        };
        if send(&mut answers, &answer).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn answer_for(result: Result<u32, ConvertError>) -> Answer {
    let mut answer = Answer { rss_kib: rss_kib(), cpu_ms: cpu_used().as_millis() as u64, ..Answer::default() };
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

fn send(out: &mut impl Write, answer: &Answer) -> std::io::Result<()> {
    // A struct of plain fields always serialises.
    let line = serde_json::to_string(answer).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// One document: its own scratch directory, LibreOffice, then qpdf's judgement of the PDF.
fn convert(kit: &Kit, dir: &Path, req: &Request) -> Result<u32, ConvertError> {
    allow_cpu(req.cpu_seconds);
    let qpdf = crate::pdf::qpdf()?;
    let work = tempfile::Builder::new().prefix("doc-").tempdir_in(dir).map_err(ConvertError::output)?;
    // A generated name with the extension of what the content is, never the archive's name.
    let src = work.path().join(format!("document.{}", extension(req.kind)));
    std::fs::copy(&req.input, &src).map_err(|e| ConvertError::Internal(format!("cannot read the input file: {e}")))?;
    let pdf = work.path().join("document.pdf");
    // "pdf" lets LibreOffice pick the export filter of whatever module opened the document, so an
    // OLE file that is really a spreadsheet goes through Calc's exporter where Calc is installed.
    kit.to_pdf(&file_url(&src), &file_url(&pdf), PDF_OPTIONS).map_err(|e| match e {
        KitError::Open => could_not(
            req.kind,
            &format!(
                "it cannot be opened (damaged, encrypted, or not really a {} file)",
                req.kind.label().to_uppercase()
            ),
        ),
        KitError::Save(why) => could_not(req.kind, &why),
    })?;
    if !pdf.is_file() {
        return Err(could_not(req.kind, "it produced no PDF"));
    }
    let pages = checked_pages(req.kind, &qpdf, &pdf)?;
    if std::fs::rename(&pdf, &req.output).is_err() {
        // The worker's directory may be on another filesystem than the output.
        std::fs::copy(&pdf, &req.output).map_err(ConvertError::output)?;
    }
    Ok(pages)
}

/// Moves this process's soft CPU limit to what it has used plus `seconds`: RLIMIT_CPU counts a
/// process's whole life, and this one lives for many documents. The hard limit was left open by the
/// parent for this; lowering the soft limit below what is used would stop us at once, so it only
/// ever sits ahead.
fn allow_cpu(seconds: u64) {
    let used = cpu_used().as_secs() + 1;
    let hard = getrlimit(Resource::RLIMIT_CPU).map_or(u64::MAX, |(_, hard)| hard);
    let _ = setrlimit(Resource::RLIMIT_CPU, used.saturating_add(seconds).min(hard), hard);
}

fn cpu_used() -> std::time::Duration {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let (user, sys) = (u.user_time(), u.system_time());
            let secs = user.tv_sec() + sys.tv_sec();
            let micros = user.tv_usec() + sys.tv_usec();
            std::time::Duration::from_micros(u64::try_from(secs * 1_000_000 + micros).unwrap_or(0))
        })
        .unwrap_or_default()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A `file://` URL for an absolute path, every byte outside the unreserved set percent-encoded.
pub(crate) fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut url = String::from("file://");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_encode_what_a_url_cannot_hold() {
        assert_eq!(file_url(Path::new("/tmp/a b/c%d/é.docx")), "file:///tmp/a%20b/c%25d/%C3%A9.docx");
    }
}

//! The office worker: `docket-convert office-worker <dir>`, one long-lived process of the service's
//! own binary that starts LibreOfficeKit once and converts one document after another.
//!
//! It reads one [`Request`] a line on stdin and answers one [`Answer`] a line on its original stdout
//! (LibreOffice's own chatter is sent to stderr; the protocol is [`crate::worker`]'s). The parent
//! ([`crate::pool`]) started it under the
//! caps of a conversion child (address space, its own process group, no network, parent-death
//! signal); before each document the worker moves its own CPU limit to what it has used so far plus
//! one document's allowance, so a document that spins is stopped by SIGXCPU like in a child. A
//! document that hangs or crashes LibreOffice takes this process with it, and only this process: the
//! parent records that document's failure and starts a fresh worker.

use std::path::Path;
use std::process::ExitCode;

use super::lok::{Kit, KitError, StartError};
use super::{PDF_OPTIONS, checked_pages, could_not, extension, not_installed};
use crate::worker::{Answer, Hook, Request, answer_for, send, serve};
use crate::{ConvertError, sandbox};

/// Where LibreOffice's program directory is; `CONVERT_OFFICE_PROGRAM` overrides it.
const PROGRAM_DIR: &str = "/usr/lib/libreoffice/program";

/// The worker's main; `args` are the arguments after `office-worker` (its directory).
pub fn office_worker_main(args: &[String]) -> ExitCode {
    office_worker_main_with(args, None)
}

/// [`office_worker_main`] with a hook run before each document (tests only).
pub fn office_worker_main_with(args: &[String], hook: Option<Hook>) -> ExitCode {
    let (dir, mut answers) = match crate::worker::open(args, "office-worker") {
        Ok(opened) => opened,
        Err(code) => return code,
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
    let ready = Answer { ready: true, missing: kit.is_none(), ..Answer::default() };
    serve(&mut answers, &ready, |req, _| {
        if let Some(hook) = hook {
            hook(&req.input);
        }
        answer_for(match &kit {
            Some(kit) => convert(kit, &dir, req),
            None => Err(not_installed(req.kind)),
        })
    })
}

/// One document: its own scratch directory, LibreOffice, then qpdf's judgement of the PDF.
fn convert(kit: &Kit, dir: &Path, req: &Request) -> Result<u32, ConvertError> {
    sandbox::allow_cpu(req.cpu_seconds);
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

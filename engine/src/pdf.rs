//! PDF input: checked with qpdf and passed through byte for byte when sound; rewritten by qpdf when
//! damaged (qpdf rebuilds broken cross-reference tables and streams), failed when even that does not
//! yield a sound file. Also counts pages of every PDF we pass on (LibreOffice's output included).
//!
//! Why qpdf rather than a Rust parser: it is the judge the tests and the issue name, it repairs what
//! it can rather than merely tolerating it, and a PDF it passes is one that other readers open.
//! The container image installs it (Debian package `qpdf`); without it PDFs cannot be checked,
//! which is this host's problem, so that is an `Internal` error.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{ConvertError, DocKind};

pub(crate) fn convert(input: &Path, output: &Path) -> Result<u32, ConvertError> {
    let qpdf = qpdf()?;
    let check = run(Command::new(&qpdf).arg("--check").arg(input))?;
    if check.code == 0 {
        let pages = page_count(&qpdf, input)?;
        copy_into_place(input, output)?;
        return Ok(pages);
    }
    let why = reason(&check.text, input);
    if check.text.contains("invalid password") {
        return Err(ConvertError::doc(DocKind::Pdf, "the PDF is password-protected and cannot be opened"));
    }
    // Damaged: let qpdf rewrite it, then hold the rewrite to the same check.
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().suffix(".pdf").tempfile_in(dir).map_err(ConvertError::output)?;
    let rewrite = run(Command::new(&qpdf).arg(input).arg(tmp.path()))?;
    let repaired = matches!(rewrite.code, 0 | 3) && run(Command::new(&qpdf).arg("--check").arg(tmp.path()))?.code == 0;
    if !repaired {
        return Err(ConvertError::doc(DocKind::Pdf, format!("the PDF is damaged beyond repair: {why}")));
    }
    let pages = page_count(&qpdf, tmp.path())?;
    tmp.persist(output).map_err(|e| ConvertError::output(e.error))?;
    crate::child::note(format!("damaged PDF repaired by qpdf: {why}"));
    Ok(pages)
}

/// Pages of a PDF that passed the check; a PDF with none is not a document.
pub(crate) fn page_count(qpdf: &Path, pdf: &Path) -> Result<u32, ConvertError> {
    let out = run(Command::new(qpdf).arg("--show-npages").arg(pdf))?;
    match out.text.trim().parse::<u32>() {
        Ok(0) => Err(ConvertError::doc(DocKind::Pdf, "the PDF has no pages")),
        Ok(n) if out.code == 0 || out.code == 3 => Ok(n),
        _ => Err(ConvertError::doc(
            DocKind::Pdf,
            format!("the PDF's pages cannot be counted: {}", reason(&out.text, pdf)),
        )),
    }
}

pub(crate) fn qpdf() -> Result<PathBuf, ConvertError> {
    find_program("qpdf").ok_or_else(|| {
        ConvertError::Internal(
            "qpdf is not installed on this converter host; it is needed to check PDFs (install the qpdf package)"
                .into(),
        )
    })
}

/// Looks a program up on `PATH`, as the shell would.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

pub(crate) struct Ran {
    pub code: i32,
    /// stdout then stderr, for reasons and numbers.
    pub text: String,
}

pub(crate) fn run(cmd: &mut Command) -> Result<Ran, ConvertError> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ConvertError::Internal(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    // Killed by a signal (its CPU limit, say): report as a failure, never as success.
    Ok(Ran { code: out.status.code().unwrap_or(-1), text })
}

/// qpdf's first complaints, without our scratch paths (they mean nothing to staff).
fn reason(text: &str, path: &Path) -> String {
    let path = path.to_string_lossy();
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.replace(&*path, "").replace("WARNING: ", "").trim_start_matches([':', ' ']).to_owned())
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("checking")
                && !l.starts_with("PDF Version")
                && !l.starts_with("File is not")
        })
        .take(2)
        .collect();
    let joined = lines.join("; ");
    if joined.is_empty() {
        "qpdf reports it as invalid".into()
    } else {
        crate::text::decode::prefix(&joined, 300).to_owned()
    }
}

fn copy_into_place(input: &Path, output: &Path) -> Result<(), ConvertError> {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(ConvertError::output)?;
    std::fs::copy(input, tmp.path()).map_err(ConvertError::output)?;
    tmp.persist(output).map_err(|e| ConvertError::output(e.error))?;
    Ok(())
}

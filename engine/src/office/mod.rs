//! DOCX, RTF, DOC and ODT through LibreOffice.
//!
//! Two ways, one result:
//! - warm (what the service uses): [`crate::pool`] keeps one long-lived office worker per conversion slot,
//!   each a process of the service's own binary (`docket-convert office-worker`, [`worker`]) that
//!   has started LibreOfficeKit once ([`lok`]) and converts one document after another;
//! - cold (in-process [`crate::convert_file`], the benchmark's comparison): `soffice --convert-to`
//!   started afresh for the one document, below.
//!
//! Cold: each conversion gets its own scratch directory holding a fresh profile (so concurrent
//! conversions never join one soffice process and escape their limits), the input under a
//! generated name (never the archive's), and the output. soffice runs as a grandchild of the
//! service, inside the conversion child's process group: the wall timeout kills it with the child.
//! It inherits the child's address-space cap, which LibreOffice without Java (Debian's
//! `libreoffice-writer-nogui`, installed without recommends) runs under: measured here it converts
//! under 256 MiB of address space. The real bound on its memory is still the container's memory
//! limit, as with everything else in the pod. It runs without network when `unshare` allows,
//! so a document cannot make it fetch remote images.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::pdf::{find_program, page_count, qpdf, run};
use crate::{ConvertError, DocKind};

mod lok;
mod worker;

pub(crate) use lok::take_stdout;
pub use worker::{office_worker_main, office_worker_main_with};

/// PDF export options: keep images at their own resolution; LibreOffice otherwise downsamples
/// them to 300 dpi. (LibreOffice's JSON form of the export filter's data.)
const PDF_OPTIONS: &str = r#"{"ReduceImageResolution":{"type":"boolean","value":"false"}}"#;

/// The reason for a document LibreOffice could not convert, as staff read it.
fn could_not(kind: DocKind, why: &str) -> ConvertError {
    ConvertError::doc(
        kind,
        format!("LibreOffice could not convert the document: {}", crate::text::decode::prefix(why.trim(), 300)),
    )
}

/// Pages of LibreOffice's PDF, which must pass qpdf like any other.
fn checked_pages(kind: DocKind, qpdf: &Path, pdf: &Path) -> Result<u32, ConvertError> {
    page_count(qpdf, pdf).map_err(|e| match e {
        ConvertError::Document { reason, .. } => {
            ConvertError::doc(kind, format!("LibreOffice produced an unusable PDF: {reason}"))
        }
        other => other,
    })
}

/// What staff read when a converter host has no LibreOffice.
fn not_installed(kind: DocKind) -> ConvertError {
    ConvertError::doc(
        kind,
        format!(
            "LibreOffice is needed to convert {} documents and is not installed on this converter",
            kind.label().to_uppercase()
        ),
    )
}

pub(crate) fn convert(kind: DocKind, input: &Path, output: &Path) -> Result<u32, ConvertError> {
    let soffice = find_program("soffice").or_else(|| find_program("libreoffice")).ok_or_else(|| not_installed(kind))?;
    let qpdf = qpdf()?;
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let work = tempfile::Builder::new().prefix(".soffice-").tempdir_in(dir).map_err(ConvertError::output)?;
    let src = work.path().join(format!("document.{}", extension(kind)));
    std::fs::copy(input, &src).map_err(ConvertError::output)?;
    let outdir = work.path().join("out");

    let filter = format!("pdf:writer_pdf_Export:{PDF_OPTIONS}");
    let mut result = soffice_run(&soffice, work.path(), &src, &outdir, &filter)?;
    let pdf = outdir.join("document.pdf");
    if !pdf.is_file() && kind == DocKind::Doc {
        // An OLE file may be a spreadsheet or a presentation, which the Writer filter refuses.
        result = soffice_run(&soffice, work.path(), &src, &outdir, "pdf")?;
    }
    if !pdf.is_file() {
        return Err(could_not(kind, &soffice_reason(&result)));
    }
    let pages = checked_pages(kind, &qpdf, &pdf)?;
    // Same filesystem (the scratch directory sits beside the output): a rename, not a copy.
    std::fs::rename(&pdf, output).map_err(ConvertError::output)?;
    Ok(pages)
}

fn soffice_run(
    soffice: &Path,
    work: &Path,
    src: &Path,
    outdir: &Path,
    filter: &str,
) -> Result<crate::pdf::Ran, ConvertError> {
    let profile = format!("-env:UserInstallation=file://{}", work.join("profile").display());
    let jail = network_jail();
    let mut cmd = Command::new(jail.first().map_or(soffice.as_os_str(), |p| p.as_ref()));
    cmd.args(jail.iter().skip(1))
        .args(if jail.is_empty() { None } else { Some(soffice) })
        .args(["--headless", "--invisible", "--norestore", "--nolockcheck", "--nodefault", "--nologo"])
        .arg(profile)
        .arg("--convert-to")
        .arg(filter)
        .arg("--outdir")
        .arg(outdir)
        .arg(src)
        // Anything soffice writes outside its profile lands in the scratch directory too.
        .env("HOME", work)
        .current_dir(work);
    run(&mut cmd)
}

fn soffice_reason(result: &crate::pdf::Ran) -> String {
    let line = result
        .text
        .lines()
        .find(|l| l.contains("Error") || l.contains("error"))
        .map(str::trim)
        .unwrap_or("it produced no PDF");
    let line = if result.code != 0 && result.code != 81 && line == "it produced no PDF" {
        format!("it stopped with status {}", result.code)
    } else {
        line.to_owned()
    };
    crate::text::decode::prefix(&line, 300).to_owned()
}

pub(crate) fn extension(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Docx => "docx",
        DocKind::Rtf => "rtf",
        DocKind::Odt => "odt",
        _ => "doc",
    }
}

/// The command prefix that runs a program without network: `unshare --net` when this host lets us
/// (root in a container), with a user namespace when it does not; none, with a warning, otherwise.
pub(crate) fn network_jail() -> &'static [String] {
    static JAIL: OnceLock<Vec<String>> = OnceLock::new();
    JAIL.get_or_init(|| {
        let candidates: [&[&str]; 2] = [&["unshare", "--net", "--"], &["unshare", "--net", "--map-root-user", "--"]];
        for prefix in candidates {
            let ok = Command::new(prefix[0])
                .args(&prefix[1..])
                .arg("true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return prefix.iter().map(|s| (*s).to_owned()).collect();
            }
        }
        crate::child::note(
            "LibreOffice ran with network access: unshare is not permitted here (rely on the NetworkPolicy)",
        );
        Vec::new()
    })
}

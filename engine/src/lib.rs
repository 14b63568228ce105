//! docket-engine: the conversion engine of the convert stage — every document type to a valid PDF.
//!
//! Map of the crate:
//! - [`kind`]: judges what a file is from its content (magic bytes, structure), the name only a tie-breaker.
//! - [`convert_file`] (here): dispatches one in-process conversion to the module for its kind:
//!   `text` (plain text, HTML, XML and CDA as typeset text pages), `image` (JPEG, PNG, GIF),
//!   `tiff` (every page, CCITT data copied undecoded), `pdf` (validate, repair, pass through),
//!   `office` (DOCX, RTF, DOC, ODT through LibreOffice; in-process, a cold `soffice`).
//! - [`Engine`]: what the service calls: every document judged (and all but office documents
//!   converted) in a warm, capped doc worker, office documents in a warm LibreOffice worker; each a
//!   [`WorkerPool`] (`pool`) of long-lived processes of the service's binary, one per conversion
//!   slot, replaced when a document hangs, crashes or overruns one (`worker`: their protocol;
//!   `child`: the doc worker; `office`: the office worker and its LibreOfficeKit binding).
//! - [`convert_isolated`]: one conversion in a one-shot child process of the service's binary
//!   (tests and benchmarks), under an address-space cap, a CPU limit and a wall timeout that kills
//!   its process group; `child` is the child's side, `sandbox` the few system calls that confine it
//!   and the workers.
//! - [`limits`]: the caps of one conversion (from `CONVERT_MEMORY_LIMIT`, `CONVERT_TIMEOUT`) and the host's default `CONVERT_PREFETCH`.
//!
//! The stage's wiring lives in `services/convert`; the sample documents the tests and the benchmark
//! convert come from the `docket-samples` crate, and the tests' child modes from `examples/test-child.rs`:
//! nothing of either is compiled into the service.

mod child;
mod engine;
mod image;
mod imagemeta;
mod isolate;
pub mod kind;
pub mod limits;
mod office;
mod pdf;
mod pdfimage;
mod pool;
mod sandbox;
mod text;
mod tiff;
mod worker;

use std::path::Path;

pub use child::{child_main, doc_worker_main, doc_worker_main_with};
pub use engine::Engine;
#[doc(hidden)]
pub use isolate::run_child;
pub use isolate::{ChildReport, convert_isolated, run_isolated};
pub use kind::DocKind;
pub use limits::{Limits, default_prefetch};
pub use office::{office_worker_main, office_worker_main_with};
pub use pool::{OfficePool, PoolSettings, PoolStats, WorkerPool};
pub use text::cjk_available;
pub use worker::Hook;

/// A successful conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Converted {
    /// Pages in the PDF written, for the report.
    pub pages: u32,
    /// What the content was judged to be (not what its name claimed).
    pub kind: DocKind,
}

/// Why a conversion did not produce a PDF; the variant says what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The document cannot be converted (corrupt, unsupported, over the memory cap or the timeout):
    /// permanent for this document; the reason goes into the report, so it must be clear to staff.
    #[error("{reason}")]
    Document { kind: DocKind, reason: String },
    /// Something about this host went wrong (could not spawn, disk full, out of fds): retry later.
    #[error("converter host problem: {0}")]
    Internal(String),
}

impl ConvertError {
    pub(crate) fn doc(kind: DocKind, reason: impl Into<String>) -> Self {
        ConvertError::Document { kind, reason: reason.into() }
    }

    /// Writing our own output failed: the host's fault (disk full, permissions), never the document's.
    pub(crate) fn output(e: std::io::Error) -> Self {
        ConvertError::Internal(format!("cannot write the PDF: {e}"))
    }
}

/// Largest image page decoded, in pixels: a page bigger than this is refused before decoding.
pub const MAX_PIXELS: u64 = 150_000_000;

/// In-process conversion (what the child and the doc worker do), for tests and benches.
///
/// `name` is the document's path inside its archive: shown in text page headers and used
/// only as a tie-breaker when the content is ambiguous.
pub fn convert_file(input: &Path, output: &Path, name: &str) -> Result<Converted, ConvertError> {
    let bytes = std::fs::read(input).map_err(|e| ConvertError::Internal(format!("cannot read the input file: {e}")))?;
    let kind = kind::sniff(&bytes, name);
    convert_judged(kind, bytes, input, output, name)
}

/// [`convert_file`] for a document already read (`bytes`, the contents of `input`) and judged
/// (`kind`), so a worker that judged it first reads it once.
pub(crate) fn convert_judged(
    kind: DocKind,
    bytes: Vec<u8>,
    input: &Path,
    output: &Path,
    name: &str,
) -> Result<Converted, ConvertError> {
    let pages = match kind {
        DocKind::Pdf => pdf::convert(input, output)?,
        DocKind::Tiff => write_pdf(output, tiff::convert(&bytes)?)?,
        DocKind::Jpeg | DocKind::Png | DocKind::Gif => write_pdf(output, image::convert(kind, bytes)?)?,
        DocKind::Text | DocKind::Html | DocKind::Xml | DocKind::Cda => {
            write_pdf(output, text::convert(kind, &bytes, name)?)?
        }
        DocKind::Rtf | DocKind::Docx | DocKind::Doc | DocKind::Odt => office::convert(kind, input, output)?,
        DocKind::Empty => return Err(ConvertError::doc(kind, "the file is empty")),
        DocKind::Archive => {
            return Err(ConvertError::doc(kind, "the file is an archive; nested archives are not converted"));
        }
        DocKind::Unknown => {
            return Err(ConvertError::doc(
                kind,
                "the content is not a recognised document type (not a PDF, image, text, HTML, XML, RTF or Word file)",
            ));
        }
    };
    Ok(Converted { pages, kind })
}

/// Writes finished PDF bytes next to `output` and renames them into place, so a reader never
/// sees half a PDF.
fn write_pdf(output: &Path, (pdf, pages): (Vec<u8>, u32)) -> Result<u32, ConvertError> {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(ConvertError::output)?;
    std::io::Write::write_all(&mut tmp, &pdf).map_err(ConvertError::output)?;
    tmp.persist(output).map_err(|e| ConvertError::output(e.error))?;
    Ok(pages)
}

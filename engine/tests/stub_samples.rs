//! The stub DocumentExchange's sample documents (an independent generator) convert too: every
//! convertible one to a PDF qpdf accepts with the right page count, the rest with a reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use docket_engine::DocKind;
use docket_samples as stub;

#[test]
fn stub_fax_tiffs_of_every_style_keep_every_page() {
    // Seeds spread over the generator's styles (G4 fine, G4 normal, PackBits).
    for seed in 0..6 {
        let run = convert(&stub::tiff(3, seed), "fax.tif");
        assert_eq!(assert_pdf(&run, 3).kind, DocKind::Tiff, "seed {seed}");
    }
}

#[test]
fn stub_pdfs_text_and_markup_convert() {
    assert_eq!(assert_pdf(&convert(&stub::pdf(5, 1), "report.pdf"), 5).kind, DocKind::Pdf);
    for seed in 0..3 {
        assert_eq!(convert_ok(&stub::text(seed), "notes.txt"), DocKind::Text);
        assert_eq!(convert_ok(&stub::html(seed), "summary.html"), DocKind::Html);
        assert_eq!(convert_ok(&stub::cda(seed), "ccd.xml"), DocKind::Cda);
    }
}

#[test]
fn stub_photos_convert_upright_oriented_and_cmyk() {
    for i in 0..stub::cached::VARIANTS {
        assert_pdf(&convert(stub::cached::jpeg(i), "photo.jpg"), 1);
        assert_pdf(&convert(stub::cached::jpeg_oriented(i), "phone.jpg"), 1);
        assert_pdf(&convert(stub::cached::png(i), "scan.png"), 1);
    }
}

#[test]
fn stub_junk_and_truncated_files_fail_with_reasons_or_convert_validly() {
    assert!(!reason(&convert(&stub::junk(5000, 7), "x.bin")).is_empty());
    for bytes in [stub::truncated(stub::pdf(3, 2), 60), stub::truncated(stub::cached::jpeg(0).to_vec(), 50)] {
        let run = convert(&bytes, "cut");
        if run.result.is_ok() {
            assert_valid(&run.output);
        } else {
            assert!(!reason(&run).is_empty());
        }
    }
}

#[test]
fn stub_office_documents_convert_when_libreoffice_is_installed() {
    if !soffice_installed() {
        return;
    }
    assert_eq!(convert_ok(&stub::rtf(1), "letter.rtf"), DocKind::Rtf);
    assert_eq!(convert_ok(&stub::docx(1), "letter.docx"), DocKind::Docx);
}

/// Converts, checks the PDF with qpdf against the reported page count, and returns the kind.
fn convert_ok(bytes: &[u8], name: &str) -> DocKind {
    let run = convert(bytes, name);
    let pages = run.result.clone().unwrap_or_else(|e| panic!("{name}: {e:?}")).pages;
    assert_pdf(&run, pages).kind
}

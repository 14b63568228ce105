//! Every document type converts in-process to a PDF that qpdf accepts, with the right page count;
//! broken and mislabelled inputs are judged by content and fail with reasons.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use docket_engine::DocKind;
use docket_samples::fixtures as samples;

#[test]
fn multilingual_text_becomes_text_pages_with_a_page_break_at_the_form_feed() {
    let run = convert(&samples::text(40), "notes/visit.txt");
    let c = assert_pdf(&run, 2);
    assert_eq!(c.kind, DocKind::Text);
    // The font is embedded (subset), so non-ASCII text renders anywhere.
    let pdf = std::fs::read(&run.output).unwrap();
    assert!(contains(&pdf, b"/FontFile2") || contains(&pdf, b"/FontFile3"), "fonts must be embedded");
}

#[test]
fn long_text_wraps_and_paginates() {
    let run = convert(&samples::text(400), "long.txt");
    let c = run.result.clone().unwrap();
    assert!(c.pages >= 6, "400 lines need several pages, got {}", c.pages);
    assert_pdf(&run, c.pages);
}

#[test]
fn latin1_and_utf16_text_are_decoded() {
    assert_eq!(assert_pdf(&convert(&samples::latin1_text(), "befund.txt"), 1).kind, DocKind::Text);
    assert_eq!(assert_pdf(&convert(&samples::utf16_text(), "diagnose.txt"), 1).kind, DocKind::Text);
}

#[test]
fn html_cda_and_xml_become_readable_text() {
    assert_eq!(assert_pdf(&convert(&samples::html(), "summary.html"), 1).kind, DocKind::Html);
    assert_eq!(assert_pdf(&convert(&samples::cda(), "ccd.xml"), 1).kind, DocKind::Cda);
    assert_eq!(assert_pdf(&convert(&samples::xml(), "lab.xml"), 1).kind, DocKind::Xml);
}

#[test]
fn malformed_xml_is_still_shown_as_text() {
    let run = convert(b"<?xml version=\"1.0\"?><report><a>unclosed</report>", "broken.xml");
    assert_eq!(assert_pdf(&run, 1).kind, DocKind::Xml);
}

#[test]
fn a_three_page_g4_fax_gives_three_pages_copied_without_decoding() {
    let run = convert(&samples::g4_tiff(3, 2200), "fax.tif");
    assert_eq!(assert_pdf(&run, 3).kind, DocKind::Tiff);
    assert!(contains(&std::fs::read(&run.output).unwrap(), b"/CCITTFaxDecode"));
    // 1728×2200 at 204×196 dpi is a Letter-sized fax page, kept at its real size.
    let (w, h) = first_page_size(&run.output);
    assert!((w - 609.9).abs() < 1.0 && (h - 808.2).abs() < 1.0, "{w}×{h}");
}

#[test]
fn multi_strip_g4_g3_lzw_packbits_and_palette_tiffs_keep_every_page() {
    assert_pdf(&convert(&samples::g4_tiff_multistrip(2, 400), "a.tif"), 2);
    assert_pdf(&convert(&samples::g3_tiff(2, 300), "b.tif"), 2);
    assert_pdf(&convert(&samples::lzw_rgb_tiff(3, 120, 90), "c.tiff"), 3);
    assert_pdf(&convert(&samples::packbits_gray_tiff(2, 200, 100), "d.tif"), 2);
    assert_pdf(&convert(&samples::palette_tiff(), "e.tif"), 1);
}

#[test]
fn a_corrupt_g4_page_fails_with_its_page_number() {
    let mut tiff = samples::g4_tiff(2, 300);
    // Overwrite the middle of the first page's fax data (it starts right after the header).
    tiff[40..400].iter_mut().for_each(|b| *b = 0x00);
    let run = convert(&tiff, "fax.tif");
    assert!(reason(&run).contains("page 1"), "{}", reason(&run));
}

#[test]
fn jpeg_is_embedded_byte_for_byte() {
    let jpeg = samples::jpeg(400, 300, 1);
    let run = convert(&jpeg, "photo.jpg");
    assert_eq!(assert_pdf(&run, 1).kind, DocKind::Jpeg);
    let pdf = std::fs::read(&run.output).unwrap();
    assert!(contains(&pdf, &jpeg[jpeg.len() / 2..jpeg.len() / 2 + 256]), "JPEG data must be copied, not re-encoded");
}

#[test]
fn exif_orientation_turns_the_page() {
    let run = convert(&samples::jpeg(400, 300, 6), "phone.jpg");
    assert_pdf(&run, 1);
    let (w, h) = first_page_size(&run.output);
    assert!(h > w, "a landscape-stored photo with orientation 6 is shown portrait: {w}×{h}");
}

#[test]
fn cmyk_jpeg_png_and_gif_convert() {
    assert_pdf(&convert(&samples::cmyk_jpeg(200, 100), "print.jpg"), 1);
    assert_eq!(assert_pdf(&convert(&samples::png(300, 200, false), "scan.png"), 1).kind, DocKind::Png);
    assert_eq!(assert_pdf(&convert(&samples::gif(), "pixel.gif"), 1).kind, DocKind::Gif);
}

#[test]
fn a_png_declaring_50000_by_50000_fails_before_decoding() {
    let run = convert(&samples::forged_png(), "bomb.png");
    assert!(reason(&run).contains("too large"), "{}", reason(&run));
}

#[test]
fn a_truncated_jpeg_fails_with_a_reason() {
    let run = convert(&samples::truncated_jpeg(), "cut.jpg");
    assert!(reason(&run).contains("truncated"), "{}", reason(&run));
}

#[test]
fn a_sound_pdf_passes_through_unchanged() {
    let pdf = samples::pdf(4);
    let run = convert(&pdf, "report.pdf");
    assert_eq!(assert_pdf(&run, 4).kind, DocKind::Pdf);
    assert_eq!(std::fs::read(&run.output).unwrap(), pdf);
}

#[test]
fn a_damaged_pdf_is_repaired_and_a_hopeless_one_fails() {
    assert_pdf(&convert(&samples::damaged_pdf(2), "damaged.pdf"), 2);
    let run = convert(&samples::hopeless_pdf(), "hopeless.pdf");
    assert!(reason(&run).contains("PDF"), "{}", reason(&run));
}

#[test]
fn mislabelled_files_are_judged_by_content() {
    assert_eq!(assert_pdf(&convert(b"just a note, not a PDF\n", "scan.pdf"), 1).kind, DocKind::Text);
    assert_eq!(assert_pdf(&convert(&samples::png(50, 50, false), "letter.txt"), 1).kind, DocKind::Png);
    assert_eq!(assert_pdf(&convert(&samples::pdf(1), "image.jpg"), 1).kind, DocKind::Pdf);
    assert_eq!(assert_pdf(&convert(&samples::g4_tiff(1, 100), "fax.pdf"), 1).kind, DocKind::Tiff);
    assert_eq!(docket_engine::kind::sniff(&samples::docx(&["x"]), "letter.doc"), DocKind::Docx);
    assert_eq!(docket_engine::kind::sniff(&samples::rtf(), "letter.txt"), DocKind::Rtf);
    // An HTML fragment is HTML when the name says so, XML otherwise.
    assert_eq!(docket_engine::kind::sniff(b"<note><b>x</b></note>", "page.htm"), DocKind::Html);
    assert_eq!(docket_engine::kind::sniff(b"<note><b>x</b></note>", "data.xml"), DocKind::Xml);
}

#[test]
fn junk_and_empty_files_fail_with_reasons() {
    let junk: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let run = convert(&junk, "mystery.dat");
    assert!(reason(&run).contains("not a recognised document type"), "{}", reason(&run));
    assert!(reason(&convert(b"", "empty.txt")).contains("empty"));
    assert!(reason(&convert(b"PK\x03\x04garbage", "broken.docx")).contains("archive"));
}

#[test]
fn rtf_and_docx_go_through_libreoffice_or_say_it_is_needed() {
    let rtf = convert(&samples::rtf(), "letter.rtf");
    let docx = convert(&samples::docx(&["Referral", "Dear colleague, café."]), "letter.docx");
    if soffice_installed() {
        assert_eq!(assert_pdf(&rtf, 2).kind, DocKind::Rtf);
        assert_eq!(assert_pdf(&docx, 1).kind, DocKind::Docx);
    } else {
        assert!(reason(&rtf).contains("LibreOffice is needed"), "{}", reason(&rtf));
        assert!(reason(&docx).contains("LibreOffice is needed"), "{}", reason(&docx));
    }
}

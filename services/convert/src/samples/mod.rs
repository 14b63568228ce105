//! Small generated documents of every kind the archives hold, good and bad, for the tests and the
//! benchmark. Nothing here is read from disk or the network.

mod images;
mod tiffw;

pub use images::{cmyk_jpeg, gif, huge_png, jpeg, png, truncated_jpeg};
pub use tiffw::{g3_tiff, g4_tiff, g4_tiff_multistrip, lzw_rgb_tiff, packbits_gray_tiff, palette_tiff};

use std::io::Write;

/// A few lines in several scripts, the way a records export mixes them.
pub const MULTILINGUAL: &str = "Patient notes — résumé: naïve café, Zoë Ødegård, Łódź.\n\
    Ελληνικά: αιμοσφαιρίνη. Русский: анализ крови.\n\
    日本語: 血液検査の結果。 中文: 血常规。 한국어: 혈액 검사.\n";

/// UTF-8 text of about `lines` lines, with tabs and a form feed.
pub fn text(lines: usize) -> Vec<u8> {
    let mut s = String::from(MULTILINGUAL);
    for i in 0..lines {
        s.push_str(&format!("{i:05}\tGlucose\t{:.1} mmol/L\treference 3.9–5.5\tok\n", 4.0 + (i % 15) as f32 / 10.0));
        if i == lines / 2 {
            s.push('\x0c');
        }
    }
    s.into_bytes()
}

/// Latin-1 (really Windows-1252) text, as old Windows exports write it.
pub fn latin1_text() -> Vec<u8> {
    b"Befund f\xfcr Patientin M\xfcller: Blutdruck 120/80, \x80 15 Geb\xfchr.\n".to_vec()
}

/// UTF-16LE with a BOM, as some Windows tools save "Unicode" text.
pub fn utf16_text() -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend("Diagnose: Grippe\r\nTherapie: Ruhe\r\n".encode_utf16().flat_map(u16::to_le_bytes));
    out
}

pub fn html() -> Vec<u8> {
    "<!DOCTYPE html><html><head><title>Discharge summary</title><style>h1{color:red}</style>\
     <script>var x = 1;</script></head><body><h1>Discharge summary</h1><p>Admitted with chest pain; \
     troponin negative. Résumé in <b>bold</b> &amp; entities&nbsp;&eacute;.</p><h2>Medications</h2>\
     <ol><li>Aspirin 100 mg</li><li>Atorvastatin 20 mg</li></ol><table><tr><th>Test</th><th>Result</th></tr>\
     <tr><td>LDL</td><td>2.1 mmol/L</td></tr></table><pre>  preformatted\tline</pre></body></html>"
        .as_bytes()
        .to_vec()
}

pub fn cda() -> Vec<u8> {
    r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>Continuity of Care Document</title>
<effectiveTime value="20240115103000+0100"/>
<recordTarget><patientRole><patient><name><given>Jane</given><family>Doe</family></name></patient></patientRole></recordTarget>
<component><structuredBody>
<component><section><title>Allergies</title><text><list><item>Penicillin — rash</item><item>Latex</item></list></text>
<entry><observation><code code="414285001"/></observation></entry></section></component>
<component><section><title>Results</title><text><table><thead><tr><th>Test</th><th>Value</th></tr></thead>
<tbody><tr><td>HbA1c</td><td>6.1 %</td></tr></tbody></table><paragraph>Reviewed &amp; signed.</paragraph></text></section></component>
</structuredBody></component></ClinicalDocument>"#
        .as_bytes()
        .to_vec()
}

pub fn xml() -> Vec<u8> {
    br#"<?xml version="1.0"?><labReport id="42"><patientRef>P123</patientRef><results>
<result code="GLU"><name>Glucose</name><value unit="mmol/L">5.2</value></result>
<result code="HB"><name>Haemoglobin</name><value unit="g/dL">13.9</value></result></results></labReport>"#
        .to_vec()
}

/// An RTF letter of two pages (an explicit page break).
pub fn rtf() -> Vec<u8> {
    br"{\rtf1\ansi\deff0{\fonttbl{\f0 Helvetica;}}\f0\fs24 Referral letter\par Dear colleague, caf\'e9.\par\page Second page\par}".to_vec()
}

/// A minimal DOCX: the three parts Word needs, one paragraph per entry of `paragraphs`.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs.iter().map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>")).collect();
    let parts = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#.to_owned()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#.to_owned()),
        ("word/document.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#)),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in parts {
        // Writing into memory cannot fail.
        zip.start_file(name, zip::write::SimpleFileOptions::default()).expect("in-memory zip");
        zip.write_all(content.as_bytes()).expect("in-memory zip");
    }
    zip.finish().expect("in-memory zip").into_inner()
}

/// A valid PDF of `pages` empty Letter pages, written with pdf-writer.
pub fn pdf(pages: usize) -> Vec<u8> {
    use pdf_writer::{Pdf, Rect, Ref};
    let mut pdf = Pdf::new();
    let (catalog, tree) = (Ref::new(1), Ref::new(2));
    let ids: Vec<Ref> = (0..pages as i32).map(|i| Ref::new(3 + i)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(ids.iter().copied()).count(pages as i32);
    for id in ids {
        pdf.page(id).parent(tree).media_box(Rect::new(0.0, 0.0, 612.0, 792.0));
    }
    pdf.finish()
}

/// A PDF whose cross-reference table points at the wrong places: damaged, but repairable.
pub fn damaged_pdf(pages: usize) -> Vec<u8> {
    let mut bytes = pdf(pages);
    let xref = crate::kind::find(&bytes, b"xref\n").unwrap_or(0);
    // Shift every recorded offset by rewriting the first digits of each entry.
    for b in bytes[xref..].iter_mut().filter(|b| b.is_ascii_digit()).take(40) {
        *b = b'9';
    }
    bytes
}

/// A file that starts like a PDF and holds nothing a reader could use.
pub fn hopeless_pdf() -> Vec<u8> {
    b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is not a pdf at all\n%%EOF\n".to_vec()
}

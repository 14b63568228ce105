//! Office-format samples: RTF with Unicode escapes and a minimal valid DOCX.

use std::fmt::Write as _;
use std::io::{Cursor, Write as _};

use rand::Rng;
use zip::write::SimpleFileOptions;

use super::words::{self, xml_escape};
use crate::util::rng;

/// An RTF letter; non-ASCII text is written as `\uN?` escapes, as word processors do.
pub fn rtf(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut s = String::from(
        "{\\rtf1\\ansi\\ansicpg1252\\deff0\\uc1{\\fonttbl{\\f0\\fswiss Helvetica;}{\\f1\\froman Times New Roman;}}\n\
         {\\colortbl;\\red0\\green0\\blue0;\\red150\\green0\\blue0;}\n\\viewkind4\\pard\\sa120\\f0\\fs32\\b ",
    );
    s.push_str(&rtf_escape(words::one(&mut r, words::TITLES)));
    s.push_str("\\b0\\fs22\\par\n");
    let _ = writeln!(s, "{}\\par", rtf_escape(&format!("{} - {}", words::person(&mut r), words::date(&mut r))));
    for _ in 0..r.random_range(2..5) {
        let _ = write!(s, "\\f0\\b {}\\b0\\par\n\\f1 ", rtf_escape(words::one(&mut r, words::SECTIONS)));
        let _ = writeln!(s, "{}\\par", rtf_escape(&words::paragraph(&mut r, 3)));
        let _ = writeln!(s, "\\cf2 {}\\cf0\\par", rtf_escape(words::one(&mut r, words::INTERNATIONAL)));
    }
    s.push_str("}\n");
    s.into_bytes()
}

/// Escapes RTF control characters; everything beyond ASCII as signed UTF-16 `\uN?`.
fn rtf_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{}?", *unit as i16);
                }
            }
        }
    }
    out
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

/// A minimal valid DOCX: content types, package relationships and one document part.
pub fn docx(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let para = |text: &str, bold: bool| {
        let props = if bold { "<w:rPr><w:b/><w:sz w:val=\"28\"/></w:rPr>" } else { "" };
        format!("<w:p><w:r>{props}<w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>", xml_escape(text))
    };
    let mut body = para(words::one(&mut r, words::TITLES), true);
    body.push_str(&para(&format!("{} – {}", words::person(&mut r), words::date(&mut r)), false));
    for _ in 0..r.random_range(2..5) {
        body.push_str(&para(words::one(&mut r, words::SECTIONS), true));
        body.push_str(&para(&words::paragraph(&mut r, 3), false));
        body.push_str(&para(words::one(&mut r, words::INTERNATIONAL), false));
    }
    docx_of(&body)
}

/// A DOCX whose body is `body` (WordprocessingML paragraphs), on A4 with 2.5 cm margins: the three
/// parts Word needs and nothing else.
pub fn docx_of(body: &str) -> Vec<u8> {
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}\
         <w:sectPr><w:pgSz w:w=\"11906\" w:h=\"16838\"/><w:pgMar w:top=\"1440\" w:right=\"1440\" w:bottom=\"1440\" w:left=\"1440\"/></w:sectPr>\
         </w:body></w:document>"
    );
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("word/document.xml", document.as_bytes()),
    ])
}

/// A zip (deflated, fixed timestamps) of the given files, built in memory.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in files {
        w.start_file(*name, opts).expect("names are unique and writing to memory cannot fail");
        w.write_all(data).expect("writing to memory cannot fail");
    }
    w.finish().expect("writing to memory cannot fail").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtf_escapes_non_ascii_as_signed_utf16() {
        assert_eq!(rtf_escape("a{b}ü"), "a\\{b\\}\\u252?");
        assert_eq!(rtf_escape("诊"), "\\u-29750?");
    }
}

//! Judging what a document is from its content: magic bytes first, then structure; the name breaks ties.

use std::fmt;
use std::io::Cursor;

use crate::text::decode::decode_text;

/// What a document's content was judged to be. `Display` gives a lowercase label fit for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Pdf,
    Tiff,
    Jpeg,
    Png,
    Gif,
    Text,
    Html,
    /// XML other than a CDA document.
    Xml,
    /// HL7 CDA / CCD clinical document (XML with a `ClinicalDocument` root).
    Cda,
    Rtf,
    Docx,
    /// Legacy binary Office file (OLE2 compound document: .doc, also .xls/.ppt).
    Doc,
    /// OpenDocument text.
    Odt,
    /// A zip (or other) archive that is not an Office document.
    Archive,
    Empty,
    Unknown,
}

impl DocKind {
    /// Converted by LibreOffice.
    pub fn is_office(self) -> bool {
        matches!(self, DocKind::Rtf | DocKind::Docx | DocKind::Doc | DocKind::Odt)
    }

    pub fn label(self) -> &'static str {
        match self {
            DocKind::Pdf => "pdf",
            DocKind::Tiff => "tiff",
            DocKind::Jpeg => "jpeg",
            DocKind::Png => "png",
            DocKind::Gif => "gif",
            DocKind::Text => "text",
            DocKind::Html => "html",
            DocKind::Xml => "xml",
            DocKind::Cda => "cda",
            DocKind::Rtf => "rtf",
            DocKind::Docx => "docx",
            DocKind::Doc => "doc",
            DocKind::Odt => "odt",
            DocKind::Archive => "archive",
            DocKind::Empty => "empty",
            DocKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Judges `bytes` by content; `name` (the path inside the archive) only settles ambiguous markup.
pub fn sniff(bytes: &[u8], name: &str) -> DocKind {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return DocKind::Empty;
    }
    if let Some(kind) = sniff_magic(bytes) {
        return kind;
    }
    // A PDF may carry junk before its header; readers accept it within the first kilobyte.
    if find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_some() {
        return DocKind::Pdf;
    }
    match decode_text(bytes) {
        Some(text) => sniff_text(&text, name),
        None => DocKind::Unknown,
    }
}

fn sniff_magic(b: &[u8]) -> Option<DocKind> {
    let kind = if b.starts_with(b"%PDF-") {
        DocKind::Pdf
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") || b.starts_with(b"II+\0") || b.starts_with(b"MM\0+") {
        DocKind::Tiff
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        DocKind::Jpeg
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        DocKind::Png
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        DocKind::Gif
    } else if b.starts_with(b"{\\rtf") {
        DocKind::Rtf
    } else if b.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        DocKind::Doc
    } else if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") {
        sniff_zip(b)
    } else if b.starts_with(&[0x1F, 0x8B]) || b.starts_with(b"7z\xBC\xAF\x27\x1C") || b.starts_with(b"Rar!") {
        DocKind::Archive
    } else {
        return None;
    };
    Some(kind)
}

/// A DOCX is a zip holding `word/document.xml`; an ODT names its type in a `mimetype` entry.
fn sniff_zip(bytes: &[u8]) -> DocKind {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return DocKind::Archive;
    };
    if zip.index_for_name("word/document.xml").is_some() {
        return DocKind::Docx;
    }
    if let Ok(entry) = zip.by_name("mimetype") {
        let mut mime = String::new();
        // The mimetype entry is a few dozen bytes; cap the read in case it is not.
        let _ = std::io::Read::read_to_string(&mut std::io::Read::take(entry, 128), &mut mime);
        if mime.trim() == "application/vnd.oasis.opendocument.text" {
            return DocKind::Odt;
        }
    }
    DocKind::Archive
}

/// Tags that only HTML uses as a root or leading element: a fragment starting with one is HTML.
const HTML_LEADS: &[&str] = &[
    "html", "head", "body", "div", "p", "table", "span", "h1", "h2", "h3", "h4", "br", "font", "b", "i", "ul", "ol",
    "pre", "title", "meta", "style", "center",
];

fn sniff_text(text: &str, name: &str) -> DocKind {
    let lead = text.trim_start_matches('\u{feff}').trim_start();
    if lead.starts_with("{\\rtf") {
        return DocKind::Rtf;
    }
    let html_name = has_ext(name, &["htm", "html", "xhtml"]);
    if !lead.starts_with('<') {
        // Some exported HTML starts with stray text; trust the markup only when the name agrees.
        let head = crate::text::decode::prefix(lead, 2048).to_ascii_lowercase();
        if html_name && (head.contains("<html") || head.contains("<body") || head.contains("<p>")) {
            return DocKind::Html;
        }
        return DocKind::Text;
    }
    match root_element(lead) {
        Some(root) if root.eq_ignore_ascii_case("!doctype html") => DocKind::Html,
        Some(root) if root.rsplit(':').next() == Some("ClinicalDocument") => DocKind::Cda,
        Some(root) if HTML_LEADS.iter().any(|t| root.eq_ignore_ascii_case(t)) => DocKind::Html,
        Some(_) if html_name => DocKind::Html,
        Some(_) => DocKind::Xml,
        None if html_name => DocKind::Html,
        None => DocKind::Text,
    }
}

/// The first element's name, skipping the XML declaration, comments and non-HTML doctypes.
fn root_element(mut s: &str) -> Option<String> {
    for _ in 0..64 {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("<?") {
            s = &rest[rest.find("?>")? + 2..];
        } else if let Some(rest) = s.strip_prefix("<!--") {
            s = &rest[rest.find("-->")? + 3..];
        } else if let Some(rest) = s.strip_prefix("<!") {
            let decl = &rest[..rest.find('>')?];
            if decl.trim().to_ascii_lowercase().starts_with("doctype html") {
                return Some("!doctype html".into());
            }
            s = &rest[decl.len() + 1..];
        } else if let Some(rest) = s.strip_prefix('<') {
            let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(rest.len());
            return (end > 0).then(|| rest[..end].to_string());
        } else {
            return None;
        }
    }
    None
}

fn has_ext(name: &str, exts: &[&str]) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    exts.contains(&ext.as_str())
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

//! Text-like documents (plain text, HTML, XML, CDA) reduced to blocks of text and typeset onto A4 pages.

mod cda;
pub(crate) mod decode;
mod entities;
mod fonts;
mod html;
mod layout;
mod render;
mod xml;

pub use fonts::cjk_available;

use crate::{ConvertError, DocKind};

/// A unit of reduced text, before line breaking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// A heading; level 1 is the largest.
    Heading(String, u8),
    /// Flowing text whose whitespace is collapsed; `indent` in steps (lists, nested sections).
    Para { text: String, indent: u8 },
    /// One line kept as written (plain text, `<pre>`), wrapped only when too wide.
    Pre(String),
    /// Start a new page (a form feed in plain text).
    PageBreak,
}

impl Block {
    pub fn para(text: impl Into<String>) -> Block {
        Block::Para { text: text.into(), indent: 0 }
    }
}

/// The most pages one text document may make: past this it fails rather than exhausting its cap.
pub(crate) const MAX_PAGES: usize = 5_000;

/// Converts text-like content to PDF bytes and the page count.
pub(crate) fn convert(kind: DocKind, bytes: &[u8], name: &str) -> Result<(Vec<u8>, u32), ConvertError> {
    let text = decode::decode_text(bytes)
        .ok_or_else(|| ConvertError::doc(kind, "the file is not readable text (binary content)"))?;
    let blocks = match kind {
        DocKind::Html => html::blocks(&text),
        DocKind::Cda => cda::cda_blocks(&text).map_err(|e| ConvertError::doc(kind, e))?,
        DocKind::Xml => xml::xml_blocks(&text).map_err(|e| ConvertError::doc(kind, e))?,
        _ => plain_blocks(&text),
    };
    let mut fonts = fonts::FontSet::new();
    let pages = layout::paginate(&blocks, &mut fonts).map_err(|pages| {
        ConvertError::doc(kind, format!("the text is too long: it would make more than {pages} pages"))
    })?;
    if fonts.missing > 0 {
        crate::child::note(format!(
            "{} distinct characters have no glyph in any installed font and show as boxes",
            fonts.missing
        ));
    }
    let count = pages.len() as u32;
    let pdf = render::render(&pages, &mut fonts, name)
        // Retrying would fail the same way: the document, not the host, is what the writer choked on.
        .map_err(|e| ConvertError::doc(kind, format!("the PDF writer failed on this document: {e}")))?;
    Ok((pdf, count))
}

/// Plain text keeps its lines (tables of lab values depend on it); form feeds start new pages.
fn plain_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (i, page) in text.split('\x0c').enumerate() {
        if i > 0 {
            blocks.push(Block::PageBreak);
        }
        let page = page.strip_prefix('\u{feff}').unwrap_or(page);
        blocks.extend(page.lines().map(|l| Block::Pre(expand_tabs(l))));
    }
    // Trailing empty lines would only add a blank page.
    while matches!(blocks.last(), Some(Block::Pre(l)) if l.trim().is_empty()) {
        blocks.pop();
    }
    blocks
}

/// Tabs to the next multiple of eight columns; other control characters dropped.
pub(crate) fn expand_tabs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut col = 0;
    for c in line.chars() {
        match c {
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            c if c.is_control() => {}
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// Collapses runs of whitespace to one space, as HTML and XML text flows.
pub(crate) fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

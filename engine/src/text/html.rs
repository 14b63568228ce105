//! HTML reduced to readable text: headings, paragraphs, lists and table rows kept; head, scripts and styles dropped.
//!
//! A small tolerant tokenizer rather than a full HTML5 parser: exported clinical HTML is often
//! malformed, and all we need is the text and where its blocks break.

use super::entities::decode_entities;
use super::{Block, collapse_ws, expand_tabs};

/// Elements whose content is never text for a reader.
const RAW_SKIP: &[&str] = &["script", "style", "template", "svg", "math", "object", "iframe"];

/// Elements that end the current paragraph.
const BREAKS: &[&str] = &[
    "p",
    "div",
    "br",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "form",
    "fieldset",
    "address",
    "hr",
    "caption",
    "figure",
    "figcaption",
    "center",
    "thead",
    "tbody",
    "tfoot",
    "body",
    "html",
    "head",
    "li",
];

/// Turns a stream of tags and text into blocks; also drives CDA narrative blocks, whose tags map onto HTML's.
#[derive(Default)]
pub(crate) struct Reducer {
    blocks: Vec<Block>,
    text: String,
    heading: Option<u8>,
    lists: Vec<Option<u32>>,
    /// Inside `<pre>`: text kept with its line breaks.
    pre: Option<String>,
    in_title: bool,
    cells_in_row: usize,
}

pub(crate) fn blocks(html: &str) -> Vec<Block> {
    let lower = html.to_ascii_lowercase();
    let mut r = Reducer::default();
    let mut i = 0;
    while i < html.len() {
        let Some(lt) = html[i..].find('<').map(|p| p + i) else {
            r.push_text(&html[i..]);
            break;
        };
        r.push_text(&html[i..lt]);
        let rest = &lower[lt..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map_or(html.len(), |p| lt + p + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = rest.find('>').map_or(html.len(), |p| lt + p + 1);
            continue;
        }
        let closing = rest.as_bytes().get(1) == Some(&b'/');
        let name_start = lt + 1 + usize::from(closing);
        let name_len =
            lower[name_start..].find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(lower.len() - name_start);
        if name_len == 0 {
            // A lone '<' in text ("a < b").
            r.push_text("<");
            i = lt + 1;
            continue;
        }
        let name = &lower[name_start..name_start + name_len];
        i = tag_end(html, name_start + name_len);
        r.tag(name, closing);
        if !closing && RAW_SKIP.contains(&name) {
            // Skip to the matching end tag; the end tag itself is then read as usual.
            i = lower[i..].find(&format!("</{name}")).map_or(html.len(), |p| i + p);
        }
    }
    r.finish()
}

/// Index just past the `>` that ends a tag, skipping quoted attribute values.
fn tag_end(html: &str, from: usize) -> usize {
    let mut quote = None;
    for (off, c) in html[from..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return from + off + 1,
            _ => {}
        }
    }
    html.len()
}

impl Reducer {
    fn push_text(&mut self, raw: &str) {
        if !raw.is_empty() {
            self.text(&decode_entities(raw));
        }
    }

    /// Adds text whose character references are already resolved.
    pub fn text(&mut self, text: &str) {
        if let Some(pre) = &mut self.pre {
            pre.push_str(text);
        } else {
            self.text.push_str(text);
        }
    }

    /// Ends whatever is open and returns the blocks.
    pub fn finish(mut self) -> Vec<Block> {
        self.in_title = false;
        self.flush();
        self.blocks
    }

    /// An HTML start (`closing == false`) or end tag, by lowercase name.
    pub fn tag(&mut self, name: &str, closing: bool) {
        if let Some(level) = heading_level(name) {
            self.flush();
            self.heading = (!closing).then_some(level);
            return;
        }
        match (name, closing) {
            ("title", false) => {
                self.flush();
                self.in_title = true;
            }
            ("title", true) => {
                self.in_title = false;
                self.heading = Some(1);
                self.flush();
            }
            ("pre", false) => {
                self.flush();
                self.pre = Some(String::new());
            }
            ("pre", true) => self.end_pre(),
            ("ul", false) => self.lists.push(None),
            ("ol", false) => self.lists.push(Some(0)),
            ("ul" | "ol", true) => {
                self.flush();
                self.lists.pop();
            }
            ("li", false) => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "• ".to_owned(),
                };
                self.text.push_str(&marker);
            }
            ("tr", false) => {
                self.flush();
                self.cells_in_row = 0;
            }
            ("td" | "th", false) => {
                if self.cells_in_row > 0 {
                    self.text.push_str(" | ");
                }
                self.cells_in_row += 1;
            }
            (n, _) if BREAKS.contains(&n) => self.flush(),
            _ => {}
        }
    }

    fn end_pre(&mut self) {
        if let Some(pre) = self.pre.take() {
            let pre = pre.strip_prefix('\n').unwrap_or(&pre);
            self.blocks.extend(pre.lines().map(|l| Block::Pre(expand_tabs(l))));
        }
    }

    /// Ends the current paragraph (or heading) and starts a fresh one.
    fn flush(&mut self) {
        if self.in_title {
            return;
        }
        self.end_pre();
        let text = collapse_ws(&std::mem::take(&mut self.text));
        let heading = self.heading.take();
        if text.is_empty() || text == "|" {
            return;
        }
        let block = match heading {
            Some(level) => Block::Heading(text, level),
            None => Block::Para { text, indent: u8::try_from(self.lists.len()).unwrap_or(8) },
        };
        self.blocks.push(block);
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some((d - b'0').min(3)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_headings_lists_and_rows_and_drops_scripts() {
        let html = "<html><head><title>Visit</title><style>p{x}</style><script>alert(1)</script></head>\
            <body><h1>Summary</h1><p>Blood&nbsp;pressure &lt;140 &amp; stable</p>\
            <ul><li>Aspirin</li><li>Statin</ul><table><tr><th>Test<th>Value</tr><tr><td>HbA1c</td><td>6.1%</td></tr></table></body></html>";
        let b = blocks(html);
        assert_eq!(b[0], Block::Heading("Visit".into(), 1));
        assert_eq!(b[1], Block::Heading("Summary".into(), 1));
        assert_eq!(b[2], Block::para("Blood pressure <140 & stable"));
        assert_eq!(b[3], Block::Para { text: "• Aspirin".into(), indent: 1 });
        assert_eq!(b[5], Block::para("Test | Value"));
        assert_eq!(b[6], Block::para("HbA1c | 6.1%"));
        assert!(!format!("{b:?}").contains("alert"));
    }
}

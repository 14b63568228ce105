//! Generic XML reduced to text: an indented outline of elements, attributes and text.
//! Malformed XML is shown as plain text. (CDA documents have their own reading, in `cda`.)

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{Block, collapse_ws, plain_blocks};

/// Generic XML as an outline: containers as labels, leaves as `name: text`.
pub(crate) fn xml_blocks(xml: &str) -> Result<Vec<Block>, String> {
    let mut reader = Reader::from_str(xml);
    let mut blocks = Vec::new();
    // Per open element: its name, the text gathered so far, and whether its label was shown.
    let mut stack: Vec<(String, String, bool)> = Vec::new();
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return Ok(malformed(xml, &e.to_string(), reader.buffer_position())),
        };
        match event {
            Event::Start(e) => {
                label_parent(&mut stack, &mut blocks);
                stack.push((describe(&e), String::new(), false));
            }
            Event::Empty(e) => {
                label_parent(&mut stack, &mut blocks);
                blocks.push(Block::Para { text: describe(&e), indent: depth(stack.len()) });
            }
            Event::Text(t) => push_text(&mut stack, &t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => push_text(&mut stack, &String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => push_text(&mut stack, &reference(&r)),
            Event::End(_) => {
                if let Some((name, text, shown)) = stack.pop() {
                    let text = collapse_ws(&text);
                    let indent = depth(stack.len());
                    match (text.is_empty(), shown) {
                        (false, true) => blocks.push(Block::Para { text, indent: indent + 1 }),
                        (false, false) => blocks.push(Block::Para { text: format!("{name}: {text}"), indent }),
                        (true, false) => blocks.push(Block::Para { text: name, indent }),
                        (true, true) => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(blocks)
}

/// A child is starting: the parent's label (and any text before the child) is shown first.
fn label_parent(stack: &mut [(String, String, bool)], blocks: &mut Vec<Block>) {
    let indent = depth(stack.len().saturating_sub(1));
    if let Some((name, text, shown)) = stack.last_mut() {
        let before = collapse_ws(&std::mem::take(text));
        if !*shown {
            let label = if before.is_empty() { name.clone() } else { format!("{name}: {before}") };
            blocks.push(Block::Para { text: label, indent });
            *shown = true;
        } else if !before.is_empty() {
            blocks.push(Block::Para { text: before, indent: indent + 1 });
        }
    }
}

fn push_text(stack: &mut [(String, String, bool)], text: &str) {
    if let Some((_, buf, _)) = stack.last_mut() {
        buf.push_str(text);
    }
}

fn depth(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX).min(8)
}

/// `name (attr=value, …)`: attributes carry much of the meaning in coded XML.
fn describe(e: &BytesStart<'_>) -> String {
    let name = local(e.name().as_ref());
    let attrs: Vec<String> = e
        .attributes()
        .flatten()
        .filter(|a| !a.key.as_ref().starts_with(b"xmlns"))
        .map(|a| format!("{}={}", local(a.key.as_ref()), collapse_ws(&String::from_utf8_lossy(&a.value))))
        .collect();
    if attrs.is_empty() { name } else { format!("{name} ({})", attrs.join(", ")) }
}

pub(super) fn local(qname: &[u8]) -> String {
    let name = String::from_utf8_lossy(qname);
    name.rsplit(':').next().unwrap_or_default().to_owned()
}

/// A character or predefined entity reference; anything else (a DTD-defined entity) is kept as written,
/// which also means entity-expansion bombs expand to nothing.
pub(super) fn reference(r: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    let name = r.decode().unwrap_or_default();
    match &*name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        other => format!("&{other};"),
    }
}

/// Broken XML still holds text a reader needs: show it as plain text, saying why.
pub(super) fn malformed(xml: &str, why: &str, at: u64) -> Vec<Block> {
    let mut blocks =
        vec![Block::para(format!("(This XML document is malformed ({why}, near byte {at}); shown as plain text.)"))];
    blocks.extend(plain_blocks(xml));
    blocks
}

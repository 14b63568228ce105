//! A CDA / CCD clinical document reduced to text: title, date, then each section's title and its
//! narrative block (lists, tables, paragraphs mapped onto the HTML reducer).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::html::Reducer;
use super::xml::{local, malformed, reference};
use super::{Block, collapse_ws};

/// A CDA document: title, date, then each section's title and narrative text; coded entries and the
/// header (patient, author, custodian) are left out.
pub(crate) fn cda_blocks(xml: &str) -> Result<Vec<Block>, String> {
    let mut reader = Reader::from_str(xml);
    let mut blocks = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut sections = 0u8;
    let mut title: Option<String> = None;
    let mut narrative: Option<(Reducer, usize)> = None;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => return Ok(malformed(xml, &e.to_string(), reader.buffer_position())),
        };
        match event {
            Event::Start(e) => {
                let name = local(e.name().as_ref());
                if let Some((r, _)) = &mut narrative {
                    narrative_tag(r, &name, &e, false);
                } else if name == "section" {
                    sections = sections.saturating_add(1);
                } else if name == "title"
                    && matches!(path.last().map(String::as_str), Some("section" | "ClinicalDocument"))
                {
                    title = Some(String::new());
                } else if name == "text" && path.last().map(String::as_str) == Some("nonXMLBody") {
                    let attr = |k: &str| {
                        let v = e.try_get_attribute(k).ok().flatten();
                        v.map(|a| String::from_utf8_lossy(&a.value).into_owned())
                    };
                    if attr("representation").as_deref() == Some("B64") {
                        // An embedded file (often a PDF), not text: say so rather than print base64.
                        let media = attr("mediaType").unwrap_or_else(|| "binary".into());
                        blocks.push(Block::para(format!(
                            "(The body of this document is an embedded {media} file, not shown here.)"
                        )));
                    } else {
                        narrative = Some((Reducer::default(), path.len()));
                    }
                } else if name == "text" && path.last().map(String::as_str) == Some("section") {
                    narrative = Some((Reducer::default(), path.len()));
                }
                path.push(name);
            }
            Event::Empty(e) => {
                let name = local(e.name().as_ref());
                if let Some((r, _)) = &mut narrative {
                    narrative_tag(r, &name, &e, false);
                    narrative_tag(r, &name, &e, true);
                } else if name == "effectiveTime"
                    && path.last().map(String::as_str) == Some("ClinicalDocument")
                    && let Some(v) = e.try_get_attribute("value").ok().flatten()
                {
                    blocks.push(Block::para(format!("Date: {}", cda_date(&String::from_utf8_lossy(&v.value)))));
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if let Some((r, at)) = narrative.take() {
                    if path.len() > at {
                        let mut r = r;
                        r.tag(&html_name(&name, None), true);
                        narrative = Some((r, at));
                    } else {
                        blocks.extend(r.finish());
                    }
                } else if name == "title" {
                    if let Some(t) = title.take().map(|t| collapse_ws(&t)).filter(|t| !t.is_empty()) {
                        blocks.push(Block::Heading(t, sections.saturating_add(1).min(3)));
                    }
                } else if name == "section" {
                    sections = sections.saturating_sub(1);
                }
            }
            Event::Text(t) => text_to(&mut narrative, &mut title, &t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text_to(&mut narrative, &mut title, &String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => text_to(&mut narrative, &mut title, &reference(&r)),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(blocks)
}

fn text_to(narrative: &mut Option<(Reducer, usize)>, title: &mut Option<String>, text: &str) {
    if let Some((r, _)) = narrative {
        r.text(text);
    } else if let Some(t) = title {
        t.push_str(text);
    }
}

/// CDA narrative elements mapped onto the HTML ones the reducer knows.
fn narrative_tag(r: &mut Reducer, name: &str, e: &BytesStart<'_>, closing: bool) {
    let ordered = e.try_get_attribute("listType").ok().flatten().is_some_and(|a| a.value.as_ref() == b"ordered");
    r.tag(&html_name(name, Some(ordered)), closing);
}

fn html_name(name: &str, ordered: Option<bool>) -> String {
    match name {
        "paragraph" | "footnote" => "p",
        "item" => "li",
        "list" if ordered == Some(true) => "ol",
        "list" => "ul",
        "table" | "thead" | "tbody" | "tfoot" | "tr" | "td" | "th" | "br" | "caption" => name,
        _ => "span",
    }
    .to_owned()
}

/// `20240115103000+0100` → `2024-01-15 10:30`.
fn cda_date(v: &str) -> String {
    let d: String = v.chars().take_while(char::is_ascii_digit).collect();
    match d.len() {
        8.. if d.len() >= 12 => format!("{}-{}-{} {}:{}", &d[..4], &d[4..6], &d[6..8], &d[8..10], &d[10..12]),
        8.. => format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]),
        _ => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cda_with_an_embedded_base64_body_says_so_instead_of_printing_it() {
        let xml = r#"<ClinicalDocument xmlns="urn:hl7-org:v3"><title>Scan</title><component><nonXMLBody>
            <text mediaType="application/pdf" representation="B64">JVBERi0xLjQK</text></nonXMLBody></component></ClinicalDocument>"#;
        let blocks = cda_blocks(xml).expect("parses");
        assert_eq!(blocks[0], Block::Heading("Scan".into(), 1));
        assert!(matches!(&blocks[1], Block::Para { text, .. } if text.contains("embedded application/pdf")));
        assert!(!format!("{blocks:?}").contains("JVBER"));
    }
}

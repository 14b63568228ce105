//! A small, valid PDF written by hand: text pages in a standard font, exact xref offsets.

use std::fmt::Write as _;

use rand::Rng;

use super::words;
use crate::util::rng;

/// A valid PDF of `pages` text pages (at least 1), the same for the same seed.
///
/// Uses the standard Helvetica fonts, which need no embedding, so text is
/// limited to Latin-1; passes `qpdf --check`.
pub fn pdf(pages: u32, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let pages = pages.max(1) as usize;
    let title = words::one(&mut r, words::TITLES);
    let (w, h) = if r.random_bool(0.7) { (595, 842) } else { (612, 792) };
    let byline = format!("{} - {}", words::person(&mut r), words::date(&mut r));
    let mut objects: Vec<Vec<u8>> = Vec::new();
    // 1 catalog, 2 page tree, 3 and 4 fonts, then a page and its content per page, then info.
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")).into_bytes());
    for base in ["Helvetica", "Helvetica-Bold"] {
        let font = format!("<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>");
        objects.push(font.into_bytes());
    }
    for i in 0..pages {
        let content = page_content(&mut r, i, pages, title, &byline, h);
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                6 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    let info = format!("<< /Title {} /Producer (docket-stubs) >>", pdf_string(title));
    objects.push(info.into_bytes());
    assemble(&objects)
}

/// Writes the objects with a header, a cross-reference table and a trailer.
fn assemble(objects: &[Vec<u8>]) -> Vec<u8> {
    // The binary comment marks the file as binary for transfer tools.
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref_at = out.len();
    let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        // Each entry is exactly 20 bytes, end of line included.
        let _ = writeln!(xref, "{off:010} 00000 n ");
    }
    let _ = write!(
        xref,
        "trailer\n<< /Size {} /Root 1 0 R /Info {} 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
        objects.len() + 1,
        objects.len()
    );
    out.extend_from_slice(xref.as_bytes());
    out
}

fn page_content(r: &mut impl Rng, i: usize, pages: usize, title: &str, byline: &str, h: u32) -> Vec<u8> {
    let top = h - 72;
    let mut s = String::new();
    let _ = writeln!(s, "BT /F2 16 Tf 72 {top} Td {} Tj ET", pdf_string(title));
    let _ = writeln!(s, "BT /F1 10 Tf 72 {} Td {} Tj ET", top - 18, pdf_string(byline));
    let _ = writeln!(s, "0.5 w 72 {y} m 523 {y} l S", y = top - 26);
    let _ = writeln!(s, "BT /F1 11 Tf 14 TL 72 {} Td", top - 48);
    let mut lines = 0;
    let budget = ((h - 200) / 14) as usize;
    while lines + 6 < budget {
        let heading = words::one(r, words::SECTIONS);
        let _ = writeln!(s, "/F2 11 Tf {} Tj T* /F1 11 Tf", pdf_string(heading));
        let n = r.random_range(2..6);
        let mut text = words::paragraph(r, n);
        if r.random_bool(0.3) {
            text.push(' ');
            text.push_str(words::one(r, words::LATIN1));
        }
        for line in wrap(&text, 88) {
            let _ = writeln!(s, "{} Tj T*", pdf_string(&line));
            lines += 1;
        }
        s.push_str("T*\n");
        lines += 2;
    }
    s.push_str("ET\n");
    let _ = write!(s, "BT /F1 9 Tf 270 40 Td {} Tj ET", pdf_string(&format!("Page {} of {pages}", i + 1)));
    s.into_bytes()
}

/// Greedy word wrap at `width` characters.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().expect("starts with one line");
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}

/// A PDF literal string in WinAnsi: escapes delimiters, Latin-1 as octal, the rest as '?'.
fn pdf_string(s: &str) -> String {
    let mut out = String::from("(");
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            '\u{2013}' => out.push_str("\\226"),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_xref_offset_points_at_its_object() {
        let doc = pdf(3, 42);
        let text = String::from_utf8_lossy(&doc);
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .expect("startxref offset");
        assert!(doc[start..].starts_with(b"xref"));
        let table = String::from_utf8_lossy(&doc[start..]);
        for (n, entry) in table.lines().skip(3).map(str::trim_end).take_while(|l| l.ends_with(" n")).enumerate() {
            let off: usize = entry[..10].parse().expect("10-digit offset");
            let header = format!("{} 0 obj", n + 1);
            assert!(doc[off..].starts_with(header.as_bytes()), "object {}", n + 1);
        }
        assert_eq!(pdf(3, 42), doc, "the same seed gives the same file");
    }

    #[test]
    fn strings_escape_delimiters_and_map_latin1() {
        assert_eq!(pdf_string("a(b)\\ ü"), "(a\\(b\\)\\\\ \\374)");
        assert_eq!(pdf_string("Ω"), "(?)");
    }
}

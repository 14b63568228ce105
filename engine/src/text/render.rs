//! Draws laid-out lines with krilla, under a small header naming the document and the page.

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{Point, Size};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule};
use krilla::text::TextDirection;

use super::decode::prefix;
use super::fonts::{FontSet, Style};
use super::layout::{MARGIN_X, PAGE_H, PAGE_W, PageLines};

const HEADER_SIZE: f32 = 8.0;
const HEADER_BASELINE: f32 = 38.0;

/// Renders `pages` to PDF bytes. Errors are krilla's (a font it cannot embed, say): not the document's fault.
pub(crate) fn render(pages: &[PageLines], fonts: &mut FontSet, name: &str) -> Result<Vec<u8>, String> {
    let mut doc = Document::new();
    let size = Size::from_wh(PAGE_W, PAGE_H).ok_or("bad page size")?;
    let label = header_label(name);
    for (i, lines) in pages.iter().enumerate() {
        let mut page = doc.start_page_with(PageSettings::new(size));
        let mut surface = page.surface();
        surface.set_fill(Some(fill(110)));
        let left = fit(fonts, &label, PAGE_W - 2.0 * MARGIN_X - 90.0);
        draw(&mut surface, fonts, MARGIN_X, HEADER_BASELINE, HEADER_SIZE, &left);
        let number = format!("page {} of {}", i + 1, pages.len());
        let width: f32 = number.chars().map(|c| fonts.pick(Style::Sans, c).1 * HEADER_SIZE).sum();
        draw(&mut surface, fonts, PAGE_W - MARGIN_X - width, HEADER_BASELINE, HEADER_SIZE, &number);
        surface.set_fill(Some(fill(0)));
        for line in lines {
            let mut x = line.x;
            for run in &line.runs {
                let font = fonts.pdf_font(run.face);
                surface.draw_text(
                    Point::from_xy(x, line.baseline),
                    font,
                    line.size,
                    &run.text,
                    false,
                    TextDirection::Auto,
                );
                x += run.width;
            }
        }
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| format!("{e:?}"))
}

fn fill(gray: u8) -> Fill {
    Fill { paint: rgb::Color::new(gray, gray, gray).into(), opacity: NormalizedF32::ONE, rule: FillRule::NonZero }
}

/// The name as shown in the header: one line, control characters dropped.
fn header_label(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    prefix(clean.trim(), 1024).to_owned()
}

/// Shortens `text` from the left with an ellipsis until it fits `max` points: the end of a path
/// (the file name) is the part worth keeping.
fn fit(fonts: &mut FontSet, text: &str, max: f32) -> String {
    let widths: Vec<f32> = text.chars().map(|c| fonts.pick(Style::Sans, c).1 * HEADER_SIZE).collect();
    let total: f32 = widths.iter().sum();
    if total <= max {
        return text.to_owned();
    }
    let budget = max - fonts.pick(Style::Sans, '…').1 * HEADER_SIZE;
    let (mut kept, mut width) = (0, 0.0);
    for w in widths.iter().rev() {
        if width + w > budget {
            break;
        }
        width += w;
        kept += 1;
    }
    let tail: String = text.chars().skip(widths.len() - kept).collect();
    format!("…{tail}")
}

/// Draws one line of header text, switching faces where a character needs another.
fn draw(surface: &mut krilla::surface::Surface<'_>, fonts: &mut FontSet, x: f32, y: f32, size: f32, text: &str) {
    let mut x = x;
    let mut run = String::new();
    let mut run_face = None;
    let mut run_width = 0.0;
    for c in text.chars() {
        let (face, em) = fonts.pick(Style::Sans, c);
        if run_face.is_some_and(|f| f != face) {
            let font = fonts.pdf_font(run_face.unwrap_or(0));
            surface.draw_text(Point::from_xy(x, y), font, size, &run, false, TextDirection::Auto);
            x += run_width;
            run.clear();
            run_width = 0.0;
        }
        run_face = Some(face);
        run.push(c);
        run_width += em * size;
    }
    if let Some(face) = run_face {
        surface.draw_text(Point::from_xy(x, y), fonts.pdf_font(face), size, &run, false, TextDirection::Auto);
    }
}

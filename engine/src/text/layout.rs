//! Line breaking and pagination: blocks become lines of font-homogeneous runs, placed on A4 pages.

use super::fonts::{FontSet, Style};
use super::{Block, MAX_PAGES};

pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
pub(crate) const MARGIN_X: f32 = 56.0;
/// Body text starts below the header line.
const TOP: f32 = 66.0;
const BOTTOM: f32 = 56.0;
const INDENT_STEP: f32 = 16.0;

/// A run of characters drawn with one face.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub face: usize,
    pub text: String,
    pub width: f32,
}

/// One typeset line: where its baseline sits on its page and what it draws.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub x: f32,
    pub baseline: f32,
    pub size: f32,
    pub runs: Vec<Run>,
}

/// A page of lines, in drawing order.
pub(crate) type PageLines = Vec<Line>;

struct Flow<'f> {
    fonts: &'f mut FontSet,
    pages: Vec<PageLines>,
    /// Top of the next line on the current page.
    y: f32,
}

/// Lays `blocks` out; `Err(MAX_PAGES)` when the document would pass the page limit.
pub(crate) fn paginate(blocks: &[Block], fonts: &mut FontSet) -> Result<Vec<PageLines>, usize> {
    let mut flow = Flow { fonts, pages: vec![Vec::new()], y: TOP };
    for block in blocks {
        match block {
            Block::Heading(text, level) => {
                let size = match level {
                    1 => 15.0,
                    2 => 12.5,
                    _ => 11.0,
                };
                let gap = if flow.y > TOP { size * 0.8 } else { 0.0 };
                flow.paragraph(text, Style::Bold, size, 0.0, gap, 1.3)?;
                flow.y += 3.0;
            }
            Block::Para { text, indent } => {
                let x = f32::from((*indent).min(8)) * INDENT_STEP;
                flow.paragraph(text, Style::Sans, 10.0, x, 0.0, 1.35)?;
                flow.y += 4.0;
            }
            Block::Pre(text) => flow.paragraph(text, Style::Mono, 9.0, 0.0, 0.0, 1.3)?,
            Block::PageBreak => flow.new_page()?,
        }
    }
    // A document with no text still becomes one page, saying so, rather than failing.
    if flow.pages.iter().all(|p| p.is_empty()) {
        flow.pages.truncate(1);
        flow.paragraph("(This document contains no text.)", Style::Sans, 10.0, 0.0, 0.0, 1.35)?;
    }
    while flow.pages.len() > 1 && flow.pages.last().is_some_and(|p| p.is_empty()) {
        flow.pages.pop();
    }
    Ok(flow.pages)
}

impl Flow<'_> {
    fn new_page(&mut self) -> Result<(), usize> {
        if self.pages.len() >= MAX_PAGES {
            return Err(MAX_PAGES);
        }
        self.pages.push(Vec::new());
        self.y = TOP;
        Ok(())
    }

    fn paragraph(&mut self, text: &str, style: Style, size: f32, x: f32, gap: f32, leading: f32) -> Result<(), usize> {
        let max = PAGE_W - 2.0 * MARGIN_X - x;
        let glyphs: Vec<(char, usize, f32)> = text
            .chars()
            .map(|c| {
                let (face, em) = self.fonts.pick(style, c);
                (c, face, em * size)
            })
            .collect();
        self.y += gap;
        let height = size * leading;
        for range in break_lines(&glyphs, max) {
            if self.y + height > PAGE_H - BOTTOM {
                self.new_page()?;
            }
            let runs = runs(&glyphs[range]);
            let baseline = self.y + size;
            self.y += height;
            if !runs.is_empty() {
                let line = Line { x: MARGIN_X + x, baseline, size, runs };
                self.pages.last_mut().expect("flow always has a page").push(line);
            }
        }
        Ok(())
    }
}

/// Greedy line breaking: break after a space or an ideograph, or mid-word when a word alone is too wide.
/// An empty paragraph still yields one (empty) line, so blank lines of plain text keep their height.
fn break_lines(glyphs: &[(char, usize, f32)], max: f32) -> Vec<std::ops::Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    let n = glyphs.len();
    if n == 0 {
        lines.push(0..0);
    }
    while start < n {
        let (mut end, mut width, mut brk) = (start, 0.0, None);
        while end < n {
            let (c, _, w) = glyphs[end];
            if width + w > max && end > start {
                break;
            }
            width += w;
            end += 1;
            if c == ' ' || is_ideograph(c) {
                brk = Some(end);
            }
        }
        if end < n {
            end = brk.unwrap_or(end);
        }
        lines.push(start..end);
        start = end;
        // A wrapped continuation does not start with the space it broke at.
        while start < n && glyphs[start].0 == ' ' {
            start += 1;
        }
    }
    lines
}

fn is_ideograph(c: char) -> bool {
    matches!(c, '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}')
}

/// Splits a line into runs of one face each, dropping trailing spaces.
fn runs(glyphs: &[(char, usize, f32)]) -> Vec<Run> {
    let end = glyphs.iter().rposition(|g| g.0 != ' ').map_or(0, |i| i + 1);
    let mut runs: Vec<Run> = Vec::new();
    for &(c, face, w) in &glyphs[..end] {
        match runs.last_mut() {
            Some(run) if run.face == face => {
                run.text.push(c);
                run.width += w;
            }
            _ => runs.push(Run { face, text: c.to_string(), width: w }),
        }
    }
    runs
}

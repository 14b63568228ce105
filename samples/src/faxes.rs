//! Multi-page bilevel TIFF "fax scans": pages drawn as runs, encoded CCITT G4 or PackBits.

use std::sync::OnceLock;

use fax::{Color, VecWriter, encoder::Encoder};
use rand::Rng;

use super::tiffwrite::{Page, packbits_row, write_tiff};
use crate::util::{mix, rng};

/// Letter at 200 dpi, the size of a fine-resolution fax page.
const WIDTH: u32 = 1700;
const HEIGHT: u32 = 2200;

/// How a TIFF's pages are stored: the common fax forms and one trap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    /// CCITT G4 at 200×200 dpi.
    G4Fine,
    /// CCITT G4 at 200×100 dpi: half the rows, so a converter must honour the
    /// resolution tags or the page comes out squashed.
    G4Normal,
    /// PackBits at 200×200 dpi.
    PackBits,
}

/// Distinct drawn pages per style; files mix them, so drawing stays a one-off cost.
const VARIANTS: usize = 3;

/// A multi-page bilevel TIFF of `pages` pages (1 or more), the same for the same seed.
///
/// Pages are drawn once per process and reused, because encoding a
/// 1700×2200 page costs a noticeable fraction of a second in a debug build.
pub fn tiff(pages: u32, seed: u64) -> Vec<u8> {
    let h = mix(seed);
    let style = match h % 100 {
        0..70 => Style::G4Fine,
        70..85 => Style::G4Normal,
        _ => Style::PackBits,
    };
    let chosen: Vec<&Page> = (0..pages.max(1) as u64)
        .map(|i| cached_page(style, ((h >> 8).wrapping_add(i) % VARIANTS as u64) as usize))
        .collect();
    write_tiff(&chosen)
}

fn cached_page(style: Style, variant: usize) -> &'static Page {
    static CACHE: [[OnceLock<Page>; VARIANTS]; 3] = [const { [const { OnceLock::new() }; VARIANTS] }; 3];
    let row = match style {
        Style::G4Fine => 0,
        Style::G4Normal => 1,
        Style::PackBits => 2,
    };
    CACHE[row][variant].get_or_init(|| render(style, variant as u64))
}

fn render(style: Style, variant: u64) -> Page {
    let ydiv = if style == Style::G4Normal { 2 } else { 1 };
    let rows = draw(variant, ydiv);
    let height = HEIGHT / ydiv;
    let (compression, data) = match style {
        Style::PackBits => (32773, packbits(&rows)),
        _ => (4, g4(&rows)),
    };
    Page { width: WIDTH, height, yres: 200 / ydiv, compression, data }
}

/// Black runs `[start, end)` per row.
type Rows = Vec<Vec<(u32, u32)>>;

/// A page being drawn: black runs per row, y scaled down for normal resolution.
struct Canvas {
    rows: Rows,
    ydiv: u32,
}

impl Canvas {
    fn rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32) {
        let (a, b) = (y0 / self.ydiv, (y1 / self.ydiv).max(y0 / self.ydiv + 1));
        for row in self.rows.iter_mut().take(b as usize).skip(a as usize) {
            row.push((x0.min(WIDTH), x1.min(WIDTH)));
        }
    }

    /// `glyphs` made-up 5×7 letters at `scale`: reads as text from a distance.
    fn text(&mut self, r: &mut impl Rng, x: u32, y: u32, glyphs: u32, scale: u32) {
        for g in 0..glyphs {
            let bits = mix(r.random::<u64>());
            for gy in 0..7u32 {
                let row_bits = (bits >> (gy * 5)) & 0x1f;
                let mut gx = 0;
                while gx < 5 {
                    if row_bits >> gx & 1 == 1 {
                        let start = gx;
                        while gx < 5 && row_bits >> gx & 1 == 1 {
                            gx += 1;
                        }
                        let x0 = x + g * 6 * scale + start * scale;
                        self.rect(x0, y + gy * scale, x0 + (gx - start) * scale, y + (gy + 1) * scale);
                    }
                    gx += 1;
                }
            }
        }
    }
}

/// Draws a letter-like page: header line, letterhead, text lines, a box, a signature, specks.
fn draw(variant: u64, ydiv: u32) -> Rows {
    let mut c = Canvas { rows: vec![Vec::new(); (HEIGHT / ydiv) as usize], ydiv };
    let mut r = rng(0xfa_c5 ^ variant);
    c.text(&mut r, 40, 20, 60, 2); // the sending machine's header line
    c.rect(150, 110, 420, 190); // letterhead logo
    c.text(&mut r, 460, 130, 18, 5);
    let mut y = 300;
    while y < 1750 {
        let mut x = 150;
        while x < 1450 {
            let n = r.random_range(2..10);
            c.text(&mut r, x, y, n, 3);
            x += n * 18 + 18;
        }
        y += if r.random_bool(0.12) { 80 } else { 38 };
    }
    for (x0, y0, x1, y1) in
        [(150, 1800, 1550, 1804), (150, 1950, 1550, 1954), (150, 1800, 154, 1954), (1546, 1800, 1550, 1954)]
    {
        c.rect(x0, y0, x1, y1); // a boxed table at the foot
    }
    c.text(&mut r, 180, 1860, 30, 3);
    for i in 0..300u32 {
        // A signature: a wavy stroke a few pixels thick.
        let yy = (2060.0 + (f64::from(i) / 14.0).sin() * 25.0) as u32;
        c.rect(1100 + i, yy, 1103 + i, yy + 4);
    }
    for _ in 0..400 {
        let (x, yy) = (r.random_range(0..WIDTH - 3), r.random_range(0..HEIGHT - 3));
        c.rect(x, yy, x + r.random_range(1..3), yy + r.random_range(1..3)); // scanner specks
    }
    for row in &mut c.rows {
        row.sort_unstable();
    }
    c.rows
}

/// Expands one row's runs to pixels.
fn pixels(runs: &[(u32, u32)]) -> Vec<bool> {
    let mut px = vec![false; WIDTH as usize];
    for &(a, b) in runs {
        px[a as usize..b as usize].fill(true);
    }
    px
}

fn g4(rows: &Rows) -> Vec<u8> {
    let mut enc = Encoder::new(VecWriter::new());
    for runs in rows {
        let px = pixels(runs);
        let colors = px.iter().map(|&b| if b { Color::Black } else { Color::White });
        let Ok(()) = enc.encode_line(colors, WIDTH);
    }
    let Ok(w) = enc.finish();
    w.finish()
}

/// PackBits, row by row as TIFF requires; a set bit is black (WhiteIsZero).
fn packbits(rows: &Rows) -> Vec<u8> {
    let mut out = Vec::new();
    for runs in rows {
        let bytes: Vec<u8> = pixels(runs)
            .chunks(8)
            .map(|c| c.iter().enumerate().fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << (7 - i))))
            .collect();
        packbits_row(&bytes, &mut out);
    }
    out
}

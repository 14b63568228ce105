//! Fonts for text pages: DejaVu (built in) for Latin, Greek, Cyrillic and more; Noto CJK when the host has it.
//!
//! krilla does no font fallback, so each character is given a face here: the style's DejaVu face
//! when it has the glyph, else the CJK face, else DejaVu anyway (a box, counted as missing).

use std::collections::HashMap;
use std::sync::OnceLock;

use krilla::Data;
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

/// Where Debian's fonts-noto-cjk puts its regular face; `CONVERT_CJK_FONT` names another file.
const CJK_PATHS: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Style {
    Sans = 0,
    Bold = 1,
    Mono = 2,
}

const CJK: usize = 3;

struct Face {
    font: FontRef<'static>,
    pdf: krilla::text::Font,
    upem: f32,
}

/// The faces of one document, with a per-character cache of (face, advance in em).
pub(crate) struct FontSet {
    faces: Vec<Option<Face>>,
    cache: HashMap<(Style, char), (usize, f32)>,
    /// Characters no face has: drawn as boxes; counted so the child can log how many (never which).
    pub missing: usize,
}

impl FontSet {
    pub fn new() -> FontSet {
        let builtin = [dejavu::sans::regular(), dejavu::sans::bold(), dejavu::sans_mono::regular()];
        let mut faces: Vec<Option<Face>> = builtin.iter().map(|d| face(d, 0)).collect();
        // Loaded on first need, so Latin documents never pay for reading 20 MB of CJK font.
        faces.push(None);
        FontSet { faces, cache: HashMap::new(), missing: 0 }
    }

    /// Which face draws `c` in `style`, and its advance in em.
    pub fn pick(&mut self, style: Style, c: char) -> (usize, f32) {
        if let Some(&hit) = self.cache.get(&(style, c)) {
            return hit;
        }
        let primary = style as usize;
        let hit = if c.is_control() || self.covers(primary, c) {
            (primary, self.advance(primary, c))
        } else if self.cjk_face().is_some() && self.covers(CJK, c) {
            (CJK, self.advance(CJK, c))
        } else {
            self.missing += 1;
            (primary, self.advance(primary, c))
        };
        self.cache.insert((style, c), hit);
        hit
    }

    pub fn pdf_font(&self, face: usize) -> krilla::text::Font {
        match &self.faces[face] {
            Some(f) => f.pdf.clone(),
            // `pick` only hands out faces that loaded; DejaVu Sans always does.
            None => self.faces[0].as_ref().map(|f| f.pdf.clone()).expect("built-in DejaVu Sans loads"),
        }
    }

    fn covers(&self, face: usize, c: char) -> bool {
        self.faces[face].as_ref().is_some_and(|f| f.font.charmap().map(c).is_some())
    }

    fn advance(&self, face: usize, c: char) -> f32 {
        let Some(f) = &self.faces[face] else {
            return 0.6;
        };
        let gid = f.font.charmap().map(c).unwrap_or_default();
        let width = f.font.glyph_metrics(Size::unscaled(), LocationRef::default()).advance_width(gid);
        width.map_or(0.6, |w| w / f.upem)
    }

    fn cjk_face(&mut self) -> Option<&Face> {
        if self.faces[CJK].is_none() {
            self.faces[CJK] = cjk_bytes().and_then(|b| face(b, 0));
        }
        self.faces[CJK].as_ref()
    }
}

fn face(data: &'static [u8], index: u32) -> Option<Face> {
    let font = FontRef::from_index(data, index).ok()?;
    let upem = f32::from(font.metrics(Size::unscaled(), LocationRef::default()).units_per_em);
    let pdf = krilla::text::Font::new(Data::from(data), index)?;
    Some(Face { font, pdf, upem })
}

/// The CJK font file's bytes, read once per process and kept for its life (the child is short-lived;
/// the long-lived service converts only in children).
fn cjk_bytes() -> Option<&'static [u8]> {
    static CJK_FONT: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *CJK_FONT.get_or_init(|| {
        let configured = std::env::var("CONVERT_CJK_FONT").ok();
        let paths = configured.iter().map(String::as_str).chain(CJK_PATHS.iter().copied());
        paths.filter_map(|p| std::fs::read(p).ok()).map(|b| &*Box::leak(b.into_boxed_slice())).next()
    })
}

/// Whether a CJK font is installed on this host, for the tests' expectations.
pub fn cjk_available() -> bool {
    cjk_bytes().is_some()
}

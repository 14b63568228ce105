//! docket-samples: the one generator of sample documents, for the stubs' archives, the conversion
//! engine's tests and the benchmarks. Nothing here is read from disk or the network, and nothing
//! here is compiled into a production binary.
//!
//! Every generator is deterministic: the same arguments give the same bytes.
//! Map of the crate:
//! - the functions at the top ([`pdf`], [`tiff`], [`text`], [`html`], [`cda`], [`rtf`], [`docx`],
//!   [`jpeg`], [`png`], …) write realistic documents varied by a seed, as archives hold them;
//!   images cost more, so archives draw them from a small per-process cache ([`cached`]).
//! - [`fixtures`]: fixed documents for one case each (every TIFF compression, a forged PNG header,
//!   a damaged PDF, Latin-1 and UTF-16 text, …), the engine's edge cases.

pub mod cpu;
mod faxes;
pub mod fixtures;
mod markup;
mod office;
mod pdf;
mod photo;
mod tiffwrite;
mod util;
pub(crate) mod words;

use std::sync::OnceLock;

use rand::RngCore;

pub use faxes::tiff;
pub use markup::{cda, html, text};
pub use office::{docx, docx_of, rtf, zip_of};
pub use pdf::pdf;
pub use photo::{huge_png, jpeg, jpeg_cmyk, jpeg_with_orientation, png};

/// `len` random bytes: the odd file of no known format.
pub fn junk(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    crate::util::rng(seed).fill_bytes(&mut buf);
    buf
}

/// Drops the last part of a file, as a broken upload would.
pub fn truncated(mut bytes: Vec<u8>, keep_percent: usize) -> Vec<u8> {
    bytes.truncate(bytes.len() * keep_percent.min(100) / 100);
    bytes
}

/// Image samples built once per process and shared by every archive.
///
/// Encoding images in a debug build takes tens of milliseconds each; a
/// 3000-entry archive must still be ready in seconds, so archives reuse a few
/// variants (real archives repeat themselves too).
pub mod cached {
    use super::*;

    /// How many variants of each image type exist.
    pub const VARIANTS: usize = 4;

    /// Variant `i` (mod [`VARIANTS`]) of an upright RGB JPEG photo.
    pub fn jpeg(i: usize) -> &'static [u8] {
        static C: [OnceLock<Vec<u8>>; VARIANTS] = [const { OnceLock::new() }; VARIANTS];
        let i = i % VARIANTS;
        C[i].get_or_init(|| match i {
            3 => super::jpeg_cmyk(480, 360, 3),
            _ => super::jpeg(320 + 160 * i as u32, 240 + 120 * i as u32, i as u64),
        })
    }

    /// Variant `i` of a JPEG that needs its EXIF orientation (6, 3, 8, 6) applied.
    pub fn jpeg_oriented(i: usize) -> &'static [u8] {
        static C: [OnceLock<Vec<u8>>; VARIANTS] = [const { OnceLock::new() }; VARIANTS];
        let i = i % VARIANTS;
        C[i].get_or_init(|| super::jpeg_with_orientation(640, 480, [6, 3, 8, 6][i], 100 + i as u64))
    }

    /// The one huge PNG scan (see [`super::huge_png`]), made once per process.
    pub fn huge_png() -> &'static [u8] {
        static C: OnceLock<Vec<u8>> = OnceLock::new();
        C.get_or_init(super::huge_png)
    }

    /// Variant `i` of a PNG (RGB, RGBA or 16-bit grey).
    pub fn png(i: usize) -> &'static [u8] {
        static C: [OnceLock<Vec<u8>>; VARIANTS] = [const { OnceLock::new() }; VARIANTS];
        let i = i % VARIANTS;
        C[i].get_or_init(|| super::png(400 + 100 * i as u32, 300, i as u64))
    }
}

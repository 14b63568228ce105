//! TIFF pages that are not copied: decoded by the `tiff` crate (palette pages by [`super::raw`])
//! into samples a PDF image can hold.

use std::io::Cursor;

use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

use crate::pdfimage::{self, Colors, Encoding, PageImage};
use crate::{ConvertError, DocKind};

/// Decodes any other page with the `tiff` crate into samples PDF can take.
pub(super) fn decode_page(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    page: &mut PageImage,
    n: usize,
) -> Result<(), ConvertError> {
    let fail = |why: String| ConvertError::doc(DocKind::Tiff, format!("page {n} of the TIFF cannot be read: {why}"));
    let photometric = dec.find_tag_unsigned::<u32>(Tag::PhotometricInterpretation).ok().flatten();
    if photometric == Some(3) {
        return palette_page(dec, bytes, page).map_err(fail);
    }
    let color = dec.colortype().map_err(|e| fail(e.to_string()))?;
    let samples = match dec.read_image().map_err(|e| fail(e.to_string()))? {
        DecodingResult::U8(v) => v,
        // PDF takes 16-bit samples, but 8 bits are plenty for a scanned page and halve the size.
        DecodingResult::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
        _ => {
            return Err(fail("its sample format (floating point or 32-bit) is not supported".into()));
        }
    };
    let eight = |c| matches!(c, 8 | 16);
    let (colors, bits, samples) = match color {
        ColorType::Gray(b @ (1 | 2 | 4 | 8)) => (Colors::Gray, b, samples),
        ColorType::Gray(16) => (Colors::Gray, 8, samples),
        ColorType::RGB(b) | ColorType::YCbCr(b) if eight(b) => (Colors::Rgb, 8, samples),
        ColorType::CMYK(b) if eight(b) => (Colors::Cmyk, 8, samples),
        // Alpha is dropped: a scanned page has nothing behind it.
        ColorType::GrayA(b) if eight(b) => (Colors::Gray, 8, drop_alpha(&samples, 2)),
        ColorType::RGBA(b) if eight(b) => (Colors::Rgb, 8, drop_alpha(&samples, 4)),
        ColorType::CMYKA(b) if eight(b) => (Colors::Cmyk, 8, drop_alpha(&samples, 5)),
        other => {
            return Err(fail(format!("its colour type ({other:?}) is not supported")));
        }
    };
    page.colors = colors;
    page.bits = bits;
    // The tiff crate already turned WhiteIsZero samples into BlackIsZero ones.
    page.invert = false;
    page.encoding = Encoding::Flate;
    page.data = pdfimage::deflate(&samples);
    Ok(())
}

fn drop_alpha(samples: &[u8], channels: usize) -> Vec<u8> {
    samples.chunks_exact(channels).flat_map(|px| px[..channels - 1].iter().copied()).collect()
}

/// A palette page, which the `tiff` crate does not decode: samples read as stored, colours from the map.
fn palette_page(dec: &mut Decoder<Cursor<&[u8]>>, bytes: &[u8], page: &mut PageImage) -> Result<(), String> {
    let bits = dec.find_tag_unsigned::<u8>(Tag::BitsPerSample).ok().flatten().unwrap_or(8);
    if !matches!(bits, 1 | 2 | 4 | 8) {
        return Err(format!("a {bits}-bit palette is not supported"));
    }
    let palette = color_map(dec, bits).ok_or("its colour palette is missing")?;
    let row_bytes = (page.width as usize * usize::from(bits)).div_ceil(8);
    let samples = super::raw::samples(dec, bytes, row_bytes, page.height)?;
    page.colors = Colors::Indexed(palette);
    page.bits = bits;
    page.encoding = Encoding::Flate;
    page.data = pdfimage::deflate(&samples[..row_bytes * page.height as usize]);
    Ok(())
}

/// TIFF colour maps hold all reds, then greens, then blues, as 16-bit values; PDF wants RGB triples.
fn color_map(dec: &mut Decoder<Cursor<&[u8]>>, bits: u8) -> Option<Vec<u8>> {
    let map = dec.find_tag_unsigned_vec::<u16>(Tag::ColorMap).ok().flatten()?;
    let n = 1usize << bits;
    (map.len() >= 3 * n)
        .then(|| (0..n).flat_map(|i| [map[i], map[n + i], map[2 * n + i]].map(|v| (v >> 8) as u8)).collect())
}

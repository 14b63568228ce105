//! TIFF to PDF, one PDF page per TIFF page: single-strip CCITT fax pages (G4, G3, RLE) are copied
//! without decoding; everything else is decoded with the `tiff` crate (G3 by the `fax` crate) and
//! stored losslessly.

use std::io::Cursor;

use tiff::decoder::ifd::Value;
use tiff::decoder::{ChunkType, Decoder, Limits};
use tiff::tags::Tag;

mod ccitt;
mod decode;
mod raw;

use ccitt::{decode_ccitt_strips, raw_strip, validate_ccitt};
use decode::decode_page;

use crate::imagemeta::check_pixels;
use crate::pdfimage::{self, Colors, Encoding, PageImage};
use crate::{ConvertError, DocKind};

/// Pages beyond this are refused: no real fax is this long, a crafted file can be.
const MAX_PAGES: usize = 5_000;
const T4_OPTIONS: Tag = Tag::Unknown(292);

pub(crate) fn convert(bytes: &[u8]) -> Result<(Vec<u8>, u32), ConvertError> {
    let corrupt = |page: usize, e: &dyn std::fmt::Display| {
        ConvertError::doc(DocKind::Tiff, format!("page {page} of the TIFF cannot be read: {e}"))
    };
    let mut limits = Limits::unlimited();
    // Tag arrays (strip offsets, colour maps) are small in real files; a huge one is an attack.
    limits.ifd_value_size = 64 << 20;
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(|e| corrupt(1, &e))?.with_limits(limits);
    let mut pages = Vec::new();
    let mut thumbnails = Vec::new();
    for n in 1.. {
        // Reduced-resolution copies (previews) repeat a page: keep them only if nothing else exists.
        let subfile = dec.find_tag_unsigned::<u32>(Tag::NewSubfileType).ok().flatten().unwrap_or(0);
        let page = read_page(&mut dec, bytes, n)?;
        if subfile & 1 == 1 {
            thumbnails.push(page)
        } else {
            pages.push(page)
        }
        if !dec.more_images() {
            break;
        }
        if n >= MAX_PAGES {
            return Err(ConvertError::doc(DocKind::Tiff, format!("the TIFF has more than {MAX_PAGES} pages")));
        }
        dec.next_image().map_err(|e| corrupt(n + 1, &e))?;
    }
    if pages.is_empty() {
        pages = thumbnails;
    }
    let count = pages.len() as u32;
    Ok((pdfimage::write(&pages), count))
}

fn read_page(dec: &mut Decoder<Cursor<&[u8]>>, bytes: &[u8], n: usize) -> Result<PageImage, ConvertError> {
    let corrupt = |e: &dyn std::fmt::Display| {
        ConvertError::doc(DocKind::Tiff, format!("page {n} of the TIFF cannot be read: {e}"))
    };
    let (width, height) = dec.dimensions().map_err(|e| corrupt(&e))?;
    check_pixels(DocKind::Tiff, width, height).map_err(|e| match e {
        ConvertError::Document { kind, reason } => {
            ConvertError::Document { kind, reason: format!("page {n}: {reason}") }
        }
        other => other,
    })?;
    let tag = |dec: &mut Decoder<Cursor<&[u8]>>, t: Tag| dec.find_tag_unsigned::<u32>(t).ok().flatten();
    let compression = tag(dec, Tag::Compression).unwrap_or(1);
    let photometric = tag(dec, Tag::PhotometricInterpretation).unwrap_or(0);
    let (page_w, page_h) = page_size(dec, width, height);
    let mut page = PageImage {
        width,
        height,
        bits: 1,
        colors: Colors::Gray,
        encoding: Encoding::Flate,
        invert: false,
        data: Vec::new(),
        page_w,
        page_h,
    };
    let single_strip = dec.get_chunk_type() == ChunkType::Strip && dec.strip_count().unwrap_or(0) == 1;
    if matches!(compression, 2..=4) {
        let t4 = tag(dec, T4_OPTIONS).unwrap_or(0);
        let two_d = compression == 3 && t4 & 1 == 1;
        // CCITT codes white and black runs; BlackIsZero files mean them the other way round.
        page.invert = photometric == 1;
        if single_strip {
            page.data = raw_strip(dec, bytes).map_err(|e| corrupt(&e))?;
            if tag(dec, Tag::FillOrder) == Some(2) {
                page.data.iter_mut().for_each(|b| *b = b.reverse_bits());
            }
            page.encoding = match compression {
                4 => Encoding::Ccitt { k: -1, byte_align: false, end_of_line: false },
                3 => Encoding::Ccitt { k: i32::from(two_d), byte_align: t4 & 4 == 4, end_of_line: false },
                _ => Encoding::Ccitt { k: 0, byte_align: true, end_of_line: false },
            };
            validate_ccitt(&page, compression, two_d).map_err(|e| corrupt(&e))?;
            return Ok(page);
        }
        let strips = dec.get_chunk_type() == ChunkType::Strip;
        if strips && (compression == 4 || (compression == 3 && !two_d)) {
            let rows = decode_ccitt_strips(dec, bytes, width, height, compression == 4).map_err(|e| corrupt(&e))?;
            page.data = pdfimage::deflate(&rows);
            return Ok(page);
        }
        if compression != 4 {
            return Err(ConvertError::doc(
                DocKind::Tiff,
                format!(
                    "page {n} uses a CCITT layout that is not supported (compression {compression}, several strips or tiles)"
                ),
            ));
        }
        // Tiled Group 4: the tiff crate's decoder assembles tiles.
    }
    decode_page(dec, bytes, &mut page, n)?;
    Ok(page)
}

/// The page's physical size from its resolution (fax pages are often 204×98 dpi: not square),
/// scaled down to fit A4 when it is larger or the resolution is missing or absurd.
fn page_size(dec: &mut Decoder<Cursor<&[u8]>>, width: u32, height: u32) -> (f32, f32) {
    let mut res = |t: Tag| match dec.find_tag(t).ok().flatten() {
        Some(Value::Rational(n, d)) if d > 0 => Some(f64::from(n) / f64::from(d)),
        Some(Value::Short(v)) => Some(f64::from(v)),
        Some(Value::Unsigned(v)) => Some(f64::from(v)),
        _ => None,
    };
    let (xres, yres) = (res(Tag::XResolution), res(Tag::YResolution));
    let unit = dec.find_tag_unsigned::<u32>(Tag::ResolutionUnit).ok().flatten().unwrap_or(2);
    let per_inch = if unit == 3 { 2.54 } else { 1.0 };
    let dpi = |r: Option<f64>| r.map(|r| r * per_inch).filter(|d| (50.0..=4800.0).contains(d) && unit != 1);
    let physical = match (dpi(xres), dpi(yres)) {
        (Some(x), Some(y)) => Some((width as f64 * 72.0 / x, height as f64 * 72.0 / y)),
        (Some(x), None) | (None, Some(x)) => Some((width as f64 * 72.0 / x, height as f64 * 72.0 / x)),
        (None, None) => None,
    };
    match physical.map(|(w, h)| (w as f32, h as f32)) {
        // Up to tabloid size the page keeps its real size (a Letter fax prints as Letter).
        Some((w, h)) if w.max(h) <= 1224.0 => (w, h),
        Some((w, h)) => (w * crate::image::fit_scale(w, h), h * crate::image::fit_scale(w, h)),
        None => {
            let (w, h) = (width as f32, height as f32);
            (w * crate::image::fit_scale(w, h), h * crate::image::fit_scale(w, h))
        }
    }
}

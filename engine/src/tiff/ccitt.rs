//! CCITT fax pages: the stored strip taken as is (after a decode check), or strips decoded by the
//! `fax` crate when a page has several.

use std::io::Cursor;

use tiff::decoder::Decoder;
use tiff::tags::Tag;

use crate::pdfimage::PageImage;

/// The page's single strip, exactly as stored.
pub(super) fn raw_strip(dec: &mut Decoder<Cursor<&[u8]>>, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let offset = dec.find_tag_unsigned_vec::<u64>(Tag::StripOffsets).ok().flatten().and_then(|v| v.first().copied());
    let count = dec.find_tag_unsigned_vec::<u64>(Tag::StripByteCounts).ok().flatten().and_then(|v| v.first().copied());
    let (Some(offset), Some(count)) = (offset, count) else {
        return Err("its image data location is missing".into());
    };
    let start = usize::try_from(offset).map_err(|_| "bad offset")?;
    let end = start.checked_add(usize::try_from(count).map_err(|_| "bad length")?).ok_or("bad length")?;
    bytes.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| "the file is truncated: its image data is missing".into())
}

/// Decodes fax data we are about to copy, so a corrupt page fails here instead of showing as noise.
pub(super) fn validate_ccitt(page: &PageImage, compression: u32, two_d: bool) -> Result<(), String> {
    let ok = match compression {
        4 => fax::decoder::decode_g4(page.data.iter().copied(), page.width, Some(page.height), |_| {}).is_some(),
        3 if !two_d => fax::decoder::decode_g3(page.data.iter().copied(), |_| {}).is_some(),
        // Two-dimensional G3 and RLE have no decoder here; viewers decode them.
        _ => true,
    };
    if ok { Ok(()) } else { Err("its fax image data is corrupt".into()) }
}

/// Group 4 or one-dimensional Group 3 strips decoded line by line into packed 1-bit rows (1 = white).
/// The `fax` crate does this far faster than the `tiff` crate's own Group 4 reader.
pub(super) fn decode_ccitt_strips(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    width: u32,
    height: u32,
    g4: bool,
) -> Result<Vec<u8>, String> {
    let offsets = dec.find_tag_unsigned_vec::<u64>(Tag::StripOffsets).ok().flatten().unwrap_or_default();
    let counts = dec.find_tag_unsigned_vec::<u64>(Tag::StripByteCounts).ok().flatten().unwrap_or_default();
    let reversed = dec.find_tag_unsigned::<u32>(Tag::FillOrder).ok().flatten() == Some(2);
    let rows_per_strip =
        dec.find_tag_unsigned::<u32>(Tag::RowsPerStrip).ok().flatten().unwrap_or(height).clamp(1, height);
    if offsets.is_empty() || offsets.len() != counts.len() {
        return Err("its image data location is missing".into());
    }
    let row_bytes = (width as usize).div_ceil(8);
    let mut out = Vec::with_capacity(row_bytes * height as usize);
    for (i, (&off, &len)) in offsets.iter().zip(&counts).enumerate() {
        let strip =
            usize::try_from(off).ok().zip(usize::try_from(len).ok()).and_then(|(o, l)| bytes.get(o..o.checked_add(l)?));
        let strip = strip.ok_or("the file is truncated: its image data is missing")?;
        let strip: Vec<u8> = if reversed { strip.iter().map(|b| b.reverse_bits()).collect() } else { strip.to_vec() };
        let rows = rows_per_strip.min(height.saturating_sub(i as u32 * rows_per_strip));
        let mut line = |transitions: &[u32]| {
            let mut row = vec![0u8; row_bytes];
            for (x, color) in fax::decoder::pels(transitions, width).enumerate() {
                if color == fax::Color::White {
                    row[x / 8] |= 0x80 >> (x % 8);
                }
            }
            out.extend_from_slice(&row);
        };
        let done = if g4 {
            fax::decoder::decode_g4(strip.into_iter(), width, Some(rows), &mut line)
        } else {
            fax::decoder::decode_g3(strip.into_iter(), &mut line)
        };
        done.ok_or("its fax image data is corrupt")?;
    }
    // Pad or cut to the declared height so the image dictionary stays truthful.
    out.resize(row_bytes * height as usize, 0xFF);
    Ok(out)
}

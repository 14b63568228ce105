//! Strip data the `tiff` crate refuses to decode (palette pages): read and decompressed here.

use std::io::{Cursor, Read};

use tiff::decoder::Decoder;
use tiff::tags::Tag;

/// The page's samples, packed rows as stored, for compression none, LZW, Deflate or PackBits
/// without a predictor.
pub(super) fn samples(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    row_bytes: usize,
    height: u32,
) -> Result<Vec<u8>, String> {
    let tag = |dec: &mut Decoder<Cursor<&[u8]>>, t| dec.find_tag_unsigned::<u32>(t).ok().flatten();
    let compression = tag(dec, Tag::Compression).unwrap_or(1);
    if tag(dec, Tag::Predictor).unwrap_or(1) != 1 {
        return Err("a palette page with a predictor is not supported".into());
    }
    let offsets = dec
        .find_tag_unsigned_vec::<u64>(Tag::StripOffsets)
        .ok()
        .flatten()
        .ok_or("its image data location is missing")?;
    let counts = dec
        .find_tag_unsigned_vec::<u64>(Tag::StripByteCounts)
        .ok()
        .flatten()
        .ok_or("its image data length is missing")?;
    let want = row_bytes * height as usize;
    let mut out = Vec::with_capacity(want);
    for (&off, &len) in offsets.iter().zip(&counts) {
        let start = usize::try_from(off).map_err(|_| "bad offset")?;
        let end = start.checked_add(usize::try_from(len).map_err(|_| "bad length")?).ok_or("bad length")?;
        let strip = bytes.get(start..end).ok_or("the file is truncated: its image data is missing")?;
        // Never inflate past the page's own size: a strip is not allowed to be a bomb.
        let room = (want - out.len().min(want)) as u64;
        match compression {
            1 => out.extend_from_slice(&strip[..strip.len().min(room as usize)]),
            5 => {
                let mut lzw = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                let decoded = lzw.decode(strip).map_err(|e| format!("its LZW data is corrupt ({e})"))?;
                out.extend_from_slice(&decoded[..decoded.len().min(room as usize)]);
            }
            8 | 32946 => {
                flate2::read::ZlibDecoder::new(strip)
                    .take(room)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("its Deflate data is corrupt ({e})"))?;
            }
            32773 => unpack_bits(strip, &mut out, room as usize),
            other => {
                return Err(format!("compression {other} on a palette page is not supported"));
            }
        }
    }
    if out.len() < want {
        return Err("its image data is shorter than the page".into());
    }
    Ok(out)
}

/// PackBits: a header byte n, then n+1 literal bytes (n ≥ 0) or one byte repeated 1−n times (n < 0).
fn unpack_bits(mut src: &[u8], out: &mut Vec<u8>, room: usize) {
    let limit = out.len() + room;
    while let Some((&n, rest)) = src.split_first() {
        let n = n as i8;
        if n >= 0 {
            let take = (n as usize + 1).min(rest.len());
            out.extend_from_slice(&rest[..take]);
            src = &rest[take..];
        } else if n != -128 {
            let Some(&b) = rest.first() else { break };
            out.extend(std::iter::repeat_n(b, 1 + n.unsigned_abs() as usize));
            src = &rest[1..];
        } else {
            src = rest;
        }
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
}

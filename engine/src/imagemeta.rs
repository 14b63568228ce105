//! Image headers read before anything is decoded: dimensions (to refuse oversized images),
//! JPEG EXIF orientation, and whether a JPEG's data is complete.

use crate::{ConvertError, DocKind, MAX_PIXELS};

/// What the header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1–8 (1 = as stored).
    pub orientation: u8,
}

/// Reads the header of a JPEG, PNG or GIF and refuses empty or oversized images.
pub(crate) fn header(kind: DocKind, b: &[u8]) -> Result<Header, ConvertError> {
    let header = match kind {
        DocKind::Jpeg => jpeg(b),
        DocKind::Png if b.len() >= 24 && &b[12..16] == b"IHDR" => {
            Ok(Header { width: be32(&b[16..20]), height: be32(&b[20..24]), orientation: 1 })
        }
        DocKind::Gif if b.len() >= 10 => Ok(Header {
            width: u32::from(u16::from_le_bytes([b[6], b[7]])),
            height: u32::from(u16::from_le_bytes([b[8], b[9]])),
            orientation: 1,
        }),
        _ => Err("the image header is missing or truncated".to_owned()),
    }
    .map_err(|e| ConvertError::doc(kind, e))?;
    check_pixels(kind, header.width, header.height)?;
    Ok(header)
}

/// Refuses a page of more than [`MAX_PIXELS`] before decoding: a small file can declare a huge image.
pub(crate) fn check_pixels(kind: DocKind, width: u32, height: u32) -> Result<(), ConvertError> {
    if width == 0 || height == 0 {
        return Err(ConvertError::doc(kind, format!("the image declares an empty size ({width}×{height} pixels)")));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(ConvertError::doc(
            kind,
            format!(
                "the image is too large to convert: {width}×{height} pixels ({} megapixels; the limit is {})",
                pixels / 1_000_000,
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Walks the JPEG marker segments up to the scan: size from the frame header, orientation from EXIF;
/// then checks the scan is followed by an end-of-image marker (a truncated photo lacks it).
fn jpeg(b: &[u8]) -> Result<Header, String> {
    let mut pos = 2;
    let mut size = None;
    let mut orientation = 1;
    loop {
        // Markers may be padded with any number of 0xFF fill bytes.
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (b.get(pos), b.get(pos + 1)) else {
            return Err("the JPEG is corrupt: its header ends before the image data".into());
        };
        pos += 2;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue;
        }
        if marker == 0xD9 {
            return Err("the JPEG contains no image data".into());
        }
        let len =
            usize::from(u16::from_be_bytes([*b.get(pos).ok_or("truncated")?, *b.get(pos + 1).ok_or("truncated")?]));
        let seg = b.get(pos + 2..pos + len).ok_or("the JPEG is truncated inside its header")?;
        match marker {
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF if seg.len() >= 5 => {
                let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
                let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
                size = Some((width, height));
            }
            0xE1 if seg.starts_with(b"Exif\0\0") => orientation = exif_orientation(&seg[6..]).unwrap_or(1),
            0xDA => break,
            _ => {}
        }
        pos += len;
    }
    let (width, height) = size.ok_or("the JPEG has no frame header (image size)")?;
    // Cameras may append data after the end marker, so look for it anywhere after the scan starts.
    if !b[pos..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err("the JPEG is truncated: its image data has no end marker".into());
    }
    Ok(Header { width, height, orientation })
}

/// The Orientation tag (0x0112) of IFD0 in an EXIF block (a little TIFF file).
fn exif_orientation(t: &[u8]) -> Option<u8> {
    let le = match t.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |p: usize| {
        t.get(p..p + 2).map(|s| if le { u16::from_le_bytes([s[0], s[1]]) } else { u16::from_be_bytes([s[0], s[1]]) })
    };
    let u32_at = |p: usize| {
        t.get(p..p + 4).map(|s| {
            let a = [s[0], s[1], s[2], s[3]];
            if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count.min(256))
        .find_map(|i| {
            let entry = ifd + 2 + i * 12;
            (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8)).flatten()
        })
        .and_then(|v| u8::try_from(v).ok())
        .filter(|v| (1..=8).contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_orientation_is_read_in_both_byte_orders() {
        let mut le = b"II*\0\x08\0\0\0\x01\0".to_vec();
        le.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(exif_orientation(&le), Some(6));
        let mut be = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0]);
        assert_eq!(exif_orientation(&be), Some(8));
    }

    #[test]
    fn a_png_declaring_fifty_thousand_squared_is_refused_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(50_000u32.to_be_bytes());
        png.extend(50_000u32.to_be_bytes());
        let err = header(DocKind::Png, &png).expect_err("must refuse");
        assert!(err.to_string().contains("too large"), "{err}");
    }
}

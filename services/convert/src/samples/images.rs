//! Generated JPEG, PNG and GIF samples, including the broken and hostile ones.

use jpeg_encoder::{ColorType, Encoder};

/// A gradient so the encoders have something to compress.
fn pattern(w: u32, h: u32, channels: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(w as usize * h as usize * channels);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                px.push(((x * 255 / w.max(1)) as usize ^ (y * 255 / h.max(1)) as usize ^ (c * 60)) as u8);
            }
        }
    }
    px
}

/// An RGB JPEG, with an EXIF orientation tag when `orientation` is not 1.
pub fn jpeg(w: u16, h: u16, orientation: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 85);
    if orientation != 1 {
        // EXIF: "Exif\0\0", then a little-endian TIFF header and one IFD holding tag 0x0112.
        let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
        exif.extend(orientation.to_le_bytes());
        exif.extend([0, 0, 0, 0, 0, 0]);
        enc.add_app_segment(1, exif).expect("small segment");
    }
    enc.encode(&pattern(u32::from(w), u32::from(h), 3), w, h, ColorType::Rgb).expect("in-memory encode");
    out
}

/// A CMYK JPEG (Adobe-style), as print workflows produce.
pub fn cmyk_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = Encoder::new(&mut out, 85);
    enc.encode(&pattern(u32::from(w), u32::from(h), 4), w, h, ColorType::Cmyk).expect("in-memory encode");
    out
}

/// A JPEG cut off halfway, as an interrupted transfer leaves it.
pub fn truncated_jpeg() -> Vec<u8> {
    let mut j = jpeg(400, 300, 1);
    j.truncate(j.len() / 2);
    j
}

/// An RGBA PNG; `w`×`h` of a gradient, or of zeros when `blank` (compresses to almost nothing).
pub fn png(w: u32, h: u32, blank: bool) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().expect("in-memory encode");
        let row = w as usize * 4;
        let mut stream = writer.stream_writer().expect("in-memory encode");
        let blank_row = vec![0u8; row];
        let rows = if blank { None } else { Some(pattern(w, h, 4)) };
        for y in 0..h as usize {
            let data = rows.as_ref().map_or(&blank_row[..], |r| &r[y * row..(y + 1) * row]);
            std::io::Write::write_all(&mut stream, data).expect("in-memory encode");
        }
        stream.finish().expect("in-memory encode");
    }
    out
}

/// A 2 KB PNG that declares 50000×50000 pixels (10 GB decoded): must be refused, not decoded.
pub fn huge_png() -> Vec<u8> {
    let mut p = png(16, 16, true);
    // IHDR data starts at byte 16: width, height. The CRC no longer matches, as in a crafted file.
    p[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    p[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    p
}

/// The classic one-pixel GIF.
pub fn gif() -> Vec<u8> {
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec()
}

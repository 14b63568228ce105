//! Generated TIFF samples: fax pages (G4, multi-strip G4, G3) written by a small TIFF writer of our
//! own, since no encoder crate writes CCITT TIFFs; LZW, PackBits and palette pages through the `tiff` crate
//! or the same writer.

use std::io::Cursor;

use fax::{BitWriter, Bits, Color, VecWriter};
use tiff::encoder::{Compression, TiffEncoder, colortype};

/// A fax page is 1728 pixels wide (A4/Letter at 204 dpi).
const FAX_W: u32 = 1728;

/// Whether pixel (x, y) of fax page `page` is black: text-like bars, and `page` boxes to tell pages apart.
fn ink(page: usize, x: u32, y: u32) -> bool {
    let bars = y % 40 < 12 && (120..1600).contains(&x) && y > 200;
    let marks = y < 120 && y > 60 && (0..page).any(|k| (100 + k as u32 * 80..150 + k as u32 * 80).contains(&x));
    bars || marks
}

struct Page {
    width: u32,
    height: u32,
    bits: u16,
    compression: u16,
    photometric: u16,
    strips: Vec<Vec<u8>>,
    rows_per_strip: u32,
    /// dpi across and down.
    dpi: (u32, u32),
    extra: Vec<(u16, u16, Vec<u32>)>,
}

/// A bilevel Group 4 fax of `pages` pages, one strip per page (the common case).
pub fn g4_tiff(pages: usize, height: u32) -> Vec<u8> {
    write(&(1..=pages).map(|p| g4_page(p, height, height)).collect::<Vec<_>>())
}

/// Group 4 with several strips per page, which cannot be copied and must be decoded.
pub fn g4_tiff_multistrip(pages: usize, height: u32) -> Vec<u8> {
    write(&(1..=pages).map(|p| g4_page(p, height, height / 4 + 1)).collect::<Vec<_>>())
}

fn g4_page(page: usize, height: u32, rows_per_strip: u32) -> Page {
    let strips = (0..height)
        .step_by(rows_per_strip as usize)
        .map(|y0| {
            let mut enc = fax::encoder::Encoder::new(VecWriter::new());
            for y in y0..(y0 + rows_per_strip).min(height) {
                let pels = (0..FAX_W).map(|x| if ink(page, x, y) { Color::Black } else { Color::White });
                enc.encode_line(pels, FAX_W).expect("in-memory encode");
            }
            enc.finish().expect("in-memory encode").finish()
        })
        .collect();
    Page {
        width: FAX_W,
        height,
        bits: 1,
        compression: 4,
        photometric: 0,
        strips,
        rows_per_strip,
        dpi: (204, 196),
        extra: vec![],
    }
}

/// A one-dimensional Group 3 fax (T.4 with EOLs) of `pages` pages, at 204×98 dpi ("normal" mode).
pub fn g3_tiff(pages: usize, height: u32) -> Vec<u8> {
    let code = |w: &mut VecWriter, data: u16, len: u8| w.write(Bits { data, len }).expect("in-memory write");
    let pages: Vec<Page> = (0..pages)
        .map(|_| {
            let mut w = VecWriter::new();
            for y in 0..height {
                code(&mut w, 1, 12); // EOL
                if y % 8 < 3 {
                    // White 64, black 64, white 1600: makeup codes then a zero-length terminator each.
                    code(&mut w, 0b11011, 5);
                    code(&mut w, 0b00110101, 8);
                    code(&mut w, 0b0000001111, 10);
                    code(&mut w, 0b0000110111, 10);
                    code(&mut w, 0b010011010, 9);
                    code(&mut w, 0b00110101, 8);
                } else {
                    code(&mut w, 0b010011011, 9); // white 1728
                    code(&mut w, 0b00110101, 8);
                }
            }
            for _ in 0..6 {
                code(&mut w, 1, 12); // RTC: six EOLs end the page
            }
            let extra = vec![(292, 4, vec![0])];
            Page {
                width: FAX_W,
                height,
                bits: 1,
                compression: 3,
                photometric: 0,
                strips: vec![w.finish()],
                rows_per_strip: height,
                dpi: (204, 98),
                extra,
            }
        })
        .collect();
    write(&pages)
}

/// An 8-bit palette page (uncompressed) with a four-colour map.
pub fn palette_tiff() -> Vec<u8> {
    let (w, h) = (64u32, 48u32);
    let px: Vec<u8> = (0..w * h).map(|i| ((i % w) / 16) as u8).collect();
    let mut map = vec![0u32; 3 * 256];
    for (i, rgb) in [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]].iter().enumerate() {
        for c in 0..3 {
            map[c * 256 + i] = rgb[c] * 257;
        }
    }
    let page = Page {
        width: w,
        height: h,
        bits: 8,
        compression: 1,
        photometric: 3,
        strips: vec![px],
        rows_per_strip: h,
        dpi: (72, 72),
        extra: vec![(320, 3, map)],
    };
    write(&[page])
}

/// RGB pages compressed with LZW, through the `tiff` crate's encoder.
pub fn lzw_rgb_tiff(pages: usize, w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut out).expect("in-memory encode").with_compression(Compression::Lzw);
    for p in 0..pages {
        let px: Vec<u8> = (0..w * h * 3).map(|i| ((i / 3 % w) as usize * 255 / w as usize + p * 40) as u8).collect();
        enc.write_image::<colortype::RGB8>(w, h, &px).expect("in-memory encode");
    }
    out.into_inner()
}

/// Grayscale pages compressed with PackBits.
pub fn packbits_gray_tiff(pages: usize, w: u32, h: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut enc = TiffEncoder::new(&mut out).expect("in-memory encode").with_compression(Compression::Packbits);
    for _ in 0..pages {
        let px: Vec<u8> = (0..w * h).map(|i| if (i / w) % 20 < 4 { 0 } else { 230 }).collect();
        enc.write_image::<colortype::Gray8>(w, h, &px).expect("in-memory encode");
    }
    out.into_inner()
}

/// Writes little-endian TIFF pages: each page's strips, then its out-of-line values, then its IFD.
fn write(pages: &[Page]) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut link = 4; // where the offset of the next IFD goes
    for page in pages {
        let mut offsets = Vec::new();
        for strip in &page.strips {
            offsets.push(out.len() as u32);
            out.extend(strip);
        }
        let counts: Vec<u32> = page.strips.iter().map(|s| s.len() as u32).collect();
        let mut entries: Vec<(u16, u16, Vec<u32>)> = vec![
            (256, 4, vec![page.width]),
            (257, 4, vec![page.height]),
            (258, 3, vec![u32::from(page.bits)]),
            (259, 3, vec![u32::from(page.compression)]),
            (262, 3, vec![u32::from(page.photometric)]),
            (273, 4, offsets),
            (277, 3, vec![1]),
            (278, 4, vec![page.rows_per_strip]),
            (279, 4, counts),
            (282, 5, vec![page.dpi.0, 1]),
            (283, 5, vec![page.dpi.1, 1]),
            (296, 3, vec![2]),
        ];
        entries.extend(page.extra.iter().cloned());
        entries.sort_by_key(|e| e.0);
        // Values that do not fit in an entry's four bytes go before the IFD.
        let mut places = Vec::new();
        for (_, ty, values) in &entries {
            let size = if *ty == 3 { 2 } else { 4 };
            let count = if *ty == 5 { values.len() / 2 } else { values.len() };
            if count * size * if *ty == 5 { 2 } else { 1 } > 4 {
                places.push(Some(out.len() as u32));
                put_values(&mut out, *ty, values);
            } else {
                places.push(None);
            }
        }
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd = out.len() as u32;
        out[link..link + 4].copy_from_slice(&ifd.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        for ((tag, ty, values), place) in entries.iter().zip(&places) {
            out.extend(tag.to_le_bytes());
            out.extend(ty.to_le_bytes());
            let count = if *ty == 5 { values.len() / 2 } else { values.len() };
            out.extend((count as u32).to_le_bytes());
            let mut field = Vec::new();
            match place {
                Some(at) => field.extend(at.to_le_bytes()),
                None => put_values(&mut field, *ty, values),
            }
            field.resize(4, 0);
            out.extend(field);
        }
        link = out.len();
        out.extend([0, 0, 0, 0]);
    }
    out
}

fn put_values(out: &mut Vec<u8>, ty: u16, values: &[u32]) {
    for &v in values {
        if ty == 3 { out.extend((v as u16).to_le_bytes()) } else { out.extend(v.to_le_bytes()) }
    }
}

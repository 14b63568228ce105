//! Photo-like JPEG and PNG images: a sky, a ground, a few blobs, and a red band that marks "up".

use rand::Rng;

use crate::util::rng;

/// An RGB picture, 3 bytes per pixel, upright (the red band along the top edge).
fn picture(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let sky = [r.random_range(90..160u8), r.random_range(140..200u8), r.random_range(200..=255u8)];
    let ground = [r.random_range(40..110u8), r.random_range(90..150u8), r.random_range(20..70u8)];
    let horizon = h * r.random_range(45..75) / 100;
    let blobs: Vec<(f64, f64, f64, [u8; 3])> = (0..r.random_range(2..6))
        .map(|_| {
            let rad = (w.min(h) as f64) * r.random_range(0.05..0.2);
            let c = [r.random::<u8>(), r.random::<u8>(), r.random::<u8>()];
            (r.random_range(0.0..w as f64), r.random_range(0.0..h as f64), rad, c)
        })
        .collect();
    let mut px = vec![0u8; w * h * 3];
    for (y, row) in px.chunks_exact_mut(w * 3).enumerate() {
        let shade = (y * 60 / h.max(1)) as u8;
        let base = if y < horizon { sky.map(|c| c.saturating_sub(shade)) } else { ground };
        let base = if y < h / 8 { [210, 30, 30] } else { base };
        for p in row.chunks_exact_mut(3) {
            p.copy_from_slice(&base);
        }
        for &(cx, cy, rad, c) in &blobs {
            let dy = y as f64 - cy;
            if dy.abs() < rad {
                let half = (rad * rad - dy * dy).sqrt();
                let (x0, x1) = ((cx - half).max(0.0) as usize, ((cx + half) as usize).min(w));
                for p in row[x0 * 3..x1 * 3].chunks_exact_mut(3) {
                    p.copy_from_slice(&c);
                }
            }
        }
    }
    px
}

fn dims(width: u32, height: u32) -> (u16, u16) {
    (width.clamp(8, 4096) as u16, height.clamp(8, 4096) as u16)
}

fn encode_jpeg(data: &[u8], w: u16, h: u16, color: jpeg_encoder::ColorType, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    if let Some(e) = exif {
        enc.add_app_segment(1, e).expect("a small APP1 segment is valid");
    }
    enc.encode(data, w, h, color).expect("buffer length matches the dimensions");
    out
}

/// An upright RGB JPEG photo.
pub fn jpeg(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let (w, h) = dims(width, height);
    encode_jpeg(&picture(w.into(), h.into(), seed), w, h, jpeg_encoder::ColorType::Rgb, None)
}

/// A JPEG stored sideways with an EXIF orientation tag (3, 6 or 8) that turns
/// it upright: a viewer that ignores the tag shows the red band on a side.
/// `width`×`height` are the upright picture's dimensions.
pub fn jpeg_with_orientation(width: u32, height: u32, orientation: u16, seed: u64) -> Vec<u8> {
    let (w, h) = dims(width, height);
    let upright = picture(w.into(), h.into(), seed);
    let (stored, sw, sh) = match orientation {
        6 => (rotate(&upright, w.into(), h.into(), false), h, w), // stored turned 90° anticlockwise
        8 => (rotate(&upright, w.into(), h.into(), true), h, w),  // stored turned 90° clockwise
        3 => (upright.chunks_exact(3).rev().flatten().copied().collect(), w, h),
        _ => (upright, w, h),
    };
    encode_jpeg(&stored, sw, sh, jpeg_encoder::ColorType::Rgb, Some(exif_orientation(orientation)))
}

/// A CMYK JPEG (Adobe marker), which some converters mishandle.
pub fn jpeg_cmyk(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let (w, h) = dims(width, height);
    let cmyk: Vec<u8> = picture(w.into(), h.into(), seed)
        .chunks_exact(3)
        .flat_map(|p| {
            let k = 255 - p[0].max(p[1]).max(p[2]);
            [255 - p[0] - k, 255 - p[1] - k, 255 - p[2] - k, k]
        })
        .collect();
    encode_jpeg(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk, None)
}

/// Rotates an RGB image by 90°: clockwise when `cw`, else anticlockwise.
fn rotate(px: &[u8], w: usize, h: usize, cw: bool) -> Vec<u8> {
    let mut out = vec![0u8; px.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = if cw { (h - 1 - y, x) } else { (y, w - 1 - x) };
            let (src, dst) = ((y * w + x) * 3, (ny * h + nx) * 3);
            out[dst..dst + 3].copy_from_slice(&px[src..src + 3]);
        }
    }
    out
}

/// An EXIF APP1 payload holding only the Orientation tag.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut e = b"Exif\0\0II*\0".to_vec();
    e.extend_from_slice(&8u32.to_le_bytes()); // IFD0 right after the TIFF header
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation, SHORT, count 1
    e.extend_from_slice(&3u16.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&orientation.to_le_bytes());
    e.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, then no next IFD
    e
}

/// A PNG picture: RGB, RGBA (with a transparent border) or 16-bit grey, by seed.
pub fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let (w, h) = (width.clamp(8, 4096), height.clamp(8, 4096));
    let rgb = picture(w as usize, h as usize, seed);
    let (color, depth, data) = match seed % 3 {
        0 => (png::ColorType::Rgb, png::BitDepth::Eight, rgb),
        1 => {
            let border = (w.min(h) / 10) as usize;
            let rgba = rgb
                .chunks_exact(3)
                .enumerate()
                .flat_map(|(i, p)| {
                    let (x, y) = (i % w as usize, i / w as usize);
                    let edge = x < border || y < border || x + border >= w as usize || y + border >= h as usize;
                    [p[0], p[1], p[2], if edge { 0 } else { 255 }]
                })
                .collect();
            (png::ColorType::Rgba, png::BitDepth::Eight, rgba)
        }
        _ => {
            let grey = rgb
                .chunks_exact(3)
                .flat_map(|p| (u16::from(p[0]) * 77 + u16::from(p[1]) * 150 + u16::from(p[2]) * 29).to_be_bytes())
                .collect();
            (png::ColorType::Grayscale, png::BitDepth::Sixteen, grey)
        }
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    let mut writer = enc.write_header().expect("writing to memory cannot fail");
    writer.write_image_data(&data).expect("buffer length matches the dimensions");
    writer.finish().expect("writing to memory cannot fail");
    out
}

/// A 12000×9000 RGB scan of soft bands: a few MB as a PNG, about 324 MB once
/// decoded, so converting it needs far more memory than an ordinary page.
pub fn huge_png() -> Vec<u8> {
    let (w, h) = (12000u32, 9000u32);
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    // Writing into a Vec cannot fail; the dimensions are valid.
    let mut writer = enc.write_header().expect("a valid PNG header");
    let mut stream = writer.stream_writer().expect("a PNG stream");
    let mut row = vec![0u8; w as usize * 3];
    for y in 0..h {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let band = ((x as u32 / 300 + y / 250) % 7) as u8;
            px.copy_from_slice(&[200 - band * 20, 180 + band * 10, 160 + (y % 64) as u8]);
        }
        std::io::Write::write_all(&mut stream, &row).expect("writing into memory");
    }
    stream.finish().expect("finishing a PNG in memory");
    drop(writer);
    out
}

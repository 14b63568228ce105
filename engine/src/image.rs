//! JPEG, PNG and GIF to a one-page PDF with krilla: a JPEG is embedded byte for byte (CMYK too),
//! its EXIF orientation applied by rotating the placement; PNG and GIF are recompressed losslessly.

use krilla::Document;
use krilla::geom::{Size, Transform};
use krilla::image::Image;
use krilla::page::PageSettings;

use crate::imagemeta::header;
use crate::{ConvertError, DocKind};

/// A4 in points; images are scaled down to fit it, never up.
const A4: (f32, f32) = (595.28, 841.89);

pub(crate) fn convert(kind: DocKind, bytes: Vec<u8>) -> Result<(Vec<u8>, u32), ConvertError> {
    let head = header(kind, &bytes)?;
    let data = krilla::Data::from(bytes);
    let image = match kind {
        DocKind::Jpeg => Image::from_jpeg(data, true),
        DocKind::Png => Image::from_png(data, true),
        _ => Image::from_gif(data, true),
    }
    .map_err(|e| ConvertError::doc(kind, format!("the image is corrupt: {e}")))?;
    let (w, h) = image.size();
    let (w, h) = (w as f32, h as f32);
    // Orientations 5–8 turn the picture a quarter: the page takes the displayed shape.
    let turned = head.orientation >= 5;
    let (dw, dh) = if turned { (h, w) } else { (w, h) };
    let scale = fit_scale(dw, dh);
    let (pw, ph) = (dw * scale, dh * scale);

    let mut doc = Document::new();
    let mut page = doc.start_page_with(PageSettings::new(Size::from_wh(pw, ph).ok_or_else(|| bad_size(kind))?));
    let mut surface = page.surface();
    surface.push_transform(&orientation(head.orientation, pw, ph));
    surface.draw_image(image, Size::from_wh(w * scale, h * scale).ok_or_else(|| bad_size(kind))?);
    surface.pop();
    surface.finish();
    page.finish();
    let pdf = doc.finish().map_err(|e| match e {
        krilla::error::KrillaError::Image(_, _, why) => {
            ConvertError::doc(kind, format!("the image data is corrupt: {why}"))
        }
        other => ConvertError::doc(kind, format!("the PDF writer failed on this image: {other:?}")),
    })?;
    Ok((pdf, 1))
}

fn bad_size(kind: DocKind) -> ConvertError {
    ConvertError::doc(kind, "the image has an unusable size")
}

/// Points per pixel: one (72 dpi) at most, less when that is needed to fit A4 in the image's own
/// orientation (portrait or landscape).
pub(crate) fn fit_scale(w: f32, h: f32) -> f32 {
    let (bw, bh) = if w > h { (A4.1, A4.0) } else { A4 };
    (bw / w).min(bh / h).min(1.0)
}

/// Maps the image as stored, drawn at the origin, onto a `pw`×`ph` page as EXIF says it is shown
/// (krilla's space has y pointing down, as images do).
fn orientation(o: u8, pw: f32, ph: f32) -> Transform {
    // from_row(sx, ky, kx, sy, tx, ty): x' = sx·x + kx·y + tx, y' = ky·x + sy·y + ty.
    match o {
        2 => Transform::from_row(-1.0, 0.0, 0.0, 1.0, pw, 0.0),
        3 => Transform::from_row(-1.0, 0.0, 0.0, -1.0, pw, ph),
        4 => Transform::from_row(1.0, 0.0, 0.0, -1.0, 0.0, ph),
        5 => Transform::from_row(0.0, 1.0, 1.0, 0.0, 0.0, 0.0),
        6 => Transform::from_row(0.0, 1.0, -1.0, 0.0, pw, 0.0),
        7 => Transform::from_row(0.0, -1.0, -1.0, 0.0, pw, ph),
        8 => Transform::from_row(0.0, -1.0, 1.0, 0.0, 0.0, ph),
        _ => Transform::identity(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each orientation must put the stored image's corners exactly on the page's corners.
    #[test]
    fn every_exif_orientation_maps_the_image_onto_the_page() {
        let (w, h) = (40.0f32, 30.0f32);
        for o in 1..=8u8 {
            let (pw, ph) = if o >= 5 { (h, w) } else { (w, h) };
            let t = orientation(o, pw, ph);
            for (x, y) in [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h)] {
                let px = t.sx() * x + t.kx() * y + t.tx();
                let py = t.ky() * x + t.sy() * y + t.ty();
                let on_corner = |v: f32, a: f32| v.abs() < 1e-3 || (v - a).abs() < 1e-3;
                assert!(on_corner(px, pw) && on_corner(py, ph), "orientation {o}: ({x},{y}) -> ({px},{py})");
            }
        }
    }
}

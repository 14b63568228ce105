//! A PDF of image pages, one image filling each page, written with pdf-writer so that CCITT fax
//! data goes in untouched (krilla only takes decoded pixels or whole JPEG/PNG files).

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref};

/// How a page image's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Zlib-compressed samples (what we produce from decoded pixels).
    Flate,
    /// CCITT fax data copied from the TIFF: `k` < 0 is Group 4, 0 is Group 3 one-dimensional, > 0 mixed.
    Ccitt { k: i32, byte_align: bool, end_of_line: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Colors {
    Gray,
    Rgb,
    Cmyk,
    /// Palette of RGB triples; samples are indices.
    Indexed(Vec<u8>),
}

/// One page: its image and the page's size in points.
#[derive(Debug, Clone)]
pub(crate) struct PageImage {
    pub width: u32,
    pub height: u32,
    pub bits: u8,
    pub colors: Colors,
    pub encoding: Encoding,
    /// Samples mean the opposite (1 = black for gray): written as a `Decode [1 0]` array.
    pub invert: bool,
    pub data: Vec<u8>,
    pub page_w: f32,
    pub page_h: f32,
}

/// Writes the pages into one PDF.
pub(crate) fn write(pages: &[PageImage]) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    // Three objects per page: the page, its content stream, its image.
    let ids: Vec<(Ref, Ref, Ref)> =
        (0..pages.len() as i32).map(|i| (Ref::new(3 + 3 * i), Ref::new(4 + 3 * i), Ref::new(5 + 3 * i))).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(ids.iter().map(|ids| ids.0)).count(pages.len() as i32);
    for (page, &(page_id, content_id, image_id)) in pages.iter().zip(&ids) {
        let name = Name(b"Im0");
        let mut p = pdf.page(page_id);
        p.parent(tree).media_box(Rect::new(0.0, 0.0, page.page_w, page.page_h)).contents(content_id);
        p.resources().x_objects().pair(name, image_id);
        p.finish();

        let mut content = Content::new();
        content.save_state();
        content.transform([page.page_w, 0.0, 0.0, page.page_h, 0.0, 0.0]);
        content.x_object(name);
        content.restore_state();
        pdf.stream(content_id, &content.finish());

        write_image(&mut pdf, image_id, page);
    }
    pdf.finish()
}

fn write_image(pdf: &mut Pdf, id: Ref, page: &PageImage) {
    let mut image = pdf.image_xobject(id, &page.data);
    image.width(page.width as i32).height(page.height as i32).bits_per_component(i32::from(page.bits));
    match &page.colors {
        Colors::Gray => image.color_space().device_gray(),
        Colors::Rgb => image.color_space().device_rgb(),
        Colors::Cmyk => image.color_space().device_cmyk(),
        Colors::Indexed(palette) => {
            let hival = (palette.len() / 3).saturating_sub(1) as i32;
            image.color_space().indexed(Name(b"DeviceRGB"), hival, palette);
        }
    }
    if page.invert {
        image.decode([1.0, 0.0]);
    }
    // Bilevel scans should stay crisp; continuous-tone images look better smoothed when scaled.
    image.interpolate(page.bits > 1);
    match page.encoding {
        Encoding::Flate => {
            image.filter(Filter::FlateDecode);
        }
        Encoding::Ccitt { k, byte_align, end_of_line } => {
            image.filter(Filter::CcittFaxDecode);
            let mut parms = image.decode_parms();
            parms.k(k).columns(page.width as i32).rows(page.height as i32);
            // BlackIs1 stays false: CCITT codes white and black runs, and PDF then draws black as 0.
            if byte_align {
                parms.encoded_byte_align(true);
            }
            if end_of_line {
                parms.end_of_line(true);
            }
        }
    }
}

/// Zlib-compresses decoded samples for an `Encoding::Flate` page.
pub(crate) fn deflate(samples: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::with_capacity(samples.len() / 4), flate2::Compression::new(6));
    // Writing into a Vec cannot fail.
    enc.write_all(samples).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

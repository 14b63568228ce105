//! A minimal little-endian TIFF writer for bilevel pages (one strip and one IFD per page) and PackBits.

/// One encoded bilevel page.
pub(super) struct Page {
    pub width: u32,
    pub height: u32,
    /// Vertical resolution in dpi (horizontal is always 200).
    pub yres: u32,
    /// TIFF compression code: 4 (CCITT G4) or 32773 (PackBits).
    pub compression: u16,
    /// The page's one strip.
    pub data: Vec<u8>,
}

/// Writes a little-endian TIFF with one IFD per page, chained in order.
pub(super) fn write_tiff(pages: &[&Page]) -> Vec<u8> {
    let mut out = b"II*\0\0\0\0\0".to_vec();
    let mut next_ptr = 4; // where the previous "next IFD" offset lives
    for (i, p) in pages.iter().enumerate() {
        let strip = out.len() as u32;
        out.extend_from_slice(&p.data);
        if out.len() % 2 == 1 {
            out.push(0); // IFDs and their values start on a word boundary
        }
        let rational = out.len() as u32;
        for v in [200, 1, p.yres, 1] {
            out.extend_from_slice(&u32::to_le_bytes(v));
        }
        let mut tags: Vec<(u16, u16, u32, u32)> = vec![
            (254, 4, 1, 2),
            (256, 4, 1, p.width),
            (257, 4, 1, p.height),
            (258, 3, 1, 1),
            (259, 3, 1, u32::from(p.compression)),
            (262, 3, 1, 0),
            (266, 3, 1, 1),
            (273, 4, 1, strip),
            (277, 3, 1, 1),
            (278, 4, 1, p.height),
            (279, 4, 1, p.data.len() as u32),
            (282, 5, 1, rational),
            (283, 5, 1, rational + 8),
            (296, 3, 1, 2),
            (297, 3, 2, (i as u32) | ((pages.len() as u32) << 16)),
        ];
        if p.compression == 4 {
            tags.push((293, 4, 1, 0)); // T6Options: no uncompressed mode
            tags.sort_by_key(|t| t.0);
        }
        let ifd = out.len() as u32;
        out[next_ptr..next_ptr + 4].copy_from_slice(&ifd.to_le_bytes());
        out.extend_from_slice(&(tags.len() as u16).to_le_bytes());
        for (tag, typ, count, value) in tags {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            // A single SHORT sits in the low-addressed half of the value field.
            out.extend_from_slice(&value.to_le_bytes());
        }
        next_ptr = out.len();
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// Appends one row in PackBits: runs of 2–128 equal bytes as a repeat, the rest as literals.
pub(super) fn packbits_row(bytes: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take(128).take_while(|&&b| b == bytes[i]).count();
        if run >= 2 {
            out.push((1 - run as i16) as u8);
            out.push(bytes[i]);
            i += run;
        } else {
            // A literal stretch ends where a repeat starts (or at 128 bytes).
            let start = i;
            while i < bytes.len() && i - start < 128 && !(i + 1 < bytes.len() && bytes[i] == bytes[i + 1]) {
                i += 1;
            }
            i = i.max(start + 1);
            out.push((i - start - 1) as u8);
            out.extend_from_slice(&bytes[start..i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(packed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < packed.len() {
            let n = packed[i] as i8;
            if n >= 0 {
                out.extend_from_slice(&packed[i + 1..i + 2 + n as usize]);
                i += 2 + n as usize;
            } else {
                out.extend(std::iter::repeat_n(packed[i + 1], (1 - i16::from(n)) as usize));
                i += 2;
            }
        }
        out
    }

    #[test]
    fn packbits_round_trips_runs_and_literals() {
        let mut row = vec![0xffu8; 5];
        row.extend([1, 2, 3, 4]);
        row.extend(vec![0u8; 300]);
        row.extend((0..200).map(|i| i as u8));
        let mut packed = Vec::new();
        packbits_row(&row, &mut packed);
        assert_eq!(unpack(&packed), row);
        assert!(packed.len() < row.len());
    }
}

//! Bytes to text: BOMs, UTF-8, UTF-16 without a BOM, else Windows-1252; `None` when it is not text at all.

/// Decodes `bytes` as text, or `None` when they look binary (control characters, NULs).
pub(crate) fn decode_text(bytes: &[u8]) -> Option<String> {
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        utf16(rest, u16::from_le_bytes)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        utf16(rest, u16::from_be_bytes)
    } else if let Some(le) = utf16_guess(bytes) {
        utf16(bytes, if le { u16::from_le_bytes } else { u16::from_be_bytes })
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            // Cut off mid-character at the very end (a truncated file): still UTF-8.
            Err(e) if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 => {
                String::from_utf8_lossy(bytes).into_owned()
            }
            Err(_) => windows_1252(bytes),
        }
    };
    looks_like_text(&text).then_some(text)
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect()
}

/// UTF-16 without a BOM shows as NULs in every other byte for Latin text; which half says the order.
fn utf16_guess(bytes: &[u8]) -> Option<bool> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 8 {
        return None;
    }
    let pairs = sample.len() / 2;
    let odd_nuls = sample.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    let even_nuls = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    if odd_nuls * 10 > pairs * 7 && even_nuls * 10 < pairs {
        Some(true)
    } else if even_nuls * 10 > pairs * 7 && odd_nuls * 10 < pairs {
        Some(false)
    } else {
        None
    }
}

/// Windows-1252 is what "Latin-1" text from Windows really is; it agrees with ISO 8859-1
/// except that 0x80–0x9F are printable characters rather than C1 controls.
fn windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Text has almost no control characters besides line breaks, tabs and form feeds, and no NULs.
fn looks_like_text(text: &str) -> bool {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars().take(1 << 20) {
        total += 1;
        match c {
            '\0' => return false,
            '\t' | '\n' | '\r' | '\x0c' | '\x1b' => {}
            c if c.is_control() || c == '\u{FFFD}' => bad += 1,
            _ => {}
        }
    }
    total > 0 && bad * 50 <= total
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_commonly_found_in_records_decode() {
        assert_eq!(decode_text("café".as_bytes()).as_deref(), Some("café"));
        assert_eq!(decode_text(b"caf\xe9 \x80").as_deref(), Some("café €"));
        let le: Vec<u8> = [0xFF, 0xFE].into_iter().chain("Zoë".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(decode_text(&le).as_deref(), Some("Zoë"));
        let bare: Vec<u8> = "Patient report".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(decode_text(&bare).as_deref(), Some("Patient report"));
    }

    #[test]
    fn binary_is_not_text() {
        assert_eq!(decode_text(&[0x00, 0x01, 0x02, 0x03, 0xFF, 0x10]), None);
        assert_eq!(decode_text(b"\x01\x02\x03\x04\x05\x06 some"), None);
    }
}

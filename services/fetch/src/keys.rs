//! What an entry's name and first bytes say: a safe storage-key segment, a path that would
//! escape the extraction directory, a nested archive.

/// Longest segment, in bytes: object stores allow far more, but a key must stay readable in
/// logs and fit the longest file name a filesystem-backed store accepts (255) with a prefix.
const MAX_SEGMENT: usize = 100;
/// Longest suffix still treated as an extension ("pdf", "tiff", "docx", "jpeg").
const MAX_EXTENSION: usize = 8;
/// Used when nothing usable is left of a name ("..", "", "???").
const FALLBACK: &str = "file";

/// A storage-key segment from an archive name: keeps letters/digits/`.-_` (ASCII), replaces
/// the rest, no empty/`.`/`..` segments, bounded length (≤ 100 bytes), keeps the extension
/// when sensible. Uniqueness comes from the caller prefixing the entry index.
///
/// Folders are flattened into the segment (`2019/Lab/x.pdf` → `2019_Lab_x.pdf`) because the
/// same file name often repeats across folders; when too long, the start is dropped so the
/// file's own name and extension survive.
pub fn key_segment(name: &str) -> String {
    let flat = flatten(name);
    let (stem, ext) = match flat.rsplit_once('.') {
        Some((stem, ext)) if is_extension(ext) => (stem, Some(ext)),
        _ => (flat.as_str(), None),
    };
    let budget = MAX_SEGMENT - ext.map_or(0, |e| e.len() + 1);
    // Every byte is ASCII after `flatten`, so any byte offset is a char boundary.
    let stem = trim(&stem[stem.len().saturating_sub(budget)..]);
    let stem = if stem.is_empty() { FALLBACK } else { stem };
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

/// Maps every character outside `[A-Za-z0-9._-]` to `_` and squeezes runs of `_` and of `.`,
/// so no `..` survives anywhere. The caller trims the stem's ends: no hidden `.x` files, no
/// leading `-` that a shell tool would read as an option.
fn flatten(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(4 * MAX_SEGMENT));
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' };
        let squeezed = matches!(c, '_' | '.') && out.ends_with(c);
        if !squeezed {
            out.push(c);
        }
    }
    out
}

fn trim(s: &str) -> &str {
    s.trim_matches(['.', '_', '-'])
}

fn is_extension(ext: &str) -> bool {
    (1..=MAX_EXTENSION).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A name that would land outside the extraction directory if it were used as a path: a `..`
/// component, a root, or a drive letter (`\` counts as a separator: Windows tools write it).
pub(crate) fn escapes(name: &str) -> bool {
    let b = name.as_bytes();
    name.starts_with(['/', '\\'])
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
        || name.split(['/', '\\']).any(|part| part == "..")
}

/// Entry names end up in reasons, which end up in logs and reports: no control characters,
/// bounded length.
pub(crate) fn printable(name: &str) -> String {
    name.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Archives and compressed files by extension: none is a document to convert as it stands.
pub(crate) fn archive_by_name(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(ext.as_str(), "zip" | "7z" | "rar" | "tar" | "gz" | "tgz" | "bz2" | "xz")
}

/// An archive recognised by its first bytes, whatever its name says.
pub(crate) fn archive_by_magic(head: &[u8]) -> bool {
    (head.starts_with(b"PK\x03\x04") && !office_package(head))
        || head.starts_with(b"PK\x05\x06")
        || head.starts_with(b"7z\xBC\xAF\x27\x1C")
        || head.starts_with(b"Rar!\x1A\x07")
        || head.starts_with(&[0x1F, 0x8B])
        || head.get(257..262) == Some(b"ustar")
}

/// DOCX/XLSX (OOXML) and ODF files are zips too, but documents to convert, not archives; the
/// name of their first member gives them away even when their extension is wrong.
fn office_package(head: &[u8]) -> bool {
    const MARKERS: [&[u8]; 8] =
        [b"[Content_Types].xml", b"_rels/", b"docProps/", b"word/", b"xl/", b"ppt/", b"mimetype", b"META-INF/"];
    let Some(len) = head.get(26..28).map(|l| usize::from(u16::from_le_bytes([l[0], l[1]]))) else {
        return false;
    };
    let rest = head.get(30..).unwrap_or_default();
    let first = &rest[..len.min(rest.len())];
    MARKERS.iter().any(|m| first.starts_with(m))
}

#[cfg(test)]
mod tests {
    use super::key_segment;

    #[test]
    fn keeps_readable_names_and_their_extension() {
        assert_eq!(key_segment("2019/Lab results.PDF"), "2019_Lab_results.PDF");
        assert_eq!(key_segment("../../etc/passwd"), "etc_passwd");
        assert_eq!(key_segment("Befund Müller.tiff"), "Befund_M_ller.tiff");
        assert_eq!(key_segment(".."), "file");
        assert_eq!(key_segment("..pdf"), "file.pdf");
        assert_eq!(key_segment("-rf ."), "rf");
        assert_eq!(key_segment("検査.pdf"), "file.pdf");
    }

    #[test]
    fn a_long_name_keeps_its_end_and_extension() {
        let name = format!("{}/scan-final.pdf", "folder/".repeat(40));
        let key = key_segment(&name);
        assert!(key.len() <= 100, "{key}");
        assert!(key.ends_with("scan-final.pdf"), "{key}");
    }

    /// Property-style: fixed nasty names, then thousands of random ones (a fixed xorshift
    /// seed, so a failure reproduces), must all give a segment that is safe as it stands.
    #[test]
    fn no_name_yields_an_unsafe_segment() {
        let fixed = "|.|..|...|/|\\|../../etc/x|C:\\x|-rf|a\0b| .pdf|💊.pdf|.htaccess|x.|a..b";
        let mut names: Vec<String> = fixed.split('|').map(String::from).collect();
        names.extend(["a".repeat(500), "ü".repeat(300) + ".pdf", "_.-".repeat(90)]);
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            let len = next() % 300;
            let bytes: Vec<u8> = (0..len).map(|_| (next() % 256) as u8).collect();
            names.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        for name in &names {
            let key = key_segment(name);
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"._-".contains(&b);
            let safe = key.bytes().all(allowed) && !key.starts_with(['.', '-']);
            let bounded = !key.is_empty() && key.len() <= 100 && !key.contains("..");
            assert!(safe && bounded, "{name:?} -> {key:?}");
        }
    }
}

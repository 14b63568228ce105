//! Archives: which entries a job's zip holds (the plan) and writing it to disk, reproducibly.
//!
//! `mixed` holds every document type a real exchange sends, `hostile` adds
//! entries a safe extractor must refuse, `text` and `images` are small kinds
//! for focused tests. The same kind, count and seed always give the same bytes.

mod bomb;
mod hostile;
mod mixed;

pub use hostile::HOSTILE_ENTRIES;

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::util::mix;

/// What an archive holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    /// Every document type, nested folders, repeated and non-ASCII names, lying extensions.
    #[default]
    Mixed,
    /// Path traversal, an absolute path, a symlink, bombs, corrupt and encrypted
    /// entries, a nested zip; then ordinary files. See the README.
    Hostile,
    /// Plain UTF-8 text files only.
    Text,
    /// JPEG, PNG and TIFF images only.
    Images,
    /// One 108-megapixel PNG scan (small compressed, about 324 MB decoded)
    /// first, then plain text files: for testing a conversion memory cap.
    Heavy,
}

impl FromStr for ArchiveKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "mixed" => Ok(ArchiveKind::Mixed),
            "hostile" => Ok(ArchiveKind::Hostile),
            "text" => Ok(ArchiveKind::Text),
            "images" => Ok(ArchiveKind::Images),
            "heavy" => Ok(ArchiveKind::Heavy),
            other => Err(format!("unknown archive kind {other:?}; use mixed, hostile, text, images or heavy")),
        }
    }
}

impl fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned));
        f.write_str(s.as_deref().unwrap_or("mixed"))
    }
}

/// What one entry is, whatever its name claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryType {
    Pdf,
    /// Multi-page bilevel TIFF (G4 or PackBits).
    Tiff,
    Jpeg,
    /// JPEG stored sideways with an EXIF orientation tag.
    JpegOriented,
    Png,
    Text,
    Html,
    /// HL7 CDA/CCD XML.
    Cda,
    Rtf,
    Docx,
    /// Random bytes named `.dat`.
    Junk,
    /// Random bytes named `.xlsx`.
    JunkXlsx,
    /// A PNG named `.jpg`.
    PngNamedJpg,
    /// Plain text named `.doc`.
    TextNamedDoc,
    /// Hostile: name starts with `../`.
    DotDotEscape,
    /// Hostile: `..` inside the name climbs out (`a/../../b.txt`).
    InnerDotDotEscape,
    /// Hostile: an absolute path.
    AbsolutePath,
    /// Hostile: `..\` with Windows separators.
    BackslashEscape,
    /// Hostile: a symlink entry pointing at `/etc/passwd`.
    Symlink,
    /// Hostile: inflates to more than 1 GiB of zeros.
    ZerosBomb,
    /// Hostile: 64 MiB of zeros at about 1000:1.
    RatioBomb,
    /// A PNG cut off part-way.
    CorruptPng,
    /// A JPEG cut off part-way.
    CorruptJpeg,
    /// Plain text named `.pdf`.
    TextNamedPdf,
    /// Encrypted with ZipCrypto (password `docket`).
    Encrypted,
    /// A zip inside the zip.
    NestedZip,
    /// A 300-character file name, longer than most file systems allow.
    LongName,
    /// A 12000×9000 PNG: a few MB in the archive, about 324 MB decoded.
    HugePng,
}

/// One planned entry: its name in the archive and what it really is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedEntry {
    pub name: String,
    pub what: EntryType,
}

/// The entries an archive of `kind` with `count` entries and `seed` holds, in order.
pub fn plan(kind: ArchiveKind, count: u32, seed: u64) -> Vec<PlannedEntry> {
    match kind {
        ArchiveKind::Mixed => mixed::plan(count as usize, seed, Vec::new()),
        ArchiveKind::Hostile => {
            let bad = hostile::plan(count as usize);
            let rest = count as usize - bad.len();
            mixed::plan(rest, seed, bad)
        }
        ArchiveKind::Text => mixed::plan_only(count as usize, seed, &[EntryType::Text]),
        ArchiveKind::Images => {
            mixed::plan_only(count as usize, seed, &[EntryType::Jpeg, EntryType::Png, EntryType::Tiff])
        }
        ArchiveKind::Heavy => {
            let mut v = vec![PlannedEntry { name: "scans/whole-body-scan.png".into(), what: EntryType::HugePng }];
            v.extend(mixed::plan_only((count as usize).saturating_sub(1), seed, &[EntryType::Text]));
            v.truncate(count as usize);
            v
        }
    }
}

/// The bytes of one entry and how to store it.
pub(crate) enum Content {
    File {
        data: Cow<'static, [u8]>,
        deflate: bool,
    },
    Symlink(&'static str),
    Encrypted(Vec<u8>),
    /// A one-entry zip whose entry is copied in as it is (never inflated).
    Raw(Vec<u8>),
}

/// Writes the archive for `kind`/`count`/`seed` to `path` and returns its size in bytes.
///
/// Writes to a `.part` file first and renames it, so a reader never sees half an archive.
pub fn write_archive(path: &Path, kind: ArchiveKind, count: u32, seed: u64) -> io::Result<u64> {
    let part = path.with_extension("zip.part");
    let mut zip = ZipWriter::new(BufWriter::new(File::create(&part)?));
    for (i, entry) in plan(kind, count, seed).iter().enumerate() {
        let s = mix(seed ^ (i as u64).wrapping_mul(0x9e37_79b9));
        let opts = SimpleFileOptions::default().last_modified_time(timestamp(s)).unix_permissions(0o644);
        match render(entry, s) {
            Content::File { data, deflate } => {
                let method = if deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
                zip.start_file(entry.name.as_str(), opts.compression_method(method))?;
                zip.write_all(&data)?;
            }
            Content::Symlink(target) => zip.add_symlink(entry.name.as_str(), target, opts)?,
            Content::Encrypted(data) => {
                use zip::unstable::write::FileOptionsExt;
                let opts =
                    opts.compression_method(CompressionMethod::Deflated).with_deprecated_encryption(b"docket")?;
                zip.start_file(entry.name.as_str(), opts)?;
                zip.write_all(&data)?;
            }
            Content::Raw(one) => {
                let mut inner = zip::ZipArchive::new(io::Cursor::new(one))?;
                zip.raw_copy_file(inner.by_index_raw(0)?)?;
            }
        }
    }
    let mut file = zip.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.flush()?;
    let bytes = file.metadata()?.len();
    drop(file);
    std::fs::rename(&part, path)?;
    Ok(bytes)
}

/// A plausible modification time between 2012 and 2023, from the entry's seed.
fn timestamp(s: u64) -> DateTime {
    let f = |shift: u32, m: u64| ((s >> shift) % m) as u8;
    DateTime::from_date_and_time(
        2012 + u16::from(f(0, 12)),
        1 + f(8, 12),
        1 + f(16, 28),
        f(24, 24),
        f(32, 60),
        f(40, 30) * 2,
    )
    .expect("every field is within its range")
}

fn render(entry: &PlannedEntry, s: u64) -> Content {
    hostile::render(entry, s).unwrap_or_else(|| mixed::render(entry.what, s))
}

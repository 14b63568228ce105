//! docket-fetch: turns an untrusted zip archive from the exchange into files on scratch disk.
//!
//! Map of the crate:
//! - [`extract()`] (`extract.rs`): walks the archive's central directory, writes each usable
//!   entry to `dest/<index>` under limits, and reports every hostile or unreadable entry as a
//!   failed document with a reason written for hospital staff.
//! - [`key_segment()`] (`keys.rs`): a safe storage-key segment from an entry's archive name.
//!
//! - [`stage`]: the `docket.fetch` handler: download into scratch, extract, hand every
//!   document to the store stage in one commit.
//!
//! An entry's name is only ever a label: no path on disk is built from it.
#![deny(unsafe_code)]

mod extract;
mod keys;
pub mod stage;

use std::sync::Arc;

use docket_shared::{App, Needs, Service, broker::Consumer, consumer};

pub fn service() -> Service {
    Service { name: "fetch", port: 9103, needs: Needs { db: true, docex: true, ..Needs::default() } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    vec![consumer(app, stage::Fetch(app.clone())), consumer(app, stage::UrgentFetch(app.clone()))]
}

pub use extract::extract;
pub use keys::key_segment;

use std::io::ErrorKind;
use std::path::PathBuf;

use zip::result::ZipError;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Limits applied while extracting one archive. Sizes are counted on the bytes actually
/// decompressed, never on what the archive declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Files (directories excluded) extracted at most; later files fail. Default 5,000.
    pub max_entries: usize,
    /// Bytes decompressed for the whole archive, failed entries included (they cost the same
    /// work); once reached, the remaining entries fail. Default 4 GiB.
    pub max_total_bytes: u64,
    /// Bytes one entry may decompress to. Default 256 MiB.
    pub max_entry_bytes: u64,
    /// Uncompressed-to-compressed ratio allowed above `ratio_floor_bytes`. Default 200 (200:1).
    pub max_ratio: u64,
    /// Entries up to this many uncompressed bytes are exempt from the ratio check: small,
    /// very regular files (blank forms, padded text) compress far beyond 200:1. Default 1 MiB.
    pub ratio_floor_bytes: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_entries: 5_000,
            max_total_bytes: 4 * GIB,
            max_entry_bytes: 256 * MIB,
            max_ratio: 200,
            ratio_floor_bytes: MIB,
        }
    }
}

/// One file of the archive, in central-directory order. Directories produce no `Entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position of the record in the central directory (directories counted), so it is unique
    /// within the archive even when names repeat.
    pub index: u32,
    /// The archive's own name for the entry, as the zip crate decodes it (UTF-8, else CP437).
    /// A label for the report only, never a path.
    pub name: String,
    /// What became of the entry.
    pub outcome: EntryOutcome,
}

/// The fate of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    /// Extracted to `path` (`dest/<index>`); `size` is the number of bytes written.
    File { path: PathBuf, size: u64 },
    /// Not extracted; `reason` is short, names no patient, and nothing of it is left on disk.
    Failed { reason: String },
}

/// Why a whole archive was refused. Entry-level problems are [`EntryOutcome::Failed`] instead.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a readable zip: no end-of-central-directory record (e.g. a truncated download), a
    /// damaged central directory, or another format altogether.
    #[error("not a readable zip archive: {0}")]
    NotZip(String),
    /// Reading the archive or writing under `dest` failed (disk full, permissions). Possibly
    /// transient; `dest` may hold files of entries extracted before the failure.
    #[error("cannot read the archive or write its files: {0}")]
    Io(#[from] std::io::Error),
    /// The archive is built to attack its reader (overlapping entries, an absurd entry count),
    /// so none of it is extracted.
    #[error("archive refused as hostile: {0}")]
    Hostile(String),
}

impl ArchiveError {
    /// The zip crate's error while opening or walking the archive: a format problem (a short
    /// read included: the file ends too soon), unless the disk itself failed.
    pub(crate) fn from_zip(e: ZipError) -> Self {
        match e {
            ZipError::Io(io) if !matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) => Self::Io(io),
            other => Self::NotZip(other.to_string()),
        }
    }
}

/// Renders a limit the way the reasons quote it: "4 GiB", "256 MiB", "1000 bytes".
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        0 => "0 bytes".to_owned(),
        n if n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// Staff-facing wording for a read error. The zip crate tells its cases apart only by message,
/// so a changed message degrades to the generic reason, never to a wrong one.
pub(crate) fn read_reason(e: &std::io::Error) -> String {
    let message = e.to_string();
    let reason = if message.contains("checksum") {
        "entry data is corrupt (checksum mismatch)"
    } else if message.contains("larger than its declared") {
        "entry holds more data than it declares (possible decompression bomb)"
    } else if e.kind() == ErrorKind::UnexpectedEof {
        "entry data is truncated"
    } else {
        "entry data is damaged and cannot be decompressed"
    };
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    use super::{ExtractLimits, human_bytes};

    #[test]
    fn the_defaults_are_the_documented_limits() {
        let d = ExtractLimits::default();
        let sizes = (d.max_total_bytes, d.max_entry_bytes, d.ratio_floor_bytes);
        assert_eq!(sizes, (4 << 30, 256 << 20, 1 << 20));
        assert_eq!((d.max_entries, d.max_ratio), (5_000, 200));
        let quoted = [d.max_total_bytes, d.max_entry_bytes, 1_000].map(human_bytes);
        assert_eq!(quoted, ["4 GiB", "256 MiB", "1000 bytes"]);
    }
}

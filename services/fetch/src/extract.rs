//! Extraction of one untrusted zip archive into generated file names under `dest`, with limits.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use zip::read::{Config, ZipFileEntry};
// `ZipArchive` keys entries by name, so two entries sharing a name collapse into one; the
// iterable reader walks the central directory record by record and keeps both.
use zip::unstable::read::ZipIterable;
use zip::{CompressionMethod, ZipReadOptions};

use crate::keys::{archive_by_magic, archive_by_name, escapes, printable};
use crate::{ArchiveError, Entry, EntryOutcome, ExtractLimits, human_bytes, read_reason};

/// Records allowed in the central directory, as a multiple of `max_entries` (at least
/// `MIN_RECORD_CEILING`): listing millions of excess records one by one as failed documents
/// would flood the report, so such an archive is refused whole.
const RECORD_CEILING_FACTOR: usize = 10;
const MIN_RECORD_CEILING: usize = 1_000;
/// Bytes read at the start of an entry to recognise an archive by its magic (tar's is at 257).
const SNIFF_BYTES: u64 = 512;
const CHUNK_BYTES: usize = 64 * 1024;
const NESTED: &str = "nested archive not extracted";

/// Blocking (the caller runs it in `spawn_blocking`). Writes every usable entry to
/// `dest/<index>` (a generated name, never the entry's name), nothing else anywhere. `dest` is
/// created if missing; a leftover `dest/<index>` from an earlier attempt is replaced. On
/// `Err`, `dest` may hold files of entries extracted before: the caller discards it.
pub fn extract(archive: &Path, dest: &Path, limits: &ExtractLimits) -> Result<Vec<Entry>, ArchiveError> {
    // Two handles: the iterator re-reads the central directory while `body` reads entry data.
    let directory = BufReader::new(File::open(archive)?);
    let mut body = File::open(archive)?;
    let mut zip = ZipIterable::try_new(directory, Config::default()).map_err(ArchiveError::from_zip)?;
    refuse_hostile(&mut zip, &mut body, limits)?;
    fs::create_dir_all(dest)?;

    let mut run = Run { limits, dest, files: 0, total: 0, exhausted: false };
    let mut entries = Vec::new();
    for (position, record) in zip.files().map_err(ArchiveError::from_zip)?.enumerate() {
        let entry = record.map_err(ArchiveError::from_zip)?;
        if entry.is_dir() {
            continue; // a folder is not a document, and nothing is written for it
        }
        // `refuse_hostile` bounds the record count far below u32::MAX.
        let index = u32::try_from(position).map_err(|_| ArchiveError::Hostile("too many entries".into()))?;
        let name = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
        };
        let outcome = run.entry(index, &name, entry, &mut body)?;
        entries.push(Entry { index, name, outcome });
    }
    tracing::debug!(files = entries.len(), bytes = run.total, "extracted");
    Ok(entries)
}

/// Refuses the whole archive when its central directory is an attack rather than a list of
/// documents: an absurd record count, or overlapping entries, which let a few kilobytes of
/// deflate data be listed thousands of times (no honest tool writes them).
fn refuse_hostile(
    zip: &mut ZipIterable<BufReader<File>>,
    body: &mut File,
    limits: &ExtractLimits,
) -> Result<(), ArchiveError> {
    let ceiling = limits.max_entries.saturating_mul(RECORD_CEILING_FACTOR).max(MIN_RECORD_CEILING);
    if zip.len() > ceiling {
        let (n, max) = (zip.len(), limits.max_entries);
        return Err(ArchiveError::Hostile(format!("archive lists {n} entries, far above the limit of {max}")));
    }
    let mut ranges = Vec::with_capacity(zip.len());
    let mut directory_start = u64::MAX;
    for record in zip.files().map_err(ArchiveError::from_zip)? {
        let entry = record.map_err(ArchiveError::from_zip)?;
        directory_start = directory_start.min(entry.central_header_start());
        let start = entry.header_start();
        // An unreadable local header is that entry's own failure, reported when it is read.
        let header = local_header_len(body, start).unwrap_or(30);
        let end = start.saturating_add(header);
        ranges.push((start, end.saturating_add(entry.compressed_size())));
    }
    ranges.sort_unstable();
    let into_directory = ranges.iter().any(|r| r.1 > directory_start);
    if into_directory || ranges.windows(2).any(|w| w[0].1 > w[1].0) {
        let why = "archive entries overlap (a decompression bomb technique)";
        return Err(ArchiveError::Hostile(why.to_owned()));
    }
    Ok(())
}

/// Length of the local file header at `start`: 30 fixed bytes, then name and extra field.
fn local_header_len(body: &mut File, start: u64) -> Option<u64> {
    let mut header = [0u8; 30];
    body.seek(SeekFrom::Start(start)).ok()?;
    body.read_exact(&mut header).ok()?;
    let field = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
    (header[..4] == *b"PK\x03\x04").then(|| 30 + field(26) + field(28))
}

/// One extraction: what has been spent against the archive-wide limits so far.
struct Run<'a> {
    limits: &'a ExtractLimits,
    dest: &'a Path,
    files: usize,
    /// Bytes decompressed, failed entries included: they cost the same work.
    total: u64,
    /// The total limit was reached: every later entry fails.
    exhausted: bool,
}

/// Why copying an entry stopped early.
enum Stop {
    /// The entry is at fault: it fails, the run goes on.
    Entry(String),
    /// Our own disk is at fault: the run stops.
    Io(io::Error),
}

impl Run<'_> {
    fn entry(
        &mut self,
        index: u32,
        name: &str,
        entry: ZipFileEntry<'_>,
        body: &mut File,
    ) -> Result<EntryOutcome, ArchiveError> {
        self.files += 1;
        if let Some(reason) = self.refusal(name, &entry) {
            return Ok(EntryOutcome::Failed { reason });
        }
        let (declared, compressed) = (entry.size(), entry.compressed_size());
        let Ok(reader) = entry.with_reader(body, ZipReadOptions::new()) else {
            let reason = "entry header is damaged; its data cannot be located".to_owned();
            return Ok(EntryOutcome::Failed { reason });
        };
        let path = self.dest.join(index.to_string());
        let mut out = create_fresh(&path)?;
        let copied = self.copy(reader, &mut out, compressed, declared);
        drop(out);
        match copied {
            Ok(size) => Ok(EntryOutcome::File { path, size }),
            Err(stop) => {
                fs::remove_file(&path)?; // a partial file must never pass for a document
                match stop {
                    Stop::Entry(reason) => Ok(EntryOutcome::Failed { reason }),
                    Stop::Io(e) => Err(ArchiveError::Io(e)),
                }
            }
        }
    }

    /// Reasons to refuse an entry before reading a byte of it. Declared sizes only serve to
    /// refuse early: an entry cannot yield more than it declares (the zip crate stops it) nor
    /// less (checked after the copy), and `copy` counts the real bytes anyway.
    fn refusal(&mut self, name: &str, entry: &ZipFileEntry<'_>) -> Option<String> {
        let limits = self.limits;
        let (declared, compressed) = (entry.size(), entry.compressed_size());
        let max = limits.max_entries;
        let reason = if self.files > max {
            format!("archive has more than {max} files; this one was not extracted")
        } else if escapes(name) {
            format!("entry path escapes the archive: {}", printable(name))
        } else if entry.is_symlink() {
            "symbolic link, not extracted".to_owned()
        } else if entry.encrypted() {
            "encrypted (password-protected) entry, not extracted".to_owned()
        } else if archive_by_name(name) {
            NESTED.to_owned()
        } else if !matches!(entry.compression(), CompressionMethod::Stored | CompressionMethod::Deflated) {
            format!("unsupported compression method ({}), not extracted", entry.compression())
        } else if self.exhausted || self.total.saturating_add(declared) > limits.max_total_bytes {
            // This entry would reach the total: it and every later one fail.
            self.exhausted = true;
            self.total_reason()
        } else if declared > limits.ratio_floor_bytes && declared > compressed.saturating_mul(limits.max_ratio) {
            self.ratio_reason()
        } else if declared > limits.max_entry_bytes {
            self.entry_size_reason()
        } else {
            return None;
        };
        Some(reason)
    }

    /// Copies the decompressed entry to `out`, counting every byte against the limits as it
    /// comes, and recognising an archive by its first bytes whatever its name says.
    fn copy(&mut self, mut src: impl Read, out: &mut File, compressed: u64, declared: u64) -> Result<u64, Stop> {
        let limits = self.limits;
        let mut head = Vec::new();
        let read_head = src.by_ref().take(SNIFF_BYTES).read_to_end(&mut head);
        read_head.map_err(|e| Stop::Entry(read_reason(&e)))?;
        if archive_by_magic(&head) {
            return Err(Stop::Entry(NESTED.to_owned()));
        }
        let mut src = head.as_slice().chain(src);
        let ratio_cap = compressed.saturating_mul(limits.max_ratio).max(limits.ratio_floor_bytes);
        let (mut buf, mut written) = (vec![0u8; CHUNK_BYTES], 0u64);
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Stop::Entry(read_reason(&e))),
            };
            written += n as u64;
            self.total += n as u64;
            if written > ratio_cap {
                return Err(Stop::Entry(self.ratio_reason()));
            } else if written > limits.max_entry_bytes {
                return Err(Stop::Entry(self.entry_size_reason()));
            } else if self.total > limits.max_total_bytes {
                self.exhausted = true;
                return Err(Stop::Entry(self.total_reason()));
            }
            out.write_all(&buf[..n]).map_err(Stop::Io)?;
        }
        if written != declared {
            let reason = "entry data is truncated (shorter than its declared size)";
            return Err(Stop::Entry(reason.to_owned()));
        }
        Ok(written)
    }

    fn total_reason(&self) -> String {
        let max = human_bytes(self.limits.max_total_bytes);
        format!("archive exceeds the {max} total limit")
    }

    fn ratio_reason(&self) -> String {
        let max = self.limits.max_ratio;
        format!("entry expands more than {max}:1 (possible decompression bomb)")
    }

    fn entry_size_reason(&self) -> String {
        let max = human_bytes(self.limits.max_entry_bytes);
        format!("entry is larger than the {max} per-entry limit")
    }
}

/// Opens `path` as a new file. `create_new` never follows a link planted at `path`, so a
/// leftover of an earlier attempt is unlinked first rather than written through.
fn create_fresh(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()
        }
        other => other,
    }
}

//! Extraction of ordinary and hostile archives: what lands where, and why an entry fails.

use std::{collections::BTreeSet, fs, io::Write, path::Path, path::PathBuf, time::Instant};

use docket_fetch::{ArchiveError, Entry, EntryOutcome, ExtractLimits, extract};
use flate2::{Compress, Compression, FlushCompress};
use zip::{ZipWriter, write::SimpleFileOptions};

/// One entry of a hand-made archive, for what the zip writer refuses to produce.
#[derive(Clone, Default)]
struct Raw {
    name: Vec<u8>,
    /// The bytes extraction should yield; `data` is what the archive stores.
    plain: Vec<u8>,
    data: Vec<u8>,
    method: u16,
    crc: u32,
    size: u32,
    flags: u16,
    mode: u32,
}

impl Raw {
    fn with(mut self, change: impl FnOnce(&mut Raw)) -> Raw {
        change(&mut self);
        self
    }
}

fn stored(name: &str, body: &[u8]) -> Raw {
    let mut raw = Raw::default();
    (raw.name, raw.plain, raw.data) = (name.into(), body.to_vec(), body.to_vec());
    (raw.crc, raw.size, raw.mode) = (crc32fast::hash(body), body.len() as u32, 0o100_644);
    raw
}

fn deflated(name: &str, body: &[u8]) -> Raw {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body).expect("deflating into memory");
    let data = encoder.finish().expect("deflating into memory");
    stored(name, body).with(|r| (r.data, r.method) = (data, 8))
}

/// Field widths after the signatures: local header `COMMON`; central `made by`, `COMMON`, `TAIL`.
const COMMON: [usize; 10] = [2, 2, 2, 2, 2, 4, 4, 4, 2, 2];
const TAIL: [usize; 5] = [2, 2, 2, 4, 4];
const END: [usize; 6] = [4, 2, 2, 4, 4, 2];

fn put(out: &mut Vec<u8>, widths: &[usize], values: &[u32]) {
    for (value, width) in values.iter().zip(widths) {
        out.extend_from_slice(&value.to_le_bytes()[..*width]);
    }
}

/// A local header, or with `central` a central record pointing at the local header there.
fn header(out: &mut Vec<u8>, e: &Raw, name: &[u8], central: Option<u32>) {
    let (f, m) = (u32::from(e.flags), u32::from(e.method));
    let (c, n) = (e.data.len() as u32, name.len() as u32);
    match central {
        Some(_) => put(out, &[4, 2], &[0x0201_4B50, 0x031E]), // made on unix: the mode counts
        None => put(out, &[4], &[0x0403_4B50]),
    }
    put(out, &COMMON, &[20, f, m, 0, 0x21, e.crc, c, e.size, n, 0]);
    if let Some(offset) = central {
        put(out, &TAIL, &[0, 0, 0, e.mode << 16, offset]);
    }
    out.extend_from_slice(name);
}

/// Local entries, then a central record per entry plus one per alias (a second record naming
/// an earlier entry's local header, as overlap bombs do), then the end record.
fn raw_zip(entries: &[Raw], aliases: &[(usize, &str)]) -> Vec<u8> {
    let (mut out, mut offsets) = (Vec::new(), Vec::new());
    for e in entries {
        offsets.push(out.len() as u32);
        header(&mut out, e, &e.name, None);
        out.extend_from_slice(&e.data);
    }
    let own = entries.iter().enumerate().map(|(i, e)| (i, &e.name[..]));
    let aliases = aliases.iter().map(|(i, n)| (*i, n.as_bytes()));
    let records: Vec<_> = own.chain(aliases).collect();
    let start = out.len() as u32;
    for (i, name) in &records {
        header(&mut out, &entries[*i], name, Some(offsets[*i]));
    }
    let (count, len) = (records.len() as u32, out.len() as u32 - start);
    put(&mut out, &[4], &[0x0605_4B50]);
    put(&mut out, &END, &[0, count, count, len, start, 0]);
    out
}

/// An archive from the zip crate's own writer; a name ending in `/` is a directory.
fn written_zip<N: AsRef<str>, B: AsRef<[u8]>>(files: &[(N, B)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for (name, body) in files {
        let name = name.as_ref();
        match name.ends_with('/') {
            true => zip.add_directory(name, options).expect("directory"),
            false => zip.start_file(name, options).expect("file"),
        }
        zip.write_all(body.as_ref()).expect("writing into memory");
    }
    zip.finish().expect("finishing into memory").into_inner()
}

fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut seen = BTreeSet::new();
    for item in fs::read_dir(root).expect("readable dir").flatten() {
        if item.file_type().is_ok_and(|t| t.is_dir()) {
            seen.extend(tree(&item.path()));
        }
        seen.insert(item.path());
    }
    seen
}

/// Index, name, and the extracted bytes or the reason it failed.
type Got = (u32, String, Result<Vec<u8>, String>);

/// Extracts `bytes` in a fresh temp root beside a bystander file, and checks that nothing
/// appeared outside `dest`, the bystander is intact, and every outcome matches the disk.
fn extract_bytes(bytes: &[u8], limits: &ExtractLimits) -> Result<Vec<Got>, ArchiveError> {
    let root = tempfile::tempdir().expect("temp dir");
    let (archive, dest) = (root.path().join("in.zip"), root.path().join("out"));
    let bystander = root.path().join("keep.txt");
    fs::write(&archive, bytes).expect("write archive");
    fs::write(&bystander, b"untouched").expect("write bystander");
    let before = tree(root.path());
    let result = extract(&archive, &dest, limits);
    let created = &tree(root.path()) - &before;
    let outside: Vec<_> = created.iter().filter(|p| !p.starts_with(&dest)).collect();
    assert!(outside.is_empty(), "written outside dest: {outside:?}");
    assert_eq!(fs::read(&bystander).expect("bystander"), b"untouched");
    result.map(|entries| entries.into_iter().map(|e| got(e, &dest)).collect())
}

/// Checks an outcome against the disk: `dest/<index>` of the reported size, or nothing at all.
fn got(entry: Entry, dest: &Path) -> Got {
    let expected = dest.join(entry.index.to_string());
    let outcome = match entry.outcome {
        EntryOutcome::File { path, size } => {
            let bytes = fs::read(&path).expect("extracted file");
            assert_eq!((&path, bytes.len() as u64), (&expected, size));
            Ok(bytes)
        }
        EntryOutcome::Failed { reason } => {
            assert!(!expected.exists(), "partial file left for {}", entry.name);
            Err(reason)
        }
    };
    (entry.index, entry.name, outcome)
}

/// Marks a case that must be extracted with its bytes intact.
const OK: &str = "";

/// Extracts `cases` as one hand-made archive and checks each entry in order: extracted with
/// its plain bytes under `OK`, otherwise failed with a reason starting with the one given.
fn check(cases: &[(Raw, &str)], limits: &ExtractLimits) -> Vec<Got> {
    let raws: Vec<_> = cases.iter().map(|c| c.0.clone()).collect();
    let got = extract_bytes(&raw_zip(&raws, &[]), limits).expect("a readable archive");
    assert_eq!(got.len(), cases.len());
    for ((raw, expected), (_, name, outcome)) in cases.iter().zip(&got) {
        let as_expected = match outcome {
            Ok(bytes) => expected.is_empty() && bytes == &raw.plain,
            Err(why) => !expected.is_empty() && why.starts_with(expected),
        };
        assert!(as_expected, "{name}: {outcome:?}, expected {expected:?}");
    }
    got
}

#[test]
fn every_hostile_or_unreadable_entry_fails_with_its_reason_and_the_rest_is_extracted() {
    let (zip, evil) = (written_zip(&[("x.txt", b"x")]), "/tmp/docket-fetch-evil");
    let t = b"Lorem ipsum dolor sit ".repeat(400);
    // OOXML and ODF files are zips, but documents, whatever their extension says.
    let docx = written_zip(&[("[Content_Types].xml", b"<T/>"), ("word/w.xml", b"<w/>")]);
    #[rustfmt::skip] // a table reads best aligned, one case a line
    let cases = [
        (stored("../x", b"p"),                              "entry path escapes the archive: ../x"),
        (stored("a/../../x", b"p"),                         "entry path escapes the archive: "),
        (stored("..\\..\\x", b"p"),                         "entry path escapes the archive: "),
        (stored("C:\\x", b"p"),                             "entry path escapes the archive: "),
        (stored("c:x", b"p"),                               "entry path escapes the archive: "),
        (stored(evil, b"p"),                                "entry path escapes the archive: "),
        (stored("link", b"/").with(|r| r.mode = 0o120_777), "symbolic link, not extracted"),
        (stored("secret", b"\x12").with(|r| r.flags = 1),   "encrypted (password-protected)"),
        (stored("inner.ZIP", b"any"),                       "nested archive not extracted"),
        (stored("scan.pdf", &zip),                          "nested archive not extracted"),
        (stored("data.bin", b"\x1f\x8b\x08\x00 gzip"),      "nested archive not extracted"),
        (stored("crc", &t).with(|r| r.crc ^= 1),            "entry data is corrupt (checksum"),
        (deflated("cut", &t).with(|r| r.data.truncate(40)), "entry data is truncated"),
        (deflated("bad", &t).with(|r| r.data = vec![9; 9]), "entry data is damaged"),
        (stored("short", &t).with(|r| r.size += 10),        "entry data is truncated (shorter"),
        (stored("letter.bin", &docx),                       OK),
        (deflated("letter.docx", &docx),                    OK),
        (stored("ok", b"ok"),                               OK),
    ];
    check(&cases, &ExtractLimits::default());
    assert!(!Path::new(evil).exists());
}

/// A raw deflate stream of `mib` MiB of zeros: one full-flushed block (self-contained, as a
/// full flush resets the window) repeated, then an empty final block.
fn zero_bomb(mib: usize) -> (Vec<u8>, u32) {
    let (zeros, mut block) = (vec![0u8; 1 << 20], Vec::with_capacity(1 << 16));
    let mut compress = Compress::new(Compression::best(), false);
    let status = compress.compress_vec(&zeros, &mut block, FlushCompress::Full);
    assert!(status.is_ok() && compress.total_in() == 1 << 20);
    let mut crc = crc32fast::Hasher::new();
    (0..mib).for_each(|_| crc.update(&zeros));
    let data = [block.repeat(mib), vec![0x03, 0x00]].concat();
    (data, crc.finalize())
}

#[test]
fn a_gibibyte_bomb_fails_fast_without_filling_the_disk() {
    let (data, crc) = zero_bomb(1024);
    assert!(data.len() < 2 << 20, "bomb is {} bytes", data.len());
    let bomb = stored("bomb", b"").with(|r| (r.data, r.method, r.crc) = (data, 8, crc));
    let bomb = bomb.with(|r| r.size = 1 << 30);
    let liar = bomb.clone().with(|r| r.size = 1000);
    let liar = liar.with(|r| r.name = b"liar".into());
    let started = Instant::now();
    let ratio = "entry expands more than 200:1 (possible decompression bomb)";
    let liar_reason = "entry holds more data than it declares";
    let after = stored("after", b"still here");
    let cases = [(bomb, ratio), (liar, liar_reason), (after, OK)];
    check(&cases, &ExtractLimits::default());
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn limits_count_entries_sizes_ratio_and_total_on_real_bytes() {
    let limits = ExtractLimits {
        max_entries: 7,
        max_total_bytes: 2_000,
        max_entry_bytes: 1_000,
        max_ratio: 10,
        ratio_floor_bytes: 100,
    };
    #[rustfmt::skip] // a table reads best aligned, one case a line
    let cases = [
        (stored("a", &[b'a'; 500]),                OK),
        (stored("too-big", &[b'b'; 1_500]),        "entry is larger than the 1000 bytes per-entry"),
        (deflated("compressible", &[0u8; 900]),    "entry expands more than 10:1"),
        (deflated("under-the-floor", &[0u8; 100]), OK),
        (stored("c", &[b'c'; 900]),                OK),
        (stored("d", &[b'd'; 600]),                "archive exceeds the 2000 bytes total limit"),
        (stored("e", b"e"),                        "archive exceeds the 2000 bytes total limit"),
        (stored("f", b"f"),                        "archive has more than 7 files; this one was"),
    ];
    check(&cases, &limits);
}

#[test]
fn duplicate_and_non_ascii_names_are_all_kept() {
    let cp437 = stored("", b"cp437").with(|r| r.name = b"\x82.txt".to_vec());
    let utf8 = stored("Befund_Jürgen_検査.txt", b"utf8").with(|r| r.flags = 0x800);
    let (one, two) = (stored("r.pdf", b"one"), stored("r.pdf", b"two"));
    let cases = [(one, OK), (two, OK), (cp437, OK), (utf8, OK)];
    let got = check(&cases, &ExtractLimits::default());
    let names: Vec<_> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(names, ["r.pdf", "r.pdf", "é.txt", "Befund_Jürgen_検査.txt"]);
    let indexes: Vec<_> = got.iter().map(|g| g.0).collect();
    assert_eq!(indexes, [0, 1, 2, 3], "distinct indexes, never collapsed");
}

#[test]
fn overlapping_truncated_or_foreign_archives_are_refused_whole() {
    let raws = [deflated("a.txt", &[0u8; 10_000]), stored("b.txt", b"b")];
    for aliases in [vec![(0, "a2.txt"), (0, "a3.txt")], vec![(0, "a.txt")]] {
        let r = extract_bytes(&raw_zip(&raws, &aliases), &ExtractLimits::default());
        assert!(matches!(r, Err(ArchiveError::Hostile(_))), "{r:?}");
    }
    let zip = written_zip(&[("a.txt", vec![b'a'; 5_000]), ("b.txt", vec![b'b'])]);
    for bytes in [&zip[..zip.len() * 2 / 3], b"%PDF-1.7 not a zip", b""] {
        let result = extract_bytes(bytes, &ExtractLimits::default());
        assert!(matches!(result, Err(ArchiveError::NotZip(_))), "{result:?}");
    }
    let empty = extract_bytes(&written_zip::<&str, &[u8]>(&[]), &Default::default());
    assert!(empty.expect("an empty zip is readable").is_empty());
}

#[test]
fn an_archive_of_three_thousand_files_in_folders_is_extracted_whole() {
    let name = |i: u32| format!("d{}/doc{i}.txt", i % 7);
    let body = |i: u32| format!("doc {i}").into_bytes();
    // Record 0 is a folder: no document, no file, and the files keep their record numbers.
    let expected: Vec<Got> = (1..=3_000).map(|i| (i, name(i), Ok(body(i)))).collect();
    let mut files = vec![("d1/".to_owned(), Vec::new())];
    files.extend((1..=3_000).map(|i| (name(i), body(i))));
    let started = Instant::now();
    let got = extract_bytes(&written_zip(&files), &ExtractLimits::default());
    eprintln!("3000 entries extracted in {:?}", started.elapsed());
    assert_eq!(got.expect("archive"), expected);
}

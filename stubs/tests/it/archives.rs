//! Archives and samples: every kind opens with the zip crate and holds what it promises.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use docket_stubs::archive::{self, EntryType, HOSTILE_ENTRIES};
use docket_stubs::{ArchiveKind, samples};

type Zip = zip::ZipArchive<std::fs::File>;

fn write(dir: &Path, kind: ArchiveKind, count: u32, seed: u64) -> Zip {
    let path = dir.join(format!("{kind}-{count}-{seed}.zip"));
    archive::write_archive(&path, kind, count, seed).expect("the archive is written");
    zip::ZipArchive::new(std::fs::File::open(&path).expect("open")).expect("a valid zip")
}

fn read(z: &mut Zip, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    z.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}")).read_to_end(&mut out).expect("readable");
    out
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temp dir")
}

#[test]
fn a_mixed_archive_holds_every_type_with_nested_repeated_non_ascii_and_lying_names() {
    let dir = tempdir();
    let mut z = write(dir.path(), ArchiveKind::Mixed, 40, 7);
    assert_eq!(z.len(), 40);
    let planned: HashMap<EntryType, usize> =
        archive::plan(ArchiveKind::Mixed, 40, 7).iter().fold(HashMap::new(), |mut m, e| {
            *m.entry(e.what).or_default() += 1;
            m
        });
    assert_eq!(planned.len(), 14, "every ordinary type: {planned:?}");
    let magic: &[(&str, &[u8])] = &[
        ("检查报告.pdf", b"%PDF-"),
        ("scans/fax/referral.tif", b"II*\0"),
        ("imaging/photos/wound.jpg", b"\xff\xd8\xff"),
        ("2020/labs/ecg.png", b"\x89PNG"),
        ("imaging/xray/chest.jpg", b"\x89PNG"),
        ("correspondence/Arztbrief.docx", b"PK\x03\x04"),
        ("correspondence/letter.rtf", b"{\\rtf1"),
        ("Ωmega notes.html", b"<!DOCTYPE html>"),
        ("ccd/summary.xml", b"<?xml"),
    ];
    for (name, head) in magic {
        assert!(read(&mut z, name).starts_with(head), "{name}");
    }
    assert!(String::from_utf8(read(&mut z, "ccd/summary.xml")).expect("UTF-8").contains("<ClinicalDocument"));
    let oriented = read(&mut z, "imaging/photos/IMG_0412.JPG");
    assert!(oriented.windows(6).any(|w| w == b"Exif\0\0"), "an EXIF segment");
    for name in ["2019/labs/report.txt", "imaging/ct/report.txt", "Röntgenbefund.txt", "notes/history.doc"] {
        let text = String::from_utf8(read(&mut z, name)).expect("UTF-8 text");
        assert!(!text.is_ascii(), "{name} has non-ASCII text");
    }
    let mut docx =
        zip::ZipArchive::new(Cursor::new(read(&mut z, "correspondence/Arztbrief.docx"))).expect("a docx is a zip");
    for part in ["[Content_Types].xml", "_rels/.rels", "word/document.xml"] {
        assert!(docx.by_name(part).is_ok(), "{part}");
    }
    let html = String::from_utf8(read(&mut z, "Ωmega notes.html")).expect("UTF-8");
    assert!(html.contains("<script>") && html.contains("<style>"));
    assert!(read(&mut z, "misc/device-dump.dat").len() >= 1024);
}

#[test]
fn a_fax_tiff_has_every_page_and_decodes() {
    let tiff = samples::tiff(3, 11);
    let u16_at = |o: usize| u16::from_le_bytes([tiff[o], tiff[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([tiff[o], tiff[o + 1], tiff[o + 2], tiff[o + 3]]) as usize;
    let (mut ifd, mut pages) = (u32_at(4), 0);
    let mut first: Option<(usize, usize, usize, usize, usize)> = None; // compression, width, height, offset, len
    while ifd != 0 {
        pages += 1;
        let n = u16_at(ifd);
        let tag = |t: usize| (0..n).map(|i| ifd + 2 + 12 * i).find(|&e| u16_at(e) == t).map(|e| u32_at(e + 8));
        let value = |t| tag(t).expect("tag present");
        if first.is_none() {
            first = Some((value(259) & 0xffff, value(256), value(257), value(273), value(279)));
        }
        ifd = u32_at(ifd + 2 + 12 * n);
    }
    assert_eq!(pages, 3);
    let (compression, width, height, offset, len) = first.expect("a first page");
    if compression == 4 {
        let mut rows = 0;
        fax::decoder::decode_g4(tiff[offset..offset + len].iter().copied(), width as u32, Some(height as u32), |_| {
            rows += 1
        })
        .expect("valid G4");
        assert_eq!(rows, height);
    }
}

#[test]
fn a_hostile_archive_holds_every_hostile_entry() {
    let dir = tempdir();
    let count = HOSTILE_ENTRIES as u32 + 7;
    let mut z = write(dir.path(), ArchiveKind::Hostile, count, 3);
    assert_eq!(z.len(), count as usize);
    let names: Vec<String> = z.file_names().map(|n| n.expect("a name").into_owned()).collect();
    for bad in
        ["../../escape.txt", "a/../../b.txt", "/etc/docket-evil.txt", "..\\..\\windows-escape.txt", "nested/inner.zip"]
    {
        assert!(names.iter().any(|n| n == bad), "{bad} in {names:?}");
    }
    assert!(names.iter().any(|n| n.len() > 255), "a name too long for a file system");
    assert!(z.by_name("links/passwd").expect("symlink entry").is_symlink());
    let bomb = z.by_name("bomb/zeros.txt").expect("bomb");
    assert!(bomb.size() > 1 << 30);
    assert!(bomb.size() / bomb.compressed_size() > 500, "a huge ratio");
    let mut head = vec![0u8; 1 << 20];
    bomb.take(1 << 20).read_exact(&mut head).expect("the bomb inflates");
    assert!(head.iter().all(|&b| b == 0));
    let ratio = z.by_name("bomb/ratio.bin").expect("ratio bomb");
    assert!(ratio.size() >= 64 << 20 && ratio.size() / ratio.compressed_size() > 500);
    drop(ratio);
    let idx = z.index_for_name("secret/encrypted.txt").expect("encrypted entry");
    assert!(z.by_index_raw(idx).expect("raw").encrypted());
    assert!(z.by_name("secret/encrypted.txt").is_err(), "needs a password");
    let png = read(&mut z, "images/broken.png");
    assert!(png.starts_with(b"\x89PNG") && !png.ends_with(b"IEND\xaeB`\x82"), "a cut-off PNG");
    assert!(!read(&mut z, "reports/not-really.pdf").starts_with(b"%PDF"));
    let inner = zip::ZipArchive::new(Cursor::new(read(&mut z, "nested/inner.zip"))).expect("a nested zip");
    assert!(inner.file_names().any(|n| n.expect("a name").contains("..")));
    assert_eq!(archive::plan(ArchiveKind::Hostile, 5, 1).len(), 5, "small archives keep the first hostile entries");
}

#[test]
fn text_and_images_archives_hold_only_their_kind() {
    let dir = tempdir();
    let mut t = write(dir.path(), ArchiveKind::Text, 6, 1);
    for i in 0..t.len() {
        let mut s = String::new();
        t.by_index(i).expect("entry").read_to_string(&mut s).expect("UTF-8 text");
    }
    let mut img = write(dir.path(), ArchiveKind::Images, 6, 1);
    for i in 0..img.len() {
        let mut head = [0u8; 4];
        img.by_index(i).expect("entry").read_exact(&mut head).expect("bytes");
        assert!(matches!(&head, b"\x89PNG" | b"II*\0") || head[..3] == *b"\xff\xd8\xff", "{head:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_archive_bytes() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.zip"), dir.path().join("b.zip"));
    archive::write_archive(&a, ArchiveKind::Mixed, 30, 99).expect("written");
    archive::write_archive(&b, ArchiveKind::Mixed, 30, 99).expect("written");
    assert_eq!(std::fs::read(&a).expect("read"), std::fs::read(&b).expect("read"));
}

#[test]
fn a_3000_entry_mixed_archive_is_written_in_seconds() {
    let dir = tempdir();
    let t0 = Instant::now();
    let z = write(dir.path(), ArchiveKind::Mixed, 3000, 5);
    let took = t0.elapsed();
    assert_eq!(z.len(), 3000);
    eprintln!("3000 entries in {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn sample_pdfs_pass_qpdf_check_when_qpdf_is_installed() {
    let dir = tempdir();
    let Ok(probe) = std::process::Command::new("qpdf").arg("--version").output() else {
        eprintln!("qpdf is not installed; the xref self-check in the unit tests still ran");
        return;
    };
    assert!(probe.status.success());
    for seed in 0..4 {
        let path = dir.path().join(format!("{seed}.pdf"));
        std::fs::write(&path, samples::pdf(1 + seed as u32 % 3, seed)).expect("written");
        let out = std::process::Command::new("qpdf").arg("--check").arg(&path).output().expect("qpdf runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

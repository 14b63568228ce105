//! The `mixed`, `text` and `images` plans, and the bytes of every ordinary entry type.

use std::borrow::Cow;
use std::collections::HashSet;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::{Content, EntryType, PlannedEntry};
use crate::samples::{self, cached};
use crate::util::rng;

use EntryType as T;

/// One of each type, with the names the brief asks for; a mixed archive of 16
/// or more entries holds them all.
const SHOWCASE: &[(&str, EntryType)] = &[
    ("2019/labs/report.txt", T::Text),
    ("imaging/ct/report.txt", T::Text),
    ("Röntgenbefund.txt", T::Text),
    ("检查报告.pdf", T::Pdf),
    ("Ωmega notes.html", T::Html),
    ("scans/fax/referral.tif", T::Tiff),
    ("imaging/photos/wound.jpg", T::Jpeg),
    ("imaging/photos/IMG_0412.JPG", T::JpegOriented),
    ("2020/labs/ecg.png", T::Png),
    ("ccd/summary.xml", T::Cda),
    ("correspondence/letter.rtf", T::Rtf),
    ("correspondence/Arztbrief.docx", T::Docx),
    ("misc/device-dump.dat", T::Junk),
    ("misc/results.xlsx", T::JunkXlsx),
    ("imaging/xray/chest.jpg", T::PngNamedJpg),
    ("notes/history.doc", T::TextNamedDoc),
];

/// How often each type turns up beyond the showcase (roughly real proportions).
const WEIGHTS: &[(EntryType, u32)] = &[
    (T::Pdf, 20),
    (T::Tiff, 12),
    (T::Jpeg, 9),
    (T::JpegOriented, 3),
    (T::Png, 7),
    (T::Text, 14),
    (T::Html, 8),
    (T::Cda, 8),
    (T::Rtf, 5),
    (T::Docx, 9),
    (T::Junk, 2),
    (T::JunkXlsx, 1),
    (T::PngNamedJpg, 1),
    (T::TextNamedDoc, 1),
];

const FOLDERS: &[&str] = &[
    "",
    "2019/labs/",
    "2020/labs/",
    "2021/",
    "imaging/ct/",
    "imaging/xray/",
    "imaging/mri/2022/",
    "correspondence/",
    "scans/fax/",
    "notes/",
    "Überweisungen/",
    "病历/2018/",
    "ccd/",
];

fn names(what: EntryType) -> (&'static [&'static str], &'static [&'static str]) {
    match what {
        T::Pdf => (
            &["report", "discharge-summary", "referral", "lab-results", "consent form", "检查报告", "Befund"],
            &["pdf", "PDF"],
        ),
        T::Tiff => (&["fax", "scan", "referral-fax", "Überweisung", "page-scan"], &["tif", "tiff", "TIF"]),
        T::Jpeg | T::CorruptJpeg => (&["photo", "wound", "IMG_{n}", "dermatology"], &["jpg", "jpeg", "JPG"]),
        T::JpegOriented => (&["IMG_{n}", "phone-photo"], &["jpg", "JPG"]),
        T::Png | T::CorruptPng => (&["screenshot", "ecg", "chart", "growth-curve"], &["png"]),
        T::Html => (&["report", "Ωmega notes", "portal-export", "summary"], &["html", "htm"]),
        T::Cda => (&["ccd", "summary", "CDA_{n}", "continuity-of-care"], &["xml"]),
        T::Rtf => (&["letter", "report", "Arztbrief"], &["rtf"]),
        T::Docx => (&["letter", "report", "Arztbrief", "discharge"], &["docx"]),
        T::Junk => (&["device-dump", "blob", "export"], &["dat", "bin"]),
        T::JunkXlsx => (&["results", "spreadsheet"], &["xlsx"]),
        T::PngNamedJpg => (&["chest", "xray"], &["jpg"]),
        T::TextNamedDoc => (&["history", "old-letter"], &["doc"]),
        _ => (&["report", "notes", "Röntgenbefund", "Ωmega notes", "message", "результаты"], &["txt", "TXT"]),
    }
}

/// A fresh name for an entry of `what`, unique in `taken`.
fn name_for(r: &mut impl Rng, what: EntryType, taken: &mut HashSet<String>) -> String {
    let (bases, exts) = names(what);
    let pick = |list: &[&'static str], r: &mut _| *list.choose(r).expect("name lists are not empty");
    let folder = pick(FOLDERS, r);
    let base = pick(bases, r).replace("{n}", &r.random_range(1000..9999).to_string());
    let ext = pick(exts, r);
    let mut name = format!("{folder}{base}.{ext}");
    let mut k = 2;
    while !taken.insert(name.clone()) {
        name = format!("{folder}{base}-{k}.{ext}");
        k += 1;
    }
    name
}

/// `count` entries appended to `entries` (whose names are kept): the showcase
/// first, in a seeded order, then types by weight; then all are shuffled.
pub(super) fn plan(count: usize, seed: u64, mut entries: Vec<PlannedEntry>) -> Vec<PlannedEntry> {
    let mut r = rng(seed);
    let mut taken: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    let mut showcase = SHOWCASE.to_vec();
    showcase.shuffle(&mut r);
    for &(name, what) in showcase.iter().take(count) {
        taken.insert(name.to_owned());
        entries.push(PlannedEntry { name: name.to_owned(), what });
    }
    for _ in showcase.len().min(count)..count {
        let what = WEIGHTS.choose_weighted(&mut r, |w| w.1).expect("weights are positive").0;
        let name = name_for(&mut r, what, &mut taken);
        entries.push(PlannedEntry { name, what });
    }
    entries.shuffle(&mut r);
    entries
}

/// `count` entries of the given types only, chosen evenly.
pub(super) fn plan_only(count: usize, seed: u64, types: &[EntryType]) -> Vec<PlannedEntry> {
    let mut r = rng(seed);
    let mut taken = HashSet::new();
    (0..count)
        .map(|i| {
            let what = types[i % types.len()];
            PlannedEntry { name: name_for(&mut r, what, &mut taken), what }
        })
        .collect()
}

/// The bytes of an ordinary entry; `s` is the entry's own seed.
pub(super) fn render(what: EntryType, s: u64) -> Content {
    let file = |data: Vec<u8>| Content::File { data: Cow::Owned(data), deflate: true };
    let image = |data: &'static [u8]| Content::File { data: Cow::Borrowed(data), deflate: false };
    let v = (s >> 16) as usize;
    match what {
        T::Pdf => file(samples::pdf(1 + (s % 3) as u32, s)),
        T::Tiff => file(samples::tiff(1 + (s % 4) as u32, s)),
        T::Jpeg => image(cached::jpeg(v)),
        T::JpegOriented => image(cached::jpeg_oriented(v)),
        T::Png | T::PngNamedJpg => image(cached::png(v)),
        T::HugePng => image(cached::huge_png()),
        T::Html => file(samples::html(s)),
        T::Cda => file(samples::cda(s)),
        T::Rtf => file(samples::rtf(s)),
        // Already a zip inside: stored, as archivers usually do.
        T::Docx => Content::File { data: Cow::Owned(samples::docx(s)), deflate: false },
        T::Junk => Content::File { data: Cow::Owned(samples::junk(1024 + (s % 60_000) as usize, s)), deflate: false },
        T::JunkXlsx => {
            Content::File { data: Cow::Owned(samples::junk(2048 + (s % 16_000) as usize, s)), deflate: false }
        }
        _ => file(samples::text(s)),
    }
}

//! The hostile entries: what a safe extractor must refuse or contain (see the README's table).

use std::borrow::Cow;

use super::{Content, EntryType, PlannedEntry, bomb};
use crate::samples::{self, cached};

use EntryType as T;

/// Every hostile entry, in the order a hostile archive holds them.
fn all() -> Vec<PlannedEntry> {
    let long = format!("long/{}.txt", "very-long-name-".repeat(20));
    [
        ("../../escape.txt".to_owned(), T::DotDotEscape),
        ("a/../../b.txt".to_owned(), T::InnerDotDotEscape),
        ("/etc/docket-evil.txt".to_owned(), T::AbsolutePath),
        ("..\\..\\windows-escape.txt".to_owned(), T::BackslashEscape),
        ("links/passwd".to_owned(), T::Symlink),
        ("bomb/zeros.txt".to_owned(), T::ZerosBomb),
        ("bomb/ratio.bin".to_owned(), T::RatioBomb),
        ("images/broken.png".to_owned(), T::CorruptPng),
        ("images/broken.jpg".to_owned(), T::CorruptJpeg),
        ("reports/not-really.pdf".to_owned(), T::TextNamedPdf),
        ("secret/encrypted.txt".to_owned(), T::Encrypted),
        ("nested/inner.zip".to_owned(), T::NestedZip),
        (long, T::LongName),
    ]
    .into_iter()
    .map(|(name, what)| PlannedEntry { name, what })
    .collect()
}

/// How many hostile entries there are: a hostile archive needs at least this
/// many entries to hold every one.
pub const HOSTILE_ENTRIES: usize = 13;

/// The first `count` hostile entries.
pub(super) fn plan(count: usize) -> Vec<PlannedEntry> {
    let mut v = all();
    v.truncate(count);
    v
}

/// The bytes of a hostile entry, or `None` for an ordinary type.
pub(super) fn render(entry: &PlannedEntry, s: u64) -> Option<Content> {
    let text = |msg: &str| Content::File { data: Cow::Owned(msg.as_bytes().to_vec()), deflate: true };
    Some(match entry.what {
        T::DotDotEscape | T::InnerDotDotEscape | T::AbsolutePath | T::BackslashEscape => {
            text("If this file exists outside the extraction folder, the extractor trusted an entry name.\n")
        }
        T::Symlink => Content::Symlink("/etc/passwd"),
        T::ZerosBomb => Content::Raw(bomb::zip_bomb(&entry.name, (1 << 30) + 1).0),
        T::RatioBomb => Content::Raw(bomb::zip_bomb(&entry.name, 64 << 20).0),
        T::CorruptPng => {
            Content::File { data: Cow::Owned(samples::truncated(cached::png(0).to_vec(), 60)), deflate: false }
        }
        T::CorruptJpeg => {
            Content::File { data: Cow::Owned(samples::truncated(cached::jpeg(0).to_vec(), 45)), deflate: false }
        }
        T::TextNamedPdf => Content::File { data: Cow::Owned(samples::text(s)), deflate: true },
        T::Encrypted => Content::Encrypted(samples::text(s)),
        T::NestedZip => {
            let report = samples::text(s);
            let pdf = samples::pdf(1, s);
            let escape = b"A nested archive can hide a climbing name too.\n";
            let inner = samples::zip_of(&[
                ("inner/report.txt", report.as_slice()),
                ("inner/summary.pdf", pdf.as_slice()),
                ("inner/../../nested-escape.txt", &escape[..]),
            ]);
            Content::File { data: Cow::Owned(inner), deflate: false }
        }
        T::LongName => text("This file's name is 300 characters long.\n"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_matches_the_list() {
        assert_eq!(all().len(), HOSTILE_ENTRIES);
        assert!(all().iter().all(|e| render(e, 1).is_some()));
    }
}

//! Storage keys: `<patient>/<run>/originals/<doc>-<name>` and
//! `<patient>/<run>/pdf/<doc>-<name>.pdf`. The patient ID is validated at
//! intake (ASCII letters, digits, `-`, `_`), the name segment was sanitised
//! by fetch, and the document number makes every key unique.

use uuid::Uuid;

pub fn original(patient_id: &str, run: Uuid, doc: i32, key_name: &str) -> String {
    format!("{patient_id}/{run}/originals/{doc:04}-{key_name}")
}

pub fn pdf(patient_id: &str, run: Uuid, doc: i32, key_name: &str) -> String {
    let stem = key_name.strip_suffix(".pdf").unwrap_or(key_name);
    format!("{patient_id}/{run}/pdf/{doc:04}-{stem}.pdf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_per_document_and_end_in_pdf() {
        let run = Uuid::nil();
        assert_eq!(pdf("P1", run, 7, "scan.pdf"), format!("P1/{run}/pdf/0007-scan.pdf"));
        assert_eq!(pdf("P1", run, 8, "notes.txt"), format!("P1/{run}/pdf/0008-notes.txt.pdf"));
        assert_ne!(original("P1", run, 1, "a.txt"), original("P1", run, 2, "a.txt"));
    }
}

//! The message types, one per queue. Messages are small and carry IDs only:
//! bytes travel through scratch storage, names come from the database when
//! a call needs them, and nothing here can hold a patient's name.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::run::Step;

/// `patients`: a request for a patient's records, as anyone may publish it:
/// `{"patient_id": "P1"}`, optionally with `"batch"` (an operator's name for
/// a set of requests; `default` when absent) and `"priority"` (`urgent`,
/// `normal` when absent, or `bulk`). Unknown fields are refused, so that a
/// misspelt `"priority"` is parked with a reason instead of quietly ignored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRequest {
    pub patient_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// Text, so that a wrong value is parked with a reason that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// `docket.store`: put a document's original, or its PDF, into storage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StoreStep {
    /// One original (the form before originals travelled in chunks; still
    /// handled, for messages published by an older fetch stage).
    Original { run_id: Uuid, doc: i32 },
    /// Up to [`ORIGINALS_PER_MESSAGE`] originals of one run: an archive of
    /// 3,000 files is about a hundred messages and updates, not 3,000.
    Originals { run_id: Uuid, docs: Vec<i32> },
    /// One document's conversion (the form before conversions travelled in
    /// [`ConvertJob`]s of several; still handled).
    Pdf { run_id: Uuid, doc: i32, outcome: Conversion },
    /// What came of each document of one [`ConvertJob`], in one message.
    Pdfs { run_id: Uuid, results: Vec<(i32, Conversion)> },
}

/// Originals handed to the store stage in one message at most.
pub const ORIGINALS_PER_MESSAGE: usize = 32;

/// `docket.convert`: convert documents of one run held in scratch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvertJob {
    pub run_id: Uuid,
    pub doc: i32,
    pub scratch_key: String,
    /// The extension of the document's name: a hint only, since the content
    /// decides the type, and the name itself might name the patient.
    pub ext: String,
    /// Further documents of the same run, converted one after another in the
    /// same slot: a large archive's documents travel several to a message
    /// (`CONVERT_WINDOW` / 16, four by default, at most eight), so the
    /// broker, the store stage and the database see that many times fewer
    /// messages and updates. Absent in the messages of older dispatchers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<ConvertDoc>,
}

/// One more document of a [`ConvertJob`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConvertDoc {
    pub doc: i32,
    pub scratch_key: String,
    pub ext: String,
}

/// Documents of one run in one [`ConvertJob`] at most (urgent runs' go one
/// to a message, to spread over the free slots).
pub const CONVERSIONS_PER_MESSAGE: usize = 8;

impl ConvertJob {
    /// A job of one document.
    pub fn single(run_id: Uuid, doc: ConvertDoc) -> ConvertJob {
        ConvertJob { run_id, doc: doc.doc, scratch_key: doc.scratch_key, ext: doc.ext, then: Vec::new() }
    }

    /// Every document of the job, in order.
    pub fn docs(&self) -> Vec<ConvertDoc> {
        let first = ConvertDoc { doc: self.doc, scratch_key: self.scratch_key.clone(), ext: self.ext.clone() };
        std::iter::once(first).chain(self.then.iter().cloned()).collect()
    }
}

/// What a conversion came to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Conversion {
    Converted { scratch_key: String, pages: u32, kind: String },
    Failed { kind: String, reason: String },
}

/// Where bytes in flight wait, per run.
pub mod scratch {
    use uuid::Uuid;

    pub fn run_prefix(run: Uuid) -> String {
        format!("runs/{run}")
    }
    pub fn archive(run: Uuid) -> String {
        format!("runs/{run}/archive.zip")
    }
    pub fn original(run: Uuid, doc: i32) -> String {
        format!("runs/{run}/files/{doc}")
    }
    /// The document's name inside its archive, beside its bytes: the
    /// converter prints it on text pages without a message carrying it.
    pub fn name(run: Uuid, doc: i32) -> String {
        format!("runs/{run}/files/{doc}.name")
    }
    pub fn pdf(run: Uuid, doc: i32) -> String {
        format!("runs/{run}/pdf/{doc}.pdf")
    }
}

/// The valid form of a patient ID: 1 to 64 ASCII letters, digits, `-`, `_`.
pub fn valid_patient_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

//! Who each admitted API request was about, and when it arrived: a test of
//! pause and cancel checks that no call for a stopped batch arrives after
//! the stop. DocEx knows a patient only by name (the search's last name; a
//! job's status and archive are the search's), TaskTracker by patient ID.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::util::lock;

/// One request that reached an API handler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    /// Milliseconds since the Unix epoch (the test's clock too).
    pub at_ms: u64,
    pub endpoint: String,
    /// DocEx: the patient's last name; TaskTracker: the patient ID.
    pub subject: String,
}

#[derive(Default)]
pub(crate) struct Arrivals {
    log: Mutex<Vec<Arrival>>,
    /// Job or task ID → its subject.
    subjects: Mutex<HashMap<String, String>>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Arrivals {
    pub fn record(&self, at_ms: u64, endpoint: &str, subject: &str) {
        lock(&self.log).push(Arrival { at_ms, endpoint: endpoint.to_owned(), subject: subject.to_owned() });
    }

    /// Remembers whom a job or task is about, for its later requests.
    pub fn remember(&self, id: &str, subject: &str) {
        lock(&self.subjects).insert(id.to_owned(), subject.to_owned());
    }

    pub fn subject_of(&self, id: &str) -> String {
        lock(&self.subjects).get(id).cloned().unwrap_or_else(|| format!("unknown {id}"))
    }

    pub fn snapshot(&self) -> Vec<Arrival> {
        lock(&self.log).clone()
    }
}

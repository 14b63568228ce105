//! TaskTracker's data: tasks, their status and reports, and the remembered idempotency keys.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::idempotency::Keys;

/// A task's documents status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    New,
    DocumentsFound,
    DocumentsNotFound,
}

/// A report as the API takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Text for staff (plain text or Markdown).
    pub summary: String,
    /// Every document converted and stored.
    pub documents: Vec<ReportDocument>,
    /// Every document that could not be converted, with why.
    pub failures: Vec<ReportFailure>,
}

/// One converted document in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDocument {
    /// The document's path inside the archive.
    pub name: String,
    /// Storage key of its PDF.
    pub pdf: String,
    /// Page count, at least 1, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
}

/// One document that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFailure {
    pub name: String,
    pub reason: String,
}

/// A task, as `GET /admin/tasks` and [`crate::TaskTrackerHandle::tasks`] show it.
///
/// The API's `GET /v1/tasks/{id}` shows the same minus the names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub patient_id: String,
    pub status: TaskStatus,
    pub reports: Vec<Report>,
    /// Stored as the real tracker does; shown to tests, never logged.
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

/// The API's view of a task (no names).
#[derive(Serialize)]
pub(crate) struct TaskView<'a> {
    pub task_id: &'a str,
    pub patient_id: &'a str,
    pub status: TaskStatus,
    pub reports: &'a [Report],
}

impl<'a> From<&'a Task> for TaskView<'a> {
    fn from(t: &'a Task) -> Self {
        TaskView { task_id: &t.task_id, patient_id: &t.patient_id, status: t.status, reports: &t.reports }
    }
}

/// Every task in creation order, and the keys that created things.
pub(crate) struct Tracker {
    pub tasks: HashMap<String, Task>,
    pub order: Vec<String>,
    task_keys: Keys<String, String>,
    /// Report keys are scoped to their task.
    report_keys: Keys<(String, String), String>,
    pub replays: u64,
    pub reports: u64,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker {
            tasks: HashMap::new(),
            order: Vec::new(),
            task_keys: Keys::new(),
            report_keys: Keys::new(),
            replays: 0,
            reports: 0,
        }
    }

    /// Creates a task, or finds the one an earlier request with `key` created
    /// (then the bool is false: nothing new).
    pub fn create(
        &mut self,
        patient_id: String,
        first: String,
        last: String,
        key: Option<String>,
        now: Instant,
    ) -> (String, bool) {
        if let Some(id) = key.as_ref().and_then(|k| self.task_keys.get(k, now)) {
            self.replays += 1;
            return (id, false);
        }
        let task_id = uuid::Uuid::new_v4().to_string();
        let task = Task {
            task_id: task_id.clone(),
            patient_id,
            status: TaskStatus::New,
            reports: Vec::new(),
            first_name: first,
            last_name: last,
        };
        self.tasks.insert(task_id.clone(), task);
        self.order.push(task_id.clone());
        if let Some(k) = key {
            self.task_keys.insert(k, task_id.clone(), now);
        }
        (task_id, true)
    }

    /// Appends a report, or finds the one this task's `key` already appended.
    /// `None`: no such task.
    pub fn add_report(
        &mut self,
        task_id: &str,
        report: Report,
        key: Option<String>,
        now: Instant,
    ) -> Option<(String, bool)> {
        let scoped = key.map(|k| (task_id.to_owned(), k));
        if let Some(id) = scoped.as_ref().and_then(|k| self.report_keys.get(k, now)) {
            self.replays += 1;
            return Some((id, false));
        }
        let task = self.tasks.get_mut(task_id)?;
        task.reports.push(report);
        self.reports += 1;
        let report_id = uuid::Uuid::new_v4().to_string();
        if let Some(k) = scoped {
            self.report_keys.insert(k, report_id.clone(), now);
        }
        Some((report_id, true))
    }

    /// Every task in creation order.
    pub fn list(&self) -> Vec<Task> {
        self.order.iter().filter_map(|id| self.tasks.get(id).cloned()).collect()
    }
}

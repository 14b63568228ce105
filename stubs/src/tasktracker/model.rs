//! TaskTracker's data: tasks, their status and reports, and the remembered idempotency keys.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::idempotency::Keys;
use crate::journal::{Journal, instant, wall};

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

/// What the tracker journals: every change, replayed in order at start.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Task { task: Task, key: Option<String>, at_ms: u64 },
    Status { task_id: String, status: TaskStatus },
    Report { task_id: String, report: Report, report_id: String, key: Option<String>, at_ms: u64 },
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
    journal: Journal,
}

impl Tracker {
    pub fn new(journal: Journal) -> Self {
        Tracker {
            tasks: HashMap::new(),
            order: Vec::new(),
            task_keys: Keys::new(),
            report_keys: Keys::new(),
            replays: 0,
            reports: 0,
            journal,
        }
    }

    /// The state a journal's events describe, journalling on into `journal`.
    pub fn replay(events: Vec<Event>, journal: Journal) -> Self {
        let mut t = Tracker::new(Journal::none());
        for e in events {
            t.apply(e);
        }
        t.journal = journal;
        t
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Task { task, key, at_ms } => {
                if let Some(k) = key {
                    self.task_keys.insert(k, task.task_id.clone(), instant(at_ms));
                }
                self.order.push(task.task_id.clone());
                self.tasks.insert(task.task_id.clone(), task);
            }
            Event::Status { task_id, status } => {
                if let Some(t) = self.tasks.get_mut(&task_id) {
                    t.status = status;
                }
            }
            Event::Report { task_id, report, report_id, key, at_ms } => {
                if let Some(k) = key {
                    self.report_keys.insert((task_id.clone(), k), report_id, instant(at_ms));
                }
                if let Some(t) = self.tasks.get_mut(&task_id) {
                    t.reports.push(report);
                    self.reports += 1;
                }
            }
        }
    }

    /// Sets a task's status; false when there is no such task.
    pub fn set_status(&mut self, task_id: &str, status: TaskStatus) -> bool {
        let Some(task) = self.tasks.get_mut(task_id) else { return false };
        task.status = status;
        self.journal.append(&Event::Status { task_id: task_id.to_owned(), status });
        true
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
        self.journal.append(&Event::Task { task: task.clone(), key: key.clone(), at_ms: wall(now) });
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
        let report_id = uuid::Uuid::new_v4().to_string();
        self.journal.append(&Event::Report {
            task_id: task_id.to_owned(),
            report: report.clone(),
            report_id: report_id.clone(),
            key: scoped.as_ref().map(|(_, k)| k.clone()),
            at_ms: wall(now),
        });
        task.reports.push(report);
        self.reports += 1;
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

//! The run: one patient request's life from intake to report. Its states,
//! its row, the message that moves it, and, in the submodules, every move it
//! can make ([`edges`]), the waiting rooms that order the scarce steps
//! ([`rooms`]), and the operator's controls ([`control`], [`progress`]).
//!
//! Every move of the main chain is one function in [`edges`] with the `seq`
//! guard inside: a handler says which edge it takes, never how.

pub mod control;
pub mod documents;
pub mod edges;
pub mod guard;
pub mod progress;
pub mod rooms;
pub mod wakeup;

pub use guard::Guard;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tracing::debug;
use uuid::Uuid;

use crate::{
    broker::topology::queues,
    error::{StageError, StageResult},
};

pub const FOUND: &str = "DOCUMENTS_FOUND";
pub const NOT_FOUND: &str = "DOCUMENTS_NOT_FOUND";

/// The states of a run's main chain, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting in the task room for its TaskTracker task.
    Task,
    /// Waiting in the search room for a DocEx job slot and a search slot.
    Search,
    /// Polling the DocEx job.
    Poll,
    /// Downloading and extracting the archive.
    Fetch,
    /// Documents being stored and converted.
    Documents,
    /// Status and report going to the database and TaskTracker.
    Report,
    Done,
    /// Could not go on (the patient's row vanished or became unusable).
    Abandoned,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Task,
        State::Search,
        State::Poll,
        State::Fetch,
        State::Documents,
        State::Report,
        State::Done,
        State::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Task => "task",
            State::Search => "search",
            State::Poll => "poll",
            State::Fetch => "fetch",
            State::Documents => "documents",
            State::Report => "report",
            State::Done => "done",
            State::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The queue of the message that moves a run in this state: a waiting
    /// room's wake-up queue, or the step's work queue. A run among its
    /// documents has one message per document instead, and a finished run none.
    pub fn queue(self) -> Option<&'static str> {
        Some(match self {
            State::Task => queues::TASK,
            State::Search => queues::SEARCH,
            State::Poll => queues::STATUS,
            State::Fetch => queues::FETCH,
            State::Report => queues::REPORT,
            State::Documents | State::Done | State::Abandoned => return None,
        })
    }

    /// Runs in these states wait in a room (PostgreSQL orders them); the
    /// messages on their queue are wake-ups, not the run's own step.
    pub fn is_room(self) -> bool {
        matches!(self, State::Task | State::Search)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, State::Done | State::Abandoned)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for State {
    type Error = String;
    fn try_from(text: String) -> Result<State, String> {
        State::parse(&text).ok_or_else(|| format!("unknown run state {text:?}"))
    }
}

/// What goes first wherever work waits: urgent before normal before bulk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Urgent,
    #[default]
    Normal,
    Bulk,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Bulk];

    /// The rank stored in `docket.runs.priority`: lower goes first.
    pub fn rank(self) -> i16 {
        self as i16
    }

    pub fn from_rank(rank: i16) -> Priority {
        match rank {
            i16::MIN..=0 => Priority::Urgent,
            1 => Priority::Normal,
            _ => Priority::Bulk,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    pub fn parse(text: &str) -> Result<Priority, String> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("priority must be urgent, normal or bulk, not {text:?}"))
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The batch of a request that names none.
pub const DEFAULT_BATCH: &str = "default";

/// Why a batch name cannot be used, or `None`: 1 to 64 ASCII letters,
/// digits, `-`, `_`, `.` or `:` (it becomes a metric label, so it stays plain).
pub fn invalid_batch(name: &str) -> Option<String> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    (!ok).then(|| "batch must be 1 to 64 characters of ASCII letters, digits, '-', '_', '.' and ':'".to_string())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Run {
    pub run_id: Uuid,
    pub patient_id: String,
    #[sqlx(try_from = "String")]
    pub state: State,
    pub seq: i64,
    pub requests: i32,
    pub batch: String,
    pub priority: i16,
    pub task_id: Option<String>,
    pub search_attempt: i32,
    pub job_id: Option<String>,
    pub holds_job_slot: bool,
    pub polls: i32,
    /// When the current DocEx job was started (None before a search, and
    /// for a job started before this column existed).
    pub job_started_at: Option<DateTime<Utc>>,
    pub archive_url: Option<String>,
    pub archive_fetched: bool,
    pub docs_total: Option<i32>,
    pub docs_done: i32,
    pub docs_failed: i32,
    pub documents_status: Option<String>,
    pub tt_status_set: bool,
    pub report_id: Option<String>,
    pub last_error: Option<String>,
    pub parked: bool,
    pub attempts: i32,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancelled_in: Option<String>,
    /// Whether a pause covers the run now (computed when loaded by [`load`]).
    #[sqlx(default)]
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    /// How long ago the current DocEx job was started, by this host's clock
    /// against the database's (None before a search).
    pub fn job_age(&self) -> Option<std::time::Duration> {
        self.job_started_at.map(|at| (Utc::now() - at).to_std().unwrap_or_default())
    }

    /// The idempotency key of the run's TaskTracker task: the task room and
    /// the report of a run cancelled before its task use the same one.
    pub fn task_key(&self) -> String {
        format!("docket-{}-task", self.run_id)
    }

    /// The key of the run's current DocEx search (a new one per attempt).
    pub fn search_key(&self) -> String {
        format!("docket-{}-search-{}", self.run_id, self.search_attempt)
    }

    pub fn report_key(&self) -> String {
        format!("docket-{}-report", self.run_id)
    }

    pub fn priority(&self) -> Priority {
        Priority::from_rank(self.priority)
    }

    pub fn step(&self) -> Step {
        Step { run_id: self.run_id, seq: self.seq }
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled_at.is_some()
    }
}

/// The message that moves a run's main chain one step: the run and the
/// `seq` it had when the message was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub run_id: Uuid,
    pub seq: i64,
}

/// The run's columns plus whether a pause covers it.
pub(crate) const SELECT_RUN: &str = "SELECT r.*, docket.paused(r.batch, r.patient_id) AS paused FROM docket.runs r";

pub async fn load(pool: &PgPool, run_id: Uuid) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT_RUN} WHERE r.run_id = $1")).bind(run_id).fetch_optional(pool).await
}

/// The run if `step` is still its current step in `state`; `None` when the
/// message is stale (the run moved on, or a duplicate got there first),
/// which the caller acks and forgets. A paused run's message is dropped
/// ([`StageError::Stopped`]): the run keeps its step, and resuming sends it again.
pub async fn current(pool: &PgPool, step: Step, state: State) -> StageResult<Option<Run>> {
    let Some(run) = load(pool, step.run_id).await? else {
        return Err(StageError::permanent(format!("no run {}", step.run_id)));
    };
    if run.state != state || run.seq != step.seq {
        debug!(run_state = %run.state, run_seq = run.seq, msg_seq = step.seq, "stale message; dropping");
        return Ok(None);
    }
    if run.paused {
        return Err(StageError::Stopped(format!("the run is paused at its {state} step")));
    }
    Ok(Some(run))
}

/// Records what happened, for `docket status`. Never names a patient.
pub async fn event(conn: &mut PgConnection, run_id: Uuid, stage: &str, event: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO docket.run_events (run_id, stage, event) VALUES ($1, $2, $3)")
        .bind(run_id)
        .bind(stage)
        .bind(event)
        .execute(conn)
        .await?;
    Ok(())
}

/// A patient's names, read at the moment a call needs them.
pub struct Names {
    pub first: String,
    pub last: String,
}

pub async fn names(pool: &PgPool, patient_id: &str) -> Result<Option<Names>, sqlx::Error> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT first_name, last_name FROM patients WHERE patient_id = $1")
            .bind(patient_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(first, last)| Names { first, last }))
}

/// The patient's names if the row can be used now.
pub async fn usable_names(pool: &PgPool, patient_id: &str) -> Result<Option<Names>, sqlx::Error> {
    Ok(names(pool, patient_id).await?.filter(|n| unusable(n).is_none()))
}

/// Why a patient's row cannot be used, or `None` when it can. The reason
/// names the field, never its value.
pub fn unusable(names: &Names) -> Option<&'static str> {
    let check = |v: &str| {
        if v.trim().is_empty() {
            Some("is empty")
        } else if v.chars().count() > 200 {
            Some("is longer than 200 characters")
        } else {
            None
        }
    };
    match (check(&names.first), check(&names.last)) {
        (Some("is empty"), _) => Some("first_name is empty"),
        (Some(_), _) => Some("first_name is longer than 200 characters"),
        (_, Some("is empty")) => Some("last_name is empty"),
        (_, Some(_)) => Some("last_name is longer than 200 characters"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_priorities_read_back_what_they_write() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::from_rank(p.rank()), p);
            assert_eq!(Priority::parse(p.as_str()), Ok(p));
        }
        assert!(Priority::Urgent < Priority::Normal && Priority::Normal < Priority::Bulk);
        assert!(Priority::parse("asap").is_err());
    }

    #[test]
    fn batch_names_are_plain_labels() {
        assert_eq!(invalid_batch("cardiology-2026-12"), None);
        assert_eq!(invalid_batch("team.a:night_1"), None);
        assert!(invalid_batch("").is_some());
        assert!(invalid_batch("has space").is_some());
        assert!(invalid_batch(&"x".repeat(65)).is_some());
        assert!(invalid_batch("naïve").is_some());
    }
}

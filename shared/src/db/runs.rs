//! The run model: a patient's request from intake to report, its states and
//! the guard every step uses to recognise a stale or duplicated message.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tracing::debug;
use uuid::Uuid;

use crate::error::{StageError, StageResult};

/// The states of a run's main chain, in order.
pub mod state {
    /// Waiting for its TaskTracker task.
    pub const TASK: &str = "task";
    /// Waiting to start (or restart) a DocEx search.
    pub const SEARCH: &str = "search";
    /// Polling the DocEx job.
    pub const POLL: &str = "poll";
    /// Downloading and extracting the archive.
    pub const FETCH: &str = "fetch";
    /// Documents being stored and converted.
    pub const DOCUMENTS: &str = "documents";
    /// Status and report going to the database and TaskTracker.
    pub const REPORT: &str = "report";
    pub const DONE: &str = "done";
    /// Could not go on (the patient's row vanished or became unusable).
    pub const ABANDONED: &str = "abandoned";
}

pub const FOUND: &str = "DOCUMENTS_FOUND";
pub const NOT_FOUND: &str = "DOCUMENTS_NOT_FOUND";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Run {
    pub run_id: Uuid,
    pub patient_id: String,
    pub state: String,
    pub seq: i64,
    pub requests: i32,
    pub task_id: Option<String>,
    pub search_attempt: i32,
    pub job_id: Option<String>,
    pub holds_job_slot: bool,
    pub polls: i32,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The message that moves a run's main chain one step: the run and the
/// `seq` it had when the message was sent.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub run_id: Uuid,
    pub seq: i64,
}

pub async fn load(pool: &PgPool, run_id: Uuid) -> Result<Option<Run>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM docket.runs WHERE run_id = $1").bind(run_id).fetch_optional(pool).await
}

/// The run if `step` is still its current step in `state`; `None` when the
/// message is stale (the run moved on, or a duplicate got there first),
/// which the caller acks and forgets.
pub async fn current(pool: &PgPool, step: Step, state: &str) -> StageResult<Option<Run>> {
    let Some(run) = load(pool, step.run_id).await? else {
        return Err(StageError::permanent(format!("no run {}", step.run_id)));
    };
    if run.state != state || run.seq != step.seq {
        debug!(run_state = %run.state, run_seq = run.seq, msg_seq = step.seq, "stale message; dropping");
        return Ok(None);
    }
    Ok(Some(run))
}

/// Moves the run from `from` (at `seq`) to `to`, bumping `seq`. False when
/// someone else moved it first (then the caller must not send anything).
pub async fn advance(conn: &mut PgConnection, step: Step, from: &str, to: &str) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE docket.runs SET state = $3, seq = seq + 1, parked = false, updated_at = now(), last_error = NULL
         WHERE run_id = $1 AND seq = $2 AND state = $4",
    )
    .bind(step.run_id)
    .bind(step.seq)
    .bind(to)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The queue of the step message for a run in `state`, if its state has one
/// (a run among its documents has one message per document instead).
pub fn step_queue(state: &str) -> Option<&'static str> {
    use crate::broker::topology::queues;
    Some(match state {
        state::TASK => queues::TASK,
        state::SEARCH => queues::SEARCH,
        state::POLL => queues::STATUS,
        state::FETCH => queues::FETCH,
        state::REPORT => queues::REPORT,
        _ => return None,
    })
}

/// Marks the run of a parked message: it waits for an operator (or a new
/// request for the patient) and gives its DocEx job slot back meanwhile.
pub async fn mark_parked(pool: &PgPool, run_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE docket.runs SET parked = true, holds_job_slot = false, last_error = $2, updated_at = now()
         WHERE run_id = $1 AND finished_at IS NULL",
    )
    .bind(run_id)
    .bind(format!("parked: {reason}"))
    .execute(pool)
    .await?;
    Ok(())
}

/// The step a message for the run's next state carries.
pub fn next(step: Step) -> Step {
    Step { run_id: step.run_id, seq: step.seq + 1 }
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

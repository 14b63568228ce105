//! The operator's controls: pause, resume and cancel, for one patient, one
//! batch, or everything. Each is one transaction, idempotent, and costs one
//! row or one set-based update whatever the batch's size.
//!
//! - **Pause** adds a scope to `docket.pauses`. From its commit on, the gate
//!   to the outside refuses every call of a covered run ([`super::guard`]),
//!   the waiting rooms skip it and the conversion room leaves its documents
//!   waiting; a message of a paused run is dropped where it arrives. Its
//!   DocEx job slots go back, so other batches keep their full rate.
//! - **Resume** removes the scope and, for every run it frees, wakes its
//!   room or sends its current step again (the `seq` guard makes a
//!   duplicate harmless): the run goes on from the step it was at.
//! - **Cancel** moves every covered run still at work to its report, which
//!   says it was cancelled and what had been done; its later messages are
//!   stale by `seq`, its job slot is free at once.

use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Priority, State, Step, edges::message_for, invalid_batch};
use crate::{db::UnitOfWork, messages::valid_patient_id};

/// What a control covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    All,
    Batch(String),
    Patient(String),
}

impl Scope {
    /// One of a batch, a patient or everything, checked.
    pub fn pick(all: bool, batch: Option<String>, patient: Option<String>) -> Result<Scope, String> {
        match (all, batch, patient) {
            (true, None, None) => Ok(Scope::All),
            (false, Some(b), None) => match invalid_batch(&b) {
                Some(why) => Err(why),
                None => Ok(Scope::Batch(b)),
            },
            (false, None, Some(p)) if valid_patient_id(&p) => Ok(Scope::Patient(p)),
            (false, None, Some(_)) => {
                Err("patient_id must be 1 to 64 characters of ASCII letters, digits, '-' and '_'".into())
            }
            _ => Err("name exactly one of: a batch, a patient, or all".into()),
        }
    }

    fn key(&self) -> (&'static str, &str) {
        match self {
            Scope::All => ("all", ""),
            Scope::Batch(b) => ("batch", b),
            Scope::Patient(p) => ("patient", p),
        }
    }

    /// `AND <the runs it covers>`, for a query over `docket.runs`.
    fn push_filter<'q>(&'q self, q: &mut QueryBuilder<'q, Postgres>) {
        match self {
            Scope::All => {}
            Scope::Batch(b) => {
                q.push(" AND batch = ").push_bind(b.as_str());
            }
            Scope::Patient(p) => {
                q.push(" AND patient_id = ").push_bind(p.as_str());
            }
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::All => f.write_str("everything"),
            Scope::Batch(b) => write!(f, "batch {b}"),
            Scope::Patient(p) => write!(f, "patient {p}"),
        }
    }
}

/// What a control did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// False when it was in force already (pause), not in force (resume),
    /// or covered no run still at work (cancel).
    pub changed: bool,
    /// Runs in progress it covers (pause), frees (resume) or cancelled (cancel).
    pub runs: u64,
}

async fn note(uow: &mut UnitOfWork, scope: &Scope, what: &str, runs: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO docket.run_events (run_id, stage, event) SELECT unnest($1::uuid[]), 'control', $2")
        .bind(runs)
        .bind(format!("{what} ({scope})"))
        .execute(uow.conn())
        .await?;
    Ok(())
}

/// Pauses `scope`. The covered runs give back their DocEx job slots.
pub async fn pause(uow: &mut UnitOfWork, scope: &Scope) -> Result<Applied, sqlx::Error> {
    let (kind, name) = scope.key();
    let added = sqlx::query("INSERT INTO docket.pauses (scope, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(kind)
        .bind(name)
        .execute(uow.conn())
        .await?
        .rows_affected();
    let mut q = QueryBuilder::new("UPDATE docket.runs SET holds_job_slot = false WHERE holds_job_slot");
    scope.push_filter(&mut q);
    q.build().execute(uow.conn()).await?;
    let mut q = QueryBuilder::new("SELECT run_id FROM docket.runs WHERE finished_at IS NULL");
    scope.push_filter(&mut q);
    let runs: Vec<Uuid> = q.build_query_scalar().fetch_all(uow.conn()).await?;
    if added == 1 {
        note(uow, scope, "paused", &runs).await?;
    }
    Ok(Applied { changed: added == 1, runs: runs.len() as u64 })
}

/// Resumes `scope`: every run it frees goes on from its step.
pub async fn resume(uow: &mut UnitOfWork, scope: &Scope) -> Result<Applied, sqlx::Error> {
    let (kind, name) = scope.key();
    let removed = sqlx::query("DELETE FROM docket.pauses WHERE scope = $1 AND name = $2")
        .bind(kind)
        .bind(name)
        .execute(uow.conn())
        .await?
        .rows_affected();
    if removed == 0 {
        return Ok(Applied::default());
    }
    let mut q = QueryBuilder::new(
        "SELECT run_id, seq, state, priority FROM docket.runs
         WHERE finished_at IS NULL AND NOT parked AND NOT docket.paused(batch, patient_id)",
    );
    scope.push_filter(&mut q);
    let freed: Vec<(Uuid, i64, String, i16)> = q.build_query_as().fetch_all(uow.conn()).await?;
    for (run_id, seq, state, priority) in &freed {
        let step = Step { run_id: *run_id, seq: *seq };
        if let Some(message) = State::parse(state).and_then(|s| message_for(s, step, Priority::from_rank(*priority))) {
            uow.send(message);
        }
    }
    let runs: Vec<Uuid> = freed.iter().map(|f| f.0).collect();
    note(uow, scope, "resumed", &runs).await?;
    Ok(Applied { changed: true, runs: runs.len() as u64 })
}

/// Cancels every covered run still at work: it goes to its report.
pub async fn cancel(uow: &mut UnitOfWork, scope: &Scope) -> Result<Applied, sqlx::Error> {
    let mut q = QueryBuilder::new(
        "UPDATE docket.runs SET state = 'report', seq = seq + 1, cancelled_at = now(), cancelled_in = state,
             holds_job_slot = false, claimed_until = NULL, not_before = NULL, parked = false,
             last_error = NULL, updated_at = now()
         WHERE finished_at IS NULL AND cancelled_at IS NULL AND state <> 'report'",
    );
    scope.push_filter(&mut q);
    q.push(" RETURNING run_id, seq, priority");
    let cancelled: Vec<(Uuid, i64, i16)> = q.build_query_as().fetch_all(uow.conn()).await?;
    for (run_id, seq, priority) in &cancelled {
        let step = Step { run_id: *run_id, seq: *seq };
        if let Some(message) = message_for(State::Report, step, Priority::from_rank(*priority)) {
            uow.send(message);
        }
    }
    let runs: Vec<Uuid> = cancelled.iter().map(|c| c.0).collect();
    note(uow, scope, "cancelled by an operator", &runs).await?;
    Ok(Applied { changed: !runs.is_empty(), runs: runs.len() as u64 })
}

/// A control as a message on `docket.control` (publishable from the
/// management UI): `{"action": "pause", "batch": "cardiology-2026-12"}`,
/// or with `"patient_id"`, or `"all": true`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlMessage {
    pub action: Action,
    #[serde(default)]
    pub all: bool,
    pub batch: Option<String>,
    pub patient_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    pub async fn apply(self, uow: &mut UnitOfWork, scope: &Scope) -> Result<Applied, sqlx::Error> {
        match self {
            Action::Pause => pause(uow, scope).await,
            Action::Resume => resume(uow, scope).await,
            Action::Cancel => cancel(uow, scope).await,
        }
    }
}

//! The waiting rooms. Runs waiting for a scarce step (their TaskTracker task,
//! a DocEx search) wait as rows in PostgreSQL, and the room's order is a
//! query: urgent before normal before bulk, then the batch the room served
//! longest ago (round robin, whatever the batches' sizes), then the oldest
//! run. Pause, resume, cancel and priority are then plain updates.
//!
//! The broker carries the wake-ups: every run that enters a room sends one
//! message to the room's queue, and each message, when handled, serves the
//! room's head, which need not be the run that sent it. There are always at
//! least as many wake-ups as runs that can be served: one is dropped only
//! when no run in the room can be served now or later; resuming and
//! unparking send new ones. A worker claims the head for a lease, so a
//! crash mid-call loses nothing: the claim lapses and the next wake-up takes
//! the run again (its calls carry idempotency keys).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::{Run, SELECT_RUN, State, Step};
use crate::broker::topology::queues;

/// A room and what it orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Runs waiting for their TaskTracker task (the TaskTracker budget).
    Task,
    /// Runs waiting for a DocEx job slot and a search slot.
    Search,
}

impl Room {
    /// The queue of the room's wake-ups.
    pub const fn queue(self) -> &'static str {
        match self {
            Room::Task => queues::TASK,
            Room::Search => queues::SEARCH,
        }
    }

    /// The queue of the wake-ups urgent runs send as they enter the room.
    pub const fn urgent_queue(self) -> &'static str {
        match self {
            Room::Task => queues::TASK_URGENT,
            Room::Search => queues::SEARCH_URGENT,
        }
    }

    pub fn state(self) -> State {
        match self {
            Room::Task => State::Task,
            Room::Search => State::Search,
        }
    }

    /// When the room last served each batch.
    fn served_column(self) -> &'static str {
        match self {
            Room::Task => "last_task_at",
            Room::Search => "last_search_at",
        }
    }

    /// Claims are serialised per room: the round robin stays exact with
    /// many workers, and the search room's job-slot count cannot overfill.
    fn lock_key(self) -> i64 {
        match self {
            Room::Task => 727_363,
            Room::Search => 727_362,
        }
    }
}

/// What a worker found in the room.
#[derive(Debug)]
pub enum Claimed {
    /// The head, claimed until the lease ends.
    Run(Box<Run>),
    /// Runs wait, but none can be served before this long (claimed by other
    /// workers, or backing off after a failure).
    Later(Duration),
    /// The head needs a DocEx job slot and all `DOCEX_MAX_JOBS` are taken.
    NoJobSlot,
    /// Nobody can be served: the room is empty, or everyone in it is paused
    /// or parked (resuming and unparking send wake-ups of their own).
    Empty,
}

/// A run that the room may serve now (in SQL, over `r`).
const SERVABLE: &str = "r.state = $1 AND r.finished_at IS NULL AND NOT r.parked
    AND NOT docket.paused(r.batch, r.patient_id)";

/// Claims the room's head for `lease`. In the search room the head also
/// takes a DocEx job slot, unless it holds one already, if fewer than
/// `job_slots` are taken.
pub async fn claim(pool: &PgPool, room: Room, lease: Duration, job_slots: Option<u32>) -> Result<Claimed, sqlx::Error> {
    let state = room.state().as_str();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(room.lock_key()).execute(&mut *tx).await?;
    let head: Option<(Uuid, bool)> = sqlx::query_as(&format!(
        "SELECT r.run_id, r.holds_job_slot FROM docket.runs r JOIN docket.batches b ON b.name = r.batch
         WHERE {SERVABLE}
           AND (r.claimed_until IS NULL OR r.claimed_until < now())
           AND (r.not_before IS NULL OR r.not_before <= now())
         ORDER BY r.priority, b.{} NULLS FIRST, r.created_at
         LIMIT 1",
        room.served_column()
    ))
    .bind(state)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((run_id, holds_slot)) = head else {
        let next: Option<f64> = sqlx::query_scalar(&format!(
            "SELECT extract(epoch FROM min(greatest(r.claimed_until, r.not_before)) - now())::float8
             FROM docket.runs r WHERE {SERVABLE} AND (r.claimed_until >= now() OR r.not_before > now())"
        ))
        .bind(state)
        .fetch_one(&mut *tx)
        .await?;
        return Ok(match next {
            Some(secs) => Claimed::Later(Duration::from_secs_f64(secs.clamp(0.05, 3600.0))),
            None => Claimed::Empty,
        });
    };
    let mut take_slot = false;
    if let Some(max) = job_slots.filter(|_| !holds_slot) {
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE holds_job_slot").fetch_one(&mut *tx).await?;
        if held >= i64::from(max) {
            return Ok(Claimed::NoJobSlot);
        }
        take_slot = true;
    }
    let run: Run = sqlx::query_as(&format!(
        "WITH claimed AS (
             UPDATE docket.runs SET claimed_until = now() + make_interval(secs => $2),
                 holds_job_slot = holds_job_slot OR $3
             WHERE run_id = $1 RETURNING *)
         {} WHERE r.run_id = $1",
        SELECT_RUN.replace("FROM docket.runs r", "FROM claimed r")
    ))
    .bind(run_id)
    .bind(lease.as_secs_f64())
    .bind(take_slot)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&format!("UPDATE docket.batches SET {} = clock_timestamp() WHERE name = $1", room.served_column()))
        .bind(&run.batch)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Claimed::Run(Box::new(run)))
}

/// Whether a run more urgent than `priority` waits in the room and could
/// be served now: a worker waiting for a slot on a lesser run's behalf
/// gives it back and serves the room's head instead.
pub async fn more_urgent_waits(pool: &PgPool, room: Room, priority: super::Priority) -> Result<bool, sqlx::Error> {
    if priority == super::Priority::Urgent {
        return Ok(false);
    }
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM docket.runs r WHERE r.priority < $2 AND {SERVABLE}
           AND (r.claimed_until IS NULL OR r.claimed_until < now())
           AND (r.not_before IS NULL OR r.not_before <= now()))"
    ))
    .bind(room.state().as_str())
    .bind(priority.rank())
    .fetch_one(pool)
    .await
}

/// Why a claimed run goes back to its room without having moved on.
#[derive(Clone, Copy, Debug)]
pub enum Release<'a> {
    /// Not the run's doing (a budget spent for now, an open breaker, a
    /// pause): it keeps its place and is served again as soon as possible.
    Untouched,
    /// Its call failed: it is not served again before `backoff` has passed.
    Failed { reason: &'a str, backoff: Duration },
}

/// Gives the claimed run back to its room (and, in the search room, its
/// DocEx job slot: no job was started, and the runs behind it need the slot).
pub async fn release(pool: &PgPool, room: Room, run: &Run, how: Release<'_>) -> Result<(), sqlx::Error> {
    let (failed, reason, backoff) = match how {
        Release::Untouched => (false, None, 0.0),
        Release::Failed { reason, backoff } => (true, Some(reason), backoff.as_secs_f64()),
    };
    sqlx::query(
        "UPDATE docket.runs SET claimed_until = NULL,
             holds_job_slot = holds_job_slot AND NOT $4,
             attempts = attempts + $5::int,
             not_before = CASE WHEN $5 THEN now() + make_interval(secs => $6) ELSE not_before END,
             last_error = coalesce($7, last_error), updated_at = now()
         WHERE run_id = $1 AND seq = $2 AND state = $3",
    )
    .bind(run.run_id)
    .bind(run.seq)
    .bind(room.state().as_str())
    .bind(room == Room::Search)
    .bind(failed)
    .bind(backoff)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// A wake-up (or a replayed parked step) for a run that was parked in the
/// room: it may be served again. True when it was parked there.
pub async fn unpark(pool: &PgPool, room: Room, step: Step) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE docket.runs SET parked = false, last_error = NULL, not_before = NULL, updated_at = now()
         WHERE run_id = $1 AND seq = $2 AND state = $3 AND parked AND finished_at IS NULL",
    )
    .bind(step.run_id)
    .bind(step.seq)
    .bind(room.state().as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

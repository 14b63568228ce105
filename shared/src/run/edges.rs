//! Every move of a run's main chain, one function per edge. The guard is
//! inside: a move happens only from the state it names at the run's current
//! `seq`, bumps `seq`, and queues the message the new state needs, all in
//! the caller's unit of work. `false` means another message moved the run
//! first, and the caller must send nothing. Checkpoints (results kept before
//! the step that follows them) are here too.

use std::time::Duration;

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{FOUND, NOT_FOUND, Priority, Run, State, Step, event};
use crate::{
    broker::{Outgoing, topology::queues},
    db::UnitOfWork,
};

/// The columns a move sets besides the state and `seq`.
type Sets<'q> = QueryBuilder<'q, Postgres>;

/// Moves the run at `step` from `from` to `to`, writes `what` to its history
/// (under `stage`), and queues the message `to` needs (after `delay`).
#[allow(clippy::too_many_arguments)]
async fn advance<'q>(
    uow: &mut UnitOfWork,
    step: Step,
    priority: Priority,
    from: State,
    to: State,
    delay: Duration,
    (stage, what): (&str, &str),
    set: impl FnOnce(&mut Sets<'q>),
) -> Result<bool, sqlx::Error> {
    // The delay counts from the decision, not from after the writes below:
    // a poll timed to land just before a budget slot stays on time.
    let next = Step { run_id: step.run_id, seq: step.seq + 1 };
    let message = message_for(to, next, priority).map(|m| m.after(delay));
    let mut q = QueryBuilder::new("UPDATE docket.runs SET state = ");
    q.push_bind(to.as_str());
    q.push(
        ", seq = seq + 1, parked = false, claimed_until = NULL, not_before = NULL, attempts = 0, updated_at = now()",
    );
    if to.is_finished() {
        q.push(", finished_at = now(), holds_job_slot = false");
    }
    set(&mut q);
    q.push(" WHERE run_id = ").push_bind(step.run_id);
    q.push(" AND seq = ").push_bind(step.seq);
    q.push(" AND state = ").push_bind(from.as_str());
    if q.build().execute(uow.conn()).await?.rows_affected() != 1 {
        return Ok(false);
    }
    event(uow.conn(), step.run_id, stage, what).await?;
    if let Some(message) = message {
        uow.send(message);
    }
    Ok(true)
}

/// The message that moves a run that has just entered `state` at `step`.
/// A waiting room gets a wake-up (no run header: whoever it wakes serves the
/// room's head, not necessarily this run; an urgent run's wakes the room's
/// urgent worker, which is never busy with other runs, and the head it serves
/// is the urgent run); an urgent run's download and report go to their
/// urgent lanes.
pub fn message_for(state: State, step: Step, priority: Priority) -> Option<Outgoing> {
    let queue = state.queue()?;
    if state.is_room() {
        let queue = match (state, priority) {
            (State::Task, Priority::Urgent) => queues::TASK_URGENT,
            (State::Search, Priority::Urgent) => queues::SEARCH_URGENT,
            _ => queue,
        };
        return Some(Outgoing::new(queue, &step));
    }
    let queue = match (state, priority) {
        (State::Fetch, Priority::Urgent) => queues::FETCH_URGENT,
        (State::Report, Priority::Urgent) => queues::REPORT_URGENT,
        _ => queue,
    };
    Some(Outgoing::new(queue, &step).run(step.run_id))
}

/// Task → Search: the TaskTracker task exists; the run joins the search room.
pub async fn task_created(uow: &mut UnitOfWork, run: &Run, task_id: &str) -> Result<bool, sqlx::Error> {
    let what = format!("TaskTracker task {task_id} created");
    let task = task_id.to_string();
    advance(uow, run.step(), run.priority(), State::Task, State::Search, Duration::ZERO, ("search", &what), |q| {
        q.push(", last_error = NULL, task_id = ").push_bind(task);
    })
    .await
}

/// Task → Abandoned: the patient's row vanished or became unusable before
/// the task could be made; without names there can be no task.
pub async fn abandoned(uow: &mut UnitOfWork, run: &Run, why: &str) -> Result<bool, sqlx::Error> {
    let reason = why.to_string();
    advance(uow, run.step(), run.priority(), State::Task, State::Abandoned, Duration::ZERO, ("search", why), |q| {
        q.push(", last_error = ").push_bind(reason);
    })
    .await
}

/// Search → Poll: the DocEx job exists; its first poll comes after `first_poll`.
pub async fn search_started(
    uow: &mut UnitOfWork,
    run: &Run,
    job_id: &str,
    first_poll: Duration,
) -> Result<bool, sqlx::Error> {
    let what = format!("DocEx search started: job {job_id}");
    let job = job_id.to_string();
    advance(uow, run.step(), run.priority(), State::Search, State::Poll, first_poll, ("search", &what), |q| {
        q.push(", polls = 0, job_started_at = now(), last_error = NULL, job_id = ").push_bind(job);
    })
    .await
}

/// Poll → Poll: the job is still running; the next poll comes after `next`.
pub async fn job_pending(uow: &mut UnitOfWork, run: &Run, next: Duration) -> Result<bool, sqlx::Error> {
    advance(uow, run.step(), run.priority(), State::Poll, State::Poll, next, ("status", "job still running"), |q| {
        q.push(", polls = polls + 1, last_error = NULL");
    })
    .await
}

/// Poll → Fetch: the job finished with documents at `archive_url`.
pub async fn job_finished(uow: &mut UnitOfWork, run: &Run, archive_url: &str, count: u32) -> Result<bool, sqlx::Error> {
    let what = format!("job finished: {count} documents");
    let url = archive_url.to_string();
    advance(uow, run.step(), run.priority(), State::Poll, State::Fetch, Duration::ZERO, ("status", &what), |q| {
        q.push(", last_error = NULL, archive_url = ").push_bind(url);
    })
    .await
}

/// Poll → Report: the job finished with nothing found; the job slot is free.
pub async fn nothing_found(uow: &mut UnitOfWork, run: &Run) -> Result<bool, sqlx::Error> {
    let what = ("status", "job finished: no documents");
    advance(uow, run.step(), run.priority(), State::Poll, State::Report, Duration::ZERO, what, |q| {
        q.push(", docs_total = 0, holds_job_slot = false, last_error = NULL, documents_status = ").push_bind(NOT_FOUND);
    })
    .await
}

/// Poll or Fetch → Search: the job failed, vanished or its archive expired;
/// the run searches again with a new idempotency key, from the search room.
pub async fn search_again(uow: &mut UnitOfWork, run: &Run, stage: &str, why: &str) -> Result<bool, sqlx::Error> {
    let from = run.state;
    advance(uow, run.step(), run.priority(), from, State::Search, Duration::ZERO, (stage, why), |q| {
        q.push(", job_id = NULL, archive_url = NULL, search_attempt = search_attempt + 1");
    })
    .await
}

/// Fetch → Documents (or straight to Report when no entry was usable): the
/// archive is extracted into `total` documents, `failed` of them unusable.
/// The caller records the documents and queues their store messages.
pub async fn extracted(uow: &mut UnitOfWork, run: &Run, total: i32, failed: i32) -> Result<bool, sqlx::Error> {
    let status = if total > 0 { FOUND } else { NOT_FOUND };
    let to = if failed < total { State::Documents } else { State::Report };
    let what = format!("archive extracted: {total} documents, {failed} unusable");
    advance(uow, run.step(), run.priority(), State::Fetch, to, Duration::ZERO, ("fetch", &what), |q| {
        q.push(", holds_job_slot = false, last_error = NULL, docs_total = ").push_bind(total);
        q.push(", docs_done = ").push_bind(failed);
        q.push(", docs_failed = ").push_bind(failed);
        q.push(", documents_status = ").push_bind(status);
    })
    .await
}

/// Documents → Report: the last document is done (noticed exactly once by
/// the caller's transactional count).
pub async fn documents_done(
    uow: &mut UnitOfWork,
    step: Step,
    priority: Priority,
    done: i32,
) -> Result<bool, sqlx::Error> {
    let what = format!("all {done} documents done");
    advance(uow, step, priority, State::Documents, State::Report, Duration::ZERO, ("store", &what), |_| {}).await
}

/// Report → Done: statuses set and the report appended.
pub async fn finished(uow: &mut UnitOfWork, run: &Run, status: Option<&str>, what: &str) -> Result<bool, sqlx::Error> {
    let status = status.map(str::to_string);
    advance(uow, run.step(), run.priority(), State::Report, State::Done, Duration::ZERO, ("report", what), |q| {
        q.push(", last_error = NULL, documents_status = coalesce(").push_bind(status).push(", documents_status)");
    })
    .await
}

/// Report → Abandoned: TaskTracker no longer has the run's task, so no
/// report can reach it; the run ends with the reason, not parked for ever.
pub async fn task_lost(uow: &mut UnitOfWork, run: &Run, why: &str) -> Result<bool, sqlx::Error> {
    let reason = why.to_string();
    let what = format!("abandoned: {why}");
    advance(uow, run.step(), run.priority(), State::Report, State::Abandoned, Duration::ZERO, ("report", &what), |q| {
        q.push(", last_error = ").push_bind(reason);
    })
    .await
}

/// Checkpoint: the task exists (kept before the move, so a crash between
/// the two never makes a second task).
pub async fn keep_task(pool: &PgPool, run_id: Uuid, task_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE docket.runs SET task_id = $2, updated_at = now() WHERE run_id = $1 AND task_id IS NULL")
        .bind(run_id)
        .bind(task_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Checkpoint: the archive is in scratch, so a crash during extraction never
/// spends a second download; the job slot is free for the next search.
pub async fn keep_download(pool: &PgPool, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE docket.runs SET archive_fetched = true, holds_job_slot = false, updated_at = now() WHERE run_id = $1",
    )
    .bind(run_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Checkpoint: TaskTracker holds the task's status.
pub async fn keep_tracker_status(pool: &PgPool, run_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE docket.runs SET tt_status_set = true, updated_at = now() WHERE run_id = $1")
        .bind(run_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Checkpoint: the report is appended.
pub async fn keep_report(pool: &PgPool, run_id: Uuid, report_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE docket.runs SET report_id = $2, updated_at = now() WHERE run_id = $1")
        .bind(run_id)
        .bind(report_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the run of a parked message: it waits for an operator (or a new
/// request for the patient) and gives its DocEx job slot back meanwhile.
pub async fn mark_parked(pool: &PgPool, run_id: Uuid, reason: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE docket.runs SET parked = true, holds_job_slot = false, claimed_until = NULL, last_error = $2,
             updated_at = now()
         WHERE run_id = $1 AND finished_at IS NULL",
    )
    .bind(run_id)
    .bind(format!("parked: {reason}"))
    .execute(pool)
    .await?;
    Ok(())
}

/// What a request for a patient came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A new run, waiting in the task room.
    Started(Uuid),
    /// The run in progress took the request (its priority raised if the
    /// request's is higher); a parked run's step was sent again.
    Joined { run_id: Uuid, restarted: bool },
    /// The run in progress is being cancelled: the request must wait for it
    /// to end, then start a run of its own.
    Cancelling(Uuid),
}

/// A request for `patient_id`: starts a run in `batch` at `priority`, or
/// joins the one in progress. `None` when the run to join ended between the
/// two statements (try again).
pub async fn request(
    uow: &mut UnitOfWork,
    patient_id: &str,
    batch: &str,
    priority: Priority,
) -> Result<Option<Request>, sqlx::Error> {
    sqlx::query("INSERT INTO docket.batches (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(batch)
        .execute(uow.conn())
        .await?;
    let started: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO docket.runs (run_id, patient_id, state, batch, priority) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (patient_id) WHERE finished_at IS NULL DO NOTHING
         RETURNING run_id",
    )
    .bind(Uuid::now_v7())
    .bind(patient_id)
    .bind(State::Task.as_str())
    .bind(batch)
    .bind(priority.rank())
    .fetch_optional(uow.conn())
    .await?;
    if let Some(run_id) = started {
        event(uow.conn(), run_id, "search", &format!("run started (batch {batch}, {priority})")).await?;
        let step = Step { run_id, seq: 0 };
        if let Some(wake) = message_for(State::Task, step, priority) {
            uow.send(wake);
        }
        return Ok(Some(Request::Started(run_id)));
    }
    let joined: Option<(Uuid, bool, bool, String, i64, i16)> = sqlx::query_as(
        "UPDATE docket.runs r SET requests = requests + 1, priority = least(r.priority, $2), updated_at = now()
         FROM (SELECT run_id, parked FROM docket.runs WHERE patient_id = $1 AND finished_at IS NULL FOR UPDATE) old
         WHERE r.run_id = old.run_id
         RETURNING r.run_id, old.parked, r.cancelled_at IS NOT NULL, r.state, r.seq, r.priority",
    )
    .bind(patient_id)
    .bind(priority.rank())
    .fetch_optional(uow.conn())
    .await?;
    let Some((run_id, parked, cancelling, state, seq, rank)) = joined else { return Ok(None) };
    if cancelling {
        return Ok(Some(Request::Cancelling(run_id)));
    }
    // A run whose step was parked would never finish by itself: the request
    // sends its current step again (the `seq` guard makes that safe). A run
    // parked among its documents stays parked, and shows so, for an operator.
    let state = State::parse(&state);
    let restart = match state {
        Some(s) if parked => message_for(s, Step { run_id, seq }, Priority::from_rank(rank)),
        _ => None,
    };
    let restarted = restart.is_some();
    if let Some(message) = restart {
        sqlx::query("UPDATE docket.runs SET parked = false WHERE run_id = $1").bind(run_id).execute(uow.conn()).await?;
        uow.send(message);
    } else if priority == Priority::Urgent
        && let Some(room) = state.filter(|s| s.is_room())
        && let Some(nudge) = message_for(room, Step { run_id, seq }, Priority::Urgent)
    {
        // Made urgent while it waits in a room: one more wake-up, for the
        // room's urgent worker (a spare wake-up serves the head or finds
        // the room empty).
        uow.send(nudge);
    }
    let what = if restarted { "another request restarted the parked run" } else { "another request joined the run" };
    event(uow.conn(), run_id, "search", what).await?;
    Ok(Some(Request::Joined { run_id, restarted }))
}

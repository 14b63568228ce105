//! `docket.search` → a DocEx job. Two gates first: a slot among the capped
//! DocEx jobs in flight (so downloads keep up with searches), then a slot
//! of the search+download budget: only the next slot, never one further
//! ahead, so archive downloads (which may reserve far ahead) go first.
//!
//! Prefetch is 1: the queue itself is the waiting room, in order, and this
//! consumer holds one message while it waits for its slots.

use std::{sync::Arc, time::Duration};

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, Run, Step, state},
};
use tracing::info;

pub struct Search(pub Arc<App>);

impl Handler for Search {
    type Input = Step;
    const QUEUE: &'static str = queues::SEARCH;

    fn prefetch(&self, _app: &App) -> u16 {
        1
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pool = &app.db().pool;
        let Some(run) = runs::current(pool, step, state::SEARCH).await? else { return Ok(()) };
        let started = std::time::Instant::now();
        let hold = app.settings.limit_max_hold;
        if !run.holds_job_slot {
            while !take_job_slot(app, &run).await? {
                if started.elapsed() > hold {
                    return Err(StageError::wait(Duration::from_secs(5), "DOCEX_MAX_JOBS jobs are in flight"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let names = runs::names(pool, &run.patient_id)
            .await?
            .filter(|n| runs::unusable(n).is_none())
            .ok_or_else(|| StageError::permanent(format!("patient {} can no longer be used", run.patient_id)))?;
        let key = format!("docket-{}-search-{}", run.run_id, run.search_attempt);
        let job_id = loop {
            match app.docex().search(&key, &names).await {
                Ok(job) => break job,
                Err(StageError::Wait { after, .. }) if started.elapsed() + after < hold => {
                    tokio::time::sleep(after + Duration::from_millis(rand_ms(5))).await;
                }
                Err(e) => {
                    // No job was started, so the slot goes back: a run that
                    // waits out an outage (in the hold queue) or a long
                    // delay must not keep a slot that the runs ahead of it
                    // in the queue need. It takes one again when it is back.
                    if let Err(slot) = give_back_job_slot(app, &run).await {
                        // The run's next attempt finds its slot still held and keeps it.
                        tracing::warn!(error = %slot, "could not give the DocEx job slot back");
                    }
                    return Err(e);
                }
            }
        };
        let mut uow = UnitOfWork::begin(app).await?;
        let moved = sqlx::query(
            "UPDATE docket.runs SET job_id = $3, polls = 0, state = $4, seq = seq + 1, parked = false, updated_at = now(),
                 last_error = NULL
             WHERE run_id = $1 AND seq = $2 AND state = $5",
        )
        .bind(step.run_id)
        .bind(step.seq)
        .bind(&job_id)
        .bind(state::POLL)
        .bind(state::SEARCH)
        .execute(uow.conn())
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(());
        }
        runs::event(uow.conn(), run.run_id, "search", &format!("DocEx search started: job {job_id}")).await?;
        let first = app.settings.poll_first;
        uow.send(Outgoing::new(queues::STATUS, &runs::next(step)).run(run.run_id).after(first));
        uow.commit(app).await?;
        info!(patient_id = %run.patient_id, %job_id, "search started");
        Ok(())
    }
}

fn rand_ms(max: u64) -> u64 {
    rand::random::<u64>() % (max + 1)
}

/// Takes one of the DOCEX_MAX_JOBS slots for this run, if one is free.
/// Serialised by an advisory lock so that replicas never overfill the cap.
async fn take_job_slot(app: &App, run: &Run) -> StageResult<bool> {
    let mut tx = app.db().pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(727362)").execute(&mut *tx).await?;
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE holds_job_slot").fetch_one(&mut *tx).await?;
    app.metrics.jobs_in_flight.set(held);
    if held >= i64::from(app.settings.docex_max_jobs) {
        return Ok(false);
    }
    sqlx::query("UPDATE docket.runs SET holds_job_slot = true WHERE run_id = $1")
        .bind(run.run_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Frees this run's job slot, if it still holds one and has no job yet.
async fn give_back_job_slot(app: &App, run: &Run) -> StageResult<()> {
    sqlx::query("UPDATE docket.runs SET holds_job_slot = false WHERE run_id = $1 AND state = $2 AND holds_job_slot")
        .bind(run.run_id)
        .bind(state::SEARCH)
        .execute(&app.db().pool)
        .await?;
    Ok(())
}

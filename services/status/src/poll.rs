//! `docket.status` → one status read. Not ready: the next poll goes through
//! the outbox with a longer delay. Finished: on to fetch, or to the report
//! when nothing was found. Failed or unknown: back to the search room, to
//! search again with a new key.

use std::{sync::Arc, time::Duration};

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    outside::docex::JobStatus,
    run::{self, Guard, Priority, State, Step, edges},
};
use tracing::info;

pub struct Poll(pub Arc<App>);

/// How much longer than POLL_FIRST an urgent run's polls may grow apart.
const URGENT_POLL_SPREAD: f64 = 4.0;

/// The delay before poll number `n` (1-based): doubling from POLL_FIRST up to
/// POLL_MAX, with ±10 % jitter so polls started together drift apart. An
/// urgent run's polls have no jitter and stop growing at four times POLL_FIRST (8 s by
/// default): a job that takes 35 s is seen within 8 s of its end, not 27 s
/// later; even `DOCEX_MAX_JOBS` urgent jobs at once (50 polls every 8 s)
/// stay inside the status budget (10 a second).
pub fn schedule(app: &App, n: i32, priority: Priority) -> Duration {
    let first = app.settings.poll_first.as_secs_f64();
    let urgent = priority == Priority::Urgent;
    let mut max = app.settings.poll_max.as_secs_f64();
    if urgent {
        max = max.min(first * URGENT_POLL_SPREAD);
    }
    let step = (first * 2f64.powi((n - 1).clamp(0, 30))).min(max);
    // Urgent runs are few: no jitter, so none of them is seen late by chance.
    let jitter = if urgent { 1.0 } else { 0.9 + rand::random::<f64>() * 0.2 };
    Duration::from_secs_f64(step * jitter)
}

impl Handler for Poll {
    type Input = Step;
    const QUEUE: &'static str = queues::STATUS;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(32)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pool = &app.db().pool;
        let Some(run) = run::current(pool, step, State::Poll).await? else { return Ok(()) };
        let job_id = run.job_id.clone().ok_or_else(|| StageError::permanent("run is polling without a job"))?;
        let status = app.docex().status(&job_id, &Guard::new(pool, &run)).await?;
        let mut uow = UnitOfWork::begin(app).await?;
        let moved = match &status {
            JobStatus::Pending => {
                edges::job_pending(&mut uow, &run, schedule(app, run.polls + 1, run.priority())).await?
            }
            JobStatus::Finished { count, archive_url: Some(url) } if *count > 0 => {
                edges::job_finished(&mut uow, &run, url, *count).await?
            }
            JobStatus::Finished { count, archive_url: None } if *count > 0 => {
                return Err(StageError::transient(format!("DocEx reported {count} documents but no archive URL")));
            }
            JobStatus::Finished { .. } => edges::nothing_found(&mut uow, &run).await?,
            JobStatus::Failed => edges::search_again(&mut uow, &run, "status", "job failed; searching again").await?,
            JobStatus::Missing => {
                edges::search_again(&mut uow, &run, "status", "job unknown to DocEx; searching again").await?
            }
        };
        if moved {
            uow.commit(app).await?;
            if status != JobStatus::Pending {
                info!(run_id = %run.run_id, %job_id, ?status, "job settled");
            }
        }
        Ok(())
    }
}

//! `docket.status` → one status read. Not ready: the next poll goes through
//! the outbox with a longer delay. Finished: on to fetch, or to the report
//! when nothing was found. Failed or unknown: search again with a new key.

use std::{sync::Arc, time::Duration};

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, NOT_FOUND, Step, state},
    outside::docex::JobStatus,
};
use tracing::info;

pub struct Poll(pub Arc<App>);

/// The delay before poll number `n` (1-based): doubling from POLL_FIRST up to
/// POLL_MAX, with ±10 % jitter so polls started together drift apart.
pub fn schedule(app: &App, n: i32) -> Duration {
    let first = app.settings.poll_first.as_secs_f64();
    let step = (first * 2f64.powi((n - 1).clamp(0, 30))).min(app.settings.poll_max.as_secs_f64());
    Duration::from_secs_f64(step * (0.9 + rand::random::<f64>() * 0.2))
}

impl Handler for Poll {
    type Input = Step;
    const QUEUE: &'static str = queues::STATUS;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(32)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let Some(run) = runs::current(&app.db().pool, step, state::POLL).await? else { return Ok(()) };
        let job_id = run.job_id.clone().ok_or_else(|| StageError::permanent("run is polling without a job"))?;
        let status = app.docex().status(&job_id).await?;
        let next = runs::next(step);
        let mut uow = UnitOfWork::begin(app).await?;
        let (sql, to, event) = match &status {
            JobStatus::Pending => (
                "UPDATE docket.runs SET polls = polls + 1, state = $3, seq = seq + 1, parked = false, updated_at = now(),
                     last_error = NULL
                 WHERE run_id = $1 AND seq = $2 AND state = $4",
                state::POLL,
                None,
            ),
            JobStatus::Finished { count, archive_url: Some(url) } if *count > 0 => {
                uow.send(Outgoing::new(queues::FETCH, &next).run(run.run_id));
                let sql = "UPDATE docket.runs SET archive_url = $5, state = $3, seq = seq + 1, parked = false, updated_at = now(),
                               last_error = NULL
                           WHERE run_id = $1 AND seq = $2 AND state = $4";
                return finish(
                    app,
                    uow,
                    step,
                    sql,
                    state::FETCH,
                    Some(url),
                    &format!("job finished: {count} documents"),
                )
                .await;
            }
            JobStatus::Finished { count, archive_url: None } if *count > 0 => {
                return Err(StageError::transient(format!("DocEx reported {count} documents but no archive URL")));
            }
            JobStatus::Finished { .. } => {
                uow.send(Outgoing::new(queues::REPORT, &next).run(run.run_id));
                let sql = "UPDATE docket.runs SET documents_status = $5, docs_total = 0, holds_job_slot = false,
                               state = $3, seq = seq + 1, parked = false, updated_at = now(), last_error = NULL
                           WHERE run_id = $1 AND seq = $2 AND state = $4";
                return finish(app, uow, step, sql, state::REPORT, Some(NOT_FOUND), "job finished: no documents").await;
            }
            JobStatus::Failed | JobStatus::Missing => (
                "UPDATE docket.runs SET job_id = NULL, search_attempt = search_attempt + 1, state = $3,
                     seq = seq + 1, parked = false, updated_at = now()
                 WHERE run_id = $1 AND seq = $2 AND state = $4",
                state::SEARCH,
                Some(if status == JobStatus::Failed {
                    "job failed; searching again"
                } else {
                    "job unknown to DocEx; searching again"
                }),
            ),
        };
        if to == state::POLL {
            uow.send(Outgoing::new(queues::STATUS, &next).run(run.run_id).after(schedule(app, run.polls + 1)));
        } else {
            uow.send(Outgoing::new(queues::SEARCH, &next).run(run.run_id));
        }
        let moved =
            sqlx::query(sql).bind(step.run_id).bind(step.seq).bind(to).bind(state::POLL).execute(uow.conn()).await?;
        if moved.rows_affected() == 0 {
            return Ok(());
        }
        if let Some(text) = event {
            runs::event(uow.conn(), run.run_id, "status", text).await?;
            info!(run_id = %run.run_id, %job_id, "{text}");
        }
        uow.commit(app).await
    }
}

/// Applies a finishing transition with one extra bound value and commits.
async fn finish(
    app: &App,
    mut uow: UnitOfWork,
    step: Step,
    sql: &str,
    to: &str,
    extra: Option<&str>,
    event: &str,
) -> StageResult {
    let moved = sqlx::query(sql)
        .bind(step.run_id)
        .bind(step.seq)
        .bind(to)
        .bind(state::POLL)
        .bind(extra)
        .execute(uow.conn())
        .await?;
    if moved.rows_affected() == 0 {
        return Ok(());
    }
    runs::event(uow.conn(), step.run_id, "status", event).await?;
    info!(run_id = %step.run_id, "{event}");
    uow.commit(app).await
}

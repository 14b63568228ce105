//! `docket.report`: each outside step is checkpointed before the next, so a
//! crash anywhere repeats nothing that already happened.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, FOUND, NOT_FOUND, Run, Step, state},
    messages::scratch,
    metrics::StatusLabels,
};
use tracing::{debug, info};

pub struct Report(pub Arc<App>);

impl Handler for Report {
    type Input = Step;
    const QUEUE: &'static str = queues::REPORT;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(8)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pool = &app.db().pool;
        let Some(run) = runs::current(pool, step, state::REPORT).await? else { return Ok(()) };
        let task_id =
            run.task_id.clone().ok_or_else(|| StageError::permanent("run reached its report without a task"))?;
        let status = status_of(&run);
        sqlx::query("UPDATE patients SET documents_status = $2, updated_at = now() WHERE patient_id = $1")
            .bind(&run.patient_id)
            .bind(status)
            .execute(pool)
            .await?;
        if !run.tt_status_set {
            if let Err(e) = app.tracker().set_status(&task_id, status).await {
                return task_gone_or(app, step, &run, e).await;
            }
            sqlx::query("UPDATE docket.runs SET tt_status_set = true, updated_at = now() WHERE run_id = $1")
                .bind(run.run_id)
                .execute(pool)
                .await?;
        }
        let report_id = match &run.report_id {
            Some(id) => id.clone(),
            None => match append(app, &run, &task_id, status).await {
                Ok(id) => id,
                Err(e) => return task_gone_or(app, step, &run, e).await,
            },
        };
        let mut uow = UnitOfWork::begin(app).await?;
        let done = sqlx::query(
            "UPDATE docket.runs SET state = $3, finished_at = now(), seq = seq + 1, parked = false, updated_at = now(),
                 documents_status = $5, last_error = NULL
             WHERE run_id = $1 AND seq = $2 AND state = $4",
        )
        .bind(step.run_id)
        .bind(step.seq)
        .bind(state::DONE)
        .bind(state::REPORT)
        .bind(status)
        .execute(uow.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        runs::event(uow.conn(), run.run_id, "report", &format!("{status}; report {report_id} appended")).await?;
        uow.commit(app).await?;
        app.metrics
            .runs_finished
            .get_or_create(&StatusLabels { status: if status == FOUND { FOUND } else { NOT_FOUND } })
            .inc();
        info!(patient_id = %run.patient_id, run_id = %run.run_id, status, "run finished");
        if let Err(e) = app.scratch.delete_prefix(&scratch::run_prefix(run.run_id)).await {
            debug!(error = %e, "scratch cleanup failed; nothing depends on it");
        }
        Ok(())
    }
}

fn status_of(run: &Run) -> &'static str {
    match run.documents_status.as_deref() {
        Some(FOUND) => FOUND,
        Some(_) => NOT_FOUND,
        None if run.docs_total.unwrap_or(0) > 0 => FOUND,
        None => NOT_FOUND,
    }
}

async fn append(app: &App, run: &Run, task_id: &str, status: &str) -> StageResult<String> {
    let pool = &app.db().pool;
    let report = crate::build::build(pool, run, status).await?;
    let key = format!("docket-{}-report", run.run_id);
    let report_id = app.tracker().append_report(task_id, &key, &report).await?;
    sqlx::query("UPDATE docket.runs SET report_id = $2, updated_at = now() WHERE run_id = $1")
        .bind(run.run_id)
        .bind(&report_id)
        .execute(pool)
        .await?;
    Ok(report_id)
}

/// A task TaskTracker no longer has (deleted, or the tracker lost it) cannot
/// take a report, however often the message is replayed: the run ends as
/// abandoned with that reason instead of waiting parked for ever. A new
/// request for the patient starts a new run with a new task. Other errors
/// take their usual path.
async fn task_gone_or(app: &App, step: Step, run: &Run, e: StageError) -> StageResult {
    if !docket_shared::outside::tasktracker::is_task_gone(&e) {
        return Err(e);
    }
    let reason = format!("{e}; the report could not be delivered: publish the patient again for a new run and task");
    let mut uow = UnitOfWork::begin(app).await?;
    let done = sqlx::query(
        "UPDATE docket.runs SET state = $3, finished_at = now(), seq = seq + 1, parked = false, updated_at = now(),
             last_error = $5
         WHERE run_id = $1 AND seq = $2 AND state = $4",
    )
    .bind(step.run_id)
    .bind(step.seq)
    .bind(state::ABANDONED)
    .bind(state::REPORT)
    .bind(&reason)
    .execute(uow.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    runs::event(uow.conn(), run.run_id, "report", &format!("abandoned: {reason}")).await?;
    uow.commit(app).await?;
    tracing::warn!(patient_id = %run.patient_id, run_id = %run.run_id, "TaskTracker lost the run's task; run abandoned");
    if let Err(e) = app.scratch.delete_prefix(&scratch::run_prefix(run.run_id)).await {
        debug!(error = %e, "scratch cleanup failed; nothing depends on it");
    }
    Ok(())
}

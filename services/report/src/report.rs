//! `docket.report` (and its urgent lane): each outside step is checkpointed
//! before the next, so a crash anywhere repeats nothing that already
//! happened. A cancelled run reports too: with a task made now if it had
//! none yet, a status only if its search had settled, and a report that says
//! it was cancelled and what had been done.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    messages::scratch,
    metrics::StatusLabels,
    run::{self, FOUND, Guard, NOT_FOUND, Run, State, Step, edges},
};
use tracing::{debug, info};

/// A report handler for one lane (the normal queue or the urgent one).
pub struct Report(pub Arc<App>);
pub struct UrgentReport(pub Arc<App>);

impl Handler for Report {
    type Input = Step;
    const QUEUE: &'static str = queues::REPORT;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(8)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        report(&self.0, step).await
    }
}

impl Handler for UrgentReport {
    type Input = Step;
    const QUEUE: &'static str = queues::REPORT_URGENT;

    fn prefetch(&self, _app: &App) -> u16 {
        2
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        report(&self.0, step).await
    }
}

async fn report(app: &App, step: Step) -> StageResult {
    let pool = &app.db().pool;
    let Some(run) = run::current(pool, step, State::Report).await? else { return Ok(()) };
    let guard = Guard::new(pool, &run);
    let task_id = match &run.task_id {
        Some(id) => id.clone(),
        None if run.cancelled() => task_for_cancelled(app, &run, &guard).await?,
        None => return Err(StageError::permanent("run reached its report without a task")),
    };
    let status = status_of(&run);
    if let Some(status) = status {
        sqlx::query("UPDATE patients SET documents_status = $2, updated_at = now() WHERE patient_id = $1")
            .bind(&run.patient_id)
            .bind(status)
            .execute(pool)
            .await?;
        if !run.tt_status_set {
            if let Err(e) = app.tracker().set_status(&task_id, status, &guard).await {
                return task_gone_or(app, &run, e).await;
            }
            edges::keep_tracker_status(pool, run.run_id).await?;
        }
    }
    let report_id = match &run.report_id {
        Some(id) => id.clone(),
        None => match append(app, &run, &task_id, status, &guard).await {
            Ok(id) => id,
            Err(e) => return task_gone_or(app, &run, e).await,
        },
    };
    let what = match (status, run.cancelled()) {
        (_, true) => format!("cancelled; report {report_id} appended"),
        (Some(s), false) => format!("{s}; report {report_id} appended"),
        (None, false) => format!("report {report_id} appended"),
    };
    let mut uow = UnitOfWork::begin(app).await?;
    if !edges::finished(&mut uow, &run, status, &what).await? {
        return Ok(());
    }
    uow.commit(app).await?;
    let label = match status {
        _ if run.cancelled() => "CANCELLED",
        Some(FOUND) => FOUND,
        _ => NOT_FOUND,
    };
    app.metrics.runs_finished.get_or_create(&StatusLabels { status: label }).inc();
    info!(patient_id = %run.patient_id, run_id = %run.run_id, status = label, "run finished");
    if let Err(e) = app.scratch.delete_prefix(&scratch::run_prefix(run.run_id)).await {
        debug!(error = %e, "scratch cleanup failed; nothing depends on it");
    }
    Ok(())
}

/// The documents status the run found out, if it did: a run cancelled
/// before its search settled knows neither, and sets none.
fn status_of(run: &Run) -> Option<&'static str> {
    match run.documents_status.as_deref() {
        Some(FOUND) => Some(FOUND),
        Some(_) => Some(NOT_FOUND),
        None if run.docs_total.unwrap_or(0) > 0 => Some(FOUND),
        None if run.cancelled() => None,
        None => Some(NOT_FOUND),
    }
}

/// A run cancelled in the task room still ends with one task and one report:
/// the task is made now, with the key the task room would have used (so a
/// task it made before the cancel is found, not made twice).
async fn task_for_cancelled(app: &App, run: &Run, guard: &Guard) -> StageResult<String> {
    let pool = &app.db().pool;
    let names = run::usable_names(pool, &run.patient_id)
        .await?
        .ok_or_else(|| StageError::permanent(format!("patient {} can no longer be used", run.patient_id)))?;
    let key = run.task_key();
    let task_id = app.tracker().create_task(&key, &run.patient_id, &names, guard).await?;
    edges::keep_task(pool, run.run_id, &task_id).await?;
    Ok(task_id)
}

async fn append(app: &App, run: &Run, task_id: &str, status: Option<&str>, guard: &Guard) -> StageResult<String> {
    let pool = &app.db().pool;
    let report = crate::build::build(pool, run, status).await?;
    let key = run.report_key();
    let report_id = app.tracker().append_report(task_id, &key, &report, guard).await?;
    edges::keep_report(pool, run.run_id, &report_id).await?;
    Ok(report_id)
}

/// A task TaskTracker no longer has (deleted, or the tracker lost it) cannot
/// take a report, however often the message is replayed: the run ends as
/// abandoned with that reason instead of waiting parked for ever. A new
/// request for the patient starts a new run with a new task. Other errors
/// take their usual path.
async fn task_gone_or(app: &App, run: &Run, e: StageError) -> StageResult {
    if !docket_shared::outside::tasktracker::is_task_gone(&e) {
        return Err(e);
    }
    let reason = format!("{e}; the report could not be delivered: publish the patient again for a new run and task");
    let mut uow = UnitOfWork::begin(app).await?;
    if edges::task_lost(&mut uow, run, &reason).await? {
        uow.commit(app).await?;
        tracing::warn!(patient_id = %run.patient_id, run_id = %run.run_id, "TaskTracker lost the run's task; run abandoned");
        if let Err(e) = app.scratch.delete_prefix(&scratch::run_prefix(run.run_id)).await {
            debug!(error = %e, "scratch cleanup failed; nothing depends on it");
        }
    }
    Ok(())
}

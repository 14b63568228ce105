//! `docket.task` → the run's TaskTracker task. The idempotency key comes from
//! the run, so a replay after a crash finds the same task; its ID is
//! checkpointed before the run moves on to the search.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, Run, Step, state},
};
use tracing::{info, warn};

pub struct CreateTask(pub Arc<App>);

impl Handler for CreateTask {
    type Input = Step;
    const QUEUE: &'static str = queues::TASK;

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let Some(run) = runs::current(&app.db().pool, step, state::TASK).await? else { return Ok(()) };
        let task_id = match &run.task_id {
            Some(id) => id.clone(),
            None => create(app, &run).await?,
        };
        let mut uow = UnitOfWork::begin(app).await?;
        if !runs::advance(uow.conn(), step, state::TASK, state::SEARCH).await? {
            return Ok(());
        }
        runs::event(uow.conn(), run.run_id, "search", &format!("TaskTracker task {task_id} created")).await?;
        uow.send(Outgoing::new(queues::SEARCH, &runs::next(step)).run(run.run_id));
        uow.commit(app).await
    }
}

async fn create(app: &App, run: &Run) -> StageResult<String> {
    let pool = &app.db().pool;
    let names = match runs::names(pool, &run.patient_id).await? {
        Some(n) if runs::unusable(&n).is_none() => n,
        _ => return abandon(app, run).await,
    };
    let key = format!("docket-{}-task", run.run_id);
    let task_id = app.tracker().create_task(&key, &run.patient_id, &names).await?;
    sqlx::query("UPDATE docket.runs SET task_id = $2, updated_at = now() WHERE run_id = $1 AND task_id IS NULL")
        .bind(run.run_id)
        .bind(&task_id)
        .execute(pool)
        .await?;
    info!(patient_id = %run.patient_id, %task_id, "task created");
    Ok(task_id)
}

/// The patient's row vanished or became unusable between intake and now:
/// the run ends here (no task could be made without names) and the message
/// is parked so an operator sees why.
async fn abandon(app: &App, run: &Run) -> StageResult<String> {
    let why = format!("patient {} can no longer be used; run abandoned before its task", run.patient_id);
    sqlx::query(
        "UPDATE docket.runs SET state = $2, finished_at = now(), last_error = $3, updated_at = now()
         WHERE run_id = $1 AND finished_at IS NULL",
    )
    .bind(run.run_id)
    .bind(state::ABANDONED)
    .bind(&why)
    .execute(&app.db().pool)
    .await?;
    warn!(patient_id = %run.patient_id, run_id = %run.run_id, "run abandoned");
    Err(StageError::permanent(why))
}

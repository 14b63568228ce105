//! The task room (`docket.task` wakes it): each wake-up serves the room's
//! head, urgent first, batches in turn, and makes its TaskTracker task. The
//! idempotency key comes from the run, so a replay after a crash finds the
//! same task; its ID is checkpointed before the run moves to the search room.

use docket_shared::{
    App, StageError, StageResult, UnitOfWork,
    run::{self, Guard, Run, edges, rooms::Room, wakeup::Serve},
};
use tracing::{info, warn};

pub struct CreateTask;

impl Serve for CreateTask {
    const ROOM: Room = Room::Task;

    /// Few at once: every one holds a TaskTracker slot ahead, and an urgent
    /// run's task must not queue behind many reserved ones.
    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(4)
    }

    async fn serve(&self, app: &App, run: &Run) -> StageResult {
        let pool = &app.db().pool;
        let task_id = match &run.task_id {
            Some(id) => id.clone(),
            None => match run::usable_names(pool, &run.patient_id).await? {
                Some(names) => {
                    let key = run.task_key();
                    let guard = Guard::new(pool, run);
                    let id = app.tracker().create_task(&key, &run.patient_id, &names, &guard).await?;
                    edges::keep_task(pool, run.run_id, &id).await?;
                    info!(patient_id = %run.patient_id, task_id = %id, "task created");
                    id
                }
                None => return abandon(app, run).await,
            },
        };
        let mut uow = UnitOfWork::begin(app).await?;
        if edges::task_created(&mut uow, run, &task_id).await? {
            uow.commit(app).await?;
        }
        Ok(())
    }
}

/// The patient's row vanished or became unusable between intake and now:
/// the run ends here (no task can be made without names) and is parked so
/// an operator sees why.
async fn abandon(app: &App, run: &Run) -> StageResult {
    let why = format!("patient {} can no longer be used; run abandoned before its task", run.patient_id);
    let mut uow = UnitOfWork::begin(app).await?;
    if edges::abandoned(&mut uow, run, &why).await? {
        uow.commit(app).await?;
        warn!(patient_id = %run.patient_id, run_id = %run.run_id, "run abandoned");
    }
    Err(StageError::permanent(why))
}

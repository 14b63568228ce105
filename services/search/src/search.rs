//! The search room (`docket.search` wakes it): each wake-up serves the
//! room's head (urgent first, batches in turn) once a DocEx job slot is free
//! (so downloads keep up with searches), then takes a slot of the
//! search+download budget: only the next slot, never one further ahead, so
//! archive downloads (which may reserve far ahead) go first.
//!
//! Prefetch is 1 per replica: a worker claims the head before it waits for
//! the next slot, so a run that arrives meanwhile is at most one slot behind.

use std::time::Duration;

use docket_shared::{
    App, StageError, StageResult, UnitOfWork,
    run::{
        self, Guard, Run, edges,
        rooms::{self, Room},
        wakeup::Serve,
    },
};
use tracing::info;

pub struct StartSearch;

impl Serve for StartSearch {
    const ROOM: Room = Room::Search;

    fn prefetch(&self, _app: &App) -> u16 {
        1
    }

    async fn serve(&self, app: &App, run: &Run) -> StageResult {
        let pool = &app.db().pool;
        let names = run::usable_names(pool, &run.patient_id)
            .await?
            .ok_or_else(|| StageError::permanent(format!("patient {} can no longer be used", run.patient_id)))?;
        let key = run.search_key();
        let guard = Guard::new(pool, run);
        let hold = app.settings.limit_max_hold;
        let started = std::time::Instant::now();
        let job_id = loop {
            match app.docex().search(&key, &names, &guard).await {
                Ok(job) => break job,
                // Downloads hold the next slots: wait for ours while within the
                // hold, unless a more urgent run came into the room meanwhile:
                // then it takes the turn (the worker serves the room's head
                // again) and this run keeps its place.
                Err(StageError::Wait { after, .. }) if started.elapsed() + after < hold => {
                    if rooms::more_urgent_waits(pool, Room::Search, run.priority()).await? {
                        return Err(StageError::wait(Duration::ZERO, "a more urgent run takes the search turn"));
                    }
                    tokio::time::sleep(after + Duration::from_millis(rand::random::<u64>() % 6)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let mut uow = UnitOfWork::begin(app).await?;
        if edges::search_started(&mut uow, run, &job_id, app.settings.poll_first).await? {
            uow.commit(app).await?;
            info!(patient_id = %run.patient_id, %job_id, "search started");
        }
        Ok(())
    }
}

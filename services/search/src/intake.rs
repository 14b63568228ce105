//! `patients` (and its urgent lane, `patients.urgent`) → a run. A request for a patient whose run is in progress
//! joins it; otherwise a new run starts in the request's batch at its
//! priority, waiting in the task room, committed together with its wake-up
//! (the outbox), so a crash can neither lose nor repeat it.

use std::{sync::Arc, time::Duration};

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    messages::{PatientRequest, valid_patient_id},
    run::{self, DEFAULT_BATCH, Priority, edges, edges::Request},
};
use tracing::info;

/// Intake from `patients`, or (`URGENT`) from its urgent lane
/// `patients.urgent`, whose requests are urgent unless they say otherwise.
/// The lane has its own consumer, so a request published there starts its
/// run at once, however many wait in `patients`.
pub struct Intake<const URGENT: bool>(pub Arc<App>);

impl<const URGENT: bool> Handler for Intake<URGENT> {
    type Input = PatientRequest;
    const QUEUE: &'static str = if URGENT { queues::PATIENTS_URGENT } else { queues::PATIENTS };
    const SHAPE: &'static str =
        r#"{"patient_id": "…"}, optionally with "batch": "…" and "priority": "urgent", "normal" or "bulk""#;

    fn prefetch(&self, app: &App) -> u16 {
        // The lane is for the few: a handful at once keeps the database
        // pool free for the runs it starts. So does the main intake: each
        // request holds a connection for its transaction, so more in flight
        // than half the pool would only queue for connections, ahead of the
        // task and search rooms (an urgent run's claim among them) that
        // share this process's pool.
        if URGENT {
            4
        } else {
            app.settings.prefetch.unwrap_or_else(|| (app.settings.database_pool / 2).clamp(1, 32) as u16)
        }
    }

    async fn handle(&self, request: PatientRequest, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pid = request.patient_id.as_str();
        if !valid_patient_id(pid) {
            return Err(StageError::permanent(
                "patient_id must be 1 to 64 characters of ASCII letters, digits, '-' and '_'",
            ));
        }
        let batch = request.batch.as_deref().unwrap_or(DEFAULT_BATCH);
        if let Some(why) = run::invalid_batch(batch) {
            return Err(StageError::permanent(why));
        }
        let priority = match request.priority.as_deref() {
            None if URGENT => Priority::Urgent,
            None => Priority::Normal,
            Some(text) => Priority::parse(text).map_err(StageError::permanent)?,
        };
        let names = run::names(&app.db().pool, pid)
            .await?
            .ok_or_else(|| StageError::permanent(format!("unknown patient {pid}")))?;
        if let Some(why) = run::unusable(&names) {
            return Err(StageError::permanent(format!("patient {pid} cannot be used: {why}")));
        }
        // Two tries: the run we would join may finish between the two statements.
        for _ in 0..2 {
            let mut uow = UnitOfWork::begin(app).await?;
            let Some(outcome) = edges::request(&mut uow, pid, batch, priority).await? else { continue };
            if let Request::Cancelling(run_id) = outcome {
                // Nothing kept (the transaction rolls back): the request
                // starts a run of its own once the cancelled one has reported.
                info!(patient_id = pid, %run_id, "the run in progress is being cancelled; the request waits");
                return Err(StageError::wait(Duration::from_secs(5), "the patient's run is being cancelled"));
            }
            uow.commit(app).await?;
            match outcome {
                Request::Started(run_id) => {
                    app.metrics.runs_started.inc();
                    info!(patient_id = pid, %run_id, batch, %priority, "run started");
                }
                Request::Joined { run_id, restarted } => {
                    app.metrics.runs_joined.inc();
                    info!(patient_id = pid, %run_id, restarted, "request joined the run in progress");
                }
                Request::Cancelling(_) => {}
            }
            return Ok(());
        }
        Err(StageError::transient("could not start or join a run; trying again"))
    }
}

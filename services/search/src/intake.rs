//! `patients` → a run. A request for a patient whose run is in progress
//! joins it; otherwise a new run starts, with its first step committed
//! together with it (the outbox), so a crash can neither lose nor repeat it.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, Step, state},
    messages::{PatientRequest, valid_patient_id},
};
use tracing::info;
use uuid::Uuid;

pub struct Intake(pub Arc<App>);

impl Handler for Intake {
    type Input = PatientRequest;
    const QUEUE: &'static str = queues::PATIENTS;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(32)
    }

    async fn handle(&self, request: PatientRequest, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pid = request.patient_id.as_str();
        if !valid_patient_id(pid) {
            return Err(StageError::permanent(
                "patient_id must be 1 to 64 characters of ASCII letters, digits, '-' and '_'",
            ));
        }
        let names = runs::names(&app.db().pool, pid)
            .await?
            .ok_or_else(|| StageError::permanent(format!("unknown patient {pid}")))?;
        if let Some(why) = runs::unusable(&names) {
            return Err(StageError::permanent(format!("patient {pid} cannot be used: {why}")));
        }
        // Two tries: the run we would join may finish between the two statements.
        for _ in 0..2 {
            let mut uow = UnitOfWork::begin(app).await?;
            if let Some(run_id) = start(&mut uow, pid).await? {
                runs::event(uow.conn(), run_id, "search", "run started").await?;
                uow.send(Outgoing::new(queues::TASK, &Step { run_id, seq: 0 }).run(run_id));
                uow.commit(app).await?;
                app.metrics.runs_started.inc();
                info!(patient_id = pid, %run_id, "run started");
                return Ok(());
            }
            if let Some((run_id, parked, state, seq)) = join(&mut uow, pid).await? {
                // A run whose step was parked would never finish by itself:
                // the new request sends its current step again (the run's
                // `seq` guard makes that safe). A run parked in a step that
                // cannot be sent again from here (a document's) stays parked,
                // and shows so, for an operator to replay.
                let restart = if parked { runs::step_queue(&state) } else { None };
                let event = match restart {
                    Some(queue) => {
                        sqlx::query("UPDATE docket.runs SET parked = false WHERE run_id = $1")
                            .bind(run_id)
                            .execute(uow.conn())
                            .await?;
                        uow.send(Outgoing::new(queue, &Step { run_id, seq }).run(run_id));
                        "another request restarted the parked run"
                    }
                    None => "another request joined the run",
                };
                runs::event(uow.conn(), run_id, "search", event).await?;
                uow.commit(app).await?;
                app.metrics.runs_joined.inc();
                info!(patient_id = pid, %run_id, restarted = restart.is_some(), "request joined the run in progress");
                return Ok(());
            }
        }
        Err(StageError::transient("could not start or join a run; trying again"))
    }
}

async fn start(uow: &mut UnitOfWork, pid: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO docket.runs (run_id, patient_id, state) VALUES ($1, $2, $3)
         ON CONFLICT (patient_id) WHERE finished_at IS NULL DO NOTHING
         RETURNING run_id",
    )
    .bind(Uuid::now_v7())
    .bind(pid)
    .bind(state::TASK)
    .fetch_optional(uow.conn())
    .await
}

/// Joins the run in progress: (run, whether it was parked, state, seq).
async fn join(uow: &mut UnitOfWork, pid: &str) -> Result<Option<(Uuid, bool, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE docket.runs r SET requests = requests + 1, updated_at = now()
         FROM (SELECT run_id, parked FROM docket.runs WHERE patient_id = $1 AND finished_at IS NULL FOR UPDATE) old
         WHERE r.run_id = old.run_id
         RETURNING r.run_id, old.parked, r.state, r.seq",
    )
    .bind(pid)
    .fetch_optional(uow.conn())
    .await
}

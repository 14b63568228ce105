//! `docket.store`: originals on their way to the conversion room, PDFs (or
//! failures) on their way to the report.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    messages::{Conversion, StoreStep, scratch},
    metrics::DocumentLabels,
    run::{Priority, State, Step, edges},
};
use sqlx::FromRow;
use tokio::sync::Notify;
use tracing::info;
use uuid::Uuid;

use crate::keys;

pub struct Store {
    pub app: Arc<App>,
    /// Wakes the dispatcher: a document entered the room, or one left the
    /// converters and the window has room.
    pub dispatch: Arc<Notify>,
}

#[derive(FromRow)]
struct Doc {
    patient_id: String,
    run_state: String,
    state: String,
    key_name: String,
}

impl Doc {
    /// The run is still among its documents (not cancelled, not done).
    fn run_at_work(&self) -> bool {
        State::parse(&self.run_state) == Some(State::Documents)
    }
}

async fn doc(app: &App, run_id: Uuid, doc: i32) -> StageResult<Option<Doc>> {
    Ok(sqlx::query_as(
        "SELECT r.patient_id, r.state AS run_state, d.state, d.key_name
         FROM docket.documents d JOIN docket.runs r USING (run_id)
         WHERE d.run_id = $1 AND d.doc = $2",
    )
    .bind(run_id)
    .bind(doc)
    .fetch_optional(&app.db().pool)
    .await?)
}

impl Handler for Store {
    type Input = StoreStep;
    const QUEUE: &'static str = queues::STORE;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(32)
    }

    async fn handle(&self, step: StoreStep, _meta: &Meta) -> StageResult {
        match step {
            StoreStep::Original { run_id, doc } => self.original(run_id, doc).await,
            StoreStep::Pdf { run_id, doc, outcome } => self.pdf(run_id, doc, outcome).await,
        }
    }
}

impl Store {
    async fn original(&self, run_id: Uuid, n: i32) -> StageResult {
        let app = &self.app;
        let Some(d) = doc(app, run_id, n).await? else { return Ok(()) };
        if d.state != "extracted" || !d.run_at_work() {
            return Ok(());
        }
        let key = keys::original(&d.patient_id, run_id, n, &d.key_name);
        let bytes = match app.scratch.copy_to(&scratch::original(run_id, n), app.storage(), &key).await {
            Ok(bytes) => bytes,
            // The extracted file is gone from scratch: this document cannot
            // be had any more, which the report says; the run goes on.
            Err(StageError::Permanent(_)) => {
                let lost = Outcome::failed("unknown", "the extracted file was lost before it could be stored");
                return self.finish(run_id, n, "extracted", lost).await;
            }
            Err(e) => return Err(e),
        };
        app.metrics.bytes_stored.inc_by(bytes);
        // Into the conversion room; the dispatcher sends it on in its turn.
        sqlx::query(
            "UPDATE docket.documents SET state = 'stored', original_key = $3, updated_at = now()
             WHERE run_id = $1 AND doc = $2 AND state = 'extracted'",
        )
        .bind(run_id)
        .bind(n)
        .bind(&key)
        .execute(&app.db().pool)
        .await?;
        self.dispatch.notify_one();
        Ok(())
    }

    async fn pdf(&self, run_id: Uuid, n: i32, conversion: Conversion) -> StageResult {
        let app = &self.app;
        let Some(d) = doc(app, run_id, n).await? else { return Ok(()) };
        // A cancelled run reported without this document; it is not stored.
        if d.state != "converting" || !d.run_at_work() {
            return Ok(());
        }
        let outcome = match conversion {
            Conversion::Converted { scratch_key, pages, kind } => {
                let key = keys::pdf(&d.patient_id, run_id, n, &d.key_name);
                match app.scratch.copy_to(&scratch_key, app.storage(), &key).await {
                    Ok(bytes) => {
                        app.metrics.bytes_stored.inc_by(bytes);
                        Outcome { state: "done", pdf_key: Some(key), pages: Some(pages as i32), kind, reason: None }
                    }
                    Err(StageError::Permanent(_)) => {
                        Outcome::failed(&kind, "the converted PDF was lost before it could be stored")
                    }
                    Err(e) => return Err(e),
                }
            }
            Conversion::Failed { kind, reason } => Outcome::failed(&kind, &reason),
        };
        self.finish(run_id, n, "converting", outcome).await
    }

    /// Records a document's end (if it is still in `from`) and counts it;
    /// the count that reaches the total moves the run to its report,
    /// exactly once.
    async fn finish(&self, run_id: Uuid, n: i32, from: &str, outcome: Outcome) -> StageResult {
        let app = &self.app;
        let mut uow = UnitOfWork::begin(app).await?;
        let moved = sqlx::query(
            "UPDATE docket.documents SET state = $3, pdf_key = $4, pages = $5, kind = $6, reason = $7,
                 finished_at = now(), updated_at = now()
             WHERE run_id = $1 AND doc = $2 AND state = $8",
        )
        .bind(run_id)
        .bind(n)
        .bind(outcome.state)
        .bind(&outcome.pdf_key)
        .bind(outcome.pages)
        .bind(&outcome.kind)
        .bind(&outcome.reason)
        .bind(from)
        .execute(uow.conn())
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(());
        }
        let failed = i32::from(outcome.state == "failed");
        let (done, total, seq, run_state, priority): (i32, Option<i32>, i64, String, i16) = sqlx::query_as(
            "UPDATE docket.runs SET docs_done = docs_done + 1, docs_failed = docs_failed + $2, updated_at = now()
             WHERE run_id = $1 RETURNING docs_done, docs_total, seq, state, priority",
        )
        .bind(run_id)
        .bind(failed)
        .fetch_one(uow.conn())
        .await?;
        if Some(done) == total && State::parse(&run_state) == Some(State::Documents) {
            let step = Step { run_id, seq };
            if edges::documents_done(&mut uow, step, Priority::from_rank(priority), done).await? {
                info!(%run_id, documents = done, "last document done; reporting");
            }
        }
        uow.commit(app).await?;
        self.dispatch.notify_one();
        let label = if failed == 1 { "failed" } else { "converted" };
        app.metrics.documents.get_or_create(&DocumentLabels { outcome: label, kind: outcome.kind }).inc();
        Ok(())
    }
}

/// How a document ended.
struct Outcome {
    state: &'static str,
    pdf_key: Option<String>,
    pages: Option<i32>,
    kind: String,
    reason: Option<String>,
}

impl Outcome {
    fn failed(kind: &str, reason: &str) -> Outcome {
        Outcome {
            state: "failed",
            pdf_key: None,
            pages: None,
            kind: kind.to_string(),
            reason: Some(reason.to_string()),
        }
    }
}

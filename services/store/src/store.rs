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
use futures::StreamExt;
use sqlx::FromRow;
use tracing::info;
use uuid::Uuid;

use crate::{dispatch::Wake, keys};

pub struct Store {
    pub app: Arc<App>,
    /// Wakes the dispatcher: a document entered the room, or some left the
    /// converters and the window has room.
    pub dispatch: Arc<Wake>,
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
            StoreStep::Original { run_id, doc } => self.originals(run_id, &[doc]).await,
            StoreStep::Originals { run_id, docs } => self.originals(run_id, &docs).await,
            StoreStep::Pdf { run_id, doc, outcome } => self.pdf(run_id, doc, outcome).await,
        }
    }
}

impl Store {
    /// Stores a chunk of one run's originals and moves them, in one update,
    /// into the conversion room. Each is copied only while it is still
    /// `extracted`: a redelivered chunk copies and counts nothing twice.
    async fn originals(&self, run_id: Uuid, docs: &[i32]) -> StageResult {
        let app = &self.app;
        let rows: Vec<(i32, String, String, String, String)> = sqlx::query_as(
            "SELECT d.doc, r.patient_id, r.state, d.state, d.key_name
             FROM docket.documents d JOIN docket.runs r USING (run_id)
             WHERE d.run_id = $1 AND d.doc = ANY($2) AND d.state = 'extracted'",
        )
        .bind(run_id)
        .bind(docs)
        .fetch_all(&app.db().pool)
        .await?;
        let rows: Vec<_> = rows.into_iter().filter(|r| State::parse(&r.2) == Some(State::Documents)).collect();
        let copied: Vec<(i32, StageResult<(String, u64)>)> = futures::stream::iter(rows)
            .map(|(n, patient_id, _, _, key_name)| async move {
                let key = keys::original(&patient_id, run_id, n, &key_name);
                let copied = app.scratch.copy_to(&scratch::original(run_id, n), app.storage(), &key).await;
                (n, copied.map(|bytes| (key, bytes)))
            })
            .buffered(8)
            .collect()
            .await;
        let (mut stored, mut keys_stored) = (Vec::new(), Vec::new());
        let mut retry = None;
        for (n, copied) in copied {
            match copied {
                Ok((key, bytes)) => {
                    app.metrics.bytes_stored.inc_by(bytes);
                    stored.push(n);
                    keys_stored.push(key);
                }
                // The extracted file is gone from scratch: this document
                // cannot be had any more, which the report says; the run goes on.
                Err(StageError::Permanent(_)) => {
                    let lost = Outcome::failed("unknown", "the extracted file was lost before it could be stored");
                    self.finish(run_id, n, "extracted", lost).await?;
                }
                Err(e) => retry = Some(e),
            }
        }
        // Into the conversion room; the dispatcher sends them on in their turn.
        sqlx::query(
            "UPDATE docket.documents d SET state = 'stored', original_key = p.key, updated_at = now()
             FROM UNNEST($2::int[], $3::text[]) AS p(doc, key)
             WHERE d.run_id = $1 AND d.doc = p.doc AND d.state = 'extracted'",
        )
        .bind(run_id)
        .bind(&stored)
        .bind(&keys_stored)
        .execute(&app.db().pool)
        .await?;
        if !stored.is_empty() {
            self.dispatch.entered();
        }
        // What was stored stays stored; the chunk comes back for the rest.
        match retry {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
        self.dispatch.left();
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

//! `docket.store`: originals on their way to conversion, PDFs (or failures)
//! on their way to the report.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, Outgoing, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    db::runs::{self, Step, state},
    messages::{Conversion, ConvertJob, StoreStep, scratch},
    metrics::DocumentLabels,
};
use sqlx::FromRow;
use tracing::info;
use uuid::Uuid;

use crate::keys;

pub struct Store(pub Arc<App>);

#[derive(FromRow)]
struct Doc {
    patient_id: String,
    state: String,
    name: String,
    key_name: String,
}

async fn doc(app: &App, run_id: Uuid, doc: i32) -> StageResult<Option<Doc>> {
    Ok(sqlx::query_as(
        "SELECT r.patient_id, d.state, d.name, d.key_name
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
        let app = &self.0;
        let Some(d) = doc(app, run_id, n).await? else { return Ok(()) };
        if d.state != "extracted" {
            return Ok(());
        }
        let key = keys::original(&d.patient_id, run_id, n, &d.key_name);
        let bytes = match app.scratch.copy_to(&scratch::original(run_id, n), app.storage(), &key).await {
            Ok(bytes) => bytes,
            // The extracted file is gone from scratch: this document cannot
            // be had any more, which the report says; the run goes on.
            Err(StageError::Permanent(_)) => {
                let lost = Outcome::failed("unknown", "the extracted file was lost before it could be stored");
                return finish(app, run_id, n, "extracted", lost).await;
            }
            Err(e) => return Err(e),
        };
        app.metrics.bytes_stored.inc_by(bytes);
        let mut uow = UnitOfWork::begin(app).await?;
        let moved = sqlx::query(
            "UPDATE docket.documents SET state = 'stored', original_key = $3, updated_at = now()
             WHERE run_id = $1 AND doc = $2 AND state = 'extracted'",
        )
        .bind(run_id)
        .bind(n)
        .bind(&key)
        .execute(uow.conn())
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(());
        }
        let job = ConvertJob { run_id, doc: n, scratch_key: scratch::original(run_id, n), ext: extension(&d.name) };
        uow.send(Outgoing::new(queues::CONVERT, &job).run(run_id));
        uow.commit(app).await
    }

    async fn pdf(&self, run_id: Uuid, n: i32, conversion: Conversion) -> StageResult {
        let app = &self.0;
        let Some(d) = doc(app, run_id, n).await? else { return Ok(()) };
        if d.state != "stored" {
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
        finish(app, run_id, n, "stored", outcome).await
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

/// Records a document's end (if it is still in `from`) and counts it; the
/// count that reaches the total moves the run to its report, exactly once.
async fn finish(app: &App, run_id: Uuid, n: i32, from: &str, outcome: Outcome) -> StageResult {
    let mut uow = UnitOfWork::begin(app).await?;
    let moved = sqlx::query(
        "UPDATE docket.documents SET state = $3, pdf_key = $4, pages = $5, kind = $6, reason = $7, updated_at = now()
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
    let (done, total, seq, run_state): (i32, Option<i32>, i64, String) = sqlx::query_as(
        "UPDATE docket.runs SET docs_done = docs_done + 1, docs_failed = docs_failed + $2, updated_at = now()
         WHERE run_id = $1 RETURNING docs_done, docs_total, seq, state",
    )
    .bind(run_id)
    .bind(failed)
    .fetch_one(uow.conn())
    .await?;
    if Some(done) == total && run_state == state::DOCUMENTS {
        let step = Step { run_id, seq };
        if runs::advance(uow.conn(), step, state::DOCUMENTS, state::REPORT).await? {
            runs::event(uow.conn(), run_id, "store", &format!("all {done} documents done")).await?;
            uow.send(Outgoing::new(queues::REPORT, &runs::next(step)).run(run_id));
            info!(%run_id, documents = done, "last document done; reporting");
        }
    }
    uow.commit(app).await?;
    let label = if failed == 1 { "failed" } else { "converted" };
    app.metrics.documents.get_or_create(&DocumentLabels { outcome: label, kind: outcome.kind }).inc();
    Ok(())
}

/// The extension of an archive name, lower-cased and short, as a hint for
/// the converter (which judges by content).
fn extension(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric()) => {
            ext.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

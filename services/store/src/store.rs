//! `docket.store`: originals on their way to the conversion room, PDFs (or
//! failures) on their way to the report.

use std::{collections::HashMap, sync::Arc};

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    messages::{Conversion, StoreStep, scratch},
    metrics::DocumentLabels,
    run::{Priority, State, Step, edges},
};
use futures::StreamExt;
use tracing::info;
use uuid::Uuid;

use crate::{dispatch::Wake, keys};

pub struct Store {
    pub app: Arc<App>,
    /// Wakes the dispatcher: a document entered the room, or some left the
    /// converters and the window has room.
    pub dispatch: Arc<Wake>,
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
            StoreStep::Pdf { run_id, doc, outcome } => self.pdfs(run_id, vec![(doc, outcome)]).await,
            StoreStep::Pdfs { run_id, results } => self.pdfs(run_id, results).await,
        }
    }
}

impl Store {
    /// Stores a chunk of one run's originals and moves them, in one update,
    /// into the conversion room. Each is copied only while it is still
    /// `extracted`: a redelivered chunk copies and counts nothing twice.
    async fn originals(&self, run_id: Uuid, docs: &[i32]) -> StageResult {
        let app = &self.app;
        let rows: Vec<(i32, String, String, String)> = sqlx::query_as(
            "SELECT d.doc, r.patient_id, r.state, d.key_name
             FROM docket.documents d JOIN docket.runs r USING (run_id)
             WHERE d.run_id = $1 AND d.doc = ANY($2) AND d.state = 'extracted'",
        )
        .bind(run_id)
        .bind(docs)
        .fetch_all(&app.db().pool)
        .await?;
        let rows: Vec<_> = rows.into_iter().filter(|r| State::parse(&r.2) == Some(State::Documents)).collect();
        let copied: Vec<(i32, StageResult<(String, u64)>)> = futures::stream::iter(rows)
            .map(|(n, patient_id, _, key_name)| async move {
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
                    self.finish(run_id, "extracted", vec![(n, lost)]).await?;
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
        retry.map_or(Ok(()), Err)
    }

    /// Stores the PDFs of one conversion message (or records why there are
    /// none) and counts them in one transaction. Only documents still
    /// `converting` count: a redelivered message, or one for a cancelled
    /// run, changes nothing.
    async fn pdfs(&self, run_id: Uuid, results: Vec<(i32, Conversion)>) -> StageResult {
        let app = &self.app;
        let docs: Vec<i32> = results.iter().map(|(n, _)| *n).collect();
        let rows: Vec<(i32, String, String, String)> = sqlx::query_as(
            "SELECT d.doc, r.patient_id, r.state, d.key_name
             FROM docket.documents d JOIN docket.runs r USING (run_id)
             WHERE d.run_id = $1 AND d.doc = ANY($2) AND d.state = 'converting'",
        )
        .bind(run_id)
        .bind(&docs)
        .fetch_all(&app.db().pool)
        .await?;
        // A cancelled run reported without these documents; they are not stored.
        let waiting: HashMap<i32, (String, String)> = rows
            .into_iter()
            .filter(|r| State::parse(&r.2) == Some(State::Documents))
            .map(|(n, patient_id, _, key_name)| (n, (patient_id, key_name)))
            .collect();
        let ended: Vec<(i32, StageResult<Outcome>)> = futures::stream::iter(results)
            .filter(|(n, _)| std::future::ready(waiting.contains_key(n)))
            .map(|(n, conversion)| {
                let waiting = &waiting;
                async move {
                    let (patient_id, key_name) = &waiting[&n];
                    (n, self.pdf(run_id, n, patient_id, key_name, conversion).await)
                }
            })
            .buffered(8)
            .collect()
            .await;
        let mut outcomes = Vec::new();
        let mut retry = None;
        for (n, ended) in ended {
            match ended {
                Ok(outcome) => outcomes.push((n, outcome)),
                Err(e) => retry = Some(e),
            }
        }
        self.finish(run_id, "converting", outcomes).await?;
        // What was stored stays stored; the message comes back for the rest.
        retry.map_or(Ok(()), Err)
    }

    /// One converted PDF into storage, or the reason there is none.
    async fn pdf(
        &self,
        run_id: Uuid,
        n: i32,
        patient_id: &str,
        key_name: &str,
        conversion: Conversion,
    ) -> StageResult<Outcome> {
        let app = &self.app;
        Ok(match conversion {
            Conversion::Converted { scratch_key, pages, kind } => {
                let key = keys::pdf(patient_id, run_id, n, key_name);
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
        })
    }

    /// Records documents' ends (those still in `from`) and counts them; the
    /// count that reaches the total moves the run to its report, exactly once.
    async fn finish(&self, run_id: Uuid, from: &str, outcomes: Vec<(i32, Outcome)>) -> StageResult {
        if outcomes.is_empty() {
            return Ok(());
        }
        let app = &self.app;
        let mut uow = UnitOfWork::begin(app).await?;
        let docs: Vec<i32> = outcomes.iter().map(|(n, _)| *n).collect();
        let states: Vec<&str> = outcomes.iter().map(|(_, o)| o.state).collect();
        let pdf_keys: Vec<Option<&str>> = outcomes.iter().map(|(_, o)| o.pdf_key.as_deref()).collect();
        let pages: Vec<Option<i32>> = outcomes.iter().map(|(_, o)| o.pages).collect();
        let kinds: Vec<&str> = outcomes.iter().map(|(_, o)| o.kind.as_str()).collect();
        let reasons: Vec<Option<&str>> = outcomes.iter().map(|(_, o)| o.reason.as_deref()).collect();
        let moved: Vec<i32> = sqlx::query_scalar(
            "UPDATE docket.documents d SET state = p.state, pdf_key = p.pdf_key, pages = p.pages, kind = p.kind,
                 reason = p.reason, finished_at = now(), updated_at = now()
             FROM UNNEST($2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
                 AS p(doc, state, pdf_key, pages, kind, reason)
             WHERE d.run_id = $1 AND d.doc = p.doc AND d.state = $8
             RETURNING d.doc",
        )
        .bind(run_id)
        .bind(&docs)
        .bind(&states)
        .bind(&pdf_keys)
        .bind(&pages)
        .bind(&kinds)
        .bind(&reasons)
        .bind(from)
        .fetch_all(uow.conn())
        .await?;
        if moved.is_empty() {
            return Ok(());
        }
        let ended: Vec<&Outcome> = outcomes.iter().filter(|(n, _)| moved.contains(n)).map(|(_, o)| o).collect();
        let failed = ended.iter().filter(|o| o.state == "failed").count() as i32;
        let (done, total, seq, run_state, priority): (i32, Option<i32>, i64, String, i16) = sqlx::query_as(
            "UPDATE docket.runs SET docs_done = docs_done + $2, docs_failed = docs_failed + $3, updated_at = now()
             WHERE run_id = $1 RETURNING docs_done, docs_total, seq, state, priority",
        )
        .bind(run_id)
        .bind(ended.len() as i32)
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
        for outcome in ended {
            self.dispatch.left();
            let label = if outcome.state == "failed" { "failed" } else { "converted" };
            app.metrics.documents.get_or_create(&DocumentLabels { outcome: label, kind: outcome.kind.clone() }).inc();
        }
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

//! The convert stage: `docket.convert` → documents from scratch to PDF, each
//! in an isolated warm doc worker (or office worker), the results published to
//! the store stage. It touches nothing but scratch; CONVERT_PREFETCH slots
//! bound how many conversions (each capped at CONVERT_MEMORY_LIMIT) run at
//! once, and `basic.qos` how many messages are in hand.

use std::{path::PathBuf, sync::Arc};

use docket_shared::{
    App, Handler, Meta, Needs, Outgoing, Service, StageError, StageResult,
    broker::{Consumer, topology::queues},
    consumer,
    messages::{Conversion, ConvertDoc, ConvertJob, StoreStep, scratch},
    metrics::{KindLabels, PoolLabels, WorkerLabels},
    slots::Slots,
};
use tracing::debug;
use uuid::Uuid;

use docket_engine::{ConvertError, Engine, Limits, PoolSettings, limits::host_prefetch};

pub fn service() -> Service {
    Service { name: "convert", port: 9104, needs: Needs::default() }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    let s = &app.settings;
    let limits = Limits::new(s.convert_memory_limit, s.convert_timeout);
    let prefetch =
        s.convert_prefetch.unwrap_or_else(|| host_prefetch(limits.memory_bytes).min(u16::MAX as usize) as u16);
    let exe = s
        .convert_exe
        .clone()
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("docket-convert"));
    tracing::info!(prefetch, memory_cap = limits.memory_bytes, timeout = ?limits.timeout, "conversion limits");
    // One warm office worker per slot: a slot never waits for LibreOffice to start.
    let office = PoolSettings {
        size: prefetch.into(),
        limits,
        max_docs: s.convert_office_max_docs,
        max_rss_bytes: s.convert_office_max_rss,
        work_dir: s.work_dir.clone(),
    };
    // The doc workers take the office workers' size and caps, and recycle by their own rules.
    let documents =
        PoolSettings { max_docs: s.convert_doc_max_docs, max_rss_bytes: s.convert_doc_max_rss, ..office.clone() };
    let engine = Engine::with_pools(exe, office, documents);
    // Two lanes, one bulkhead: urgent runs' documents take the next free slot.
    let convert = Arc::new(Convert { app: app.clone(), engine, prefetch, slots: Slots::new(prefetch.into()) });
    // Every series from the start, at zero: a panel reads "none", not "no data".
    convert.export_pools();
    vec![consumer(app, Lane::<false>(convert.clone())), consumer(app, Lane::<true>(convert))]
}

/// Runs the convert stage until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    service().main(consumers).await
}

pub struct Convert {
    app: Arc<App>,
    /// Conversions: warm capped doc workers, and warm office workers for DOCX, RTF, DOC and ODT.
    engine: Engine,
    /// CONVERT_PREFETCH: the slots; each lane's prefetch is one more.
    prefetch: u16,
    /// CONVERT_PREFETCH conversions at once across both lanes.
    slots: Slots,
}

/// The convert handler on one lane: `docket.convert`, or its urgent lane.
pub struct Lane<const URGENT: bool>(Arc<Convert>);

/// A short, safe extension for the child's file name (a hint only).
fn safe_ext(ext: &str) -> String {
    let e: String = ext.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    if e.is_empty() { "bin".into() } else { e.to_ascii_lowercase() }
}

impl<const URGENT: bool> Handler for Lane<URGENT> {
    type Input = ConvertJob;
    const QUEUE: &'static str = if URGENT { queues::CONVERT_URGENT } else { queues::CONVERT };

    /// One message more than the slots: it waits here, not in the broker,
    /// for the next slot to free, so a slot goes straight on to its next
    /// document instead of idling through the ack, the store message's
    /// confirm and the next delivery. The slots, not the prefetch, bound the
    /// conversions (and so the memory); a message waiting for one holds no
    /// worker. On a convert pod with one core of its own that cut the
    /// 3000-file archive's overhead over its conversions from 12 % to 7 %
    /// (docs/benchmarks.md).
    fn prefetch(&self, _app: &App) -> u16 {
        self.0.prefetch.saturating_add(1)
    }

    async fn handle(&self, job: ConvertJob, _meta: &Meta) -> StageResult {
        let convert = &self.0;
        let mut results = Vec::new();
        for doc in job.docs() {
            // The slot is taken for each document, not the whole message: an
            // urgent document waits for one conversion at most.
            let slot = convert.slots.acquire(URGENT).await;
            let outcome = convert.convert(job.run_id, &doc).await;
            drop(slot);
            convert.export_pools();
            match outcome {
                Ok(outcome) => results.push((doc.doc, outcome)),
                Err(e) => {
                    // What is done goes on; the message comes back for the rest
                    // (the store stage takes each document's result once).
                    convert.send(job.run_id, results).await?;
                    return Err(e);
                }
            }
        }
        convert.send(job.run_id, results).await
    }
}

impl Convert {
    /// The pools' counters as metrics. The engine keeps them (it is a
    /// library of its own, without the service's registry); they are copied
    /// after each document, which is when they change.
    fn export_pools(&self) {
        let metrics = &self.app.metrics;
        for (pool, p) in [("doc", self.engine.documents()), ("office", self.engine.office())] {
            let stats = p.stats();
            for (event, n) in [("started", stats.started), ("failed", stats.failed), ("recycled", stats.recycled)] {
                let counter = metrics.converter_workers.get_or_create(&WorkerLabels { pool, event });
                // Monotonic in the engine, so monotonic here.
                counter.inner().store(n, std::sync::atomic::Ordering::Relaxed);
            }
            let idle = i64::try_from(p.idle_pids().len()).unwrap_or(i64::MAX);
            metrics.converter_workers_idle.get_or_create(&PoolLabels { pool }).set(idle);
        }
    }

    /// Hands the results to the store stage: one document's as before, several in one message.
    async fn send(&self, run_id: Uuid, mut results: Vec<(i32, Conversion)>) -> StageResult {
        let step = match results.len() {
            0 => return Ok(()),
            1 => {
                let (doc, outcome) = results.remove(0);
                StoreStep::Pdf { run_id, doc, outcome }
            }
            _ => StoreStep::Pdfs { run_id, results },
        };
        self.app.broker.publisher.send(&Outgoing::new(queues::STORE, &step).run(run_id)).await?;
        Ok(())
    }

    /// One document from scratch to a PDF in scratch, or the reason it cannot be one.
    async fn convert(&self, run_id: Uuid, job: &ConvertDoc) -> StageResult<Conversion> {
        let app = &self.app;
        let work = tempfile::tempdir_in(&app.settings.work_dir)?;
        let ext = safe_ext(&job.ext);
        let input = match app.scratch.local_path(&job.scratch_key) {
            Some(path) => path,
            None => {
                let path = work.path().join(format!("input.{ext}"));
                match app.scratch.get_to_file(&job.scratch_key, &path).await {
                    Ok(_) => path,
                    Err(StageError::Permanent(_)) => work.path().join("missing"),
                    Err(e) => return Err(e),
                }
            }
        };
        if !input.exists() {
            // The run may have finished already (a duplicate message); if not,
            // the store stage records this as the document's failure.
            debug!(%run_id, doc = job.doc, "original no longer in scratch");
            return Ok(Conversion::Failed {
                kind: "unknown".into(),
                reason: "the original file was lost before conversion".into(),
            });
        }
        let output = work.path().join("out.pdf");
        let started = std::time::Instant::now();
        // The archive's own name, for the page header (a hint to the type
        // too); a generic one if it is missing.
        let name = match app.scratch.get_bytes(&scratch::name(run_id, job.doc)).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => format!("document.{ext}"),
        };
        let outcome = match self.engine.convert(&input, &output, &name).await {
            Ok(done) => {
                let key = scratch::pdf(run_id, job.doc);
                app.scratch.put_moved(&key, &output).await?;
                Conversion::Converted { scratch_key: key, pages: done.pages, kind: done.kind.to_string() }
            }
            Err(ConvertError::Document { kind, reason }) => Conversion::Failed { kind: kind.to_string(), reason },
            Err(ConvertError::Internal(why)) => return Err(StageError::transient(format!("converter: {why}"))),
        };
        let kind = match &outcome {
            Conversion::Converted { kind, .. } | Conversion::Failed { kind, .. } => kind.clone(),
        };
        app.metrics.conversion_seconds.get_or_create(&KindLabels { kind }).observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }
}

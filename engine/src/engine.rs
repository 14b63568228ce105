//! [`Engine`]: one document to PDF as the service does it. Every document is judged, and all but
//! office documents converted, in a warm doc worker of one [`WorkerPool`]; office documents go on
//! to a warm office worker of another, so neither a fork and exec of the service (for the one) nor
//! LibreOffice's start (for the other) is paid per document. Both kinds of worker run under the
//! caps of the one-shot child ([`crate::convert_isolated`]'s) and are replaced when a document
//! hangs, crashes or overruns them.

use std::path::{Path, PathBuf};

use crate::pool::{PoolSettings, WorkerPool};
use crate::{ConvertError, Converted};

/// Documents a doc worker converts before it is replaced.
const DOC_WORKER_MAX_DOCS: u32 = 1000;
/// Resident memory past which a doc worker is replaced after its document: freed memory glibc kept
/// after a large document.
const DOC_WORKER_MAX_RSS: u64 = 256 << 20;

/// The conversion engine: the pools of doc workers and office workers.
pub struct Engine {
    documents: WorkerPool,
    office: WorkerPool,
}

impl Engine {
    /// `exe` is the binary whose `doc-worker` and `office-worker` modes convert (the running
    /// service). The doc workers take the office workers' size and limits, and recycle after
    /// 1000 documents or 256 MiB resident.
    pub fn new(exe: PathBuf, office: PoolSettings) -> Engine {
        let documents =
            PoolSettings { max_docs: DOC_WORKER_MAX_DOCS, max_rss_bytes: DOC_WORKER_MAX_RSS, ..office.clone() };
        Engine::with_pools(exe, office, documents)
    }

    /// [`Engine::new`] with the doc workers' settings given too.
    pub fn with_pools(exe: PathBuf, office: PoolSettings, documents: PoolSettings) -> Engine {
        Engine { documents: WorkerPool::for_documents(exe.clone(), documents), office: WorkerPool::new(exe, office) }
    }

    /// Converts `input` (a local file) into a PDF at `output`. `name` is the document's name in its
    /// archive: a tie-breaker for its type and the header of text pages. No partial PDF is left
    /// behind on failure.
    ///
    /// Must be called from a tokio worker thread (not `spawn_blocking`): a worker's parent-death
    /// signal is tied to the thread that starts it.
    pub async fn convert(&self, input: &Path, output: &Path, name: &str) -> Result<Converted, ConvertError> {
        let result = match self.documents.judge(input, output, name).await {
            Ok((judged, true)) => self
                .office
                .convert(judged.kind, input, output)
                .await
                .map(|pages| Converted { pages, kind: judged.kind }),
            Ok((converted, false)) => Ok(converted),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(output).await;
        }
        result
    }

    /// The warm office workers (their counters, for metrics and tests).
    pub fn office(&self) -> &WorkerPool {
        &self.office
    }

    /// The warm doc workers (their counters, for metrics and tests).
    pub fn documents(&self) -> &WorkerPool {
        &self.documents
    }

    /// Process IDs of all warm workers waiting for a document, of both pools.
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids = self.documents.idle_pids();
        pids.extend(self.office.idle_pids());
        pids
    }
}

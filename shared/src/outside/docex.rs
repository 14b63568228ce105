//! The DocumentExchange client: search, job status, archive download, each
//! through the gate, with the answers the stages need as plain types.

use std::path::Path;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Admission, Budget, Gate, gate::read_json};
use crate::{
    error::{StageError, StageResult},
    run::{Guard, Names},
    settings::Secret,
};

#[derive(Clone)]
pub struct Docex {
    pub gate: Gate,
    base: url::Url,
    token: Option<Secret>,
}

/// A job as DocEx reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Finished {
        count: u32,
        archive_url: Option<String>,
    },
    Failed,
    /// DocEx does not know the job (404): start a new search.
    Missing,
}

/// The outcome of an archive download.
#[derive(Debug, PartialEq, Eq)]
pub enum Download {
    Saved {
        bytes: u64,
    },
    /// 410: the archive expired; a new search is needed.
    Expired,
    /// 404: no such archive (the job is gone).
    Missing,
    /// Bigger than the archive cap; nothing kept.
    TooLarge {
        limit: u64,
    },
}

#[derive(Deserialize)]
struct JobRef {
    job_id: String,
}

#[derive(Deserialize)]
struct JobBody {
    status: String,
    document_count: Option<u32>,
    archive_url: Option<String>,
}

impl Docex {
    pub fn new(gate: Gate, base: &str, token: Option<Secret>) -> anyhow::Result<Docex> {
        let base = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| anyhow::anyhow!("setting DOCEX_URL: {e}"))?;
        Ok(Docex { gate, base, token })
    }

    fn url(&self, path: &str) -> StageResult<url::Url> {
        self.base.join(path).map_err(|e| StageError::permanent(format!("bad DocEx path {path}: {e}")))
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb,
        }
    }

    /// Starts (or, with the same key, finds again) a search for the names.
    pub async fn search(&self, idempotency_key: &str, names: &Names, guard: &Guard) -> StageResult<String> {
        let body = serde_json::json!({ "first_name": names.first, "last_name": names.last });
        let rb = self
            .authed(self.gate.http.post(self.url("v1/searches")?))
            .timeout(self.gate_timeout())
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        let response = self.gate.call("search", Budget::DocexSearch, Admission::NextOnly, rb, Some(guard)).await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::CREATED => {
                let job: JobRef = read_json(response, "reading DocEx's search answer").await?;
                Ok(job.job_id)
            }
            s => Err(StageError::permanent(format!("DocumentExchange refused the search ({s})"))),
        }
    }

    pub async fn status(&self, job_id: &str, guard: &Guard) -> StageResult<JobStatus> {
        let url = self.url(&format!("v1/searches/{}", urlencode(job_id)))?;
        let rb = self.authed(self.gate.http.get(url)).timeout(self.gate_timeout());
        let response = self.gate.call("status", Budget::DocexStatus, Admission::Hold, rb, Some(guard)).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(JobStatus::Missing),
            s => return Err(StageError::transient(format!("DocumentExchange status answered {s}"))),
        }
        let job: JobBody = read_json(response, "reading DocEx's job status").await?;
        Ok(match job.status.as_str() {
            "queued" | "running" => JobStatus::Pending,
            "finished" => JobStatus::Finished { count: job.document_count.unwrap_or(0), archive_url: job.archive_url },
            "failed" => JobStatus::Failed,
            other => {
                // Shown only as far as it looks like a status word.
                let word: String = other.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(24).collect();
                return Err(StageError::transient(format!("DocumentExchange reported an unknown job status {word:?}")));
            }
        })
    }

    /// Streams the archive at `url` into `dest` (never into memory), up to
    /// `limit` bytes. Archive downloads take priority in the shared budget.
    pub async fn download(&self, url: &str, dest: &Path, limit: u64, guard: &Guard) -> StageResult<Download> {
        let target = self.base.join(url).map_err(|e| StageError::permanent(format!("bad archive URL: {e}")))?;
        let rb = self.gate.http.get(target.clone());
        // The token goes only to DocEx's own origin, whatever URL it hands us.
        let rb = if target.origin() == self.base.origin() { self.authed(rb) } else { rb };
        let mut response = self.gate.call("archive", Budget::DocexSearch, Admission::Hold, rb, Some(guard)).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::GONE => return Ok(Download::Expired),
            StatusCode::NOT_FOUND => return Ok(Download::Missing),
            s => return Err(StageError::transient(format!("DocumentExchange archive answered {s}"))),
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Ok(Download::TooLarge { limit });
        }
        let mut file = tokio::fs::File::create(dest).await?;
        let mut bytes = 0u64;
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let _ = self.gate.breaker.failed(self.gate.api).await;
                    return Err(StageError::transient(format!("archive download broke off after {bytes} bytes: {e}")));
                }
            };
            bytes += chunk.len() as u64;
            if bytes > limit {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Ok(Download::TooLarge { limit });
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(Download::Saved { bytes })
    }

    fn gate_timeout(&self) -> std::time::Duration {
        self.gate.http_timeout()
    }
}

/// Percent-encodes a path segment (job ids are opaque strings).
pub(crate) fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

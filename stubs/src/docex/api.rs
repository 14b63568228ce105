//! The DocEx API handlers: start a search, read a job, download an archive.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Docex;
use super::jobs::{Archive, JobStatus};
use crate::arrivals::now_ms;
use crate::gate::error;
use crate::idempotency;
use crate::util::lock;

#[derive(Deserialize)]
struct SearchRequest {
    first_name: String,
    last_name: String,
}

/// The answer to `GET /v1/searches/{job_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: String,
    pub status: JobStatus,
    /// Entries in the archive; only when finished.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub document_count: Option<u32>,
    /// Absolute URL of the archive; only when finished with documents.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub archive_url: Option<String>,
}

fn name_ok(s: &str) -> bool {
    (1..=200).contains(&s.chars().count())
}

/// `POST /v1/searches`: 202 with a job id, the same one for a replayed key.
pub(super) async fn search(State(st): State<Arc<Docex>>, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = now_ms();
    let key = match idempotency::key_from(&headers) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let req: SearchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed search: {e}")),
    };
    if !name_ok(&req.first_name) || !name_ok(&req.last_name) {
        return error(StatusCode::BAD_REQUEST, "first_name and last_name must be 1 to 200 characters");
    }
    let (job_id, order) = lock(&st.jobs).start(&st.cfg, &req.first_name, &req.last_name, key, Instant::now());
    st.arrivals.remember(&job_id, &req.last_name);
    st.arrivals.record(arrived, "search", &req.last_name);
    if let Some(order) = order {
        tracing::info!(%job_id, documents = order.documents, kind = %order.kind, "search job started");
        super::files::generate(Arc::clone(&st), order);
    } else {
        tracing::info!(%job_id, "search answered (no archive to write, or a replay)");
    }
    (StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response()
}

/// `GET /v1/searches/{job_id}`.
pub(super) async fn status(State(st): State<Arc<Docex>>, Path(job_id): Path<String>, headers: HeaderMap) -> Response {
    st.arrivals.record(now_ms(), "status", &st.arrivals.subject_of(&job_id));
    let now = Instant::now();
    let jobs = lock(&st.jobs);
    let Some(job) = jobs.map.get(&job_id) else {
        return error(StatusCode::NOT_FOUND, "no such job");
    };
    let status = job.status(now);
    let finished = status == JobStatus::Finished;
    let view = JobView {
        job_id: job.id.clone(),
        status,
        document_count: finished.then_some(job.documents),
        archive_url: (finished && job.documents > 0)
            .then(|| format!("{}/v1/archives/{}", origin(&headers, &st.origin), job.id)),
    };
    Json(view).into_response()
}

/// The origin the client used (its Host header), so archive URLs work behind
/// port mappings and container names too.
fn origin(headers: &HeaderMap, fallback: &str) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => fallback.to_owned(),
    }
}

/// `GET /v1/archives/{job_id}`: the zip, streamed from disk.
pub(super) async fn archive(State(st): State<Arc<Docex>>, Path(job_id): Path<String>) -> Response {
    st.arrivals.record(now_ms(), "archive", &st.arrivals.subject_of(&job_id));
    let now = Instant::now();
    let path = {
        let jobs = lock(&st.jobs);
        let Some(job) = jobs.map.get(&job_id) else {
            return error(StatusCode::NOT_FOUND, "no such job");
        };
        if job.status(now) != JobStatus::Finished || job.documents == 0 {
            return error(StatusCode::NOT_FOUND, "the job is not finished, failed, or found no documents");
        }
        match &job.archive {
            Archive::Ready { path, .. } if now < job.finished_at() + st.cfg.archive_ttl => path.clone(),
            Archive::Ready { .. } | Archive::Gone => {
                drop(jobs);
                super::files::expire(&st, now);
                return error(StatusCode::GONE, "the archive expired; start a new search");
            }
            _ => return error(StatusCode::NOT_FOUND, "no archive"),
        }
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return error(StatusCode::GONE, "the archive expired; start a new search"),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    tracing::info!(%job_id, bytes = len, "archive download");
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{job_id}.zip\"")),
        ],
        body,
    )
        .into_response()
}

/// Any path the API does not have.
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

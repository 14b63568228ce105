//! The TaskTracker API handlers: create a task, read it, set its status, append a report.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::TaskTracker;
use super::model::{Report, TaskStatus, TaskView};
use crate::arrivals::now_ms;
use crate::gate::error;
use crate::idempotency;
use crate::util::lock;

/// Largest body the tracker takes (the OpenAPI's report limit).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Past this we stop reading and let the connection close.
const DRAIN_LIMIT: usize = 256 * 1024 * 1024;

/// Reads a body up to 16 MiB; a larger one is read to its end (so the client
/// can see the answer) and refused with 413.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| error(StatusCode::BAD_REQUEST, &format!("unreadable body: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_BODY {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 16 MiB"));
    }
    Ok(buf.into())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("malformed {what}: {e}")))
}

fn len_ok(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.chars().count())
}

#[derive(Deserialize)]
struct NewTask {
    patient_id: String,
    first_name: String,
    last_name: String,
}

/// `POST /v1/tasks`: 201 with a new task id, 200 with the same id for a replayed key.
pub(super) async fn create_task(State(st): State<Arc<TaskTracker>>, headers: HeaderMap, body: Body) -> Response {
    let arrived = now_ms();
    let run = async {
        let key = idempotency::key_from(&headers)?;
        let t: NewTask = parse(&read_body(body).await?, "task")?;
        if !len_ok(&t.patient_id, 64) || !len_ok(&t.first_name, 200) || !len_ok(&t.last_name, 200) {
            return Err(error(StatusCode::BAD_REQUEST, "patient_id must be 1-64 characters, names 1-200"));
        }
        let patient_id = t.patient_id.clone();
        st.arrivals.record(arrived, "create_task", &patient_id);
        let (task_id, created) = lock(&st.tracker).create(t.patient_id, t.first_name, t.last_name, key, Instant::now());
        st.arrivals.remember(&task_id, &patient_id);
        tracing::info!(%task_id, %patient_id, created, "task create");
        let code = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((code, Json(json!({ "task_id": task_id }))).into_response())
    };
    run.await.unwrap_or_else(|r| r)
}

/// `GET /v1/tasks/{task_id}`.
pub(super) async fn get_task(State(st): State<Arc<TaskTracker>>, Path(task_id): Path<String>) -> Response {
    let t = lock(&st.tracker);
    match t.tasks.get(&task_id) {
        Some(task) => Json(TaskView::from(task)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such task"),
    }
}

#[derive(Deserialize)]
struct NewStatus {
    status: TaskStatus,
}

/// `PUT /v1/tasks/{task_id}/status`: 200 without a body; the same status again is harmless.
pub(super) async fn set_status(
    State(st): State<Arc<TaskTracker>>,
    Path(task_id): Path<String>,
    body: Body,
) -> Response {
    st.arrivals.record(now_ms(), "set_status", &st.arrivals.subject_of(&task_id));
    let run = async {
        let s: NewStatus = parse(&read_body(body).await?, "status")?;
        if s.status == TaskStatus::New {
            return Err(error(StatusCode::BAD_REQUEST, "status must be DOCUMENTS_FOUND or DOCUMENTS_NOT_FOUND"));
        }
        if !lock(&st.tracker).set_status(&task_id, s.status) {
            return Err(error(StatusCode::NOT_FOUND, "no such task"));
        }
        tracing::info!(%task_id, status = ?s.status, "task status set");
        Ok(StatusCode::OK.into_response())
    };
    run.await.unwrap_or_else(|r| r)
}

/// `POST /v1/tasks/{task_id}/reports`: 201 with a report id, 200 for a replayed key.
pub(super) async fn add_report(
    State(st): State<Arc<TaskTracker>>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    st.arrivals.record(now_ms(), "add_report", &st.arrivals.subject_of(&task_id));
    let run = async {
        let key = idempotency::key_from(&headers)?;
        let body = read_body(body).await?;
        if !lock(&st.tracker).tasks.contains_key(&task_id) {
            return Err(error(StatusCode::NOT_FOUND, "no such task"));
        }
        let report: Report = parse(&body, "report")?;
        if report.documents.iter().any(|d| d.pages == Some(0)) {
            return Err(error(StatusCode::BAD_REQUEST, "pages must be at least 1"));
        }
        let (docs, fails) = (report.documents.len(), report.failures.len());
        let (report_id, created) = lock(&st.tracker)
            .add_report(&task_id, report, key, Instant::now())
            .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such task"))?;
        tracing::info!(%task_id, %report_id, created, documents = docs, failures = fails, "report append");
        let code = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok((code, Json(json!({ "report_id": report_id }))).into_response())
    };
    run.await.unwrap_or_else(|r| r)
}

/// Any path the API does not have (it still spent budget: the tracker counts everything).
pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

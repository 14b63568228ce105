//! The TaskTracker client: create a task, set its status, append the report.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Admission, Budget, Gate, docex::urlencode, gate::read_json};
use crate::{
    error::{StageError, StageResult},
    run::{Guard, Names},
    settings::Secret,
};

#[derive(Clone)]
pub struct TaskTracker {
    pub gate: Gate,
    base: url::Url,
    token: Option<Secret>,
}

/// The report appended to a task (the schema of tasktracker.openapi.yaml).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub summary: String,
    pub documents: Vec<ReportDocument>,
    pub failures: Vec<ReportFailure>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportDocument {
    pub name: String,
    pub pdf: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReportFailure {
    pub name: String,
    pub reason: String,
}

/// A task as TaskTracker shows it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Task {
    pub task_id: String,
    pub patient_id: String,
    pub status: String,
    pub reports: Vec<Report>,
}

#[derive(Deserialize)]
struct TaskRef {
    task_id: String,
}

#[derive(Deserialize)]
struct ReportRef {
    report_id: String,
}

/// How a 404 for the run's own task reads: the tracker lost the task (or
/// was reset), and no retry will bring it back.
const TASK_GONE: &str = "TaskTracker has no task";

fn task_gone(task_id: &str, status: StatusCode) -> StageError {
    StageError::permanent(format!("{TASK_GONE} {task_id} any more ({status}): it was deleted or lost"))
}

/// True when `e` says TaskTracker no longer has the task (see [`TASK_GONE`]).
pub fn is_task_gone(e: &StageError) -> bool {
    matches!(e, StageError::Permanent(reason) if reason.starts_with(TASK_GONE))
}

impl TaskTracker {
    pub fn new(gate: Gate, base: &str, token: Option<Secret>) -> anyhow::Result<TaskTracker> {
        let base = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| anyhow::anyhow!("setting TASKTRACKER_URL: {e}"))?;
        Ok(TaskTracker { gate, base, token })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> StageResult<reqwest::RequestBuilder> {
        let url = self.base.join(path).map_err(|e| StageError::permanent(format!("bad TaskTracker path: {e}")))?;
        let rb = self.gate.http.request(method, url).timeout(self.gate.http_timeout());
        Ok(match &self.token {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb,
        })
    }

    async fn send(
        &self,
        endpoint: &'static str,
        rb: reqwest::RequestBuilder,
        guard: Option<&Guard>,
    ) -> StageResult<reqwest::Response> {
        self.gate.call(endpoint, Budget::TaskTracker, Admission::Hold, rb, guard).await
    }

    /// Creates the patient's task; the key makes a replay return the same task.
    pub async fn create_task(&self, key: &str, patient_id: &str, names: &Names, guard: &Guard) -> StageResult<String> {
        let body = serde_json::json!({
            "patient_id": patient_id, "first_name": names.first, "last_name": names.last,
        });
        let rb = self.request(reqwest::Method::POST, "v1/tasks")?.header("Idempotency-Key", key).json(&body);
        let response = self.send("create_task", rb, Some(guard)).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                Ok(read_json::<TaskRef>(response, "reading TaskTracker's answer").await?.task_id)
            }
            s => Err(StageError::permanent(format!("TaskTracker refused to create the task ({s})"))),
        }
    }

    pub async fn set_status(&self, task_id: &str, status: &str, guard: &Guard) -> StageResult {
        let path = format!("v1/tasks/{}/status", urlencode(task_id));
        let rb = self.request(reqwest::Method::PUT, &path)?.json(&serde_json::json!({ "status": status }));
        let response = self.send("set_status", rb, Some(guard)).await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(task_gone(task_id, StatusCode::NOT_FOUND)),
            s => Err(StageError::permanent(format!("TaskTracker refused the status of task {task_id} ({s})"))),
        }
    }

    /// Appends the report; the key makes a replay return the same report.
    pub async fn append_report(&self, task_id: &str, key: &str, report: &Report, guard: &Guard) -> StageResult<String> {
        let path = format!("v1/tasks/{}/reports", urlencode(task_id));
        let rb = self.request(reqwest::Method::POST, &path)?.header("Idempotency-Key", key).json(report);
        let response = self.send("append_report", rb, Some(guard)).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                Ok(read_json::<ReportRef>(response, "reading TaskTracker's answer").await?.report_id)
            }
            StatusCode::NOT_FOUND => Err(task_gone(task_id, StatusCode::NOT_FOUND)),
            s => Err(StageError::permanent(format!("TaskTracker refused the report for task {task_id} ({s})"))),
        }
    }

    pub async fn task(&self, task_id: &str) -> StageResult<Task> {
        let rb = self.request(reqwest::Method::GET, &format!("v1/tasks/{}", urlencode(task_id)))?;
        let response = self.send("get_task", rb, None).await?;
        match response.status() {
            StatusCode::OK => read_json(response, "reading TaskTracker's task").await,
            StatusCode::NOT_FOUND => Err(task_gone(task_id, StatusCode::NOT_FOUND)),
            s => Err(StageError::permanent(format!("TaskTracker would not show task {task_id} ({s})"))),
        }
    }
}

//! DocEx admin endpoints: stats, faults, profiles, jobs, budget logs (never gated, never faulted).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Docex;
use super::jobs::{Archive, JobStatus, Profile};
use crate::archive::ArchiveKind;
use crate::budget::Budget;
use crate::gate::error;
use crate::util::lock;

pub(super) async fn stats(State(st): State<Arc<Docex>>) -> Response {
    Json(st.stats()).into_response()
}

pub(super) async fn get_faults(State(st): State<Arc<Docex>>) -> Response {
    st.gate.faults_now()
}

/// `PUT /admin/faults`: see [`Gate::set_faults_from`](crate::gate::Gate::set_faults_from).
pub(super) async fn put_faults(State(st): State<Arc<Docex>>, body: axum::body::Bytes) -> Response {
    st.gate.set_faults_from("DocEx", &body)
}

/// One element of the `PUT /admin/profiles` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileEntry {
    pub first_name: String,
    pub last_name: String,
    pub profile: Profile,
}

/// `PUT /admin/profiles` with `[{first_name, last_name, profile}]`.
pub(super) async fn put_profiles(State(st): State<Arc<Docex>>, body: axum::body::Bytes) -> Response {
    let entries: Vec<ProfileEntry> = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed profiles: {e}")),
    };
    if let Some(e) = entries.iter().find_map(|e| e.profile.validate().err()) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let n = entries.len();
    for e in entries {
        st.set_profile(&e.first_name, &e.last_name, e.profile);
    }
    tracing::info!(profiles = n, "DocEx profiles set");
    Json(serde_json::json!({ "profiles": n })).into_response()
}

/// One job as `GET /admin/jobs` lists it (no patient names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminJob {
    pub job_id: String,
    pub status: JobStatus,
    pub documents: u32,
    pub kind: ArchiveKind,
    /// Size of the archive on disk, while it is there.
    pub archive_bytes: Option<u64>,
}

pub(super) async fn jobs(State(st): State<Arc<Docex>>) -> Response {
    let now = Instant::now();
    let jobs = lock(&st.jobs);
    let mut list: Vec<AdminJob> = jobs
        .map
        .values()
        .map(|j| AdminJob {
            job_id: j.id.clone(),
            status: j.status(now),
            documents: j.documents,
            kind: j.kind,
            archive_bytes: match j.archive {
                Archive::Ready { bytes, .. } => Some(bytes),
                _ => None,
            },
        })
        .collect();
    list.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    Json(list).into_response()
}

/// `GET /admin/budget-log/{search|status}`: ms since start of every spending request.
pub(super) async fn budget_log(State(st): State<Arc<Docex>>, Path(budget): Path<String>) -> Response {
    let b = match budget.as_str() {
        "search" => Budget::Search,
        "status" => Budget::Status,
        _ => return error(StatusCode::NOT_FOUND, "budgets are search and status"),
    };
    Json(st.budget_log(b)).into_response()
}

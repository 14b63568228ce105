//! The fake TaskTracker: tasks, statuses and reports with idempotency keys, and its in-process handle.

mod api;
pub(crate) mod model;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use crate::arrivals::{Arrival, Arrivals};
use crate::budget::BudgetStats;
use crate::config::TaskTrackerConfig;
use crate::faults::Faults;
use crate::gate::{self, Gate, Route};
use crate::journal::Journal;
use crate::server::{Serving, prepare};
use crate::stats::EndpointStats;
use crate::util::lock;
use model::{Task, Tracker};

/// What `GET /admin/stats` and [`TaskTrackerHandle::stats`] report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskTrackerStats {
    /// Milliseconds since the stub started (the clock of the budget log).
    pub uptime_ms: u64,
    /// The one budget every API request spends.
    pub budget: BudgetStats,
    /// Calls per endpoint and their answers.
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// API requests that reached the stub while a fault window was open.
    pub dark_calls: u64,
    /// 429s given by a storm.
    pub storm_429: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Tasks created.
    pub tasks: u64,
    /// Reports appended.
    pub reports: u64,
    /// Creates answered from an earlier request's Idempotency-Key.
    pub replays: u64,
    /// The fault setting last given.
    pub faults: Faults,
    /// Whether a fault window is open now (requests arriving now are dark calls).
    pub faults_active: bool,
}

pub(crate) struct TaskTracker {
    pub start: Instant,
    pub gate: Arc<Gate>,
    pub tracker: Mutex<Tracker>,
    pub origin: String,
    pub arrivals: Arrivals,
}

/// A running TaskTracker stub. Dropping it stops the server too.
pub struct TaskTrackerHandle {
    state: Arc<TaskTracker>,
    serving: Serving,
}

/// Starts a TaskTracker stub on `cfg.addr` (port 0: any free port).
pub async fn spawn_tasktracker(cfg: TaskTrackerConfig) -> anyhow::Result<TaskTrackerHandle> {
    let tracker = match &cfg.data_dir {
        Some(dir) => {
            use anyhow::Context as _;
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create STUB_DATA_DIR {}", dir.display()))?;
            let (journal, events) = Journal::open(&dir.join("tasktracker.jsonl"))?;
            let t = Tracker::replay(events, journal);
            tracing::info!(tasks = t.order.len(), reports = t.reports, dir = %dir.display(), "TaskTracker state restored");
            t
        }
        None => Tracker::new(Journal::none()),
    };
    let p = prepare(cfg.addr, cfg.token.clone(), &cfg.faults, &[cfg.rate], route)?;
    let state = Arc::new(TaskTracker {
        start: p.start,
        gate: Arc::clone(&p.gate),
        tracker: Mutex::new(tracker),
        origin: p.origin,
        arrivals: Arrivals::default(),
    });
    let serving = Serving::start(p.listener, router(Arc::clone(&state)), &p.gate, &p.shutdown)?;
    tracing::info!(url = %state.origin, rate = %cfg.rate, "TaskTracker stub listening");
    Ok(TaskTrackerHandle { state, serving })
}

fn router(state: Arc<TaskTracker>) -> Router {
    let gate = Arc::clone(&state.gate);
    Router::new()
        .route("/v1/tasks", post(api::create_task))
        .route("/v1/tasks/{task_id}", get(api::get_task))
        .route("/v1/tasks/{task_id}/status", put(api::set_status))
        .route("/v1/tasks/{task_id}/reports", post(api::add_report))
        .route("/admin/stats", get(|State(st): State<Arc<TaskTracker>>| async move { Json(st.stats()) }))
        .route("/admin/tasks", get(|State(st): State<Arc<TaskTracker>>| async move { Json(lock(&st.tracker).list()) }))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route(
            "/admin/budget-log",
            get(|State(st): State<Arc<TaskTracker>>| async move { Json(st.gate.budgets[0].log()) }),
        )
        .fallback(api::not_found)
        // The handlers read bodies themselves, so an oversized report gets a clean 413.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(gate, gate::gate))
        .with_state(state)
}

async fn get_faults(State(st): State<Arc<TaskTracker>>) -> Response {
    st.gate.faults_now()
}

async fn put_faults(State(st): State<Arc<TaskTracker>>, body: axum::body::Bytes) -> Response {
    st.gate.set_faults_from("TaskTracker", &body)
}

/// Every API request spends the one budget; the endpoint is only for the stats.
fn route(method: &Method, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let endpoint = match (method, segs.as_slice()) {
        (&Method::POST, ["v1", "tasks"]) => "POST /v1/tasks",
        (&Method::GET, ["v1", "tasks", _]) => "GET /v1/tasks/{task_id}",
        (&Method::PUT, ["v1", "tasks", _, "status"]) => "PUT /v1/tasks/{task_id}/status",
        (&Method::POST, ["v1", "tasks", _, "reports"]) => "POST /v1/tasks/{task_id}/reports",
        _ => "other",
    };
    Route { endpoint, budget: Some(0) }
}

impl TaskTracker {
    fn stats(&self) -> TaskTrackerStats {
        let calls = self.gate.calls.snapshot();
        let t = lock(&self.tracker);
        TaskTrackerStats {
            uptime_ms: crate::util::ms_since(self.start, Instant::now()),
            budget: self.gate.budgets[0].stats(),
            endpoints: calls.endpoints,
            dark_calls: calls.dark_calls,
            storm_429: calls.storm_429,
            unauthorized: calls.unauthorized,
            tasks: t.order.len() as u64,
            reports: t.reports,
            replays: t.replays,
            faults: self.gate.faults.configured(),
            faults_active: self.gate.faults.active().is_dark(Instant::now()),
        }
    }
}

impl TaskTrackerHandle {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.state.origin.clone()
    }
    /// The local address the stub listens on.
    pub fn addr(&self) -> SocketAddr {
        self.state.origin.trim_start_matches("http://").parse().expect("origin is built from a socket address")
    }
    /// The same as `GET /admin/stats`.
    pub fn stats(&self) -> TaskTrackerStats {
        self.state.stats()
    }
    /// Every task with its status and reports, in creation order.
    /// Every request that reached a handler: when, which endpoint, about whom.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.snapshot()
    }
    pub fn tasks(&self) -> Vec<Task> {
        lock(&self.state.tracker).list()
    }
    /// Replaces the fault setting (works in every mode, `refuse` included).
    pub fn set_faults(&self, f: Faults) {
        self.state.gate.faults.set(f);
    }
    /// Arrival times (ms since the stub started) of every request that spent the budget.
    pub fn budget_log(&self) -> Vec<u64> {
        self.state.gate.budgets[0].log()
    }
    /// Stops listening and drops every connection.
    pub async fn shutdown(mut self) {
        self.serving.stop().await;
        tracing::info!(url = %self.state.origin, "TaskTracker stub stopped");
    }
}

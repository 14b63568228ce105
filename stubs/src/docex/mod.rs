//! The fake DocumentExchange: searches, job status, archive downloads, and its in-process handle.

mod admin;
mod api;
mod files;
pub(crate) mod jobs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::http::Method;
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::arrivals::{Arrival, Arrivals};
use crate::budget::{Budget, BudgetStats};
use crate::config::DocexConfig;
use crate::faults::Faults;
use crate::gate::{self, Gate, Route};
use crate::journal::Journal;
use crate::server::{Serving, prepare};
use crate::stats::EndpointStats;
use crate::util::lock;
use jobs::{Jobs, Profile};

pub use admin::{AdminJob, ProfileEntry};
pub use api::JobView;
pub use jobs::JobStatus;

/// Index of each budget in the gate.
const SEARCH: usize = 0;
const STATUS: usize = 1;

/// Archives written at once: enough to keep ahead of a 10/min search budget
/// without starving a 2-core machine.
const GENERATORS: usize = 2;

/// What `GET /admin/stats` and [`DocexHandle::stats`] report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DocexStats {
    /// Milliseconds since the stub started (the clock of the budget logs).
    pub uptime_ms: u64,
    /// Searches and archive downloads.
    pub search: BudgetStats,
    /// Job-status reads.
    pub status: BudgetStats,
    /// Calls per endpoint and their answers.
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// API requests that reached the stub while a fault window was open.
    pub dark_calls: u64,
    /// 429s given by a storm.
    pub storm_429: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Jobs by status now.
    pub jobs: JobStats,
    /// The fault setting last given.
    pub faults: Faults,
    /// Whether a fault window is open now (requests arriving now are dark calls).
    pub faults_active: bool,
}

/// Jobs counted by their status now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    pub created: u64,
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
    pub failed: u64,
    /// Searches answered from an earlier request's Idempotency-Key.
    pub replays: u64,
    /// Archives written and still downloadable.
    pub archives_ready: u64,
}

/// Shared state of one DocEx stub.
pub(crate) struct Docex {
    pub cfg: DocexConfig,
    pub start: Instant,
    pub gate: Arc<Gate>,
    pub jobs: Mutex<Jobs>,
    pub dir: PathBuf,
    /// Removes the default data directory when the last user of the state is gone.
    _temp: Option<tempfile::TempDir>,
    pub generators: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    /// Fallback origin for archive URLs when a request has no Host header.
    pub origin: String,
    pub arrivals: Arrivals,
}

/// A running DocEx stub. Dropping it stops the server too; [`DocexHandle::shutdown`]
/// also waits for it and deletes the archives.
pub struct DocexHandle {
    state: Arc<Docex>,
    serving: Serving,
}

/// Starts a DocEx stub on `cfg.addr` (port 0: any free port).
pub async fn spawn_docex(cfg: DocexConfig) -> anyhow::Result<DocexHandle> {
    use anyhow::Context as _;
    let (dir, temp, jobs) = match &cfg.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create STUB_DATA_DIR {}", d.display()))?;
            let (journal, events) = Journal::open(&d.join("docex.jsonl"))?;
            let jobs = Jobs::replay(events, journal);
            files::remove_stale(d, &jobs);
            (d.clone(), None, jobs)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("docket-docex-")
                .tempdir()
                .context("cannot create a temp dir (set STUB_DATA_DIR to a writable directory)")?;
            (t.path().to_owned(), Some(t), Jobs::new(Journal::none()))
        }
    };
    let p = prepare(cfg.addr, cfg.token.clone(), &cfg.faults, &[cfg.search_rate, cfg.status_rate], route)?;
    let state = Arc::new(Docex {
        cfg,
        start: p.start,
        gate: Arc::clone(&p.gate),
        jobs: Mutex::new(jobs),
        dir,
        _temp: temp,
        generators: Arc::new(Semaphore::new(GENERATORS)),
        shutdown: p.shutdown.clone(),
        origin: p.origin,
        arrivals: Arrivals::default(),
    });
    files::restore(&state);
    tokio::spawn(files::sweep_expired(Arc::clone(&state)));
    let serving = Serving::start(p.listener, router(Arc::clone(&state)), &p.gate, &p.shutdown)?;
    tracing::info!(url = %state.origin, search = %state.cfg.search_rate, status = %state.cfg.status_rate, "DocEx stub listening");
    Ok(DocexHandle { state, serving })
}

fn router(state: Arc<Docex>) -> Router {
    let gate = Arc::clone(&state.gate);
    Router::new()
        .route("/v1/searches", post(api::search))
        .route("/v1/searches/{job_id}", get(api::status))
        .route("/v1/archives/{job_id}", get(api::archive))
        .route("/admin/stats", get(admin::stats))
        .route("/admin/faults", get(admin::get_faults).put(admin::put_faults))
        .route("/admin/profiles", put(admin::put_profiles))
        .route("/admin/jobs", get(admin::jobs))
        .route("/admin/budget-log/{budget}", get(admin::budget_log))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(gate, gate::gate))
        .with_state(state)
}

/// Which endpoint and budget a request is for.
fn route(method: &Method, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (endpoint, budget) = match (method, segs.as_slice()) {
        (&Method::POST, ["v1", "searches"]) => ("POST /v1/searches", Some(SEARCH)),
        (&Method::GET, ["v1", "searches", id]) if !id.is_empty() => ("GET /v1/searches/{job_id}", Some(STATUS)),
        (&Method::GET, ["v1", "archives", id]) if !id.is_empty() => ("GET /v1/archives/{job_id}", Some(SEARCH)),
        _ => ("other", None),
    };
    Route { endpoint, budget }
}

impl Docex {
    pub(crate) fn stats(&self) -> DocexStats {
        let calls = self.gate.calls.snapshot();
        DocexStats {
            uptime_ms: crate::util::ms_since(self.start, Instant::now()),
            search: self.gate.budgets[SEARCH].stats(),
            status: self.gate.budgets[STATUS].stats(),
            endpoints: calls.endpoints,
            dark_calls: calls.dark_calls,
            storm_429: calls.storm_429,
            unauthorized: calls.unauthorized,
            jobs: files::job_stats(self),
            faults: self.gate.faults.configured(),
            faults_active: self.gate.faults.active().is_dark(Instant::now()),
        }
    }

    pub(crate) fn budget_log(&self, budget: Budget) -> Vec<u64> {
        let i = match budget {
            Budget::Search => SEARCH,
            Budget::Status => STATUS,
        };
        self.gate.budgets[i].log()
    }

    pub(crate) fn set_profile(&self, first: &str, last: &str, p: Profile) {
        lock(&self.jobs).set_profile(first, last, p);
    }
}

impl DocexHandle {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.state.origin.clone()
    }
    /// The local address the stub listens on.
    pub fn addr(&self) -> SocketAddr {
        self.state.origin.trim_start_matches("http://").parse().expect("origin is built from a socket address")
    }
    /// The same as `GET /admin/stats`.
    pub fn stats(&self) -> DocexStats {
        self.state.stats()
    }
    /// Replaces the fault setting (works in every mode, `refuse` included).
    pub fn set_faults(&self, f: Faults) {
        self.state.gate.faults.set(f);
    }
    /// Overrides the default rule for one patient; restarts its `fail_jobs` count.
    pub fn set_profile(&self, first_name: &str, last_name: &str, p: Profile) {
        self.state.set_profile(first_name, last_name, p);
    }
    /// Every request that reached a handler: when, which endpoint, about whom.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.arrivals.snapshot()
    }
    /// Arrival times (ms since the stub started) of every request that spent `budget`.
    pub fn budget_log(&self, budget: Budget) -> Vec<u64> {
        self.state.budget_log(budget)
    }
    /// Stops listening and drops every connection; deletes the archives
    /// unless they are kept in `STUB_DATA_DIR` for the next start.
    pub async fn shutdown(mut self) {
        self.serving.stop().await;
        files::delete_all(&self.state, self.state.cfg.data_dir.is_none());
        tracing::info!(url = %self.state.origin, "DocEx stub stopped");
    }
}

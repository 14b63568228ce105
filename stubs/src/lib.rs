//! docket-stubs: a fake DocumentExchange and a fake TaskTracker that behave like the real ones.
//!
//! They follow `docex.openapi.yaml` and `tasktracker.openapi.yaml`: sliding-window
//! budgets with 429 and Retry-After, idempotency keys, jobs that take time,
//! archives that expire, and outages on demand. Tests start them in-process on
//! port 0; the `docket-stubs` binary runs them for demos and benchmarks.
//!
//! Map of the crate:
//! - [`spawn_docex`] / [`DocexHandle`] (`docex/`): searches, job status, archive downloads.
//! - [`spawn_tasktracker`] / [`TaskTrackerHandle`] (`tasktracker/`): tasks, statuses, reports.
//! - [`config`]: both configs, test-friendly defaults and `from_env`; [`settings`]: rates and ranges.
//! - `gate`: auth → storm → budget → faults, in front of every API request;
//!   [`budget`]: the sliding window; [`faults`]: timed fault windows; `server`: the accept loop.
//! - [`archive`]: what a job's zip holds and writing it, from [`samples`] (the docket-samples crate).

// Handlers and their helpers return a ready `Response` as the error: it is
// what the client gets, and boxing it would buy nothing in a test stub.
#![allow(clippy::result_large_err)]

pub mod archive;
pub mod arrivals;
pub mod budget;
pub mod config;
mod docex;
pub mod faults;
mod gate;
mod idempotency;
mod journal;
pub use docket_samples as samples;
mod server;
pub mod settings;
mod stats;
mod tasktracker;
mod util;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use archive::ArchiveKind;
pub use arrivals::Arrival;
pub use budget::{Budget, BudgetStats};
pub use config::{DocexConfig, TaskTrackerConfig};
pub use docex::jobs::Profile;
pub use docex::{AdminJob, DocexHandle, DocexStats, JobStats, JobStatus, JobView, ProfileEntry, spawn_docex};
pub use faults::{FaultMode, Faults};
pub use settings::{CountRange, DurationRange, Rate};
pub use stats::EndpointStats;
pub use tasktracker::model::{Report, ReportDocument, ReportFailure, Task, TaskStatus};
pub use tasktracker::{TaskTrackerHandle, TaskTrackerStats, spawn_tasktracker};
pub use util::stable_hash;

/// The URL a client on this host uses for `addr` (a wildcard bind becomes loopback).
fn origin(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

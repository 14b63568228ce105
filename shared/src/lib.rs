//! docket-shared: everything the stage services share, written once.
//!
//! - [`settings`]: every setting, from the environment, validated at start.
//! - [`service`]: running a service: connect what it needs, serve health and
//!   metrics, supervise consumers, drain on SIGTERM.
//! - [`broker`]: RabbitMQ: topology, the consume loop, publishing with
//!   confirms, delays through TTL tiers, parking, holding.
//! - [`db`]: PostgreSQL: the pool, migrations, the transactional outbox.
//! - [`run`]: a run's life: its states, one function per move, the waiting
//!   rooms that order scarce steps, and the operator's controls.
//! - [`outside`]: DocumentExchange and TaskTracker, each behind one gate: a
//!   circuit breaker and a fleet-wide GCRA limiter in Redis.
//! - [`slots`]: a concurrency bound shared by an urgent and a normal lane.
//! - [`storage`]: object storage (`file://`, `s3://`) for documents and scratch.
//! - [`messages`]: the message types, one per queue.
//! - [`error`]: the handler error type; its variant decides what happens next.
//! - [`metrics`], [`telemetry`], [`http`]: what operators watch.

pub mod app;
pub mod broker;
pub mod db;
pub mod error;
pub mod http;
pub mod messages;
pub mod metrics;
pub mod outside;
pub mod run;
pub mod service;
pub mod settings;
pub mod slots;
pub mod storage;
pub mod telemetry;

pub use app::App;
pub use broker::{Handler, Meta, Outgoing, consumer};
pub use db::UnitOfWork;
pub use error::{StageError, StageResult, Transient};
pub use service::{Needs, Service};
pub use settings::Settings;

//! The e2e harness: a whole pipeline per test, isolated from every other
//! test by its own RabbitMQ vhost, PostgreSQL database, Redis key prefix,
//! storage and scratch directories, and its own DocEx and TaskTracker stubs.
//!
//! - [`env`]: `TestEnv`, its settings, and its cleanup.
//! - [`stages`]: starting stages in-process (any number of replicas) or as
//!   real processes (to kill with SIGKILL).
//! - [`rabbit`]: vhosts through the management API, raw publishing, reading
//!   parked messages.
//! - [`cluster`]: private RabbitMQ nodes (a three-node cluster, a single
//!   node) that tests and benchmarks kill, stop and start.
//! - [`wait`]: polling with a deadline, never bare sleeps.

pub mod cluster;
pub mod env;
pub mod rabbit;
pub mod redis;
pub mod s3;
pub mod stages;
pub mod wait;

pub use env::{Patient, TestEnv, TestOptions};
pub use stages::Stage;
pub use wait::{eventually, within};

//! The end-to-end tests: one binary, shared helpers in `docket_e2e`, each
//! test a whole pipeline of its own against the real RabbitMQ, PostgreSQL
//! and Redis, with the DocEx and TaskTracker stubs.

mod budgets;
mod cluster;
mod common;
mod crash;
mod documents;
mod intake;
mod outages;
mod pipeline;
mod private;
mod restarts;
mod s3;
mod servers;
mod starvation;
mod steering;

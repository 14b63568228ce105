//! The end-to-end tests: one binary, shared helpers in `docket_e2e`, each
//! test a whole pipeline of its own against the real RabbitMQ, PostgreSQL
//! and Redis, with the DocEx and TaskTracker stubs.

mod common;
mod intake;
mod pipeline;
mod crash;
mod budgets;
mod outages;
mod documents;
mod restarts;

//! Servers of a test's own, on their own ports and data directories, that
//! the test may stop, kill and restart without touching the machine's
//! shared RabbitMQ, PostgreSQL and Redis (which other tests are using).
//! Redis's is [`docket_e2e::redis::Private`].

pub mod postgres;

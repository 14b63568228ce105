//! The one error type of a handler; its variant says what happens next to the
//! message: retried with backoff, delayed without counting an attempt, held
//! until a breaker closes, or parked for an operator.

use std::time::Duration;

use crate::outside::Api;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Something that will likely work later (timeouts, connection errors,
    /// 5xx, the broker, the database or storage having a moment). Retried
    /// forever with capped exponential backoff; `after` overrides the
    /// backoff when the other side said how long to wait.
    #[error("{reason}")]
    Transient { reason: String, after: Option<Duration> },
    /// Nothing failed, but the message must wait: a budget is spent for now,
    /// a cap is full. Comes back after `after` without counting an attempt.
    #[error("waiting {after:?}: {reason}")]
    Wait { reason: String, after: Duration },
    /// The outside API's circuit breaker is open: the message waits in the
    /// API's hold queue and comes back as soon as the breaker closes.
    #[error("{api} is unavailable (circuit open)")]
    Blocked { api: Api },
    /// The message can never succeed as it is (not JSON, unknown patient):
    /// it is parked with this reason for an operator to read and replay.
    #[error("{0}")]
    Permanent(String),
    /// The message's run is paused (or was cancelled) since the message was
    /// sent: it is dropped, and the run's state in PostgreSQL brings the
    /// step back when the run is resumed. No attempt is counted.
    #[error("stopped: {0}")]
    Stopped(String),
}

pub type StageResult<T = ()> = Result<T, StageError>;

impl StageError {
    pub fn transient(reason: impl std::fmt::Display) -> StageError {
        StageError::Transient { reason: reason.to_string(), after: None }
    }
    pub fn permanent(reason: impl std::fmt::Display) -> StageError {
        StageError::Permanent(reason.to_string())
    }
    pub fn wait(after: Duration, reason: impl std::fmt::Display) -> StageError {
        StageError::Wait { reason: reason.to_string(), after }
    }
    /// The label used for this outcome in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            StageError::Transient { .. } => "retried",
            StageError::Wait { .. } => "delayed",
            StageError::Blocked { .. } => "held",
            StageError::Permanent(_) => "parked",
            StageError::Stopped(_) => "stopped",
        }
    }
}

/// Adds a short description of what was being done to an infrastructure
/// error and makes it transient: `.transient("reading the run")?`.
pub trait Transient<T> {
    fn transient(self, doing: &str) -> StageResult<T>;
}

impl<T, E: std::fmt::Display> Transient<T> for Result<T, E> {
    fn transient(self, doing: &str) -> StageResult<T> {
        self.map_err(|e| StageError::transient(format!("{doing}: {e}")))
    }
}

impl From<sqlx::Error> for StageError {
    fn from(e: sqlx::Error) -> StageError {
        StageError::transient(format!("database: {e}"))
    }
}

impl From<lapin::Error> for StageError {
    fn from(e: lapin::Error) -> StageError {
        StageError::transient(format!("broker: {e}"))
    }
}

impl From<redis::RedisError> for StageError {
    fn from(e: redis::RedisError) -> StageError {
        StageError::transient(format!("redis: {e}"))
    }
}

impl From<std::io::Error> for StageError {
    fn from(e: std::io::Error) -> StageError {
        StageError::transient(format!("local disk: {e}"))
    }
}

/// Where a JSON text went wrong, never what it held: serde's own messages
/// quote the text, which may carry a patient's name.
pub fn json_fault(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "not valid JSON",
        Category::Eof => "cut-off JSON",
        Category::Data => "JSON of an unexpected shape (fields missing or of the wrong type)",
        Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

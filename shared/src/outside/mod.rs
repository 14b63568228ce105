//! The outside APIs: every call to DocumentExchange or TaskTracker goes
//! through `Gate::call`, which asks the API's circuit breaker, reserves a slot
//! of the fleet-wide budget, sends with a timeout, and classifies the answer.

pub mod breaker;
pub mod docex;
pub mod gate;
pub mod hold;
pub mod limiter;
pub mod tasktracker;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use gate::{Admission, Gate};

/// An outside system with a breaker of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    Docex,
    TaskTracker,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Docex => "docex",
            Api::TaskTracker => "tasktracker",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Docex => "DocumentExchange",
            Api::TaskTracker => "TaskTracker",
        })
    }
}

/// A budget the outside enforces, shared by every caller of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Budget {
    /// DocEx searches and archive downloads together.
    DocexSearch,
    DocexStatus,
    TaskTracker,
}

impl Budget {
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::DocexSearch => "docex_search",
            Budget::DocexStatus => "docex_status",
            Budget::TaskTracker => "tasktracker",
        }
    }
}

/// Redis, which holds only what may be lost: limiter and breaker state.
#[derive(Clone)]
pub struct Redis {
    pub conn: ConnectionManager,
    pub prefix: String,
}

impl Redis {
    /// Connects lazily and reconnects by itself; calls fail fast (and their
    /// messages retry) while Redis is away.
    pub fn connect(url: &crate::settings::Secret, prefix: &str) -> anyhow::Result<Redis> {
        let client = redis::Client::open(url.expose()).map_err(|e| anyhow::anyhow!("setting REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Redis { conn, prefix: prefix.to_string() })
    }

    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(Duration::from_secs(1), pong).await, Ok(Ok(_)))
    }
}

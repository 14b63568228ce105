//! Per-endpoint call counters shared by both stubs (what `/admin/stats` reports besides budgets).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::util::lock;

/// Calls to one endpoint and how they were answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Requests that reached the server (counted on arrival).
    pub calls: u64,
    /// Answers by HTTP status code ("200", "429", …); a request still hanging
    /// or dropped with its connection has no entry yet.
    pub by_status: BTreeMap<String, u64>,
}

/// Counters of calls that are not about one budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStats {
    /// Per endpoint, keyed like `"POST /v1/searches"`; requests to paths the
    /// API does not have are under `"other"`.
    pub endpoints: BTreeMap<String, EndpointStats>,
    /// Requests that reached the server while a fault window was open.
    pub dark_calls: u64,
    /// 429s given by a storm (not counted against any budget).
    pub storm_429: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
}

/// Thread-safe holder of [`CallStats`].
#[derive(Default)]
pub(crate) struct Calls(Mutex<CallStats>);

impl Calls {
    pub fn arrived(&self, endpoint: &str, dark: bool) {
        let mut g = lock(&self.0);
        g.endpoints.entry(endpoint.to_owned()).or_default().calls += 1;
        g.dark_calls += u64::from(dark);
    }

    pub fn answered(&self, endpoint: &str, status: u16) {
        let mut g = lock(&self.0);
        let e = g.endpoints.entry(endpoint.to_owned()).or_default();
        *e.by_status.entry(status.to_string()).or_default() += 1;
    }

    pub fn storm(&self) {
        lock(&self.0).storm_429 += 1;
    }

    pub fn unauthorized(&self) {
        lock(&self.0).unauthorized += 1;
    }

    pub fn snapshot(&self) -> CallStats {
        lock(&self.0).clone()
    }
}

//! One rate limiter for the whole fleet: GCRA in Redis. One atomic script per
//! admission, on Redis's own clock, reserves the caller's slot and says how
//! long to wait for it. The theoretical arrival time never lags behind now,
//! so idle time earns no burst: requests stay `interval` apart, always.
//!
//! Unlike a token stream that wakes every blocked caller per token, a
//! reservation here belongs to exactly one caller, by construction.

use std::time::Duration;

use redis::Script;

use super::{Budget, Redis};
use crate::{
    error::{StageError, StageResult},
    settings::Settings,
};

/// KEYS[1]: the budget's TAT (µs). ARGV: interval µs, longest wait µs the
/// caller accepts. Returns {reserved (0|1), wait µs}. When the wait is longer
/// than accepted nothing is reserved, so a deferred caller spends nothing.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return {0, wait} end
local next_tat = tat + interval
local ttl_ms = math.floor((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', ttl_ms)
return {1, wait}
";

#[derive(Clone)]
pub struct Limiter {
    redis: Redis,
    script: Script,
    search: Duration,
    status: Duration,
    tracker: Duration,
}

/// The answer to an admission request.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    /// Reserved: send after this wait.
    Reserved(Duration),
    /// Not reserved: the next slot is this far away.
    Deferred(Duration),
}

impl Limiter {
    pub fn new(redis: Redis, settings: &Settings) -> Limiter {
        let m = settings.limit_margin;
        Limiter {
            redis,
            script: Script::new(GCRA),
            search: settings.docex_search_rate.interval_with_margin(m),
            status: settings.docex_status_rate.interval_with_margin(m),
            tracker: settings.tasktracker_rate.interval_with_margin(m),
        }
    }

    pub fn interval(&self, budget: Budget) -> Duration {
        match budget {
            Budget::DocexSearch => self.search,
            Budget::DocexStatus => self.status,
            Budget::TaskTracker => self.tracker,
        }
    }

    /// Reserves the next slot of `budget` if it is at most `max_wait` away.
    pub async fn reserve(&self, budget: Budget, max_wait: Duration) -> StageResult<Slot> {
        let mut conn = self.redis.conn.clone();
        let (reserved, wait_us): (i64, i64) = self
            .script
            .key(self.redis.key(&["limit", budget.as_str()]))
            .arg(self.interval(budget).as_micros() as i64)
            .arg(max_wait.as_micros() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StageError::transient(format!("rate limiter unavailable (redis): {e}")))?;
        let wait = Duration::from_micros(wait_us.max(0) as u64);
        Ok(if reserved == 1 { Slot::Reserved(wait) } else { Slot::Deferred(wait) })
    }
}

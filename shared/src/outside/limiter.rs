//! One rate limiter for the whole fleet: GCRA in Redis. One atomic script per
//! admission, on Redis's own clock, reserves the caller's slot and says how
//! long to wait for it. The theoretical arrival time never lags behind now,
//! so idle time earns no burst: requests stay `interval` apart, always.
//!
//! Unlike a token stream that wakes every blocked caller per token, a
//! reservation here belongs to exactly one caller, by construction. The
//! caller (`gate.rs`) sends on it only if it is still on time: one that
//! wakes more than `LIMIT_LATE` after its slot gives it up and reserves again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::Script;

use super::{Budget, Redis};
use crate::{
    error::{StageError, StageResult},
    settings::Settings,
};

/// KEYS[1]: the budget's TAT (µs); KEYS[2]: its epoch. ARGV: interval µs,
/// longest wait µs the caller accepts, a fresh epoch id, and the budget's
/// window µs if the caller has seen an earlier schedule (else 0). Returns
/// {reserved (0|1), wait µs, epoch}. When the wait is longer than accepted
/// nothing is reserved, so a deferred caller spends nothing.
///
/// The epoch (a key without expiry) changes only when Redis lost its data: a
/// caller that slept on a reservation checks it before sending, and reserves
/// again if its reservation belonged to a schedule that no longer exists.
/// A caller that knew the lost schedule starts the new one a whole window
/// (plus the margin) ahead: requests sent on the old one may fill the last
/// window, and nobody remembers how many.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
  local cold = tonumber(ARGV[4])
  if cold > 0 then
    redis.call('SET', KEYS[1], string.format('%d', now + cold), 'PX', math.floor(cold / 1000) + 1000)
  end
end
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then return {0, wait, epoch} end
local next_tat = tat + interval
local ttl_ms = math.floor((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', ttl_ms)
return {1, wait, epoch}
";

/// KEYS[1]: the budget's TAT (µs). ARGV: µs from now before which nobody
/// may send. Pushes the schedule back (never forward) after a 429, so every
/// replica waits out the other side's Retry-After, not only the one told.
const PUSH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = now + tonumber(ARGV[1])
if until_ > tat then
  redis.call('SET', KEYS[1], string.format('%d', until_), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
";

#[derive(Clone)]
pub struct Limiter {
    redis: Redis,
    script: Script,
    push: Script,
    search: Duration,
    status: Duration,
    tracker: Duration,
    /// Each budget's window plus the margin: how long a new schedule waits
    /// after Redis lost the old one.
    windows: [Duration; 3],
    /// Whether this process has seen a schedule of each budget (any epoch).
    seen: Arc<[AtomicBool; 3]>,
}

fn index(budget: Budget) -> usize {
    match budget {
        Budget::DocexSearch => 0,
        Budget::DocexStatus => 1,
        Budget::TaskTracker => 2,
    }
}

/// The answer to an admission request.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    /// Reserved in the schedule `epoch`: send after this wait.
    Reserved(Duration, String),
    /// Not reserved: the next slot is this far away.
    Deferred(Duration),
}

impl Limiter {
    pub fn new(redis: Redis, settings: &Settings) -> Limiter {
        let m = settings.limit_margin;
        Limiter {
            redis,
            script: Script::new(GCRA),
            push: Script::new(PUSH),
            search: settings.docex_search_rate.interval_with_margin(m),
            status: settings.docex_status_rate.interval_with_margin(m),
            tracker: settings.tasktracker_rate.interval_with_margin(m),
            windows: [
                settings.docex_search_rate.period + m,
                settings.docex_status_rate.period + m,
                settings.tasktracker_rate.period + m,
            ],
            seen: Arc::new([AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false)]),
        }
    }

    pub fn interval(&self, budget: Budget) -> Duration {
        match budget {
            Budget::DocexSearch => self.search,
            Budget::DocexStatus => self.status,
            Budget::TaskTracker => self.tracker,
        }
    }

    fn unavailable(e: redis::RedisError) -> StageError {
        StageError::transient(format!("rate limiter unavailable (redis): {e}"))
    }

    /// Reserves the next slot of `budget` if it is at most `max_wait` away.
    pub async fn reserve(&self, budget: Budget, max_wait: Duration) -> StageResult<Slot> {
        let mut conn = self.redis.conn.clone();
        let seen = &self.seen[index(budget)];
        let cold = if seen.load(Ordering::Relaxed) { self.windows[index(budget)] } else { Duration::ZERO };
        let (reserved, wait_us, epoch): (i64, i64, String) = self
            .script
            .key(self.redis.key(&["limit", budget.as_str()]))
            .key(self.redis.key(&["limit", budget.as_str(), "epoch"]))
            .arg(self.interval(budget).as_micros() as i64)
            .arg(max_wait.as_micros() as i64)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg(cold.as_micros() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        seen.store(true, Ordering::Relaxed);
        let wait = Duration::from_micros(wait_us.max(0) as u64);
        Ok(if reserved == 1 { Slot::Reserved(wait, epoch) } else { Slot::Deferred(wait) })
    }

    /// Whether a reservation made in `epoch` still stands (Redis kept its data).
    pub async fn still_valid(&self, budget: Budget, epoch: &str) -> StageResult<bool> {
        let mut conn = self.redis.conn.clone();
        let current: Option<String> = redis::cmd("GET")
            .arg(self.redis.key(&["limit", budget.as_str(), "epoch"]))
            .query_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        Ok(current.as_deref() == Some(epoch))
    }

    /// After a 429: nobody of the fleet sends on this budget for `after`.
    pub async fn push_back(&self, budget: Budget, after: Duration) -> StageResult {
        let mut conn = self.redis.conn.clone();
        let _: i64 = self
            .push
            .key(self.redis.key(&["limit", budget.as_str()]))
            .arg(after.as_micros() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        Ok(())
    }
}

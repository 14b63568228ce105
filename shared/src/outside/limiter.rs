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

/// KEYS[1]: the budget's TAT (µs); KEYS[2]: its epoch; KEYS[3]: the slots
/// reserved and not yet passed (a ZSET: member `<rank>:<id>`, score the
/// slot's time in µs); KEYS[4]: the slots urgent downloads are due to take
/// (a ZSET: member the run, score the slot's time in µs; see `aim`). ARGV:
/// interval µs, longest wait µs the caller
/// accepts, a fresh epoch id, the budget's window µs if the caller has seen
/// an earlier schedule (else 0), the caller's rank, its reservation id, the
/// guard µs, the least rank whose slots the caller may take over (0:
/// none), and the least rank whose slots it may take over except the
/// earliest of them (0: none). Returns {reserved (0|1), wait µs,
/// epoch, taken over (0|1)}. When the wait is longer than accepted nothing is
/// reserved, so a deferred caller spends nothing.
///
/// The epoch (a key without expiry) changes only when Redis lost its data: a
/// caller that slept on a reservation checks it before sending, and reserves
/// again if its reservation belonged to a schedule that no longer exists.
/// A caller that knew the lost schedule starts the new one a whole window
/// (plus the margin) ahead: requests sent on the old one may fill the last
/// window, and nobody remembers how many.
///
/// Priority chooses who gets a slot, never how many there are: a caller
/// that may go ahead of some ranks (an urgent run's call) takes over the
/// earliest slot reserved by a caller of such a rank, if that slot is
/// earlier than the next free one and more than the guard away. The slot
/// changes hands and the schedule stays as it was: still at most one slot
/// per interval. The one who lost it learns so when it wakes (it checks its
/// reservation before sending, always after `slot - guard`) and reserves
/// again. A caller may also be allowed to go ahead of some ranks except
/// the first of them in line (an urgent search waits for the one download
/// due next, never for a whole line of them): the earliest slot reserved
/// by such a rank is spared, the next one taken.
///
/// Such a caller (an urgent search) also keeps off a slot an urgent run's
/// download is due to take (one its status poll was timed for, within half
/// an interval): taking it would push that download an interval later. A
/// slot held by a higher rank (an urgent download) or aimed at by one counts
/// as the download it waits behind; when the slot after the one it spared
/// is aimed at, it takes the spared one instead. So the search still waits
/// behind one download, no more, and the urgent download finds its slot
/// held by work it may take over.
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
local rank = tonumber(ARGV[5])
local member = ARGV[5] .. ':' .. ARGV[6]
local guard = tonumber(ARGV[7])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%d', now - 10000000))
local over = tonumber(ARGV[8])
local behind_one = tonumber(ARGV[9])
local half = math.floor(interval / 2)
local function aimed(slot)
  if behind_one == 0 then return false end
  return #redis.call('ZRANGEBYSCORE', KEYS[4], string.format('(%d', slot - half),
    string.format('(%d', slot + half), 'LIMIT', 0, 1) > 0
end
local function take(other, slot)
  redis.call('ZREM', KEYS[3], other)
  redis.call('ZADD', KEYS[3], string.format('%d', slot), member)
  return {1, slot - now, epoch, 1}
end
local waited = false
local spared = nil
if over > 0 or behind_one > 0 then
  local held = redis.call('ZRANGEBYSCORE', KEYS[3], string.format('(%d', now),
    string.format('(%d', tat), 'WITHSCORES', 'LIMIT', 0, 64)
  for i = 1, #held, 2 do
    local other = held[i]
    local slot = tonumber(held[i + 1])
    if slot - now > max_wait then break end
    local r = tonumber(string.match(other, '^(%d+):'))
    local open = slot > now + guard
    local ahead = behind_one > 0 and (r < rank or (r >= behind_one and aimed(slot)))
    if ahead then
      if waited and spared then return take(spared[1], spared[2]) end
      waited = true
    elseif over > 0 and r >= over then
      if open then return take(other, slot) end
    elseif behind_one > 0 and r >= behind_one then
      if waited and open then return take(other, slot) end
      if not waited then
        waited = true
        if open then spared = {other, slot} end
      end
    end
  end
end
if spared and aimed(tat) then return take(spared[1], spared[2]) end
local wait = tat - now
if wait > max_wait then return {0, wait, epoch, 0} end
local next_tat = tat + interval
local ttl_ms = math.floor((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', ttl_ms)
if wait > 0 then
  redis.call('ZADD', KEYS[3], string.format('%d', tat), member)
  redis.call('PEXPIRE', KEYS[3], ttl_ms + 10000)
end
return {1, wait, epoch, 0}
";

/// KEYS[1]: the slots urgent downloads are due to take. ARGV: the run, µs
/// from now to its slot (negative: it aims at none any more), how long a
/// claim is kept after its slot, µs.
const AIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - tonumber(ARGV[3])))
local offset = tonumber(ARGV[2])
if offset < 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%d', now + offset), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.floor((offset + tonumber(ARGV[3])) / 1000) + 1)
return 1
";

/// KEYS[1]: the budget's epoch; KEYS[2]: its reserved slots. ARGV: the
/// epoch and the member of a reservation. 1 when the reservation stands
/// (Redis kept the schedule and nobody of a lower rank took the slot over).
const STANDS: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return 1 end
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then return 1 end
return 0
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

/// KEYS[1]: the budget's TAT (µs). Returns how many µs from now the next
/// free slot is (0 or less: none is reserved ahead, the budget is idle).
const AHEAD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
return tat - now
";

/// How close to its time a reserved slot can no longer be taken over. Its
/// holder checks the reservation no earlier than this before the latest
/// time the slot can be (the answer's arrival plus the wait), so Redis has
/// closed the slot to takers before the check, whatever the round trip.
pub const TAKE_OVER_GUARD: Duration = Duration::from_millis(10);

/// How long after its slot a claim of `aim` is dropped: by then the
/// download took the slot or will not.
const AIM_KEPT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Limiter {
    redis: Redis,
    script: Script,
    stands: Script,
    push: Script,
    ahead: Script,
    aim: Script,
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

/// A caller's place in the line for a budget's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank {
    /// Its own rank (kept with its reservation).
    pub own: u8,
    /// It may take over slots reserved by ranks at or above this; 0: none.
    pub takes_over: u8,
    /// It may take over slots reserved by ranks at or above this, except
    /// the earliest of them: it waits behind one such caller, no more.
    /// 0: none.
    pub behind_one: u8,
}

impl Rank {
    /// A caller that goes in turn and whose slot nobody takes.
    pub const PLAIN: Rank = Rank { own: 0, takes_over: 0, behind_one: 0 };
}

/// A reserved slot.
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Send after this wait.
    pub wait: Duration,
    /// The schedule it belongs to.
    pub epoch: String,
    /// Its entry among the reserved slots ('' when sent at once: nobody
    /// can take a slot that is now).
    pub member: String,
    /// Taken over from a caller of a lower priority.
    pub taken_over: bool,
}

/// The answer to an admission request.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot {
    Reserved(Reservation),
    /// Not reserved: the next slot is this far away.
    Deferred(Duration),
}

impl Limiter {
    pub fn new(redis: Redis, settings: &Settings) -> Limiter {
        let m = settings.limit_margin;
        Limiter {
            redis,
            script: Script::new(GCRA),
            stands: Script::new(STANDS),
            push: Script::new(PUSH),
            ahead: Script::new(AHEAD),
            aim: Script::new(AIM),
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

    /// The Redis key of `budget`'s theoretical arrival time (`part` None),
    /// or of its epoch, reserved slots or aimed-at slots (`Some("epoch")`,
    /// `Some("held")`, `Some("aimed")`).
    fn key(&self, budget: Budget, part: Option<&str>) -> String {
        match part {
            None => self.redis.key(&["limit", budget.as_str()]),
            Some(part) => self.redis.key(&["limit", budget.as_str(), part]),
        }
    }

    fn unavailable(e: redis::RedisError) -> StageError {
        StageError::transient(format!("rate limiter unavailable (redis): {e}"))
    }

    /// Reserves the next slot of `budget` if it is at most `max_wait` away
    /// (or takes over an earlier one, as `rank` allows).
    pub async fn reserve(&self, budget: Budget, max_wait: Duration, rank: Rank) -> StageResult<Slot> {
        let mut conn = self.redis.conn.clone();
        let seen = &self.seen[index(budget)];
        let cold = if seen.load(Ordering::Relaxed) { self.windows[index(budget)] } else { Duration::ZERO };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (reserved, wait_us, epoch, taken_over): (i64, i64, String, i64) = self
            .script
            .key(self.key(budget, None))
            .key(self.key(budget, Some("epoch")))
            .key(self.key(budget, Some("held")))
            .key(self.key(budget, Some("aimed")))
            .arg(self.interval(budget).as_micros() as i64)
            .arg(max_wait.as_micros() as i64)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg(cold.as_micros() as i64)
            .arg(rank.own)
            .arg(&id)
            .arg(TAKE_OVER_GUARD.as_micros() as i64)
            .arg(rank.takes_over)
            .arg(rank.behind_one)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        seen.store(true, Ordering::Relaxed);
        let wait = Duration::from_micros(wait_us.max(0) as u64);
        if reserved != 1 {
            return Ok(Slot::Deferred(wait));
        }
        let member = if wait.is_zero() { String::new() } else { format!("{}:{id}", rank.own) };
        Ok(Slot::Reserved(Reservation { wait, epoch, member, taken_over: taken_over == 1 }))
    }

    /// Whether a reservation still stands: Redis kept the schedule it
    /// belongs to, and no caller of a higher priority took its slot over.
    pub async fn stands(&self, budget: Budget, reservation: &Reservation) -> StageResult<bool> {
        let mut conn = self.redis.conn.clone();
        let stands: i64 = self
            .stands
            .key(self.key(budget, Some("epoch")))
            .key(self.key(budget, Some("held")))
            .arg(&reservation.epoch)
            .arg(&reservation.member)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        Ok(stands == 1)
    }

    /// How far ahead the next free slot of `budget` is, when callers hold
    /// slots reserved ahead (the budget is busy). The slots still to come
    /// lie on one grid: the next free one plus or minus whole intervals.
    /// None when the budget is idle: the next caller goes at once.
    pub async fn next_free(&self, budget: Budget) -> StageResult<Option<Duration>> {
        let mut conn = self.redis.conn.clone();
        let ahead_us: i64 =
            self.ahead.key(self.key(budget, None)).invoke_async(&mut conn).await.map_err(Self::unavailable)?;
        Ok((ahead_us > 0).then(|| Duration::from_micros(ahead_us as u64)))
    }

    /// Says that the urgent run `run`'s download is due to take the slot
    /// `slot` from now (its next status poll is timed for it), or with None
    /// that it no longer aims at one. An urgent search keeps off that slot.
    pub async fn aim(&self, budget: Budget, run: &str, slot: Option<Duration>) -> StageResult {
        let mut conn = self.redis.conn.clone();
        let offset = slot.map_or(-1, |s| s.as_micros() as i64);
        let _: i64 = self
            .aim
            .key(self.key(budget, Some("aimed")))
            .arg(run)
            .arg(offset)
            .arg(AIM_KEPT.as_micros() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        Ok(())
    }

    /// After a 429: nobody of the fleet sends on this budget for `after`.
    pub async fn push_back(&self, budget: Budget, after: Duration) -> StageResult {
        let mut conn = self.redis.conn.clone();
        let _: i64 = self
            .push
            .key(self.key(budget, None))
            .arg(after.as_micros() as i64)
            .invoke_async(&mut conn)
            .await
            .map_err(Self::unavailable)?;
        Ok(())
    }
}

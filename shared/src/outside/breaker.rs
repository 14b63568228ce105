//! A circuit breaker per outside API, in Redis, shared by every replica.
//! Closed: calls go through, consecutive failures are counted. After the
//! threshold it opens: nobody calls. When the cooldown ends it is half-open:
//! exactly one caller gets the probe lease. A probe that succeeds closes it
//! for everyone at once; one that fails reopens it with a doubled cooldown
//! (up to a cap).

use std::time::Duration;

use redis::Script;

use super::{Api, Redis};
use crate::{error::StageResult, error::Transient, settings::Settings};

/// KEYS[1]: the breaker hash. ARGV[1]: probe lease ms.
/// Returns {state, ms}: 0 closed, 1 half-open with a probe out (wait ms),
/// 2 open (ms until the cooldown ends), 3 half-open and you are the probe.
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return {0, 0} end
if now < open_until then return {2, open_until - now} end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe_until then return {1, probe_until - now} end
if ARGV[1] == '0' then return {1, 0} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
return {3, 0}
";

/// KEYS[1]: the breaker hash. ARGV: threshold, cooldown ms, cooldown cap ms,
/// memory ms. Returns 1 when this failure opened (or reopened) the breaker.
const FAILURE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local opened = 0
if open_until > 0 then
  if now >= open_until then
    local opens = redis.call('HINCRBY', KEYS[1], 'opens', 1)
    local cooldown = math.min(tonumber(ARGV[2]) * math.pow(2, opens - 1), tonumber(ARGV[3]))
    redis.call('HSET', KEYS[1], 'open_until', now + cooldown, 'probe_until', 0)
    opened = 1
  end
elseif failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'opens', 1, 'probe_until', 0)
  opened = 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return opened
";

/// KEYS[1]: the breaker hash. Returns 1 when it was open or counting.
const SUCCESS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local was_open = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') > 0
  redis.call('DEL', KEYS[1])
  if was_open then return 2 end
  return 1
end
return 0
";

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Closed,
    /// Half-open and this caller holds the probe lease.
    Probe,
    /// Open or half-open with someone else probing: do not call.
    Wait(Duration),
}

#[derive(Clone)]
pub struct Breaker {
    redis: Redis,
    check: Script,
    failure: Script,
    success: Script,
    threshold: u32,
    cooldown: Duration,
    cooldown_max: Duration,
    probe_lease: Duration,
}

impl Breaker {
    pub fn new(redis: Redis, settings: &Settings) -> Breaker {
        Breaker {
            redis,
            check: Script::new(CHECK),
            failure: Script::new(FAILURE),
            success: Script::new(SUCCESS),
            threshold: settings.breaker_threshold.max(1),
            cooldown: settings.breaker_cooldown,
            cooldown_max: settings.breaker_cooldown_max,
            // Long enough for a probe that waits for its budget slot and then
            // its answer, so no second probe goes out meanwhile; short enough
            // that a probe whose caller crashed does not keep it shut long.
            probe_lease: settings.limit_max_hold + settings.http_timeout + Duration::from_secs(5),
        }
    }

    fn key(&self, api: Api) -> String {
        self.redis.key(&["breaker", api.as_str()])
    }

    async fn run_check(&self, api: Api, lease: Duration) -> StageResult<(i64, i64)> {
        let mut conn = self.redis.conn.clone();
        self.check
            .key(self.key(api))
            .arg(lease.as_millis() as i64)
            .invoke_async(&mut conn)
            .await
            .transient("circuit breaker unavailable (redis)")
    }

    /// Asks before calling; may hand out the probe lease.
    pub async fn admit(&self, api: Api) -> StageResult<Verdict> {
        let (state, ms) = self.run_check(api, self.probe_lease).await?;
        Ok(match state {
            0 => Verdict::Closed,
            3 => Verdict::Probe,
            _ => Verdict::Wait(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    /// The state without side effects: 0 closed, 1 half-open, 2 open; and
    /// whether a probe may go now (half-open with no lease out).
    pub async fn state(&self, api: Api) -> StageResult<(i64, bool)> {
        let (state, ms) = self.run_check(api, Duration::ZERO).await?;
        Ok((state.min(2), state == 1 && ms == 0))
    }

    /// Returns true when this failure opened the breaker.
    pub async fn failed(&self, api: Api) -> StageResult<bool> {
        let mut conn = self.redis.conn.clone();
        let opened: i64 = self
            .failure
            .key(self.key(api))
            .arg(self.threshold)
            .arg(self.cooldown.as_millis() as i64)
            .arg(self.cooldown_max.as_millis() as i64)
            .arg(3_600_000)
            .invoke_async(&mut conn)
            .await
            .transient("circuit breaker unavailable (redis)")?;
        Ok(opened == 1)
    }

    /// Returns true when this success closed an open breaker.
    pub async fn succeeded(&self, api: Api) -> StageResult<bool> {
        let mut conn = self.redis.conn.clone();
        let was: i64 = self
            .success
            .key(self.key(api))
            .invoke_async(&mut conn)
            .await
            .transient("circuit breaker unavailable (redis)")?;
        Ok(was == 2)
    }
}

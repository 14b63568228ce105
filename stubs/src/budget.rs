//! Sliding-window budgets exactly as the outside APIs enforce them: at most N in ANY window.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::settings::Rate;
use crate::util::{lock, ms_since, retry_after_secs};

/// Which DocEx budget a log or stat is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Searches and archive downloads together.
    Search,
    /// Job-status reads.
    Status,
}

/// The state of one budget, as `GET /admin/stats` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStats {
    /// Requests allowed in any one window.
    pub limit: u32,
    /// The window's length in milliseconds.
    pub period_ms: u64,
    /// Requests accepted (they spent budget, whatever they were answered).
    pub spent: u64,
    /// Requests refused with 429 because the window was full.
    pub over_budget: u64,
    /// The most accepted requests in any window of `period_ms`, from the log of
    /// arrival times in whole milliseconds (so a test can recompute it).
    pub max_in_window: u64,
}

/// What a budget said to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Accepted; the request spent one unit.
    Spent,
    /// Refused; retry after this many whole seconds (at least 1).
    Refused { retry_after: u64 },
}

/// One budget: the log of accepted arrival times and the counters.
pub(crate) struct SlidingWindow {
    rate: Rate,
    start: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Accepted arrivals still inside the window, at full precision: the
    /// admission decision uses these so the stub is never lenient by rounding.
    recent: VecDeque<Instant>,
    /// The same arrivals in whole ms, for `max_in_window` on the public log's scale.
    recent_ms: VecDeque<u64>,
    /// Every accepted arrival since start, in ms since start.
    log: Vec<u64>,
    over_budget: u64,
    max_in_window: u64,
}

impl SlidingWindow {
    pub(crate) fn new(rate: Rate, start: Instant) -> Self {
        SlidingWindow { rate, start, inner: Mutex::new(Inner::default()) }
    }

    /// Admits or refuses a request arriving now.
    pub(crate) fn try_spend(&self) -> Admission {
        self.try_spend_at(Instant::now())
    }

    /// Admits or refuses a request arriving at `now` (monotonic across calls).
    ///
    /// The window is (now − period, now]: an earlier arrival `a` still counts
    /// while `now − a < period`.
    pub(crate) fn try_spend_at(&self, now: Instant) -> Admission {
        let period = self.rate.period;
        let mut g = lock(&self.inner);
        while g.recent.front().is_some_and(|&a| now.saturating_duration_since(a) >= period) {
            g.recent.pop_front();
        }
        if g.recent.len() >= self.rate.limit as usize {
            let oldest = *g.recent.front().expect("a full window holds at least one arrival");
            let wait = period.saturating_sub(now.saturating_duration_since(oldest));
            g.over_budget += 1;
            return Admission::Refused { retry_after: retry_after_secs(wait) };
        }
        g.recent.push_back(now);
        let ms = ms_since(self.start, now);
        let period_ms = period.as_millis() as u64;
        while g.recent_ms.front().is_some_and(|&a| a + period_ms <= ms) {
            g.recent_ms.pop_front();
        }
        g.recent_ms.push_back(ms);
        g.log.push(ms);
        // The busiest window always ends at an arrival, so checking at each
        // arrival finds the exact maximum.
        g.max_in_window = g.max_in_window.max(g.recent_ms.len() as u64);
        Admission::Spent
    }

    pub(crate) fn stats(&self) -> BudgetStats {
        let g = lock(&self.inner);
        BudgetStats {
            limit: self.rate.limit,
            period_ms: self.rate.period.as_millis() as u64,
            spent: g.log.len() as u64,
            over_budget: g.over_budget,
            max_in_window: g.max_in_window,
        }
    }

    /// Arrival times (ms since the stub started) of every accepted request.
    pub(crate) fn log(&self) -> Vec<u64> {
        lock(&self.inner).log.clone()
    }
}

/// The most entries of a sorted ms log inside any window (t − period, t].
///
/// Public so tests and benchmarks can check a budget log the way the stub does.
pub fn max_in_window(log: &[u64], period: Duration) -> u64 {
    let p = period.as_millis() as u64;
    let mut lo = 0;
    let mut best = 0;
    for (hi, &t) in log.iter().enumerate() {
        while lo <= hi && log[lo] + p <= t {
            lo += 1;
        }
        best = best.max((hi + 1).saturating_sub(lo));
    }
    best as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn the_window_slides_instead_of_resetting_on_a_clock_boundary() {
        let t0 = Instant::now();
        let w = SlidingWindow::new(Rate::per(2, Duration::from_millis(1000)), t0);
        assert_eq!(w.try_spend_at(at(t0, 0)), Admission::Spent);
        assert_eq!(w.try_spend_at(at(t0, 600)), Admission::Spent);
        // A fixed clock window would reset at 1000 ms; the sliding one still holds 600.
        assert_eq!(w.try_spend_at(at(t0, 1000)), Admission::Spent);
        assert_eq!(w.try_spend_at(at(t0, 1100)), Admission::Refused { retry_after: 1 });
        assert_eq!(w.try_spend_at(at(t0, 1599)), Admission::Refused { retry_after: 1 });
        assert_eq!(w.try_spend_at(at(t0, 1600)), Admission::Spent);
        let s = w.stats();
        assert_eq!((s.spent, s.over_budget, s.max_in_window), (4, 2, 2));
        assert_eq!(max_in_window(&w.log(), Duration::from_secs(1)), 2);
    }

    #[test]
    fn retry_after_is_the_time_until_the_oldest_arrival_leaves_rounded_up() {
        let t0 = Instant::now();
        let w = SlidingWindow::new(Rate::per_minute(1), t0);
        assert_eq!(w.try_spend_at(at(t0, 0)), Admission::Spent);
        assert_eq!(w.try_spend_at(at(t0, 500)), Admission::Refused { retry_after: 60 });
        assert_eq!(w.try_spend_at(at(t0, 58_001)), Admission::Refused { retry_after: 2 });
        assert_eq!(w.try_spend_at(at(t0, 59_999)), Admission::Refused { retry_after: 1 });
        assert_eq!(w.try_spend_at(at(t0, 60_000)), Admission::Spent);
    }

    #[test]
    fn max_in_window_counts_arrivals_in_the_same_millisecond() {
        assert_eq!(max_in_window(&[0, 0, 0, 999, 1000, 1000], Duration::from_secs(1)), 4);
        assert_eq!(max_in_window(&[], Duration::from_secs(1)), 0);
    }
}

//! `docket.status` → one status read. Not ready: the next poll goes through
//! the outbox with a longer delay. Finished: on to fetch, or to the report
//! when nothing was found. Failed or unknown: back to the search room, to
//! search again with a new key.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    outside::{Budget, docex::JobStatus, limiter::TAKE_OVER_GUARD},
    run::{self, Guard, Priority, Run, State, Step, edges},
};
use tracing::{debug, info};

pub struct Poll(pub Arc<App>);

/// How much longer than POLL_FIRST an urgent run's polls may grow apart.
const URGENT_POLL_SPREAD: f64 = 4.0;

/// The delay before `run`'s next poll, its `polls + 1`th: doubling from
/// POLL_FIRST up to POLL_MAX, with ±10 % jitter so polls started together drift apart. An
/// urgent run's polls have no jitter and stop growing at four times POLL_FIRST (8 s by
/// default): a job that takes 35 s is seen within 8 s of its end, not 27 s
/// later. While the search+download budget is busy an urgent poll goes
/// sooner, just before the next download slot ([`aligned`]): even
/// `DOCEX_MAX_JOBS` urgent jobs at once (50 polls a slot, every 6 s) stay
/// inside the status budget (10 a second).
///
/// An urgent run's schedule is counted from its job's start ([`by_age`]),
/// so the slot-aligned polls in between do not move it; a run whose job
/// start is not recorded (started before the column existed) counts polls.
pub fn schedule(app: &App, run: &Run) -> Duration {
    let urgent = run.priority() == Priority::Urgent;
    if let Some(age) = run.job_age().filter(|_| urgent) {
        return by_age(app.settings.poll_first, longest_urgent_gap(app), age);
    }
    let n = run.polls + 1;
    let first = app.settings.poll_first.as_secs_f64();
    let max = if urgent { longest_urgent_gap(app).as_secs_f64() } else { app.settings.poll_max.as_secs_f64() };
    let step = (first * 2f64.powi((n - 1).clamp(0, 30))).min(max);
    // Urgent runs are few: no jitter, so none of them is seen late by chance.
    let jitter = if urgent { 1.0 } else { 0.9 + rand::random::<f64>() * 0.2 };
    Duration::from_secs_f64(step * jitter)
}

/// The longest an urgent run's polls grow apart on their schedule.
fn longest_urgent_gap(app: &App) -> Duration {
    app.settings.poll_max.min(app.settings.poll_first.mul_f64(URGENT_POLL_SPREAD))
}

/// The delay before an urgent run's next poll by its schedule, counted from
/// the job's start (`age` ago): the polls [`schedule`] makes when each is on
/// time, at POLL_FIRST, twice, four times that, then every `cap`. By the
/// job's age, not by the polls made, so the slot-aligned polls an urgent
/// run makes in between (or a poll delivered late) do not move it: when the
/// budget turns idle, the polls are where they would have been. The next
/// point is at least half of POLL_FIRST away, so a poll delivered a little
/// early does not poll again at once.
pub fn by_age(first: Duration, cap: Duration, age: Duration) -> Duration {
    let (first, cap, age) = (first.as_micros(), cap.as_micros().max(1), age.as_micros());
    let due = age + first / 2;
    // Points first, 2 first, 4 first, ..., each gap doubling up to `cap`.
    let (mut point, mut gap) = (first, first.max(1));
    while point < due && gap < cap {
        point += gap;
        gap = (gap * 2).min(cap);
    }
    if point < due {
        point += (due - point).div_ceil(cap) * cap;
    }
    Duration::from_micros((point - age) as u64)
}

/// What an urgent run's poll must leave, besides its own round trip, between
/// its arrival and the download slot it aims at: the move to fetch (commit,
/// publish, delivery: 1-5 ms measured under bench-steer's load), the
/// take-over guard of the slot, and room for a poll delivered late.
const SLOT_LEAD: Duration = Duration::from_millis(50);

/// An urgent run's next poll, timed to land just before a slot of the
/// search+download budget. When that budget is busy every download waits
/// for a slot, and the slots lie on a grid: the next free one (`ahead` from
/// now) plus or minus whole `interval`s. A poll that sees the job finished
/// at a random moment leaves the download waiting up to an interval for its
/// slot; one that arrives `lead` before a slot hands the download that very
/// slot (an urgent download takes over a slot reserved for other work).
///
/// The poll goes at the first such moment at least `lead` from now, if that
/// is no later than its schedule (`nominal`); otherwise it keeps its
/// schedule. So while downloads wait for slots an urgent job is read once
/// before each slot (the download could use no slot earlier), and its
/// download takes the first slot after the archive is ready, whatever the
/// schedule; a poll is never later than the schedule, and never more than
/// about one a slot plus the schedule's own.
pub fn aligned(nominal: Duration, ahead: Duration, interval: Duration, lead: Duration) -> Duration {
    if interval.is_zero() {
        return nominal;
    }
    let (nominal_us, interval_us, lead_us) =
        (nominal.as_micros() as i128, interval.as_micros() as i128, lead.as_micros() as i128);
    // The moments `lead` before a slot: first + k * interval, for any k.
    let first = ahead.as_micros() as i128 - lead_us;
    // The earliest of them at or after `lead` from now.
    let k = (lead_us - first + interval_us - 1).div_euclid(interval_us);
    let moment = first + k * interval_us;
    if moment > nominal_us {
        return nominal;
    }
    Duration::from_micros(moment as u64)
}

/// The delay before an urgent run's next poll, aligned to the download
/// slots when the search+download budget is busy, and the slot it aims at
/// (both from now). Alignment is a refinement: if Redis cannot say, the
/// poll keeps its schedule.
async fn urgent_delay(app: &App, nominal: Duration, round_trip: Duration) -> (Duration, Option<Duration>) {
    let limiter = &app.docex().gate.limiter;
    let interval = limiter.interval(Budget::DocexSearch);
    let lead = (TAKE_OVER_GUARD + SLOT_LEAD + round_trip).min(interval / 2);
    match limiter.next_free(Budget::DocexSearch).await {
        Ok(Some(ahead)) => {
            let delay = aligned(nominal, ahead, interval, lead);
            (delay, (delay != nominal).then_some(delay + lead))
        }
        Ok(None) => (nominal, None),
        Err(e) => {
            debug!(error = %e, "could not read the search budget's schedule; the poll keeps its own");
            (nominal, None)
        }
    }
}

/// Tells the limiter which download slot an urgent run's next poll aims at
/// (None: none), so that an urgent search keeps off it. A refinement too.
async fn aim(app: &App, run: &str, slot: Option<Duration>) {
    if let Err(e) = app.docex().gate.limiter.aim(Budget::DocexSearch, run, slot).await {
        debug!(error = %e, "could not note the slot an urgent download aims at");
    }
}

impl Handler for Poll {
    type Input = Step;
    const QUEUE: &'static str = queues::STATUS;

    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(32)
    }

    async fn handle(&self, step: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pool = &app.db().pool;
        let Some(run) = run::current(pool, step, State::Poll).await? else { return Ok(()) };
        let job_id = run.job_id.clone().ok_or_else(|| StageError::permanent("run is polling without a job"))?;
        let sent = Instant::now();
        let status = app.docex().status(&job_id, &Guard::new(pool, &run)).await?;
        let round_trip = sent.elapsed();
        let mut next = schedule(app, &run);
        if run.priority() == Priority::Urgent {
            let run_id = run.run_id.to_string();
            match &status {
                JobStatus::Pending => {
                    let asked = Instant::now();
                    let (delay, slot) = urgent_delay(app, next, round_trip).await;
                    next = delay;
                    aim(app, &run_id, slot.map(|s| s.saturating_sub(asked.elapsed()))).await;
                }
                // The download goes now, to the slot the poll aimed at.
                JobStatus::Finished { archive_url: Some(_), .. } => {}
                _ => aim(app, &run_id, None).await,
            }
        }
        // Counted from here: waiting for a database connection must not
        // make an aligned poll late.
        let decided = Instant::now();
        let mut uow = UnitOfWork::begin(app).await?;
        let moved = match &status {
            JobStatus::Pending => edges::job_pending(&mut uow, &run, next.saturating_sub(decided.elapsed())).await?,
            JobStatus::Finished { count, archive_url: Some(url) } if *count > 0 => {
                edges::job_finished(&mut uow, &run, url, *count).await?
            }
            JobStatus::Finished { count, archive_url: None } if *count > 0 => {
                return Err(StageError::transient(format!("DocEx reported {count} documents but no archive URL")));
            }
            JobStatus::Finished { .. } => edges::nothing_found(&mut uow, &run).await?,
            JobStatus::Failed => edges::search_again(&mut uow, &run, "status", "job failed; searching again").await?,
            JobStatus::Missing => {
                edges::search_again(&mut uow, &run, "status", "job unknown to DocEx; searching again").await?
            }
        };
        if moved {
            uow.commit(app).await?;
            if status != JobStatus::Pending {
                info!(run_id = %run.run_id, %job_id, ?status, "job settled");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_urgent_runs_schedule_is_counted_from_the_jobs_start() {
        let (first, cap) = (ms(300), ms(1200));
        // On time: 300, 600, 1200, 2400, 3600 ms after the start, as the
        // count of polls gives it.
        assert_eq!(by_age(first, cap, ms(0)), ms(300));
        assert_eq!(by_age(first, cap, ms(300)), ms(300));
        assert_eq!(by_age(first, cap, ms(600)), ms(600));
        assert_eq!(by_age(first, cap, ms(1200)), ms(1200));
        assert_eq!(by_age(first, cap, ms(2400)), ms(1200));
        // Polls in between (aligned to slots) leave the points where they are.
        assert_eq!(by_age(first, cap, ms(700)), ms(500));
        assert_eq!(by_age(first, cap, ms(1000)), ms(200));
        assert_eq!(by_age(first, cap, ms(3000)), ms(600));
        // A poll a little early for its point does not poll again at once.
        assert_eq!(by_age(first, cap, ms(1190)), ms(1210));
        // An hour on, still every cap.
        assert_eq!(by_age(first, cap, ms(3_600_000)), ms(1200));
        assert_eq!(by_age(first, cap, ms(3_600_100)), ms(1100));
    }

    #[test]
    fn an_urgent_poll_lands_lead_before_the_next_slot_within_its_delay() {
        // Slots at 140, 240, 340, ... ms from now; lead 30 ms: moments at
        // 110, 210, 310 ms. A poll due in 300 ms goes at 110.
        assert_eq!(aligned(ms(300), ms(140), ms(100), ms(30)), ms(110));
        // Slots reserved far ahead still lie on the grid behind them.
        assert_eq!(aligned(ms(300), ms(940), ms(100), ms(30)), ms(110));
        // The next slot is too close to reach before it: the one after.
        assert_eq!(aligned(ms(300), ms(40), ms(100), ms(30)), ms(110));
        // A moment exactly at the schedule is taken as it is.
        assert_eq!(aligned(ms(110), ms(140), ms(100), ms(30)), ms(110));
    }

    #[test]
    fn an_urgent_poll_is_never_later_than_its_schedule_nor_sooner_than_its_lead() {
        for ahead in (0..2000).step_by(7) {
            for nominal in [50, 120, 300, 1000, 2000, 8000] {
                let d = aligned(ms(nominal), ms(ahead), ms(100), ms(30));
                assert!(d <= ms(nominal), "{d:?} after {nominal} ms");
                assert!(d >= ms(30), "{d:?} sooner than the lead");
                // Aligned: lead before a slot on the grid; or the schedule.
                let on_grid = (ms(ahead).as_millis() as i64 - d.as_millis() as i64 - 30).rem_euclid(100) == 0;
                assert!(on_grid || d == ms(nominal), "{d:?} is neither on the grid nor the schedule");
            }
        }
        // A slot interval longer than the delay, the next slot beyond it:
        // the schedule stands (6 s slots, a 2 s poll, the next slot in 5 s).
        assert_eq!(aligned(ms(2000), ms(5000), ms(6000), ms(30)), ms(2000));
        assert_eq!(aligned(ms(2000), ms(1500), ms(6000), ms(30)), ms(1470));
        assert_eq!(aligned(ms(8000), ms(500), ms(6000), ms(30)), ms(470));
    }
}

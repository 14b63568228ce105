//! The handler of a waiting room's queue: each wake-up serves the room's
//! head (see [`super::rooms`]). A stage says only how to serve one run
//! ([`Serve`]); claiming, giving back, backing off and parking are here.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::{Instrument, debug, info, warn};

use super::{
    Run, Step, event,
    rooms::{self, Claimed, Release, Room},
};
use crate::{
    App, Handler, Meta, StageError, StageResult,
    broker::consume::{backoff, park_body},
};

/// How a stage serves one run of its room.
pub trait Serve: Send + Sync + 'static {
    const ROOM: Room;
    /// The queue of the wake-ups this handler takes: the room's, or its
    /// urgent lane's ([`Urgent`]).
    const QUEUE: &'static str = Self::ROOM.queue();
    /// Makes the run's outside call and commits its move (an edge). An
    /// error says what happens to the run: `Transient` backs it off, `Wait`
    /// and `Blocked` give it back untouched, `Stopped` means it was paused
    /// or cancelled meanwhile, `Permanent` parks it.
    fn serve(&self, app: &App, run: &Run) -> impl Future<Output = StageResult> + Send;
    /// Wake-ups handled at once per process: runs served concurrently.
    fn prefetch(&self, app: &App) -> u16;
}

/// A room's wake-up handler around a stage's [`Serve`].
pub struct Wakeups<S: Serve>(pub Arc<App>, pub S);

/// A room's urgent worker: takes the wake-ups urgent runs send as they
/// enter the room, and serves the room's head like any wake-up (urgent runs
/// sort first). It serves one run at a time and waits for nothing else, so
/// an urgent run is claimed the moment it arrives, not when a worker busy
/// holding another run's slot comes free; its outside call then takes over
/// a slot reserved for other work ([`crate::outside::gate`]). Every run
/// still has exactly one wake-up, on one lane or the other, so the room's
/// order, fair share and job slots are the same.
pub struct Urgent<S: Serve>(pub S);

impl<S: Serve> Serve for Urgent<S> {
    const ROOM: Room = S::ROOM;
    const QUEUE: &'static str = S::ROOM.urgent_queue();

    fn serve(&self, app: &App, run: &Run) -> impl Future<Output = StageResult> + Send {
        self.0.serve(app, run)
    }

    fn prefetch(&self, _app: &App) -> u16 {
        1
    }
}

/// How many paused or cancelled heads one wake-up skips before it waits.
const SKIPS: usize = 16;

impl<S: Serve> Handler for Wakeups<S> {
    type Input = Step;
    const QUEUE: &'static str = S::QUEUE;

    fn prefetch(&self, app: &App) -> u16 {
        self.1.prefetch(app)
    }

    async fn handle(&self, wake: Step, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let pool = &app.db().pool;
        // A wake-up for a run parked in this room is a replay (or a new
        // request): the run may be served again.
        if rooms::unpark(pool, S::ROOM, wake).await? {
            let mut conn = pool.acquire().await?;
            event(&mut conn, wake.run_id, app.service, "unparked; waiting in the room again").await?;
            info!(run_id = %wake.run_id, "parked run back in its room");
        }
        let s = &app.settings;
        let lease = s.limit_max_hold + s.http_timeout * 2 + Duration::from_secs(30);
        let job_slots = (S::ROOM == Room::Search).then_some(s.docex_max_jobs);
        let started = std::time::Instant::now();
        let mut skipped = 0;
        loop {
            let run = match rooms::claim(pool, S::ROOM, lease, job_slots).await? {
                Claimed::Run(run) => run,
                Claimed::Empty => return Ok(()),
                Claimed::Later(after) => {
                    return Err(StageError::wait(after, "every run in the room is busy or backing off"));
                }
                Claimed::NoJobSlot if started.elapsed() < s.limit_max_hold => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Claimed::NoJobSlot => {
                    return Err(StageError::wait(Duration::from_secs(5), "DOCEX_MAX_JOBS jobs are in flight"));
                }
            };
            // Ours until then (less a little: the clocks of this process and
            // the database may differ by a round trip).
            let ours_until = Instant::now() + lease.saturating_sub(Duration::from_secs(5));
            let span = tracing::info_span!("serve", run_id = %run.run_id);
            let served = self.1.serve(app, &run).instrument(span).await;
            match served {
                Ok(()) => return Ok(()),
                Err(StageError::Stopped(why)) => {
                    debug!(run_id = %run.run_id, %why, "skipping a run stopped while it was served");
                    give_back(app, &run, S::ROOM, Release::Untouched, ours_until).await?;
                    skipped += 1;
                    if skipped >= SKIPS {
                        return Err(StageError::wait(app.smallest_tier(), "runs in the room keep being paused"));
                    }
                }
                Err(e @ (StageError::Wait { .. } | StageError::Blocked { .. })) => {
                    give_back(app, &run, S::ROOM, Release::Untouched, ours_until).await?;
                    return Err(e);
                }
                Err(StageError::Transient { reason, after }) => {
                    let wait = after.unwrap_or_else(|| backoff(app, run.attempts.max(0) as u32));
                    warn!(run_id = %run.run_id, %reason, retry_in = ?wait, "transient failure; the run will be served again");
                    give_back(app, &run, S::ROOM, Release::Failed { reason: &reason, backoff: wait }, ours_until)
                        .await?;
                    // The wake-up serves the next run soon; this one waits out its backoff.
                    return Err(StageError::wait(app.smallest_tier(), reason));
                }
                Err(StageError::Permanent(reason)) => {
                    warn!(run_id = %run.run_id, %reason, "parking the run");
                    let body = serde_json::to_vec(&run.step()).map_err(|e| StageError::transient(e.to_string()))?;
                    // Marks the run parked too, once the parked record is confirmed.
                    park_body(app, &body, None, None, S::ROOM.queue(), &reason, Some(run.run_id)).await?;
                    return Ok(());
                }
            }
        }
    }
}

/// Gives a claimed run back to its room. The usual reason it cannot is the
/// reason serving it failed: the database is away. Then the claim would
/// hold the run for the rest of its lease (minutes) after the database is
/// back, so keep trying, with capped backoff, while the claim is still ours
/// (never after: another worker may have claimed the run since). The
/// wake-up is held meanwhile; nothing progresses without the database anyway.
async fn give_back(app: &App, run: &Run, room: Room, how: Release<'_>, ours_until: Instant) -> StageResult {
    let mut delay = Duration::from_millis(250);
    loop {
        let err = match rooms::release(&app.db().pool, room, run, how).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() + delay >= ours_until || app.shutdown.is_cancelled() {
            // The claim lapses by itself at the end of its lease.
            return Err(err.into());
        }
        debug!(run_id = %run.run_id, error = %err, retry_in = ?delay, "cannot give the run back to its room yet");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = app.shutdown.cancelled() => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

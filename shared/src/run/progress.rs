//! Progress of batches and when each will be done. The estimate comes from
//! the work left and the budgets, not from a straight line through the past:
//! each waiting run still needs a DocEx search and, as often as this batch's
//! (or the fleet's) runs found documents, a download, from the one
//! search+download budget; higher priorities are served first and batches
//! of one priority share it in turn. TaskTracker's budget and the
//! converters' recent pace can be the bound instead; the estimate says
//! which one is.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Priority;
use crate::settings::Settings;

/// One batch, counted.
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct BatchCounts {
    pub batch: String,
    /// The most urgent priority among its runs.
    pub priority: i16,
    pub runs: i64,
    /// Waiting for their task or their search.
    pub waiting: i64,
    /// Searched, not yet finished.
    pub in_progress: i64,
    pub found: i64,
    pub not_found: i64,
    pub cancelled: i64,
    pub abandoned: i64,
    /// Unfinished runs a pause covers.
    pub paused: i64,
    /// Unfinished runs parked for an operator.
    pub parked: i64,
    pub failed_documents: i64,
    /// Unfinished runs by what they still need from the DocEx budget.
    pub to_search: i64,
    pub searching: i64,
    pub to_download: i64,
    /// TaskTracker calls left (task, status, report).
    pub tracker_calls: i64,
    /// Documents not yet converted, of runs among their documents.
    pub documents_left: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl BatchCounts {
    pub fn unfinished(&self) -> i64 {
        self.waiting + self.in_progress
    }
}

/// What sets a batch's estimated finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The DocEx search+download budget (the usual case).
    DocexBudget,
    TaskTrackerBudget,
    /// The converters' pace over the last minutes.
    Conversions,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::DocexBudget => "DocEx search+download budget",
            Bound::TaskTrackerBudget => "TaskTracker budget",
            Bound::Conversions => "conversions",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub counts: BatchCounts,
    /// Seconds from now until the batch is done; `None` when it is done,
    /// or paused or parked through and through.
    pub eta: Option<(Duration, Bound)>,
}

const COUNTS: &str = "
SELECT r.batch, min(r.priority) AS priority, count(*) AS runs,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.state IN ('task', 'search')) AS waiting,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.state NOT IN ('task', 'search')) AS in_progress,
  count(*) FILTER (WHERE r.state = 'done' AND r.cancelled_at IS NULL AND r.documents_status = 'DOCUMENTS_FOUND') AS found,
  count(*) FILTER (WHERE r.state = 'done' AND r.cancelled_at IS NULL
                     AND r.documents_status IS DISTINCT FROM 'DOCUMENTS_FOUND') AS not_found,
  count(*) FILTER (WHERE r.cancelled_at IS NOT NULL) AS cancelled,
  count(*) FILTER (WHERE r.state = 'abandoned') AS abandoned,
  count(*) FILTER (WHERE r.finished_at IS NULL AND docket.paused(r.batch, r.patient_id)) AS paused,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.parked) AS parked,
  coalesce(sum(r.docs_failed), 0)::bigint AS failed_documents,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.cancelled_at IS NULL AND r.state IN ('task', 'search')) AS to_search,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.cancelled_at IS NULL AND r.state = 'poll') AS searching,
  count(*) FILTER (WHERE r.finished_at IS NULL AND r.cancelled_at IS NULL AND r.state = 'fetch'
                     AND NOT r.archive_fetched) AS to_download,
  (count(*) FILTER (WHERE r.finished_at IS NULL AND r.task_id IS NULL)
   + 2 * count(*) FILTER (WHERE r.finished_at IS NULL))::bigint AS tracker_calls,
  coalesce(sum(r.docs_total - r.docs_done) FILTER (WHERE r.finished_at IS NULL AND r.state = 'documents'), 0)::bigint
    AS documents_left,
  min(r.created_at) AS created_at,
  CASE WHEN bool_and(r.finished_at IS NOT NULL) THEN max(r.finished_at) END AS finished_at
FROM docket.runs r";

/// Every batch (or the one named), oldest first, with its estimate.
pub async fn batches(pool: &PgPool, settings: &Settings, only: Option<&str>) -> Result<Vec<Progress>, sqlx::Error> {
    let mut all: Vec<BatchCounts> =
        sqlx::query_as(&format!("{COUNTS} GROUP BY r.batch ORDER BY min(r.created_at)")).fetch_all(pool).await?;
    let pace = Pace::measure(pool, settings).await?;
    let estimates = estimate(&all, settings, &pace);
    if let Some(name) = only {
        all.retain(|c| c.batch == name);
    }
    Ok(all.into_iter().map(|counts| Progress { eta: estimates.get(&counts.batch).copied(), counts }).collect())
}

/// What the recent past says that the budgets cannot: how often a search
/// finds documents, how fast the converters go, how long a run takes from
/// its job finishing to its report.
#[derive(Clone, Debug, Default)]
pub struct Pace {
    /// Found share per batch (from its finished runs), and fleet-wide.
    pub found_share: BTreeMap<String, f64>,
    pub found_share_all: Option<f64>,
    /// Found share per priority rank (a stream's own, for what it takes).
    pub found_by_rank: BTreeMap<i16, f64>,
    /// Documents finished per second over the last five minutes.
    pub conversions_per_sec: Option<f64>,
    /// Median time from a job finishing to its run's report.
    pub tail: Duration,
    /// Time from a run's search to its job found finished (the job's own
    /// time and the polls), the third quartile: the last runs of a batch
    /// are searched before its last units of budget are spent, and the
    /// batch is done only when the slowest of them is.
    pub search_to_job: Duration,
    /// Requests arriving steadily (a stream, not a batch published at
    /// once) per priority rank, per second: work that will take its share
    /// of the budget ahead of every lower priority.
    pub streams: BTreeMap<i16, f64>,
}

impl Pace {
    pub async fn measure(pool: &PgPool, settings: &Settings) -> Result<Pace, sqlx::Error> {
        let shares: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT batch, count(*) FILTER (WHERE documents_status = 'DOCUMENTS_FOUND'), count(*)
             FROM docket.runs WHERE state = 'done' AND cancelled_at IS NULL GROUP BY batch",
        )
        .fetch_all(pool)
        .await?;
        let (found, total) = shares.iter().fold((0, 0), |(f, t), s| (f + s.1, t + s.2));
        let found_share = shares
            .iter()
            .filter(|s| s.2 >= 10)
            .map(|(batch, found, total)| (batch.clone(), *found as f64 / *total as f64))
            .collect();
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM docket.documents WHERE finished_at > now() - interval '5 minutes'",
        )
        .fetch_one(pool)
        .await?;
        let tail: Option<f64> = sqlx::query_scalar(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.finished_at - e.at))
             FROM (SELECT run_id, finished_at FROM docket.runs WHERE state = 'done' AND cancelled_at IS NULL
                   ORDER BY finished_at DESC LIMIT 100) r
             JOIN LATERAL (SELECT max(at) AS at FROM docket.run_events
                           WHERE run_id = r.run_id AND event LIKE 'job finished%') e ON e.at IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        let search_to_job: Option<f64> = sqlx::query_scalar(
            "SELECT percentile_cont(0.75) WITHIN GROUP (ORDER BY extract(epoch FROM j.at - s.at))
             FROM (SELECT run_id FROM docket.runs WHERE state = 'done' AND cancelled_at IS NULL
                   ORDER BY finished_at DESC LIMIT 100) r
             JOIN LATERAL (SELECT max(at) AS at FROM docket.run_events
                           WHERE run_id = r.run_id AND event LIKE 'job finished%') j ON j.at IS NOT NULL
             JOIN LATERAL (SELECT max(at) AS at FROM docket.run_events
                           WHERE run_id = r.run_id AND event LIKE 'DocEx search started%') s ON s.at IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        // The last hundred slots of the DocEx budget: ten minutes at 10/min.
        let window = settings.docex_search_rate.interval_with_margin(settings.limit_margin).as_secs_f64() * 100.0;
        let arrivals: Vec<(i16, i64, f64)> = sqlx::query_as(
            "SELECT priority, count(*), extract(epoch FROM max(created_at) - min(created_at))::float8
             FROM docket.runs WHERE created_at > now() - make_interval(secs => $1) GROUP BY priority",
        )
        .bind(window)
        .fetch_all(pool)
        .await?;
        // Spread over most of the window: a stream. All at once: a batch,
        // whose work is counted as work left instead.
        let streams = arrivals
            .into_iter()
            .filter(|(_, n, spread)| *n >= 3 && *spread >= window / 2.0)
            .map(|(rank, n, _)| (rank, n as f64 / window))
            .collect();
        let by_rank: Vec<(i16, i64, i64)> = sqlx::query_as(
            "SELECT priority, count(*) FILTER (WHERE documents_status = 'DOCUMENTS_FOUND'), count(*)
             FROM docket.runs WHERE state = 'done' AND cancelled_at IS NULL GROUP BY priority",
        )
        .fetch_all(pool)
        .await?;
        let found_by_rank =
            by_rank.into_iter().filter(|r| r.2 >= 3).map(|(rank, f, t)| (rank, f as f64 / t as f64)).collect();
        Ok(Pace {
            found_by_rank,
            streams,
            found_share,
            found_share_all: (total >= 10).then(|| found as f64 / total as f64),
            conversions_per_sec: (done >= 20).then(|| done as f64 / 300.0),
            tail: Duration::from_secs_f64(tail.unwrap_or(0.0).clamp(0.0, 3600.0)),
            search_to_job: Duration::from_secs_f64(search_to_job.unwrap_or(0.0).clamp(0.0, 3600.0)),
        })
    }
}

/// The estimate of every unfinished batch that can move.
pub fn estimate(all: &[BatchCounts], settings: &Settings, pace: &Pace) -> BTreeMap<String, (Duration, Bound)> {
    let docex = settings.docex_search_rate.interval_with_margin(settings.limit_margin).as_secs_f64();
    let tracker = settings.tasktracker_rate.interval_with_margin(settings.limit_margin).as_secs_f64();
    // Work a batch still needs from each budget; paused and parked runs
    // wait for an operator and are left out (so is a batch of only those).
    let movable = |c: &BatchCounts| c.unfinished() > c.paused + c.parked;
    let found = |c: &BatchCounts| pace.found_share.get(&c.batch).copied().or(pace.found_share_all).unwrap_or(0.5);
    let docex_units = |c: &BatchCounts| {
        (c.to_search as f64) * (1.0 + found(c)) + (c.searching as f64) * found(c) + c.to_download as f64
    };
    let mut out = BTreeMap::new();
    // Seconds of each resource the more urgent classes take first.
    let (mut ahead_docex, mut ahead_tracker, mut ahead_docs) = (0.0, 0.0, 0.0);
    for rank in Priority::ALL.map(Priority::rank) {
        // What steady streams of more urgent requests leave of the budget.
        let taken: f64 = pace
            .streams
            .range(..rank)
            .map(|(r, per_sec)| per_sec * (1.0 + pace.found_by_rank.get(r).copied().unwrap_or(0.5)) * docex)
            .sum();
        let docex = docex / (1.0 - taken).max(0.1);
        let class: Vec<&BatchCounts> = all.iter().filter(|c| c.priority == rank && movable(c)).collect();
        let docex_done = shared_finish(&class.iter().map(|c| docex_units(c) * docex).collect::<Vec<_>>());
        let tracker_done = shared_finish(&class.iter().map(|c| c.tracker_calls as f64 * tracker).collect::<Vec<_>>());
        let docs_done = match pace.conversions_per_sec {
            Some(per_sec) => {
                shared_finish(&class.iter().map(|c| c.documents_left as f64 / per_sec).collect::<Vec<_>>())
            }
            None => vec![0.0; class.len()],
        };
        for (i, c) in class.iter().enumerate() {
            let (secs, bound) = [
                (ahead_docex + docex_done[i], Bound::DocexBudget),
                (ahead_tracker + tracker_done[i], Bound::TaskTrackerBudget),
                (ahead_docs + docs_done[i], Bound::Conversions),
            ]
            .into_iter()
            .fold((0.0, Bound::DocexBudget), |best, next| if next.0 > best.0 { next } else { best });
            let tail = in_flight_tail(c, pace);
            out.insert(c.batch.clone(), (Duration::from_secs_f64(secs + tail), bound));
        }
        ahead_docex += docex_done.iter().copied().fold(0.0, f64::max);
        ahead_tracker += tracker_done.iter().copied().fold(0.0, f64::max);
        ahead_docs += docs_done.iter().copied().fold(0.0, f64::max);
    }
    out
}

/// What a batch's last runs still take after its last unit of budget is
/// spent: the budget can be spent before they are done. A run searched
/// near the end still waits for its job (and the poll that sees it
/// finished), then for its download, conversions and report; a run already
/// downloaded needs none of that. Runs among their documents are counted
/// by the conversions' estimate instead.
fn in_flight_tail(c: &BatchCounts, pace: &Pace) -> f64 {
    let job = if c.to_search + c.searching > 0 { pace.search_to_job.as_secs_f64() } else { 0.0 };
    let after_job = if c.to_search + c.searching + c.to_download > 0 { pace.tail.as_secs_f64() } else { 0.0 };
    job + after_job
}

/// When each of several jobs sharing one resource in turn finishes, given
/// the time each would take alone: while n are left, each gets 1/n of it,
/// so the shortest finishes first (processor sharing).
fn shared_finish(alone: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..alone.len()).collect();
    order.sort_by(|a, b| alone[*a].total_cmp(&alone[*b]));
    let mut done = vec![0.0; alone.len()];
    let (mut clock, mut before) = (0.0, 0.0);
    for (k, i) in order.iter().enumerate() {
        clock += (alone[*i] - before) * (alone.len() - k) as f64;
        before = alone[*i];
        done[*i] = clock;
    }
    done
}

/// Keeps the batch gauges current (every 15 s) for Grafana: the batches
/// with work left, or done within the last hour.
pub async fn export(app: std::sync::Arc<crate::App>) {
    use crate::metrics::{BatchLabels, BatchStateLabels};
    while !app.shutdown.is_cancelled() {
        match batches(&app.db().pool, &app.settings, None).await {
            Ok(all) => {
                let m = &app.metrics;
                m.batch_runs.clear();
                m.batch_eta_seconds.clear();
                let recent = Utc::now() - chrono::Duration::hours(1);
                for p in all.iter().filter(|p| p.counts.finished_at.is_none_or(|at| at > recent)) {
                    let c = &p.counts;
                    let states = [
                        ("waiting", c.waiting),
                        ("working", c.in_progress),
                        ("found", c.found),
                        ("not_found", c.not_found),
                        ("cancelled", c.cancelled),
                        ("paused", c.paused),
                        ("parked", c.parked),
                    ];
                    for (state, n) in states {
                        m.batch_runs.get_or_create(&BatchStateLabels { batch: c.batch.clone(), state }).set(n);
                    }
                    let eta = match (c.finished_at, p.eta) {
                        (Some(_), _) => 0.0,
                        (None, Some((left, _))) => left.as_secs_f64(),
                        (None, None) => f64::NAN,
                    };
                    m.batch_eta_seconds.get_or_create(&BatchLabels { batch: c.batch.clone() }).set(eta);
                }
            }
            Err(e) => tracing::debug!(error = %e, "reading batch progress failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            _ = app.shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Vars;

    fn batch(name: &str, priority: Priority, to_search: i64) -> BatchCounts {
        BatchCounts {
            batch: name.into(),
            priority: priority.rank(),
            runs: to_search,
            waiting: to_search,
            to_search,
            ..BatchCounts::default()
        }
    }

    fn settings() -> Settings {
        let vars = [("DOCEX_SEARCH_RATE", "60/min"), ("LIMIT_MARGIN", "0ms"), ("TASKTRACKER_RATE", "100/s")];
        Settings::from_vars(&Vars::from_map(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
            .expect("valid settings")
    }

    #[test]
    fn batches_of_one_priority_share_the_budget_and_the_small_one_finishes_first() {
        let pace = Pace { found_share_all: Some(0.0), ..Pace::default() };
        let all = [batch("big", Priority::Normal, 200), batch("small", Priority::Normal, 20)];
        let eta = estimate(&all, &settings(), &pace);
        // One search a second: the small batch shares half the budget for 40 s.
        assert_eq!(eta["small"], (Duration::from_secs(40), Bound::DocexBudget));
        assert_eq!(eta["big"], (Duration::from_secs(220), Bound::DocexBudget));
    }

    #[test]
    fn higher_priorities_go_first_and_found_documents_cost_a_download() {
        let pace = Pace { found_share_all: Some(0.5), ..Pace::default() };
        let all = [batch("bulk", Priority::Bulk, 10), batch("urgent", Priority::Urgent, 2)];
        let eta = estimate(&all, &settings(), &pace);
        assert_eq!(eta["urgent"].0, Duration::from_secs(3));
        assert_eq!(eta["bulk"].0, Duration::from_secs(18));
    }

    #[test]
    fn a_stream_of_urgent_requests_takes_its_share_ahead_of_the_bulk() {
        let mut streams = BTreeMap::new();
        streams.insert(Priority::Urgent.rank(), 0.2);
        let pace = Pace {
            found_share_all: Some(0.0),
            found_by_rank: [(Priority::Urgent.rank(), 0.0)].into(),
            streams,
            ..Pace::default()
        };
        let eta = estimate(&[batch("bulk", Priority::Bulk, 80)], &settings(), &pace);
        // One urgent search every 5 s leaves 80 % of one a second.
        assert_eq!(eta["bulk"].0, Duration::from_secs(100));
    }

    #[test]
    fn a_batch_is_done_when_its_last_searched_runs_are_not_when_its_budget_is_spent() {
        let pace = Pace {
            found_share_all: Some(0.0),
            tail: Duration::from_millis(500),
            search_to_job: Duration::from_millis(1500),
            ..Pace::default()
        };
        // Ten searches left at one a second, then the last one's job and the rest.
        let eta = estimate(&[batch("b", Priority::Normal, 10)], &settings(), &pace);
        assert_eq!(eta["b"].0, Duration::from_secs(12));
        // Every run searched, two of them still polling: their jobs, then the rest.
        let mut polling = batch("p", Priority::Normal, 0);
        (polling.waiting, polling.in_progress, polling.searching) = (0, 2, 2);
        let eta = estimate(&[polling], &settings(), &pace);
        assert_eq!(eta["p"].0, Duration::from_secs(2));
        // Only downloads left: one slot each, then what follows a download.
        let mut fetching = batch("f", Priority::Normal, 0);
        (fetching.waiting, fetching.in_progress, fetching.to_download) = (0, 3, 3);
        let eta = estimate(&[fetching], &settings(), &pace);
        assert_eq!(eta["f"].0, Duration::from_millis(3500));
    }

    #[test]
    fn sharing_in_turn_finishes_the_shortest_first() {
        assert_eq!(shared_finish(&[10.0, 2.0, 5.0]), vec![17.0, 6.0, 12.0]);
        assert!(shared_finish(&[]).is_empty());
    }

    #[test]
    fn a_batch_paused_through_and_through_has_no_estimate() {
        let mut paused = batch("paused", Priority::Normal, 5);
        paused.paused = 5;
        let eta = estimate(&[paused], &settings(), &Pace::default());
        assert!(eta.is_empty());
    }
}

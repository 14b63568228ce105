//! Benchmark (not a test) of steered work: 3,000 `bulk` requests in two
//! batches of different sizes, published at once, and a stream of `urgent`
//! requests, one a minute at the real budget (time-scaled with it), against
//! the stubs with every budget scaled 60 times (a real minute is a second).
//!
//!   cargo run --release -p docket-e2e --bin bench-steer -- [bulk] [small batch]
//!
//! Prints the urgent requests' latency (median, worst) against one patient's
//! own latency on an idle pipeline plus two search intervals, each batch's
//! share of the search slots while both waited, the makespan against the
//! bound, and the estimated finish `docket batches` showed at 10, 50 and
//! 90 % of each batch against its real finish.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use docket_e2e::{Patient, TestEnv, TestOptions};
use docket_shared::run::progress;
use docket_stubs::{ArchiveKind, Profile};

/// The scaled budget: 600 searches and downloads a minute instead of 10, so
/// a real minute is a second here.
const SEARCH_RATE: &str = "600/min";
const SEARCH_PER_SEC: f64 = 10.0;
const INTERVAL: Duration = Duration::from_millis(100);
/// One urgent request a real minute.
const URGENT_EVERY: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bulk: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let small: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(bulk / 5);
    let large = bulk - small;
    // SAFETY of set_var: before any other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    }
    let mut options = TestOptions::bench(SEARCH_RATE);
    // Every budget scaled as the search budget is: 10/s becomes 600/s.
    options.docex.status_rate = "600/s".parse().expect("a valid rate");
    options.tracker.rate = "600/s".parse().expect("a valid rate");
    let mut env = TestEnv::new(options).await;
    let group =
        |prefix: &str, n: usize| -> Vec<Patient> { (0..n).map(|i| Patient::new(&format!("{prefix}{i:05}"))).collect() };
    let (large_p, small_p, urgent_p) = (group("L", large), group("S", small), group("U", 2000));
    let urgent_profile = Profile { documents: 2, kind: ArchiveKind::Text, job_ms: Some(1000), ..Profile::default() };
    for p in &urgent_p {
        env.docex.set_profile(&p.first, &p.last, urgent_profile.clone());
    }
    for g in [&large_p, &small_p, &urgent_p] {
        env.seed(g).await;
    }
    env.start_all(1).await;
    let settings = env.settings();

    // One patient's own latency, alone on an idle pipeline.
    let mut own = Vec::new();
    let mut baseline_sent: Vec<Sent> = Vec::new();
    for p in &urgent_p[..3] {
        let at = Utc::now();
        env.publish_in("baseline", "urgent", &[p.id.as_str()]).await;
        baseline_sent.push(Sent { patient: p.id.clone(), at, confirmed: Utc::now() });
        own.push(latency(&env, &p.id, at).await);
    }
    own.sort();
    let own = own[1];
    println!("{bulk} bulk requests ({large} + {small} in two batches), one urgent request every {URGENT_EVERY:?}");
    println!("DocEx search+download budget {SEARCH_RATE} (a search interval is {INTERVAL:?})");
    println!("one patient's own latency, idle: {:.2} s (median of 3)", own.as_secs_f64());

    let t0 = Utc::now();
    let started = Instant::now();
    env.publish_in("bulk-large", "bulk", &ids(&large_p)).await;
    env.publish_in("bulk-small", "bulk", &ids(&small_p)).await;

    let mut urgent_sent: Vec<(String, DateTime<Utc>)> = Vec::new();
    let mut urgent_confirmed: Vec<DateTime<Utc>> = Vec::new();
    let mut next_urgent = Instant::now();
    let mut marks: BTreeMap<(String, u32), (DateTime<Utc>, Duration, String)> = BTreeMap::new();
    let mut last_eta_read = Instant::now() - Duration::from_secs(10);
    loop {
        let done = finished_per_batch(&env).await;
        let bulk_done = done.get("bulk-large").copied().unwrap_or(0) + done.get("bulk-small").copied().unwrap_or(0);
        if bulk_done as usize >= bulk {
            break;
        }
        if Instant::now() >= next_urgent && urgent_sent.len() + 3 < urgent_p.len() {
            let p = &urgent_p[urgent_sent.len() + 3];
            urgent_sent.push((p.id.clone(), Utc::now()));
            env.publish_in("urgent-stream", "urgent", &[p.id.as_str()]).await;
            urgent_confirmed.push(Utc::now());
            next_urgent += URGENT_EVERY;
        }
        if last_eta_read.elapsed() >= Duration::from_millis(500) {
            last_eta_read = Instant::now();
            let pending: Vec<(String, u32)> = [("bulk-large", large), ("bulk-small", small)]
                .iter()
                .flat_map(|(b, n)| {
                    let f = done.get(*b).copied().unwrap_or(0) as f64 / *n as f64;
                    [10, 50, 90].into_iter().filter(move |m| f * 100.0 >= *m as f64).map(move |m| (b.to_string(), m))
                })
                .filter(|k| !marks.contains_key(k))
                .collect();
            if !pending.is_empty() {
                let all = progress::batches(&env.pool, &settings, None).await.expect("reading progress");
                for (batch, mark) in pending {
                    if let Some((eta, bound)) = all.iter().find(|p| p.counts.batch == batch).and_then(|p| p.eta) {
                        marks.insert((batch, mark), (Utc::now(), eta, bound.as_str().to_string()));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_finished((bulk + urgent_sent.len() + 3) as i64, Duration::from_secs(600)).await;
    let wall = started.elapsed();

    // Urgent latency: publication to report.
    let mut urgent_lat = Vec::new();
    for (id, at) in &urgent_sent {
        urgent_lat.push(latency(&env, id, *at).await);
    }
    urgent_lat.sort();
    let target = own + 2 * INTERVAL;
    println!();
    println!(
        "urgent latency              median {:.2} s, worst {:.2} s over {} requests (target: at most {:.2} s = own {:.2} s + two search intervals)",
        urgent_lat[urgent_lat.len() / 2].as_secs_f64(),
        urgent_lat.last().copied().unwrap_or_default().as_secs_f64(),
        urgent_lat.len(),
        target.as_secs_f64(),
        own.as_secs_f64()
    );
    let over = urgent_lat.iter().filter(|l| **l > target).count();
    println!("                            {over} of {} over the target", urgent_lat.len());
    let sent: Vec<Sent> = urgent_sent
        .iter()
        .zip(&urgent_confirmed)
        .map(|((patient, at), confirmed)| Sent { patient: patient.clone(), at: *at, confirmed: *confirmed })
        .collect();
    breakdown(&env, &baseline_sent, &sent, urgent_profile.job_ms.unwrap_or(0)).await;

    // Shares of the search slots while both bulk batches waited.
    let searches: Vec<(u64, char)> = {
        let mut s: Vec<(u64, char)> = env
            .docex
            .arrivals()
            .iter()
            .filter(|a| a.endpoint == "search")
            .filter_map(|a| a.subject.strip_prefix("Family").and_then(|p| p.chars().next()).map(|c| (a.at_ms, c)))
            .filter(|(_, c)| *c == 'L' || *c == 'S')
            .collect();
        s.sort();
        s
    };
    let last_of = |c: char| searches.iter().rposition(|(_, x)| *x == c).unwrap_or(0);
    let first_of = |c: char| searches.iter().position(|(_, x)| *x == c).unwrap_or(0);
    let (from, to) = (first_of('L').max(first_of('S')), last_of('L').min(last_of('S')));
    let window = &searches[from..=to];
    let small_n = window.iter().filter(|(_, c)| *c == 'S').count();
    println!(
        "search slots while both bulk batches waited: {} searches, bulk-large {:.1} %, bulk-small {:.1} % (target 45-55 %)",
        window.len(),
        (window.len() - small_n) as f64 * 100.0 / window.len() as f64,
        small_n as f64 * 100.0 / window.len() as f64
    );

    // Makespan against the bound.
    let (last,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT max(finished_at) FROM docket.runs WHERE batch <> 'baseline'")
            .fetch_one(&env.pool)
            .await
            .expect("reading runs");
    let (downloads,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM docket.runs WHERE archive_url IS NOT NULL AND batch <> 'baseline'")
            .fetch_one(&env.pool)
            .await
            .expect("reading runs");
    let requests = bulk + urgent_sent.len();
    let bound = (requests as f64 + downloads as f64) / SEARCH_PER_SEC;
    let makespan = (last - t0).to_std().unwrap_or(wall).as_secs_f64();
    println!(
        "makespan                    {makespan:.1} s against a bound of {bound:.1} s ({requests} searches + {downloads} downloads at {SEARCH_PER_SEC}/s): {:+.2} %",
        (makespan / bound - 1.0) * 100.0
    );

    // The estimates against the real finish.
    let finishes: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT batch, max(finished_at) FROM docket.runs WHERE batch LIKE 'bulk-%' GROUP BY batch ORDER BY batch",
    )
    .fetch_all(&env.pool)
    .await
    .expect("reading runs");
    println!("estimated finish (docket batches) against the real finish:");
    for (batch, real) in &finishes {
        // What the budget cannot show: how long the batch took after its last search.
        let letter = if batch == "bulk-large" { 'L' } else { 'S' };
        if let Some((at, _)) = searches.iter().rev().find(|(_, c)| *c == letter) {
            println!(
                "  {batch:<11} real finish {:.1} s after its last search",
                (real.timestamp_millis() - *at as i64) as f64 / 1000.0
            );
        }
        for mark in [10, 50, 90] {
            let Some((at, eta, bound)) = marks.get(&(batch.clone(), mark)) else {
                println!("  {batch:<11} at {mark:>2} %: no estimate read");
                continue;
            };
            let estimated = *at + chrono::Duration::from_std(*eta).unwrap_or_default();
            let remaining = (*real - *at).num_milliseconds() as f64 / 1000.0;
            let error = (estimated - *real).num_milliseconds() as f64 / 1000.0;
            println!(
                "  {batch:<11} at {mark:>2} %: estimated {:>6.1} s left, really {remaining:>6.1} s: off by {error:+6.1} s ({:+.1} % of the time left), bound: {bound}",
                eta.as_secs_f64(),
                error / remaining.max(0.001) * 100.0
            );
        }
    }
    env.cleanup().await;
}

fn ids(patients: &[Patient]) -> Vec<&str> {
    patients.iter().map(|p| p.id.as_str()).collect()
}

/// Seconds from `published` to the patient's run finishing.
async fn latency(env: &TestEnv, patient: &str, published: DateTime<Utc>) -> Duration {
    loop {
        let done: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT finished_at FROM docket.runs WHERE patient_id = $1 AND finished_at IS NOT NULL
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(patient)
        .fetch_optional(&env.pool)
        .await
        .expect("reading a run")
        .flatten();
        if let Some(at) = done {
            return (at - published).to_std().unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished_per_batch(env: &TestEnv) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT batch, count(*) FILTER (WHERE finished_at IS NOT NULL) FROM docket.runs GROUP BY batch")
            .fetch_all(&env.pool)
            .await
            .expect("counting");
    rows.into_iter().collect()
}

/// An urgent request as the bench published it: when the publication
/// began and when the broker confirmed it.
struct Sent {
    patient: String,
    at: DateTime<Utc>,
    confirmed: DateTime<Utc>,
}

/// The steps of an urgent run, from the stubs' arrival log (when each call
/// reached DocEx or TaskTracker) and the run's history (when each stage
/// committed). Each step is the time from the previous one.
const STEPS: [&str; N] = [
    "publish (bench's AMQP connect + confirm)",
    "confirmed -> run started (intake)",
    "run started -> TaskTracker task created",
    "task -> DocEx search arrives",
    "search -> job ready (the stub's job time)",
    "job ready -> the poll that saw it arrives",
    "poll saw it -> archive download arrives",
    "download arrives -> archive extracted",
    "extracted -> all documents converted+stored",
    "documents done -> report arrives at TaskTracker",
    "report arrives -> run done",
];

/// Steps in [`STEPS`].
const N: usize = 11;

/// Milliseconds of each step of each run, `None` where a step is missing.
async fn steps(env: &TestEnv, sent: &[Sent], job_ms: u64) -> Vec<[Option<i64>; N]> {
    let docex = env.docex.arrivals();
    let tracker = env.tracker.arrivals();
    let ids: Vec<String> = sent.iter().map(|s| s.patient.clone()).collect();
    let events: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT r.patient_id, e.event, e.at FROM docket.run_events e JOIN docket.runs r USING (run_id)
         WHERE r.patient_id = ANY($1) ORDER BY e.id",
    )
    .bind(&ids)
    .fetch_all(&env.pool)
    .await
    .expect("reading run events");
    let done: Vec<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT patient_id, finished_at FROM docket.runs WHERE patient_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&env.pool)
            .await
            .expect("reading runs");
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    sent.iter()
        .map(|s| {
            let last = format!("Family{}", s.patient);
            let docex_at = |endpoint: &str, from: i64| {
                docex
                    .iter()
                    .filter(|a| a.endpoint == endpoint && a.subject == last && a.at_ms as i64 >= from)
                    .map(|a| a.at_ms as i64)
                    .min()
            };
            let tracker_at = |endpoint: &str| {
                tracker
                    .iter()
                    .filter(|a| a.endpoint == endpoint && a.subject == s.patient)
                    .map(|a| a.at_ms as i64)
                    .min()
            };
            let event_at = |prefix: &str| {
                events.iter().filter(|e| e.0 == s.patient && e.1.starts_with(prefix)).map(|e| ms(e.2)).next()
            };
            let started = event_at("run started");
            let task = tracker_at("create_task");
            let search = docex_at("search", 0);
            let ready = search.map(|t| t + job_ms as i64);
            let seen = ready.and_then(|r| docex_at("status", r));
            let archive = docex_at("archive", 0);
            let extracted = event_at("archive extracted");
            let docs = event_at("all ");
            let report = tracker_at("add_report");
            let finished = done.iter().find(|d| d.0 == s.patient).and_then(|d| d.1).map(ms);
            let points = [
                Some(ms(s.at)),
                Some(ms(s.confirmed)),
                started,
                task,
                search,
                ready,
                seen,
                archive,
                extracted,
                docs,
                report,
                finished,
            ];
            let mut out = [None; N];
            for i in 0..N {
                out[i] = points[i].zip(points[i + 1]).map(|(a, b)| b - a);
            }
            out
        })
        .collect()
}

/// Prints, per step, the median and worst of the urgent runs under load
/// beside the median of the idle baseline: where the extra latency goes.
async fn breakdown(env: &TestEnv, baseline: &[Sent], urgent: &[Sent], job_ms: u64) {
    let idle = steps(env, baseline, job_ms).await;
    let loaded = steps(env, urgent, job_ms).await;
    let column = |rows: &[[Option<i64>; N]], i: usize| {
        let mut v: Vec<i64> = rows.iter().filter_map(|r| r[i]).collect();
        v.sort();
        v
    };
    println!("urgent latency by step (ms; each from the step before):");
    println!("  {:<48} {:>9} {:>9} {:>9} {:>9} {:>9}", "step", "idle med", "med", "p90", "worst", "med-idle");
    for (i, name) in STEPS.iter().enumerate() {
        let (a, b) = (column(&idle, i), column(&loaded, i));
        let med = |v: &[i64]| v.get(v.len() / 2).copied();
        let p90 = b.get(b.len() * 9 / 10).copied();
        let show = |x: Option<i64>| x.map_or("-".to_string(), |x| x.to_string());
        let extra = med(&a).zip(med(&b)).map(|(a, b)| b - a);
        println!(
            "  {name:<48} {:>9} {:>9} {:>9} {:>9} {:>9}",
            show(med(&a)),
            show(med(&b)),
            show(p90),
            show(b.last().copied()),
            show(extra)
        );
    }
    // The worst runs, step by step, so a tail is attributed to its step.
    let total = |r: &[Option<i64>; N]| r.iter().flatten().sum::<i64>();
    let mut worst: Vec<(&Sent, &[Option<i64>; N])> = urgent.iter().zip(&loaded).collect();
    worst.sort_by_key(|(_, r)| std::cmp::Reverse(total(r)));
    println!("  the ten slowest urgent runs, ms per step:");
    for (sent, r) in worst.iter().take(10) {
        let cells: Vec<String> = r.iter().map(|x| x.map_or("-".into(), |x| x.to_string())).collect();
        println!("    {} total {:>5}: {}", sent.patient, total(r), cells.join(" / "));
    }
}

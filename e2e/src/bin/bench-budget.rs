//! Benchmark (not a test): N patients through the whole pipeline against the
//! stubs with time-scaled budgets, and how well the DocEx budget was used.
//!
//!   cargo run --release -p docket-e2e --bin bench-budget -- [patients] [replicas]
//!
//! Prints the makespan against its lower bound ((searches + downloads) / the
//! search+download rate), the share of that budget used while work waited,
//! the most requests seen in any window of each budget against its limit,
//! the time to the first report, and the 429s.

use std::time::{Duration, Instant};

use docket_e2e::{Patient, TestEnv, TestOptions};
use docket_stubs::{Budget, budget::max_in_window};

/// The scaled budget: 600 searches and downloads a minute instead of 10.
const SEARCH_RATE: &str = "600/min";
const SEARCH_PER_SEC: f64 = 10.0;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let replicas: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    // SAFETY of set_var: before any other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    }

    let options = TestOptions::bench(SEARCH_RATE);
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..n).map(|i| Patient::new(&format!("N{i:05}"))).collect();
    env.seed(&patients).await;
    env.start_all(replicas).await;
    docket_e2e::rabbit::wait_for_queue(&env.vhost, "patients").await;

    println!("{n} patients, {replicas} replica(s) of each stage, DocEx search+download budget {SEARCH_RATE}");
    let t0 = chrono::Utc::now();
    let started = Instant::now();
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(n as i64, Duration::from_secs(3 * 3600)).await;
    let wall = started.elapsed();

    let (first, last): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT min(finished_at), max(finished_at) FROM docket.runs")
            .fetch_one(&env.pool)
            .await
            .expect("reading runs");
    let downloads_needed: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE archive_url IS NOT NULL")
        .fetch_one(&env.pool)
        .await
        .expect("reading runs");
    let makespan = (last - t0).to_std().unwrap_or(wall);
    let slots = n as f64 + downloads_needed as f64;
    let bound = Duration::from_secs_f64(slots / SEARCH_PER_SEC);

    let docex = env.docex.stats();
    let tracker = env.tracker.stats();
    let search_log = env.docex.budget_log(Budget::Search);
    let (lo, hi) = (search_log.first().copied().unwrap_or(0), search_log.last().copied().unwrap_or(0));
    let span = (hi - lo) as f64 / 1000.0 + 1.0 / SEARCH_PER_SEC;
    let share = search_log.len() as f64 / (span * SEARCH_PER_SEC);
    // Until the last search went out, searches were waiting the whole time:
    // every unused slot there is budget wasted.
    let stub_epoch = chrono::Utc::now().timestamp_millis() - docex.uptime_ms as i64;
    let last_search_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(at) FROM docket.run_events WHERE event LIKE 'DocEx search started%'")
            .fetch_one(&env.pool)
            .await
            .expect("reading events");
    let last_search = (last_search_at.timestamp_millis() - stub_epoch).clamp(lo as i64, hi as i64) as u64;
    let until = search_log.iter().filter(|t| **t <= last_search).count();
    let busy_span = (last_search - lo) as f64 / 1000.0 + 1.0 / SEARCH_PER_SEC;
    let busy_share = until as f64 / (busy_span * SEARCH_PER_SEC);

    println!();
    println!("makespan                    {:>8.1} s", makespan.as_secs_f64());
    println!(
        "lower bound                 {:>8.1} s   ({n} searches + {downloads_needed} downloads at {SEARCH_PER_SEC}/s)",
        bound.as_secs_f64()
    );
    println!("makespan over the bound     {:>8.2} %", (makespan.as_secs_f64() / bound.as_secs_f64() - 1.0) * 100.0);
    println!(
        "DocEx budget used           {:>8.2} %   while searches waited ({until} requests in {busy_span:.1} s)",
        busy_share * 100.0
    );
    println!(
        "                            {:>8.2} %   first to last request ({} requests in {span:.1} s, the tail waits for the last jobs)",
        share * 100.0,
        search_log.len()
    );
    println!("time to the first report    {:>8.1} s", (first - t0).to_std().unwrap_or_default().as_secs_f64());
    let row = |name: &str, log: &[u64], limit: u32, period_ms: u64, over: u64| {
        let most = max_in_window(log, Duration::from_millis(period_ms));
        println!("{name:<27} most {most:>4} in any {:>5} ms window (limit {limit}), {over} answered 429", period_ms);
    };
    row("DocEx search+download", &search_log, docex.search.limit, docex.search.period_ms, docex.search.over_budget);
    row(
        "DocEx status",
        &env.docex.budget_log(Budget::Status),
        docex.status.limit,
        docex.status.period_ms,
        docex.status.over_budget,
    );
    row(
        "TaskTracker",
        &env.tracker.budget_log(),
        tracker.budget.limit,
        tracker.budget.period_ms,
        tracker.budget.over_budget,
    );
    println!(
        "429s in all                 {:>8}",
        docex.search.over_budget
            + docex.status.over_budget
            + tracker.budget.over_budget
            + docex.storm_429
            + tracker.storm_429
    );
    env.cleanup().await;
}

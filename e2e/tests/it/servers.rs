//! The database and Redis restarted for real mid-batch, on servers of the
//! test's own: every run still completes exactly once, no budget is
//! exceeded, and every stage process rides the outage out (none exits, so
//! none needs its supervisor).

use std::time::{Duration, Instant};

use docket_e2e::{Patient, Stage, TestEnv, TestOptions, stages::ALL};
use docket_stubs::{ArchiveKind, TaskStatus};

use crate::{
    common::{assert_budgets_held, one_task_one_report_each},
    private::postgres::Postgres,
};

fn options() -> TestOptions {
    let mut options = TestOptions::default();
    options.docex.docs = "0..3".parse().expect("a valid range");
    options.docex.empty_share = 0.3;
    options.docex.archive_kind = ArchiveKind::Text;
    options.docex.job_time = "100ms..500ms".parse().expect("a valid range");
    options
}

fn patients(prefix: &str, n: usize) -> Vec<Patient> {
    (0..n).map(|i| Patient::new(&format!("{prefix}{i:03}"))).collect()
}

/// One real process per stage; returns each one's stage and pid.
fn spawn_stages(env: &mut TestEnv) -> Vec<(Stage, u32)> {
    ALL.iter()
        .map(|&stage| {
            let i = env.spawn_process(stage);
            (stage, env.process_id(i))
        })
        .collect()
}

/// Every stage process spawned is alive, with the pid it started with.
fn assert_all_alive(env: &mut TestEnv, spawned: &[(Stage, u32)], when: &str) {
    let exited = env.exited_processes();
    if !exited.is_empty() {
        let tails: Vec<String> = exited
            .iter()
            .map(|(i, status)| {
                let (stage, pid) = spawned[*i];
                let log = env.dir.path().join(format!("{}-{i}.log", stage.binary()));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "{stage:?} (pid {pid}) exited {status}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        panic!("{when}: stage processes exited:\n{}", tails.join("\n\n"));
    }
    for (i, (stage, pid)) in spawned.iter().enumerate() {
        assert_eq!(env.process_id(i), *pid, "{stage:?} is still the process spawned");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "{stage:?} (pid {pid}) is alive");
    }
}

/// Each patient's run ended once, with one task, one report, and the same
/// status in TaskTracker and the patient database.
async fn assert_each_run_once(env: &TestEnv, patients: &[Patient]) {
    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, patients.len());
    for t in &tasks {
        let in_db: Option<String> = sqlx::query_scalar("SELECT documents_status FROM patients WHERE patient_id = $1")
            .bind(&t.patient_id)
            .fetch_one(&env.pool)
            .await
            .expect("reading a patient's status");
        let expected = match t.status {
            TaskStatus::DocumentsFound => "DOCUMENTS_FOUND",
            TaskStatus::DocumentsNotFound => "DOCUMENTS_NOT_FOUND",
            TaskStatus::New => panic!("task {} has no status", t.task_id),
        };
        assert_eq!(in_db.as_deref(), Some(expected), "status of {}'s task and row", t.patient_id);
    }
    for p in patients {
        let runs = env.runs(&p.id).await;
        assert_eq!(runs.len(), 1, "{} has one run", p.id);
        assert_eq!(runs[0].state.as_str(), "done", "{}'s run", p.id);
    }
}

/// Runs finished in each 10 s from `from` on: how soon work resumed.
async fn print_finished_per_10s(env: &TestEnv, from: chrono::DateTime<chrono::Utc>) {
    let buckets: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT floor(extract(epoch FROM finished_at - $1) / 10)::int AS b, count(*)
         FROM docket.runs WHERE finished_at IS NOT NULL GROUP BY b ORDER BY b",
    )
    .bind(from)
    .fetch_all(&env.pool)
    .await
    .expect("reading finish times");
    let text: Vec<String> = buckets.iter().map(|(b, n)| format!("{:+}s: {n}", b * 10)).collect();
    println!("runs finished per 10 s from the stop: {}", text.join(", "));
    let last: Vec<(f64, String, String)> = sqlx::query_as(
        "SELECT extract(epoch FROM e.at - $1)::float8, e.stage, e.event FROM docket.run_events e
         WHERE e.run_id = (SELECT run_id FROM docket.runs ORDER BY finished_at DESC NULLS FIRST LIMIT 1)
         ORDER BY e.id",
    )
    .bind(from)
    .fetch_all(&env.pool)
    .await
    .unwrap_or_default();
    println!("the last run to finish:");
    for (at, stage, event) in last {
        println!("  {at:+.1}s {stage}: {event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_for_30s_and_crashed_mid_batch_loses_and_doubles_nothing_and_no_stage_process_exits() {
    let pg = Postgres::start().await;
    let mut options = options();
    options.postgres = pg.url();
    let mut env = TestEnv::new(options).await;
    let patients = patients("G", 150);
    env.seed(&patients).await;
    let spawned = spawn_stages(&mut env);
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(30, Duration::from_secs(120)).await;

    let stopped_at = chrono::Utc::now();
    pg.stop("fast").await;
    let stopped = Instant::now();
    // The outage itself: 30 s without a database, not a wait for a state.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_all_alive(&mut env, &spawned, "after 30 s without the database");
    pg.start_again().await;
    println!("PostgreSQL was down for {:?}", stopped.elapsed());
    let back = Instant::now();
    env.wait_finished(70, Duration::from_secs(120)).await;
    // Then a crash: no goodbye to any session, crash recovery on start.
    pg.stop("immediate").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.start_again().await;
    env.wait_finished(150, Duration::from_secs(240)).await;
    println!("the batch finished {:?} after PostgreSQL came back from its 30 s stop", back.elapsed());

    print_finished_per_10s(&env, stopped_at).await;

    assert_each_run_once(&env, &patients).await;
    assert_budgets_held(&env, 0);
    assert_all_alive(&mut env, &spawned, "at the end");
    env.cleanup().await;
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_mid_batch_loses_no_work_exceeds_no_budget_and_no_stage_process_exits() {
    let redis = docket_e2e::redis::Private::start().await;
    let mut options = options();
    options.vars.push(("REDIS_URL", redis.url()));
    let mut env = TestEnv::new(options).await;
    let patients = patients("X", 150);
    env.seed(&patients).await;
    let spawned = spawn_stages(&mut env);
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(40, Duration::from_secs(120)).await;
    // SIGKILL and a fresh, empty server on the same port: the limiter's
    // schedules and the breakers are gone.
    let redis = redis.restart(Duration::from_secs(2)).await;
    let back = Instant::now();
    env.wait_finished(150, Duration::from_secs(240)).await;
    println!("the batch finished {:?} after Redis came back empty", back.elapsed());

    assert_each_run_once(&env, &patients).await;
    // The stages knew the lost schedules, so each new one starts a window later.
    assert_budgets_held(&env, 0);
    assert_all_alive(&mut env, &spawned, "at the end");
    env.cleanup().await;
    drop(redis);
}

//! Outages of the outside systems: work waits them out, the API hears only
//! the breaker's probes while dark, and full rate is back soon after; a task
//! the tracker lost ends its run with that reason.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, eventually, rabbit};
use docket_stubs::{ArchiveKind, Budget, FaultMode, Faults, Profile, TaskTrackerConfig};

use crate::common::one_task_one_report_each;

const OUTAGE_MS: u64 = 60_000;

fn options() -> TestOptions {
    let mut options = TestOptions::default();
    options.docex.docs = "1..2".parse().expect("a valid range");
    options.docex.empty_share = 0.0;
    options.docex.archive_kind = ArchiveKind::Text;
    options.docex.job_time = "100ms..400ms".parse().expect("a valid range");
    options
}

/// Requests in the log whose arrival is within [from, to) (ms since the stub started).
fn between(log: &[u64], from: u64, to: u64) -> usize {
    log.iter().filter(|t| (from..to).contains(*t)).count()
}

/// The start of the first one-second window after `from` holding at least `need` requests.
fn full_rate_at(log: &[u64], from: u64, need: usize) -> Option<u64> {
    log.iter().copied().filter(|t| *t >= from).find(|t| between(log, *t, t + 1000) >= need)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_docex_outage_is_waited_out_with_only_probes_reaching_it_and_full_rate_resumes_within_5s() {
    let mut env = TestEnv::new(options()).await;
    let patients: Vec<Patient> = (0..150).map(|i| Patient::new(&format!("D{i:03}"))).collect();
    env.seed(&patients).await;
    env.start_all(1).await;
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(10, Duration::from_secs(60)).await;
    let start = env.docex.stats().uptime_ms;
    env.docex.set_faults(Faults::mode(FaultMode::Unavailable, Some(OUTAGE_MS)));
    let end = start + OUTAGE_MS;
    env.wait_finished(150, Duration::from_secs(OUTAGE_MS / 1000 + 180)).await;

    one_task_one_report_each(&env.tracker.tasks(), 150);
    let mut log = env.docex.budget_log(Budget::Search);
    log.extend(env.docex.budget_log(Budget::Status));
    log.sort_unstable();
    let dark = between(&log, start, end);
    let settled = between(&log, start + 5_000, end);
    println!("DocEx received {dark} calls in its 60 s outage, {settled} of them after its first 5 s");
    // Once the breaker is open only probes go out: one per cooldown (0.5 s
    // doubling to 2 s), whatever the number of messages waiting.
    assert!(settled <= 60, "{settled} calls reached DocEx while it was dark");
    let search = env.docex.budget_log(Budget::Search);
    let back = full_rate_at(&search, end, 8).expect("the search budget was used at full rate after the outage");
    println!("full rate (8+ searches and downloads in one second) {} ms after recovery", back - end);
    assert!(back - end <= 4_000, "full rate only {} ms after recovery", back - end);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tasktracker_outage_is_waited_out_with_only_probes_reaching_it_and_full_rate_resumes_within_5s() {
    let mut env = TestEnv::new(options()).await;
    let patients: Vec<Patient> = (0..150).map(|i| Patient::new(&format!("T{i:03}"))).collect();
    env.seed(&patients).await;
    env.start_all(1).await;
    let start = env.tracker.stats().uptime_ms;
    env.tracker.set_faults(Faults::mode(FaultMode::Unavailable, Some(OUTAGE_MS)));
    let end = start + OUTAGE_MS;
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(150, Duration::from_secs(OUTAGE_MS / 1000 + 180)).await;

    one_task_one_report_each(&env.tracker.tasks(), 150);
    let log = env.tracker.budget_log();
    let dark = between(&log, start, end);
    let settled = between(&log, start + 5_000, end);
    println!("TaskTracker received {dark} calls in its 60 s outage, {settled} of them after its first 5 s");
    assert!(settled <= 60, "{settled} calls reached TaskTracker while it was dark");
    // 150 task creations wait for it: at 50/s, a full second holds 40 or more.
    let back = full_rate_at(&log, end, 40).expect("the budget was used at full rate after the outage");
    println!("full rate (40+ requests in one second) {} ms after recovery", back - end);
    assert!(back - end <= 4_000, "full rate only {} ms after recovery", back - end);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_task_the_tracker_lost_ends_abandoned_with_that_reason_instead_of_parked() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let p = Patient::new("P-LOST-TASK");
    // The job stays running long enough for TaskTracker to lose the task meanwhile.
    let slow = Profile { documents: 1, kind: ArchiveKind::Text, running_ms: Some(4000), ..Profile::default() };
    env.docex.set_profile(&p.first, &p.last, slow);
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-LOST-TASK"]).await;
    eventually(Duration::from_secs(30), "the run's task created", || async {
        let runs = env.runs("P-LOST-TASK").await;
        if runs.first().is_some_and(|r| r.state.as_str() == "poll") { Ok(()) } else { Err(format!("{runs:?}")) }
    })
    .await;
    // A TaskTracker restarted without its data: same address, no tasks.
    let cfg = TaskTrackerConfig { addr: env.tracker.addr(), ..TestOptions::default().tracker };
    let stand_in = docket_stubs::spawn_tasktracker(TaskTrackerConfig::default()).await.expect("a stub");
    std::mem::replace(&mut env.tracker, stand_in).shutdown().await;
    let fresh = docket_stubs::spawn_tasktracker(cfg).await.expect("the tracker on its old port");
    std::mem::replace(&mut env.tracker, fresh).shutdown().await;

    let run = eventually(Duration::from_secs(60), "the run to end", || async {
        let runs = env.runs("P-LOST-TASK").await;
        match runs.first() {
            Some(r) if r.finished_at.is_some() => Ok(r.clone()),
            other => Err(format!("{:?}", other.map(|r| (&r.state, &r.last_error)))),
        }
    })
    .await;
    assert_eq!(run.state.as_str(), "abandoned");
    let reason = run.last_error.unwrap_or_default();
    assert!(reason.contains("TaskTracker has no task"), "{reason}");
    assert!(!run.parked);
    assert_eq!(rabbit::depth(&env.vhost, "docket.parked").await.expect("depth"), 0, "nothing parked");
    env.cleanup().await;
}

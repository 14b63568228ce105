//! The fleet-wide budgets: many replicas together stay inside them, and a
//! long job is polled on the backoff schedule rather than at the budget's
//! full rate. (A Redis restart: `servers.rs`.)

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions};
use docket_stubs::{ArchiveKind, Profile};

use crate::common::{assert_budgets_held, one_task_one_report_each};

fn quick_archives(options: &mut TestOptions) {
    options.docex.docs = "0..2".parse().expect("a valid range");
    options.docex.empty_share = 0.3;
    options.docex.archive_kind = ArchiveKind::Text;
    options.docex.job_time = "100ms..500ms".parse().expect("a valid range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_of_every_stage_with_300_patients_never_exceed_any_budget() {
    let mut options = TestOptions::default();
    quick_archives(&mut options);
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..300).map(|i| Patient::new(&format!("R{i:03}"))).collect();
    env.seed(&patients).await;
    env.start_all(3).await;
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;
    env.wait_finished(300, Duration::from_secs(300)).await;

    one_task_one_report_each(&env.tracker.tasks(), 300);
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_running_for_an_hour_is_polled_on_the_backoff_schedule_not_at_full_rate() {
    // Time scaled 60 to 1: an hour is a minute, a one-minute poll cap is one second.
    let mut options = TestOptions::default();
    options.vars.push(("POLL_FIRST", "200ms".into()));
    options.vars.push(("POLL_MAX", "1s".into()));
    let mut env = TestEnv::new(options).await;
    let p = Patient::new("P-HOUR");
    let hour = Profile { documents: 1, kind: ArchiveKind::Text, running_ms: Some(60_000), ..Profile::default() };
    env.docex.set_profile(&p.first, &p.last, hour);
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-HOUR"]).await;
    env.wait_finished(1, Duration::from_secs(120)).await;

    let polls = env.docex.stats().status.spent;
    // 200 ms doubling to 1 s: about 3 polls to reach the cap, then one a second.
    println!("a 60 s job took {polls} status reads (the budget would have allowed {})", 60 * 50);
    assert!((40..=80).contains(&polls), "{polls} status reads for a one-minute job");
    env.cleanup().await;
}

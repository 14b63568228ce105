//! Crashes: stage processes killed with SIGKILL in the middle of a batch
//! (all at once, or one every few seconds while batches, priorities, a
//! pause and a cancel are in play), started again, and every run still ends
//! with one task and one report.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, eventually, rabbit, stages::ALL};
use docket_shared::{
    UnitOfWork,
    run::control::{Action, Scope},
};

use crate::common::one_task_one_report_each;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stages_killed_with_sigkill_mid_batch_and_restarted_finish_every_run_exactly_once() {
    let mut options = TestOptions::default();
    options.docex.docs = "1..6".parse().expect("a valid range");
    options.docex.empty_share = 0.2;
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..40).map(|i| Patient::new(&format!("K{i:02}"))).collect();
    env.seed(&patients).await;
    let mut procs = Vec::new();
    for stage in ALL {
        procs.push(env.spawn_process(stage));
    }
    let ids: Vec<&str> = patients.iter().map(|p| p.id.as_str()).collect();
    env.publish(&ids).await;

    // Wait until documents are moving, then kill every stage at once, mid-flight.
    eventually(Duration::from_secs(60), "documents in flight", || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.documents WHERE state IN ('done', 'failed')")
            .fetch_one(&env.pool)
            .await
            .map_err(|e| e.to_string())?;
        if done >= 10 { Ok(()) } else { Err(format!("{done} documents done")) }
    })
    .await;
    for index in &procs {
        env.kill(*index);
    }
    let finished_before: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE state = 'done'")
        .fetch_one(&env.pool)
        .await
        .expect("counting");
    assert!(finished_before < 40, "the kill came mid-batch ({finished_before} of 40 done)");
    for stage in ALL {
        env.spawn_process(stage);
    }
    env.wait_finished(40, Duration::from_secs(180)).await;

    one_task_one_report_each(&env.tracker.tasks(), 40);
    let orphans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM docket.documents WHERE state NOT IN ('done', 'failed')")
            .fetch_one(&env.pool)
            .await
            .expect("counting");
    assert_eq!(orphans, 0, "every document reached an outcome");

    // Through crashes, restarts and retries, no stage logged a patient's name.
    let mut logs = 0;
    for entry in std::fs::read_dir(env.dir.path()).expect("the test dir") {
        let path = entry.expect("a dir entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).expect("a stage's log");
            for p in &patients {
                assert!(!text.contains(&p.first) && !text.contains(&p.last), "{} names a patient", path.display());
            }
            logs += 1;
        }
    }
    assert_eq!(logs, 2 * ALL.len(), "every stage process, before and after the kill, left its log");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkills_every_few_seconds_with_batches_priorities_pauses_and_cancels_mixed_in_lose_and_double_nothing() {
    let mut options = TestOptions::default();
    options.docex.docs = "1..5".parse().expect("a valid range");
    options.docex.empty_share = 0.2;
    let mut env = TestEnv::new(options).await;
    let group =
        |prefix: &str, n: usize| -> Vec<Patient> { (0..n).map(|i| Patient::new(&format!("{prefix}{i:02}"))).collect() };
    let (bulk, normal, doomed, urgent) = (group("BU", 20), group("NO", 20), group("DO", 10), group("UR", 5));
    for g in [&bulk, &normal, &doomed, &urgent] {
        env.seed(g).await;
    }
    let mut procs: Vec<(docket_e2e::Stage, usize)> = ALL.iter().map(|s| (*s, env.spawn_process(*s))).collect();
    let (bulk_ids, normal_ids, doomed_ids, urgent_ids) = (refs(&bulk), refs(&normal), refs(&doomed), refs(&urgent));
    env.publish_in("crash-bulk", "bulk", &bulk_ids).await;
    env.publish_in("crash-normal", "normal", &normal_ids).await;
    env.publish_in("crash-doomed", "normal", &doomed_ids).await;

    let pause = Scope::Batch("crash-normal".into());
    let started = std::time::Instant::now();
    let mut kills = 0;
    let mut step = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        step += 1;
        match step {
            1 => control_now(&env, Action::Pause, &pause).await,
            2 => {
                let cancel = br#"{"action": "cancel", "batch": "crash-doomed"}"#;
                rabbit::publish_raw(&env.vhost, "docket.control", cancel).await.expect("publishing a control");
            }
            3 => env.publish_in("crash-urgent", "urgent", &urgent_ids).await,
            5 => control_now(&env, Action::Resume, &pause).await,
            _ => {}
        }
        // One stage process killed with SIGKILL and started again, every few seconds.
        let victim = rand::random_range(0..procs.len());
        let (stage, index) = procs[victim];
        env.kill(index);
        procs[victim] = (stage, env.spawn_process(stage));
        kills += 1;
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE finished_at IS NOT NULL")
            .fetch_one(&env.pool)
            .await
            .expect("counting");
        if done >= 55 || started.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    println!("{kills} stage processes killed along the way");
    env.wait_finished(55, Duration::from_secs(120)).await;

    one_task_one_report_each(&env.tracker.tasks(), 55);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM docket.documents d JOIN docket.runs r USING (run_id)
                             WHERE d.state NOT IN ('done', 'failed') AND r.cancelled_at IS NULL",
    )
    .fetch_one(&env.pool)
    .await
    .expect("counting");
    assert_eq!(orphans, 0, "every document of a run not cancelled reached an outcome");
    let cancelled: Vec<(String,)> = sqlx::query_as("SELECT patient_id FROM docket.runs WHERE cancelled_at IS NOT NULL")
        .fetch_all(&env.pool)
        .await
        .expect("listing");
    assert!(cancelled.iter().all(|(p,)| p.starts_with("DO")), "only the cancelled batch's runs: {cancelled:?}");
    for task in env.tracker.tasks().iter().filter(|t| cancelled.iter().any(|(p,)| *p == t.patient_id)) {
        assert!(task.reports[0].summary.starts_with("Cancelled by an operator"), "{}", task.reports[0].summary);
    }
    env.cleanup().await;
}

fn refs(patients: &[Patient]) -> Vec<&str> {
    patients.iter().map(|p| p.id.as_str()).collect()
}

async fn control_now(env: &TestEnv, action: Action, scope: &Scope) {
    let mut uow = UnitOfWork::begin_on(&env.pool).await.expect("a transaction");
    action.apply(&mut uow, scope).await.expect("applying a control");
    uow.commit_for_relay().await.expect("committing a control");
}

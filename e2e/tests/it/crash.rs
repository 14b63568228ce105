//! Crashes: a stage process killed with SIGKILL in the middle of a batch,
//! started again, and every run still ends with one task and one report.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, eventually, stages::ALL};

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

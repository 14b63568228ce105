//! How requests arrive: joins, new runs after a finished one, and bad input
//! parked with its reason and no effect outside.

use std::time::Duration;

use docket_e2e::{Patient, Stage, TestEnv, TestOptions, eventually, rabbit};
use docket_stubs::{ArchiveKind, Profile};

use crate::common::one_task_one_report_each;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_request_joins_the_run_in_progress_and_a_later_one_starts_a_new_run() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let p = Patient::new("P-TWICE");
    // The job stays running for a while, so the second request finds the run in progress.
    let slow = Profile { documents: 2, kind: ArchiveKind::Text, running_ms: Some(3000), ..Profile::default() };
    env.docex.set_profile(&p.first, &p.last, slow);
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-TWICE"]).await;
    eventually(Duration::from_secs(30), "the run to start", || async {
        let runs = env.runs("P-TWICE").await;
        if runs.first().is_some_and(|r| r.state.as_str() == "poll") {
            Ok(())
        } else {
            Err(format!("{:?}", runs.first().map(|r| &r.state)))
        }
    })
    .await;
    env.publish(&["P-TWICE"]).await;
    env.wait_finished(1, Duration::from_secs(60)).await;

    let runs = env.runs("P-TWICE").await;
    assert_eq!(runs.len(), 1, "the second request joined the first run");
    assert_eq!(runs[0].requests, 2);
    one_task_one_report_each(&env.tracker.tasks(), 1);

    env.publish(&["P-TWICE"]).await;
    env.wait_finished(2, Duration::from_secs(60)).await;
    assert_eq!(env.runs("P-TWICE").await.len(), 2, "a request after the run finished starts a new one");
    let tasks = env.tracker.tasks();
    assert_eq!(tasks.len(), 2, "the new run has its own task");
    assert!(tasks.iter().all(|t| t.reports.len() == 1));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_patients_unusable_rows_bad_batches_priorities_controls_and_non_json_are_parked_with_their_reasons() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let empty = Patient { id: "P-EMPTY".into(), first: "  ".into(), last: "Family".into() };
    env.seed(&[empty]).await;
    env.start(Stage::Search, 1).await;
    rabbit::wait_for_queue(&env.vhost, "patients").await;
    rabbit::wait_for_queue(&env.vhost, "docket.control").await;
    for body in [
        &br#"{"patient_id": "P-NOBODY"}"#[..],
        b"this is not json",
        br#"{"patient_id": "has spaces and !"}"#,
        br#"{"patient_id": 42}"#,
        br#"{"patient_id": "P-EMPTY"}"#,
        br#"{"patient_id": "P-EMPTY", "batch": "no spaces allowed"}"#,
        br#"{"patient_id": "P-EMPTY", "priority": "asap"}"#,
        br#"{"patient_id": "P-EMPTY", "priorty": "urgent"}"#,
        br#"{"action": "pause", "batch": "x", "all": true}"#,
    ] {
        // The last one is a control message naming two scopes at once.
        let queue = if body.starts_with(br#"{"action""#) { "docket.control" } else { "patients" };
        rabbit::publish_raw(&env.vhost, queue, body).await.expect("publishing");
    }
    let parked = eventually(Duration::from_secs(30), "nine parked messages", || async {
        let parked = rabbit::parked(&env.vhost).await.map_err(|e| e.to_string())?;
        if parked.len() == 9 { Ok(parked) } else { Err(format!("{parked:?}")) }
    })
    .await;
    let reasons: Vec<&str> = parked.iter().map(|(r, _)| r.as_str()).collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(has("unknown patient P-NOBODY"), "{reasons:?}");
    assert!(has("not a valid patients message"), "{reasons:?}");
    assert!(has("patient_id must be 1 to 64 characters"), "{reasons:?}");
    assert!(has("patient P-EMPTY cannot be used: first_name is empty"), "{reasons:?}");
    assert!(has("batch must be 1 to 64 characters"), "{reasons:?}");
    assert!(has(r#"priority must be urgent, normal or bulk, not "asap""#), "{reasons:?}");
    assert!(has("JSON of an unexpected shape"), "a misspelt field is refused, not ignored: {reasons:?}");
    assert!(has("name exactly one of: a batch, a patient, or all"), "{reasons:?}");
    assert!(!reasons.iter().any(|r| r.contains("Family")), "a reason never carries a name: {reasons:?}");
    assert!(env.tracker.tasks().is_empty(), "no task was created");
    assert_eq!(env.docex.stats().search.spent, 0, "no search was made");
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM docket.runs").fetch_one(&env.pool).await.expect("counting runs");
    assert_eq!(runs, 0, "no run was started");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parked_step_marks_its_run_frees_its_job_slot_and_a_new_request_restarts_it() {
    let mut options = TestOptions::default();
    options.vars.push(("DOCEX_MAX_JOBS", "1".into()));
    options.vars.push(("LIMIT_MAX_HOLD", "1s".into()));
    let mut env = TestEnv::new(options).await;
    let (first, second) = (Patient::new("P-FIRST"), Patient::new("P-SECOND"));
    // The first patient's job holds the only DocEx job slot for a while.
    let long = Profile { documents: 1, kind: ArchiveKind::Text, running_ms: Some(8000), ..Profile::default() };
    env.docex.set_profile(&first.first, &first.last, long);
    env.seed(&[first, second]).await;
    env.start_all(1).await;
    env.publish(&["P-FIRST"]).await;
    let state_of = |id: &'static str| {
        let env = &env;
        move || async move {
            let runs = env.runs(id).await;
            runs.last()
                .map(|r| (r.state.to_string(), r.parked, r.holds_job_slot))
                .ok_or_else(|| "no run yet".to_string())
        }
    };
    eventually(Duration::from_secs(30), "the first run polling", || async {
        let (state, ..) = state_of("P-FIRST")().await?;
        if state == "poll" { Ok(()) } else { Err(state) }
    })
    .await;
    env.publish(&["P-SECOND"]).await;
    eventually(Duration::from_secs(30), "the second run waiting for a job slot", || async {
        let (state, ..) = state_of("P-SECOND")().await?;
        if state == "search" { Ok(()) } else { Err(state) }
    })
    .await;
    // While it waits, its row becomes unusable: its search step must park.
    sqlx::query("UPDATE patients SET first_name = '' WHERE patient_id = 'P-SECOND'")
        .execute(&env.pool)
        .await
        .expect("updating");
    eventually(Duration::from_secs(60), "the second run parked", || async {
        let (state, parked, slot) = state_of("P-SECOND")().await?;
        if parked && !slot { Ok(()) } else { Err(format!("{state} parked={parked} slot={slot}")) }
    })
    .await;
    let parked = rabbit::parked(&env.vhost).await.expect("reading parked");
    assert!(parked.iter().any(|(r, _)| r.contains("P-SECOND can no longer be used")), "{parked:?}");
    env.wait_finished(1, Duration::from_secs(60)).await;
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE holds_job_slot")
        .fetch_one(&env.pool)
        .await
        .expect("counting");
    assert_eq!(slots, 0, "the parked run gave its job slot back");

    // The row is fixed; a new request restarts the parked run, which finishes
    // with the task it already had.
    sqlx::query("UPDATE patients SET first_name = 'GivenP-SECOND' WHERE patient_id = 'P-SECOND'")
        .execute(&env.pool)
        .await
        .expect("updating");
    env.publish(&["P-SECOND"]).await;
    env.wait_finished(2, Duration::from_secs(60)).await;
    assert_eq!(env.runs("P-SECOND").await.len(), 1, "the same run finished");
    one_task_one_report_each(&env.tracker.tasks(), 2);
    env.cleanup().await;
}

//! Work the operator steers: an urgent request ahead of a bulk backlog,
//! batches sharing the search slots in turn, a batch paused and resumed, a
//! batch cancelled. What the outside saw is read from the stubs' journals
//! (every admitted request, when it arrived and about whom).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use docket_e2e::{Patient, TestEnv, TestOptions, eventually, rabbit};
use docket_shared::{
    UnitOfWork,
    run::control::{self, Scope},
};
use docket_stubs::{ArchiveKind, Arrival, Profile};

use crate::common::{assert_budgets_held, one_task_one_report_each};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

fn patients(prefix: &str, n: usize) -> Vec<Patient> {
    (0..n).map(|i| Patient::new(&format!("{prefix}{i:03}"))).collect()
}

fn ids(patients: &[Patient]) -> Vec<&str> {
    patients.iter().map(|p| p.id.as_str()).collect()
}

/// The patient a DocEx request was about (DocEx knows the last name only).
fn docex_patient(a: &Arrival) -> &str {
    a.subject.strip_prefix("Family").unwrap_or(&a.subject)
}

/// (arrival ms, patient) of every DocEx search, in order.
fn searches(env: &TestEnv) -> Vec<(u64, String)> {
    let mut s: Vec<(u64, String)> = env
        .docex
        .arrivals()
        .iter()
        .filter(|a| a.endpoint == "search")
        .map(|a| (a.at_ms, docex_patient(a).to_string()))
        .collect();
    s.sort();
    s
}

/// Options with the search+download budget at `per_min`, TaskTracker fast
/// enough never to be the bound, and small text archives.
fn options(per_min: u32, empty_share: f64) -> TestOptions {
    let mut o = TestOptions::default();
    o.docex.search_rate = format!("{per_min}/min").parse().expect("a valid rate");
    o.docex.empty_share = empty_share;
    o.docex.docs = "1..3".parse().expect("a valid range");
    o.docex.archive_kind = ArchiveKind::Text;
    o.docex.job_time = "100ms..400ms".parse().expect("a valid range");
    o.tracker.rate = "200/s".parse().expect("a valid rate");
    o
}

async fn finished_in(env: &TestEnv, batch: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE batch = $1 AND finished_at IS NOT NULL")
        .bind(batch)
        .fetch_one(&env.pool)
        .await
        .expect("counting")
}

async fn wait_batch_finished(env: &TestEnv, batch: &str, n: i64, deadline: Duration) {
    eventually(deadline, &format!("batch {batch} finished"), || async {
        let done = finished_in(env, batch).await;
        if done >= n { Ok(()) } else { Err(format!("{done} of {n} finished")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_urgent_request_behind_300_bulk_ones_takes_the_next_search_slot_and_reports_before_the_backlog_drains() {
    // Nobody in the backlog has documents, so every slot of the budget is a search.
    let mut env = TestEnv::new(options(300, 1.0)).await;
    let bulk = patients("B", 300);
    let urgent = Patient::new("URGENT");
    let profile = Profile { documents: 3, kind: ArchiveKind::Text, job_ms: Some(300), ..Profile::default() };
    env.docex.set_profile(&urgent.first, &urgent.last, profile);
    env.seed(&bulk).await;
    env.seed(std::slice::from_ref(&urgent)).await;
    env.start_all(1).await;
    env.publish_in("backlog", "bulk", &ids(&bulk)).await;
    eventually(Duration::from_secs(60), "the backlog's searches under way", || async {
        let n = searches(&env).len();
        if n >= 20 { Ok(()) } else { Err(format!("{n} searches")) }
    })
    .await;

    let published = now_ms();
    env.publish_in("emergency", "urgent", &["URGENT"]).await;
    let searched = eventually(Duration::from_secs(30), "the urgent search", || async {
        let all = searches(&env);
        all.iter().find(|(_, p)| p == "URGENT").map(|(at, _)| *at).ok_or_else(|| format!("{} searches", all.len()))
    })
    .await;
    let ahead = searches(&env).iter().filter(|(at, p)| *at > published && *at < searched && p != "URGENT").count();
    let interval_ms = 60_000 / 300;
    println!(
        "urgent search {} ms after publication ({} search intervals); {ahead} other searches went out between",
        searched - published,
        (searched - published) as f64 / interval_ms as f64
    );
    assert!(ahead <= 2, "{ahead} searches of the backlog went ahead of the urgent one");
    // Intake, the task and the room's wake-up add a few tens of ms to the two intervals.
    assert!(searched - published <= 2 * interval_ms + 250, "{} ms", searched - published);

    wait_batch_finished(&env, "emergency", 1, Duration::from_secs(60)).await;
    // While the budget is busy an urgent job is read about once a slot, just
    // before it (so its download takes the first slot after the archive is
    // ready), never at the status budget's full rate.
    let urgent_calls: Vec<Arrival> =
        env.docex.arrivals().into_iter().filter(|a| docex_patient(a) == "URGENT").collect();
    let reads = urgent_calls.iter().filter(|a| a.endpoint == "status").count() as u64;
    let downloaded =
        urgent_calls.iter().find(|a| a.endpoint == "archive").expect("the urgent archive's download").at_ms;
    let slots = (downloaded - searched).div_ceil(interval_ms);
    println!("the urgent job was read {reads} times over the {slots} slots between its search and its download");
    assert!(reads <= 2 * slots + 4, "{reads} status reads of the urgent job in {slots} slots");
    let backlog_done = finished_in(&env, "backlog").await;
    println!("urgent report in; {backlog_done} of 300 backlog runs finished then");
    assert!(backlog_done < 250, "the urgent report came before the backlog drained ({backlog_done} of 300 done)");
    let tasks = env.tracker.tasks();
    let task = tasks.iter().find(|t| t.patient_id == "URGENT").expect("the urgent patient's task");
    assert_eq!(task.reports.len(), 1);
    assert_eq!(task.reports[0].documents.len(), 3, "{:?}", task.reports[0]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_on_the_urgent_intake_lane_starts_ahead_of_an_intake_backlog_and_is_urgent() {
    // The backlog has nothing to find and the budget is slow: what is
    // measured is intake, where `patients` is first in, first out.
    let mut env = TestEnv::new(options(60, 1.0)).await;
    let bulk = patients("Q", 2000);
    env.seed(&bulk).await;
    env.seed(&[Patient::new("URGENT")]).await;
    env.start_all(1).await;
    env.publish_in("backlog", "bulk", &ids(&bulk)).await;
    // Published by hand to the lane, without a priority: urgent by default.
    rabbit::publish_raw(&env.vhost, "patients.urgent", br#"{"patient_id": "URGENT"}"#)
        .await
        .expect("publishing to patients.urgent");
    let (priority, created): (i16, chrono::DateTime<chrono::Utc>) =
        eventually(Duration::from_secs(60), "the urgent run", || async {
            sqlx::query_as("SELECT priority, created_at FROM docket.runs WHERE patient_id = 'URGENT'")
                .fetch_optional(&env.pool)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "no run yet".to_string())
        })
        .await;
    assert_eq!(docket_shared::run::Priority::from_rank(priority), docket_shared::run::Priority::Urgent);
    let (before, all): (i64, i64) = eventually(Duration::from_secs(120), "the backlog taken in", || async {
        let (before, all): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE created_at < $1), count(*) FROM docket.runs WHERE batch = 'backlog'",
        )
        .bind(created)
        .fetch_one(&env.pool)
        .await
        .map_err(|e| e.to_string())?;
        if all == 2000 { Ok((before, all)) } else { Err(format!("{all} of 2000 taken in")) }
    })
    .await;
    println!("the urgent run started after {before} of the backlog's {all} runs");
    assert!(before < 1000, "the urgent request waited behind {before} of {all} requests in patients");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_batches_waiting_at_once_share_the_search_slots_in_turn_and_the_small_one_finishes_first() {
    let mut env = TestEnv::new(options(300, 1.0)).await;
    let large = patients("L", 200);
    let small = patients("S", 20);
    env.seed(&large).await;
    env.seed(&small).await;
    env.start_all(1).await;
    env.publish_in("large", "normal", &ids(&large)).await;
    eventually(Duration::from_secs(60), "the large batch's searches under way", || async {
        let n = searches(&env).len();
        if n >= 10 { Ok(()) } else { Err(format!("{n} searches")) }
    })
    .await;
    env.publish_in("small", "normal", &ids(&small)).await;
    wait_batch_finished(&env, "small", 20, Duration::from_secs(60)).await;
    let large_done = finished_in(&env, "large").await;

    // While both waited: from the small batch's first search to its last.
    let all = searches(&env);
    let of_small = |p: &str| p.starts_with('S');
    let first = all.iter().position(|(_, p)| of_small(p)).expect("the small batch searched");
    let last = all.iter().rposition(|(_, p)| of_small(p)).expect("the small batch searched");
    let window = &all[first..=last];
    let small_n = window.iter().filter(|(_, p)| of_small(p)).count();
    let share = small_n as f64 / window.len() as f64;
    println!("while both waited: {} searches, {small_n} of the small batch ({:.0} %)", window.len(), share * 100.0);
    assert_eq!(small_n, 20);
    assert!((0.4..=0.6).contains(&share), "the small batch had {:.0} % of the search slots", share * 100.0);
    println!("the small batch finished with {large_done} of 200 of the large one finished");
    assert!(large_done < 100, "the small batch finished long before the large one ({large_done} of 200 done)");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_batch_makes_no_outside_call_while_others_go_on_and_finishes_exactly_once_after_resume() {
    let mut env = TestEnv::new(options(600, 0.3)).await;
    let paused = patients("P", 30);
    let going = patients("G", 30);
    env.seed(&paused).await;
    env.seed(&going).await;
    env.start_all(1).await;
    env.publish_in("paused", "normal", &ids(&paused)).await;
    env.publish_in("going", "normal", &ids(&going)).await;
    eventually(Duration::from_secs(60), "the batch half way", || async {
        let done = finished_in(&env, "paused").await;
        if done >= 6 { Ok(()) } else { Err(format!("{done} finished")) }
    })
    .await;

    let scope = Scope::Batch("paused".into());
    let mut uow = UnitOfWork::begin_on(&env.pool).await.expect("a transaction");
    let applied = control::pause(&mut uow, &scope).await.expect("pausing");
    uow.commit_for_relay().await.expect("committing the pause");
    let committed = now_ms();
    let finished_at_pause = finished_in(&env, "paused").await;
    println!("paused with {} runs in progress, {finished_at_pause} finished", applied.runs);
    assert!(applied.changed && applied.runs > 0);

    wait_batch_finished(&env, "going", 30, Duration::from_secs(120)).await;
    // Give a stopped call every chance to show up before looking.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let of_paused = |p: &str| p.starts_with('P');
    let late: Vec<(u64, String, String)> = env
        .docex
        .arrivals()
        .iter()
        .map(|a| (a.at_ms, a.endpoint.clone(), docex_patient(a).to_string()))
        .chain(env.tracker.arrivals().iter().map(|a| (a.at_ms, a.endpoint.clone(), a.subject.clone())))
        .filter(|(at, _, p)| of_paused(p) && *at > committed)
        .collect();
    println!("calls for the paused batch after the commit: {late:?}");
    // A call whose gate check passed just before the commit may still be on the wire.
    assert!(late.iter().all(|(at, ..)| *at <= committed + 100), "calls after the pause: {late:?}");
    assert_eq!(finished_in(&env, "paused").await, finished_at_pause, "no paused run finished while paused");

    let mut uow = UnitOfWork::begin_on(&env.pool).await.expect("a transaction");
    let resumed = control::resume(&mut uow, &scope).await.expect("resuming");
    uow.commit_for_relay().await.expect("committing the resume");
    assert_eq!(resumed.runs as i64, 30 - finished_at_pause);
    wait_batch_finished(&env, "paused", 30, Duration::from_secs(120)).await;
    one_task_one_report_each(&env.tracker.tasks(), 60);
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_cancelled_from_a_control_message_ends_each_run_with_one_report_saying_so() {
    let mut env = TestEnv::new(options(600, 0.3)).await;
    let cancelled = patients("C", 30);
    let kept = patients("K", 30);
    env.seed(&cancelled).await;
    env.seed(&kept).await;
    env.start_all(1).await;
    env.publish_in("cancelled", "normal", &ids(&cancelled)).await;
    env.publish_in("kept", "normal", &ids(&kept)).await;
    eventually(Duration::from_secs(60), "the batch under way", || async {
        let done = finished_in(&env, "cancelled").await;
        if done >= 4 { Ok(()) } else { Err(format!("{done} finished")) }
    })
    .await;

    let control = br#"{"action": "cancel", "batch": "cancelled"}"#;
    rabbit::publish_raw(&env.vhost, "docket.control", control).await.expect("publishing the control");
    let at: chrono::DateTime<chrono::Utc> = eventually(Duration::from_secs(30), "the cancel applied", || async {
        let at: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT max(cancelled_at) FROM docket.runs WHERE batch = 'cancelled'")
                .fetch_one(&env.pool)
                .await
                .map_err(|e| e.to_string())?;
        at.ok_or_else(|| "not yet".to_string())
    })
    .await;
    let committed = at.timestamp_millis() as u64;
    let holding: i64 =
        sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE cancelled_at IS NOT NULL AND holds_job_slot")
            .fetch_one(&env.pool)
            .await
            .expect("counting");
    assert_eq!(holding, 0, "cancelled runs gave their DocEx job slots back at once");

    env.wait_finished(60, Duration::from_secs(120)).await;
    let of_cancelled = |p: &str| p.starts_with('C');
    let late: Vec<(u64, String)> = env
        .docex
        .arrivals()
        .iter()
        .filter(|a| of_cancelled(docex_patient(a)) && a.at_ms > committed + 100)
        .map(|a| (a.at_ms, a.endpoint.clone()))
        .collect();
    assert!(late.is_empty(), "DocEx calls for the cancelled batch after the cancel: {late:?}");
    let closing = ["create_task", "set_status", "add_report"];
    for a in env.tracker.arrivals().iter().filter(|a| of_cancelled(&a.subject) && a.at_ms > committed + 100) {
        assert!(closing.contains(&a.endpoint.as_str()), "{a:?} after the cancel");
    }
    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, 60);
    let cancelled_reports =
        tasks.iter().filter(|t| t.reports[0].summary.starts_with("Cancelled by an operator")).collect::<Vec<_>>();
    let n_cancelled: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.runs WHERE cancelled_at IS NOT NULL")
        .fetch_one(&env.pool)
        .await
        .expect("counting");
    println!("{n_cancelled} runs cancelled, {} finished before the cancel", 30 - n_cancelled);
    assert!(n_cancelled > 0);
    assert_eq!(cancelled_reports.len() as i64, n_cancelled);
    assert!(cancelled_reports.iter().all(|t| of_cancelled(&t.patient_id)));
    assert_budgets_held(&env, 0);
    env.cleanup().await;
}

async fn documents_done(env: &TestEnv, patient: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM docket.documents d JOIN docket.runs r USING (run_id)
         WHERE r.patient_id = $1 AND d.state IN ('done', 'failed')",
    )
    .bind(patient)
    .fetch_one(&env.pool)
    .await
    .expect("counting")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_urgent_patients_documents_go_ahead_of_a_large_archive_being_converted() {
    let mut env = TestEnv::new(options(600, 0.0)).await;
    let (big, urgent) = (Patient::new("BIG"), Patient::new("URGENT"));
    let archive = |documents| Profile { documents, kind: ArchiveKind::Text, job_ms: Some(200), ..Profile::default() };
    env.docex.set_profile(&big.first, &big.last, archive(400));
    env.docex.set_profile(&urgent.first, &urgent.last, archive(3));
    env.seed(&[big, urgent]).await;
    env.start_all(1).await;
    env.publish_in("archive", "bulk", &["BIG"]).await;
    eventually(Duration::from_secs(120), "the large archive converting", || async {
        let done = documents_done(&env, "BIG").await;
        if done >= 20 { Ok(()) } else { Err(format!("{done} documents done")) }
    })
    .await;
    env.publish_in("emergency", "urgent", &["URGENT"]).await;
    wait_batch_finished(&env, "emergency", 1, Duration::from_secs(60)).await;
    let big_done = documents_done(&env, "BIG").await;
    println!("the urgent patient's report came with {big_done} of the large archive's 400 documents done");
    assert!(big_done < 300, "the urgent documents waited for the archive ({big_done} of 400 done)");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_batches_among_their_documents_share_the_converters_in_turn() {
    let mut env = TestEnv::new(options(600, 0.0)).await;
    let (a, b) = (Patient::new("DOCS-A"), Patient::new("DOCS-B"));
    let archive = Profile { documents: 150, kind: ArchiveKind::Text, job_ms: Some(200), ..Profile::default() };
    env.docex.set_profile(&a.first, &a.last, archive.clone());
    env.docex.set_profile(&b.first, &b.last, archive);
    env.seed(&[a, b]).await;
    env.start_all(1).await;
    env.publish_in("docs-a", "normal", &["DOCS-A"]).await;
    env.publish_in("docs-b", "normal", &["DOCS-B"]).await;
    env.wait_finished(2, Duration::from_secs(180)).await;
    // Conversions in the order they finished, until one batch had no more.
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT r.batch FROM docket.documents d JOIN docket.runs r USING (run_id) ORDER BY d.finished_at, d.doc",
    )
    .fetch_all(&env.pool)
    .await
    .expect("listing");
    let first_done = ["docs-a", "docs-b"]
        .map(|b| order.iter().rposition(|x| x == b).expect("both batches converted"))
        .into_iter()
        .min()
        .expect("two batches");
    // Both had documents waiting from the moment both archives were in.
    let both_in = ["docs-a", "docs-b"]
        .map(|b| order.iter().position(|x| x == b).expect("both batches converted"))
        .into_iter()
        .max()
        .expect("two batches");
    let window = &order[both_in..first_done];
    let a_share = window.iter().filter(|x| *x == "docs-a").count() as f64 / window.len().max(1) as f64;
    println!("while both waited: {} conversions, {:.0} % of them batch docs-a", window.len(), a_share * 100.0);
    assert!(window.len() >= 100, "the two batches overlapped ({} conversions)", window.len());
    assert!((0.4..=0.6).contains(&a_share), "docs-a had {:.0} % of the conversions", a_share * 100.0);
    env.cleanup().await;
}

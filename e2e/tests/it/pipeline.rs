//! A patient's request all the way through: task, search, archive, every
//! document stored and converted, statuses, one report.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, eventually};
use docket_stubs::{ArchiveKind, TaskStatus};

use crate::common::{assert_valid_pdf, one_task_one_report_each, profile};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patient_with_documents_gets_one_task_and_one_report_listing_every_stored_pdf() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let p = Patient::new("P-DOCS");
    env.docex.set_profile(&p.first, &p.last, profile(12, ArchiveKind::Mixed));
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-DOCS"]).await;
    env.wait_finished(1, Duration::from_secs(120)).await;

    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, 1);
    assert_eq!(tasks[0].status, TaskStatus::DocumentsFound);
    let report = &tasks[0].reports[0];
    assert_eq!(report.documents.len() + report.failures.len(), 12, "every document is listed: {report:?}");
    assert!(!report.documents.is_empty(), "a mixed archive has convertible documents");
    for d in &report.documents {
        assert!(d.pdf.starts_with("P-DOCS/") && d.pdf.ends_with(".pdf"), "storage key {}", d.pdf);
        assert_valid_pdf(&env.storage_root().join(&d.pdf), d.pages);
    }
    for f in &report.failures {
        assert!(!f.reason.is_empty(), "failure without a reason: {f:?}");
    }
    let originals: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT original_key FROM docket.documents WHERE reason IS NULL OR pdf_key IS NOT NULL OR state = 'failed'",
    )
    .fetch_all(&env.pool)
    .await
    .expect("reading documents");
    let stored: Vec<String> = originals.into_iter().flatten().collect();
    assert!(stored.len() >= report.documents.len(), "an original per converted document");
    for key in stored {
        assert!(env.storage_root().join(&key).is_file(), "original {key} is in storage");
    }
    let status: Option<String> =
        sqlx::query_scalar("SELECT documents_status FROM patients WHERE patient_id = 'P-DOCS'")
            .fetch_one(&env.pool)
            .await
            .expect("reading the patient");
    assert_eq!(status.as_deref(), Some("DOCUMENTS_FOUND"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patient_without_documents_is_reported_not_found_and_no_archive_is_downloaded() {
    let mut env = TestEnv::new(TestOptions::default()).await;
    let p = Patient::new("P-NONE");
    env.docex.set_profile(&p.first, &p.last, profile(0, ArchiveKind::Mixed));
    env.seed(&[p]).await;
    env.start_all(1).await;
    env.publish(&["P-NONE"]).await;
    env.wait_finished(1, Duration::from_secs(60)).await;

    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, 1);
    assert_eq!(tasks[0].status, TaskStatus::DocumentsNotFound);
    let report = &tasks[0].reports[0];
    assert!(report.documents.is_empty() && report.failures.is_empty());
    assert!(report.summary.contains("No documents were found"), "{}", report.summary);
    let stats = env.docex.stats();
    let downloads = stats.endpoints.get("GET /v1/archives/{job_id}").map_or(0, |e| e.calls);
    assert_eq!(downloads, 0, "no archive download was attempted");
    let status: Option<String> =
        sqlx::query_scalar("SELECT documents_status FROM patients WHERE patient_id = 'P-NONE'")
            .fetch_one(&env.pool)
            .await
            .expect("reading the patient");
    assert_eq!(status.as_deref(), Some("DOCUMENTS_NOT_FOUND"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_patients_at_once_all_complete_and_429s_are_retried_not_lost() {
    let mut options = TestOptions::default();
    options.docex.docs = "0..3".parse().expect("a valid range");
    options.docex.empty_share = 0.3;
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..200).map(|i| Patient::new(&format!("B{i:03}"))).collect();
    env.seed(&patients).await;
    env.start_all(1).await;
    let ids: Vec<&str> = patients.iter().map(|p| p.id.as_str()).collect();
    env.publish(&ids).await;
    // Once traffic flows, someone else shares the credentials: both APIs
    // answer 429 for a while.
    eventually(Duration::from_secs(60), "searches under way", || async {
        let spent = env.docex.stats().search.spent;
        if spent >= 20 { Ok(()) } else { Err(format!("{spent} searches and downloads so far")) }
    })
    .await;
    let storm = docket_stubs::Faults { storm_429_ms: Some(2000), ..docket_stubs::Faults::none() };
    env.docex.set_faults(storm.clone());
    env.tracker.set_faults(storm);
    env.wait_finished(200, Duration::from_secs(240)).await;

    one_task_one_report_each(&env.tracker.tasks(), 200);
    let docex = env.docex.stats();
    let tracker = env.tracker.stats();
    assert!(docex.storm_429 + tracker.storm_429 > 0, "the storm answered some requests with 429");
    assert_eq!(
        docex.search.over_budget + docex.status.over_budget + tracker.budget.over_budget,
        0,
        "our own traffic stayed in budget"
    );
    env.cleanup().await;
}

//! The broker and the database going away under running stages: every
//! connection is rebuilt by itself and no run is lost or doubled.

use std::time::Duration;

use docket_e2e::{Patient, TestEnv, TestOptions, eventually, rabbit};
use docket_stubs::ArchiveKind;

use crate::common::one_task_one_report_each;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_stage_reconnects_when_the_broker_cuts_its_connections_and_postgres_its_sessions() {
    let mut options = TestOptions::default();
    options.docex.docs = "1..4".parse().expect("a valid range");
    options.docex.archive_kind = ArchiveKind::Text;
    let mut env = TestEnv::new(options).await;
    let patients: Vec<Patient> = (0..80).map(|i| Patient::new(&format!("C{i:02}"))).collect();
    env.seed(&patients).await;
    env.start_all(1).await;
    env.publish(&patients.iter().map(|p| p.id.as_str()).collect::<Vec<_>>()).await;

    env.wait_finished(15, Duration::from_secs(120)).await;
    // The management API lists a connection only after its next stats tick.
    eventually(Duration::from_secs(30), "every stage's connection listed", || async {
        let n = rabbit::connections(&env.vhost).await.map_err(|e| e.to_string())?;
        if n >= 6 { Ok(()) } else { Err(format!("{n} connections")) }
    })
    .await;
    let cut = rabbit::close_connections(&env.vhost).await.expect("closing connections");
    assert!(cut >= 6, "every stage had a connection ({cut} closed)");
    env.wait_finished(35, Duration::from_secs(120)).await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'docket' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&env.pool)
    .await
    .expect("terminating sessions");
    // search, status, fetch, store and report each hold sessions of their own.
    assert!(killed.len() >= 5, "every stage with a database lost its sessions ({} ended)", killed.len());
    env.wait_finished(55, Duration::from_secs(120)).await;
    rabbit::close_connections(&env.vhost).await.expect("closing connections");
    env.wait_finished(80, Duration::from_secs(180)).await;

    one_task_one_report_each(&env.tracker.tasks(), 80);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.documents WHERE state NOT IN ('done', 'failed')")
        .fetch_one(&env.pool)
        .await
        .expect("counting");
    assert_eq!(left, 0, "every document reached an outcome");
    env.cleanup().await;
}

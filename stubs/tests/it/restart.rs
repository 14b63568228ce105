//! A stub with STUB_DATA_DIR keeps its jobs, tasks, reports and keys across a restart.

use std::time::Duration;

use docket_stubs::{DocexConfig, JobStatus, TaskStatus, TaskTrackerConfig};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_restarted_docex_still_knows_its_jobs_keys_and_archives() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cfg = DocexConfig { data_dir: Some(dir.path().to_owned()), empty_share: 0.0, ..docex_cfg() };
    let d = docex(cfg.clone()).await;
    let c = client();
    let r = search(&c, &d.url(), "Ann", "Lee", Some("run-1")).await;
    let id = r.json::<Value>().await.expect("json")["job_id"].as_str().expect("a job id").to_owned();
    let before = settled(&c, &d.url(), &id).await;
    let archive = c.get(format!("{}/v1/archives/{id}", d.url())).send().await.expect("answer");
    let bytes = archive.bytes().await.expect("the archive");
    d.shutdown().await;

    let d = docex(cfg).await;
    let after = job(&c, &d.url(), &id).await;
    assert_eq!((after.status, after.document_count), (JobStatus::Finished, before.document_count));
    let again = search(&c, &d.url(), "Ann", "Lee", Some("run-1")).await;
    assert_eq!(
        again.json::<Value>().await.expect("json")["job_id"].as_str(),
        Some(id.as_str()),
        "the key is remembered"
    );
    let archive = c.get(format!("{}/v1/archives/{id}", d.url())).send().await.expect("answer");
    assert_eq!(archive.status(), 200);
    assert_eq!(archive.bytes().await.expect("the archive"), bytes, "the same zip");
    d.shutdown().await;
}

#[tokio::test]
async fn a_docex_restarted_without_its_archives_writes_them_again() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cfg = DocexConfig { data_dir: Some(dir.path().to_owned()), empty_share: 0.0, ..docex_cfg() };
    let d = docex(cfg.clone()).await;
    let c = client();
    let id = job_id(&c, &d.url(), "Bo", "Ray").await;
    settled(&c, &d.url(), &id).await;
    d.shutdown().await;
    std::fs::remove_file(dir.path().join(format!("{id}.zip"))).expect("the archive was kept");
    let d = docex(cfg).await;
    eventually(Duration::from_secs(10), "the archive written again", || {
        let (c, url, id) = (c.clone(), d.url(), id.clone());
        async move {
            let r = c.get(format!("{url}/v1/archives/{id}")).send().await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_restarted_tasktracker_still_has_its_tasks_statuses_and_reports() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cfg = TaskTrackerConfig { data_dir: Some(dir.path().to_owned()), ..tracker_cfg() };
    let t = tracker(cfg.clone()).await;
    let c = client();
    let body = json!({"patient_id": "P1", "first_name": "Ann", "last_name": "Lee"});
    let r = c.post(format!("{}/v1/tasks", t.url())).header("Idempotency-Key", "k1").json(&body).send().await;
    let id = r.expect("answer").json::<Value>().await.expect("json")["task_id"].as_str().expect("id").to_owned();
    let status = json!({"status": "DOCUMENTS_FOUND"});
    let r = c.put(format!("{}/v1/tasks/{id}/status", t.url())).json(&status).send().await.expect("answer");
    assert_eq!(r.status(), 200);
    let report = json!({"summary": "one", "documents": [], "failures": []});
    let r = c.post(format!("{}/v1/tasks/{id}/reports", t.url())).header("Idempotency-Key", "r1").json(&report);
    assert_eq!(r.send().await.expect("answer").status(), 201);
    t.shutdown().await;

    let t = tracker(cfg).await;
    let tasks = t.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].status, tasks[0].reports.len()), (TaskStatus::DocumentsFound, 1));
    let r = c.post(format!("{}/v1/tasks", t.url())).header("Idempotency-Key", "k1").json(&body).send().await;
    assert_eq!(r.expect("answer").status(), 200, "the task's key is remembered");
    let r = c.post(format!("{}/v1/tasks/{id}/reports", t.url())).header("Idempotency-Key", "r1").json(&report);
    assert_eq!(r.send().await.expect("answer").status(), 200, "the report's key is remembered");
    assert_eq!(t.tasks()[0].reports.len(), 1);
    t.shutdown().await;
}

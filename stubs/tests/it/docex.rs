//! DocEx behaviour: job lifecycle, archives, idempotency, validation, profiles.

use std::collections::HashSet;
use std::io::Cursor;
use std::time::Duration;

use docket_stubs::{ArchiveKind, DocexConfig, JobStatus, Profile};
use serde_json::{Value, json};

use crate::helpers::*;

fn profile(documents: u32, kind: ArchiveKind) -> Profile {
    Profile { documents, kind, job_ms: Some(400), ..Profile::default() }
}

#[tokio::test]
async fn a_job_goes_from_queued_through_running_to_finished_with_a_downloadable_archive() {
    let d = docex(docex_cfg()).await;
    // A second in all, so even a loaded machine reads it while queued.
    d.set_profile("Ann", "Lee", Profile { job_ms: Some(1200), ..profile(5, ArchiveKind::Text) });
    let c = client();
    let id = job_id(&c, &d.url(), "Ann", "Lee").await;
    let seen = std::sync::Mutex::new(HashSet::new());
    let done = eventually(Duration::from_secs(5), "the job to finish", || async {
        let j = job(&c, &d.url(), &id).await;
        seen.lock().expect("not poisoned").insert(format!("{:?}", j.status));
        (j.status == JobStatus::Finished).then_some(j)
    })
    .await;
    let seen = seen.into_inner().expect("not poisoned");
    assert!(seen.contains("Queued") && seen.contains("Running"), "seen {seen:?}");
    assert_eq!(done.document_count, Some(5));
    let url = done.archive_url.expect("an archive URL");
    assert_eq!(url, format!("{}/v1/archives/{id}", d.url()));
    let r = c.get(&url).send().await.expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let len: usize = r.headers()["content-length"].to_str().expect("ASCII").parse().expect("a number");
    let body = r.bytes().await.expect("the archive");
    assert_eq!(body.len(), len);
    let zip = zip::ZipArchive::new(Cursor::new(body)).expect("a valid zip");
    assert_eq!(zip.len(), 5);
    d.shutdown().await;
}

#[tokio::test]
async fn a_patient_with_no_documents_finishes_without_an_archive_url_and_its_archive_is_404() {
    let d = docex(docex_cfg()).await;
    d.set_profile("No", "Docs", profile(0, ArchiveKind::Mixed));
    let c = client();
    let id = job_id(&c, &d.url(), "No", "Docs").await;
    let done = settled(&c, &d.url(), &id).await;
    assert_eq!((done.status, done.document_count, done.archive_url), (JobStatus::Finished, Some(0), None));
    let r = c.get(format!("{}/v1/archives/{id}", d.url())).send().await.expect("answer");
    assert_eq!(r.status(), 404);
    d.shutdown().await;
}

#[tokio::test]
async fn failed_jobs_fail_and_their_key_still_returns_the_failed_job() {
    let d = docex(docex_cfg()).await;
    d.set_profile("Fay", "Ling", Profile { fail_jobs: 1, ..profile(3, ArchiveKind::Text) });
    let c = client();
    let first: Value = search(&c, &d.url(), "Fay", "Ling", Some("key-1")).await.json().await.expect("json");
    let id = first["job_id"].as_str().expect("job id").to_owned();
    assert_eq!(settled(&c, &d.url(), &id).await.status, JobStatus::Failed);
    assert_eq!(c.get(format!("{}/v1/archives/{id}", d.url())).send().await.expect("answer").status(), 404);
    let replay = search(&c, &d.url(), "Fay", "Ling", Some("key-1")).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.json::<Value>().await.expect("json")["job_id"], first["job_id"]);
    let again = job_id(&c, &d.url(), "Fay", "Ling").await;
    assert_ne!(again, id);
    assert_eq!(settled(&c, &d.url(), &again).await.status, JobStatus::Finished, "only the first job fails");
    assert_eq!(d.stats().jobs.replays, 1);
    d.shutdown().await;
}

#[tokio::test]
async fn an_archive_is_gone_with_410_after_its_time_to_live() {
    let d = docex(DocexConfig { archive_ttl: Duration::from_millis(300), ..docex_cfg() }).await;
    d.set_profile("Tim", "Out", Profile { job_ms: Some(50), ..profile(2, ArchiveKind::Text) });
    let c = client();
    let id = job_id(&c, &d.url(), "Tim", "Out").await;
    let url = settled(&c, &d.url(), &id).await.archive_url.expect("an archive");
    eventually(Duration::from_secs(5), "the archive to expire", || async {
        (c.get(&url).send().await.expect("answer").status() == 410).then_some(())
    })
    .await;
    d.shutdown().await;
}

#[tokio::test]
async fn unknown_jobs_are_404_and_malformed_searches_are_400() {
    let d = docex(docex_cfg()).await;
    let c = client();
    for path in ["/v1/searches/nope", "/v1/archives/nope", "/v2/whatever"] {
        assert_eq!(c.get(format!("{}{path}", d.url())).send().await.expect("answer").status(), 404, "{path}");
    }
    let long = "x".repeat(201);
    for body in [
        json!({}),
        json!({"first_name": "Ann"}),
        json!({"first_name": "", "last_name": "Lee"}),
        json!({"first_name": long, "last_name": "Lee"}),
        json!({"first_name": 7, "last_name": "Lee"}),
    ] {
        let r = c.post(format!("{}/v1/searches", d.url())).json(&body).send().await.expect("answer");
        assert_eq!(r.status(), 400, "{body}");
    }
    let r = c.post(format!("{}/v1/searches", d.url())).body("not json").send().await.expect("answer");
    assert_eq!(r.status(), 400);
    assert_eq!(search(&c, &d.url(), "Ann", "Lee", Some(&"k".repeat(201))).await.status(), 400);
    assert_eq!(search(&c, &d.url(), "Ann", "Lee", Some(&"k".repeat(200))).await.status(), 202);
    d.shutdown().await;
}

#[tokio::test]
async fn a_running_profile_keeps_the_job_running() {
    let d = docex(docex_cfg()).await;
    d.set_profile("Slow", "Poke", Profile { running_ms: Some(3_600_000), ..profile(1, ArchiveKind::Text) });
    let c = client();
    let id = job_id(&c, &d.url(), "Slow", "Poke").await;
    eventually(Duration::from_secs(5), "the job to run", || async {
        (job(&c, &d.url(), &id).await.status == JobStatus::Running).then_some(())
    })
    .await;
    assert_eq!(d.stats().jobs.running, 1);
    d.shutdown().await;
}

#[tokio::test]
async fn without_a_profile_a_patient_gets_the_same_count_every_time() {
    let d = docex(DocexConfig { empty_share: 0.0, ..docex_cfg() }).await;
    let c = client();
    let a = job_id(&c, &d.url(), "Same", "Person").await;
    let b = job_id(&c, &d.url(), "Same", "Person").await;
    let (ja, jb) = (settled(&c, &d.url(), &a).await, settled(&c, &d.url(), &b).await);
    assert_eq!(ja.document_count, jb.document_count);
    assert!(ja.document_count.is_some_and(|n| n <= 12));
    d.shutdown().await;
}

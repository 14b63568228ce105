//! Shared helpers: starting stubs, a client, polling with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use docket_stubs::{DocexConfig, DocexHandle, JobStatus, JobView, Rate, TaskTrackerConfig, TaskTrackerHandle};
use serde_json::{Value, json};

/// A DocEx with generous budgets, so a test only meets the limit it sets itself.
pub fn docex_cfg() -> DocexConfig {
    DocexConfig { search_rate: Rate::per_second(1000), status_rate: Rate::per_second(1000), ..DocexConfig::default() }
}

pub fn tracker_cfg() -> TaskTrackerConfig {
    TaskTrackerConfig { rate: Rate::per_second(1000), ..TaskTrackerConfig::default() }
}

pub async fn docex(cfg: DocexConfig) -> DocexHandle {
    docket_stubs::spawn_docex(cfg).await.expect("the DocEx stub starts")
}

pub async fn tracker(cfg: TaskTrackerConfig) -> TaskTrackerHandle {
    docket_stubs::spawn_tasktracker(cfg).await.expect("the TaskTracker stub starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a reqwest client")
}

/// Polls `f` every 20 ms until it gives `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POST /v1/searches with an optional Idempotency-Key.
pub async fn search(c: &reqwest::Client, url: &str, first: &str, last: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = c.post(format!("{url}/v1/searches")).json(&json!({ "first_name": first, "last_name": last }));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("the stub answers")
}

/// Starts a search and returns its job id (asserting 202).
pub async fn job_id(c: &reqwest::Client, url: &str, first: &str, last: &str) -> String {
    let r = search(c, url, first, last, None).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("a JSON body");
    v["job_id"].as_str().expect("a job_id").to_owned()
}

pub async fn job(c: &reqwest::Client, url: &str, id: &str) -> JobView {
    let r = c.get(format!("{url}/v1/searches/{id}")).send().await.expect("the stub answers");
    assert_eq!(r.status(), 200);
    r.json().await.expect("a job view")
}

/// Polls a job until it is finished or failed.
pub async fn settled(c: &reqwest::Client, url: &str, id: &str) -> JobView {
    eventually(Duration::from_secs(10), "the job to settle", || async {
        let j = job(c, url, id).await;
        matches!(j.status, JobStatus::Finished | JobStatus::Failed).then_some(j)
    })
    .await
}

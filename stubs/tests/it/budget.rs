//! The sliding-window budgets, seen from a client.

use std::time::Duration;

use docket_stubs::budget::max_in_window;
use docket_stubs::{Budget, DocexConfig, FaultMode, Faults, Rate, TaskTrackerConfig};
use serde_json::Value;

use crate::helpers::*;

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"].to_str().expect("ASCII").parse().expect("whole seconds")
}

#[tokio::test]
async fn the_search_budget_takes_n_in_a_window_and_refuses_the_next_with_retry_after() {
    let d = docex(DocexConfig { search_rate: Rate::per_minute(3), ..docex_cfg() }).await;
    let c = client();
    for i in 0..3 {
        assert_eq!(search(&c, &d.url(), "Ann", &format!("Lee{i}"), None).await.status(), 202);
    }
    let refused = search(&c, &d.url(), "Ann", "Lee", None).await;
    assert_eq!(refused.status(), 429);
    assert!((1..=60).contains(&retry_after(&refused)));
    // Downloads share the budget with searches.
    let download = c.get(format!("{}/v1/archives/any", d.url())).send().await.expect("answer");
    assert_eq!(download.status(), 429);
    let s = d.stats();
    assert_eq!((s.search.spent, s.search.over_budget, s.search.max_in_window), (3, 2, 3));
    assert_eq!(d.budget_log(Budget::Search).len(), 3, "refused requests spend nothing");
    assert_eq!(s.status.spent, 0);
    d.shutdown().await;
}

#[tokio::test]
async fn a_slot_frees_exactly_when_the_oldest_request_leaves_the_sliding_window() {
    let period = Duration::from_millis(1000);
    let d = docex(DocexConfig { search_rate: Rate::per(2, period), ..docex_cfg() }).await;
    let c = client();
    let url = format!("{}/v1/archives/none", d.url());
    assert_eq!(c.get(&url).send().await.expect("answer").status(), 404);
    assert_eq!(c.get(&url).send().await.expect("answer").status(), 404);
    eventually(Duration::from_secs(3), "a slot to free up", || async {
        (c.get(&url).send().await.expect("answer").status() == 404).then_some(())
    })
    .await;
    let log = d.budget_log(Budget::Search);
    assert_eq!(log.len(), 3);
    assert!(log[2] - log[0] >= 400, "the third came only after the first left the window: {log:?}");
    let s = d.stats();
    assert!(s.search.over_budget >= 1, "the polling met the full window at least once");
    assert_eq!(s.search.max_in_window, 2);
    assert_eq!(max_in_window(&log, period), s.search.max_in_window);
    d.shutdown().await;
}

#[tokio::test]
async fn outage_errors_bad_requests_and_replays_spend_budget_but_401s_do_not() {
    let d = docex(DocexConfig { token: Some("tok".into()), ..docex_cfg() }).await;
    let c = client();
    let url = format!("{}/v1/searches", d.url());
    for _ in 0..2 {
        assert_eq!(c.post(&url).json(&serde_json::json!({})).send().await.expect("answer").status(), 401);
    }
    let authed = |body: Value| c.post(&url).bearer_auth("tok").header("Idempotency-Key", "k1").json(&body).send();
    let body = serde_json::json!({"first_name": "Ann", "last_name": "Lee"});
    let first: Value = authed(body.clone()).await.expect("answer").json().await.expect("json");
    let replay: Value = authed(body.clone()).await.expect("answer").json().await.expect("json");
    assert_eq!(first["job_id"], replay["job_id"]);
    assert_eq!(authed(serde_json::json!({"first_name": ""})).await.expect("answer").status(), 400);
    d.set_faults(Faults::mode(FaultMode::Unavailable, None));
    assert_eq!(authed(body).await.expect("answer").status(), 503);
    let s = d.stats();
    assert_eq!(s.search.spent, 4, "replay, 400 and 503 spent; 401s did not");
    assert_eq!(s.unauthorized, 2);
    assert_eq!(s.dark_calls, 1);
    d.shutdown().await;
}

#[tokio::test]
async fn status_reads_have_a_budget_of_their_own() {
    let d = docex(DocexConfig { status_rate: Rate::per_minute(2), ..docex_cfg() }).await;
    let c = client();
    let id = job_id(&c, &d.url(), "Ann", "Lee").await;
    let status = || c.get(format!("{}/v1/searches/{id}", d.url())).send();
    assert_eq!(status().await.expect("answer").status(), 200);
    assert_eq!(status().await.expect("answer").status(), 200);
    let refused = status().await.expect("answer");
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    let s = d.stats();
    assert_eq!((s.status.spent, s.status.over_budget, s.search.spent), (2, 1, 1));
    d.shutdown().await;
}

#[tokio::test]
async fn every_tasktracker_request_spends_the_one_budget_404s_and_400s_included() {
    let t = tracker(TaskTrackerConfig { rate: Rate::per_minute(3), ..tracker_cfg() }).await;
    let c = client();
    assert_eq!(c.get(format!("{}/v1/tasks/nope", t.url())).send().await.expect("answer").status(), 404);
    assert_eq!(c.post(format!("{}/v1/tasks", t.url())).body("{").send().await.expect("answer").status(), 400);
    assert_eq!(c.get(format!("{}/elsewhere", t.url())).send().await.expect("answer").status(), 404);
    let refused = c.get(format!("{}/v1/tasks/nope", t.url())).send().await.expect("answer");
    assert_eq!(refused.status(), 429);
    assert!((1..=60).contains(&retry_after(&refused)));
    let s = t.stats();
    assert_eq!((s.budget.spent, s.budget.over_budget, s.budget.max_in_window), (3, 1, 3));
    assert_eq!(t.budget_log().len(), 3);
    t.shutdown().await;
}

//! Who gets in: bearer tokens on the API, and admin endpoints open to all.

use docket_stubs::{DocexConfig, DocexStats, TaskTrackerConfig};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_missing_or_wrong_token_gets_401_and_spends_nothing() {
    let d = docex(DocexConfig { token: Some("s3cret".into()), ..docex_cfg() }).await;
    let c = client();
    let url = format!("{}/v1/searches/any", d.url());
    assert_eq!(c.get(&url).send().await.expect("answer").status(), 401);
    let wrong = c.get(&url).bearer_auth("nope").send().await.expect("answer");
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
    assert_eq!(c.get(&url).bearer_auth("s3cret").send().await.expect("answer").status(), 404);
    let s = d.stats();
    assert_eq!((s.unauthorized, s.status.spent), (2, 1));
    assert_eq!(
        c.get(format!("{}/admin/stats", d.url())).send().await.expect("answer").status(),
        200,
        "admin needs no token"
    );
    d.shutdown().await;
}

#[tokio::test]
async fn the_tracker_checks_its_own_token() {
    let t = tracker(TaskTrackerConfig { token: Some("tt".into()), ..tracker_cfg() }).await;
    let c = client();
    let url = format!("{}/v1/tasks/any", t.url());
    assert_eq!(c.get(&url).send().await.expect("answer").status(), 401);
    assert_eq!(c.get(&url).bearer_auth("tt").send().await.expect("answer").status(), 404);
    assert_eq!((t.stats().unauthorized, t.stats().budget.spent), (1, 1));
    t.shutdown().await;
}

#[tokio::test]
async fn profiles_set_through_the_admin_endpoint_apply_and_admin_reads_parse() {
    let d = docex(docex_cfg()).await;
    let c = client();
    let body = json!([{ "first_name": "Ad", "last_name": "Min", "profile": { "documents": 2, "kind": "images", "job_ms": 100 } }]);
    let r = c.put(format!("{}/admin/profiles", d.url())).json(&body).send().await.expect("answer");
    assert_eq!(r.status(), 200);
    let bad = json!([{ "first_name": "A", "last_name": "B", "profile": { "documents": 3001 } }]);
    assert_eq!(c.put(format!("{}/admin/profiles", d.url())).json(&bad).send().await.expect("answer").status(), 400);
    let id = job_id(&c, &d.url(), "Ad", "Min").await;
    assert_eq!(settled(&c, &d.url(), &id).await.document_count, Some(2));
    let stats: DocexStats =
        c.get(format!("{}/admin/stats", d.url())).send().await.expect("answer").json().await.expect("stats");
    assert_eq!(stats.jobs.created, 1);
    assert_eq!(stats.endpoints["POST /v1/searches"].by_status["202"], 1);
    let jobs: Vec<Value> =
        c.get(format!("{}/admin/jobs", d.url())).send().await.expect("answer").json().await.expect("jobs");
    assert_eq!(jobs[0]["job_id"], id.as_str());
    assert!(!jobs[0].to_string().contains("Min"), "no names in the job list");
    let log: Vec<u64> =
        c.get(format!("{}/admin/budget-log/search", d.url())).send().await.expect("answer").json().await.expect("log");
    assert_eq!(log.len(), 1);
    d.shutdown().await;
}

#[test]
fn the_binary_exits_with_a_message_naming_an_invalid_setting() {
    for (name, value) in [("DOCEX_SEARCH_RATE", "fast"), ("STUB_FAULTS", "{\"mode\":\"boom\"}")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_docket-stubs"))
            .arg("all")
            .env(name, value)
            .output()
            .expect("the binary runs");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{stderr}");
    }
}

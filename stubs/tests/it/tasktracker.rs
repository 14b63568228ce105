//! TaskTracker behaviour: tasks, statuses and reports, with idempotency keys and validation.

use docket_stubs::{TaskStatus, TaskTrackerStats};
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(c: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String) {
    let mut req =
        c.post(format!("{url}/v1/tasks")).json(&json!({"patient_id": "P1", "first_name": "Ann", "last_name": "Lee"}));
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let r = req.send().await.expect("answer");
    let code = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    (code, v["task_id"].as_str().expect("task id").to_owned())
}

fn report(summary: &str) -> Value {
    json!({
        "summary": summary,
        "documents": [{"name": "2019/labs/report.txt", "pdf": "runs/r1/0001.pdf", "pages": 2}],
        "failures": [{"name": "misc/blob.dat", "reason": "unsupported format"}]
    })
}

#[tokio::test]
async fn creating_a_task_twice_with_one_key_creates_it_once() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    let (first, id) = create(&c, &t.url(), Some("run-1")).await;
    let (second, again) = create(&c, &t.url(), Some("run-1")).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(id, again);
    let (third, other) = create(&c, &t.url(), None).await;
    assert_eq!(third, 201);
    assert_ne!(other, id);
    let tasks = t.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!((tasks[0].status, tasks[0].first_name.as_str()), (TaskStatus::New, "Ann"));
    let api: Value =
        c.get(format!("{}/v1/tasks/{id}", t.url())).send().await.expect("answer").json().await.expect("json");
    assert_eq!((api["patient_id"].as_str(), api["status"].as_str()), (Some("P1"), Some("NEW")));
    assert!(api.get("first_name").is_none(), "the API's task has no names");
    let stats: TaskTrackerStats =
        c.get(format!("{}/admin/stats", t.url())).send().await.expect("answer").json().await.expect("stats");
    assert_eq!((stats.tasks, stats.replays), (2, 1));
    t.shutdown().await;
}

#[tokio::test]
async fn malformed_tasks_are_refused_with_400() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    for body in [
        json!({"first_name": "A", "last_name": "B"}),
        json!({"patient_id": "", "first_name": "A", "last_name": "B"}),
        json!({"patient_id": "P".repeat(65), "first_name": "A", "last_name": "B"}),
        json!({"patient_id": "P1", "first_name": "", "last_name": "B"}),
        json!({"patient_id": "P1", "first_name": "A", "last_name": "B".repeat(201)}),
    ] {
        let r = c.post(format!("{}/v1/tasks", t.url())).json(&body).send().await.expect("answer");
        assert_eq!(r.status(), 400, "{body}");
    }
    assert!(t.tasks().is_empty());
    t.shutdown().await;
}

#[tokio::test]
async fn setting_a_status_is_idempotent_and_unknown_tasks_are_404() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    let (_, id) = create(&c, &t.url(), None).await;
    let put = |task: String, status: &'static str| {
        c.put(format!("{}/v1/tasks/{task}/status", t.url())).json(&json!({"status": status})).send()
    };
    for _ in 0..2 {
        assert_eq!(put(id.clone(), "DOCUMENTS_FOUND").await.expect("answer").status(), 200);
    }
    assert_eq!(t.tasks()[0].status, TaskStatus::DocumentsFound);
    assert_eq!(put(id.clone(), "NEW").await.expect("answer").status(), 400);
    assert_eq!(put(id.clone(), "LOST").await.expect("answer").status(), 400);
    assert_eq!(put("nope".into(), "DOCUMENTS_NOT_FOUND").await.expect("answer").status(), 404);
    t.shutdown().await;
}

#[tokio::test]
async fn a_report_is_appended_once_per_key_and_keys_are_scoped_to_their_task() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    let (_, a) = create(&c, &t.url(), None).await;
    let (_, b) = create(&c, &t.url(), None).await;
    let post = |task: &str| {
        c.post(format!("{}/v1/tasks/{task}/reports", t.url()))
            .header("Idempotency-Key", "report-1")
            .json(&report("3 documents"))
            .send()
    };
    let first = post(&a).await.expect("answer");
    assert_eq!(first.status(), 201);
    let first_id = first.json::<Value>().await.expect("json")["report_id"].clone();
    let replay = post(&a).await.expect("answer");
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.expect("json")["report_id"], first_id);
    assert_eq!(post(&b).await.expect("answer").status(), 201, "the same key on another task is another report");
    assert_eq!(post("nope").await.expect("answer").status(), 404);
    let tasks = t.tasks();
    assert_eq!((tasks[0].reports.len(), tasks[1].reports.len()), (1, 1));
    assert_eq!(tasks[0].reports[0].documents[0].pages, Some(2));
    assert_eq!(t.stats().reports, 2);
    t.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_reports_are_refused() {
    let t = tracker(tracker_cfg()).await;
    let c = client();
    let (_, id) = create(&c, &t.url(), None).await;
    let url = format!("{}/v1/tasks/{id}/reports", t.url());
    for body in [
        json!({"summary": "x", "documents": []}),
        json!({"summary": "x", "documents": [{"name": "a"}], "failures": []}),
        json!({"summary": "x", "documents": [{"name": "a", "pdf": "a.pdf", "pages": 0}], "failures": []}),
    ] {
        assert_eq!(c.post(&url).json(&body).send().await.expect("answer").status(), 400, "{body}");
    }
    let huge = report(&"x".repeat(16 * 1024 * 1024));
    assert_eq!(c.post(&url).json(&huge).send().await.expect("answer").status(), 413);
    assert!(t.tasks()[0].reports.is_empty());
    let empty = json!({"summary": "No documents were found.", "documents": [], "failures": []});
    assert_eq!(c.post(&url).json(&empty).send().await.expect("answer").status(), 201);
    t.shutdown().await;
}

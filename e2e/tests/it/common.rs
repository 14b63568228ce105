//! Checks several tests share.

use std::path::Path;

use std::time::Duration;

use docket_e2e::TestEnv;
use docket_stubs::{ArchiveKind, Budget, Profile, Task, TaskStatus, budget::max_in_window};

pub fn profile(documents: u32, kind: ArchiveKind) -> Profile {
    Profile { documents, kind, job_ms: Some(300), ..Profile::default() }
}

/// `qpdf --check` passes and the page count is what the report says.
pub fn assert_valid_pdf(path: &Path, pages: Option<u32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(bytes.starts_with(b"%PDF-"), "{} is not a PDF", path.display());
    let check = std::process::Command::new("qpdf")
        .arg("--check")
        .arg(path)
        .output()
        .expect("qpdf is installed (the test script installs it)");
    assert!(check.status.success(), "qpdf --check {}: {}", path.display(), String::from_utf8_lossy(&check.stdout));
    if let Some(expected) = pages {
        let n = std::process::Command::new("qpdf").arg("--show-npages").arg(path).output().expect("qpdf runs");
        let counted: u32 = String::from_utf8_lossy(&n.stdout).trim().parse().expect("qpdf prints a page count");
        assert_eq!(counted, expected, "page count of {}", path.display());
    }
}

/// Each patient has exactly one task, carrying exactly one report.
pub fn one_task_one_report_each(tasks: &[Task], patients: usize) {
    assert_eq!(tasks.len(), patients, "one task per patient");
    let mut ids: Vec<&str> = tasks.iter().map(|t| t.patient_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), patients, "no patient has two tasks");
    for t in tasks {
        assert_eq!(t.reports.len(), 1, "task {} has {} reports", t.task_id, t.reports.len());
    }
}

/// Every budget the stubs enforce held: at most `limit + slack` requests in
/// any sliding window of the budget's length (from the stubs' own logs of
/// arrivals), and at most `slack` of them answered 429 as over budget.
pub fn assert_budgets_held(env: &TestEnv, slack: u32) {
    let (d, t) = (env.docex.stats(), env.tracker.stats());
    let budgets = [
        ("docex search+download", env.docex.budget_log(Budget::Search), &d.search),
        ("docex status", env.docex.budget_log(Budget::Status), &d.status),
        ("tasktracker", env.tracker.budget_log(), &t.budget),
    ];
    for (name, log, stats) in budgets {
        let period = Duration::from_millis(stats.period_ms);
        let most = max_in_window(&log, period);
        let over = stats.over_budget;
        println!(
            "{name}: {} requests, at most {most} in any {period:?} window (limit {}), {over} over budget",
            log.len(),
            stats.limit
        );
        assert!(over <= u64::from(slack), "{name}: {over} requests over budget");
        assert!(most <= u64::from(stats.limit + slack), "{name}: {most} requests in one window");
    }
}

/// Every one of `patients` runs finished exactly once: one run each, done;
/// one TaskTracker task each with one report and a final status that
/// agrees with the patient's row; every document reached an outcome.
pub async fn every_run_finished_once(env: &TestEnv, patients: usize) {
    let runs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT patient_id, count(*) FROM docket.runs WHERE state = 'done' GROUP BY patient_id ORDER BY patient_id",
    )
    .fetch_all(&env.pool)
    .await
    .expect("counting runs");
    assert_eq!(runs.len(), patients, "every patient's run is done");
    assert!(runs.iter().all(|(_, n)| *n == 1), "no patient has two runs");
    let tasks = env.tracker.tasks();
    one_task_one_report_each(&tasks, patients);
    let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT patient_id, documents_status FROM patients")
        .fetch_all(&env.pool)
        .await
        .expect("reading statuses");
    for t in &tasks {
        let expected = match t.status {
            TaskStatus::DocumentsFound => "DOCUMENTS_FOUND",
            TaskStatus::DocumentsNotFound => "DOCUMENTS_NOT_FOUND",
            TaskStatus::New => panic!("task {} never got its status", t.task_id),
        };
        let row = rows.iter().find(|(p, _)| *p == t.patient_id).map(|(_, s)| s.as_deref());
        assert_eq!(row, Some(Some(expected)), "the patient's row agrees with task {}", t.task_id);
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM docket.documents WHERE state NOT IN ('done', 'failed')")
        .fetch_one(&env.pool)
        .await
        .expect("counting documents");
    assert_eq!(left, 0, "every document reached an outcome");
}

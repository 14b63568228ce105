//! Reading the pipeline's state: a patient's run, all runs, waiting for
//! work to finish, and a patient's report as TaskTracker holds it.

use std::{sync::Arc, time::Duration};

use docket_shared::{
    Settings,
    broker::{Broker, topology::queues},
    metrics::Metrics,
    outside::{Api, Redis, tasktracker::TaskTracker},
    settings::duration,
    {db::Db, run::Run},
};
use lapin::{options::QueueDeclareOptions, types::FieldTable};

fn db(settings: &Settings) -> anyhow::Result<Db> {
    Db::connect_lazy(&settings.database_url, 2)
}

async fn latest(db: &Db, patient_id: &str) -> anyhow::Result<Option<Run>> {
    Ok(sqlx::query_as(
        "SELECT r.*, docket.paused(r.batch, r.patient_id) AS paused FROM docket.runs r
         WHERE patient_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(patient_id)
    .fetch_optional(&db.pool)
    .await?)
}

pub async fn patient(settings: &Settings, patient_id: &str) -> anyhow::Result<()> {
    let db = db(settings)?;
    let Some(run) = latest(&db, patient_id).await? else {
        println!("no run for patient {patient_id}");
        return Ok(());
    };
    let docs = match run.docs_total {
        Some(total) => format!("{} of {total} done ({} failed)", run.docs_done, run.docs_failed),
        None => "not known yet".into(),
    };
    println!("patient   {}", run.patient_id);
    println!("run       {} ({} request{})", run.run_id, run.requests, if run.requests == 1 { "" } else { "s" });
    let mut notes = Vec::new();
    if run.finished_at.is_some() {
        notes.push("finished");
    }
    if run.cancelled() {
        notes.push("cancelled");
    }
    if run.paused && run.finished_at.is_none() {
        notes.push("paused");
    }
    if run.parked {
        notes.push("parked: see `docket parked list`");
    }
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
    println!("stage     {}{notes}", run.state);
    println!("batch     {} ({})", run.batch, run.priority());
    println!("documents {docs}");
    println!("task      {}", run.task_id.as_deref().unwrap_or("-"));
    println!("job       {}", run.job_id.as_deref().unwrap_or("-"));
    println!("status    {}", run.documents_status.as_deref().unwrap_or("-"));
    println!("error     {}", run.last_error.as_deref().unwrap_or("-"));
    let events: Vec<(chrono::DateTime<chrono::Utc>, String, String)> =
        sqlx::query_as("SELECT at, stage, event FROM docket.run_events WHERE run_id = $1 ORDER BY id")
            .bind(run.run_id)
            .fetch_all(&db.pool)
            .await?;
    println!("history");
    for (at, stage, event) in events {
        println!("  {}  {stage:<7} {event}", at.format("%H:%M:%S%.3f"));
    }
    Ok(())
}

pub async fn runs(settings: &Settings) -> anyhow::Result<()> {
    let db = db(settings)?;
    let counts: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT state, documents_status, count(*) FROM docket.runs GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(&db.pool)
            .await?;
    println!("{:<10} {:<22} {:>7}", "state", "documents status", "runs");
    for (state, status, n) in counts {
        println!("{state:<10} {:<22} {n:>7}", status.unwrap_or_else(|| "-".into()));
    }
    let errors: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT patient_id, state, last_error FROM docket.runs
         WHERE finished_at IS NULL AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 10",
    )
    .fetch_all(&db.pool)
    .await?;
    if !errors.is_empty() {
        println!("\nruns in progress with a recent error:");
        for (pid, state, error) in errors {
            println!("  {pid:<20} {state:<10} {error}");
        }
    }
    Ok(())
}

/// Messages waiting in the intake queue (a passive declare reads the count).
async fn intake_depth(settings: &Settings) -> anyhow::Result<u32> {
    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let q = channel.queue_declare(queues::PATIENTS.into(), passive, FieldTable::default()).await?;
    let _ = conn.close(200, "done".into()).await;
    Ok(q.message_count())
}

pub async fn wait(settings: &Settings, timeout: &str) -> anyhow::Result<()> {
    let limit = duration(timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let db = db(settings)?;
    let started = std::time::Instant::now();
    // The database's clock, so that "finished since" means the same thing as finished_at.
    let (since,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as("SELECT now()").fetch_one(&db.pool).await?;
    let mut quiet = 0;
    let mut last = String::new();
    loop {
        let (active, done): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE finished_at IS NULL), count(*) FILTER (WHERE finished_at >= $1)
             FROM docket.runs",
        )
        .bind(since)
        .fetch_one(&db.pool)
        .await?;
        let waiting = intake_depth(settings).await?;
        let line =
            format!("{active} runs in progress, {done} finished since the wait began, {waiting} requests waiting");
        if line != last {
            println!("[{:>5}s] {line}", started.elapsed().as_secs());
            last = line;
        }
        // Three quiet polls in a row: nothing is between intake and a run.
        quiet = if active == 0 && waiting == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < limit, "still {active} runs in progress after {timeout}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub fn tracker(settings: &Settings) -> anyhow::Result<TaskTracker> {
    let redis = Redis::connect(&settings.redis_url, &settings.redis_key_prefix)?;
    let gate = docket_shared::service::gate(Api::TaskTracker, settings, &redis, &Arc::new(Metrics::new()))?;
    TaskTracker::new(gate, &settings.tasktracker_url, settings.tasktracker_token.clone())
}

pub async fn report(settings: &Settings, patient_id: &str) -> anyhow::Result<()> {
    let db = db(settings)?;
    let run = latest(&db, patient_id).await?.ok_or_else(|| anyhow::anyhow!("no run for patient {patient_id}"))?;
    let task_id = run.task_id.ok_or_else(|| anyhow::anyhow!("the run has no TaskTracker task yet"))?;
    let task = tracker(settings)?.task(&task_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    print_task(&task);
    Ok(())
}

pub fn print_task(task: &docket_shared::outside::tasktracker::Task) {
    println!("task {} for patient {}: {}", task.task_id, task.patient_id, task.status);
    for report in &task.reports {
        println!("  {}", report.summary);
        for d in &report.documents {
            let pages = d.pages.map(|p| format!("{p} p.")).unwrap_or_default();
            println!("    ✓ {} → {} {pages}", d.name, d.pdf);
        }
        for f in &report.failures {
            println!("    ✗ {}: {}", f.name, f.reason);
        }
    }
}

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
        let known: Option<i32> = sqlx::query_scalar("SELECT 1 FROM patients WHERE patient_id = $1")
            .bind(patient_id)
            .fetch_optional(&db.pool)
            .await
            .unwrap_or(None);
        match known {
            None => println!(
                "no run for patient {patient_id}: it is not in the patients table, and a request for an \
                 unknown patient is parked with that reason: see `docket parked list`."
            ),
            Some(_) => println!(
                "no run for patient {patient_id} yet: its request may still wait in the `patients` queue, \
                 or be parked (its row unusable): see `docket parked list`."
            ),
        }
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
        notes.push("parked: waits for an operator, see `docket parked list`");
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
    // A parked run is shown as parked, whatever step it was parked in.
    let counts: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT CASE WHEN parked AND finished_at IS NULL THEN 'parked' ELSE state END, documents_status, count(*)
         FROM docket.runs GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await?;
    println!("{:<10} {:<22} {:>7}", "state", "documents status", "runs");
    for (state, status, n) in counts {
        println!("{state:<10} {:<22} {n:>7}", status.unwrap_or_else(|| "-".into()));
    }
    let errors: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT patient_id, state, last_error, parked FROM docket.runs
         WHERE finished_at IS NULL AND last_error IS NOT NULL ORDER BY parked DESC, updated_at DESC LIMIT 10",
    )
    .fetch_all(&db.pool)
    .await?;
    let (parked, erring): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| e.3);
    if !parked.is_empty() {
        println!("\nparked runs (`docket parked list` shows the messages; `docket parked replay` retries):");
        for (pid, state, error, _) in parked {
            println!("  {pid:<20} {state:<10} {error}");
        }
    }
    if !erring.is_empty() {
        println!("\nruns in progress with a recent error:");
        for (pid, state, error, _) in erring {
            println!("  {pid:<20} {state:<10} {error}");
        }
    }
    Ok(())
}

/// Messages waiting in the intake queue and its urgent lane (a passive
/// declare reads the count).
async fn intake_depth(settings: &Settings) -> anyhow::Result<u32> {
    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let mut waiting = 0;
    for queue in [queues::PATIENTS, queues::PATIENTS_URGENT] {
        waiting += channel.queue_declare(queue.into(), passive, FieldTable::default()).await?.message_count();
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(waiting)
}

/// How a wait ended: everything finished, or only parked runs were left.
pub struct Waited {
    pub parked: i64,
    /// Runs a pause holds (they go on after `docket resume`).
    pub paused: i64,
}

/// `docket wait`: fails (exit 1) when what is left is parked, rather than
/// waiting for an operator who does not know.
pub async fn wait_command(settings: &Settings, timeout: &str) -> anyhow::Result<()> {
    let w = wait(settings, timeout).await?;
    anyhow::ensure!(
        w.parked == 0,
        "{} parked run(s) wait for an operator: see `docket runs` and `docket parked list`",
        w.parked
    );
    anyhow::ensure!(w.paused == 0, "{} paused run(s) wait for `docket resume`: see `docket batches`", w.paused);
    Ok(())
}

pub async fn wait(settings: &Settings, timeout: &str) -> anyhow::Result<Waited> {
    let limit = duration(timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let db = db(settings)?;
    let started = std::time::Instant::now();
    // The database's clock, so that "finished since" means the same thing as finished_at.
    let (since,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as("SELECT now()").fetch_one(&db.pool).await?;
    let mut quiet = 0;
    let mut last = String::new();
    loop {
        let (active, parked, paused, done): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE finished_at IS NULL AND NOT parked AND NOT docket.paused(batch, patient_id)),
                    count(*) FILTER (WHERE finished_at IS NULL AND parked),
                    count(*) FILTER (WHERE finished_at IS NULL AND NOT parked AND docket.paused(batch, patient_id)),
                    count(*) FILTER (WHERE finished_at >= $1)
             FROM docket.runs",
        )
        .bind(since)
        .fetch_one(&db.pool)
        .await?;
        let waiting = intake_depth(settings).await?;
        let mut parked_note = if parked > 0 { format!(", {parked} parked") } else { String::new() };
        if paused > 0 {
            parked_note.push_str(&format!(", {paused} paused"));
        }
        let line = format!(
            "{active} runs in progress{parked_note}, {done} finished since the wait began, {waiting} requests waiting"
        );
        if line != last {
            println!("[{:>5}s] {line}", started.elapsed().as_secs());
            last = line;
        }
        // Three quiet polls in a row: nothing is between intake and a run.
        // Parked runs move only when an operator acts: not worth waiting for.
        quiet = if active == 0 && waiting == 0 { quiet + 1 } else { 0 };
        if quiet >= 3 {
            if parked > 0 {
                println!("{parked} run(s) are parked and wait for an operator: `docket parked list` shows why");
            }
            if paused > 0 {
                println!("{paused} run(s) are paused and go on after `docket resume`: `docket batches` shows them");
            }
            return Ok(Waited { parked, paused });
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
    let task = tracker(settings)?.task(&task_id).await.map_err(|e| {
        let hint = match e {
            docket_shared::StageError::Permanent(_) => "",
            _ => {
                "\n(scripts/demo stops the stubs when it ends: `scripts/stack up` starts them again, with their state)"
            }
        };
        anyhow::anyhow!("cannot read task {task_id} from TaskTracker at {}: {e}{hint}", settings.tasktracker_url)
    })?;
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

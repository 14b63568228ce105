//! `docket batches` and `docket status --batch NAME`: each batch's runs by
//! where they are, and when it will be done (from the work left and the
//! budgets; the bound that sets it is named).

use std::time::Duration;

use chrono::Utc;
use docket_shared::{
    Settings,
    db::Db,
    run::{
        Priority,
        progress::{self, Progress},
    },
};

fn eta_text(p: &Progress) -> String {
    let c = &p.counts;
    if let Some(at) = c.finished_at {
        return format!("done at {}", at.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    match p.eta {
        Some((left, bound)) => {
            let at = Utc::now() + chrono::Duration::from_std(left).unwrap_or_default();
            format!("in {} (at {} UTC), bound: {}", human(left), at.format("%H:%M:%S"), bound.as_str())
        }
        None if c.paused > 0 => "paused".into(),
        None if c.parked > 0 => "waiting for an operator (parked runs)".into(),
        None => "-".into(),
    }
}

pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub async fn list(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    let all = progress::batches(&db.pool, settings, None).await?;
    if all.is_empty() {
        println!("no batches yet: publish requests with `docket publish --batch NAME …`");
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:>6} {:>8} {:>8} {:>7} {:>9} {:>7} {:>7} {:>9}  estimated finish",
        "batch", "priority", "runs", "waiting", "working", "found", "not found", "failed", "paused", "cancelled"
    );
    for p in &all {
        let c = &p.counts;
        println!(
            "{:<24} {:<8} {:>6} {:>8} {:>8} {:>7} {:>9} {:>7} {:>7} {:>9}  {}",
            c.batch,
            Priority::from_rank(c.priority).as_str(),
            c.runs,
            c.waiting,
            c.in_progress,
            c.found,
            c.not_found,
            c.failed_documents,
            c.paused,
            c.cancelled,
            eta_text(p)
        );
    }
    println!("\n(failed: documents that could not be converted; working: searched, not yet reported)");
    Ok(())
}

pub async fn show(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    let Some(p) = progress::batches(&db.pool, settings, Some(name)).await?.into_iter().next() else {
        anyhow::bail!("no batch {name:?}; `docket batches` lists them");
    };
    let c = &p.counts;
    let paused: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT at FROM docket.pauses WHERE scope = 'batch' AND name = $1")
            .bind(name)
            .fetch_optional(&db.pool)
            .await?;
    println!("batch       {}", c.batch);
    println!("priority    {}", Priority::from_rank(c.priority));
    println!("runs        {} (first request {})", c.runs, c.created_at.map(|t| t.to_rfc3339()).unwrap_or_default());
    println!("waiting     {} for their task or search", c.waiting);
    println!("working     {} searched, not yet reported", c.in_progress);
    println!(
        "finished    {} found, {} not found, {} cancelled, {} abandoned",
        c.found, c.not_found, c.cancelled, c.abandoned
    );
    println!("documents   {} could not be converted; {} waiting or converting", c.failed_documents, c.documents_left);
    match paused {
        Some(at) => {
            println!("paused      since {} ({} runs); `docket resume --batch {name}`", at.to_rfc3339(), c.paused)
        }
        None if c.paused > 0 => println!("paused      {} runs (by a patient or everything pause)", c.paused),
        None => {}
    }
    if c.parked > 0 {
        println!("parked      {} runs wait for an operator: `docket parked list`", c.parked);
    }
    println!("finish      {}", eta_text(&p));
    let errors: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT patient_id, state, last_error FROM docket.runs
         WHERE batch = $1 AND finished_at IS NULL AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 5",
    )
    .bind(name)
    .fetch_all(&db.pool)
    .await?;
    if !errors.is_empty() {
        println!("recent errors");
        for (pid, state, error) in errors {
            println!("  {pid:<20} {state:<10} {error}");
        }
    }
    Ok(())
}

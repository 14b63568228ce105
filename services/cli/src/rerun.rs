//! `docket rerun`: new runs for patients whose last run finished and matches
//! the filters ("the runs whose documents failed during last night's
//! outage": `--since 12h --reason "timed out"`). Each gets a new request in
//! its old batch, at its old priority unless one is given.

use std::time::Duration;

use docket_shared::{Settings, db::Db, messages::PatientRequest, run::Priority};

use crate::publish;

/// Which finished runs to run again. Filters combine; at least one is needed.
pub struct Filter {
    pub ids: Vec<String>,
    pub batch: Option<String>,
    /// Text in a document's failure reason or the run's last error.
    pub reason: Option<String>,
    /// Finished no longer ago than this.
    pub since: Option<Duration>,
    /// Only runs that were cancelled.
    pub cancelled: bool,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.batch.is_none() && self.reason.is_none() && self.since.is_none() && !self.cancelled
    }
}

pub async fn run(settings: &Settings, filter: Filter, priority: Option<Priority>, dry_run: bool) -> anyhow::Result<()> {
    anyhow::ensure!(!filter.is_empty(), "say which runs: patient IDs, --batch, --reason, --since or --cancelled");
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    let matched: Vec<(String, String, i16)> = sqlx::query_as(
        "SELECT patient_id, batch, priority FROM (
             SELECT DISTINCT ON (patient_id) * FROM docket.runs ORDER BY patient_id, created_at DESC) last
         WHERE finished_at IS NOT NULL
           AND (cardinality($1::text[]) = 0 OR patient_id = ANY($1))
           AND ($2::text IS NULL OR batch = $2)
           AND ($3::float8 IS NULL OR finished_at >= now() - make_interval(secs => $3))
           AND (NOT $4 OR cancelled_at IS NOT NULL)
           AND ($5::text IS NULL OR last_error ILIKE '%' || $5 || '%' OR EXISTS (
                 SELECT 1 FROM docket.documents d
                 WHERE d.run_id = last.run_id AND d.state = 'failed' AND d.reason ILIKE '%' || $5 || '%'))
         ORDER BY finished_at",
    )
    .bind(&filter.ids)
    .bind(&filter.batch)
    .bind(filter.since.map(|d| d.as_secs_f64()))
    .bind(filter.cancelled)
    .bind(&filter.reason)
    .fetch_all(&db.pool)
    .await?;
    if matched.is_empty() {
        println!("no finished run matches; `docket batches` and `docket status ID` show what there is");
        return Ok(());
    }
    if dry_run {
        for (pid, batch, rank) in &matched {
            println!("{pid:<24} batch {batch}, {}", priority.unwrap_or(Priority::from_rank(*rank)));
        }
        println!("{} run{} would run again (without --dry-run)", matched.len(), plural(matched.len()));
        return Ok(());
    }
    let requests: Vec<PatientRequest> = matched
        .iter()
        .map(|(pid, batch, rank)| PatientRequest {
            patient_id: pid.clone(),
            batch: Some(batch.clone()),
            priority: Some(priority.unwrap_or(Priority::from_rank(*rank)).as_str().to_string()),
        })
        .collect();
    let n = publish::publish(settings, &requests).await?;
    println!("published {n} request{} to run again", plural(n));
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

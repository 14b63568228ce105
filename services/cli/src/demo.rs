//! `docket demo`: the main job in one command, against running services.

use docket_shared::Settings;

use crate::{publish, seed, status};

pub async fn run(settings: &Settings, n: u32) -> anyhow::Result<()> {
    seed::demo(settings, n).await?;
    let ids: Vec<String> = (1..=n).map(seed::demo_id).collect();
    let requests: Vec<_> = ids
        .iter()
        .map(|id| docket_shared::messages::PatientRequest { patient_id: id.clone(), ..Default::default() })
        .collect();
    publish::publish(settings, &requests).await?;
    println!("published {n} requests; waiting for their reports");
    let waited = status::wait(settings, "2h").await?;
    let tracker = status::tracker(settings)?;
    let db = docket_shared::db::Db::connect_lazy(&settings.database_url, 2)?;
    println!();
    for id in &ids {
        let task_id: Option<String> = sqlx::query_scalar(
            "SELECT task_id FROM docket.runs WHERE patient_id = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .flatten();
        match task_id {
            Some(task_id) => match tracker.task(&task_id).await {
                Ok(task) => status::print_task(&task),
                Err(e) => println!("{id}: could not read task {task_id}: {e}"),
            },
            None => println!("{id}: no task (see `docket status {id}`)"),
        }
    }
    anyhow::ensure!(
        waited.parked == 0,
        "{} run(s) are parked and wait for an operator: `docket runs` and `docket parked list` show why",
        waited.parked
    );
    Ok(())
}

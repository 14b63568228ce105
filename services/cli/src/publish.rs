//! Publishing requests exactly as anyone else would: `{"patient_id": …}` to
//! the `patients` queue through the default exchange, persistent, confirmed.

use std::time::Duration;

use docket_shared::{
    Settings,
    broker::{Broker, topology::queues},
    messages::{PatientRequest, valid_patient_id},
    run::{Priority, invalid_batch},
};
use lapin::{BasicProperties, options::BasicPublishOptions, options::ConfirmSelectOptions};

use crate::seed::demo_id;

/// What to publish: patient IDs, and the batch and priority they go in.
pub struct Publish {
    pub ids: Vec<String>,
    pub file: Option<std::path::PathBuf>,
    pub demo: Option<u32>,
    pub batch: Option<String>,
    pub priority: Option<String>,
}

pub async fn run(settings: &Settings, what: Publish) -> anyhow::Result<()> {
    let Publish { mut ids, file, demo, batch, priority } = what;
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        ids.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    if let Some(n) = demo {
        ids.extend((1..=n).map(demo_id));
    }
    anyhow::ensure!(!ids.is_empty(), "nothing to publish: give patient IDs, --file or --demo");
    if let Some(bad) = ids.iter().find(|id| !valid_patient_id(id)) {
        // Published anyway would only be parked; say so now instead.
        anyhow::bail!("{bad:?} is not a patient ID (1 to 64 ASCII letters, digits, '-' or '_')");
    }
    if let Some(why) = batch.as_deref().and_then(invalid_batch) {
        anyhow::bail!("--batch: {why}");
    }
    let priority = priority.map(|p| Priority::parse(&p).map_err(|e| anyhow::anyhow!("--priority: {e}"))).transpose()?;
    let requests: Vec<PatientRequest> = ids
        .iter()
        .map(|id| PatientRequest {
            patient_id: id.clone(),
            batch: batch.clone(),
            priority: priority.map(|p| p.as_str().to_string()),
        })
        .collect();
    let n = publish(settings, &requests).await?;
    let batch = batch.map(|b| format!(" in batch {b}")).unwrap_or_default();
    let priority = priority.map(|p| format!(", {p}")).unwrap_or_default();
    let queue = requests.first().map_or(queues::PATIENTS, intake_queue);
    println!("published {n} request{}{batch}{priority} to the {queue} queue", if n == 1 { "" } else { "s" });
    Ok(())
}

/// Urgent requests go to the intake's urgent lane, ahead of whatever waits
/// in `patients`; everything else to `patients`.
pub fn intake_queue(request: &PatientRequest) -> &'static str {
    match request.priority.as_deref().map(Priority::parse) {
        Some(Ok(Priority::Urgent)) => queues::PATIENTS_URGENT,
        _ => queues::PATIENTS,
    }
}

pub async fn publish(settings: &Settings, requests: &[PatientRequest]) -> anyhow::Result<usize> {
    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    for chunk in requests.chunks(500) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for request in chunk {
            let body = serde_json::to_vec(request)?;
            let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
            let options = BasicPublishOptions { mandatory: true, ..Default::default() };
            let queue = intake_queue(request);
            confirms.push(channel.basic_publish("".into(), queue.into(), options, &body, props).await?);
        }
        let results = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(confirms)).await?;
        for r in results {
            let confirmation = r?;
            anyhow::ensure!(
                matches!(confirmation, lapin::Confirmation::Ack(None)),
                "the broker did not take a request (is the patients queue declared? start a service first)"
            );
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(requests.len())
}

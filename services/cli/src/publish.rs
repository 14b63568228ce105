//! Publishing requests exactly as anyone else would: `{"patient_id": …}` to
//! the `patients` queue through the default exchange, persistent, confirmed.

use std::time::Duration;

use docket_shared::{
    Settings,
    broker::{Broker, topology::queues},
    messages::{PatientRequest, valid_patient_id},
};
use lapin::{BasicProperties, options::BasicPublishOptions, options::ConfirmSelectOptions};

use crate::seed::demo_id;

pub async fn run(
    settings: &Settings,
    mut ids: Vec<String>,
    file: Option<std::path::PathBuf>,
    demo: Option<u32>,
) -> anyhow::Result<()> {
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
    let n = publish(settings, &ids).await?;
    println!("published {n} request{} to the patients queue", if n == 1 { "" } else { "s" });
    Ok(())
}

pub async fn publish(settings: &Settings, ids: &[String]) -> anyhow::Result<usize> {
    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    for chunk in ids.chunks(500) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for id in chunk {
            let body = serde_json::to_vec(&PatientRequest { patient_id: id.clone() })?;
            let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
            let options = BasicPublishOptions { mandatory: true, ..Default::default() };
            confirms.push(channel.basic_publish("".into(), queues::PATIENTS.into(), options, &body, props).await?);
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
    Ok(ids.len())
}

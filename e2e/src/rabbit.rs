//! RabbitMQ from the test's side: a vhost per test through the management
//! API, publishing raw bodies, and reading what was parked.

use std::time::Duration;

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};

pub fn management_url() -> String {
    std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a plain HTTP client builds")
}

pub async fn create_vhost(name: &str) -> anyhow::Result<()> {
    let base = management_url();
    let c = http();
    let r = c.put(format!("{base}/api/vhosts/{name}")).basic_auth("guest", Some("guest")).send().await?;
    anyhow::ensure!(r.status().is_success(), "creating vhost {name}: {} (is rabbitmq_management enabled?)", r.status());
    let perms = serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" });
    let r = c
        .put(format!("{base}/api/permissions/{name}/guest"))
        .basic_auth("guest", Some("guest"))
        .json(&perms)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "granting guest on {name}: {}", r.status());
    Ok(())
}

pub async fn delete_vhost(name: &str) -> anyhow::Result<()> {
    http().delete(format!("{}/api/vhosts/{name}", management_url())).basic_auth("guest", Some("guest")).send().await?;
    Ok(())
}

/// Test vhosts (named `docket_t_<unix seconds>_…`) left by crashed runs more than two hours ago.
pub async fn stale_vhosts() -> anyhow::Result<Vec<String>> {
    let list: Vec<serde_json::Value> = http()
        .get(format!("{}/api/vhosts", management_url()))
        .basic_auth("guest", Some("guest"))
        .send()
        .await?
        .json()
        .await?;
    Ok(list.iter().filter_map(|v| v["name"].as_str()).filter(|n| crate::env::is_stale(n)).map(String::from).collect())
}

pub fn amqp_url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")
}

pub async fn connect(vhost: &str) -> anyhow::Result<Connection> {
    Ok(Connection::connect(&amqp_url(vhost), ConnectionProperties::default()).await?)
}

/// Publishes `body` to `queue` through the default exchange, as a person
/// would from the management UI (no content type, no headers). Mandatory:
/// a message no queue takes is an error, never silently dropped.
pub async fn publish_raw(vhost: &str, queue: &str, body: &[u8]) -> anyhow::Result<()> {
    let conn = connect(vhost).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let props = BasicProperties::default().with_delivery_mode(2);
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm = ch.basic_publish("".into(), queue.into(), options, body, props).await?.await?;
    let _ = conn.close(200, "done".into()).await;
    anyhow::ensure!(matches!(confirm, lapin::Confirmation::Ack(None)), "no queue {queue} took the message");
    Ok(())
}

/// Publishes many bodies to `queue` on one connection, confirmed together.
pub async fn publish_many(vhost: &str, queue: &str, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let conn = connect(vhost).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut confirms = Vec::with_capacity(bodies.len());
    for body in bodies {
        let props = BasicProperties::default().with_delivery_mode(2);
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        confirms.push(ch.basic_publish("".into(), queue.into(), options, body, props).await?);
    }
    for confirm in futures::future::join_all(confirms).await {
        anyhow::ensure!(matches!(confirm?, lapin::Confirmation::Ack(None)), "no queue {queue} took a message");
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Waits until a stage has declared the topology (the queue exists).
pub async fn wait_for_queue(vhost: &str, queue: &str) {
    crate::wait::eventually(Duration::from_secs(60), "the topology to be declared", || async {
        depth(vhost, queue).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await
}

/// Messages ready in a queue.
pub async fn depth(vhost: &str, queue: &str) -> anyhow::Result<u32> {
    let conn = connect(vhost).await?;
    let ch = conn.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    let q = ch.queue_declare(queue.into(), passive, FieldTable::default()).await?;
    let _ = conn.close(200, "done".into()).await;
    Ok(q.message_count())
}

/// Every parked message as (reason, body), left parked.
pub async fn parked(vhost: &str) -> anyhow::Result<Vec<(String, String)>> {
    let conn = connect(vhost).await?;
    let ch = conn.create_channel().await?;
    let mut out = Vec::new();
    while let Some(got) =
        ch.basic_get(docket_shared::broker::topology::PARKED.into(), BasicGetOptions::default()).await?
    {
        let d = got.delivery;
        let reason = docket_shared::broker::consume::parked_reason(d.properties.headers().as_ref());
        out.push((reason, String::from_utf8_lossy(&d.data).into_owned()));
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(out)
}

/// How many client connections the vhost has (as the management API last saw).
pub async fn connections(vhost: &str) -> anyhow::Result<usize> {
    let list: Vec<serde_json::Value> = http()
        .get(format!("{}/api/vhosts/{vhost}/connections", management_url()))
        .basic_auth("guest", Some("guest"))
        .send()
        .await?
        .json()
        .await?;
    Ok(list.len())
}

/// Closes every client connection of the vhost from the broker's side, as a
/// broker restart or a network cut would.
pub async fn close_connections(vhost: &str) -> anyhow::Result<usize> {
    let c = http();
    let base = management_url();
    let list: Vec<serde_json::Value> = c
        .get(format!("{base}/api/vhosts/{vhost}/connections"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await?
        .json()
        .await?;
    let mut closed = 0;
    for conn in &list {
        let Some(name) = conn["name"].as_str() else { continue };
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        c.delete(format!("{base}/api/connections/{encoded}"))
            .basic_auth("guest", Some("guest"))
            .header("X-Reason", "test: connection cut")
            .send()
            .await?;
        closed += 1;
    }
    Ok(closed)
}

//! RabbitMQ from the test's side: a vhost per test through the management
//! API, publishing raw bodies, and reading what was parked. A test's vhost
//! lives on the machine's broker unless the test names another one (a
//! private node or cluster it may stop) with [`Target`].

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};

pub fn management_url() -> String {
    std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".into())
}

/// The broker a test's vhost lives on: its nodes' AMQP addresses
/// (`host:port`) and their management URLs, in the same order.
#[derive(Clone, Debug)]
pub struct Target {
    pub nodes: Vec<String>,
    pub management: Vec<String>,
}

impl Target {
    /// The machine's own RabbitMQ.
    pub fn machine() -> Target {
        Target { nodes: vec!["127.0.0.1:5672".into()], management: vec![management_url()] }
    }
}

/// Vhosts that live elsewhere than on the machine's broker (vhost names are
/// unique per test, so tests in one process do not see each other's).
static TARGETS: LazyLock<Mutex<HashMap<String, Target>>> = LazyLock::new(Mutex::default);

/// Puts `vhost` on `target` (before [`create_vhost`]).
pub fn set_target(vhost: &str, target: Target) {
    TARGETS.lock().expect("the targets lock is never poisoned").insert(vhost.to_string(), target);
}

pub fn target(vhost: &str) -> Target {
    TARGETS.lock().expect("the targets lock is never poisoned").get(vhost).cloned().unwrap_or_else(Target::machine)
}

/// Runs a management call against each node of the vhost's broker in turn
/// until one answers (a node of a cluster may be down).
async fn on_management<T, F, Fut>(vhost: &str, call: F) -> anyhow::Result<T>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = anyhow::anyhow!("no management URL");
    for base in target(vhost).management {
        match call(base).await {
            Ok(value) => return Ok(value),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a plain HTTP client builds")
}

pub async fn create_vhost(name: &str) -> anyhow::Result<()> {
    on_management(name, |base| create_vhost_on(base, name)).await
}

async fn create_vhost_on(base: String, name: &str) -> anyhow::Result<()> {
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
    on_management(name, |base| async move {
        http().delete(format!("{base}/api/vhosts/{name}")).basic_auth("guest", Some("guest")).send().await?;
        Ok(())
    })
    .await
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

/// `AMQP_URL` for the vhost: one URL per node of its broker, comma-separated.
pub fn amqp_url(vhost: &str) -> String {
    target(vhost).nodes.iter().map(|node| format!("amqp://guest:guest@{node}/{vhost}")).collect::<Vec<_>>().join(",")
}

/// A connection to the first node of the vhost's broker that takes one.
pub async fn connect(vhost: &str) -> anyhow::Result<Connection> {
    let mut last = anyhow::anyhow!("no broker node");
    for node in target(vhost).nodes {
        let url = format!("amqp://guest:guest@{node}/{vhost}");
        match tokio::time::timeout(Duration::from_secs(5), Connection::connect(&url, ConnectionProperties::default()))
            .await
        {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last = e.into(),
            Err(_) => last = anyhow::anyhow!("{node} did not answer"),
        }
    }
    Err(last)
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
    let base = target(vhost).management[0].clone();
    let list: Vec<serde_json::Value> = http()
        .get(format!("{base}/api/vhosts/{vhost}/connections"))
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
    let base = target(vhost).management[0].clone();
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

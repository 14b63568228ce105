//! RabbitMQ: the connection supervisor (connect, declare, consume; on any
//! failure rebuild everything with capped backoff), publishing, topology and
//! the consume loop.
//!
//! We own the reconnect rather than use lapin's opt-in auto-recovery: an ack
//! for a delivery from before a reconnect does nothing anyway, so a clean
//! rebuild (new connection, new channels, in-flight work dropped and
//! redelivered) is both simpler and what actually happens on the wire.
//!
//! `AMQP_URL` may list the nodes of a cluster. Each connection attempt goes
//! round the list from the node after the one last used (a random one at
//! first, so replicas spread), so a service whose node dies is on another
//! within a second; the quorum queues' surviving replicas deliver again
//! what was unacked on the dead connection.

pub mod consume;
pub mod dead;
pub mod message;
pub mod publish;
pub mod topology;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use lapin::{Connection, ConnectionProperties, options::ConfirmSelectOptions};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use consume::{Consumer, Handler, consumer};
pub use message::{Meta, Outgoing};
pub use publish::{PublishError, Publisher};

use crate::settings::{Settings, amqp_address};

/// How long one node may take to accept a connection before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Broker {
    urls: Arc<Vec<crate::settings::Secret>>,
    /// Where in `urls` the next connection attempt starts.
    next: Arc<AtomicUsize>,
    name: String,
    pub publisher: Publisher,
    connection: Arc<RwLock<Option<Arc<Connection>>>>,
}

impl Broker {
    pub fn new(settings: &Settings, name: &str) -> Broker {
        Broker {
            next: Arc::new(AtomicUsize::new(rand::random_range(0..settings.amqp_urls.len().max(1)))),
            urls: Arc::new(settings.amqp_urls.clone()),
            name: name.to_string(),
            publisher: Publisher::new(settings.delay_tiers.clone()),
            connection: Arc::default(),
        }
    }

    /// Opens a connection to the first node that answers, going round the
    /// list once from where the last attempt left off (also for tools like
    /// the CLI that need no supervisor).
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let count = self.urls.len();
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..count {
            let at = (start + i) % count;
            let url = self.urls[at].expose();
            let props = ConnectionProperties::default().with_connection_name(self.name.as_str().into());
            // A node that is down refuses at once; one that hangs must not
            // hold up the rest of the list.
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, props)).await;
            match attempt {
                Ok(Ok(conn)) => {
                    // Next time (this node lost, say) start with the one after it.
                    self.next.store(at + 1, Ordering::Relaxed);
                    if count > 1 {
                        info!(node = %amqp_address(url), "connected to broker node");
                    }
                    return Ok(conn);
                }
                Ok(Err(e)) => {
                    warn!(node = %amqp_address(url), error = %e, "broker node unavailable");
                    last = Some(anyhow::Error::from(e).context(format!("broker node {}", amqp_address(url))));
                }
                Err(_) => {
                    warn!(node = %amqp_address(url), timeout = ?CONNECT_TIMEOUT, "broker node did not answer");
                    last = Some(anyhow::anyhow!(
                        "broker node {} did not answer within {CONNECT_TIMEOUT:?}",
                        amqp_address(url)
                    ));
                }
            }
        }
        self.next.store(start + 1, Ordering::Relaxed);
        Err(last.unwrap_or_else(|| anyhow::anyhow!("AMQP_URL lists no broker")))
    }

    /// The supervisor's current connection, for side tasks that need a
    /// channel of their own (the hold drainers).
    pub async fn current(&self) -> Option<Arc<Connection>> {
        self.connection.read().await.clone()
    }

    /// Keeps a connection with every consumer running until `shutdown`.
    pub async fn supervise(
        &self,
        settings: &Settings,
        apis: &[&str],
        consumers: Vec<Arc<dyn Consumer>>,
        shutdown: CancellationToken,
        connected: impl Fn(bool),
    ) {
        let mut delay = Duration::from_millis(500);
        while !shutdown.is_cancelled() {
            let started = std::time::Instant::now();
            let result = self.session(settings, apis, &consumers, &shutdown, &connected).await;
            connected(false);
            self.publisher.set_channel(None).await;
            if let Some(conn) = self.connection.write().await.take() {
                let _ = conn.close(200, "session over".into()).await;
            }
            match result {
                Ok(()) => break,
                Err(e) => {
                    if started.elapsed() > Duration::from_secs(30) {
                        delay = Duration::from_millis(500);
                    }
                    warn!(error = %e, retry_in = ?delay, "broker connection lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn session(
        &self,
        settings: &Settings,
        apis: &[&str],
        consumers: &[Arc<dyn Consumer>],
        shutdown: &CancellationToken,
        connected: &impl Fn(bool),
    ) -> anyhow::Result<()> {
        let conn = Arc::new(self.connect().await?);
        topology::declare(&conn, settings, apis).await?;
        let publishing = conn.create_channel().await?;
        publishing.confirm_select(ConfirmSelectOptions::default()).await?;
        self.publisher.set_channel(Some(publishing)).await;
        *self.connection.write().await = Some(conn.clone());
        connected(true);
        info!("connected to the broker");

        // A session ends when any consumer fails (the connection is likely
        // gone) or when every consumer has drained after shutdown.
        let stop = shutdown.child_token();
        let mut loops = tokio::task::JoinSet::new();
        for (i, c) in consumers.iter().enumerate() {
            let tag = format!("{}-{}-{}", self.name, c.queue(), i);
            let (conn, c, stop, grace) = (conn.clone(), c.clone(), stop.clone(), settings.shutdown_grace);
            loops.spawn(async move { consume::consume(&conn, c, stop, grace, tag).await });
        }
        if consumers.is_empty() {
            shutdown.cancelled().await;
        }
        let broken = self.publisher.broken();
        loop {
            let failed = tokio::select! {
                done = loops.join_next() => match done {
                    None => return Ok(()),
                    Some(result) => match result.map_err(anyhow::Error::from).and_then(|r| r) {
                        Ok(()) => continue,
                        Err(e) => e,
                    },
                },
                _ = broken.notified() => anyhow::anyhow!("the publishing channel closed"),
            };
            // Stop the siblings too; their in-flight work is dropped and
            // the broker delivers it again.
            stop.cancel();
            loops.abort_all();
            return Err(failed);
        }
    }
}

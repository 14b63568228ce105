//! Publishing with confirms. One confirm-mode channel per connection, swapped
//! by the supervisor on reconnect; every publish is `mandatory` (a message no
//! queue would take comes back as an error instead of vanishing) and every
//! confirm wait has a timeout (a dead connection can leave it hanging until
//! the heartbeat notices).

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::BasicPublishOptions,
    types::{FieldTable, ShortString},
};
use tokio::sync::RwLock;

use super::{
    message::Outgoing,
    topology::{WORK_EXCHANGE, delay_name},
};
use crate::error::StageError;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused a message for {0} (nack)")]
    Nacked(String),
    #[error("no queue is bound for {0}; is the topology declared?")]
    Unroutable(String),
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

impl From<PublishError> for StageError {
    fn from(e: PublishError) -> StageError {
        StageError::transient(format!("publishing: {e}"))
    }
}

/// A raw message for the few places that route by hand (park, hold, replay).
pub struct Raw<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub headers: FieldTable,
    pub message_id: Option<String>,
}

#[derive(Clone)]
pub struct Publisher {
    channel: Arc<RwLock<Option<Channel>>>,
    tiers: Arc<Vec<Duration>>,
    /// Woken when the channel turns out to be closed, so the supervisor
    /// rebuilds the session instead of every publish failing from then on.
    broken: Arc<tokio::sync::Notify>,
}

impl Publisher {
    pub fn new(tiers: Vec<Duration>) -> Publisher {
        Publisher { channel: Arc::default(), tiers: Arc::new(tiers), broken: Arc::default() }
    }

    pub(crate) async fn set_channel(&self, channel: Option<Channel>) {
        let old = std::mem::replace(&mut *self.channel.write().await, channel);
        if let Some(old) = old {
            // Closed explicitly, see consume.rs.
            let _ = old.close(200, "replaced".into()).await;
        }
    }

    pub fn is_connected(&self) -> bool {
        self.channel.try_read().map(|c| c.as_ref().is_some_and(|ch| ch.status().connected())).unwrap_or(true)
    }

    pub(crate) fn broken(&self) -> Arc<tokio::sync::Notify> {
        self.broken.clone()
    }

    async fn current(&self) -> Result<Channel, PublishError> {
        let channel = self.channel.read().await.clone().ok_or(PublishError::NotConnected)?;
        if !channel.status().connected() {
            self.broken.notify_waiters();
            return Err(PublishError::NotConnected);
        }
        Ok(channel)
    }

    /// Reports channel failures to the supervisor on the way out.
    fn watch<T>(&self, result: Result<T, PublishError>) -> Result<T, PublishError> {
        if matches!(result, Err(PublishError::Broker(_) | PublishError::Timeout(_))) {
            self.broken.notify_waiters();
        }
        result
    }

    /// Picks the exchange for a message: straight to the work exchange when
    /// due (or due within half the smallest tier, which the consumer then
    /// sleeps), otherwise the largest delay tier that does not overshoot.
    fn route(&self, out: &Outgoing) -> String {
        let remaining = out.remaining();
        let smallest = self.tiers.first().copied().unwrap_or(Duration::from_secs(1));
        if remaining < smallest / 2 {
            return WORK_EXCHANGE.to_string();
        }
        let tier = self.tiers.iter().rev().find(|t| **t <= remaining).copied().unwrap_or(smallest);
        delay_name(tier)
    }

    pub async fn send(&self, out: &Outgoing) -> Result<(), PublishError> {
        self.send_all(std::slice::from_ref(out)).await
    }

    /// Publishes every message, pipelined, then waits for all confirms.
    pub async fn send_all(&self, outs: &[Outgoing]) -> Result<(), PublishError> {
        if outs.is_empty() {
            return Ok(());
        }
        let result = self.publish_all(outs).await;
        self.watch(result)
    }

    async fn publish_all(&self, outs: &[Outgoing]) -> Result<(), PublishError> {
        let channel = self.current().await?;
        let mut pending = Vec::with_capacity(outs.len());
        for out in outs {
            let exchange = self.route(out);
            let props = properties(out.headers(), Some(out.message_id.to_string()));
            let confirm = channel
                .basic_publish(exchange.as_str().into(), out.queue.as_str().into(), mandatory(), &out.body, props)
                .await?;
            pending.push((confirm, &out.queue));
        }
        let (confirms, queues): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let results = tokio::time::timeout(CONFIRM_TIMEOUT, join_all(confirms))
            .await
            .map_err(|_| PublishError::Timeout(CONFIRM_TIMEOUT))?;
        for (result, queue) in results.into_iter().zip(queues) {
            check(result?, queue)?;
        }
        Ok(())
    }

    pub async fn send_raw(&self, raw: Raw<'_>) -> Result<(), PublishError> {
        let result = self.publish_raw(raw).await;
        self.watch(result)
    }

    async fn publish_raw(&self, raw: Raw<'_>) -> Result<(), PublishError> {
        let channel = self.current().await?;
        let props = properties(raw.headers, raw.message_id);
        let confirm =
            channel.basic_publish(raw.exchange.into(), raw.routing_key.into(), mandatory(), raw.body, props).await?;
        let result = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| PublishError::Timeout(CONFIRM_TIMEOUT))??;
        check(result, raw.routing_key)
    }
}

fn mandatory() -> BasicPublishOptions {
    BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() }
}

fn properties(headers: FieldTable, message_id: Option<String>) -> BasicProperties {
    let props = BasicProperties::default()
        .with_delivery_mode(2) // persistent: survives a broker restart
        .with_content_type(ShortString::from("application/json"))
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
        .with_headers(headers);
    match message_id {
        Some(id) => props.with_message_id(id.as_str().into()),
        None => props,
    }
}

fn check(confirmation: Confirmation, queue: &str) -> Result<(), PublishError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable(queue.to_string())),
        Confirmation::Nack(_) => Err(PublishError::Nacked(queue.to_string())),
        // The supervisor always selects confirm mode; a channel without it
        // would mean a message published with no guarantee.
        Confirmation::NotRequested => Err(PublishError::Nacked(format!("{queue} (confirms off)"))),
    }
}

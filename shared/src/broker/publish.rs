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

/// The room left for one pass through a delay queue to end late: a few
/// milliseconds measured on a loaded two-core machine, with a margin.
pub const DELAY_HOP: Duration = Duration::from_millis(25);

/// The smallest delay tier (1 s when none is configured).
pub fn smallest_tier(tiers: &[Duration]) -> Duration {
    tiers.first().copied().unwrap_or(Duration::from_secs(1))
}

/// The delay tier a message due in `remaining` goes through; None when it
/// goes straight to its queue.
fn tier_for(remaining: Duration, tiers: &[Duration]) -> Option<Duration> {
    if goes_straight(remaining, tiers) {
        return None;
    }
    Some(tiers.iter().rev().find(|t| **t + DELAY_HOP <= remaining).copied().unwrap_or(smallest_tier(tiers)))
}

/// Whether a message due in `remaining` goes straight to its queue, where
/// the consumer sleeps until it is due, rather than through a delay tier:
/// when no tier ends at least a hop before it is due. The publisher and the
/// consumer (for a message that came out of a tier early) decide alike.
pub fn goes_straight(remaining: Duration, tiers: &[Duration]) -> bool {
    remaining < smallest_tier(tiers) + DELAY_HOP
}

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
    /// due within the smallest tier (and a hop: the consumer sleeps the
    /// rest, to the millisecond), otherwise the largest delay tier that ends
    /// at least a hop before the message is due. A pass through a delay
    /// queue ends a few milliseconds late (expiry at the queue's head,
    /// dead-lettering); a tier that ended exactly at the due time made every
    /// delayed message that late, and a remainder under the smallest tier
    /// went through it whole and came up to half that tier late.
    fn route(&self, out: &Outgoing) -> String {
        match tier_for(out.remaining(), &self.tiers) {
            None => WORK_EXCHANGE.to_string(),
            Some(tier) => delay_name(tier),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_delay_ends_in_the_consumer_never_past_its_due_time_in_a_tier() {
        let tiers = [ms(200), ms(1000), ms(5000)];
        // Under the smallest tier and a hop: straight, the consumer sleeps.
        for due in [0, 10, 100, 150, 199, 200, 224] {
            assert_eq!(tier_for(ms(due), &tiers), None, "{due} ms");
        }
        // Otherwise the largest tier that ends a hop before the due time.
        assert_eq!(tier_for(ms(225), &tiers), Some(ms(200)));
        assert_eq!(tier_for(ms(600), &tiers), Some(ms(200)));
        assert_eq!(tier_for(ms(1024), &tiers), Some(ms(200)));
        assert_eq!(tier_for(ms(1025), &tiers), Some(ms(1000)));
        assert_eq!(tier_for(ms(60_000), &tiers), Some(ms(5000)));
        // Hop by hop, each a few ms late, a 600 ms delay ends in the
        // consumer with time to spare, whatever the hops cost.
        for late in [0, 5, 20] {
            let mut left = ms(600);
            while let Some(tier) = tier_for(left, &tiers) {
                left = left.saturating_sub(tier + ms(late));
            }
            assert!(left > Duration::ZERO, "a hop of {late} ms late overshot");
            assert!(goes_straight(left, &tiers));
        }
    }
}

//! The hold queues: while an API's breaker is open, messages that need it
//! wait in `docket.hold.<api>` instead of bouncing through delay queues, so
//! an outage of any length costs the API nothing but the breaker's probes.
//! This drainer watches the breaker: half-open, it releases one message to
//! be the probe; closed, it moves every held message back to its work queue
//! at once, so work resumes within a second of recovery.

use std::{sync::Arc, time::Duration};

use lapin::{
    Channel,
    options::{BasicAckOptions, BasicGetOptions, BasicNackOptions},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{Api, breaker::Breaker};
use crate::{
    broker::{
        Broker,
        message::{H_QUEUE, header_text},
        publish::Raw,
        topology::{WORK_EXCHANGE, hold_name},
    },
    metrics::{ApiLabels, Metrics},
};

const TICK: Duration = Duration::from_millis(500);
/// Messages moved per tick while closed, so one tick never runs long.
const BATCH: usize = 500;

pub async fn drain(api: Api, broker: Broker, breaker: Breaker, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let queue = hold_name(api.as_str());
    let mut channel: Option<Channel> = None;
    let gauge = metrics.breaker_state.get_or_create(&ApiLabels { api: api.as_str() }).clone();
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.cancelled() => break,
        }
        let Ok((state, probe_free)) = breaker.state(api).await else { continue };
        gauge.set(state);
        let budget = match (state, probe_free) {
            (0, _) => BATCH,
            (1, true) => 1,
            _ => continue,
        };
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            channel = match broker.current().await {
                Some(conn) => conn.create_channel().await.ok(),
                None => None,
            };
        }
        let Some(ch) = channel.as_ref() else { continue };
        match release(&broker, ch, &queue, budget).await {
            Ok(0) => {}
            Ok(n) if budget == 1 => debug!(%api, n, "released a held message to probe the API"),
            Ok(n) => info!(%api, n, "circuit closed: released held messages"),
            Err(e) => {
                debug!(%api, error = %e, "moving held messages failed; will retry");
                channel = None;
            }
        }
    }
    if let Some(ch) = channel {
        let _ = ch.close(200, "shutting down".into()).await;
    }
}

/// Moves up to `budget` messages from the hold queue back to their work
/// queues; each is acked only after its republish is confirmed.
async fn release(broker: &Broker, ch: &Channel, queue: &str, budget: usize) -> anyhow::Result<usize> {
    let mut moved = 0;
    while moved < budget {
        let Some(got) = ch.basic_get(queue.into(), BasicGetOptions::default()).await? else { break };
        let delivery = got.delivery;
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let Some(target) = header_text(&headers, H_QUEUE) else {
            // Not ours to route; leave it for an operator in the hold queue.
            delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?;
            break;
        };
        let raw =
            Raw { exchange: WORK_EXCHANGE, routing_key: &target, body: &delivery.data, headers, message_id: None };
        broker.publisher.send_raw(raw).await?;
        delivery.ack(BasicAckOptions::default()).await?;
        moved += 1;
    }
    Ok(moved)
}

//! The broker's own dead-letters: a message over its delivery limit (its
//! consumer kept dying on it, SIGKILL included) lands in `docket.dead`. This
//! consumer gives it what a handler's park would: its run is marked parked
//! (and gives its DocEx job slot back), and the message goes to the parked
//! queue with a reason an operator can read.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::{AMQPValue, ShortString},
};
use tracing::warn;

use super::{
    consume::{Consumer, park},
    message::{H_RUN, header_text},
    topology::DEAD,
};
use crate::app::App;

pub struct DeadLetters(pub Arc<App>);

/// The queue a dead-lettered message came from, per the broker's record.
fn origin(delivery: &Delivery) -> String {
    let death =
        delivery.properties.headers().as_ref().and_then(|h| match h.inner().get(&ShortString::from("x-death")) {
            Some(AMQPValue::FieldArray(deaths)) => match deaths.as_slice().first() {
                Some(AMQPValue::FieldTable(t)) => header_text(t, "queue"),
                _ => None,
            },
            _ => None,
        });
    death.unwrap_or_else(|| delivery.routing_key.as_str().to_string())
}

impl Consumer for DeadLetters {
    fn queue(&self) -> &'static str {
        DEAD
    }
    fn prefetch(&self) -> u16 {
        16
    }
    fn process(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let app = &self.0;
            let queue = origin(&delivery);
            let reason = format!(
                "the broker gave up on it after {} deliveries: the {queue} consumer kept failing or dying on it",
                app.settings.delivery_limit
            );
            let run = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| header_text(h, H_RUN))
                .and_then(|s| uuid::Uuid::parse_str(&s).ok());
            warn!(%queue, run_id = ?run, "a message exceeded its delivery limit; parking it");
            match park(app, &delivery, &queue, &reason, run).await {
                Ok(()) => {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
                Err(e) => {
                    warn!(error = %e, "could not park a dead-lettered message; it stays in docket.dead");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
                }
            }
        })
    }
}

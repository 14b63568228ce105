//! The one consume loop: prefetch first, then one task per delivery; the
//! handler's result decides what happens to the message (ack, retry through
//! a delay tier, wait, hold, park), and the ack comes only after whatever
//! that needed is confirmed by the broker.

use std::{any::Any, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable},
};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, warn};
use uuid::Uuid;

use super::{
    message::{self, H_PARKED_AT, H_QUEUE, H_REASON, H_RUN, H_STAGE, Meta, Outgoing, now_ms},
    publish::{Raw, goes_straight},
    topology::{PARKED_EXCHANGE, hold_name},
};
use crate::{
    app::App,
    error::{StageError, StageResult},
    metrics::{MessageLabels, QueueLabels},
};

/// A stage's handler for one queue: typed input, one async `handle`.
pub trait Handler: Send + Sync + 'static {
    type Input: DeserializeOwned + Send;
    /// The queue it consumes.
    const QUEUE: &'static str;
    /// What a message should look like, for the reason a bad one is parked
    /// with (for queues that people publish to by hand).
    const SHAPE: &'static str = "";
    /// Messages in flight at once; `PREFETCH` overrides the default of 16.
    fn prefetch(&self, app: &App) -> u16 {
        app.settings.prefetch.unwrap_or(16)
    }
    fn handle(&self, input: Self::Input, meta: &Meta) -> impl Future<Output = StageResult> + Send;
}

/// A handler with its input type erased, so one service can run several.
pub trait Consumer: Send + Sync + 'static {
    fn queue(&self) -> &'static str;
    fn prefetch(&self) -> u16;
    fn process(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()>;
}

pub struct Typed<H: Handler> {
    pub handler: H,
    pub app: Arc<App>,
}

/// Wraps a handler for the supervisor.
pub fn consumer<H: Handler>(app: &Arc<App>, handler: H) -> Arc<dyn Consumer> {
    let prefetch = handler.prefetch(app).max(1);
    app.metrics.prefetch.get_or_create(&QueueLabels { stage: app.service, queue: H::QUEUE }).set(i64::from(prefetch));
    Arc::new(Typed { handler, app: app.clone() })
}

impl<H: Handler> Consumer for Typed<H> {
    fn queue(&self) -> &'static str {
        H::QUEUE
    }
    fn prefetch(&self) -> u16 {
        self.handler.prefetch(&self.app).max(1)
    }
    fn process(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.run(delivery).await })
    }
}

impl<H: Handler> Typed<H> {
    async fn run(&self, delivery: Delivery) {
        let app = &self.app;
        let meta = Meta::from_headers(H::QUEUE, delivery.properties.headers().as_ref(), delivery.redelivered);
        let labels = QueueLabels { stage: app.service, queue: H::QUEUE };
        let inflight = app.metrics.inflight.get_or_create(&labels).clone();
        inflight.inc();
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "message",
            stage = app.service,
            queue = H::QUEUE,
            run_id = tracing::field::Empty,
            attempt = meta.attempt
        );
        if let Some(run) = meta.run_id {
            span.record("run_id", tracing::field::display(run));
        }
        let outcome = self.decide(&delivery, &meta).instrument(span.clone()).await;
        let settled = settle(app, &delivery, &meta, outcome).instrument(span).await;
        app.metrics
            .messages
            .get_or_create(&MessageLabels { stage: app.service, queue: H::QUEUE, outcome: settled })
            .inc();
        app.metrics.message_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        inflight.dec();
    }

    /// Everything up to the handler's result: early arrivals, decoding, the
    /// handler itself (a panic becomes a parked message, not a dead task).
    async fn decide(&self, delivery: &Delivery, meta: &Meta) -> Outcome {
        if let Some(early) = early_by(meta) {
            if !goes_straight(early, &self.app.settings.delay_tiers) {
                return Outcome::Redelay;
            }
            tokio::time::sleep(early).await;
        }
        let body = delivery.data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&delivery.data);
        let input: H::Input = match serde_json::from_slice(body) {
            Ok(input) => input,
            Err(e) => return Outcome::Failed(StageError::permanent(undecodable(H::QUEUE, H::SHAPE, &e))),
        };
        match AssertUnwindSafe(self.handler.handle(input, meta)).catch_unwind().await {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(panic) => {
                let why = panic_text(&panic);
                error!(why, "handler panicked; parking the message");
                Outcome::Failed(StageError::permanent(format!("the {} handler panicked: {why}", H::QUEUE)))
            }
        }
    }
}

enum Outcome {
    Done,
    Redelay,
    Failed(StageError),
}

/// Why a body could not be decoded, without serde's text, which quotes the
/// body (whoever published to `patients` may have put a name in it).
fn undecodable(queue: &str, shape: &str, e: &serde_json::Error) -> String {
    let expected = if shape.is_empty() { String::new() } else { format!(" (expected {shape})") };
    format!("not a valid {queue} message: {}{expected}", crate::error::json_fault(e))
}

fn early_by(meta: &Meta) -> Option<Duration> {
    let ms = meta.not_before_ms? - now_ms();
    (ms > 10).then(|| Duration::from_millis(ms as u64))
}

fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Capped exponential backoff with jitter (50–100 % of the step), so that a
/// crowd of failures does not come back in lockstep.
pub fn backoff(app: &App, attempt: u32) -> Duration {
    let base = app.settings.retry_base.as_secs_f64();
    let cap = app.settings.retry_max.as_secs_f64();
    let step = (base * 2f64.powi(attempt.min(30) as i32)).min(cap);
    Duration::from_secs_f64(step * (0.5 + rand::random::<f64>() * 0.5))
}

/// Publishes what the outcome needs, then acks. Returns the metric outcome.
async fn settle(app: &App, delivery: &Delivery, meta: &Meta, outcome: Outcome) -> &'static str {
    let again = |attempt: u32, delay: Duration| {
        Outgoing {
            queue: meta.queue.to_string(),
            body: delivery.data.clone(),
            run_id: meta.run_id,
            attempt,
            not_before_ms: None,
            message_id: Uuid::now_v7(),
        }
        .after(delay)
    };
    let (published, label) = match outcome {
        Outcome::Done => (Ok(()), "ok"),
        Outcome::Redelay => {
            let mut out = again(meta.attempt, Duration::ZERO);
            out.not_before_ms = meta.not_before_ms;
            (app.broker.publisher.send(&out).await.map_err(Into::into), "delayed")
        }
        Outcome::Failed(StageError::Transient { reason, after }) => {
            let delay = after.unwrap_or_else(|| backoff(app, meta.attempt));
            warn!(%reason, attempt = meta.attempt.saturating_add(1), retry_in = ?delay, "transient failure; will retry");
            app.note_error(meta.run_id, &reason).await;
            (
                app.broker.publisher.send(&again(meta.attempt.saturating_add(1), delay)).await.map_err(Into::into),
                "retried",
            )
        }
        Outcome::Failed(StageError::Wait { reason, after }) => {
            debug!(%reason, wait = ?after, "waiting through a delay queue");
            (app.broker.publisher.send(&again(meta.attempt, after)).await.map_err(Into::into), "delayed")
        }
        Outcome::Failed(StageError::Blocked { api }) => {
            debug!(%api, "circuit open; holding the message until it closes");
            app.note_error(meta.run_id, &format!("{api} unavailable; waiting for it to recover")).await;
            (hold(app, delivery, meta, api.as_str()).await, "held")
        }
        Outcome::Failed(StageError::Permanent(reason)) => {
            warn!(%reason, "parking the message");
            (park(app, delivery, meta.queue, &reason, meta.run_id).await, "parked")
        }
        Outcome::Failed(StageError::Stopped(reason)) => {
            debug!(%reason, "dropping the message; the run's state brings its step back on resume");
            (Ok(()), "stopped")
        }
    };
    match published {
        Ok(()) => {
            if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                // The channel is gone; the broker will deliver the message
                // again, and handlers are idempotent.
                debug!(error = %e, "ack failed; the message will be redelivered");
            }
            label
        }
        Err(e) => {
            warn!(error = %e, "could not publish the message's next step; returning it to its queue");
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
            "returned"
        }
    }
}

fn with_header(headers: Option<&FieldTable>, extra: &[(&str, &str)]) -> FieldTable {
    let mut h = headers.cloned().unwrap_or_default();
    for (k, v) in extra {
        h.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    h
}

/// Puts a message in the parked queue with its reason, origin and time;
/// once the broker has confirmed it, marks its run (if any) as parked.
pub async fn park(app: &App, delivery: &Delivery, queue: &str, reason: &str, run: Option<Uuid>) -> StageResult {
    // Every parked message gets an ID (its own, or a new one) to replay it by.
    let id = delivery.properties.message_id().as_ref().map(|s| s.to_string());
    park_body(app, &delivery.data, delivery.properties.headers().as_ref(), id, queue, reason, run).await
}

/// Parks `body` as a message for `queue` would be parked (for a run parked
/// by a waiting room, whose step has no message of its own).
pub async fn park_body(
    app: &App,
    body: &[u8],
    headers: Option<&FieldTable>,
    message_id: Option<String>,
    queue: &str,
    reason: &str,
    run: Option<Uuid>,
) -> StageResult {
    let at = chrono::Utc::now().to_rfc3339();
    let run_text = run.map(|r| r.to_string()).unwrap_or_default();
    let mut notes = vec![(H_REASON, reason), (H_QUEUE, queue), (H_STAGE, app.service), (H_PARKED_AT, at.as_str())];
    if run.is_some() {
        notes.push((H_RUN, run_text.as_str()));
    }
    let headers = with_header(headers, &notes);
    let id = message_id.unwrap_or_else(|| Uuid::now_v7().to_string());
    let raw = Raw { exchange: PARKED_EXCHANGE, routing_key: queue, body, headers, message_id: Some(id) };
    app.broker.publisher.send_raw(raw).await?;
    app.note_parked(run, reason).await;
    Ok(())
}

async fn hold(app: &App, delivery: &Delivery, meta: &Meta, api: &str) -> StageResult {
    let headers = with_header(delivery.properties.headers().as_ref(), &[(H_QUEUE, meta.queue)]);
    let queue = hold_name(api);
    let raw = Raw { exchange: "", routing_key: &queue, body: &delivery.data, headers, message_id: None };
    app.broker.publisher.send_raw(raw).await.map_err(Into::into)
}

/// Consumes one queue until shutdown (then drains in-flight handlers up to
/// the grace period) or until the channel fails (then in-flight handlers are
/// dropped: their acks could no longer reach the broker, and the broker
/// delivers their messages again).
pub(crate) async fn consume(
    connection: &Connection,
    consumer: Arc<dyn Consumer>,
    shutdown: CancellationToken,
    grace: Duration,
    tag: String,
) -> anyhow::Result<()> {
    let channel: Channel = connection.create_channel().await?;
    // qos before consume: prefetch is the only bound on what lapin buffers.
    channel.basic_qos(consumer.prefetch(), BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            consumer.queue().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!(queue = consumer.queue(), prefetch = consumer.prefetch(), "consuming");
    let mut inflight = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            next = deliveries.next() => match next {
                Some(Ok(delivery)) => { inflight.spawn(consumer.clone().process(delivery)); }
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the broker closed the consumer of {}", consumer.queue()),
            },
        }
    }
    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
    let drained = tokio::time::timeout(grace, async { while inflight.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            queue = consumer.queue(),
            left = inflight.len(),
            "grace period over; unfinished messages return to the queue"
        );
    }
    // Closed explicitly: a dropped channel closes itself asynchronously,
    // which races the connection's own close.
    let _ = channel.close(200, "shutting down".into()).await;
    Ok(())
}

/// Reads the reason a parked message carries (ours, or the broker's own
/// dead-letter record for a message over its delivery limit).
pub fn parked_reason(headers: Option<&FieldTable>) -> String {
    let Some(h) = headers else { return "no reason recorded".into() };
    if let Some(reason) = message::header_text(h, H_REASON) {
        return reason;
    }
    match h.inner().get(&lapin::types::ShortString::from("x-death")) {
        Some(AMQPValue::FieldArray(deaths)) => match deaths.as_slice().first() {
            Some(AMQPValue::FieldTable(death)) => format!(
                "dead-lettered by the broker ({}) from {}",
                message::header_text(death, "reason").unwrap_or_else(|| "unknown".into()),
                message::header_text(death, "queue").unwrap_or_else(|| "?".into()),
            ),
            _ => "dead-lettered by the broker".into(),
        },
        _ => "no reason recorded".into(),
    }
}

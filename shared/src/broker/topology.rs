//! The broker topology, declared idempotently by every process at start:
//! work queues behind one direct exchange, delay tiers that dead-letter back
//! to it, hold queues for open breakers, and the parked queue.
//!
//! ```text
//! publish ──► docket.work (direct, key = queue name) ──► patients, docket.task, … docket.report, docket.control
//! delay   ──► docket.delay.<ms> (fanout) ──► queue with TTL <ms> ──(dead-letter)──► docket.work
//! park    ──► docket.parked (fanout) ──► docket.parked
//! dead    ──► docket.dead (fanout) ──► docket.dead          (the broker's own dead-letters: a message
//!                                                            over its delivery limit; marked and parked)
//! hold    ──► default exchange ──► docket.hold.<api>        (moved back when the breaker closes)
//! ```

use std::time::Duration;

use lapin::{
    Channel, Connection, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, ShortString},
};

use crate::settings::Settings;

pub const WORK_EXCHANGE: &str = "docket.work";
pub const PARKED_EXCHANGE: &str = "docket.parked";
pub const PARKED: &str = "docket.parked";
pub const DEAD_EXCHANGE: &str = "docket.dead";
pub const DEAD: &str = "docket.dead";

/// The work queues, one per step. `patients` is the public intake queue,
/// `patients.urgent` its urgent lane.
pub mod queues {
    pub const PATIENTS: &str = "patients";
    /// Urgent requests: taken in ahead of a backlog waiting in `patients`
    /// (a queue is first in, first out; a lane of its own is how a request
    /// published after 3,000 others starts before them).
    pub const PATIENTS_URGENT: &str = "patients.urgent";
    pub const TASK: &str = "docket.task";
    /// Wake-ups for urgent runs entering the task room, served by a worker
    /// of their own, so they never wait for one busy with other runs.
    pub const TASK_URGENT: &str = "docket.task.urgent";
    pub const SEARCH: &str = "docket.search";
    /// Wake-ups for urgent runs entering the search room (as `TASK_URGENT`).
    pub const SEARCH_URGENT: &str = "docket.search.urgent";
    pub const STATUS: &str = "docket.status";
    pub const FETCH: &str = "docket.fetch";
    /// Urgent runs' downloads, ahead of the finished jobs waiting for theirs.
    pub const FETCH_URGENT: &str = "docket.fetch.urgent";
    pub const STORE: &str = "docket.store";
    pub const CONVERT: &str = "docket.convert";
    /// Urgent runs' documents: the convert stage serves this lane first.
    pub const CONVERT_URGENT: &str = "docket.convert.urgent";
    pub const REPORT: &str = "docket.report";
    /// Urgent runs' reports, ahead of a backlog (say, a cancelled batch's).
    pub const REPORT_URGENT: &str = "docket.report.urgent";
    /// The operator's controls (pause, resume, cancel) as messages.
    pub const CONTROL: &str = "docket.control";
    pub const ALL: [&str; 15] = [
        PATIENTS,
        PATIENTS_URGENT,
        TASK,
        TASK_URGENT,
        SEARCH,
        SEARCH_URGENT,
        STATUS,
        FETCH,
        FETCH_URGENT,
        STORE,
        CONVERT,
        CONVERT_URGENT,
        REPORT,
        REPORT_URGENT,
        CONTROL,
    ];
}

/// The name of the delay tier (exchange and queue) whose TTL is `ttl`.
pub fn delay_name(ttl: Duration) -> String {
    format!("docket.delay.{}", ttl.as_millis())
}

/// The hold queue of an outside API.
pub fn hold_name(api: &str) -> String {
    format!("docket.hold.{api}")
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Quorum queues: replicated, durable, and the only type that offers a
/// delivery limit and at-least-once dead-lettering (which needs
/// `reject-publish` overflow, or the broker silently falls back to at-most-once).
fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = vec![("x-queue-type", text("quorum")), ("x-overflow", text("reject-publish"))];
    args.extend(extra.iter().cloned());
    table(&args)
}

fn work_args(settings: &Settings) -> FieldTable {
    quorum(&[
        // A message that kills its consumer again and again (SIGKILL
        // included) is parked by the broker after this many deliveries.
        ("x-delivery-limit", AMQPValue::LongLongInt(settings.delivery_limit.into())),
        ("x-dead-letter-exchange", text(DEAD_EXCHANGE)),
        ("x-dead-letter-strategy", text("at-least-once")),
    ])
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() }
}

/// Declares everything. Safe to run concurrently from every replica.
pub async fn declare(conn: &Connection, settings: &Settings, apis: &[&str]) -> lapin::Result<()> {
    let channel = &declare_patients(conn, settings).await?;
    let none = FieldTable::default();
    channel.exchange_declare(WORK_EXCHANGE.into(), ExchangeKind::Direct, durable_exchange(), none.clone()).await?;
    channel.exchange_declare(PARKED_EXCHANGE.into(), ExchangeKind::Fanout, durable_exchange(), none.clone()).await?;
    channel.queue_declare(PARKED.into(), durable(), quorum(&[])).await?;
    bind(channel, PARKED, PARKED_EXCHANGE, "").await?;
    channel.exchange_declare(DEAD_EXCHANGE.into(), ExchangeKind::Fanout, durable_exchange(), none.clone()).await?;
    channel.queue_declare(DEAD.into(), durable(), quorum(&[])).await?;
    bind(channel, DEAD, DEAD_EXCHANGE, "").await?;

    for queue in queues::ALL {
        if queue != queues::PATIENTS {
            channel.queue_declare(queue.into(), durable(), work_args(settings)).await?;
        }
        bind(channel, queue, WORK_EXCHANGE, queue).await?;
    }

    for ttl in &settings.delay_tiers {
        let name = delay_name(*ttl);
        // A fanout exchange in front keeps the message's routing key (its
        // target queue), so one set of tiers serves every stage.
        channel.exchange_declare(name.as_str().into(), ExchangeKind::Fanout, durable_exchange(), none.clone()).await?;
        let args = quorum(&[
            ("x-message-ttl", AMQPValue::LongLongInt(ttl.as_millis() as i64)),
            ("x-dead-letter-exchange", text(WORK_EXCHANGE)),
            ("x-dead-letter-strategy", text("at-least-once")),
        ]);
        channel.queue_declare(name.as_str().into(), durable(), args).await?;
        bind(channel, &name, &name, "").await?;
    }

    for api in apis {
        channel.queue_declare(hold_name(api).as_str().into(), durable(), quorum(&[])).await?;
    }
    channel.close(200, "declared".into()).await
}

/// Declares `patients` and returns a usable channel. If someone created the
/// queue by hand (say, as a classic queue from the management UI) before the
/// first start, it is used as it is rather than refused; the failed declare
/// closed its channel, so a fresh one is returned.
async fn declare_patients(conn: &Connection, settings: &Settings) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    let declared = channel.queue_declare(queues::PATIENTS.into(), durable(), work_args(settings)).await;
    let Err(e) = declared else { return Ok(channel) };
    tracing::warn!(error = %e, "queue patients exists with other arguments; using it as it is");
    let channel = conn.create_channel().await?;
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queues::PATIENTS.into(), passive, FieldTable::default()).await?;
    Ok(channel)
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(queue.into(), exchange.into(), key.into(), QueueBindOptions::default(), FieldTable::default())
        .await
}

//! What travels: an outgoing message (small JSON, a target queue, when it may
//! be handled) and the headers docket reads back on delivery.

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use serde::Serialize;
use uuid::Uuid;

pub const H_ATTEMPT: &str = "x-docket-attempt";
pub const H_RUN: &str = "x-docket-run";
pub const H_NOT_BEFORE: &str = "x-docket-not-before";
pub const H_QUEUE: &str = "x-docket-queue";
pub const H_REASON: &str = "x-docket-reason";
pub const H_PARKED_AT: &str = "x-docket-parked-at";
pub const H_STAGE: &str = "x-docket-stage";

/// The longest a message may be told to wait.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Milliseconds since the Unix epoch, the clock of `not-before` headers.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A message to publish: `queue` is the work queue it is for; it is handled
/// no earlier than `not_before_ms` (through a delay tier when far enough).
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub queue: String,
    pub body: Vec<u8>,
    pub run_id: Option<Uuid>,
    pub attempt: u32,
    pub not_before_ms: Option<i64>,
    pub message_id: Uuid,
}

impl Outgoing {
    pub fn new(queue: &str, payload: &impl Serialize) -> Outgoing {
        Outgoing {
            queue: queue.to_string(),
            // Serialising our own message types cannot fail.
            body: serde_json::to_vec(payload).expect("message types serialise to JSON"),
            run_id: None,
            attempt: 0,
            not_before_ms: None,
            message_id: Uuid::now_v7(),
        }
    }

    pub fn run(mut self, run_id: Uuid) -> Outgoing {
        self.run_id = Some(run_id);
        self
    }

    /// Handle no earlier than `delay` from now (at most a day: nothing in
    /// docket waits longer, and a clock must not overflow).
    pub fn after(mut self, delay: Duration) -> Outgoing {
        let ms = delay.min(MAX_DELAY).as_millis() as i64;
        self.not_before_ms = (ms > 0).then(|| now_ms().saturating_add(ms));
        self
    }

    /// How long until it may be handled (zero when due).
    pub fn remaining(&self) -> Duration {
        let ms = self.not_before_ms.map_or(0, |nb| nb - now_ms());
        Duration::from_millis(ms.max(0) as u64)
    }

    pub fn headers(&self) -> FieldTable {
        let mut h = FieldTable::default();
        h.insert(H_ATTEMPT.into(), AMQPValue::LongLongInt(self.attempt.into()));
        h.insert(H_QUEUE.into(), AMQPValue::LongString(self.queue.as_str().into()));
        if let Some(run) = self.run_id {
            h.insert(H_RUN.into(), AMQPValue::LongString(run.to_string().as_str().into()));
        }
        if let Some(nb) = self.not_before_ms {
            h.insert(H_NOT_BEFORE.into(), AMQPValue::LongLongInt(nb));
        }
        h
    }
}

/// Reads a header as text, whatever AMQP string type carries it.
pub fn header_text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(&ShortString::from(key))? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Reads a header as an integer, whatever AMQP integer type carries it
/// (the management UI publishes numbers in several widths).
pub fn header_int(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(&ShortString::from(key))? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some((*n).into()),
        AMQPValue::ShortInt(n) => Some((*n).into()),
        AMQPValue::ShortShortInt(n) => Some((*n).into()),
        AMQPValue::LongUInt(n) => Some((*n).into()),
        AMQPValue::ShortUInt(n) => Some((*n).into()),
        AMQPValue::ShortShortUInt(n) => Some((*n).into()),
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// What the consume loop knows about a delivery besides its body.
#[derive(Clone, Debug)]
pub struct Meta {
    pub queue: &'static str,
    /// Failed attempts so far (0 on the first try); our own header, since
    /// `x-death` differs between broker versions.
    pub attempt: u32,
    pub run_id: Option<Uuid>,
    pub redelivered: bool,
    pub not_before_ms: Option<i64>,
}

impl Meta {
    pub fn from_headers(queue: &'static str, headers: Option<&FieldTable>, redelivered: bool) -> Meta {
        let empty = FieldTable::default();
        let h = headers.unwrap_or(&empty);
        Meta {
            queue,
            // Headers of `patients` messages come from anyone: bounded here.
            attempt: header_int(h, H_ATTEMPT).map_or(0, |n| n.clamp(0, 1_000_000) as u32),
            run_id: header_text(h, H_RUN).and_then(|s| Uuid::parse_str(&s).ok()),
            redelivered,
            not_before_ms: header_int(h, H_NOT_BEFORE)
                .map(|nb| nb.min(now_ms().saturating_add(MAX_DELAY.as_millis() as i64))),
        }
    }
}

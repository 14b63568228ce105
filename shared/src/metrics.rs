//! Every metric a docket process exports, registered once per process in one
//! struct. Names start with `pipeline_`; labels are low-cardinality (stage,
//! queue, api, outcome, kind), never run or patient IDs.

use std::sync::atomic::AtomicU64;

use crate::outside::Budget;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub stage: &'static str,
    pub queue: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub stage: &'static str,
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: &'static str,
    pub endpoint: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub api: &'static str,
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DocumentLabels {
    pub outcome: &'static str,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// A batch is an operator's label (a few per deployment), never a patient.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    pub batch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchStateLabels {
    pub batch: String,
    pub state: &'static str,
}

/// A pool of warm conversion workers (`doc` or `office`) and what befell
/// its workers (`started`; `failed`: retired because a document hung,
/// crashed or overran one; `recycled`: retired by the document count or the
/// memory rule).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub pool: &'static str,
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~9 min: handler times, outside calls, limiter waits and conversions.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

pub struct Metrics {
    registry: Registry,
    pub messages: Family<MessageLabels, Counter>,
    pub message_seconds: HistogramFamily<QueueLabels>,
    pub inflight: Family<QueueLabels, Gauge>,
    pub outside_requests: Family<RequestLabels, Counter>,
    pub outside_seconds: HistogramFamily<EndpointLabels>,
    pub limiter_wait: HistogramFamily<BudgetLabels>,
    pub limiter_deferred: Family<BudgetLabels, Counter>,
    pub limiter_late: Family<BudgetLabels, Counter>,
    pub breaker_state: Family<ApiLabels, Gauge>,
    pub documents: Family<DocumentLabels, Counter>,
    pub conversion_seconds: HistogramFamily<KindLabels>,
    pub converter_workers: Family<WorkerLabels, Counter>,
    pub converter_workers_idle: Family<PoolLabels, Gauge>,
    pub runs_started: Counter,
    pub runs_joined: Counter,
    pub runs_finished: Family<StatusLabels, Counter>,
    pub jobs_in_flight: Gauge,
    pub broker_connected: Gauge,
    pub outbox_pending: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub bytes_stored: Counter<u64, AtomicU64>,
    pub batch_runs: Family<BatchStateLabels, Gauge>,
    pub batch_eta_seconds: Family<BatchLabels, Gauge<f64, AtomicU64>>,
    /// The configured limits, so dashboards and alerts draw them from the
    /// services rather than from constants that drift from the settings.
    pub budget_limit: Family<BudgetLabels, Gauge<f64, AtomicU64>>,
    pub prefetch: Family<QueueLabels, Gauge>,
    pub docex_max_jobs: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pipeline");
        let m = Metrics {
            messages: Family::default(),
            message_seconds: Family::new_with_constructor(seconds_histogram),
            inflight: Family::default(),
            outside_requests: Family::default(),
            outside_seconds: Family::new_with_constructor(seconds_histogram),
            limiter_wait: Family::new_with_constructor(seconds_histogram),
            limiter_deferred: Family::default(),
            limiter_late: Family::default(),
            breaker_state: Family::default(),
            documents: Family::default(),
            conversion_seconds: Family::new_with_constructor(seconds_histogram),
            converter_workers: Family::default(),
            converter_workers_idle: Family::default(),
            runs_started: Counter::default(),
            runs_joined: Counter::default(),
            runs_finished: Family::default(),
            jobs_in_flight: Gauge::default(),
            broker_connected: Gauge::default(),
            outbox_pending: Gauge::default(),
            bytes_stored: Counter::default(),
            batch_runs: Family::default(),
            batch_eta_seconds: Family::default(),
            budget_limit: Family::default(),
            prefetch: Family::default(),
            docex_max_jobs: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("messages", "Messages handled, by outcome", m.messages.clone());
        r.register("message_duration_seconds", "Time to handle one message", m.message_seconds.clone());
        r.register("inflight_messages", "Messages being handled now", m.inflight.clone());
        r.register("outside_requests", "Requests to DocumentExchange and TaskTracker", m.outside_requests.clone());
        r.register("outside_request_duration_seconds", "Outside request latency", m.outside_seconds.clone());
        r.register("limiter_wait_seconds", "Time a caller waited for its reserved slot", m.limiter_wait.clone());
        r.register(
            "limiter_deferred",
            "Messages sent to a delay queue because their slot was far",
            m.limiter_deferred.clone(),
        );
        r.register(
            "limiter_late",
            "Reserved slots given up because the caller woke too late to send on time (LIMIT_LATE)",
            m.limiter_late.clone(),
        );
        r.register("breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", m.breaker_state.clone());
        r.register("documents", "Documents finished, converted or failed", m.documents.clone());
        r.register("conversion_duration_seconds", "Time of one conversion", m.conversion_seconds.clone());
        r.register(
            "converter_workers",
            "Warm conversion workers started, and retired as failed (a document hung, crashed or overran one) or recycled (document count, memory)",
            m.converter_workers.clone(),
        );
        r.register(
            "converter_workers_idle",
            "Warm conversion workers waiting for a document",
            m.converter_workers_idle.clone(),
        );
        r.register("runs_started", "Patient runs started", m.runs_started.clone());
        r.register("runs_joined", "Requests that joined a run in progress", m.runs_joined.clone());
        r.register("runs_finished", "Patient runs finished, by documents status", m.runs_finished.clone());
        r.register("docex_jobs_in_flight", "DocEx jobs between search and archive download", m.jobs_in_flight.clone());
        r.register("broker_connected", "1 when connected to RabbitMQ", m.broker_connected.clone());
        r.register("outbox_pending", "Messages committed but not yet published", m.outbox_pending.clone());
        r.register("bytes_stored", "Bytes written to the storage service", m.bytes_stored.clone());
        r.register(
            "batch_runs",
            "Runs of a batch by where they are (waiting, working, found, not_found, cancelled, paused, parked)",
            m.batch_runs.clone(),
        );
        r.register(
            "batch_eta_seconds",
            "Estimated seconds until a batch is done, from the work left and the budgets",
            m.batch_eta_seconds.clone(),
        );
        r.register(
            "budget_limit_per_second",
            "Configured outside budget, in requests per second (DOCEX_*_RATE, TASKTRACKER_RATE)",
            m.budget_limit.clone(),
        );
        r.register(
            "prefetch",
            "Configured messages in flight per consumer (PREFETCH, CONVERT_PREFETCH)",
            m.prefetch.clone(),
        );
        r.register(
            "docex_max_jobs",
            "Configured cap on DocEx jobs between search and download",
            m.docex_max_jobs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Exports the configured budgets and job cap (prefetch is set per consumer).
    pub fn set_limits(&self, s: &crate::settings::Settings) {
        for (budget, rate) in [
            (Budget::DocexSearch, s.docex_search_rate),
            (Budget::DocexStatus, s.docex_status_rate),
            (Budget::TaskTracker, s.tasktracker_rate),
        ] {
            let per_second = f64::from(rate.count) / rate.period.as_secs_f64();
            self.budget_limit.get_or_create(&BudgetLabels { budget: budget.as_str() }).set(per_second);
            // A series at zero from the start: a late wake-up is rare, and a
            // panel or alert should read "none" rather than "no data".
            self.limiter_late.get_or_create(&BudgetLabels { budget: budget.as_str() }).inc_by(0);
        }
        self.docex_max_jobs.set(i64::from(s.docex_max_jobs));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.registry).expect("encoding metrics into a String");
        out
    }
}

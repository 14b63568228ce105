//! The single gate of an outside API: breaker, budget, timeout and the
//! one place that decides which answers are retryable.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{RequestBuilder, Response, StatusCode};
use tracing::{debug, error, info, warn};

use super::{
    Api, Budget,
    breaker::{Breaker, Verdict},
    limiter::{Limiter, Rank, Reservation, Slot, TAKE_OVER_GUARD},
};
use crate::{
    error::{StageError, StageResult, json_fault},
    metrics::{BudgetLabels, EndpointLabels, Metrics, RequestLabels},
    run::Guard,
};

/// Slots in a row a caller may wake too late for before it backs off.
const LATE_TRIES: u32 = 3;
/// The least a caller that keeps waking late waits before trying again.
const LATE_BACKOFF: Duration = Duration::from_secs(1);

/// How a call takes its budget slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Reserve the next slot and hold the message while waiting for it, if
    /// it is within `LIMIT_MAX_HOLD`; otherwise wait through a delay queue.
    Hold,
    /// Take only the next slot (at most one interval away), never one
    /// further ahead: the low-priority side of a shared budget. DocEx
    /// searches yield to archive downloads, which may reserve far ahead, yet
    /// a search waiting for the next slot leaves no gap behind the last one.
    /// An urgent run's call reserves like `Hold`: behind the downloads
    /// already waiting, ahead of everything that comes after it.
    NextOnly,
}

impl Admission {
    /// The caller's place in the line. An urgent run's call may take over
    /// a slot reserved for other work: an urgent download goes ahead of
    /// every other download and search; an urgent search ahead of every
    /// other search, and behind the one download due next (downloads of
    /// runs already searched still go first), not behind the whole line of
    /// downloads the fetch replicas hold reservations for.
    fn rank(self, urgent: bool) -> Rank {
        match (self, urgent) {
            (Admission::Hold, true) => Rank { own: 0, takes_over: 2, behind_one: 0 },
            (Admission::NextOnly, true) => Rank { own: 1, takes_over: 3, behind_one: 2 },
            (Admission::Hold, false) => Rank { own: 2, takes_over: 0, behind_one: 0 },
            (Admission::NextOnly, false) => Rank { own: 3, takes_over: 0, behind_one: 0 },
        }
    }
}

#[derive(Clone)]
pub struct Gate {
    pub api: Api,
    pub http: reqwest::Client,
    pub breaker: Breaker,
    pub limiter: Limiter,
    pub max_hold: Duration,
    /// `LIMIT_LATE`: how long after its slot a caller may still send on it.
    pub late: Duration,
    /// Total timeout of one ordinary request (downloads use per-read only).
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Builds the HTTP client for an outside API: connect and per-read timeouts
/// here; each ordinary request adds a total timeout of its own.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .read_timeout(timeout)
        // Idle connections stay warm between sparse requests (one a minute
        // per replica at the default DocEx budget): a cold TLS handshake
        // would add jitter between the reserved slot and the arrival.
        .pool_idle_timeout(Duration::from_secs(120))
        .user_agent("docket/0.1")
        .build()?)
}

fn retry_after(response: &Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
        // An absurd answer must not park work for years (or overflow a clock).
        .clamp(Duration::from_millis(100), Duration::from_secs(3600))
}

impl Gate {
    pub fn http_timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` through the breaker and the budget. Returns the
    /// response for 2xx and for 4xx the caller must interpret (404, 410,
    /// 400); turns everything else into the right `StageError`. The run's
    /// `guard` is asked last, right before the request leaves: a pause or a
    /// cancel committed while the caller waited for its slot stops it there.
    pub async fn call(
        &self,
        endpoint: &'static str,
        budget: Budget,
        admission: Admission,
        request: RequestBuilder,
        guard: Option<&Guard>,
    ) -> StageResult<Response> {
        let mut verdict = self.admit().await?;
        let urgent = guard.is_some_and(Guard::urgent);
        let max_wait = match admission {
            Admission::Hold => self.max_hold,
            // An urgent search queues behind the download due next, and
            // ahead of every other call.
            Admission::NextOnly if urgent => self.max_hold,
            // At a slow budget one interval may be long: never hold past the cap.
            Admission::NextOnly => self.limiter.interval(budget).min(self.max_hold),
        };
        let rank = admission.rank(urgent);
        let labels = BudgetLabels { budget: budget.as_str() };
        let first = Instant::now();
        let mut late_in_a_row = 0;
        loop {
            // The slot is no earlier than `asked + wait` (Redis reserved it
            // after we asked), so lateness measured from there is never
            // underestimated, whatever the round trip cost.
            let asked = Instant::now();
            let reservation = match self.limiter.reserve(budget, max_wait, rank).await? {
                Slot::Reserved(r) => r,
                Slot::Deferred(after) => {
                    self.metrics.limiter_deferred.get_or_create(&labels).inc();
                    return Err(StageError::wait(after, format!("{} budget spent for now", budget.as_str())));
                }
            };
            let answered = Instant::now();
            let Reservation { wait, taken_over, .. } = reservation;
            if taken_over {
                debug!(budget = budget.as_str(), ?wait, "took over a slot reserved for other work");
            }
            let slot = asked + wait;
            if !wait.is_zero() {
                // The slot is no later than `answered + wait`. Waking no
                // earlier than the guard before that, the check below comes
                // after anyone could still take the slot over.
                let check_at = slot.max((answered + wait).checked_sub(TAKE_OVER_GUARD).unwrap_or(slot));
                tokio::time::sleep_until(check_at.into()).await;
                // Much can happen while we slept: the API may have gone
                // dark (then nobody should send), Redis may have lost the
                // schedule our slot belonged to, or an urgent call may have
                // taken the slot over (then take a new one).
                if verdict != Verdict::Probe {
                    verdict = self.admit().await?;
                }
                if !self.limiter.stands(budget, &reservation).await? {
                    debug!(
                        budget = budget.as_str(),
                        "the reserved slot went to an urgent call, or the schedule was lost; reserving again"
                    );
                    continue;
                }
            }
            if let Some(guard) = guard {
                guard.check().await?;
            }
            // Last look before the send: a caller descheduled past its slot
            // (a CPU limit throttles a whole process for tens of ms) would
            // land among the callers of the next slots and overfill a window.
            // It gives the slot up, unused, and takes a new one.
            let late = slot.elapsed();
            if late <= self.late {
                break;
            }
            self.metrics.limiter_late.get_or_create(&labels).inc();
            late_in_a_row += 1;
            debug!(
                budget = budget.as_str(),
                ?late,
                late_in_a_row,
                "woke too late for the reserved slot; reserving again"
            );
            if late_in_a_row >= LATE_TRIES {
                // Starved of CPU: each try spends a slot of the budget, so
                // stop trying and let the message wait in a delay queue.
                return Err(StageError::wait(
                    self.limiter.interval(budget).max(LATE_BACKOFF),
                    format!("woke too late for {} slots of {} in a row", LATE_TRIES, budget.as_str()),
                ));
            }
        }
        self.metrics.limiter_wait.get_or_create(&labels).observe(first.elapsed().as_secs_f64());
        let started = Instant::now();
        let sent = request.send().await;
        self.metrics
            .outside_seconds
            .get_or_create(&EndpointLabels { api: self.api.as_str(), endpoint })
            .observe(started.elapsed().as_secs_f64());
        let (outcome, result) = self.classify(endpoint, sent);
        self.metrics.outside_requests.get_or_create(&RequestLabels { api: self.api.as_str(), endpoint, outcome }).inc();
        match &result {
            Ok(_) => {
                if self.breaker.succeeded(self.api).await.unwrap_or(false) {
                    info!(api = %self.api, "circuit closed: the API answers again");
                }
            }
            Err(StageError::Transient { reason, .. }) => {
                let opened = self.breaker.failed(self.api).await?;
                if opened {
                    warn!(api = %self.api, %reason, "circuit opened: holding calls until a probe succeeds");
                    return Err(StageError::Blocked { api: self.api });
                }
                if verdict == Verdict::Probe {
                    return Err(StageError::Blocked { api: self.api });
                }
            }
            Err(StageError::Wait { after, .. }) if outcome == "rate_limited" => {
                // Someone else shares the credential: the whole fleet backs off.
                // Without Redis, this caller still honours the 429 by itself.
                if let Err(e) = self.limiter.push_back(budget, *after).await {
                    warn!(error = %e, "could not push the fleet's schedule back after a 429");
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Asks the breaker; an open breaker means the message waits in the hold queue.
    async fn admit(&self) -> StageResult<Verdict> {
        match self.breaker.admit(self.api).await? {
            Verdict::Wait(_) => Err(StageError::Blocked { api: self.api }),
            v => Ok(v),
        }
    }

    fn classify(&self, endpoint: &str, sent: reqwest::Result<Response>) -> (&'static str, StageResult<Response>) {
        let api = self.api;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let outcome = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "server_error"
                };
                let why = if e.is_timeout() { "timed out".to_string() } else { format!("failed: {}", short(&e)) };
                return (outcome, Err(StageError::transient(format!("{api} {endpoint} {why}"))));
            }
        };
        let status = response.status();
        match status {
            s if s.is_success() => ("ok", Ok(response)),
            StatusCode::TOO_MANY_REQUESTS => {
                // Someone else may share the credential; honour the answer.
                let after = retry_after(&response);
                warn!(%api, endpoint, ?after, "429 from the outside; honouring Retry-After");
                ("rate_limited", Err(StageError::wait(after, format!("{api} answered 429"))))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                error!(%api, endpoint, %status, "credentials refused; check the API token setting");
                ("client_error", Err(StageError::transient(format!("{api} refused our credentials ({status})"))))
            }
            StatusCode::REQUEST_TIMEOUT => ("timeout", Err(StageError::transient(format!("{api} {endpoint}: 408")))),
            s if s.is_server_error() => {
                ("server_error", Err(StageError::transient(format!("{api} {endpoint} answered {s}"))))
            }
            _ => ("client_error", Ok(response)),
        }
    }
}

/// The error chain of a reqwest error, without the URL (which carries job
/// ids only, but is long and says nothing an operator needs).
fn short(e: &reqwest::Error) -> String {
    let mut text = match e.url() {
        Some(url) => e.to_string().replace(&format!(" ({url})"), "").replace(url.as_str(), ""),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The largest JSON answer read from an outside API. Ours are a few hundred
/// bytes; a TaskTracker task with reports of 3000 documents each is some
/// megabytes. Anything larger is a broken server, not a reason to run out of
/// memory.
const MAX_ANSWER: usize = 32 << 20;

/// Reads a JSON answer of at most `MAX_ANSWER` bytes. A bad answer is a
/// transient failure whose reason says where the JSON went wrong, never what
/// it held: an answer may echo what was sent, names included.
pub async fn read_json<T: serde::de::DeserializeOwned>(mut response: Response, reading: &str) -> StageResult<T> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| StageError::transient(format!("{reading}: {}", short(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(StageError::transient(format!(
                "{reading}: the answer is larger than {} MiB",
                MAX_ANSWER >> 20
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| StageError::transient(format!("{reading}: {}", json_fault(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> Response {
        Response::from(http::Response::builder().status(200).body(body).expect("a response"))
    }

    #[derive(serde::Deserialize, Debug)]
    struct Job {
        #[allow(dead_code)]
        job_id: String,
    }

    #[tokio::test]
    async fn json_answers_are_read_and_bad_ones_say_where_not_what() {
        assert!(read_json::<Job>(answer(r#"{"job_id":"j1"}"#), "reading").await.is_ok());
        let Err(StageError::Transient { reason, .. }) =
            read_json::<Job>(answer(r#"{"job_id":{"first_name":"Alice"}}"#), "reading").await
        else {
            panic!("a wrong shape is a transient failure");
        };
        assert!(reason.contains("unexpected shape"), "{reason}");
        assert!(!reason.contains("Alice"), "the answer's content leaked: {reason}");
        let Err(StageError::Transient { reason, .. }) = read_json::<Job>(answer("{\"job_id\": \"Ali"), "reading").await
        else {
            panic!("a cut-off answer is a transient failure");
        };
        assert!(!reason.contains("Ali"), "{reason}");
    }
}

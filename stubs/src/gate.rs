//! The door every API request passes: auth, then storm, then budget, then faults, then the handler.
//!
//! Order matters and follows the OpenAPI texts: a 401 spends nothing, a 429
//! spends nothing, and everything else that reaches the server (a 503 in an
//! outage included) has already spent budget before the fault answers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::budget::{Admission, SlidingWindow};
use crate::faults::{Active, FaultMode, FaultSwitch, Faults};
use crate::stats::Calls;

/// Which endpoint a request is for and which budget it spends.
pub(crate) struct Route {
    /// Stats key, such as `"GET /v1/searches/{job_id}"`.
    pub endpoint: &'static str,
    /// Index into [`Gate::budgets`]; `None` spends nothing.
    pub budget: Option<usize>,
}

/// Everything the gate needs; one per stub.
pub(crate) struct Gate {
    pub token: Option<String>,
    pub faults: Arc<FaultSwitch>,
    pub calls: Calls,
    pub budgets: Vec<SlidingWindow>,
    pub route: fn(&Method, &str) -> Route,
}

/// A JSON error body with the given status.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn too_many(retry_after: u64, message: &str) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, message);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Axum middleware: admin paths go straight through; API paths pass the gate.
pub(crate) async fn gate(State(g): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/admin" || path.starts_with("/admin/") {
        return next.run(req).await;
    }
    let arrived = Instant::now();
    let active = g.faults.active();
    let route = (g.route)(req.method(), req.uri().path());
    g.calls.arrived(route.endpoint, active.is_dark(arrived));
    let resp = g.decide(req, next, &route, &active).await;
    if active.faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(active.faults.latency_ms)).await;
    }
    g.calls.answered(route.endpoint, resp.status().as_u16());
    resp
}

impl Gate {
    /// `GET /admin/faults`: the faults configured now.
    pub(crate) fn faults_now(&self) -> Response {
        Json(self.faults.configured()).into_response()
    }

    /// `PUT /admin/faults` with a [`Faults`] body: validated, then set;
    /// answers the setting now in force.
    pub(crate) fn set_faults_from(&self, stub: &str, body: &[u8]) -> Response {
        let parsed = serde_json::from_slice::<Faults>(body)
            .map_err(|e| format!("malformed faults: {e}"))
            .and_then(|f| f.validate().map(|()| f));
        match parsed {
            Ok(f) => {
                tracing::info!(faults = ?f, "{stub} faults set");
                self.faults.set(f.clone());
                Json(f).into_response()
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        }
    }

    async fn decide(&self, req: Request, next: Next, route: &Route, active: &Active) -> Response {
        if !self.authorized(req.headers()) {
            self.calls.unauthorized();
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong token");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        if let Some(left) = active.storm_left(Instant::now()) {
            self.calls.storm();
            return too_many(crate::util::retry_after_secs(left), "too many requests");
        }
        if let Some(b) = route.budget
            && let Admission::Refused { retry_after } = self.budgets[b].try_spend()
        {
            return too_many(retry_after, "over budget");
        }
        let Some(now) = self.wait_out_hang().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "stub shutting down");
        };
        match now.faults.mode {
            FaultMode::Unavailable | FaultMode::Refuse => {
                return error(StatusCode::SERVICE_UNAVAILABLE, "outage");
            }
            FaultMode::BadGateway => return error(StatusCode::BAD_GATEWAY, "bad gateway"),
            FaultMode::GatewayTimeout => {
                return error(StatusCode::GATEWAY_TIMEOUT, "gateway timeout");
            }
            FaultMode::None | FaultMode::Hang => {}
        }
        if now.faults.error_rate > 0.0 && rand::random::<f64>() < now.faults.error_rate {
            return error(StatusCode::SERVICE_UNAVAILABLE, "random outage");
        }
        next.run(req).await
    }

    /// Holds the request while the stub hangs; returns the faults in force after.
    async fn wait_out_hang(&self) -> Option<Active> {
        let mut rx = self.faults.subscribe();
        loop {
            let a = rx.borrow_and_update().clone();
            if a.faults.mode != FaultMode::Hang {
                return Some(a);
            }
            rx.changed().await.ok()?;
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match given.and_then(|v| v.split_once(' ')) {
            Some((scheme, t)) => scheme.eq_ignore_ascii_case("bearer") && t.trim() == token,
            None => false,
        }
    }
}

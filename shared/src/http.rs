//! `/metrics`, `/healthz` and `/readyz` on `HTTP_ADDR`.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use tokio_util::sync::CancellationToken;

use crate::{app::App, metrics::Metrics};

#[derive(Clone)]
struct Probe {
    metrics: Arc<Metrics>,
    app: Arc<OnceLock<Arc<App>>>,
}

async fn metrics(State(p): State<Probe>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], p.metrics.render())
}

async fn healthz() -> &'static str {
    "alive\n"
}

async fn readyz(State(p): State<Probe>) -> (StatusCode, String) {
    match p.app.get() {
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
        Some(app) => match app.ready().await {
            Ok(()) => (StatusCode::OK, "ready\n".into()),
            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
    }
}

/// Binds and serves until `shutdown`; returns the bound address (port 0
/// picks a free one, as tests do).
pub async fn serve(
    addr: SocketAddr,
    metrics_: Arc<Metrics>,
    app: Arc<OnceLock<Arc<App>>>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("setting HTTP_ADDR: cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Probe { metrics: metrics_, app });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    });
    Ok(bound)
}

//! Our own accept loop, so `refuse` mode really closes the port and `shutdown` drops every connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Method;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::budget::SlidingWindow;
use crate::faults::{Active, FaultMode, FaultSwitch, Faults};
use crate::gate::{Gate, Route};
use crate::settings::Rate;
use crate::stats::Calls;

/// What both stubs set up alike before their own state: the bound port, the
/// gate (token, faults, one sliding window per rate) and the shutdown token.
pub(crate) struct Prepared {
    pub listener: TcpListener,
    pub origin: String,
    pub start: Instant,
    pub gate: Arc<Gate>,
    pub shutdown: CancellationToken,
}

pub(crate) fn prepare(
    addr: SocketAddr,
    token: Option<String>,
    faults: &Faults,
    rates: &[Rate],
    route: fn(&Method, &str) -> Route,
) -> anyhow::Result<Prepared> {
    use anyhow::Context as _;
    let listener = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let origin = crate::origin(listener.local_addr()?);
    let start = Instant::now();
    let switch = FaultSwitch::new(tokio::runtime::Handle::current());
    switch.set(faults.clone());
    let budgets = rates.iter().map(|r| SlidingWindow::new(*r, start)).collect();
    let gate = Arc::new(Gate { token, faults: switch, calls: Calls::default(), budgets, route });
    Ok(Prepared { listener, origin, start, gate, shutdown: CancellationToken::new() })
}

/// A stub's server task; dropping it stops the server too.
pub(crate) struct Serving {
    server: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl Serving {
    /// Serves `router` on the prepared port until [`Serving::stop`] or drop.
    pub(crate) fn start(
        listener: TcpListener,
        router: Router,
        gate: &Gate,
        shutdown: &CancellationToken,
    ) -> io::Result<Serving> {
        let server = spawn(listener, router, gate.faults.subscribe(), shutdown.clone())?;
        Ok(Serving { server: Some(server), shutdown: shutdown.clone(), _stop_on_drop: shutdown.clone().drop_guard() })
    }

    /// Stops listening, drops every connection and waits for the server task.
    pub(crate) async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// Binds `addr` with SO_REUSEADDR, so the port can be bound again right after
/// a refuse window even while old connections linger in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `router` on `listener` until `shutdown`, closing the port while the
/// faults in force say `refuse`.
pub(crate) fn spawn(
    listener: TcpListener,
    router: Router,
    faults: watch::Receiver<Active>,
    shutdown: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    let addr = listener.local_addr()?;
    Ok(tokio::spawn(run(listener, addr, router, faults, shutdown)))
}

fn refusing(rx: &watch::Receiver<Active>) -> bool {
    rx.borrow().faults.mode == FaultMode::Refuse
}

async fn run(
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    mut faults: watch::Receiver<Active>,
    shutdown: CancellationToken,
) {
    let conns = TaskTracker::new();
    let mut listener = Some(listener);
    loop {
        // Serving: accept until shutdown or until a refuse window opens.
        let open = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, &shutdown).await {
                Some(l) => l,
                None => break,
            },
        };
        let generation = shutdown.child_token();
        while !refusing(&faults) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = faults.changed() => if changed.is_err() { shutdown.cancelled().await; },
                accepted = open.accept() => match accepted {
                    Ok((stream, _)) => {
                        // Small JSON answers on keep-alive connections would wait for
                        // Nagle's timer otherwise.
                        let _ = stream.set_nodelay(true);
                        conns.spawn(serve_one(stream, router.clone(), generation.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        // Refusing (or shutting down): close the port and every open connection.
        drop(open);
        generation.cancel();
        if shutdown.is_cancelled() {
            break;
        }
        tracing::info!(%addr, "refusing connections");
        while refusing(&faults) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = faults.changed() => if changed.is_err() { shutdown.cancelled().await; },
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        tracing::info!(%addr, "listening again");
    }
    conns.close();
    conns.wait().await;
}

/// Binds the same address again, retrying while the kernel still holds it.
async fn rebind(addr: SocketAddr, shutdown: &CancellationToken) -> Option<TcpListener> {
    let mut delay = Duration::from_millis(10);
    loop {
        match bind(addr) {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(%addr, error = %e, "could not listen again; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// One HTTP/1.1 connection; dropped (socket closed) when its generation ends.
async fn serve_one(stream: tokio::net::TcpStream, router: Router, generation: CancellationToken) {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = generation.cancelled() => {}
    }
}

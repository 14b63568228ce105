//! Running a stage service: read settings, connect what it needs, serve
//! health and metrics, supervise its consumers, stop cleanly on SIGTERM.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    app::App,
    broker::{Broker, Consumer},
    db::{Db, outbox},
    metrics::Metrics,
    outside::{
        Api, Gate, Redis, breaker::Breaker, docex::Docex, gate::http_client, hold, limiter::Limiter,
        tasktracker::TaskTracker,
    },
    settings::Settings,
    storage::Store,
    telemetry,
};

/// What a service's handlers use, so that it connects to nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    pub db: bool,
    pub storage: bool,
    pub docex: bool,
    pub tracker: bool,
}

pub struct Service {
    pub name: &'static str,
    /// Its default HTTP port (each service differs, so all run on one host).
    pub port: u16,
    pub needs: Needs,
}

/// A started service.
pub struct Running {
    pub http_addr: SocketAddr,
    pub app: Arc<App>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Waits for every task to end (after the shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Retries `op` with capped backoff until it succeeds or shutdown.
async fn until_ok<T, F, Fut>(what: &str, shutdown: &CancellationToken, mut op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => warn!(error = %e, retry_in = ?delay, "{what} failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => anyhow::bail!("shut down while waiting: {what}"),
        }
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}

/// The gate of an outside API: its breaker and budget in Redis, its HTTP client.
pub fn gate(api: Api, settings: &Settings, redis: &Redis, metrics: &Arc<Metrics>) -> anyhow::Result<Gate> {
    Ok(Gate {
        api,
        http: http_client(settings.http_timeout)?,
        breaker: Breaker::new(redis.clone(), settings),
        limiter: Limiter::new(redis.clone(), settings),
        max_hold: settings.limit_max_hold,
        late: settings.limit_late,
        timeout: settings.http_timeout,
        metrics: metrics.clone(),
    })
}

impl Service {
    /// For binaries: settings from the environment, run until SIGTERM/SIGINT.
    pub async fn main(self, build: impl FnOnce(&Arc<App>) -> Vec<Arc<dyn Consumer>>) -> anyhow::Result<()> {
        let settings = Settings::from_env()?;
        telemetry::init(settings.log_format);
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let running = self.start(settings, shutdown, build).await?;
        running.wait().await;
        info!("stopped");
        Ok(())
    }

    /// Connects, starts every task and returns; stops when `shutdown` is cancelled.
    pub async fn start(
        self,
        settings: Settings,
        shutdown: CancellationToken,
        build: impl FnOnce(&Arc<App>) -> Vec<Arc<dyn Consumer>>,
    ) -> anyhow::Result<Running> {
        let metrics = Arc::new(Metrics::new());
        metrics.set_limits(&settings);
        let slot = Arc::new(OnceLock::new());
        let addr = settings.http_addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.port)));
        let http_addr = crate::http::serve(addr, metrics.clone(), slot.clone(), shutdown.clone()).await?;
        info!(service = self.name, %http_addr, "serving /metrics, /healthz, /readyz");
        std::fs::create_dir_all(&settings.work_dir)
            .map_err(|e| anyhow::anyhow!("setting WORK_DIR: cannot create {}: {e}", settings.work_dir.display()))?;

        let needs = self.needs;
        let db = match needs.db {
            true => {
                let db = Db::connect_lazy(&settings.database_url, settings.database_pool)?;
                until_ok("migrating the database", &shutdown, || db.migrate()).await?;
                Some(db)
            }
            false => None,
        };
        let uses_outside = needs.docex || needs.tracker;
        let redis = match uses_outside {
            true => Some(Redis::connect(&settings.redis_url, &settings.redis_key_prefix)?),
            false => None,
        };
        let mut apis = Vec::new();
        let (mut docex, mut tracker) = (None, None);
        if let Some(r) = &redis {
            if needs.docex {
                let g = gate(Api::Docex, &settings, r, &metrics)?;
                docex = Some(Docex::new(g, &settings.docex_url, settings.docex_token.clone())?);
                apis.push(Api::Docex);
            }
            if needs.tracker {
                let g = gate(Api::TaskTracker, &settings, r, &metrics)?;
                tracker = Some(TaskTracker::new(g, &settings.tasktracker_url, settings.tasktracker_token.clone())?);
                apis.push(Api::TaskTracker);
            }
        }
        let app = Arc::new(App {
            service: self.name,
            broker: Broker::new(&settings, &format!("docket-{}", self.name)),
            scratch: Store::open(&settings.scratch_url, "SCRATCH_URL", &settings.aws)?,
            storage: if needs.storage {
                Some(Store::open(&settings.storage_url, "STORAGE_URL", &settings.aws)?)
            } else {
                None
            },
            metrics,
            shutdown: shutdown.clone(),
            db,
            redis,
            docex,
            tracker,
            settings,
        });
        let _ = slot.set(app.clone());
        let mut consumers = build(&app);
        if app.db.is_some() {
            // Any service with a database can mark the runs of dead-letters.
            consumers.push(Arc::new(crate::broker::dead::DeadLetters(app.clone())));
        }

        let mut tasks = JoinSet::new();
        let a = app.clone();
        let names: Vec<&'static str> = apis.iter().map(|api| api.as_str()).collect();
        tasks.spawn(async move {
            let gauge = a.metrics.broker_connected.clone();
            a.broker
                .supervise(&a.settings, &names, consumers, a.shutdown.clone(), |up| {
                    gauge.set(i64::from(up));
                })
                .await;
        });
        if app.db.is_some() {
            let a = app.clone();
            tasks.spawn(async move { outbox::relay(&a, &a.broker.publisher, a.shutdown.clone()).await });
        }
        for api in apis {
            let a = app.clone();
            tasks.spawn(async move {
                let breaker = Breaker::new(a.redis().clone(), &a.settings);
                hold::drain(api, a.broker.clone(), breaker, a.metrics.clone(), a.shutdown.clone()).await;
            });
        }
        Ok(Running { http_addr, app, tasks })
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        warn!("cannot listen for signals; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: draining in-flight messages"),
        _ = int.recv() => info!("SIGINT: draining in-flight messages"),
    }
    shutdown.cancel();
}

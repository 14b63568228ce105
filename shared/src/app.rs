//! What a running service holds: settings, metrics, the broker, and the
//! connections and clients its stages declared they need.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    broker::Broker,
    db::Db,
    metrics::Metrics,
    outside::{Redis, docex::Docex, tasktracker::TaskTracker},
    settings::Settings,
    storage::Store,
};

pub struct App {
    /// The service's name: the `stage` label and log field.
    pub service: &'static str,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub broker: Broker,
    pub scratch: Store,
    pub shutdown: CancellationToken,
    pub(crate) db: Option<Db>,
    pub(crate) redis: Option<Redis>,
    pub(crate) storage: Option<Store>,
    pub(crate) docex: Option<Docex>,
    pub(crate) tracker: Option<TaskTracker>,
}

const UNDECLARED: &str = "the service's Needs declare every connection its handlers use";

impl App {
    pub fn db(&self) -> &Db {
        self.db.as_ref().expect(UNDECLARED)
    }
    pub fn redis(&self) -> &Redis {
        self.redis.as_ref().expect(UNDECLARED)
    }
    pub fn storage(&self) -> &Store {
        self.storage.as_ref().expect(UNDECLARED)
    }
    pub fn docex(&self) -> &Docex {
        self.docex.as_ref().expect(UNDECLARED)
    }
    pub fn tracker(&self) -> &TaskTracker {
        self.tracker.as_ref().expect(UNDECLARED)
    }

    pub fn smallest_tier(&self) -> Duration {
        crate::broker::publish::smallest_tier(&self.settings.delay_tiers)
    }

    /// Records a run's latest trouble for `docket status` (best effort:
    /// the database may be the trouble).
    pub async fn note_error(&self, run_id: Option<Uuid>, reason: &str) {
        let (Some(db), Some(run)) = (&self.db, run_id) else { return };
        let note = sqlx::query("UPDATE docket.runs SET last_error = $2, updated_at = now() WHERE run_id = $1")
            .bind(run)
            .bind(reason)
            .execute(&db.pool);
        // Never hold up a retry for a note: during a database outage this
        // would otherwise wait out the pool's acquire timeout.
        let _ = tokio::time::timeout(Duration::from_millis(500), note).await;
    }

    /// Marks the run of a message being parked (best effort, bounded like
    /// `note_error`; the parked message itself is what must not be lost).
    pub async fn note_parked(&self, run_id: Option<Uuid>, reason: &str) {
        let (Some(db), Some(run)) = (&self.db, run_id) else { return };
        let mark = crate::run::edges::mark_parked(&db.pool, run, reason);
        let failed = match tokio::time::timeout(Duration::from_secs(2), mark).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the database did not answer in 2 s".to_string(),
        };
        tracing::warn!(run_id = %run, error = %failed, "could not mark the run as parked; `docket runs` will not show it");
    }

    /// Connected to everything it needs (for /readyz).
    pub async fn ready(&self) -> Result<(), String> {
        if !self.broker.publisher.is_connected() {
            return Err("not connected to RabbitMQ".into());
        }
        if let Some(db) = &self.db
            && !db.ping().await
        {
            return Err("PostgreSQL does not answer".into());
        }
        if let Some(redis) = &self.redis
            && !redis.ping().await
        {
            return Err("Redis does not answer".into());
        }
        Ok(())
    }
}

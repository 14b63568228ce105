//! PostgreSQL: the pool, the migrations of the pipeline's own schema, and
//! the transactional outbox. The run model is [`crate::run`].

pub mod outbox;

use std::time::Duration;

use sqlx::{
    Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::settings::Secret;

pub use outbox::UnitOfWork;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The table the pipeline reads and updates but does not own; created only
/// when absent, so a development database works out of the box.
const PATIENTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS patients (
    patient_id       text PRIMARY KEY,
    first_name       text NOT NULL,
    last_name        text NOT NULL,
    documents_status text,
    updated_at       timestamptz NOT NULL DEFAULT now()
)";

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: PgPool,
}

impl Db {
    /// A lazy pool: connections are made (and remade after a database
    /// restart) on demand, so the pool itself survives outages.
    pub fn connect_lazy(url: &Secret, max_connections: u32) -> anyhow::Result<Db> {
        let options: PgConnectOptions =
            url.expose().parse().map_err(|e| anyhow::anyhow!("setting DATABASE_URL: {e}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.application_name("docket"));
        Ok(Db { pool })
    }

    /// Creates the schema, the `patients` table when absent, and applies the
    /// migrations. Serialised by an advisory lock, since every service runs
    /// it at start and concurrent `CREATE … IF NOT EXISTS` can still collide.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock(727361)").execute(&mut *conn).await?;
        let result = async {
            let c: &mut PgConnection = &mut conn;
            // "already exists, skipping" notices are expected on every start.
            sqlx::query("SET client_min_messages TO warning").execute(&mut *c).await?;
            sqlx::query("CREATE SCHEMA IF NOT EXISTS docket").execute(&mut *c).await?;
            sqlx::query(PATIENTS_TABLE).execute(&mut *c).await?;
            // The migrator keeps its bookkeeping table in the current schema:
            // point it at ours for this connection, then restore.
            sqlx::query("SET search_path TO docket").execute(&mut *c).await?;
            let migrated = MIGRATOR.run_direct(&mut *c).await;
            sqlx::query("RESET search_path").execute(&mut *c).await?;
            sqlx::query("RESET client_min_messages").execute(&mut *c).await?;
            migrated?;
            anyhow::Ok(())
        }
        .await;
        sqlx::query("SELECT pg_advisory_unlock(727361)").execute(&mut *conn).await?;
        result
    }

    /// True when the database answers within a second (for /readyz).
    pub async fn ping(&self) -> bool {
        let probe = async {
            let mut conn = self.pool.acquire().await?;
            conn.ping().await
        };
        matches!(tokio::time::timeout(Duration::from_secs(1), probe).await, Ok(Ok(())))
    }
}

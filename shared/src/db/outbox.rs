//! The transactional outbox: a state change and the messages it causes commit
//! together, so a crash can neither lose the next step nor send it for a
//! change that rolled back. After the commit the messages are published at
//! once; if that fails, the relay publishes them a little later.

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use crate::{
    app::App,
    broker::{Outgoing, Publisher},
    error::StageResult,
};

/// A database transaction plus the messages to send when it commits.
pub struct UnitOfWork {
    tx: Transaction<'static, Postgres>,
    out: Vec<Outgoing>,
}

impl UnitOfWork {
    pub async fn begin(app: &App) -> StageResult<UnitOfWork> {
        Ok(UnitOfWork { tx: app.db().pool.begin().await?, out: Vec::new() })
    }

    /// The connection to run this transaction's queries on.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Queues a message to be published if, and only if, the commit succeeds.
    pub fn send(&mut self, out: Outgoing) {
        self.out.push(out);
    }

    /// A unit of work for a tool without a broker connection (the CLI):
    /// see [`UnitOfWork::commit_for_relay`].
    pub async fn begin_on(pool: &PgPool) -> Result<UnitOfWork, sqlx::Error> {
        Ok(UnitOfWork { tx: pool.begin().await?, out: Vec::new() })
    }

    /// Commits the state and the messages, then publishes them.
    pub async fn commit(mut self, app: &App) -> StageResult {
        let ids = insert(&mut self.tx, &self.out, false).await?;
        self.tx.commit().await?;
        if !ids.is_empty()
            && let Err(e) = flush(app, &ids).await
        {
            // Committed, so not lost: the relay will publish them.
            debug!(error = %e, "publishing after commit failed; the outbox relay will send");
        }
        Ok(())
    }

    /// Commits the state and the messages; the relays of the running
    /// services publish the messages within a second. Returns how many.
    pub async fn commit_for_relay(mut self) -> Result<usize, sqlx::Error> {
        let ids = insert(&mut self.tx, &self.out, true).await?;
        self.tx.commit().await?;
        Ok(ids.len())
    }
}

async fn insert(conn: &mut PgConnection, out: &[Outgoing], relay_now: bool) -> Result<Vec<i64>, sqlx::Error> {
    if out.is_empty() {
        return Ok(Vec::new());
    }
    let queues: Vec<&str> = out.iter().map(|o| o.queue.as_str()).collect();
    let bodies: Vec<&[u8]> = out.iter().map(|o| o.body.as_slice()).collect();
    let runs: Vec<Option<Uuid>> = out.iter().map(|o| o.run_id).collect();
    let ids: Vec<Uuid> = out.iter().map(|o| o.message_id).collect();
    let attempts: Vec<i32> = out.iter().map(|o| o.attempt as i32).collect();
    let not_before: Vec<Option<i64>> = out.iter().map(|o| o.not_before_ms).collect();
    sqlx::query_scalar(
        "INSERT INTO docket.outbox (queue, body, run_id, message_id, attempt, not_before_ms, relay_now)
         SELECT *, $7 FROM UNNEST($1::text[], $2::bytea[], $3::uuid[], $4::uuid[], $5::int[], $6::bigint[])
         RETURNING id",
    )
    .bind(queues)
    .bind(bodies)
    .bind(runs)
    .bind(ids)
    .bind(attempts)
    .bind(not_before)
    .bind(relay_now)
    .fetch_all(conn)
    .await
}

fn row_to_outgoing(row: &sqlx::postgres::PgRow) -> Result<Outgoing, sqlx::Error> {
    Ok(Outgoing {
        queue: row.try_get("queue")?,
        body: row.try_get("body")?,
        run_id: row.try_get("run_id")?,
        attempt: row.try_get::<i32, _>("attempt")?.max(0) as u32,
        not_before_ms: row.try_get("not_before_ms")?,
        message_id: row.try_get("message_id")?,
    })
}

/// Publishes and deletes the given rows in one transaction: the delete locks
/// them (so the relay skips them), and a failed publish rolls it back.
async fn flush(app: &App, ids: &[i64]) -> anyhow::Result<()> {
    let mut tx = app.db().pool.begin().await?;
    let rows = sqlx::query(
        "DELETE FROM docket.outbox WHERE id = ANY($1)
         RETURNING queue, body, run_id, message_id, attempt, not_before_ms",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let out = rows.iter().map(row_to_outgoing).collect::<Result<Vec<_>, _>>()?;
    app.broker.publisher.send_all(&out).await?;
    tx.commit().await?;
    Ok(())
}

/// Publishes whatever a crashed or disconnected process left in the outbox.
/// Only rows older than a few seconds, so it does not race the eager path.
pub async fn relay(app: &App, publisher: &Publisher, shutdown: CancellationToken) {
    let mut counted = std::time::Instant::now() - Duration::from_secs(60);
    while !shutdown.is_cancelled() {
        let sent = match relay_once(app, publisher).await {
            Ok(n) => n,
            Err(e) => {
                debug!(error = %e, "outbox relay pass failed");
                0
            }
        };
        if counted.elapsed() > Duration::from_secs(10) {
            counted = std::time::Instant::now();
            if let Ok(n) =
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM docket.outbox").fetch_one(&app.db().pool).await
            {
                app.metrics.outbox_pending.set(n);
            }
        }
        if sent == BATCH {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

const BATCH: usize = 500;

async fn relay_once(app: &App, publisher: &Publisher) -> anyhow::Result<usize> {
    if !publisher.is_connected() {
        return Ok(0);
    }
    let mut tx = app.db().pool.begin().await?;
    let rows = sqlx::query(
        "DELETE FROM docket.outbox WHERE id IN (
             SELECT id FROM docket.outbox WHERE created_at < now() - interval '3 seconds' OR relay_now
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING queue, body, run_id, message_id, attempt, not_before_ms",
    )
    .bind(BATCH as i64)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let out = rows.iter().map(row_to_outgoing).collect::<Result<Vec<_>, _>>()?;
    publisher.send_all(&out).await?;
    tx.commit().await?;
    warn!(count = out.len(), "outbox relay published messages left behind");
    Ok(out.len())
}

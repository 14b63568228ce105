//! `docket reset --yes`: back to nothing for a demo or a test deployment:
//! docket's schema (runs, documents, history, outbox), the demo patients,
//! docket's queues and exchanges, and its Redis keys. Other patients and
//! anything outside docket's names are left alone.

use docket_shared::{
    Settings,
    broker::{
        Broker,
        topology::{DEAD, DEAD_EXCHANGE, PARKED, PARKED_EXCHANGE, WORK_EXCHANGE, delay_name, hold_name, queues},
    },
    db::Db,
    outside::{Api, Redis},
};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

pub async fn run(settings: &Settings, yes: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        yes,
        "this deletes every run, the demo patients, docket's queues (with their messages) and its Redis keys; \
         stop the services first (scripts/stack down), then run `docket reset --yes`"
    );
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    sqlx::query("DROP SCHEMA IF EXISTS docket CASCADE").execute(&db.pool).await?;
    let patients = sqlx::query("DELETE FROM patients WHERE patient_id LIKE 'DEMO-%'").execute(&db.pool).await;
    let patients = patients.map(|r| r.rows_affected()).unwrap_or(0);
    println!("deleted docket's runs and history (schema docket) and {patients} demo patients");

    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    let mut names: Vec<String> = queues::ALL.iter().map(|q| q.to_string()).collect();
    names.extend([PARKED.to_string(), DEAD.to_string()]);
    names.extend(settings.delay_tiers.iter().map(|t| delay_name(*t)));
    names.extend([Api::Docex, Api::TaskTracker].map(|a| hold_name(a.as_str())));
    for q in &names {
        channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
    }
    let mut exchanges = vec![WORK_EXCHANGE.to_string(), PARKED_EXCHANGE.to_string(), DEAD_EXCHANGE.to_string()];
    exchanges.extend(settings.delay_tiers.iter().map(|t| delay_name(*t)));
    for x in &exchanges {
        channel.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()).await?;
    }
    let _ = conn.close(200, "reset".into()).await;
    println!("deleted {} queues and {} exchanges", names.len(), exchanges.len());

    let redis = Redis::connect(&settings.redis_url, &settings.redis_key_prefix)?;
    let mut c = redis.conn.clone();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}:*", redis.prefix)).query_async(&mut c).await.unwrap_or_default();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query_async::<()>(&mut c).await?;
    }
    println!("deleted {} Redis keys under {}:", keys.len(), redis.prefix);
    Ok(())
}

//! Parked messages live in the `docket.parked` queue (visible in the
//! management UI too). Listing takes them without acking and lets them go
//! back; replay republishes chosen ones to their queue, then acks them.

use docket_shared::{
    Settings,
    broker::{
        Broker,
        consume::parked_reason,
        message::{H_ATTEMPT, H_PARKED_AT, H_QUEUE, H_REASON, H_RUN, H_STAGE, header_text},
        topology::{PARKED, WORK_EXCHANGE},
    },
    db::Db,
    messages::PatientRequest,
    run::{DEFAULT_BATCH, Step},
};
use lapin::{
    BasicProperties, Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable, ShortString},
};

async fn open(settings: &Settings) -> anyhow::Result<(lapin::Connection, Channel)> {
    let conn = Broker::new(settings, "docket-cli").connect().await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok((conn, channel))
}

/// Takes up to `limit` parked messages, unacked (they return when the
/// channel closes).
async fn take(channel: &Channel, limit: usize) -> anyhow::Result<Vec<Delivery>> {
    let mut out = Vec::new();
    while out.len() < limit {
        match channel.basic_get(PARKED.into(), BasicGetOptions::default()).await? {
            Some(got) => out.push(got.delivery),
            None => break,
        }
    }
    Ok(out)
}

fn id_of(d: &Delivery) -> String {
    d.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_else(|| "-".into())
}

/// The queue a parked message came from: our header, else the broker's.
fn origin(d: &Delivery) -> String {
    let h = d.properties.headers().clone().unwrap_or_default();
    header_text(&h, H_QUEUE).unwrap_or_else(|| d.routing_key.as_str().to_string())
}

pub async fn list(settings: &Settings, limit: usize) -> anyhow::Result<()> {
    let (conn, channel) = open(settings).await?;
    let parked = take(&channel, limit).await?;
    if parked.is_empty() {
        println!("no parked messages");
    }
    for d in &parked {
        let h = d.properties.headers().clone().unwrap_or_default();
        let body = String::from_utf8_lossy(&d.data);
        let body: String = body.chars().take(200).collect();
        println!("{}  from {}  at {}", id_of(d), origin(d), header_text(&h, H_PARKED_AT).unwrap_or_else(|| "-".into()));
        println!("    reason: {}", parked_reason(d.properties.headers().as_ref()));
        println!("    body:   {body}");
    }
    let _ = conn.close(200, "listed".into()).await;
    Ok(())
}

/// Which parked messages to replay: chosen IDs, or every one that matches
/// all the filters given.
pub struct Filter {
    pub ids: Vec<String>,
    pub all: bool,
    pub batch: Option<String>,
    /// Text in the parking reason (case-insensitive).
    pub reason: Option<String>,
    /// Parked no longer ago than this.
    pub since: Option<std::time::Duration>,
}

impl Filter {
    fn any_filter(&self) -> bool {
        self.batch.is_some() || self.reason.is_some() || self.since.is_some()
    }

    async fn matches(&self, d: &Delivery, db: Option<&Db>) -> anyhow::Result<bool> {
        if !self.ids.is_empty() && !self.ids.contains(&id_of(d)) {
            return Ok(false);
        }
        let headers = d.properties.headers().clone().unwrap_or_default();
        if let Some(text) = &self.reason
            && !parked_reason(Some(&headers)).to_lowercase().contains(&text.to_lowercase())
        {
            return Ok(false);
        }
        if let Some(since) = self.since {
            let at = header_text(&headers, H_PARKED_AT).and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
            let cutoff = chrono::Utc::now() - chrono::Duration::from_std(since).unwrap_or_default();
            if at.is_none_or(|at| at < cutoff) {
                return Ok(false);
            }
        }
        if let (Some(batch), Some(db)) = (&self.batch, db) {
            return Ok(batch_of(d, &headers, db).await?.as_deref() == Some(batch.as_str()));
        }
        Ok(true)
    }
}

/// The batch a parked message belongs to: a request's own field, or its run's.
async fn batch_of(d: &Delivery, headers: &FieldTable, db: &Db) -> anyhow::Result<Option<String>> {
    if let Ok(request) = serde_json::from_slice::<PatientRequest>(&d.data) {
        return Ok(Some(request.batch.unwrap_or_else(|| DEFAULT_BATCH.to_string())));
    }
    let run = header_text(headers, H_RUN).and_then(|r| uuid::Uuid::parse_str(&r).ok());
    let Some(run) = run.or_else(|| serde_json::from_slice::<Step>(&d.data).ok().map(|s| s.run_id)) else {
        return Ok(None);
    };
    Ok(sqlx::query_scalar("SELECT batch FROM docket.runs WHERE run_id = $1").bind(run).fetch_optional(&db.pool).await?)
}

pub async fn replay(settings: &Settings, filter: Filter) -> anyhow::Result<()> {
    anyhow::ensure!(
        filter.all || !filter.ids.is_empty() || filter.any_filter(),
        "give message IDs from `docket parked list`, filters (--batch, --reason, --since), or --all"
    );
    let db = match filter.batch {
        Some(_) => Some(Db::connect_lazy(&settings.database_url, 2)?),
        None => None,
    };
    let (conn, channel) = open(settings).await?;
    let mut replayed = 0;
    for d in take(&channel, usize::MAX).await? {
        if !filter.matches(&d, db.as_ref()).await? {
            continue;
        }
        let queue = origin(&d);
        // A fresh start: the parking notes and the attempt count go.
        let dropped = [H_REASON, H_PARKED_AT, H_STAGE, H_ATTEMPT, "x-death"];
        let mut headers = FieldTable::default();
        for (k, v) in d.properties.headers().clone().unwrap_or_default().inner() {
            if !dropped.contains(&k.as_str()) {
                headers.insert(k.clone(), v.clone());
            }
        }
        headers.insert(ShortString::from(H_ATTEMPT), AMQPValue::LongLongInt(0));
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let confirm =
            channel.basic_publish(WORK_EXCHANGE.into(), queue.as_str().into(), options, &d.data, props).await?.await?;
        anyhow::ensure!(
            matches!(confirm, lapin::Confirmation::Ack(None)),
            "the broker did not take the replay for {queue}"
        );
        d.ack(BasicAckOptions::default()).await?;
        println!("replayed {} to {queue}", id_of(&d));
        replayed += 1;
    }
    let _ = conn.close(200, "replayed".into()).await;
    println!("{replayed} message{} replayed", if replayed == 1 { "" } else { "s" });
    Ok(())
}

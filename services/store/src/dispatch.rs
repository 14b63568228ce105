//! The store stage's dispatcher: it keeps the converters fed from the
//! conversion room (see `docket_shared::run::documents`). Woken when a
//! document enters the room or leaves the converters, and every second in
//! any case (a resume, another replica's change, a crash), it sends what the
//! window allows in one transaction with its outbox.

use std::{sync::Arc, time::Duration};

use docket_shared::{App, UnitOfWork, run::documents};
use tokio::sync::Notify;
use tracing::debug;

pub async fn run(app: Arc<App>, wake: Arc<Notify>) {
    let window = app.settings.convert_window;
    while !app.shutdown.is_cancelled() {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = app.shutdown.cancelled() => break,
        }
        let sent = async {
            let mut uow = UnitOfWork::begin(&app).await?;
            let sent = documents::dispatch(&mut uow, window).await?;
            uow.commit(&app).await?;
            docket_shared::StageResult::Ok(sent)
        }
        .await;
        match sent {
            Ok(0) => {}
            Ok(n) => debug!(documents = n, "sent to the converters"),
            Err(e) => debug!(error = %e, "dispatch failed; trying again"),
        }
    }
}

//! The store stage's dispatcher: it keeps the converters fed from the
//! conversion room (see `docket_shared::run::documents`). Woken when a
//! document enters the room or leaves the converters, and every second in
//! any case (a resume, another replica's change, a crash), it sends what the
//! window allows in one transaction with its outbox.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use docket_shared::{App, UnitOfWork, run::documents};
use tokio::sync::Notify;
use tracing::debug;

/// What wakes the dispatcher. A document entering the room wakes it at once
/// (it may be urgent, or the converters idle). Documents leaving the
/// converters wake it only once an eighth of the window has left: with the
/// rest of the window still queued at the converters nothing waits for the
/// difference, and one dispatch per finished document was most of the
/// database's work on a large archive. The one-second tick sends the rest.
pub struct Wake {
    notify: Notify,
    left: AtomicU32,
    chunk: u32,
}

impl Wake {
    pub fn new(window: u32) -> Wake {
        Wake { notify: Notify::new(), left: AtomicU32::new(0), chunk: (window / 8).max(1) }
    }

    /// A document entered the conversion room.
    pub fn entered(&self) {
        self.notify.notify_one();
    }

    /// A document left the converters (or the room, failed).
    pub fn left(&self) {
        if self.left.fetch_add(1, Ordering::Relaxed) + 1 >= self.chunk {
            self.notify.notify_one();
        }
    }
}

pub async fn run(app: Arc<App>, wake: Arc<Wake>) {
    let window = app.settings.convert_window;
    while !app.shutdown.is_cancelled() {
        tokio::select! {
            _ = wake.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = app.shutdown.cancelled() => break,
        }
        wake.left.store(0, Ordering::Relaxed);
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

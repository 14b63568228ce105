//! docket-search: takes patient requests in, creates their TaskTracker task,
//! and starts their DocumentExchange search.
//!
//! - [`intake`]: `patients` → start a run, or join the one in progress.
//! - [`task`]: `docket.task` → create the task (idempotency key from the run).
//! - [`search`]: `docket.search` → take a DocEx job slot and a search slot
//!   from the shared budget, start the search, begin polling.

pub mod intake;
pub mod search;
pub mod task;

use std::sync::Arc;

use docket_shared::{App, Needs, Service, broker::Consumer, consumer};

pub fn service() -> Service {
    Service { name: "search", port: 9101, needs: Needs { db: true, docex: true, tracker: true, storage: false } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    vec![
        consumer(app, intake::Intake(app.clone())),
        consumer(app, task::CreateTask(app.clone())),
        consumer(app, search::Search(app.clone())),
    ]
}

//! docket-search: takes patient requests in, creates their TaskTracker task,
//! and starts their DocumentExchange search.
//!
//! - [`intake`]: `patients` → start a run (in its batch, at its priority),
//!   or join the one in progress; `patients.urgent`, its urgent lane, the same
//!   ahead of whatever waits in `patients`.
//! - [`task`]: the task room, woken by `docket.task` → create the head's task
//!   (idempotency key from the run); `docket.task.urgent` wakes its urgent
//!   worker, which serves an urgent run as it arrives.
//! - [`search`]: the search room, woken by `docket.search` → the head takes a
//!   DocEx job slot and a search slot from the shared budget, starts the
//!   search, begins polling; `docket.search.urgent` as for the task room.
//! - [`control`]: `docket.control` → pause, resume, cancel.

pub mod control;
pub mod intake;
pub mod search;
pub mod task;

use std::sync::Arc;

use docket_shared::{
    App, Needs, Service,
    broker::Consumer,
    consumer,
    run::wakeup::{Urgent, Wakeups},
};

pub fn service() -> Service {
    Service { name: "search", port: 9101, needs: Needs { db: true, docex: true, tracker: true, storage: false } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    // The batch gauges; stops with the service (it watches the shutdown token).
    tokio::spawn(docket_shared::run::progress::export(app.clone()));
    vec![
        consumer(app, intake::Intake::<false>(app.clone())),
        consumer(app, intake::Intake::<true>(app.clone())),
        consumer(app, Wakeups(app.clone(), task::CreateTask)),
        consumer(app, Wakeups(app.clone(), Urgent(task::CreateTask))),
        consumer(app, Wakeups(app.clone(), search::StartSearch)),
        consumer(app, Wakeups(app.clone(), Urgent(search::StartSearch))),
        consumer(app, control::Control(app.clone())),
    ]
}

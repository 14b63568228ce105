//! docket-status: polls DocumentExchange jobs through delay queues on a
//! schedule that starts soon and backs off to a cap, so an hour-long job
//! costs a few dozen status reads; then hands the run on.

pub mod poll;

use std::sync::Arc;

use docket_shared::{App, Needs, Service, broker::Consumer, consumer};

pub fn service() -> Service {
    Service { name: "status", port: 9102, needs: Needs { db: true, docex: true, ..Needs::default() } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    vec![consumer(app, poll::Poll(app.clone()))]
}

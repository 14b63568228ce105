//! docket-report: the end of a run. Sets the documents status in the
//! patients table and on the TaskTracker task, builds the report and
//! appends it (idempotency key from the run), then closes the run.

pub mod build;
pub mod report;

use std::sync::Arc;

use docket_shared::{App, Needs, Service, broker::Consumer, consumer};

pub fn service() -> Service {
    Service { name: "report", port: 9106, needs: Needs { db: true, tracker: true, ..Needs::default() } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    vec![consumer(app, report::Report(app.clone())), consumer(app, report::UrgentReport(app.clone()))]
}

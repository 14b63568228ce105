//! docket-store: the one writer of the storage service. Puts each original,
//! then each PDF (or records why there is none), and counts a run's finished
//! documents in one transactional update, so the last one is noticed
//! exactly once, redeliveries included. Its dispatcher feeds the converters
//! from the conversion room, in the room's order.

pub mod dispatch;
pub mod keys;
pub mod store;

use std::sync::Arc;

use docket_shared::{App, Needs, Service, broker::Consumer, consumer};

pub fn service() -> Service {
    Service { name: "store", port: 9105, needs: Needs { db: true, storage: true, ..Needs::default() } }
}

pub fn consumers(app: &Arc<App>) -> Vec<Arc<dyn Consumer>> {
    let wake = Arc::new(dispatch::Wake::new(app.settings.convert_window));
    // Stops with the service (it watches the app's shutdown token).
    tokio::spawn(dispatch::run(app.clone(), wake.clone()));
    vec![consumer(app, store::Store { app: app.clone(), dispatch: wake })]
}

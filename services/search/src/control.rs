//! `docket.control`: the operator's pause, resume and cancel as messages,
//! for whoever steers from the management UI. The CLI applies the same
//! controls straight to the database.

use std::sync::Arc;

use docket_shared::{
    App, Handler, Meta, StageError, StageResult, UnitOfWork,
    broker::topology::queues,
    run::control::{ControlMessage, Scope},
};
use tracing::info;

pub struct Control(pub Arc<App>);

impl Handler for Control {
    type Input = ControlMessage;
    const QUEUE: &'static str = queues::CONTROL;
    const SHAPE: &'static str =
        r#"{"action": "pause", "resume" or "cancel", and one of "batch": "…", "patient_id": "…", "all": true}"#;

    fn prefetch(&self, _app: &App) -> u16 {
        1
    }

    async fn handle(&self, message: ControlMessage, _meta: &Meta) -> StageResult {
        let app = &self.0;
        let scope = Scope::pick(message.all, message.batch, message.patient_id).map_err(StageError::permanent)?;
        let mut uow = UnitOfWork::begin(app).await?;
        let applied = message.action.apply(&mut uow, &scope).await?;
        uow.commit(app).await?;
        info!(action = ?message.action, %scope, runs = applied.runs, changed = applied.changed, "control applied");
        Ok(())
    }
}

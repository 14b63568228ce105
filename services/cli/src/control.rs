//! `docket pause|resume|cancel`: the operator's controls, applied straight
//! to the database in one transaction (the same functions the services run
//! for a control message on `docket.control`). Messages a resume or a
//! cancel sends are published by the running services' relays within a
//! second.

use std::time::Instant;

use docket_shared::{
    Settings, UnitOfWork,
    db::Db,
    run::control::{Action, Scope},
};

pub async fn apply(settings: &Settings, action: Action, scope: Scope) -> anyhow::Result<()> {
    let db = Db::connect_lazy(&settings.database_url, 2)?;
    let started = Instant::now();
    let mut uow = UnitOfWork::begin_on(&db.pool).await?;
    let applied = action.apply(&mut uow, &scope).await?;
    uow.commit_for_relay().await?;
    let took = started.elapsed();
    let runs = applied.runs;
    let s = if runs == 1 { "" } else { "s" };
    let line = match (action, applied.changed) {
        (Action::Pause, true) => {
            format!("paused {scope}: {runs} run{s} in progress make no outside call from now on")
        }
        (Action::Pause, false) => format!("{scope} was paused already ({runs} run{s} in progress)"),
        (Action::Resume, true) => format!("resumed {scope}: {runs} run{s} go on from the step they were at"),
        (Action::Resume, false) => format!("{scope} was not paused (see `docket batches`)"),
        (Action::Cancel, true) => {
            format!("cancelled {runs} run{s} of {scope}; each ends with a report saying so")
        }
        (Action::Cancel, false) => format!("{scope} has no run in progress to cancel"),
    };
    println!("{line} (committed in {} ms)", took.as_millis());
    Ok(())
}

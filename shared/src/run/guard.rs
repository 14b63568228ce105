//! The question the gate to the outside asks right before a call leaves:
//! is this run still at this step, and not paused? A pause (or a cancel)
//! committed while a caller waited for its budget slot stops the call there:
//! from the commit on, the run spends no outside budget.

use sqlx::PgPool;

use super::{Priority, Run, State, Step};
use crate::error::{StageError, StageResult};

#[derive(Clone, Debug)]
pub struct Guard {
    pool: PgPool,
    step: Step,
    state: State,
    priority: Priority,
}

impl Guard {
    pub fn new(pool: &PgPool, run: &Run) -> Guard {
        Guard { pool: pool.clone(), step: run.step(), state: run.state, priority: run.priority() }
    }

    /// An urgent run's call, which may take over a slot reserved for other work.
    pub fn urgent(&self) -> bool {
        self.priority == Priority::Urgent
    }

    /// `Ok` when the call may leave; [`StageError::Stopped`] when the run
    /// was paused, cancelled or moved on meanwhile.
    pub async fn check(&self) -> StageResult {
        let free: Option<bool> = sqlx::query_scalar(
            "SELECT NOT docket.paused(batch, patient_id) FROM docket.runs
             WHERE run_id = $1 AND seq = $2 AND state = $3",
        )
        .bind(self.step.run_id)
        .bind(self.step.seq)
        .bind(self.state.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match free {
            Some(true) => Ok(()),
            Some(false) => Err(StageError::Stopped(format!("the run was paused at its {} step", self.state))),
            None => Err(StageError::Stopped(format!("the run left its {} step (cancelled?)", self.state))),
        }
    }
}

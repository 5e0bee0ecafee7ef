//! Status changes applied and counted: the database layer applies them, and each one is counted in
//! the metrics only once its transaction committed, so that a change rolled back is never counted.

use sqlx::PgPool;
use swath_domain::Job;

use crate::db::status::{self, StatusChange, StatusTransaction};
use crate::db::status_batch::{self, applied_transitions, ChangeChain, JobState};
use crate::db::DbError;
use crate::metrics::{record_transition, record_transitions};

/// Applies `change` on its own (see [`status::change_status_on`]) and counts it.
pub async fn change_status_on(pool: &PgPool, change: &StatusChange) -> Result<Job, DbError> {
    let job = status::change_status_on(pool, change).await?;
    record_transition(change.transition());
    Ok(job)
}

/// Applies `chains` (see [`status_batch::apply_chains`]) and counts the changes of those that
/// applied.
pub async fn apply_chains(pool: &PgPool, chains: &[ChangeChain]) -> Vec<Result<JobState, DbError>> {
    let outcomes = status_batch::apply_chains(pool, chains).await;
    record_transitions(applied_transitions(chains, &outcomes));
    outcomes
}

/// Commits `tx` and counts the changes it applied.
pub async fn commit(tx: StatusTransaction<'_>) -> Result<(), DbError> {
    record_transitions(tx.commit().await?);
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use sqlx::PgPool;
    use swath_domain::{JobStatus, NewJob};

    use super::*;
    use crate::db::jobs::{get_job, insert_jobs};
    use crate::db::status::change_status;
    use crate::metrics::counted_transitions;

    /// The count of `from -> to` transitions so far (tests share the process: compare before and
    /// after, on a transition no other test of this binary counts).
    fn counted(from: JobStatus, to: JobStatus) -> u64 {
        counted_transitions(from, to)
    }

    #[sqlx::test(migrations = "../sql")]
    async fn a_rolled_back_status_change_is_not_counted(pool: PgPool) {
        use JobStatus::*;
        let inserted = insert_jobs(&pool, &[NewJob::new("test_job", "rolled_back", 3)])
            .await
            .unwrap();
        let job = get_job(&pool, inserted[0].id).await.unwrap();
        let before = counted(Initialized, Configured);

        // Applied in a transaction that is then rolled back.
        let mut tx = pool.begin().await.unwrap();
        change_status(&mut tx, &StatusChange::of(&job, Configured))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            counted(Initialized, Configured),
            before,
            "transaction rolled back"
        );

        // Applied in a status transaction dropped without a commit.
        let mut tx = StatusTransaction::begin(&pool).await.unwrap();
        tx.change(&StatusChange::of(&job, Configured))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            counted(Initialized, Configured),
            before,
            "transaction dropped"
        );

        // The first change of a chain whose second change the state machine refuses.
        let chain = ChangeChain::new(StatusChange::of(&job, Configured)).then(StatusChange::new(
            job.id,
            Configured,
            job.attempt,
            Processing,
        ));
        let outcomes = apply_chains(&pool, &[chain]).await;
        assert!(
            matches!(outcomes[0], Err(DbError::InvalidTransition { .. })),
            "{outcomes:?}"
        );
        assert_eq!(get_job(&pool, job.id).await.unwrap().status, Initialized);
        assert_eq!(counted(Initialized, Configured), before, "chain refused");

        // Committed, the change counts.
        let mut tx = StatusTransaction::begin(&pool).await.unwrap();
        tx.change(&StatusChange::of(&job, Configured))
            .await
            .unwrap();
        commit(tx).await.unwrap();
        assert_eq!(counted(Initialized, Configured), before + 1, "committed");
    }
}

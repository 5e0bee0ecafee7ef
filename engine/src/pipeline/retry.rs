//! Recording a failed attempt: the retry policy's changes (see [`crate::attempt::failure`]) applied
//! in one transaction.

use sqlx::PgPool;
use swath_domain::attempt::AttemptFailure;
use swath_domain::Job;
use uuid::Uuid;

use super::transitions;
use crate::attempt::failure::plan_failure;
use crate::attempt::failure::{AttemptBackoff, FailureOutcome};
use crate::db::jobs::JobHead;
use crate::db::status::StatusTransaction;
use crate::db::DbError;

/// Records `failure` of `job`'s current attempt (as seen by the caller) and applies the policy, in
/// one transaction, as `service_id` when given. Fails with `LostRace` when the job moved on
/// meanwhile (e.g. a stale report).
pub async fn record_failure(
    pool: &PgPool,
    job: &Job,
    failure: &AttemptFailure,
    backoff: AttemptBackoff,
    service_id: Option<Uuid>,
) -> Result<(Job, FailureOutcome), DbError> {
    let (chain, outcome) = plan_failure(&JobHead::from(job), failure, backoff, service_id);
    let mut tx = StatusTransaction::begin(pool).await?;
    let mut job = job.clone();
    for change in chain.changes() {
        job = tx.change(change).await?;
    }
    transitions::commit(tx).await?;
    Ok((job, outcome))
}

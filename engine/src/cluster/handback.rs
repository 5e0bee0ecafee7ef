//! Handing back the jobs of instances that are gone (stopped, or declared dead) once their leases
//! ran out:
//!
//! | the job | becomes |
//! |---|---|
//! | claimed, not dispatched (`ready`) | free for any instance |
//! | dispatched to an executor whose attempts outlive an instance (Nomad), still pending or running | adopted by this instance: never dispatched again |
//! | dispatched there, and ended | settled as the tracking loop would (exit code, lost, vanished) |
//! | dispatched there, and the executor cannot be reached | left for the next round |
//! | run by the local executor of the instance that is gone | the attempt died with it: a failed attempt, retried by the policy |
//! | started by its worker before the dispatch was recorded (no reference) | adopted: its worker reports by itself |
//!
//! Every change is a compare-and-set on the owner, status and attempt read, so that two leaders, or
//! a worker reporting meanwhile, never undo each other.

use std::time::Duration;

use sqlx::PgPool;
use swath_domain::attempt::AttemptFailure;
use swath_domain::{Job, JobStatus};

use crate::attempt::failure::AttemptBackoff;
use crate::attempt::failure_of;
use crate::db::leases::{adopt, orphaned_jobs, release};
use crate::db::services::Instance;
use crate::db::DbError;
use crate::executor::{local, AttemptOutcome, Executor};
use crate::pipeline::retry::record_failure;

/// What one hand-back round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandBack {
    /// Orphaned jobs looked at.
    pub found: usize,
    /// Claims cleared.
    pub released: usize,
    /// Running dispatches adopted.
    pub adopted: usize,
    /// Attempts settled (ended dispatches, local attempts that died with their instance).
    pub settled: usize,
    /// Jobs left for a later round (executor unreachable, unknown executor, or the job moved on).
    pub deferred: usize,
}

/// Hands back up to `limit` orphaned jobs; `me` adopts what still runs.
pub async fn hand_back(
    pool: &PgPool,
    executor: &dyn Executor,
    me: &Instance,
    lease: Duration,
    backoff: AttemptBackoff,
    limit: i64,
) -> Result<HandBack, DbError> {
    let mut report = HandBack::default();
    let jobs = orphaned_jobs(pool, limit).await?;
    report.found = jobs.len();
    let tag = me.tag();
    for job in jobs {
        let counted = if job.status == JobStatus::Ready {
            let done = release(pool, &job).await?;
            if done {
                report.released += 1;
            }
            done
        } else {
            match job.executor_ref.as_deref() {
                None => {
                    let done = adopt(pool, &job, me.service_id, &tag, lease).await?;
                    if done {
                        report.adopted += 1;
                    }
                    done
                }
                Some(reference) if reference.starts_with(local::REFERENCE_PREFIX) => {
                    let failure = AttemptFailure::External {
                        subtype: "instance lost".into(),
                        message: format!(
                            "the instance that ran this attempt locally ({}) stopped or died",
                            job.service_id.map(|s| s.to_string()).unwrap_or_default()
                        ),
                    };
                    settle(pool, &job, &failure, backoff, me, &mut report).await?
                }
                Some(reference) if reference.starts_with(&format!("{}/", executor.name())) => {
                    match executor.outcome(reference).await {
                        Ok(AttemptOutcome::Pending | AttemptOutcome::Running) => {
                            let done = adopt(pool, &job, me.service_id, &tag, lease).await?;
                            if done {
                                report.adopted += 1;
                                tracing::info!(
                                    job_id = job.id,
                                    reference,
                                    "adopted a running dispatch of an instance that is gone"
                                );
                            }
                            done
                        }
                        Ok(outcome) => {
                            let Some(failure) = failure_of(&outcome) else {
                                unreachable!("only pending and running attempts have no failure")
                            };
                            let done =
                                settle(pool, &job, &failure, backoff, me, &mut report).await?;
                            if done && outcome == AttemptOutcome::Lost {
                                // A lost allocation may be replaced by the executor: stop it.
                                if let Err(e) = executor.stop(reference).await {
                                    tracing::warn!(job_id = job.id, error = %e, "cannot stop a lost attempt");
                                }
                            }
                            done
                        }
                        Err(e) => {
                            tracing::warn!(job_id = job.id, error = %e, "cannot ask the executor about an orphaned attempt; trying again later");
                            false
                        }
                    }
                }
                Some(reference) => {
                    tracing::warn!(
                        job_id = job.id,
                        reference,
                        executor = executor.name(),
                        "an orphaned attempt of another executor: left to an instance that runs it"
                    );
                    false
                }
            }
        };
        if !counted {
            report.deferred += 1;
        }
    }
    Ok(report)
}

/// Records `failure` for the attempt of `job` (as read). Returns whether it was recorded (a worker
/// that reported meanwhile wins).
async fn settle(
    pool: &PgPool,
    job: &Job,
    failure: &AttemptFailure,
    backoff: AttemptBackoff,
    me: &Instance,
    report: &mut HandBack,
) -> Result<bool, DbError> {
    match record_failure(pool, job, failure, backoff, Some(me.service_id)).await {
        Ok(_) => {
            report.settled += 1;
            Ok(true)
        }
        Err(DbError::LostRace { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use sqlx::PgPool;
    use swath_domain::NewJob;

    use super::*;
    use crate::db::jobs::{get_job, insert_jobs};
    use crate::db::services::{declare_dead, register, renew_leases};
    use crate::db::testing;
    use crate::executor::{DispatchRequest, ExecutorError};

    /// An executor whose attempts outlive instances, answering from a table.
    struct Remote(Mutex<BTreeMap<String, AttemptOutcome>>);

    #[async_trait]
    impl Executor for Remote {
        fn name(&self) -> &'static str {
            "remote"
        }
        async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
            Ok(BTreeMap::new())
        }
        async fn dispatch(&self, _: &DispatchRequest) -> Result<String, ExecutorError> {
            Err(ExecutorError::Refused("not in this test".into()))
        }
        async fn outcome(&self, reference: &str) -> Result<AttemptOutcome, ExecutorError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(reference)
                .cloned()
                .unwrap_or(AttemptOutcome::Unknown))
        }
        async fn stop(&self, _: &str) -> Result<(), ExecutorError> {
            Ok(())
        }
    }

    /// A job set to `status` by raw SQL, owned by `owner` with a lease ending in `lease_secs`.
    async fn job(
        pool: &PgPool,
        name: &str,
        status: JobStatus,
        reference: Option<&str>,
        owner: uuid::Uuid,
        lease_secs: f64,
    ) -> Job {
        let inserted = insert_jobs(pool, &[NewJob::new("test_job", name, 3)])
            .await
            .unwrap();
        let id = inserted[0].id;
        let path = [
            JobStatus::Configured,
            JobStatus::Ready,
            JobStatus::Queued,
            JobStatus::Started,
        ];
        for s in path.iter().take_while(|s| s.id() <= status.id()) {
            testing::set_status(pool, id, *s).await;
        }
        testing::set_owner(pool, id, owner, reference, lease_secs).await;
        get_job(pool, id).await.unwrap()
    }

    fn backoff() -> AttemptBackoff {
        AttemptBackoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        }
    }

    #[sqlx::test(migrations = "../sql")]
    async fn leases_are_renewed_by_their_owner_and_handed_back_once_it_is_gone(pool: PgPool) {
        let gone = Instance::new("gone");
        let me = Instance::new("me");
        register(&pool, &gone).await.unwrap();
        register(&pool, &me).await.unwrap();
        let claimed = job(
            &pool,
            "claimed",
            JobStatus::Ready,
            None,
            gone.service_id,
            -1.0,
        )
        .await;
        let running = job(
            &pool,
            "running",
            JobStatus::Started,
            Some("remote/a"),
            gone.service_id,
            0.5,
        )
        .await;
        let ended = job(
            &pool,
            "ended",
            JobStatus::Queued,
            Some("remote/b"),
            gone.service_id,
            -1.0,
        )
        .await;
        let local = job(
            &pool,
            "local",
            JobStatus::Started,
            Some("local/x-1"),
            gone.service_id,
            -1.0,
        )
        .await;
        let alive_lease = job(
            &pool,
            "alive",
            JobStatus::Ready,
            None,
            gone.service_id,
            600.0,
        )
        .await;
        let remote = Remote(Mutex::new(BTreeMap::from([
            ("remote/a".to_string(), AttemptOutcome::Running),
            ("remote/b".to_string(), AttemptOutcome::Exited(2)),
        ])));
        let lease = Duration::from_secs(60);

        // While its owner is alive, nothing is handed back, and its heartbeat renews the leases of
        // what it dispatched (not its claims).
        let round = hand_back(&pool, &remote, &me, lease, backoff(), 100)
            .await
            .unwrap();
        assert_eq!(round.found, 0, "{round:?}");
        let renewed = renew_leases(&pool, gone.service_id, lease).await.unwrap();
        assert_eq!(renewed, 3, "running, ended and local are dispatched");
        let after = get_job(&pool, running.id).await.unwrap();
        assert!(after.lease_expires_at > running.lease_expires_at);

        // Gone: declared dead; its renewed leases still hold until they run out.
        testing::age_heartbeat(&pool, gone.service_id).await;
        declare_dead(&pool, Duration::from_secs(10)).await.unwrap();
        let round = hand_back(&pool, &remote, &me, lease, backoff(), 100)
            .await
            .unwrap();
        assert_eq!(
            (round.found, round.released),
            (1, 1),
            "only the claim's lease ran out: {round:?}"
        );
        testing::expire_leases_except(&pool, alive_lease.id).await;
        let round = hand_back(&pool, &remote, &me, lease, backoff(), 100)
            .await
            .unwrap();
        assert_eq!(
            (round.found, round.adopted, round.settled, round.deferred),
            (3, 1, 2, 0),
            "{round:?}"
        );

        let claimed = get_job(&pool, claimed.id).await.unwrap();
        assert_eq!(
            (claimed.status, claimed.service_id),
            (JobStatus::Ready, None)
        );
        let running = get_job(&pool, running.id).await.unwrap();
        assert_eq!(
            running.status,
            JobStatus::Started,
            "adopted, not dispatched again"
        );
        assert_eq!(running.service_id, Some(me.service_id));
        assert_eq!(running.tag, Some(me.tag()));
        let ended = get_job(&pool, ended.id).await.unwrap();
        assert_eq!(
            (ended.status, ended.attempt),
            (JobStatus::Ready, 2),
            "exit 2: retried"
        );
        let local = get_job(&pool, local.id).await.unwrap();
        assert_eq!(
            (local.status, local.attempt),
            (JobStatus::Ready, 2),
            "died with its instance: retried"
        );
        let alive_lease = get_job(&pool, alive_lease.id).await.unwrap();
        assert_eq!(
            alive_lease.service_id,
            Some(gone.service_id),
            "a live claim is never taken"
        );

        // Nothing is left, and a second round does nothing.
        let round = hand_back(&pool, &remote, &me, lease, backoff(), 100)
            .await
            .unwrap();
        assert_eq!(round.found, 0, "{round:?}");
    }
}

//! Claiming ready jobs and the retry policy, against the database.

use std::time::Duration;

use sqlx::PgPool;
use swath_domain::attempt::AttemptFailure;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::attempt::failure::{AttemptBackoff, FailureOutcome, StatusTimeouts};
use swath_engine::db::claim::{claim_ready_jobs, Claimant};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::pipeline::retry::record_failure;
use uuid::Uuid;

use support::drive;

/// `n` ready `test_job`s named `job-NNN`; job i has `priorities[i % len]` and was published i
/// minutes after noon.
async fn ready_jobs(pool: &PgPool, n: usize, priorities: &[JobPriority]) -> Vec<Job> {
    ready_jobs_named(pool, "job", n, priorities).await
}

/// Like [`ready_jobs`], named `<prefix>-NNN`.
async fn ready_jobs_named(
    pool: &PgPool,
    prefix: &str,
    n: usize,
    priorities: &[JobPriority],
) -> Vec<Job> {
    let new: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut j = NewJob::new("test_job", format!("{prefix}-{i:03}"), 3);
            j.priority = priorities[i % priorities.len()];
            j.input_published_at =
                Some(format!("2024-03-01T12:{:02}:00Z", i % 60).parse().unwrap());
            j
        })
        .collect();
    let ids = insert_jobs(pool, &new).await.unwrap();
    let mut jobs = Vec::new();
    for inserted in ids {
        let job = get_job(pool, inserted.id).await.unwrap();
        jobs.push(drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await);
    }
    jobs
}

fn claimant(lease: Duration) -> Claimant {
    Claimant {
        service_id: Uuid::new_v4(),
        tag: serde_json::json!({"host": "test", "name": "swath"}),
        lease,
    }
}

fn types() -> Vec<String> {
    vec!["test_job".to_string()]
}

#[sqlx::test(migrations = "../sql")]
async fn claims_follow_priority_then_the_oldest_input_and_hold_a_lease(pool: PgPool) {
    use JobPriority::*;
    let jobs = ready_jobs(&pool, 6, &[Reprocessing, Delayed, Nrt]).await;
    let a = claimant(Duration::from_secs(600));
    let claimed = claim_ready_jobs(&pool, &a, &types(), 3).await.unwrap();
    let names: Vec<&str> = claimed.iter().map(|j| j.name.as_str()).collect();
    // nrt jobs are 2 and 5 (oldest first), then the oldest delayed job (1).
    assert_eq!(names, vec!["job-002", "job-005", "job-001"]);
    assert!(claimed
        .iter()
        .all(|j| j.service_id == Some(a.service_id) && j.lease_expires_at.is_some()));
    assert!(
        claimed.iter().all(|j| j.status == JobStatus::Ready),
        "a claim does not change the status"
    );

    // Another instance gets the rest, never a leased job.
    let b = claimant(Duration::from_secs(600));
    let rest = claim_ready_jobs(&pool, &b, &types(), 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        vec!["job-004", "job-000", "job-003"]
    );
    assert!(
        claim_ready_jobs(&pool, &claimant(Duration::from_secs(1)), &types(), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // An expired lease (its instance died) frees the job for others.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1")
        .bind(jobs[2].id)
        .execute(&pool)
        .await
        .unwrap();
    let c = claimant(Duration::from_secs(600));
    let taken = claim_ready_jobs(&pool, &c, &types(), 10).await.unwrap();
    assert_eq!(
        taken.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[2].id]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn concurrent_claims_never_take_a_job_twice(pool: PgPool) {
    ready_jobs(&pool, 60, &[JobPriority::Nrt]).await;
    let spawn = || {
        let pool = pool.clone();
        tokio::spawn(async move {
            claim_ready_jobs(&pool, &claimant(Duration::from_secs(600)), &types(), 45)
                .await
                .unwrap()
        })
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.len() + b.len(), 60, "together they take every job");
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|j| j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60, "and none twice");
}

#[sqlx::test(migrations = "../sql")]
async fn external_errors_are_retried_with_backoff_then_fail_with_every_error_kept(pool: PgPool) {
    let job = ready_jobs(&pool, 1, &[JobPriority::Nrt]).await.remove(0);
    let backoff = AttemptBackoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
    };
    let mut job = drive(&pool, job, &[JobStatus::Queued, JobStatus::Started]).await;
    for attempt in 1..=3 {
        assert_eq!(job.attempt, attempt);
        // Claimed, dispatched and failing with exit code 2 (or, the first time, before it started).
        let failure = AttemptFailure::External {
            subtype: "exit code 2".into(),
            message: format!("storage unavailable (attempt {attempt})"),
        };
        let (after, outcome) = record_failure(&pool, &job, &failure, backoff, None)
            .await
            .unwrap();
        if attempt < 3 {
            let FailureOutcome::Retried {
                attempt: next,
                not_before,
            } = outcome
            else {
                panic!("{outcome:?}")
            };
            assert_eq!(next, attempt + 1);
            let wait = not_before - chrono::Utc::now();
            let expected = 30 * (1 << (attempt - 1));
            assert!(
                wait <= chrono::TimeDelta::seconds(expected)
                    && wait >= chrono::TimeDelta::seconds(expected / 2 - 1),
                "{wait}"
            );
            assert_eq!((after.status, after.service_id), (JobStatus::Ready, None));
            // Not claimable before its time.
            assert!(
                claim_ready_jobs(&pool, &claimant(Duration::from_secs(60)), &types(), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            sqlx::query("UPDATE jobs SET next_attempt_at = now() WHERE id = $1")
                .bind(after.id)
                .execute(&pool)
                .await
                .unwrap();
            let claimed = claim_ready_jobs(&pool, &claimant(Duration::from_secs(60)), &types(), 10)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
            job = drive(
                &pool,
                claimed.into_iter().next().unwrap(),
                &[JobStatus::Queued, JobStatus::Started],
            )
            .await;
        } else {
            assert_eq!(outcome, FailureOutcome::Failed);
            assert_eq!(after.status, JobStatus::InternalError);
            assert_eq!(
                after.status_error_subtype.as_deref(),
                Some("attempts exhausted")
            );
            assert!(after.status_message.as_deref().unwrap().contains(
                "3 attempts failed; the last one: exit code 2: storage unavailable (attempt 3)"
            ));
            job = after;
        }
    }
    let errors: Vec<(i32, String)> = job_history(&pool, job.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.status == JobStatus::ExternalError)
        .map(|h| (h.attempt, h.error_message.unwrap()))
        .collect();
    assert_eq!(errors.len(), 3, "every attempt's error is kept: {errors:?}");
    assert_eq!(
        errors[1],
        (2, "storage unavailable (attempt 2)".to_string())
    );
}

#[sqlx::test(migrations = "../sql")]
async fn other_failures_are_final_and_stale_reports_change_nothing(pool: PgPool) {
    let job = ready_jobs(&pool, 1, &[JobPriority::Nrt]).await.remove(0);
    let running = drive(
        &pool,
        job,
        &[
            JobStatus::Queued,
            JobStatus::Started,
            JobStatus::PreProcessing,
            JobStatus::Processing,
        ],
    )
    .await;
    let failure = AttemptFailure::Internal {
        subtype: "exit code 1".into(),
        message: "SIP unrecoverable error".into(),
    };
    let (after, outcome) =
        record_failure(&pool, &running, &failure, AttemptBackoff::default(), None)
            .await
            .unwrap();
    assert_eq!(
        (after.status, outcome),
        (JobStatus::InternalError, FailureOutcome::Failed)
    );
    // The same report again (a stale duplicate) loses the race and changes nothing.
    let err = record_failure(&pool, &running, &failure, AttemptBackoff::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, swath_engine::db::DbError::LostRace { .. }),
        "{err}"
    );
    assert_eq!(job_history(&pool, after.id).await.unwrap().len(), 8);
}

mod dispatching {
    use super::*;
    use swath_domain::flavor::WorkerFlavor;
    use swath_engine::config::Settings;
    use swath_engine::db::tokens::issue_bootstrap_token;
    use swath_engine::executor::local::LocalExecutor;
    use swath_engine::executor::{DispatchRequest, Executor};
    use swath_engine::pipeline::dispatch::dispatch_round;

    use support::conformance::stand_in_worker;

    fn flavors(slots: u32) -> Vec<WorkerFlavor> {
        vec![WorkerFlavor {
            name: "eo1.xsmall".into(),
            cpus: 1,
            memory_mb: 1024,
            disk_gb: 8,
            local_slots: slots,
            ..WorkerFlavor::default()
        }]
    }

    fn local_executor(dir: &std::path::Path, flavors: Vec<WorkerFlavor>) -> LocalExecutor {
        LocalExecutor::new(
            stand_in_worker(dir),
            "http://127.0.0.1:9".into(),
            dir.join("work"),
            flavors,
        )
    }

    fn script(dir: &std::path::Path, jobs: &[Job], behaviour: &str) {
        for job in jobs {
            std::fs::write(dir.join(job.id.to_string()), behaviour).unwrap();
        }
    }

    fn starts(dir: &std::path::Path, job: &Job) -> usize {
        std::fs::read_to_string(dir.join(format!("{}.starts", job.id)))
            .map_or(0, |t| t.lines().count())
    }

    #[sqlx::test(migrations = "../sql")]
    async fn ready_jobs_are_dispatched_up_to_the_free_slots_and_recorded_queued(pool: PgPool) {
        let dir = tempfile::tempdir().unwrap();
        let jobs = ready_jobs(&pool, 5, &[JobPriority::Nrt]).await;
        script(dir.path(), &jobs, "run");
        let executor = local_executor(dir.path(), flavors(3));
        let registry = Settings::default().registry().unwrap();
        let me = claimant(Duration::from_secs(600));
        let report = dispatch_round(
            &pool,
            &executor,
            &registry,
            &types(),
            &flavors(3),
            &me,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!((report.claimed, report.queued), (3, 3), "{report:?}");
        let queued: Vec<Job> = {
            let mut v = Vec::new();
            for j in &jobs {
                v.push(get_job(&pool, j.id).await.unwrap());
            }
            v
        };
        let dispatched: Vec<&Job> = queued
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .collect();
        assert_eq!(dispatched.len(), 3);
        for job in &dispatched {
            assert_eq!(
                job.executor_ref.as_deref(),
                Some(format!("local/{}-1", job.uid).as_str())
            );
            assert_eq!(job.service_id, Some(me.service_id));
        }
        // No free slot: the next round dispatches nothing and claims nothing.
        let report = dispatch_round(
            &pool,
            &executor,
            &registry,
            &types(),
            &flavors(3),
            &me,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!(report, Default::default());
        for job in &dispatched {
            executor
                .stop(job.executor_ref.as_deref().unwrap())
                .await
                .unwrap();
        }
    }

    /// The instance starts an attempt and dies before recording it: another instance, once the lease
    /// ran out, dispatches the same token and records the attempt that already runs.
    #[sqlx::test(migrations = "../sql")]
    async fn a_crash_between_dispatch_and_record_never_runs_an_attempt_twice(pool: PgPool) {
        let dir = tempfile::tempdir().unwrap();
        let jobs = ready_jobs(&pool, 1, &[JobPriority::Nrt]).await;
        script(dir.path(), &jobs, "run");
        let executor = local_executor(dir.path(), flavors(2));
        let registry = Settings::default().registry().unwrap();

        let dead = claimant(Duration::from_secs(600));
        let claimed = claim_ready_jobs(&pool, &dead, &types(), 1)
            .await
            .unwrap()
            .remove(0);
        let token = issue_bootstrap_token(
            &pool,
            claimed.id,
            claimed.attempt,
            dead.service_id,
            dead.lease,
        )
        .await
        .unwrap()
        .unwrap();
        let request = DispatchRequest {
            job_id: claimed.id,
            job_type: "test_job".into(),
            attempt: 1,
            idempotency_token: claimed.attempt_token(),
            worker_token: token,
            flavor: flavors(2).remove(0),
            nomad_job: "test-job-processing".into(),
        };
        let first = executor.dispatch(&request).await.unwrap();
        let running_worker_token = request.worker_token.clone();
        // ... and the instance dies here. While its lease holds, nobody else takes the job.
        let other = claimant(Duration::from_secs(600));
        let report = dispatch_round(
            &pool,
            &executor,
            &registry,
            &types(),
            &flavors(2),
            &other,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!(report.claimed, 0);
        sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1")
            .bind(claimed.id)
            .execute(&pool)
            .await
            .unwrap();
        let report = dispatch_round(
            &pool,
            &executor,
            &registry,
            &types(),
            &flavors(2),
            &other,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!((report.claimed, report.queued), (1, 1), "{report:?}");
        let job = get_job(&pool, claimed.id).await.unwrap();
        assert_eq!(
            (job.status, job.executor_ref.as_deref()),
            (JobStatus::Queued, Some(first.as_str()))
        );
        assert_eq!(starts(dir.path(), &job), 1, "the attempt started once");
        // The worker that runs still holds a valid bootstrap secret for its attempt, which it
        // exchanges for its attempt token.
        let attempt_token = swath_engine::db::tokens::new_token();
        let exchanged = swath_engine::db::tokens::exchange_bootstrap_token(
            &pool,
            job.id,
            1,
            &running_worker_token,
            &attempt_token,
        )
        .await
        .unwrap();
        assert_eq!(exchanged, swath_engine::db::tokens::Exchange::Exchanged);
        let (check, _) = swath_engine::db::tokens::job_for_token(&pool, job.id, 1, &attempt_token)
            .await
            .unwrap();
        assert_eq!(
            check,
            swath_engine::db::tokens::TokenCheck::Valid { current_attempt: 1 }
        );
        executor.stop(&first).await.unwrap();
    }
}

mod batched_round {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    use super::*;
    use swath_domain::flavor::WorkerFlavor;
    use swath_engine::config::Settings;
    use swath_engine::db::tokens::{job_for_token, TokenCheck};
    use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};
    use swath_engine::pipeline::dispatch::dispatch_round;

    /// What happens to a job while the executor starts its attempt.
    #[derive(Clone, Copy)]
    enum Meanwhile {
        /// Its worker starts and records the dispatch itself.
        WorkerStarts,
        /// An operator cancels it.
        Cancelled,
    }

    /// Accepts every attempt; meanwhile, lets the database change as a test scripted it.
    struct Scripted {
        pool: PgPool,
        meanwhile: HashMap<i64, Meanwhile>,
        requests: Mutex<Vec<DispatchRequest>>,
        stopped: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Executor for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
            Ok(BTreeMap::from([("eo1.xsmall".to_string(), 10)]))
        }
        async fn dispatch(&self, request: &DispatchRequest) -> Result<String, ExecutorError> {
            self.requests.lock().unwrap().push(request.clone());
            let job = get_job(&self.pool, request.job_id).await.unwrap();
            match self.meanwhile.get(&request.job_id) {
                Some(Meanwhile::WorkerStarts) => {
                    drive(&self.pool, job, &[JobStatus::Queued, JobStatus::Started]).await;
                }
                Some(Meanwhile::Cancelled) => {
                    drive(&self.pool, job, &[JobStatus::Cancelled]).await;
                }
                None => {}
            }
            Ok(format!("scripted/{}", request.idempotency_token))
        }
        async fn outcome(&self, _reference: &str) -> Result<AttemptOutcome, ExecutorError> {
            Ok(AttemptOutcome::Running)
        }
        async fn stop(&self, reference: &str) -> Result<(), ExecutorError> {
            self.stopped.lock().unwrap().push(reference.to_string());
            Ok(())
        }
    }

    fn flavors() -> Vec<WorkerFlavor> {
        vec![WorkerFlavor {
            name: "eo1.xsmall".into(),
            cpus: 1,
            memory_mb: 1024,
            disk_gb: 8,
            local_slots: 10,
            ..WorkerFlavor::default()
        }]
    }

    /// One round issues the tokens of all its jobs and records all their dispatches in one statement
    /// each, and every job keeps the outcome it had when dispatched alone.
    #[sqlx::test(migrations = "../sql")]
    async fn a_round_records_its_dispatches_together_and_each_job_keeps_its_outcome(pool: PgPool) {
        let jobs = ready_jobs(&pool, 4, &[JobPriority::Nrt]).await;
        let executor = Scripted {
            pool: pool.clone(),
            meanwhile: HashMap::from([
                (jobs[1].id, Meanwhile::WorkerStarts),
                (jobs[2].id, Meanwhile::Cancelled),
            ]),
            requests: Mutex::new(Vec::new()),
            stopped: Mutex::new(Vec::new()),
        };
        let registry = Settings::default().registry().unwrap();
        let me = claimant(Duration::from_secs(600));
        let report = dispatch_round(
            &pool,
            &executor,
            &registry,
            &types(),
            &flavors(),
            &me,
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            (
                report.claimed,
                report.queued,
                report.deferred,
                report.refused
            ),
            (4, 3, 1, 0),
            "{report:?}"
        );
        let reference = |job: &Job| format!("scripted/{}-1", job.uid);
        let now: Vec<Job> = {
            let mut v = Vec::new();
            for j in &jobs {
                v.push(get_job(&pool, j.id).await.unwrap());
            }
            v
        };
        for i in [0, 3] {
            assert_eq!(now[i].status, JobStatus::Queued);
            assert_eq!(now[i].executor_ref, Some(reference(&jobs[i])));
            let last = job_history(&pool, jobs[i].id).await.unwrap().pop().unwrap();
            assert_eq!(
                (last.status, last.service_id, last.error_message),
                (
                    JobStatus::Queued,
                    Some(me.service_id),
                    Some(format!("dispatched to scripted as {}", reference(&jobs[i])))
                )
            );
        }
        assert_eq!(
            (now[1].status, now[1].executor_ref.clone()),
            (JobStatus::Started, Some(reference(&jobs[1]))),
            "the worker's own record stands; the reference is added"
        );
        assert_eq!(
            (now[2].status, now[2].executor_ref.clone()),
            (JobStatus::Cancelled, None)
        );
        assert_eq!(
            *executor.stopped.lock().unwrap(),
            vec![reference(&jobs[2])],
            "the attempt of a job that moved on is stopped"
        );
        // Every attempt got its own bootstrap secret, which its worker exchanges for its token.
        let requests = executor.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 4);
        for request in &requests {
            let attempt_token = swath_engine::db::tokens::new_token();
            let exchanged = swath_engine::db::tokens::exchange_bootstrap_token(
                &pool,
                request.job_id,
                1,
                &request.worker_token,
                &attempt_token,
            )
            .await
            .unwrap();
            assert_eq!(exchanged, swath_engine::db::tokens::Exchange::Exchanged);
            let (check, _) = job_for_token(&pool, request.job_id, 1, &attempt_token)
                .await
                .unwrap();
            assert_eq!(check, TokenCheck::Valid { current_attempt: 1 });
        }
        let tokens: std::collections::HashSet<&str> =
            requests.iter().map(|r| r.worker_token.as_str()).collect();
        assert_eq!(tokens.len(), 4);
    }
}

mod tracking {
    use super::*;
    use swath_domain::flavor::WorkerFlavor;
    use swath_engine::config::Settings;
    use swath_engine::executor::local::LocalExecutor;
    use swath_engine::executor::Executor;
    use swath_engine::pipeline::dispatch::dispatch_round;
    use swath_engine::pipeline::track::track_round;

    use support::conformance::stand_in_worker;

    fn flavors() -> Vec<WorkerFlavor> {
        vec![WorkerFlavor {
            name: "eo1.xsmall".into(),
            cpus: 1,
            memory_mb: 1024,
            disk_gb: 8,
            local_slots: 8,
            ..WorkerFlavor::default()
        }]
    }

    /// Dispatches `behaviours.len()` jobs whose stand-in workers behave as given, and waits (bounded)
    /// until every one that does not run forever has exited.
    async fn dispatched(
        pool: &PgPool,
        dir: &std::path::Path,
        executor: &LocalExecutor,
        behaviours: &[&str],
    ) -> Vec<Job> {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        let jobs = ready_jobs_named(pool, &prefix, behaviours.len(), &[JobPriority::Nrt]).await;
        for (job, b) in jobs.iter().zip(behaviours) {
            std::fs::write(dir.join(job.id.to_string()), b).unwrap();
        }
        let registry = Settings::default().registry().unwrap();
        let report = dispatch_round(
            pool,
            executor,
            &registry,
            &types(),
            &flavors(),
            &claimant(Duration::from_secs(600)),
            AttemptBackoff::default(),
        )
        .await
        .unwrap();
        assert_eq!(report.queued, behaviours.len(), "{report:?}");
        let mut out = Vec::new();
        for (job, b) in jobs.iter().zip(behaviours) {
            let job = get_job(pool, job.id).await.unwrap();
            if *b != "run" {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while matches!(
                    executor
                        .outcome(job.executor_ref.as_deref().unwrap())
                        .await
                        .unwrap(),
                    swath_engine::executor::AttemptOutcome::Running
                ) {
                    assert!(std::time::Instant::now() < deadline);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            out.push(job);
        }
        out
    }

    #[sqlx::test(migrations = "../sql")]
    async fn exits_without_a_report_are_settled_by_their_code(pool: PgPool) {
        let dir = tempfile::tempdir().unwrap();
        let executor = LocalExecutor::new(
            stand_in_worker(dir.path()),
            "http://127.0.0.1:9".into(),
            dir.path().join("work"),
            flavors(),
        );
        let jobs = dispatched(&pool, dir.path(), &executor, &["2", "1", "0", "run"]).await;
        let timeouts = StatusTimeouts::default();
        let report = track_round(
            &pool,
            &executor,
            &timeouts,
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.tracked, report.settled, report.timed_out),
            (4, 3, 0),
            "{report:?}"
        );
        let now: Vec<Job> = {
            let mut v = Vec::new();
            for j in &jobs {
                v.push(get_job(&pool, j.id).await.unwrap());
            }
            v
        };
        assert_eq!(
            (now[0].status, now[0].attempt),
            (JobStatus::Ready, 2),
            "exit 2: a new attempt"
        );
        assert_eq!(now[1].status, JobStatus::InternalError);
        assert_eq!(now[1].status_error_subtype.as_deref(), Some("exit code 1"));
        assert_eq!(now[2].status, JobStatus::InternalError);
        assert!(now[2]
            .status_message
            .as_deref()
            .unwrap()
            .contains("without reporting a result"));
        assert_eq!(
            now[3].status,
            JobStatus::Queued,
            "still running, within its timeout"
        );

        // The running one outlives a (zero) queued timeout: stopped and retried.
        let strict = StatusTimeouts(vec![(JobStatus::Queued, Duration::ZERO)]);
        let report = track_round(
            &pool,
            &executor,
            &strict,
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!((report.timed_out, report.settled), (1, 1), "{report:?}");
        let job = get_job(&pool, jobs[3].id).await.unwrap();
        assert_eq!((job.status, job.attempt), (JobStatus::Ready, 2));
        let stopped = executor
            .outcome(jobs[3].executor_ref.as_deref().unwrap())
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut stopped = stopped;
        while matches!(stopped, swath_engine::executor::AttemptOutcome::Running) {
            assert!(
                std::time::Instant::now() < deadline,
                "the timed-out attempt was stopped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            stopped = executor
                .outcome(jobs[3].executor_ref.as_deref().unwrap())
                .await
                .unwrap();
        }
        assert!(
            matches!(stopped, swath_engine::executor::AttemptOutcome::Failed(_)),
            "{stopped:?}"
        );
    }

    #[sqlx::test(migrations = "../sql")]
    async fn an_attempt_the_executor_forgot_is_retried_and_reports_win_races(pool: PgPool) {
        let dir = tempfile::tempdir().unwrap();
        let executor = LocalExecutor::new(
            stand_in_worker(dir.path()),
            "http://127.0.0.1:9".into(),
            dir.path().join("work"),
            flavors(),
        );
        let jobs = dispatched(&pool, dir.path(), &executor, &["2"]).await;
        // The worker reported its external error itself before exiting: the job already moved on.
        let job = get_job(&pool, jobs[0].id).await.unwrap();
        let (after, _) = record_failure(
            &pool,
            &job,
            &AttemptFailure::External {
                subtype: "storage".into(),
                message: "reported by the worker".into(),
            },
            AttemptBackoff::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(after.attempt, 2);
        let report = track_round(
            &pool,
            &executor,
            &StatusTimeouts::default(),
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!(report.tracked, 0, "nothing in flight");
        assert_eq!(
            get_job(&pool, job.id).await.unwrap().attempt,
            2,
            "counted once"
        );

        // A restarted local executor knows nothing of earlier attempts.
        let forgetful = LocalExecutor::new(
            stand_in_worker(dir.path()),
            "http://127.0.0.1:9".into(),
            dir.path().join("work"),
            flavors(),
        );
        let jobs = dispatched(&pool, dir.path(), &executor, &["run"]).await;
        let report = track_round(
            &pool,
            &forgetful,
            &StatusTimeouts::default(),
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!(report.settled, 1);
        let job = get_job(&pool, jobs[0].id).await.unwrap();
        assert_eq!(
            (job.status, job.status_error_subtype.as_deref()),
            (JobStatus::Ready, None)
        );
        let vanished = support::last_external_error(&pool, job.id).await;
        assert_eq!(vanished.error_subtype.as_deref(), Some("vanished"));
        executor
            .stop(jobs[0].executor_ref.as_deref().unwrap())
            .await
            .unwrap();
    }

    #[sqlx::test(migrations = "../sql")]
    async fn only_attempts_past_their_status_timeout_are_stopped(pool: PgPool) {
        let dir = tempfile::tempdir().unwrap();
        let executor = LocalExecutor::new(
            stand_in_worker(dir.path()),
            "http://127.0.0.1:9".into(),
            dir.path().join("work"),
            flavors(),
        );
        let jobs = dispatched(&pool, dir.path(), &executor, &["run", "run"]).await;
        // Time cannot be faked: moving status_changed_at is a transition, and queued -> queued is refused.
        let err = sqlx::query(
            "UPDATE jobs SET status_changed_at = now() - interval '2 hours' WHERE id = $1",
        )
        .bind(jobs[0].id)
        .execute(&pool)
        .await
        .unwrap_err();
        assert!(err.to_string().contains("queued -> queued"), "{err}");
        let processing = drive(
            &pool,
            jobs[1].clone(),
            &[
                JobStatus::Started,
                JobStatus::PreProcessing,
                JobStatus::Processing,
            ],
        )
        .await;
        let timeouts = StatusTimeouts(vec![
            (JobStatus::Queued, Duration::ZERO),
            (JobStatus::Processing, Duration::from_secs(3600)),
        ]);
        let report = track_round(
            &pool,
            &executor,
            &timeouts,
            AttemptBackoff::default(),
            None,
            100,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.tracked, report.timed_out, report.settled),
            (2, 1, 1),
            "processing for seconds is fine: {report:?}"
        );
        let queued = get_job(&pool, jobs[0].id).await.unwrap();
        assert_eq!((queued.status, queued.attempt), (JobStatus::Ready, 2));
        let timeout = support::last_external_error(&pool, queued.id).await;
        assert_eq!(timeout.error_subtype.as_deref(), Some("timeout"));
        assert_eq!(
            get_job(&pool, processing.id).await.unwrap().status,
            JobStatus::Processing
        );
        for job in &jobs {
            executor
                .stop(job.executor_ref.as_deref().unwrap())
                .await
                .unwrap();
        }
    }
}

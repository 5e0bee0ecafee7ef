//! Status changes in batches: each change of a batch has its own outcome, the one it would have had
//! alone, and the triggers (transition check, history, wake-ups, notifications) fire for every row.

use std::time::Duration;

use sqlx::PgPool;
use swath_domain::{Job, JobStatus};
use swath_engine::db::history::job_history;
use swath_engine::db::jobs::get_job;
use swath_engine::db::status::StatusChange;
use swath_engine::db::status_batch::{apply_chains, ChangeChain, JobState};
use swath_engine::db::DbError;

use support::{drive, new_test_job};

/// A `test_job` called `name`, driven to `status` along the nominal flow.
async fn job_in(pool: &PgPool, name: &str, status: JobStatus) -> Job {
    let flow = [
        JobStatus::Configured,
        JobStatus::Ready,
        JobStatus::Queued,
        JobStatus::Started,
        JobStatus::PreProcessing,
        JobStatus::Processing,
    ];
    let steps = flow
        .iter()
        .position(|&s| s == status)
        .expect("a status of the flow")
        + 1;
    drive(pool, new_test_job(pool, name).await, &flow[..steps]).await
}

fn change(job: &Job, to: JobStatus) -> StatusChange {
    StatusChange::of(job, to).message(format!("batch: {} -> {to}", job.status))
}

async fn history_len(pool: &PgPool, job: &Job) -> usize {
    job_history(pool, job.id).await.unwrap().len()
}

#[sqlx::test(migrations = "../sql")]
async fn each_change_of_a_batch_has_its_own_outcome(pool: PgPool) {
    let applies = job_in(&pool, "applies", JobStatus::Queued).await;
    let lost = job_in(&pool, "lost", JobStatus::Queued).await;
    let moved = drive(&pool, lost.clone(), &[JobStatus::Started]).await;
    let invalid = job_in(&pool, "invalid", JobStatus::Queued).await;
    let early = job_in(&pool, "early", JobStatus::Ready).await;
    let stale = job_in(&pool, "stale", JobStatus::Started).await;
    let retried = drive(
        &pool,
        stale.clone(),
        &[JobStatus::ExternalError, JobStatus::Ready],
    )
    .await;
    let before = [
        history_len(&pool, &moved).await,
        history_len(&pool, &invalid).await,
        history_len(&pool, &retried).await,
    ];
    let chains: Vec<ChangeChain> = vec![
        change(&applies, JobStatus::Started).into(),
        // Seen queued, but the job has moved on: the race is lost and reported as found.
        change(&lost, JobStatus::Started).into(),
        // The state machine refuses it: only this one fails.
        change(&invalid, JobStatus::Processing).into(),
        // A dispatch recorded together with the start that proves it.
        ChangeChain::new(change(&early, JobStatus::Queued)).then(StatusChange::new(
            early.id,
            JobStatus::Queued,
            1,
            JobStatus::Started,
        )),
        // A report of attempt 1 once attempt 2 has started.
        change(&stale, JobStatus::PreProcessing).into(),
        StatusChange::new(987_654, JobStatus::Queued, 1, JobStatus::Started).into(),
        // The same job again: applied after its first change, in order.
        StatusChange::new(applies.id, JobStatus::Started, 1, JobStatus::PreProcessing).into(),
    ];
    let outcomes = apply_chains(&pool, &chains).await;
    assert_eq!(outcomes.len(), chains.len());

    let state = |job: &Job, status| JobState {
        id: job.id,
        status,
        attempt: job.attempt,
    };
    assert_eq!(
        outcomes[0].as_ref().unwrap(),
        &state(&applies, JobStatus::Started)
    );
    match &outcomes[1] {
        Err(DbError::LostRace {
            expected,
            actual,
            actual_attempt,
            ..
        }) => assert_eq!(
            (*expected, *actual, *actual_attempt),
            (JobStatus::Queued, JobStatus::Started, 1)
        ),
        other => panic!("{other:?}"),
    }
    match &outcomes[2] {
        Err(e @ DbError::InvalidTransition { .. }) => {
            assert!(e.to_string().contains("queued -> processing"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        outcomes[3].as_ref().unwrap(),
        &state(&early, JobStatus::Started)
    );
    match &outcomes[4] {
        Err(DbError::LostRace {
            expected_attempt: 1,
            actual: JobStatus::Ready,
            actual_attempt: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(outcomes[5], Err(DbError::NotFound(987_654))),
        "{:?}",
        outcomes[5]
    );
    assert_eq!(
        outcomes[6].as_ref().unwrap(),
        &state(&applies, JobStatus::PreProcessing)
    );

    // What failed changed nothing; what applied has its history rows.
    assert_eq!(
        [
            history_len(&pool, &moved).await,
            history_len(&pool, &invalid).await,
            history_len(&pool, &retried).await,
        ],
        before
    );
    assert_eq!(
        get_job(&pool, invalid.id).await.unwrap().status,
        JobStatus::Queued
    );
    let history = job_history(&pool, applies.id).await.unwrap();
    let last: Vec<_> = history[history.len() - 2..]
        .iter()
        .map(|h| (h.previous_status, h.status, h.attempt))
        .collect();
    assert_eq!(
        last,
        vec![
            (Some(JobStatus::Queued), JobStatus::Started, 1),
            (Some(JobStatus::Started), JobStatus::PreProcessing, 1)
        ]
    );
    assert_eq!(
        history[history.len() - 2].error_message.as_deref(),
        Some("batch: queued -> started")
    );
    let history = job_history(&pool, early.id).await.unwrap();
    assert_eq!(
        history[history.len() - 2..]
            .iter()
            .map(|h| h.status)
            .collect::<Vec<_>>(),
        vec![JobStatus::Queued, JobStatus::Started]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_batch_whose_statement_fails_is_applied_one_by_one(pool: PgPool) {
    let good = job_in(&pool, "good", JobStatus::Queued).await;
    let bad = job_in(&pool, "bad", JobStatus::Queued).await;
    let chained = job_in(&pool, "chained", JobStatus::Started).await;
    let broken = job_in(&pool, "broken", JobStatus::Started).await;
    // PostgreSQL cannot store a NUL: the multi-row statement fails as a whole.
    let chains: Vec<ChangeChain> = vec![
        change(&good, JobStatus::Started).into(),
        StatusChange::of(&bad, JobStatus::Started)
            .message("a\0b")
            .into(),
    ];
    let outcomes = apply_chains(&pool, &chains).await;
    assert_eq!(outcomes[0].as_ref().unwrap().status, JobStatus::Started);
    assert!(
        matches!(outcomes[1], Err(DbError::Sqlx(_))),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(
        get_job(&pool, bad.id).await.unwrap().status,
        JobStatus::Queued
    );

    let chains: Vec<ChangeChain> = vec![
        ChangeChain::new(change(&chained, JobStatus::PreProcessing)).then(StatusChange::new(
            chained.id,
            JobStatus::PreProcessing,
            1,
            JobStatus::Processing,
        )),
        // Its second change does not follow its first: the chain fails whole.
        ChangeChain::new(change(&broken, JobStatus::PreProcessing)).then(StatusChange::new(
            broken.id,
            JobStatus::Started,
            1,
            JobStatus::PreProcessing,
        )),
    ];
    let outcomes = apply_chains(&pool, &chains).await;
    assert_eq!(outcomes[0].as_ref().unwrap().status, JobStatus::Processing);
    assert!(
        matches!(outcomes[1], Err(DbError::LostRace { .. })),
        "{:?}",
        outcomes[1]
    );
    let broken_now = get_job(&pool, broken.id).await.unwrap();
    assert_eq!(
        broken_now.status,
        JobStatus::Started,
        "a chain applies all or nothing"
    );
    assert_eq!(
        history_len(&pool, &broken_now).await,
        history_len(&pool, &broken).await
    );
}

#[sqlx::test(migrations = "../sql")]
async fn triggers_fire_for_every_row_of_a_batch(pool: PgPool) {
    let failing = job_in(&pool, "failing", JobStatus::Processing).await;
    let finishing = job_in(&pool, "finishing", JobStatus::Processing).await;
    let finishing = drive(&pool, finishing, &[JobStatus::PostProcessing]).await;
    let waiting = drive(
        &pool,
        new_test_job(&pool, "waiting").await,
        &[JobStatus::Configured],
    )
    .await;
    sqlx::query("UPDATE jobs SET depends_on = $2, recheck_at = NULL WHERE id = $1")
        .bind(waiting.id)
        .bind(finishing.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("swath_ready").await.unwrap();

    let chains: Vec<ChangeChain> = vec![
        ChangeChain::new(
            StatusChange::of(&failing, JobStatus::ExternalError).error("storage", "unreachable"),
        )
        .then(
            StatusChange::new(failing.id, JobStatus::ExternalError, 1, JobStatus::Ready)
                .next_attempt(None),
        ),
        StatusChange::of(&finishing, JobStatus::Processed).into(),
    ];
    let outcomes = apply_chains(&pool, &chains).await;
    assert_eq!(
        outcomes[0].as_ref().unwrap(),
        &JobState {
            id: failing.id,
            status: JobStatus::Ready,
            attempt: 2
        }
    );
    assert_eq!(outcomes[1].as_ref().unwrap().status, JobStatus::Processed);

    let note = tokio::time::timeout(Duration::from_secs(30), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(
        note.payload(),
        "test_job",
        "the dispatcher hears of the retry"
    );
    let recheck: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT recheck_at FROM jobs WHERE id = $1")
            .bind(waiting.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(recheck.is_some(), "the job waiting for it is woken");
    let history = job_history(&pool, failing.id).await.unwrap();
    let last: Vec<_> = history[history.len() - 2..]
        .iter()
        .map(|h| (h.status, h.attempt, h.error_subtype.as_deref()))
        .collect();
    assert_eq!(
        last,
        vec![
            (JobStatus::ExternalError, 1, Some("storage")),
            (JobStatus::Ready, 2, None)
        ]
    );

    // The transition check still guards raw multi-row updates.
    let err = sqlx::query("UPDATE jobs SET status = 7 WHERE id = ANY ($1)")
        .bind(vec![failing.id, finishing.id])
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid job status transition"),
        "{err}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn attempt_tokens_go_only_with_their_job(pool: PgPool) {
    let job = job_in(&pool, "tokened", JobStatus::Ready).await;
    support::token_for_ready(&pool, &job).await;
    for statement in [
        "DELETE FROM attempt_tokens WHERE job_id = $1",
        "UPDATE attempt_tokens SET attempt = 2 WHERE job_id = $1",
    ] {
        let err = sqlx::query(statement)
            .bind(job.id)
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM attempt_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "deleting a job deletes its tokens");
}

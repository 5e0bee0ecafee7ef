//! The state machine, enforced by the database itself: the SQL table agrees with the Rust one, every
//! allowed transition succeeds and every forbidden one fails even as raw SQL, and concurrent
//! compare-and-set changes let exactly one writer win.

use sqlx::{PgPool, Row};
use swath_domain::status::{allowed_transitions, ALL_STATUSES};
use swath_domain::JobStatus;
use swath_engine::db::status::{change_status, change_status_on, StatusChange};
use swath_engine::db::DbError;

use support::{drive, new_test_job, path_to};

#[sqlx::test(migrations = "../sql")]
async fn sql_and_rust_agree_on_statuses_and_transitions(pool: PgPool) {
    let rows = sqlx::query("SELECT id, name FROM job_status ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let sql: Vec<(i16, String)> = rows.iter().map(|r| (r.get("id"), r.get("name"))).collect();
    let rust: Vec<(i16, String)> = ALL_STATUSES
        .iter()
        .map(|s| (s.id(), s.name().to_string()))
        .collect();
    assert_eq!(sql, rust);

    let rows = sqlx::query("SELECT from_status, to_status FROM job_status_transitions ORDER BY from_status NULLS FIRST, to_status")
        .fetch_all(&pool)
        .await
        .unwrap();
    let sql: Vec<(Option<i16>, i16)> = rows
        .iter()
        .map(|r| (r.get("from_status"), r.get("to_status")))
        .collect();
    let rust: Vec<(Option<i16>, i16)> = allowed_transitions()
        .iter()
        .map(|(f, t)| (f.map(|f| f.id()), t.id()))
        .collect();
    assert_eq!(sql, rust);
}

/// Creates a job whose current status is `status`, walking an allowed path with raw SQL.
async fn job_in(pool: &PgPool, status: JobStatus, name: &str) -> i64 {
    let path = path_to(status);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (job_type, name, status) VALUES ('test_job', $1, $2) RETURNING id",
    )
    .bind(name)
    .bind(path[0].id())
    .fetch_one(pool)
    .await
    .unwrap();
    let mut current = path[0];
    for &next in &path[1..] {
        raw_change(pool, id, current, next)
            .await
            .unwrap_or_else(|e| panic!("path {path:?}: {e}"));
        current = next;
    }
    id
}

/// `UPDATE jobs SET status = to` as any client could issue it (bumping the attempt where the state
/// machine requires a new attempt).
async fn raw_change(
    pool: &PgPool,
    id: i64,
    from: JobStatus,
    to: JobStatus,
) -> Result<(), sqlx::Error> {
    let bump = to == JobStatus::Ready
        && matches!(from, JobStatus::ExternalError | JobStatus::ErrorChecked);
    let sql = if bump {
        "UPDATE jobs SET status = $2, status_changed_at = clock_timestamp(), attempt = attempt + 1 WHERE id = $1"
    } else {
        "UPDATE jobs SET status = $2, status_changed_at = clock_timestamp() WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(to.id())
        .execute(pool)
        .await
        .map(|_| ())
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

#[sqlx::test(migrations = "../sql")]
async fn every_transition_is_allowed_or_rejected_by_the_database_as_the_table_says(pool: PgPool) {
    let mut checked = 0;
    for to in ALL_STATUSES {
        let inserted =
            sqlx::query("INSERT INTO jobs (job_type, name, status) VALUES ('test_job', $1, $2)")
                .bind(format!("new-{}", to.name()))
                .bind(to.id())
                .execute(&pool)
                .await;
        match (JobStatus::can_transition(None, to), inserted) {
            (true, Ok(_)) => {}
            (false, Err(e)) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("SW001"), "new -> {to}: {e}")
            }
            (allowed, result) => panic!("new -> {to}: allowed={allowed}, got {result:?}"),
        }
        checked += 1;
    }
    for from in ALL_STATUSES {
        for to in ALL_STATUSES {
            let id = job_in(&pool, from, &format!("{}-to-{}", from.name(), to.name())).await;
            let history_before: i64 =
                sqlx::query_scalar("SELECT count(*) FROM job_status_changes WHERE job_id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let result = raw_change(&pool, id, from, to).await;
            let row = sqlx::query("SELECT status, (SELECT count(*) FROM job_status_changes WHERE job_id = $1) AS n FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            let (status, history_after): (i16, i64) = (row.get("status"), row.get("n"));
            if JobStatus::can_transition(Some(from), to) {
                assert!(result.is_ok(), "{from} -> {to} must be allowed: {result:?}");
                assert_eq!(status, to.id());
                assert_eq!(
                    history_after,
                    history_before + 1,
                    "{from} -> {to} writes one history row"
                );
            } else {
                let err = result.expect_err(&format!("{from} -> {to} must be rejected"));
                assert_eq!(
                    sqlstate(&err).as_deref(),
                    Some("SW001"),
                    "{from} -> {to}: {err}"
                );
                assert!(
                    err.to_string()
                        .contains(&format!("{} -> {}", from.name(), to.name())),
                    "{err}"
                );
                assert_eq!(
                    status,
                    from.id(),
                    "a rejected change leaves the status alone"
                );
                assert_eq!(
                    history_after, history_before,
                    "a rejected change writes no history"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 16 + 16 * 16);
}

#[sqlx::test(migrations = "../sql")]
async fn history_rows_cannot_be_written_or_rewritten_directly(pool: PgPool) {
    let job = new_test_job(&pool, "guarded").await;
    let err =
        sqlx::query("INSERT INTO job_status_changes (job_id, status, attempt) VALUES ($1, 12, 1)")
            .bind(job.id)
            .execute(&pool)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("SW003"), "{err}");
    let err = sqlx::query("UPDATE job_status_changes SET status = 12 WHERE job_id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("SW003"), "{err}");
    // Changing anything but the status is not a transition and writes no history.
    sqlx::query("UPDATE jobs SET params = '{\"x\": 1}', executor_ref = 'abc' WHERE id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM job_status_changes WHERE job_id = $1")
        .bind(job.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrations = "../sql")]
async fn compare_and_set_reports_lost_races_invalid_transitions_and_missing_jobs(pool: PgPool) {
    let job = new_test_job(&pool, "cas").await;
    let stale = job.clone();
    let job = drive(&pool, job, &[JobStatus::Configured]).await;

    let err = change_status_on(&pool, &StatusChange::of(&stale, JobStatus::Cancelled))
        .await
        .unwrap_err();
    match err {
        DbError::LostRace {
            expected, actual, ..
        } => {
            assert_eq!(
                (expected, actual),
                (JobStatus::Initialized, JobStatus::Configured)
            );
        }
        other => panic!("expected a lost race, got {other}"),
    }
    let err = change_status_on(&pool, &StatusChange::of(&job, JobStatus::Done))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidTransition { .. }), "{err}");
    assert!(err.to_string().contains("configured -> done"), "{err}");
    let err = change_status_on(
        &pool,
        &StatusChange::new(999_999, JobStatus::Ready, 1, JobStatus::Queued),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::NotFound(999_999)), "{err}");
    // A stale attempt loses too, even with the right status.
    let err = change_status_on(
        &pool,
        &StatusChange::new(job.id, JobStatus::Configured, 2, JobStatus::Ready),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            DbError::LostRace {
                expected_attempt: 2,
                actual_attempt: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_new_attempt_starts_only_by_going_back_to_ready(pool: PgPool) {
    let job = new_test_job(&pool, "attempts").await;
    let job = drive(
        &pool,
        job,
        &[
            JobStatus::Configured,
            JobStatus::Ready,
            JobStatus::Queued,
            JobStatus::Started,
            JobStatus::ExternalError,
        ],
    )
    .await;
    let err = change_status_on(&pool, &StatusChange::of(&job, JobStatus::Ready))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::InvalidAttempt { .. }), "{err}");
    let err = change_status_on(
        &pool,
        &StatusChange::of(&job, JobStatus::InternalError).next_attempt(None),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DbError::InvalidAttempt { .. }), "{err}");
    let retry_at = chrono::Utc::now() + chrono::TimeDelta::minutes(5);
    let job = change_status_on(
        &pool,
        &StatusChange::of(&job, JobStatus::Ready).next_attempt(Some(retry_at)),
    )
    .await
    .unwrap();
    assert_eq!(job.attempt, 2);
    assert_eq!(
        job.next_attempt_at.map(|t| t.timestamp_micros()),
        Some(retry_at.timestamp_micros())
    );
    let err = sqlx::query("UPDATE jobs SET attempt = 1 WHERE id = $1")
        .bind(job.id)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("SW002"), "{err}");
}

#[sqlx::test(migrations = "../sql")]
async fn two_concurrent_changes_of_one_job_let_exactly_one_win(pool: PgPool) {
    // Deterministic interleaving: A changes the job inside an open transaction (holding the row),
    // B tries the same job meanwhile and must wait, then lose once A commits.
    let job = drive(
        &pool,
        new_test_job(&pool, "race").await,
        &[JobStatus::Configured, JobStatus::Ready],
    )
    .await;
    let mut tx = pool.begin().await.unwrap();
    change_status(
        &mut tx,
        &StatusChange::of(&job, JobStatus::Queued).message("A"),
    )
    .await
    .unwrap();
    let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel();
    let b = {
        let pool = pool.clone();
        let change = StatusChange::of(&job, JobStatus::Cancelled).message("B");
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            waiting_tx.send(pid).unwrap();
            change_status(&mut conn, &change).await
        })
    };
    let b_pid = waiting_rx.await.unwrap();
    // Wait (bounded) until B is blocked on A's row lock, so the race really happens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let blocked: bool = sqlx::query_scalar(
            "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(b_pid)
        .fetch_optional(&pool)
        .await
        .unwrap()
        .unwrap_or(false);
        if blocked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never blocked on A's lock"
        );
        tokio::task::yield_now().await;
    }
    tx.commit().await.unwrap();
    let err = b.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            DbError::LostRace {
                actual: JobStatus::Queued,
                ..
            }
        ),
        "B must lose to A: {err}"
    );

    // Free-running races on many jobs: each time exactly one of the two writers wins.
    for i in 0..40 {
        let job = drive(
            &pool,
            new_test_job(&pool, &format!("race-{i}")).await,
            &[JobStatus::Configured, JobStatus::Ready],
        )
        .await;
        let spawn_change = |to| {
            let (pool, change) = (pool.clone(), StatusChange::of(&job, to));
            tokio::spawn(async move { change_status_on(&pool, &change).await })
        };
        let (a, b) = (
            spawn_change(JobStatus::Queued),
            spawn_change(JobStatus::Cancelled),
        );
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "exactly one winner: {a:?} / {b:?}");
        let loser = if a.is_ok() {
            b.unwrap_err()
        } else {
            a.unwrap_err()
        };
        assert!(matches!(loser, DbError::LostRace { .. }), "{loser}");
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_status_changes WHERE job_id = $1")
                .bind(job.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            n, 4,
            "initialized, configured, ready and the winner's change"
        );
    }
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_with_last_status_selects_by_type_and_status(pool: PgPool) {
    let a = new_test_job(&pool, "a").await;
    let _b = drive(
        &pool,
        new_test_job(&pool, "b").await,
        &[JobStatus::Configured],
    )
    .await;
    let c = drive(
        &pool,
        new_test_job(&pool, "c").await,
        &[JobStatus::Cancelled],
    )
    .await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs_with_last_status('test_job', ARRAY[1, 16]::smallint[])",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ids, vec![a.id, c.id]);
    let none: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs_with_last_status('fsc_rlie', ARRAY[1]::smallint[])",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(none.is_empty());
}

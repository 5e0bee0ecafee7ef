//! The status history partitioned by month: the migration converts a history spanning several
//! months without losing or changing a row; partitions are made ahead and rows that landed in the
//! default partition move into their month's; retention drops whole old months while every job
//! keeps its last change (and unfinished jobs their history), leaving recent months untouched.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use sqlx::migrate::Migrate;
use sqlx::PgPool;
use swath_domain::JobStatus;
use swath_engine::db::history::job_history;
use swath_engine::db::retention::{
    ensure_history_partitions, history_months, prune_archived_history, retire_history_partitions,
    HISTORY_MONTHS_AHEAD,
};
use swath_engine::db::MIGRATOR;

/// The version of the migration that partitions the history.
const PARTITIONS: i64 = 20261207000018;

/// First instant of the month `k` months from the current one (UTC).
fn month_start(k: i32) -> DateTime<Utc> {
    let now = Utc::now();
    let this = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .unwrap();
    if k >= 0 {
        this.checked_add_months(Months::new(k as u32)).unwrap()
    } else {
        this.checked_sub_months(Months::new((-k) as u32)).unwrap()
    }
}

/// A time inside the month `k` months from the current one, `day` days after its start.
fn in_month(k: i32, day: i64) -> DateTime<Utc> {
    month_start(k) + chrono::Duration::days(day)
}

/// The partition a row of `time` belongs in.
fn partition_of(time: DateTime<Utc>) -> String {
    format!("job_status_changes_{}", time.format("%Y_%m"))
}

/// Applies, one by one, the migrations before the partitioning one, as a database of the previous
/// release has them.
async fn at_previous_release(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    conn.ensure_migrations_table().await.unwrap();
    for migration in MIGRATOR.iter().filter(|m| m.version < PARTITIONS) {
        conn.apply(migration)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
    }
}

/// Creates a job whose history is `changes` (status, time), oldest first, through real status
/// changes: the history rows come from the jobs triggers. Returns its id.
async fn job_with_history(
    pool: &PgPool,
    name: &str,
    changes: &[(JobStatus, DateTime<Utc>)],
) -> i64 {
    let (first, at) = changes[0];
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (job_type, name, status, status_changed_at) VALUES ('test_job', $1, $2, $3)
         RETURNING id",
    )
    .bind(name)
    .bind(first.id())
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap();
    for &(status, at) in &changes[1..] {
        sqlx::query("UPDATE jobs SET status = $2, status_changed_at = $3 WHERE id = $1")
            .bind(id)
            .bind(status.id())
            .bind(at)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{name} -> {status:?}: {e}"));
    }
    id
}

/// Every history row as JSON, by id, with the partition holding it.
async fn history_rows(pool: &PgPool) -> BTreeMap<i64, (serde_json::Value, String)> {
    let rows: Vec<(i64, serde_json::Value, String)> = sqlx::query_as(
        "SELECT h.id, to_jsonb(h), h.tableoid::regclass::text FROM job_status_changes h ORDER BY h.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, row, part)| (id, (row, part)))
        .collect()
}

/// The statuses of a job's history, oldest first.
async fn statuses(pool: &PgPool, job: i64) -> Vec<JobStatus> {
    job_history(pool, job)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.status)
        .collect()
}

/// The jobs of [`several_months`].
struct Jobs {
    /// Cancelled three months ago: all its history is in months that retention drops.
    gone: i64,
    /// Created five months ago, cancelled last month.
    late: i64,
    /// Created and configured months ago, still waiting: not finished.
    waiting: i64,
    /// Its whole history is two months old or newer.
    recent: i64,
    /// Created and cancelled five months ago.
    short: i64,
}

/// A history spanning the last six months.
async fn several_months(pool: &PgPool) -> Jobs {
    use JobStatus::{Cancelled, Configured, Initialized};
    Jobs {
        gone: job_with_history(
            pool,
            "gone",
            &[
                (Initialized, in_month(-5, 3)),
                (Configured, in_month(-4, 3)),
                (Cancelled, in_month(-3, 3)),
            ],
        )
        .await,
        late: job_with_history(
            pool,
            "late",
            &[
                (Initialized, in_month(-5, 4)),
                (Configured, in_month(-4, 4)),
                (Cancelled, in_month(-1, 4)),
            ],
        )
        .await,
        waiting: job_with_history(
            pool,
            "waiting",
            &[
                (Initialized, in_month(-5, 5)),
                (Configured, in_month(-4, 5)),
            ],
        )
        .await,
        recent: job_with_history(
            pool,
            "recent",
            &[
                (Initialized, in_month(-2, 6)),
                (Configured, in_month(-1, 6)),
                (Cancelled, Utc::now()),
            ],
        )
        .await,
        short: job_with_history(
            pool,
            "short",
            &[(Initialized, in_month(-5, 7)), (Cancelled, in_month(-5, 8))],
        )
        .await,
    }
}

/// The SQLSTATE of a refused statement.
async fn refused(pool: &PgPool, sql: &str) -> String {
    let err = sqlx::query(sql).execute(pool).await.unwrap_err();
    err.as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()))
        .unwrap_or_else(|| panic!("{sql}: {err}"))
}

#[sqlx::test(migrations = false)]
async fn the_migration_keeps_every_row_of_a_history_spanning_months(pool: PgPool) {
    at_previous_release(&pool).await;
    let jobs = several_months(&pool).await;
    let before = history_rows(&pool).await;
    assert_eq!(before.len(), 13);
    let last_id = *before.keys().last().unwrap();

    MIGRATOR.run(&pool).await.unwrap();

    let after = history_rows(&pool).await;
    assert_eq!(after.len(), before.len(), "every row is there");
    for (id, (row, _)) in &before {
        let (moved, part) = &after[id];
        assert_eq!(moved, row, "row {id}: same values");
        let time: DateTime<Utc> = serde_json::from_value(row["time"].clone()).unwrap();
        assert_eq!(part, &partition_of(time), "row {id} sits in its month");
    }
    // A partition for every month from the oldest row's to a few months ahead.
    let months: Vec<String> = history_months(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    let expected: Vec<String> = (-5..=HISTORY_MONTHS_AHEAD)
        .map(|k| partition_of(month_start(k)))
        .collect();
    assert_eq!(months, expected);

    // The history goes on from the same sequence, still written by the jobs triggers only.
    sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
        .bind(jobs.waiting)
        .bind(JobStatus::Ready.id())
        .execute(&pool)
        .await
        .unwrap();
    let next = job_history(&pool, jobs.waiting).await.unwrap();
    assert_eq!(next.last().unwrap().id, last_id + 1);
    assert_eq!(next.last().unwrap().status, JobStatus::Ready);
    let current = partition_of(Utc::now());
    for sql in [
        format!(
            "INSERT INTO job_status_changes (job_id, status, attempt) VALUES ({}, 12, 1)",
            jobs.gone
        ),
        format!(
            "INSERT INTO {current} (job_id, status, attempt) VALUES ({}, 12, 1)",
            jobs.gone
        ),
        "UPDATE job_status_changes SET status = 12".to_string(),
        format!("UPDATE {current} SET status = 12"),
        "UPDATE job_status_changes_archive SET status = 12".to_string(),
    ] {
        assert_eq!(refused(&pool, &sql).await, "SW003", "{sql}");
    }
}

#[sqlx::test(migrations = false)]
async fn retention_drops_old_months_and_keeps_each_last_change(pool: PgPool) {
    at_previous_release(&pool).await;
    let jobs = several_months(&pool).await;
    MIGRATOR.run(&pool).await.unwrap();
    let before = history_rows(&pool).await;
    let recent_months = month_start(-2);
    let recent_rows = |rows: &BTreeMap<i64, (serde_json::Value, String)>| {
        rows.iter()
            .filter(|(_, (row, _))| {
                serde_json::from_value::<DateTime<Utc>>(row["time"].clone()).unwrap()
                    >= recent_months
            })
            .map(|(id, row)| (*id, row.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let retention = (Utc::now() - (recent_months + chrono::Duration::days(1)))
        .to_std()
        .unwrap();

    // A retention longer than the history retires nothing.
    let none = retire_history_partitions(&pool, Duration::from_secs(400 * 86_400))
        .await
        .unwrap();
    assert_eq!((none.partitions, none.kept), (0, 0));

    let retired = retire_history_partitions(&pool, retention).await.unwrap();
    assert_eq!(retired.partitions, 3, "the months of 5, 4 and 3 months ago");
    // gone: cancelled; waiting: both rows (not finished); short: cancelled.
    assert_eq!(retired.kept, 4);
    let months: Vec<String> = history_months(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(months[0], partition_of(recent_months));
    for k in -5..=-3 {
        let name = partition_of(month_start(k));
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!exists, "{name} is dropped");
    }

    use JobStatus::{Cancelled, Configured, Initialized};
    assert_eq!(statuses(&pool, jobs.gone).await, [Cancelled]);
    assert_eq!(statuses(&pool, jobs.late).await, [Cancelled]);
    assert_eq!(
        statuses(&pool, jobs.waiting).await,
        [Initialized, Configured]
    );
    assert_eq!(
        statuses(&pool, jobs.recent).await,
        [Initialized, Configured, Cancelled]
    );
    assert_eq!(statuses(&pool, jobs.short).await, [Cancelled]);
    let after = history_rows(&pool).await;
    // Kept rows keep their ids and values, in the archive partition.
    for job in [jobs.gone, jobs.waiting, jobs.short] {
        for h in job_history(&pool, job).await.unwrap() {
            let (row, part) = &after[&h.id];
            assert_eq!(row, &before[&h.id].0);
            assert_eq!(part, "job_status_changes_archive");
        }
    }
    assert_eq!(
        recent_rows(&after),
        recent_rows(&before),
        "recent months untouched"
    );
    // Every job still has its last change.
    let without: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs j
         WHERE NOT EXISTS (SELECT 1 FROM job_status_changes h
                           WHERE h.job_id = j.id AND h.status = j.status
                             AND h.time = j.status_changed_at)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(without, 0);

    // Again: nothing more to retire.
    let again = retire_history_partitions(&pool, retention).await.unwrap();
    assert_eq!((again.partitions, again.kept), (0, 0));

    // Once the waiting job finishes, its archived rows are no longer needed.
    sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
        .bind(jobs.waiting)
        .bind(Cancelled.id())
        .execute(&pool)
        .await
        .unwrap();
    let pruned = prune_archived_history(&pool, retention, 1).await.unwrap()
        + prune_archived_history(&pool, retention, 100).await.unwrap();
    assert_eq!(pruned, 2);
    assert_eq!(statuses(&pool, jobs.waiting).await, [Cancelled]);
    assert_eq!(
        recent_rows(&history_rows(&pool).await).len(),
        recent_rows(&before).len() + 1
    );
}

#[sqlx::test(migrations = "../sql")]
async fn partitions_are_made_ahead_and_take_their_rows_from_the_default_one(pool: PgPool) {
    // The migration made the current month and the next ones.
    let months = history_months(&pool).await.unwrap();
    assert_eq!(months.len(), HISTORY_MONTHS_AHEAD as usize + 1);
    assert_eq!(months[0].starts, month_start(0));
    assert_eq!(
        ensure_history_partitions(&pool, HISTORY_MONTHS_AHEAD)
            .await
            .unwrap(),
        0
    );

    // A change dated past the last partition lands in the default one...
    let far = in_month(HISTORY_MONTHS_AHEAD + 3, 2);
    let job = job_with_history(
        &pool,
        "ahead",
        &[
            (JobStatus::Initialized, Utc::now()),
            (JobStatus::Configured, far),
        ],
    )
    .await;
    let row = job_history(&pool, job).await.unwrap()[1].clone();
    let part = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT tableoid::regclass::text FROM job_status_changes WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(part(row.id).await, "job_status_changes_default");

    // ...and moves out of it, unchanged, when its month's partition is made.
    let created = ensure_history_partitions(&pool, HISTORY_MONTHS_AHEAD + 3)
        .await
        .unwrap();
    assert_eq!(created, 3);
    assert_eq!(part(row.id).await, partition_of(far));
    assert_eq!(job_history(&pool, job).await.unwrap()[1], row);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM job_status_changes_default")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    // The new partition refuses direct writes like the others.
    let sql = format!(
        "INSERT INTO {} (job_id, status, attempt) VALUES ({job}, 12, 1)",
        partition_of(far)
    );
    assert_eq!(refused(&pool, &sql).await, "SW003");
    // A bad input is named.
    let err = ensure_history_partitions(&pool, -1).await.unwrap_err();
    assert!(err.to_string().contains("months ahead"), "{err}");
}

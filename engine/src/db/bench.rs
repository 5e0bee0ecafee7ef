//! The statements only the benchmarks run: a checkpoint before a timed phase, the raw `COPY`
//! baseline of the ingestion benchmark, and the set-up and checks of the control-plane benchmark.

use futures_util::TryStreamExt;
use sqlx::{PgConnection, PgPool};
use swath_domain::JobStatus;

use super::DbError;

/// The columns copied by the baseline (every column of `jobs` that ingestion sets or defaults).
const COPY_COLUMNS: &str =
    "id, uid, job_type, name, product_id, tile_id, input_path, measured_at, input_published_at, \
    priority, status, status_changed_at, status_message, params, attempt, max_attempts, created_at";

/// Flushes dirty pages (needs the `pg_checkpoint` privilege or a superuser).
pub async fn checkpoint(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

/// How many jobs exist.
pub async fn count_jobs(pool: &PgPool) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await?)
}

/// How many jobs are in `status`.
pub async fn count_in_status(pool: &PgPool, status: JobStatus) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = $1")
            .bind(status.id())
            .fetch_one(pool)
            .await?,
    )
}

/// Moves every job of `job_type` to `status` in one statement (the transition trigger still checks
/// each row).
pub async fn set_status_of_type(
    pool: &PgPool,
    job_type: &str,
    status: JobStatus,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET status = $1, status_changed_at = clock_timestamp() WHERE job_type = $2",
    )
    .bind(status.id())
    .bind(job_type)
    .execute(pool)
    .await?;
    Ok(())
}

/// Creates the baseline's table `bench_jobs_copy` anew, shaped like `jobs` (`LIKE jobs INCLUDING
/// ALL`: same columns, defaults, constraints and indexes).
pub async fn create_copy_table(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("DROP TABLE IF EXISTS bench_jobs_copy")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE bench_jobs_copy (LIKE jobs INCLUDING ALL)")
        .execute(pool)
        .await?;
    Ok(())
}

/// Every job's copied columns, in id order, in `COPY` text format.
pub async fn export_jobs(conn: &mut PgConnection) -> Result<Vec<u8>, DbError> {
    let mut rows = Vec::new();
    let mut out = conn
        .copy_out_raw(&format!(
            "COPY (SELECT {COPY_COLUMNS} FROM jobs ORDER BY id) TO STDOUT"
        ))
        .await?;
    while let Some(chunk) = out.try_next().await? {
        rows.extend_from_slice(&chunk);
    }
    Ok(rows)
}

/// Loads `rows` (from [`export_jobs`]) into `bench_jobs_copy` with `COPY`; returns the rows loaded.
pub async fn load_copy_table(conn: &mut PgConnection, rows: Vec<u8>) -> Result<u64, DbError> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY bench_jobs_copy ({COPY_COLUMNS}) FROM STDIN"))
        .await?;
    copy.send(rows).await?;
    Ok(copy.finish().await?)
}

/// Job types of the synthetic archive, in the proportions of HR-S&I production (every fsc_rlie job
/// has a quicklook and a check; Sentinel-1 ice products are fewer).
const ARCHIVE_TYPES: &str =
    "ARRAY['fsc_rlie','fsc_rlie_quicklook','fsc_rlie_check','fsc_rlie','fsc_rlie_quicklook','fsc_rlie_check','rlie_s1']";

/// Seconds between two jobs of the synthetic archive: two million jobs span three years.
pub const ARCHIVE_SPACING_SECS: i64 = 47;

/// Loads jobs `first..=last` of a synthetic archive, the fastest way: set-based inserts on one
/// connection with the database's triggers off (`session_replication_role = replica`, which needs a
/// superuser), so neither the transition checks nor the summaries run. Job `n` is input-published
/// [`ARCHIVE_SPACING_SECS`] × `n` after 2023-01-01; almost every job is `done` (published two hours
/// after its input), one in a hundred ended in `internal_error` and is retried by the next one, one
/// in two hundred is `cancelled`; each job has six history rows. The caller rebuilds the derived
/// summaries afterwards (`super::summaries::refresh`) and analyses the tables.
pub async fn load_archive(conn: &mut PgConnection, first: i64, last: i64) -> Result<(), DbError> {
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let loaded = async {
        sqlx::query(&format!(
            "INSERT INTO jobs (id, job_type, name, product_id, tile_id, measured_at,
                 input_published_at, output_published_at, priority, status, status_changed_at,
                 attempt, max_attempts, created_at, retry_of)
             SELECT g, t.job_type, 'archive-' || g, 'P' || g, '32TLR', t.published - interval '5 hours',
                    t.published, CASE WHEN t.status = $3 THEN t.published + interval '2 hours' END,
                    'nrt', t.status, t.published + interval '2 hours', 1, 3, t.published,
                    CASE WHEN g % 100 = 1 AND g > 1 THEN g - 1 END
             FROM generate_series($1::bigint, $2::bigint) AS g,
                  LATERAL (SELECT ({ARCHIVE_TYPES})[1 + (g % 7)::int] AS job_type,
                                  timestamptz '2023-01-01 00:00:00+00'
                                      + make_interval(secs => (g * {ARCHIVE_SPACING_SECS})::float8) AS published,
                                  (CASE WHEN g % 100 = 0 THEN $4 WHEN g % 200 = 7 THEN $5 ELSE $3 END)::smallint AS status) AS t"
        ))
        .bind(first)
        .bind(last)
        .bind(JobStatus::Done.id())
        .bind(JobStatus::InternalError.id())
        .bind(JobStatus::Cancelled.id())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO job_status_changes (job_id, previous_status, status, attempt, time)
             SELECT j.id, (ARRAY[NULL, 1, 2, 3, 4, 9])[k], (ARRAY[1, 2, 3, 4, 9, 0])[k] + CASE WHEN k = 6 THEN j.status ELSE 0 END,
                    1, j.created_at + make_interval(mins => k * 10)
             FROM jobs j, generate_series(1, 6) AS k WHERE j.id BETWEEN $1 AND $2",
        )
        .bind(first)
        .bind(last)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT setval('jobs_id_seq', (SELECT max(id) FROM jobs))")
            .execute(&mut *conn)
            .await?;
        Ok::<_, DbError>(())
    }
    .await;
    sqlx::query("SET session_replication_role = DEFAULT")
        .execute(&mut *conn)
        .await?;
    loaded
}

/// Updates the planner's statistics of every table.
pub async fn analyze(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

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

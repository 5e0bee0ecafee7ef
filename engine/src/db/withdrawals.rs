//! Products withdrawn from the catalogue: how far each catalogue's withdrawals were read
//! (`withdrawal_cursors`), the jobs of a withdrawn product, and flagging them
//! (`jobs.input_withdrawn_at`, `jobs.input_withdrawal_reason`).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use swath_domain::Job;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::DbError;

/// How far the withdrawals of `source` were read, if they ever were.
pub async fn checked_until<'e>(
    db: impl PgExecutor<'e>,
    source: &str,
) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT checked_until FROM withdrawal_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(db)
            .await?,
    )
}

/// Records that the withdrawals of `source` were read up to `until` (never moves it back).
pub async fn set_checked_until<'e>(
    db: impl PgExecutor<'e>,
    source: &str,
    until: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO withdrawal_cursors (source, checked_until) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE
             SET checked_until = greatest(withdrawal_cursors.checked_until, EXCLUDED.checked_until),
                 updated_at = clock_timestamp()",
    )
    .bind(source)
    .bind(until)
    .execute(db)
    .await?;
    Ok(())
}

/// Where the withdrawals of a catalogue never read start: the earliest publication of a job's
/// input (a product cannot be withdrawn before it was published), or `None` without jobs.
pub async fn earliest_input<'e>(db: impl PgExecutor<'e>) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT min(input_published_at) FROM jobs")
            .fetch_one(db)
            .await?,
    )
}

/// The jobs of the product named `name` (canonical): those whose product it is, and those that list
/// it among their inputs (`params.inputs[].l1c_id`, the merged partial-tile products of fsc_rlie,
/// which share the tile and sensing time of the partial, `tile` and `sensed`, when known). Both
/// lookups go through indexes (`jobs_type_product`, over the job types `job_counts` knows, and
/// `jobs_tile_measured`).
pub async fn jobs_of_product<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
    tile: Option<&str>,
    sensed: Option<DateTime<Utc>>,
) -> Result<Vec<Job>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE (job_type IN (SELECT DISTINCT job_type FROM job_counts) AND product_id = $1)
            OR (tile_id = $2 AND measured_at = $3
                AND params -> 'inputs' @> jsonb_build_array(jsonb_build_object('l1c_id', $1::text)))
         ORDER BY id"
    ))
    .bind(name)
    .bind(tile)
    .bind(sensed)
    .fetch_all(db)
    .await?;
    rows.iter().map(job_from_row).collect()
}

/// Flags job `id`'s input as withdrawn at `at` for `reason`, unless it already is. Returns whether
/// it did.
pub async fn flag_withdrawn<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE jobs SET input_withdrawn_at = $2, input_withdrawal_reason = $3
         WHERE id = $1 AND input_withdrawn_at IS NULL",
    )
    .bind(id)
    .bind(at)
    .bind(reason)
    .execute(db)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// The products of the jobs of `job_type` made by continuous ingestion (no campaign, retry or
/// parent) whose input was published in `[from, to)` and is not flagged withdrawn yet, as `(job id,
/// product id)`. Read through `jobs_type_measured` over the sensing times from `sensed_from`, so that
/// the cost is the window's, not the archive's.
pub async fn products_published_in<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sensed_from: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, product_id FROM jobs
         WHERE job_type = $1 AND measured_at >= $4
           AND input_published_at >= $2 AND input_published_at < $3
           AND product_id IS NOT NULL AND input_withdrawn_at IS NULL
           AND retry_of IS NULL AND campaign_id IS NULL AND parent_id IS NULL AND spawned_by IS NULL
         ORDER BY id",
    )
    .bind(job_type)
    .bind(from)
    .bind(to)
    .bind(sensed_from)
    .fetch_all(db)
    .await?)
}

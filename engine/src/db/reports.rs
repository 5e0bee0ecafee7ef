//! The rows of the completeness report (assembled by [`crate::reports`]): per product of one job
//! type sensed in a window, its job (the last of its retry chain) or why it has none.
//!
//! Bounded by the window: jobs are read through `jobs_type_measured (job_type, measured_at)` and
//! skipped products through `skipped_products_tile_day`, never the whole archive.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgExecutor, Row};

use super::DbError;

/// One product of the window with a job: the last job of its retry chain (a product with several
/// chains, e.g. a campaign's job and the original, is counted by its newest job).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    /// The job.
    pub job_id: i64,
    /// Its input product (or its name when it has none).
    pub product: String,
    /// Its tile (`""` when it has none).
    pub tile: String,
    /// Its sensing day (UTC).
    pub day: NaiveDate,
    /// Its status.
    pub status: swath_domain::JobStatus,
    /// Whether it ran out of attempts (an `external_error` that will not be retried).
    pub out_of_attempts: bool,
    /// Whether it wrote products (`results.products` non-empty, or an `output_path`).
    pub with_products: bool,
    /// Hours from the input's publication to the output's, when both are known.
    pub publication_hours: Option<f64>,
    /// Whether its output was published.
    pub published: bool,
    /// Why the catalogue withdrew its input, when it did.
    pub withdrawn: Option<String>,
    /// Its last status message (the error of a failed job, the reason of a cancelled one).
    pub message: Option<String>,
}

/// One product of the window without a job: skipped, quarantined or listed by a campaign only.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRow {
    /// The product.
    pub product: String,
    /// Its tile (`""` when it has none).
    pub tile: String,
    /// Its sensing day (UTC).
    pub day: NaiveDate,
    /// Why it was skipped.
    pub reason: String,
}

/// The products of `job_type` sensed in [`from`, `to`) on `tiles` (all when `None`) with a job.
pub async fn job_rows<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tiles: Option<&[String]>,
) -> Result<Vec<JobRow>, DbError> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (coalesce(j.product_id, j.name))
                j.id, coalesce(j.product_id, j.name) AS product, coalesce(j.tile_id, '') AS tile,
                (j.measured_at AT TIME ZONE 'UTC')::date AS day, j.status,
                j.attempt >= j.max_attempts AS out_of_attempts,
                coalesce(j.output_path IS NOT NULL
                         OR (jsonb_typeof(j.results -> 'products') = 'array'
                             AND jsonb_array_length(j.results -> 'products') > 0), false) AS with_products,
                (extract(epoch FROM j.output_published_at - j.input_published_at) / 3600.0)::float8 AS hours,
                j.output_published_at IS NOT NULL AS published,
                CASE WHEN j.input_withdrawn_at IS NOT NULL
                     THEN coalesce(j.input_withdrawal_reason, 'withdrawn') END AS withdrawn,
                j.status_message
         FROM jobs j
         WHERE j.job_type = $1 AND j.measured_at >= $2 AND j.measured_at < $3
           AND ($4::text[] IS NULL OR j.tile_id = ANY($4))
           AND NOT EXISTS (SELECT 1 FROM jobs r
                           WHERE r.retry_of = coalesce(j.retry_of, j.id) AND r.id > j.id)
         ORDER BY coalesce(j.product_id, j.name), j.id DESC",
    )
    .bind(job_type)
    .bind(from)
    .bind(to)
    .bind(tiles)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let status: i16 = r.try_get("status")?;
            Ok(JobRow {
                job_id: r.try_get("id")?,
                product: r.try_get("product")?,
                tile: r.try_get("tile")?,
                day: r.try_get("day")?,
                status: swath_domain::JobStatus::from_id(status)
                    .map_err(|e| DbError::Sqlx(sqlx::Error::Decode(e.to_string().into())))?,
                out_of_attempts: r.try_get("out_of_attempts")?,
                with_products: r.try_get("with_products")?,
                publication_hours: r.try_get("hours")?,
                published: r.try_get("published")?,
                withdrawn: r.try_get("withdrawn")?,
                message: r.try_get("status_message")?,
            })
        })
        .collect()
}

/// The products of `job_type` sensed in [`from`, `to`) on `tiles` that were skipped (or
/// quarantined) and have no job of the type.
pub async fn skipped_rows<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tiles: Option<&[String]>,
) -> Result<Vec<SkippedRow>, DbError> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (s.name) s.name, coalesce(s.tile_id, '') AS tile,
                (s.measured_at AT TIME ZONE 'UTC')::date AS day, s.reason
         FROM skipped_products s
         WHERE s.job_type = $1 AND s.measured_at >= $2 AND s.measured_at < $3
           AND ($4::text[] IS NULL OR s.tile_id = ANY($4))
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = s.job_type AND j.product_id = s.name)
         ORDER BY s.name, s.last_seen_at DESC",
    )
    .bind(job_type)
    .bind(from)
    .bind(to)
    .bind(tiles)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SkippedRow {
                product: r.try_get("name")?,
                tile: r.try_get("tile")?,
                day: r.try_get("day")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
}

/// Which of `names` swath saw for `job_type`: a job, a skipped or a quarantined product.
pub async fn seen_products<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    names: &[String],
) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT n FROM UNNEST($2::text[]) AS n
         WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.job_type = $1 AND j.product_id = n)
            OR EXISTS (SELECT 1 FROM skipped_products s WHERE s.job_type = $1 AND s.name = n)
            OR EXISTS (SELECT 1 FROM quarantined_products q WHERE q.job_type = $1 AND q.name = n)",
    )
    .bind(job_type)
    .bind(names)
    .fetch_all(db)
    .await?)
}

//! Ingestion state: the cursor per (job type, source) and the quarantine of unusable products, and
//! the transaction that commits one ingested page.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use swath_domain::NewJob;

use super::jobs::{insert_jobs, InsertedJob};
use super::status::{StatusChange, StatusTransaction, Transition};
use super::DbError;

/// What [`commit_page`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedPage {
    /// The jobs created (not those that existed already).
    pub inserted: Vec<InsertedJob>,
    /// The cancellations that applied (the other jobs had moved on meanwhile, and keep running).
    pub superseded: usize,
    /// The status changes committed, for the caller to count.
    pub transitions: Vec<Transition>,
}

/// Commits one ingested page of `job_type` from `source` in one transaction: the new `jobs`, the
/// `cancellations` of the jobs they supersede (one whose job moved on meanwhile is skipped), the
/// `quarantined` products, the `skipped` products (for the completeness report) and the cursor
/// moved to `newest`. Nothing is kept if one step fails.
#[allow(clippy::too_many_arguments)]
pub async fn commit_page(
    pool: &PgPool,
    job_type: &str,
    source: &str,
    jobs: &[NewJob],
    cancellations: &[StatusChange],
    quarantined: &[Quarantined],
    skipped: &[Skipped],
    newest: Option<DateTime<Utc>>,
) -> Result<CommittedPage, DbError> {
    let mut tx = StatusTransaction::begin(pool).await?;
    // Safe without waiting for the WAL flush: the cursor moves in this same transaction, so a crash
    // that loses this commit also loses the cursor advance, and the page is listed again.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(tx.conn())
        .await?;
    let inserted = insert_jobs(tx.conn(), jobs).await?;
    let mut superseded = 0;
    for change in cancellations {
        match tx.change(change).await {
            Ok(_) => superseded += 1,
            // It moved on meanwhile (e.g. it was dispatched): it keeps running, the new job exists too.
            Err(DbError::LostRace { actual, .. }) => {
                tracing::info!(job_id = change.job_id, job_type, status = %actual, "superseded job already moved on; kept");
            }
            Err(e) => return Err(e),
        }
    }
    quarantine(tx.conn(), job_type, source, quarantined).await?;
    record_skipped(tx.conn(), job_type, source, None, skipped).await?;
    if let Some(newest) = newest {
        advance_cursor(tx.conn(), job_type, source, newest).await?;
    }
    let transitions = tx.commit().await?;
    Ok(CommittedPage {
        inserted,
        superseded,
        transitions,
    })
}

/// The newest publication time fully ingested for `job_type` from `source`.
pub async fn cursor<'e>(
    db: impl PgExecutor<'e>,
    job_type: &str,
    source: &str,
) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT published_until FROM ingestion_cursors WHERE job_type = $1 AND source = $2",
    )
    .bind(job_type)
    .bind(source)
    .fetch_optional(db)
    .await?)
}

/// Moves the cursor forward to `published_until` (never backward: a backfill of an old window does
/// not rewind the continuous ingestion).
pub async fn advance_cursor(
    conn: &mut PgConnection,
    job_type: &str,
    source: &str,
    published_until: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO ingestion_cursors (job_type, source, published_until) VALUES ($1, $2, $3)
         ON CONFLICT (job_type, source) DO UPDATE
         SET published_until = greatest(ingestion_cursors.published_until, excluded.published_until),
             updated_at = clock_timestamp()",
    )
    .bind(job_type)
    .bind(source)
    .bind(published_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// A product a listing did not turn into a job to process (skipped, quarantined, or created
/// `cancelled`), with what places it in the completeness report.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// The canonical product name.
    pub name: String,
    /// Its tile, when it has one.
    pub tile_id: Option<String>,
    /// Its sensing start.
    pub measured_at: Option<DateTime<Utc>>,
    /// When the catalogue published it.
    pub published_at: Option<DateTime<Utc>>,
    /// Why it is not processed.
    pub reason: String,
}

/// Records `products` in `skipped_products` in one statement: one row per (job type, source, name),
/// a product seen again has its reason, count and last-seen time updated (bounded by retention:
/// [`prune_skipped`]).
pub async fn record_skipped(
    conn: &mut PgConnection,
    job_type: &str,
    source: &str,
    campaign_id: Option<i64>,
    products: &[Skipped],
) -> Result<(), DbError> {
    // One row per name: the statement cannot update the same row twice.
    let mut unique: Vec<&Skipped> = Vec::with_capacity(products.len());
    for p in products {
        if !unique.iter().any(|u| u.name == p.name) {
            unique.push(p);
        }
    }
    if unique.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO skipped_products (job_type, source, name, tile_id, measured_at, published_at, reason, campaign_id)
         SELECT $1, $2, t.name, t.tile, t.measured, t.published, t.reason, $8
         FROM UNNEST($3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[])
              AS t (name, tile, measured, published, reason)
         ON CONFLICT (job_type, source, name) DO UPDATE
         SET reason = excluded.reason, tile_id = excluded.tile_id, measured_at = excluded.measured_at,
             published_at = excluded.published_at,
             campaign_id = coalesce(excluded.campaign_id, skipped_products.campaign_id),
             last_seen_at = clock_timestamp(), times_seen = skipped_products.times_seen + 1",
    )
    .bind(job_type)
    .bind(source)
    .bind(unique.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.tile_id.clone()).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.measured_at).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.published_at).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.reason.clone()).collect::<Vec<_>>())
    .bind(campaign_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the skipped products not listed again for `retention_days` (setting
/// `skipped_products_retention_days`). Returns how many rows went.
pub async fn prune_skipped<'e>(
    db: impl PgExecutor<'e>,
    retention_days: u64,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "DELETE FROM skipped_products
         WHERE last_seen_at < clock_timestamp() - make_interval(days => $1)",
    )
    .bind(i32::try_from(retention_days).unwrap_or(i32::MAX))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// One product to quarantine.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// The product name (or catalogue id) as listed.
    pub name: String,
    /// Why it cannot be used.
    pub reason: String,
    /// The listing entry, when there is one.
    pub raw: Option<serde_json::Value>,
}

/// Records `products` in the quarantine in one statement; a product seen again has its count and
/// last-seen time updated.
pub async fn quarantine(
    conn: &mut PgConnection,
    job_type: &str,
    source: &str,
    products: &[Quarantined],
) -> Result<(), DbError> {
    if products.is_empty() {
        return Ok(());
    }
    // One row per name: the statement cannot update the same row twice.
    let mut unique: Vec<&Quarantined> = Vec::with_capacity(products.len());
    for p in products {
        if !unique.iter().any(|u| u.name == p.name) {
            unique.push(p);
        }
    }
    sqlx::query(
        "INSERT INTO quarantined_products (job_type, source, name, reason, raw)
         SELECT $1, $2, t.name, t.reason, t.raw::jsonb FROM UNNEST($3::text[], $4::text[], $5::text[]) AS t (name, reason, raw)
         ON CONFLICT (job_type, source, name) DO UPDATE
         SET reason = excluded.reason, raw = excluded.raw, last_seen_at = clock_timestamp(),
             times_seen = quarantined_products.times_seen + 1",
    )
    .bind(job_type)
    .bind(source)
    .bind(unique.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.reason.clone()).collect::<Vec<_>>())
    .bind(unique.iter().map(|p| p.raw.as_ref().map(|r| r.to_string())).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// A quarantined product as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuarantineRecord {
    /// Job type that could not use it.
    pub job_type: String,
    /// Catalogue source.
    pub source: String,
    /// Name as listed.
    pub name: String,
    /// Why.
    pub reason: String,
    /// How many times it was listed.
    pub times_seen: i32,
}

/// The quarantine, oldest first.
pub async fn quarantined<'e>(db: impl PgExecutor<'e>) -> Result<Vec<QuarantineRecord>, DbError> {
    let rows = sqlx::query(
        "SELECT job_type, source, name, reason, times_seen FROM quarantined_products ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(QuarantineRecord {
                job_type: r.try_get("job_type")?,
                source: r.try_get("source")?,
                name: r.try_get("name")?,
                reason: r.try_get("reason")?,
                times_seen: r.try_get("times_seen")?,
            })
        })
        .collect()
}

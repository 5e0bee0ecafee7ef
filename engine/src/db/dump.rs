//! The dump's read: every job as one JSON object per line (what the `Job` model serializes to),
//! written by PostgreSQL and streamed out with `COPY ... TO STDOUT`, in one read-only
//! repeatable-read transaction (a consistent snapshot). Nothing is decoded or collected on this
//! side: the bytes go from the socket to the compressor.
//!
//! COPY's csv format, with one column and a quote and a delimiter that JSON text never holds raw
//! (bytes 0x01 and 0x02: PostgreSQL writes every control character of a JSON string as `\u00XX`),
//! writes each object exactly as it is, one per line, with nothing to unescape; its text format
//! would double every backslash.

use futures_util::{Stream, TryStreamExt};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::DbError;

/// Every job, in id order, one JSON object per line, with the field names of `swath_domain::Job`
/// and its encodings: statuses and priorities by name, times in RFC 3339 (UTC in the snapshot of
/// [`begin_snapshot`]), `params`, `results` and `tag` as stored. The status is joined, not
/// required: a job whose status has no name is dumped with a null one (and then refused when read
/// back), never left out.
pub const JOBS_AS_JSON_LINES: &str = "COPY (
    SELECT json_build_object(
        'id', j.id, 'uid', j.uid, 'job_type', j.job_type, 'name', j.name,
        'product_id', j.product_id, 'tile_id', j.tile_id, 'input_path', j.input_path,
        'measured_at', j.measured_at, 'input_published_at', j.input_published_at,
        'output_path', j.output_path, 'output_published_at', j.output_published_at,
        'priority', j.priority, 'status', s.name, 'status_changed_at', j.status_changed_at,
        'status_error_subtype', j.status_error_subtype, 'status_message', j.status_message,
        'params', j.params, 'results', j.results, 'attempt', j.attempt,
        'max_attempts', j.max_attempts, 'next_attempt_at', j.next_attempt_at,
        'parent_id', j.parent_id, 'spawned_by', j.spawned_by, 'retry_of', j.retry_of,
        'campaign_id', j.campaign_id, 'input_withdrawn_at', j.input_withdrawn_at,
        'input_withdrawal_reason', j.input_withdrawal_reason,
        'depends_on', j.depends_on, 'recheck_at', j.recheck_at,
        'software_version', j.software_version, 'executor_ref', j.executor_ref,
        'service_id', j.service_id, 'tag', j.tag, 'lease_expires_at', j.lease_expires_at,
        'created_at', j.created_at)
    FROM jobs j LEFT JOIN job_status s ON s.id = j.status
    ORDER BY j.id
) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')";

/// Opens the snapshot a dump reads: a read-only repeatable-read transaction whose times are
/// written in UTC.
pub async fn begin_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL TimeZone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Streams [`JOBS_AS_JSON_LINES`] on `conn` (a snapshot from [`begin_snapshot`]): the pieces of
/// the output as PostgreSQL sends them, each a whole number of lines (one per job, each ending in
/// a newline).
pub async fn jobs_as_json_lines(
    conn: &mut PgConnection,
) -> Result<impl Stream<Item = Result<impl AsRef<[u8]>, DbError>> + '_, DbError> {
    let stream = conn.copy_out_raw(JOBS_AS_JSON_LINES).await?;
    Ok(stream.map_err(DbError::from))
}

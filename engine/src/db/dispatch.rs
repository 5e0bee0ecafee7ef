//! What the dispatcher writes besides status changes: the executor's reference of an attempt whose
//! dispatch a worker recorded first.

use sqlx::PgExecutor;

use super::DbError;

/// Records, in one statement, the executor reference of every `(job, attempt, reference)` of
/// `references` whose job is still at that attempt and has no reference yet.
pub async fn record_references<'e>(
    db: impl PgExecutor<'e>,
    references: &[(i64, i32, String)],
) -> Result<(), DbError> {
    if references.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&(i64, i32, String)> = references.iter().collect();
    sorted.sort_by_key(|r| r.0);
    sqlx::query(
        "UPDATE jobs SET executor_ref = r.reference
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS r (id, attempt, reference)
         WHERE jobs.id = r.id AND jobs.attempt = r.attempt AND jobs.executor_ref IS NULL",
    )
    .bind(sorted.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(sorted.iter().map(|r| r.1).collect::<Vec<_>>())
    .bind(sorted.iter().map(|r| r.2.as_str()).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

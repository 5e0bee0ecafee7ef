//! Every job, read in one consistent snapshot (for the dump).

use std::future::Future;

use futures_util::StreamExt;
use sqlx::PgPool;
use swath_domain::Job;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::DbError;

/// Reads every job, in id order, in one read-only repeatable-read transaction (a consistent
/// snapshot), and folds them into `state` by chunks of at most `chunk` jobs: `fold` gets the state
/// and the next chunk and gives the state back. Streams the rows: only one chunk is in memory.
pub async fn fold_jobs<S, E, F, Fut>(
    pool: &PgPool,
    chunk: usize,
    mut state: S,
    mut fold: F,
) -> Result<S, E>
where
    E: From<DbError>,
    F: FnMut(S, Vec<Job>) -> Fut,
    Fut: Future<Output = Result<S, E>>,
{
    let mut tx = pool.begin().await.map_err(DbError::from)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
    let query = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id");
    let mut rows = sqlx::query(&query).fetch(&mut *tx);
    let mut jobs = Vec::with_capacity(chunk);
    loop {
        let row = rows.next().await.transpose().map_err(DbError::from)?;
        if let Some(row) = &row {
            jobs.push(job_from_row(row)?);
        }
        if jobs.len() == chunk || (row.is_none() && !jobs.is_empty()) {
            state = fold(state, std::mem::take(&mut jobs)).await?;
        }
        if row.is_none() {
            break;
        }
    }
    drop(rows);
    tx.commit().await.map_err(DbError::from)?;
    Ok(state)
}

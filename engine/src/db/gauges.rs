//! The state of the whole system read at each metrics scrape: catalogue lag, instances and their
//! heartbeats, manual retries (jobs by type and status are [`super::jobs::count_by_type_and_status`]).
//! Catalogue lag and manual retries come from the summaries of [`super::summaries`]: no scan of
//! `jobs`.

use sqlx::{PgPool, Row};

use super::DbError;

/// Seconds from the newest catalogue publication date ingested to now, per job type (negative when
/// the catalogue's clock is ahead).
pub async fn catalogue_lag(pool: &PgPool) -> Result<Vec<(String, f64)>, DbError> {
    super::summaries::catalogue_lag(pool).await
}

/// An instance that is alive, or stopped or declared dead in the last day.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentInstance {
    /// Its id.
    pub id: String,
    /// Its machine.
    pub host: String,
    /// Its name.
    pub name: String,
    /// `alive`, `stopped` or `dead`.
    pub state: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age: f64,
}

/// The instances alive, and those stopped or declared dead in the last day.
pub async fn recent_instances(pool: &PgPool) -> Result<Vec<RecentInstance>, DbError> {
    let rows = sqlx::query(
        "SELECT id::text AS id, host, name, state,
                extract(epoch FROM now() - heartbeat_at)::float8 AS age
         FROM services WHERE state = 'alive' OR ended_at > now() - interval '1 day'",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecentInstance {
                id: row.try_get("id")?,
                host: row.try_get("host")?,
                name: row.try_get("name")?,
                state: row.try_get("state")?,
                heartbeat_age: row.try_get("age")?,
            })
        })
        .collect()
}

/// How many jobs a manual retry created.
pub async fn manual_retries(pool: &PgPool) -> Result<i64, DbError> {
    super::summaries::manual_retries(pool).await
}

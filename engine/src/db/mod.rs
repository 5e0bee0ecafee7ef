//! All SQL lives under this module: connecting, migrations, and one file per table or concern.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use swath_domain::JobStatus;

pub mod bench;
pub mod campaigns;
pub mod chaining;
pub mod claim;
pub mod configure;
pub mod context;
pub mod dashboard;
pub mod dispatch;
pub mod dump;
pub mod gauges;
pub mod history;
pub mod ingestion;
pub mod jobs;
pub mod leases;
pub mod notifications;
pub mod products;
pub mod publications;
pub mod queries;
pub mod reports;
pub mod retention;
pub mod retries;
pub mod schedules;
pub mod services;
pub mod status;
pub mod status_batch;
pub mod summaries;
#[cfg(test)]
pub(crate) mod testing;
pub mod tokens;
pub mod tracking;
mod url;
pub mod withdrawals;

pub use self::url::DatabaseUrl;

/// The schema migrations in `sql/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../sql");

/// A database failure, with the cases callers act on kept apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused or failed the query.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The state machine does not allow this transition (rejected by the database trigger).
    #[error("job {job_id}: {message}")]
    InvalidTransition {
        /// The job.
        job_id: i64,
        /// The database's message, naming both statuses.
        message: String,
    },
    /// The attempt counter was moved in a way the database does not allow.
    #[error("job {job_id}: {message}")]
    InvalidAttempt {
        /// The job.
        job_id: i64,
        /// The database's message.
        message: String,
    },
    /// Another actor changed the job first: the compare-and-set found another status or attempt.
    #[error(
        "job {job_id}: lost the race: expected {expected} (attempt {expected_attempt}), found {actual} (attempt {actual_attempt})"
    )]
    LostRace {
        /// The job.
        job_id: i64,
        /// The status the caller expected.
        expected: JobStatus,
        /// The attempt the caller expected.
        expected_attempt: i32,
        /// The status found.
        actual: JobStatus,
        /// The attempt found.
        actual_attempt: i32,
    },
    /// A stored value does not decode (e.g. an unknown status id).
    #[error("job {job_id}: stored data is invalid: {problem}")]
    Corrupt {
        /// The job.
        job_id: i64,
        /// What is wrong.
        problem: String,
    },
}

/// Starts a transaction whose statements run with generic plans. For the small arrays of a batch,
/// PostgreSQL would otherwise plan every statement anew, and planning a statement on `jobs` (and its
/// many indexes) costs more than running it.
pub(crate) const GENERIC_PLANS: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// `column = <id of status>`, written into a statement's text rather than bound. Only for predicates
/// that a partial index of `jobs` matches (see `sql/`): PostgreSQL uses a partial index only when it
/// can prove the index's predicate when it plans, which it cannot from a parameter of a generic plan.
/// Any other status predicate binds its ids as parameters.
pub(crate) fn status_is(column: &str, status: JobStatus) -> String {
    format!("{column} = {}", status.id())
}

/// `column BETWEEN <id of first> AND <id of last>`, written into a statement's text for the same
/// reason as [`status_is`] (the partial index `jobs_in_flight` covers `queued` to `post_processing`).
pub(crate) fn status_between(column: &str, first: JobStatus, last: JobStatus) -> String {
    format!("{column} BETWEEN {} AND {}", first.id(), last.id())
}

/// [`status_between`] over the statuses of a dispatched attempt, `queued` to `post_processing`.
pub(crate) fn status_in_flight(column: &str) -> String {
    status_between(column, JobStatus::Queued, JobStatus::PostProcessing)
}

/// The ids of the statuses in which a job stays until an operator or a retry moves it
/// ([`JobStatus::is_terminal`]), to bind.
pub(crate) fn terminal_status_ids() -> Vec<i16> {
    swath_domain::status::ALL_STATUSES
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.id())
        .collect()
}

/// The SQLSTATE raised by the transition trigger for a forbidden transition.
pub const SQLSTATE_INVALID_TRANSITION: &str = "SW001";
/// The SQLSTATE raised by the transition trigger for a forbidden attempt change.
pub const SQLSTATE_INVALID_ATTEMPT: &str = "SW002";

impl DbError {
    /// Maps trigger errors on `job_id` to their own variants; other errors stay [`DbError::Sqlx`].
    pub(crate) fn from_job_write(job_id: i64, err: sqlx::Error) -> DbError {
        if let sqlx::Error::Database(db) = &err {
            let message = db.message().to_string();
            match db.code().as_deref() {
                Some(SQLSTATE_INVALID_TRANSITION) => {
                    return DbError::InvalidTransition { job_id, message }
                }
                Some(SQLSTATE_INVALID_ATTEMPT) => {
                    return DbError::InvalidAttempt { job_id, message }
                }
                _ => {}
            }
        }
        DbError::Sqlx(err)
    }
}

/// Creates the database named in `url` if it does not exist yet. Returns whether it was created.
pub async fn create_database_if_missing(url: &DatabaseUrl) -> Result<bool, DbError> {
    let options: PgConnectOptions = url.expose().parse()?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&statement).execute(&mut admin).await {
            Ok(_) => {}
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(!exists)
}

/// Drops the database named in `url` if it exists (used by the demo for a fresh start).
pub async fn drop_database_if_exists(url: &DatabaseUrl) -> Result<(), DbError> {
    let options: PgConnectOptions = url.expose().parse()?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut admin: PgConnection = options.database("postgres").connect().await?;
    let statement = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    );
    sqlx::query(&statement).execute(&mut admin).await?;
    admin.close().await?;
    Ok(())
}

/// Opens a connection pool.
pub async fn connect(
    url: &DatabaseUrl,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, DbError> {
    let options: PgConnectOptions = url.expose().parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Fails with a hint when the database lacks migrations this binary knows.
pub async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: Option<i64> = if has_table {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?
    } else {
        None
    };
    if applied.unwrap_or(0) < latest {
        anyhow::bail!("the database schema is not up to date (run `swath migrate` first)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_domain::status::ALL_STATUSES;

    #[test]
    fn the_in_flight_range_is_a_dispatched_attempt() {
        let (queued, last) = (JobStatus::Queued.id(), JobStatus::PostProcessing.id());
        for status in ALL_STATUSES {
            assert_eq!(
                (queued..=last).contains(&status.id()),
                status == JobStatus::Queued || status.is_running(),
                "{status}"
            );
        }
        let terminal: Vec<i16> = [
            JobStatus::Done,
            JobStatus::InternalError,
            JobStatus::Cancelled,
        ]
        .iter()
        .map(|s| s.id())
        .collect();
        assert_eq!(terminal_status_ids(), terminal);
    }

    /// The predicates written into statements are those of the partial indexes they must match.
    #[test]
    fn status_predicates_match_the_partial_indexes() {
        let migrations = [
            include_str!("../../../sql/20261207000020_campaigns.sql"),
            include_str!("../../../sql/20261122000001_job_model.sql"),
            include_str!("../../../sql/20261122000005_configuration.sql"),
            include_str!("../../../sql/20261122000006_in_flight.sql"),
            include_str!("../../../sql/20261122000012_chaining_and_retries.sql"),
        ]
        .concat();
        for (index, predicate) in [
            (
                "jobs_ready_queue_own",
                format!(
                    "{} AND campaign_id IS NULL",
                    status_is("status", JobStatus::Ready)
                ),
            ),
            (
                "jobs_ready_campaign",
                format!(
                    "{} AND campaign_id IS NOT NULL",
                    status_is("status", JobStatus::Ready)
                ),
            ),
            ("jobs_new", status_is("status", JobStatus::Initialized)),
            (
                "jobs_waiting_recheck",
                status_is("status", JobStatus::Configured),
            ),
            ("jobs_in_flight", status_in_flight("status")),
            (
                "jobs_processed",
                format!(
                    "{} AND NOT awaiting_children",
                    status_is("status", JobStatus::Processed)
                ),
            ),
        ] {
            let definition = migrations
                .lines()
                .find(|l| l.starts_with(&format!("CREATE INDEX {index} ")))
                .unwrap_or_else(|| panic!("index {index} is defined"));
            assert!(
                definition.ends_with(&format!("WHERE {predicate};")),
                "{definition}"
            );
        }
    }
}

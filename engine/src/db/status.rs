//! Status changes: one compare-and-set on `jobs.status` and `jobs.attempt`, in one statement.
//!
//! The database trigger validates the transition against `job_status_transitions` and appends the
//! history row in the same transaction, so a change and its history can never be separated. A change
//! that finds another status or attempt than expected is reported as [`DbError::LostRace`].
//!
//! Nothing here counts what it applied: a change may still be rolled back with its transaction. The
//! callers count the [`Transition`]s of the changes once they are committed
//! ([`StatusTransaction::commit`] hands them back).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use swath_domain::{Job, JobStatus, NewJob};
use uuid::Uuid;

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::DbError;

/// What a status change did, as it is counted: from which status to which, and whether it started a
/// new attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The status left.
    pub from: JobStatus,
    /// The status entered.
    pub to: JobStatus,
    /// The change started a new attempt (an automatic retry).
    pub new_attempt: bool,
}

/// A requested status change.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// The job.
    pub job_id: i64,
    /// The status the caller saw.
    pub from: JobStatus,
    /// The attempt the caller saw.
    pub attempt: i32,
    /// The status to enter.
    pub to: JobStatus,
    /// Error subtype (for error statuses).
    pub error_subtype: Option<String>,
    /// Message recorded in the history.
    pub message: Option<String>,
    /// Orchestrator instance making the change.
    pub service_id: Option<Uuid>,
    /// Start the next attempt (only on a transition to `ready`), not before this time.
    pub next_attempt: Option<Option<DateTime<Utc>>>,
    /// New `params`, stored with the change.
    pub params: Option<serde_json::Value>,
    /// For a configured job: what it waits for and when to look at it again (both cleared when
    /// `Some((None, None))`).
    pub waiting: Option<(Option<i64>, Option<DateTime<Utc>>)>,
    /// Clear the owner and the lease (the job is free for any instance again).
    pub release: bool,
    /// Worker results, stored with the change.
    pub results: Option<serde_json::Value>,
    /// What actually ran, stored with the change.
    pub software_version: Option<String>,
    /// The executor's reference of the dispatched attempt, stored with the change.
    pub executor_ref: Option<String>,
    /// Jobs to create in the same transaction, once the change applied (the children a processed
    /// job spawns). Their parent references are set.
    pub spawn: Vec<NewJob>,
}

impl StatusChange {
    /// `job` (as the caller saw it) moves to `to`.
    pub fn of(job: &Job, to: JobStatus) -> Self {
        StatusChange::new(job.id, job.status, job.attempt, to)
    }

    /// Job `job_id`, seen in `from` at `attempt`, moves to `to`.
    pub fn new(job_id: i64, from: JobStatus, attempt: i32, to: JobStatus) -> Self {
        StatusChange {
            job_id,
            from,
            attempt,
            to,
            error_subtype: None,
            message: None,
            service_id: None,
            next_attempt: None,
            params: None,
            waiting: None,
            release: false,
            results: None,
            software_version: None,
            executor_ref: None,
            spawn: Vec::new(),
        }
    }

    /// Records a message with the change.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Records an error subtype and message with the change.
    pub fn error(mut self, subtype: impl Into<String>, message: impl Into<String>) -> Self {
        self.error_subtype = Some(subtype.into());
        self.message = Some(message.into());
        self
    }

    /// Records the instance making the change.
    pub fn by(mut self, service_id: Uuid) -> Self {
        self.service_id = Some(service_id);
        self
    }

    /// Starts the next attempt, eligible from `not_before` (now when `None`).
    pub fn next_attempt(mut self, not_before: Option<DateTime<Utc>>) -> Self {
        self.next_attempt = Some(not_before);
        self
    }

    /// Records what a configured job waits for (`on`) and when it is examined again; `(None, None)`
    /// clears both.
    pub fn waiting(mut self, on: Option<i64>, recheck_at: Option<DateTime<Utc>>) -> Self {
        self.waiting = Some((on, recheck_at));
        self
    }

    /// Stores worker results (and what ran, if known) with the change.
    pub fn results(mut self, results: serde_json::Value, software_version: Option<String>) -> Self {
        self.results = Some(results);
        self.software_version = software_version;
        self
    }

    /// Records the executor's reference of the dispatched attempt with the change.
    pub fn executor_ref(mut self, reference: impl Into<String>) -> Self {
        self.executor_ref = Some(reference.into());
        self
    }

    /// Clears the job's owner and lease with the change.
    pub fn release(mut self) -> Self {
        self.release = true;
        self
    }

    /// Creates `jobs` in the same transaction as the change (see [`StatusChange::spawn`]).
    pub fn spawn(mut self, jobs: Vec<NewJob>) -> Self {
        self.spawn = jobs;
        self
    }

    /// Stores new params with the change.
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.params = Some(params);
        self
    }

    /// The transition this change makes once applied.
    pub fn transition(&self) -> Transition {
        Transition {
            from: self.from,
            to: self.to,
            new_attempt: self.next_attempt.is_some(),
        }
    }
}

/// A transaction that applies status changes and, once committed, hands back their transitions: the
/// only way to learn what it applied is to commit it, so that nothing rolled back is ever counted.
pub struct StatusTransaction<'c> {
    tx: Transaction<'c, Postgres>,
    applied: Vec<Transition>,
}

impl StatusTransaction<'static> {
    /// Begins a transaction on a connection of `pool`.
    pub async fn begin(pool: &PgPool) -> Result<Self, DbError> {
        Ok(StatusTransaction {
            tx: pool.begin().await?,
            applied: Vec::new(),
        })
    }
}

impl StatusTransaction<'_> {
    /// Applies `change` in the transaction (see [`change_status`]).
    pub async fn change(&mut self, change: &StatusChange) -> Result<Job, DbError> {
        let job = change_status(&mut self.tx, change).await?;
        self.applied.push(change.transition());
        Ok(job)
    }

    /// The transaction's connection, for the other statements of the same transaction.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits, and returns the transitions of the changes applied, in order.
    pub async fn commit(self) -> Result<Vec<Transition>, DbError> {
        self.tx.commit().await?;
        Ok(self.applied)
    }
}

/// Applies `change` atomically and returns the job as it is afterwards. The caller counts
/// [`StatusChange::transition`] once the change is committed.
///
/// Fails with [`DbError::LostRace`] when the job is no longer in `from` at `attempt`,
/// [`DbError::InvalidTransition`] when the state machine forbids the change, and
/// [`DbError::NotFound`] when the job does not exist. Works inside a transaction (`&mut *tx`), which
/// a change that spawns jobs needs: they are inserted after it, on the same connection.
pub async fn change_status(conn: &mut PgConnection, change: &StatusChange) -> Result<Job, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE jobs SET status = $4,
                status_changed_at = clock_timestamp(),
                status_error_subtype = $5,
                status_message = $6,
                status_service_id = $7,
                attempt = attempt + CASE WHEN $8 THEN 1 ELSE 0 END,
                next_attempt_at = CASE WHEN $8 THEN $9 ELSE next_attempt_at END,
                params = coalesce($10, params),
                depends_on = CASE WHEN $11 THEN $12 ELSE depends_on END,
                recheck_at = CASE WHEN $11 THEN $13 ELSE recheck_at END,
                service_id = CASE WHEN $14 THEN NULL ELSE service_id END,
                tag = CASE WHEN $14 THEN NULL ELSE tag END,
                lease_expires_at = CASE WHEN $14 THEN NULL ELSE lease_expires_at END,
                results = coalesce($15, results),
                software_version = coalesce($16, software_version),
                executor_ref = coalesce($17, executor_ref)
         WHERE id = $1 AND status = $2 AND attempt = $3
         RETURNING {JOB_COLUMNS}"
    ))
    .bind(change.job_id)
    .bind(change.from.id())
    .bind(change.attempt)
    .bind(change.to.id())
    .bind(&change.error_subtype)
    .bind(&change.message)
    .bind(change.service_id)
    .bind(change.next_attempt.is_some())
    .bind(change.next_attempt.flatten())
    .bind(&change.params)
    .bind(change.waiting.is_some())
    .bind(change.waiting.and_then(|(on, _)| on))
    .bind(change.waiting.and_then(|(_, at)| at))
    .bind(change.release)
    .bind(&change.results)
    .bind(&change.software_version)
    .bind(&change.executor_ref)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| DbError::from_job_write(change.job_id, e))?;
    if let Some(row) = row {
        if !change.spawn.is_empty() {
            super::jobs::insert_jobs(&mut *conn, &change.spawn).await?;
        }
        return job_from_row(&row);
    }
    let id = change.job_id;
    let row = sqlx::query("SELECT status, attempt FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(DbError::NotFound(id))?;
    let status: i16 = row.try_get("status")?;
    Err(DbError::LostRace {
        job_id: id,
        expected: change.from,
        expected_attempt: change.attempt,
        actual: JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
            job_id: id,
            problem: e.to_string(),
        })?,
        actual_attempt: row.try_get("attempt")?,
    })
}

/// [`change_status`] on a connection taken from `pool`, committed when it returns `Ok`.
pub async fn change_status_on(pool: &PgPool, change: &StatusChange) -> Result<Job, DbError> {
    if !change.spawn.is_empty() {
        let mut tx = pool.begin().await?;
        let job = change_status(&mut tx, change).await?;
        tx.commit().await?;
        return Ok(job);
    }
    let mut conn = pool.acquire().await?;
    change_status(&mut conn, change).await
}

//! Manual retries: a new job that runs a failed (or cancelled) job again.
//!
//! The retry is a new row with `retry_of` = the original (retrying a retry retries its original),
//! the original's inputs (product, input path, params, tile, dates, priority), the same pinned
//! `software_version`, the same parent and `spawned_by`, a new `uid`, the name
//! `<original name>-retry-<n>` and attempt 1. It starts `initialized` and is configured again.
//!
//! Only the latest job of a chain (the original and its retries) can be retried, and only once it
//! ended in `internal_error` or `cancelled`; an original has at most `cap` retries. Retrying an
//! attached child makes its parent wait for the retry instead; a parent that had failed because of
//! that child, once its own work was complete, waits again (`internal_error -> error_checked ->` the
//! status it waited in) and completes when the retry is done.

use sqlx::{PgPool, Row};
use swath_domain::{Job, JobStatus, NewJob};

use super::chaining::{blocking_child, refused_child};
use super::jobs::{get_job, insert_jobs, job_from_row, JOB_COLUMNS};
use super::status::{StatusChange, StatusTransaction, Transition};
use super::DbError;

/// Subtype of a parent's error when one of its attached children failed (set by the database).
pub const CHILD_FAILED: &str = "child failed";

/// Why a job cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(i64),
    /// The job has not ended in a failure.
    #[error(
        "job {id} is {status}: only jobs that ended in internal_error or cancelled can be retried"
    )]
    NotRetryable {
        /// The job.
        id: i64,
        /// Its status.
        status: JobStatus,
    },
    /// A later retry of the same original exists and has not failed.
    #[error("job {id} was retried already: its retry {retry} is {status}; only the latest job of a chain that ended in internal_error or cancelled can be retried")]
    AlreadyRetried {
        /// The job asked for.
        id: i64,
        /// The latest retry of its original.
        retry: i64,
        /// Its status.
        status: JobStatus,
    },
    /// The original has all the retries it may have.
    #[error("job {original} has been retried {retries} time(s), the cap (SWATH_RETRY_CAP)")]
    CapReached {
        /// The original.
        original: i64,
        /// Its retries.
        retries: i64,
    },
    /// The retry's name is taken by another job.
    #[error("cannot name the retry {name:?}: a {job_type} job has that name already")]
    NameTaken {
        /// The job type.
        job_type: String,
        /// The name.
        name: String,
    },
    /// The parent cannot take the retry (it is done).
    #[error("{0}")]
    ParentRefused(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for RetryError {
    fn from(e: sqlx::Error) -> Self {
        RetryError::Db(e.into())
    }
}

/// A retry that was created.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried {
    /// The new job.
    pub job: Job,
    /// The original it retries.
    pub original: i64,
    /// Which retry of the original it is (1 for the first).
    pub n: i64,
    /// The parent that waits again for this child (it had failed because of it).
    pub resumed_parent: Option<i64>,
    /// The status changes committed (the resumed parent's), for the caller to count.
    pub transitions: Vec<Transition>,
}

/// Whether a job in `status` may be retried.
pub fn retryable(status: JobStatus) -> bool {
    matches!(status, JobStatus::InternalError | JobStatus::Cancelled)
}

/// Retries job `id` (in one transaction), allowing at most `cap` retries per original.
pub async fn retry_job(pool: &PgPool, id: i64, cap: u32) -> Result<Retried, RetryError> {
    let mut tx = StatusTransaction::begin(pool).await?;
    let retry_of: Option<Option<i64>> =
        sqlx::query_scalar("SELECT retry_of FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    let original_id = match retry_of {
        None => return Err(RetryError::NotFound(id)),
        Some(of) => of.unwrap_or(id),
    };
    // The original's row lock serialises the retries of a chain.
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"
    ))
    .bind(original_id)
    .fetch_one(tx.conn())
    .await?;
    let original = job_from_row(&row)?;
    let asked = if id == original_id {
        original.clone()
    } else {
        get_job(tx.conn(), id).await?
    };
    if !retryable(asked.status) {
        return Err(RetryError::NotRetryable {
            id,
            status: asked.status,
        });
    }
    let chain = sqlx::query(
        "SELECT id, status, software_version FROM jobs WHERE id = $1 OR retry_of = $1 ORDER BY id",
    )
    .bind(original_id)
    .fetch_all(tx.conn())
    .await?;
    let latest = chain.last().expect("the chain holds its original");
    let (latest_id, latest_status): (i64, i16) = (latest.try_get("id")?, latest.try_get("status")?);
    let latest_status = JobStatus::from_id(latest_status).map_err(|e| DbError::Corrupt {
        job_id: latest_id,
        problem: e.to_string(),
    })?;
    if latest_id != id && !retryable(latest_status) {
        return Err(RetryError::AlreadyRetried {
            id,
            retry: latest_id,
            status: latest_status,
        });
    }
    let retries = chain.len() as i64 - 1;
    if retries >= i64::from(cap) {
        return Err(RetryError::CapReached {
            original: original_id,
            retries,
        });
    }
    // What the chain first ran with (the original's, unless it never ran).
    let mut pinned = None;
    for row in &chain {
        if let Some(version) = row.try_get::<Option<String>, _>("software_version")? {
            pinned = Some(version);
            break;
        }
    }
    let n = retries + 1;
    let new = retry_of_job(&original, id, n, pinned);
    let inserted = insert_jobs(tx.conn(), std::slice::from_ref(&new))
        .await
        .map_err(|e| match refused_child(&e) {
            Some(message) => RetryError::ParentRefused(format!(
                "job {id} is an attached child whose parent cannot wait for a retry: {message}"
            )),
            None => RetryError::Db(e),
        })?;
    let Some(created) = inserted.first() else {
        return Err(RetryError::NameTaken {
            job_type: new.job_type,
            name: new.name,
        });
    };
    let job = get_job(tx.conn(), created.id).await?;
    let resumed_parent = match original.parent_id {
        Some(parent) => resume_parent(&mut tx, parent, &job).await?,
        None => None,
    };
    let transitions = tx.commit().await?;
    Ok(Retried {
        job,
        original: original_id,
        n,
        resumed_parent,
        transitions,
    })
}

/// The new job of retry `n` of `original`, asked for through job `asked`.
fn retry_of_job(original: &Job, asked: i64, n: i64, software_version: Option<String>) -> NewJob {
    let mut new = NewJob::new(
        original.job_type.clone(),
        format!("{}-retry-{n}", original.name),
        original.max_attempts,
    );
    new.product_id.clone_from(&original.product_id);
    new.tile_id.clone_from(&original.tile_id);
    new.input_path.clone_from(&original.input_path);
    new.measured_at = original.measured_at;
    new.input_published_at = original.input_published_at;
    new.priority = original.priority;
    new.params = original.params.clone();
    new.parent_id = original.parent_id;
    new.spawned_by = original.spawned_by;
    new.retry_of = Some(original.id);
    new.campaign_id = original.campaign_id;
    new.software_version = software_version;
    new.initial_message = Some(if asked == original.id {
        format!("retry {n} of job {}", original.id)
    } else {
        format!("retry {n} of job {} (asked for job {asked})", original.id)
    });
    new
}

/// Puts `parent` back to waiting when it had failed because of the child that `retry` replaces and
/// no other attached child has failed; returns it if it did.
async fn resume_parent(
    tx: &mut StatusTransaction<'_>,
    parent: i64,
    retry: &Job,
) -> Result<Option<i64>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS}, awaiting_children AS awaiting FROM jobs WHERE id = $1 FOR UPDATE"
    ))
    .bind(parent)
    .fetch_one(tx.conn())
    .await?;
    let awaiting: bool = row.try_get("awaiting")?;
    let parent = job_from_row(&row)?;
    let failed_by_child = parent.status == JobStatus::InternalError
        && awaiting
        && parent.status_error_subtype.as_deref() == Some(CHILD_FAILED);
    if !failed_by_child {
        return Ok(None);
    }
    if blocking_child(tx.conn(), parent.id)
        .await?
        .is_some_and(|b| retryable(b.status))
    {
        return Ok(None);
    }
    // The status it waited in: the one it failed from.
    let previous: Option<i16> = sqlx::query_scalar(
        "SELECT previous_status FROM job_status_changes WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(parent.id)
    .fetch_one(tx.conn())
    .await?;
    let waited_in = match previous.map(JobStatus::from_id) {
        Some(Ok(s @ (JobStatus::Processed | JobStatus::Published))) => s,
        _ => return Ok(None),
    };
    let checked = tx
        .change(
            &StatusChange::of(&parent, JobStatus::ErrorChecked).message(format!(
                "retry {} replaces the failed attached child {}",
                retry.id,
                retry.retry_of.unwrap_or_default()
            )),
        )
        .await?;
    tx.change(
        &StatusChange::of(&checked, waited_in)
            .message(format!("waiting for attached child {} again", retry.id)),
    )
    .await?;
    Ok(Some(parent.id))
}

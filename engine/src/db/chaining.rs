//! Job chaining: children attached to a parent (`parent_id`), which its completion waits for, and
//! best-effort children (`spawned_by`), which only keep a reference to the job that created them.
//!
//! The rules are enforced by the database (see `sql/*_chaining_and_retries.sql` and
//! `docs/state_machine.md`): a parent's move to `done` is held while an attached child is not done
//! (`awaiting_children`), the last child's move to done completes it, a child's terminal failure fails
//! it, and no child can be attached to a parent that is done. This module creates children and
//! reads what blocks a parent.

use sqlx::{PgExecutor, PgPool, Row};
use swath_domain::children::ChildKind;
use swath_domain::{Job, JobStatus, NewJob};

use super::jobs::{get_job, insert_jobs};
use super::DbError;

/// The SQLSTATE raised when a child cannot be attached to its parent (the parent is done, or failed
/// or cancelled and the child is not a retry).
pub const SQLSTATE_CHILD_REFUSED: &str = "SW005";

/// Why a child could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The parent does not exist.
    #[error("job {0} not found")]
    ParentNotFound(i64),
    /// The parent cannot take a child (the database's message names its status).
    #[error("{0}")]
    Refused(String),
    /// The database refused one of the values (a constraint or a data exception).
    #[error("a value was refused: {0}")]
    Invalid(String),
    /// Another job of the type has the name.
    #[error("a {job_type} job named {name:?} exists already (job {id})")]
    NameTaken {
        /// The job type.
        job_type: String,
        /// The name.
        name: String,
        /// The job that has it.
        id: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The message of a refused attachment (SQLSTATE [`SQLSTATE_CHILD_REFUSED`]), if `err` is one.
pub fn refused_child(err: &DbError) -> Option<String> {
    match err {
        DbError::Sqlx(sqlx::Error::Database(db))
            if db.code().as_deref() == Some(SQLSTATE_CHILD_REFUSED) =>
        {
            Some(db.message().to_string())
        }
        _ => None,
    }
}

/// The message of a value the database refused (a check constraint, or a data exception such as a
/// date out of range), if `err` is one: the client's fault, not the server's.
pub fn refused_value(err: &DbError) -> Option<String> {
    match err {
        DbError::Sqlx(sqlx::Error::Database(db))
            if db
                .code()
                .is_some_and(|c| c.starts_with("22") || c == "23514") =>
        {
            Some(db.message().to_string())
        }
        _ => None,
    }
}

/// Creates `job` as a child of job `parent`: attached (`parent_id`) or best effort (`spawned_by`).
pub async fn create_child(
    pool: &PgPool,
    parent: i64,
    kind: ChildKind,
    mut job: NewJob,
) -> Result<Job, ChildError> {
    match kind {
        ChildKind::Attached => job.parent_id = Some(parent),
        ChildKind::BestEffort => job.spawned_by = Some(parent),
    }
    let mut tx = pool.begin().await.map_err(DbError::from)?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = $1")
        .bind(parent)
        .fetch_optional(&mut *tx)
        .await
        .map_err(DbError::from)?;
    if exists.is_none() {
        return Err(ChildError::ParentNotFound(parent));
    }
    let inserted = insert_jobs(&mut *tx, std::slice::from_ref(&job))
        .await
        .map_err(|e| match (refused_child(&e), refused_value(&e)) {
            (Some(message), _) => ChildError::Refused(message),
            (None, Some(message)) => ChildError::Invalid(message),
            (None, None) => ChildError::Db(e),
        })?;
    let Some(created) = inserted.first() else {
        let id: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE job_type = $1 AND name = $2")
            .bind(&job.job_type)
            .bind(&job.name)
            .fetch_one(&mut *tx)
            .await
            .map_err(DbError::from)?;
        return Err(ChildError::NameTaken {
            job_type: job.job_type,
            name: job.name,
            id,
        });
    };
    let created = get_job(&mut *tx, created.id).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(created)
}

/// An attached child that keeps its parent from being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingChild {
    /// The child.
    pub id: i64,
    /// Its status: a failure (`internal_error`, `cancelled`) or a status short of `done`.
    pub status: JobStatus,
    /// Its job type.
    pub job_type: String,
    /// Its name.
    pub name: String,
}

/// The children of type `job_type` (attached or best effort) of any of `parents`.
pub async fn children_of_type<'e>(
    db: impl PgExecutor<'e>,
    parents: &[i64],
    job_type: &str,
) -> Result<Vec<i64>, DbError> {
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE (parent_id = ANY ($1) OR spawned_by = ANY ($1)) AND job_type = $2
         ORDER BY id",
    )
    .bind(parents)
    .bind(job_type)
    .fetch_all(db)
    .await?)
}

/// The attached child that keeps job `parent` from being done, if any: a failed one first, else the
/// oldest one not done yet. Children replaced by a retry do not count; their retry does.
pub async fn blocking_child<'e>(
    db: impl PgExecutor<'e>,
    parent: i64,
) -> Result<Option<BlockingChild>, DbError> {
    let row = sqlx::query("SELECT id, status, job_type, name FROM swath_blocking_child($1)")
        .bind(parent)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let id: i64 = r.try_get("id")?;
        let status: i16 = r.try_get("status")?;
        Ok(BlockingChild {
            id,
            status: JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
                job_id: id,
                problem: e.to_string(),
            })?,
            job_type: r.try_get("job_type")?,
            name: r.try_get("name")?,
        })
    })
    .transpose()
}

/// Whether job `id` has finished its own work and waits for its attached children.
pub async fn awaiting_children<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<bool, DbError> {
    sqlx::query_scalar("SELECT awaiting_children FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(DbError::NotFound(id))
}

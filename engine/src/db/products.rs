//! Output product identities (`product_identities`): which job holds each product, where it is
//! committed, and how many times it was announced.
//!
//! A product's identity is its name without the quality flag (`swath_domain::identity`). A worker
//! reserves the identities of its products before it uploads anything ([`reserve`]); the outbox
//! announces an identity only for its holder, each announcement with the next revision
//! ([`announce`]). Both lock the identity's row, so of two jobs racing for one identity exactly one
//! wins, and the loser has written nothing.

use sqlx::{PgConnection, PgPool, Row};
use swath_domain::identity::{identity_of_path, message_id};
use swath_domain::protocol::{PlannedProduct, ReservedProduct};
use swath_domain::JobStatus;

use super::DbError;

/// The job that holds an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The job.
    pub job_id: i64,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// Where its product is committed.
    pub path: String,
}

/// Why a job may not write or announce a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collision {
    /// Another live job holds the product's identity.
    Held {
        /// The product's path.
        path: String,
        /// Its identity.
        identity: String,
        /// The job holding it.
        holder: Holder,
    },
    /// The attempt wrote two products of one identity (two quality flags of one product).
    Twice {
        /// The identity.
        identity: String,
        /// The two paths.
        paths: [String; 2],
    },
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Collision::Held {
                path,
                identity,
                holder,
            } => {
                let why = if holder.status.is_in_flight() {
                    "which is still running"
                } else {
                    "whose product it is"
                };
                write!(
                    f,
                    "product {identity} ({path}) belongs to job {} ({}, {}), {why}: two jobs may not write one product; nothing was uploaded",
                    holder.job_id, holder.name, holder.status
                )
            }
            Collision::Twice { identity, paths } => write!(
                f,
                "the attempt wrote two products of identity {identity} ({} and {}): one product, one path",
                paths[0], paths[1]
            ),
        }
    }
}

/// What a reservation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Every product is the job's now.
    Granted(Vec<ReservedProduct>),
    /// A product is another job's: nothing was reserved.
    Refused(Collision),
    /// The attempt is not the job's current one in flight: nothing was reserved.
    Stale {
        /// The job's status.
        status: JobStatus,
        /// Its attempt.
        attempt: i32,
    },
}

/// Whether a holder's claim on its products has lapsed: it ended in failure.
fn has_lapsed(status: JobStatus) -> bool {
    matches!(status, JobStatus::InternalError | JobStatus::Cancelled)
}

/// Reserves the identities of `products` for attempt `attempt` of job `job_id` (which must be in
/// running at that attempt), in one transaction: all or nothing. An identity is granted when it is
/// free, already the job's, held by a job that ended in failure, or held by one of `replaceable`
/// (the jobs whose products this one replaces) that is no longer in flight. A granted identity
/// moves to the job with its announcement count, so that the next announcement is an update.
pub async fn reserve(
    pool: &PgPool,
    job_id: i64,
    attempt: i32,
    products: &[PlannedProduct],
    replaceable: &[i64],
) -> Result<Reservation, DbError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query("SELECT status, attempt FROM jobs WHERE id = $1 FOR SHARE")
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(DbError::NotFound(job_id))?;
    let status = status_of(job_id, row.try_get("status")?)?;
    let current: i32 = row.try_get("attempt")?;
    if current != attempt || !status.is_running() {
        return Ok(Reservation::Stale {
            status,
            attempt: current,
        });
    }
    // Rows are locked in identity order, so that two reservations never wait on each other.
    let mut order: Vec<(&str, usize)> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (identity_of_path(&p.path), i))
        .collect();
    order.sort_unstable();
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Ok(Reservation::Refused(Collision::Twice {
                identity: pair[0].0.to_string(),
                paths: [
                    products[pair[0].1].path.clone(),
                    products[pair[1].1].path.clone(),
                ],
            }));
        }
    }
    let mut granted: Vec<Option<ReservedProduct>> = vec![None; products.len()];
    for (identity, index) in order {
        let product = &products[index];
        let replaces = match claim(&mut tx, job_id, identity, &product.kind, &product.path).await? {
            Claim::Free => None,
            Claim::Held(holder) => {
                let may_take = holder.job_id == job_id
                    || has_lapsed(holder.status)
                    || (replaceable.contains(&holder.job_id) && !holder.status.is_in_flight());
                if !may_take {
                    return Ok(Reservation::Refused(Collision::Held {
                        path: product.path.clone(),
                        identity: identity.to_string(),
                        holder,
                    }));
                }
                sqlx::query(
                    "UPDATE product_identities SET job_id = $2, kind = $3, path = $4,
                         reserved_at = clock_timestamp()
                     WHERE identity = $1",
                )
                .bind(identity)
                .bind(job_id)
                .bind(&product.kind)
                .bind(&product.path)
                .execute(&mut *tx)
                .await?;
                (holder.path != product.path).then_some(holder.path)
            }
        };
        granted[index] = Some(ReservedProduct {
            path: product.path.clone(),
            identity: identity.to_string(),
            replaces,
        });
    }
    tx.commit().await?;
    Ok(Reservation::Granted(
        granted.into_iter().flatten().collect(),
    ))
}

/// An identity's row, inserted for the job when free, else locked and read.
enum Claim {
    /// The identity was free: it is the job's now.
    Free,
    /// Somebody holds it (maybe the job itself).
    Held(Holder),
}

/// Inserts `identity` for `job_id` at `path` if nobody holds it; else locks its row and reads its
/// holder.
async fn claim(
    conn: &mut PgConnection,
    job_id: i64,
    identity: &str,
    kind: &str,
    path: &str,
) -> Result<Claim, DbError> {
    let inserted = sqlx::query(
        "INSERT INTO product_identities (identity, kind, job_id, path) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(identity)
    .bind(kind)
    .bind(job_id)
    .bind(path)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Free);
    }
    // The conflict is on the identity (or on the path, which holds the identity in its last
    // segment: the same row).
    let row = sqlx::query(
        "SELECT o.job_id, o.path, j.name, j.status FROM product_identities o
         JOIN jobs j ON j.id = o.job_id
         WHERE o.identity = $1 OR o.path = $2 ORDER BY o.identity = $1 DESC LIMIT 1
         FOR UPDATE OF o",
    )
    .bind(identity)
    .bind(path)
    .fetch_one(&mut *conn)
    .await?;
    let holder_id: i64 = row.try_get("job_id")?;
    Ok(Claim::Held(Holder {
        job_id: holder_id,
        name: row.try_get("name")?,
        status: status_of(holder_id, row.try_get("status")?)?,
        path: row.try_get("path")?,
    }))
}

fn status_of(job_id: i64, id: i16) -> Result<JobStatus, DbError> {
    JobStatus::from_id(id).map_err(|e| DbError::Corrupt {
        job_id,
        problem: e.to_string(),
    })
}

/// The products among `paths` whose identity job `job_id` does not hold, each with its holder if
/// another job holds it.
pub async fn not_held(
    pool: &PgPool,
    job_id: i64,
    paths: &[String],
) -> Result<Vec<(String, Option<i64>)>, DbError> {
    let identities: Vec<&str> = paths.iter().map(|p| identity_of_path(p)).collect();
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT u.path, o.job_id FROM unnest($2::text[], $3::text[]) AS u(path, identity)
         LEFT JOIN product_identities o ON o.identity = u.identity
         WHERE o.job_id IS DISTINCT FROM $1",
    )
    .bind(job_id)
    .bind(paths)
    .bind(&identities)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// One announcement of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The identity.
    pub identity: String,
    /// Its revision, from 1: an update when above 1.
    pub revision: i32,
    /// Its message id.
    pub message_id: String,
}

impl Announcement {
    /// `create` for the first announcement of the identity, `update` for a later one (the product
    /// was replaced).
    pub fn operation(&self) -> &'static str {
        if self.revision > 1 {
            "update"
        } else {
            "create"
        }
    }
}

/// The next announcement of the product at `path` (of `kind`) for job `job_id`, counted in the
/// identity's row (taken for the job when nobody holds it, as for products reported before
/// reservations existed). Another job holding the identity is a [`Collision`].
pub async fn announce(
    conn: &mut PgConnection,
    job_id: i64,
    kind: &str,
    path: &str,
) -> Result<Result<Announcement, Collision>, DbError> {
    let identity = identity_of_path(path);
    if let Claim::Held(holder) = claim(conn, job_id, identity, kind, path).await? {
        if holder.job_id != job_id {
            return Ok(Err(Collision::Held {
                path: path.to_string(),
                identity: identity.to_string(),
                holder,
            }));
        }
    }
    let revision: i32 = sqlx::query_scalar(
        "UPDATE product_identities SET announced = announced + 1 WHERE identity = $1
         RETURNING announced",
    )
    .bind(identity)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Ok(Announcement {
        identity: identity.to_string(),
        revision,
        message_id: message_id(identity, revision),
    }))
}

//! The publication outbox (`publications`): messages written with the job's move to
//! `start_publication`, sent by a publisher, confirmed one by one; a job whose messages are all
//! confirmed becomes `published`, then `done`, with each product's publication date set.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use swath_domain::identity;
use swath_domain::publication::{ProductPublication, PublicationTarget};
use swath_domain::publication_schema::check_resto_feature;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::{Job, JobStatus};

use super::jobs::{job_from_row, JOB_COLUMNS};
use super::products::{announce, Announcement, Collision};
use super::status::{StatusChange, StatusTransaction, Transition};
use super::{status_is, DbError};

/// One message waiting for its confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The outbox row.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Its type.
    pub job_type: String,
    /// The product kind.
    pub kind: String,
    /// The product's title.
    pub product_id: String,
    /// The message id (`<identity>#<revision>`, see `swath_domain::identity::message_id`).
    pub message_id: String,
    /// The message.
    pub message: serde_json::Value,
    /// How many times it was sent before.
    pub sent_count: i32,
    /// When it was written to the outbox.
    pub created_at: DateTime<Utc>,
}

/// What one round of [`start_publications`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Jobs whose messages were written (now `start_publication`).
    pub started: usize,
    /// Jobs without a product (now `done`).
    pub done: usize,
    /// Jobs whose messages could not be built (now `internal_error`).
    pub failed: usize,
    /// The status changes committed, for the caller to count.
    pub transitions: Vec<Transition>,
}

/// Moves up to `limit` processed jobs on: those with products to `start_publication` with their
/// messages in the outbox (one transaction per job), those without straight to `done`. A job whose
/// attached children are not all done waits for them in `processed` (`awaiting_children`, set by
/// the database) and is not looked at again; the last child's move to done completes it.
pub async fn start_publications(
    pool: &PgPool,
    registry: &JobTypeRegistry,
    target: &PublicationTarget,
    limit: i64,
) -> Result<StartReport, DbError> {
    let mut report = StartReport::default();
    let mut tx = StatusTransaction::begin(pool).await?;
    let rows = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE {processed} AND NOT awaiting_children
         ORDER BY status_changed_at, id LIMIT $1
         FOR UPDATE SKIP LOCKED",
        processed = status_is("status", JobStatus::Processed)
    ))
    .bind(limit)
    .fetch_all(tx.conn())
    .await?;
    for row in &rows {
        let job = job_from_row(row)?;
        let Some(job_type) = registry.get(&job.job_type) else {
            continue;
        };
        if !job_type.generated_a_product(&job) {
            tx.change(&StatusChange::of(&job, JobStatus::Done).message("no product to publish"))
                .await?;
            report.done += 1;
            continue;
        }
        let built = job_type
            .get_products_publication_jsons(&job, target)
            .map_err(|e| e.to_string())
            .and_then(|messages| {
                // What the catalogue's consumer reads must be there (cloud cover is the builders'
                // business: only optical products carry it).
                for m in &messages {
                    check_resto_feature(&m.message, false)
                        .map_err(|p| format!("message of {}: {}", m.product_id, p.join("; ")))?;
                }
                Ok(messages)
            });
        let built = match built {
            Ok(messages) => announce_all(tx.conn(), &job, messages)
                .await?
                .map_err(|collision| ("collision", collision.to_string())),
            Err(e) => Err(("publication", e)),
        };
        match built {
            Ok(count) => {
                tx.change(
                    &StatusChange::of(&job, JobStatus::StartPublication)
                        .message(format!("{count} publication message(s) queued")),
                )
                .await?;
                report.started += 1;
            }
            Err((subtype, e)) => {
                tx.change(&StatusChange::of(&job, JobStatus::InternalError).error(subtype, e))
                    .await?;
                report.failed += 1;
            }
        }
    }
    report.transitions = tx.commit().await?;
    Ok(report)
}

/// Writes `messages` of `job` to the outbox, each as the next announcement of its product's identity
/// (see [`super::products::announce`]), in a savepoint: a product another job holds is a
/// [`Collision`] and writes nothing. A message already in the outbox for the job (the job published
/// again) is not written twice. Returns how many messages the job has in the outbox.
async fn announce_all(
    conn: &mut sqlx::PgConnection,
    job: &Job,
    messages: Vec<ProductPublication>,
) -> Result<Result<usize, Collision>, DbError> {
    let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
    let count = messages.len();
    for mut m in messages {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM publications WHERE job_id = $1 AND kind = $2 AND product_id = $3)",
        )
        .bind(job.id)
        .bind(&m.kind)
        .bind(&m.product_id)
        .fetch_one(&mut *savepoint)
        .await?;
        if exists {
            continue;
        }
        let path = job
            .results
            .iter()
            .flat_map(|r| r.products.iter())
            .find(|p| {
                p.kind == m.kind
                    && identity::identity_of_path(&p.path)
                        == identity::product_identity(&m.product_id)
            })
            .map_or_else(|| m.product_id.clone(), |p| p.path.clone());
        let announcement = match announce(&mut savepoint, job.id, &m.kind, &path).await? {
            Ok(a) => a,
            Err(collision) => return Ok(Err(collision)),
        };
        describe_announcement(&mut m.message, &announcement);
        sqlx::query(
            "INSERT INTO publications (job_id, kind, product_id, message, identity, revision, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(job.id)
        .bind(&m.kind)
        .bind(&m.product_id)
        .bind(&m.message)
        .bind(&announcement.identity)
        .bind(announcement.revision)
        .bind(&announcement.message_id)
        .execute(&mut *savepoint)
        .await?;
    }
    savepoint.commit().await?;
    Ok(Ok(count))
}

/// Says in `message` which announcement it is: an `announcement` object beside `resto` with the
/// product's `identity`, its `revision` (from 1), the `operation` (`create` for the first
/// announcement of the identity, `update` when it replaces the product announced before) and the
/// `message_id`. The publisher also sends the operation as the AMQP `type` property.
fn describe_announcement(message: &mut serde_json::Value, announcement: &Announcement) {
    if let Some(object) = message.as_object_mut() {
        object.insert(
            "announcement".into(),
            serde_json::json!({
                "identity": announcement.identity,
                "revision": announcement.revision,
                "operation": announcement.operation(),
                "message_id": announcement.message_id,
            }),
        );
    }
}

/// Up to `limit` messages not yet confirmed, oldest first.
pub async fn unconfirmed(pool: &PgPool, limit: i64) -> Result<Vec<Outgoing>, DbError> {
    let rows = sqlx::query(
        "SELECT p.id, p.job_id, j.job_type, p.kind, p.product_id, p.message_id, p.message, p.sent_count, p.created_at
         FROM publications p JOIN jobs j ON j.id = p.job_id
         WHERE p.confirmed_at IS NULL ORDER BY p.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Outgoing {
                id: r.try_get("id")?,
                job_id: r.try_get("job_id")?,
                job_type: r.try_get("job_type")?,
                kind: r.try_get("kind")?,
                product_id: r.try_get("product_id")?,
                message_id: r.try_get("message_id")?,
                message: r.try_get("message")?,
                sent_count: r.try_get("sent_count")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// One confirmed announcement: the product's title, the message id and the job that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The product's title.
    pub product_id: String,
    /// The message id (`<identity>#<revision>`).
    pub message_id: String,
    /// The job.
    pub job_id: i64,
}

/// Every confirmed announcement, by title then revision.
pub async fn confirmed(pool: &PgPool) -> Result<Vec<Announced>, DbError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT product_id, message_id, job_id FROM publications WHERE confirmed_at IS NOT NULL
         ORDER BY product_id, revision",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product_id, message_id, job_id)| Announced {
            product_id,
            message_id,
            job_id,
        })
        .collect())
}

/// How many messages the publisher confirmed.
pub async fn count_confirmed(pool: &PgPool) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM publications WHERE confirmed_at IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// Records that messages `sent` were sent (confirmed or not) and `failed` with an error.
pub async fn record_attempts(
    pool: &PgPool,
    sent: &[i64],
    failed: &[(i64, String)],
) -> Result<(), DbError> {
    let (ids, errors): (Vec<i64>, Vec<String>) = failed.iter().cloned().unzip();
    sqlx::query(
        "UPDATE publications SET sent_count = sent_count + 1, last_sent_at = clock_timestamp(),
             last_error = e.error
         FROM (SELECT unnest($1::bigint[]) AS id, NULL::text AS error
               UNION ALL SELECT unnest($2::bigint[]), unnest($3::text[])) AS e
         WHERE publications.id = e.id",
    )
    .bind(sent)
    .bind(&ids)
    .bind(&errors)
    .execute(pool)
    .await?;
    Ok(())
}

/// What [`confirm`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmed {
    /// The jobs that became `done`.
    pub done: Vec<i64>,
    /// The status changes committed, for the caller to count.
    pub transitions: Vec<Transition>,
}

/// Marks messages `ids` confirmed at `at`; each job whose messages are now all confirmed gets its
/// products' publication dates and becomes `published`, then `done`, in the same transaction (or
/// stays `published` until its attached children are done: see [`super::chaining`]). Returns the
/// jobs that became `done` and the status changes committed.
pub async fn confirm(pool: &PgPool, ids: &[i64], at: DateTime<Utc>) -> Result<Confirmed, DbError> {
    if ids.is_empty() {
        return Ok(Confirmed::default());
    }
    let mut tx = StatusTransaction::begin(pool).await?;
    let jobs: Vec<i64> = sqlx::query_scalar(
        "UPDATE publications SET confirmed_at = $2, last_error = NULL
         WHERE id = ANY ($1) AND confirmed_at IS NULL RETURNING job_id",
    )
    .bind(ids)
    .bind(at)
    .fetch_all(tx.conn())
    .await?;
    let mut done = Vec::new();
    let mut jobs = jobs;
    jobs.sort_unstable();
    jobs.dedup();
    for job_id in jobs {
        let complete: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM publications WHERE job_id = $1 AND confirmed_at IS NULL)",
        )
        .bind(job_id)
        .fetch_one(tx.conn())
        .await?;
        if !complete {
            continue;
        }
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND status = $2 FOR UPDATE"
        ))
        .bind(job_id)
        .bind(JobStatus::StartPublication as i16)
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else { continue };
        let mut job = job_from_row(&row)?;
        let published: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, product_id FROM publications WHERE job_id = $1")
                .bind(job_id)
                .fetch_all(tx.conn())
                .await?;
        // Each product gets the date its own message was confirmed with.
        for product in job.results.iter_mut().flat_map(|r| r.products.iter_mut()) {
            let title = product.path.trim_end_matches('/').rsplit('/').next();
            if published
                .iter()
                .any(|(kind, id)| *kind == product.kind && Some(id.as_str()) == title)
            {
                product.published_at = Some(at);
            }
        }
        let results = serde_json::to_value(&job.results).map_err(|e| DbError::Corrupt {
            job_id,
            problem: format!("results cannot be written back: {e}"),
        })?;
        sqlx::query("UPDATE jobs SET output_published_at = $2 WHERE id = $1")
            .bind(job_id)
            .bind(at)
            .execute(tx.conn())
            .await?;
        let published = tx
            .change(
                &StatusChange::of(&job, JobStatus::Published)
                    .results(results, None)
                    .message(format!("{} message(s) confirmed", published.len())),
            )
            .await?;
        let after = tx
            .change(&StatusChange::of(&published, JobStatus::Done))
            .await?;
        if after.status == JobStatus::Done {
            done.push(job_id);
        }
    }
    let transitions = tx.commit().await?;
    Ok(Confirmed { done, transitions })
}

/// What a failure acknowledgement from the catalogue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Republish {
    /// The product's message is sent again (this is republication `n` of at most the cap).
    Queued {
        /// The job.
        job_id: i64,
        /// Its type.
        job_type: String,
        /// Which republication this is.
        n: i32,
    },
    /// The cap was reached: the job is now `internal_error`.
    GaveUp {
        /// The job.
        job_id: i64,
        /// Its type.
        job_type: String,
    },
    /// No published product has this message id (unknown, or its job moved on): nothing changed.
    Unknown,
}

impl Republish {
    /// The status changes it made (committed), for the caller to count.
    pub fn transitions(&self) -> Vec<Transition> {
        use JobStatus::*;
        let path: &[JobStatus] = match self {
            Republish::Queued { .. } => &[Done, ExternalError, ErrorChecked, StartPublication],
            Republish::GaveUp { .. } => &[Done, InternalError],
            Republish::Unknown => &[],
        };
        path.windows(2)
            .map(|pair| Transition {
                from: pair[0],
                to: pair[1],
                new_attempt: false,
            })
            .collect()
    }
}

/// Handles the catalogue's refusal of product `message_id` (`reason`): its message is sent again,
/// at most `cap` times, and the job's history tells the story: `done -> external_error` (the
/// refusal) `-> error_checked -> start_publication` (the republication), then `published -> done`
/// on the new confirmation; past the cap, `done -> internal_error`.
pub async fn republish(
    pool: &PgPool,
    message_id: &str,
    reason: &str,
    cap: i32,
) -> Result<Republish, DbError> {
    let mut tx = StatusTransaction::begin(pool).await?;
    let row: Option<(i64, i64, i32)> = sqlx::query_as(
        "SELECT p.id, p.job_id, p.republish_count FROM publications p JOIN jobs j ON j.id = p.job_id
         WHERE (p.message_id = $1 OR p.product_id = $1) AND p.confirmed_at IS NOT NULL
           AND j.status = $2
         ORDER BY p.id DESC LIMIT 1 FOR UPDATE OF p, j",
    )
    .bind(message_id)
    .bind(JobStatus::Done as i16)
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, job_id, count)) = row else {
        return Ok(Republish::Unknown);
    };
    let job = super::jobs::get_job(tx.conn(), job_id).await?;
    if count >= cap {
        tx.change(&StatusChange::of(&job, JobStatus::InternalError).error(
            "publication refused",
            format!("the catalogue refused {message_id} after {cap} republications: {reason}"),
        ))
        .await?;
        let outcome = Republish::GaveUp {
            job_id,
            job_type: job.job_type,
        };
        let transitions = tx.commit().await?;
        debug_assert_eq!(transitions, outcome.transitions());
        return Ok(outcome);
    }
    let n = count + 1;
    sqlx::query(
        "UPDATE publications SET confirmed_at = NULL, republish_count = $2, last_error = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(n)
    .bind(reason)
    .execute(tx.conn())
    .await?;
    let refused = tx
        .change(&StatusChange::of(&job, JobStatus::ExternalError).error(
            "publication refused",
            format!("the catalogue refused {message_id}: {reason}"),
        ))
        .await?;
    let checked = tx
        .change(
            &StatusChange::of(&refused, JobStatus::ErrorChecked)
                .message(format!("republication {n} of at most {cap}")),
        )
        .await?;
    tx.change(
        &StatusChange::of(&checked, JobStatus::StartPublication)
            .message(format!("{message_id} sent again")),
    )
    .await?;
    let outcome = Republish::Queued {
        job_id,
        job_type: job.job_type,
        n,
    };
    let transitions = tx.commit().await?;
    debug_assert_eq!(transitions, outcome.transitions());
    Ok(outcome)
}

//! Per-attempt worker tokens: issued at dispatch, checked on every worker request.

use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, Row};
use swath_job_types::JobStatus;

use super::jobs::JobHead;
use super::DbError;

/// A new random token (two version-4 UUIDs: 244 random bits from the operating system).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The SHA-256 of a token, as stored.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a token for attempt `attempt` of job `job_id` and stores its digest, if the job is still
/// `ready` at that attempt and claimed by `owner` under a lease that holds; the lease is extended by
/// `lease` at the same time, so that no other instance can claim and start the attempt while this one
/// dispatches it. Tokens issued earlier for the same attempt stay valid (a worker started before a
/// re-dispatch keeps working). Returns `None` when the job is not in that state any more.
pub async fn issue_attempt_token<'e>(
    db: impl PgExecutor<'e>,
    job_id: i64,
    attempt: i32,
    owner: uuid::Uuid,
    lease: std::time::Duration,
) -> Result<Option<String>, DbError> {
    let mut tokens = issue_attempt_tokens(db, &[(job_id, attempt)], owner, lease).await?;
    Ok(tokens.pop().flatten())
}

/// [`issue_attempt_token`] for every `(job, attempt)` of `attempts` (distinct jobs) in one statement;
/// one answer per attempt, in the same order.
pub async fn issue_attempt_tokens<'e>(
    db: impl PgExecutor<'e>,
    attempts: &[(i64, i32)],
    owner: uuid::Uuid,
    lease: std::time::Duration,
) -> Result<Vec<Option<String>>, DbError> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..attempts.len()).collect();
    order.sort_by_key(|&i| attempts[i].0);
    let tokens: Vec<String> = attempts.iter().map(|_| new_token()).collect();
    let issued: Vec<i64> = sqlx::query_scalar(
        "WITH wanted AS (
             SELECT * FROM unnest($1::bigint[], $2::int[], $3::bytea[]) AS w (id, attempt, sha256)
         ),
         held AS (
             UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $5)
             FROM wanted w
             WHERE jobs.id = w.id AND jobs.attempt = w.attempt AND jobs.status = 3 AND jobs.service_id = $4
               AND jobs.lease_expires_at > clock_timestamp()
             RETURNING jobs.id, jobs.attempt
         )
         INSERT INTO attempt_tokens (job_id, attempt, sha256)
         SELECT h.id, h.attempt, w.sha256 FROM held h JOIN wanted w ON w.id = h.id
         RETURNING job_id",
    )
    .bind(order.iter().map(|&i| attempts[i].0).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| attempts[i].1).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| digest(&tokens[i])).collect::<Vec<_>>())
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?;
    let issued: std::collections::HashSet<i64> = issued.into_iter().collect();
    Ok(attempts
        .iter()
        .zip(tokens)
        .map(|((id, _), token)| issued.contains(id).then_some(token))
        .collect())
}

/// What checking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// No such job.
    UnknownJob,
    /// The token is none of those issued for that attempt of the job.
    Refused,
    /// The token was issued for that attempt.
    Valid {
        /// The job's current attempt (a later one when the attempt is stale).
        current_attempt: i32,
    },
}

/// A job read together with its token check (one round trip for every worker request).
pub async fn job_for_token<'e>(
    db: impl PgExecutor<'e>,
    job_id: i64,
    attempt: i32,
    token: &str,
) -> Result<(TokenCheck, Option<swath_job_types::Job>), DbError> {
    let row = sqlx::query(&format!(
        "SELECT {columns},
                (SELECT coalesce(array_agg(t.sha256), '{{}}') FROM attempt_tokens t WHERE t.job_id = jobs.id AND t.attempt = $2) AS digests
         FROM jobs WHERE id = $1",
        columns = super::jobs::JOB_COLUMNS
    ))
    .bind(job_id)
    .bind(attempt)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok((TokenCheck::UnknownJob, None));
    };
    let stored: Vec<Vec<u8>> = row.try_get("digests")?;
    if !matches_any(&stored, token) {
        return Ok((TokenCheck::Refused, None));
    }
    let job = super::jobs::job_from_row(&row)?;
    Ok((
        TokenCheck::Valid {
            current_attempt: job.attempt,
        },
        Some(job),
    ))
}

/// A token presented for an attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    /// The job.
    pub job_id: i64,
    /// The attempt the request names.
    pub attempt: i32,
    /// The bearer token.
    pub token: String,
}

/// [`job_for_token`] for many requests in one statement, reading only the job's [`JobHead`]; one
/// answer per request, in the same order.
pub async fn heads_for_tokens(
    pool: &sqlx::PgPool,
    presented: &[PresentedToken],
) -> Result<Vec<(TokenCheck, Option<JobHead>)>, DbError> {
    if presented.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin_with(super::GENERIC_PLANS).await?;
    let rows = sqlx::query(
        "SELECT p.pos, j.id, j.job_type, j.status, j.attempt, j.max_attempts,
                (SELECT coalesce(array_agg(t.sha256), '{}') FROM attempt_tokens t
                 WHERE t.job_id = p.id AND t.attempt = p.attempt) AS digests
         FROM unnest($1::bigint[], $2::int[]) WITH ORDINALITY AS p (id, attempt, pos)
         LEFT JOIN jobs j ON j.id = p.id
         ORDER BY p.pos",
    )
    .bind(presented.iter().map(|p| p.job_id).collect::<Vec<_>>())
    .bind(presented.iter().map(|p| p.attempt).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    presented
        .iter()
        .zip(&rows)
        .map(|(p, row)| {
            let Some(id) = row.try_get::<Option<i64>, _>("id")? else {
                return Ok((TokenCheck::UnknownJob, None));
            };
            let stored: Vec<Vec<u8>> = row.try_get("digests")?;
            if !matches_any(&stored, &p.token) {
                return Ok((TokenCheck::Refused, None));
            }
            let status: i16 = row.try_get("status")?;
            let head = JobHead {
                id,
                job_type: row.try_get("job_type")?,
                status: JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
                    job_id: id,
                    problem: e.to_string(),
                })?,
                attempt: row.try_get("attempt")?,
                max_attempts: row.try_get("max_attempts")?,
            };
            Ok((
                TokenCheck::Valid {
                    current_attempt: head.attempt,
                },
                Some(head),
            ))
        })
        .collect()
}

/// Whether `token`'s digest is one of `stored`; every digest is compared, in constant time, so the
/// time does not tell which one matched.
pub fn matches_any(stored: &[Vec<u8>], token: &str) -> bool {
    let given = digest(token);
    let same = |s: &Vec<u8>| {
        s.len() == given.len() && s.iter().zip(&given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    };
    stored.iter().fold(false, |found, s| same(s) | found)
}

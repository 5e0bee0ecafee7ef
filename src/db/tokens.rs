//! Per-attempt worker tokens: issued at dispatch, checked on every worker request.

use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, Row};

use super::DbError;

/// A new random token (two version-4 UUIDs: 244 random bits from the operating system).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn digest(token: &str) -> Vec<u8> {
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
    let token = new_token();
    let done = sqlx::query(
        "WITH held AS (
             UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $5)
             WHERE id = $1 AND attempt = $2 AND status = 3 AND service_id = $4
               AND lease_expires_at > clock_timestamp()
             RETURNING id, attempt
         )
         INSERT INTO attempt_tokens (job_id, attempt, sha256) SELECT id, attempt, $3 FROM held",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(digest(&token))
    .bind(owner)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?;
    Ok((done.rows_affected() == 1).then_some(token))
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

/// Whether `token`'s digest is one of `stored`; every digest is compared, in constant time, so the
/// time does not tell which one matched.
fn matches_any(stored: &[Vec<u8>], token: &str) -> bool {
    let given = digest(token);
    let same = |s: &Vec<u8>| {
        s.len() == given.len() && s.iter().zip(&given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    };
    stored.iter().fold(false, |found, s| same(s) | found)
}

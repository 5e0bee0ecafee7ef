//! Worker secrets. A dispatch hands the worker a one-time bootstrap secret; the worker exchanges it
//! on its first call for its attempt token, which every later request carries and which is checked
//! on each. Only SHA-256 digests are stored.

use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, Row};
use swath_domain::JobStatus;

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

/// Issues a bootstrap secret for attempt `attempt` of job `job_id` and stores its digest, if the job
/// is still `ready` at that attempt and claimed by `owner` under a lease that holds; the lease is
/// extended by `lease` at the same time, so that no other instance can claim and start the attempt
/// while this one dispatches it. The secret is what the dispatch hands to the worker, which exchanges
/// it once for its attempt token ([`exchange_bootstrap_token`]). Secrets issued earlier for the same
/// attempt stay exchangeable (a worker started before a re-dispatch keeps the one it was given), but
/// only one exchange per attempt succeeds. Returns `None` when the job is not in that state any more.
pub async fn issue_bootstrap_token<'e>(
    db: impl PgExecutor<'e>,
    job_id: i64,
    attempt: i32,
    owner: uuid::Uuid,
    lease: std::time::Duration,
) -> Result<Option<String>, DbError> {
    let mut tokens = issue_bootstrap_tokens(db, &[(job_id, attempt)], owner, lease).await?;
    Ok(tokens.pop().flatten())
}

/// [`issue_bootstrap_token`] for every `(job, attempt)` of `attempts` (distinct jobs) in one
/// statement; one answer per attempt, in the same order.
pub async fn issue_bootstrap_tokens<'e>(
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
             WHERE jobs.id = w.id AND jobs.attempt = w.attempt AND jobs.status = $6 AND jobs.service_id = $4
               AND jobs.lease_expires_at > clock_timestamp()
             RETURNING jobs.id, jobs.attempt
         )
         INSERT INTO worker_bootstrap_tokens (job_id, attempt, sha256)
         SELECT h.id, h.attempt, w.sha256 FROM held h JOIN wanted w ON w.id = h.id
         RETURNING job_id",
    )
    .bind(order.iter().map(|&i| attempts[i].0).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| attempts[i].1).collect::<Vec<_>>())
    .bind(order.iter().map(|&i| digest(&tokens[i])).collect::<Vec<_>>())
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(JobStatus::Ready.id())
    .fetch_all(db)
    .await?;
    let issued: std::collections::HashSet<i64> = issued.into_iter().collect();
    Ok(attempts
        .iter()
        .zip(tokens)
        .map(|((id, _), token)| issued.contains(id).then_some(token))
        .collect())
}

/// What exchanging a bootstrap secret did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// The attempt token is now valid for the attempt (also the answer to the same exchange sent
    /// again, with the same attempt token, after its answer was lost).
    Exchanged,
    /// No such job.
    UnknownJob,
    /// The secret is none of those issued for that attempt of the job.
    Refused,
    /// The attempt's bootstrap secret was already exchanged, for another attempt token: the secret
    /// is void (a replay, or a second run of the same attempt).
    AlreadyExchanged,
    /// The secret was issued for an attempt that is no longer the job's current one.
    Stale {
        /// The job's current attempt.
        current_attempt: i32,
    },
}

/// Exchanges the bootstrap secret `bootstrap` of attempt `attempt` of job `job_id` for
/// `attempt_token` (chosen by the worker): one compare-and-set marks the secret exchanged, if no
/// secret of the attempt was, while the attempt is the job's current one, and stores the attempt
/// token's digest in the same statement. Of concurrent exchanges exactly one wins; after it the
/// bootstrap secret opens nothing.
pub async fn exchange_bootstrap_token(
    pool: &sqlx::PgPool,
    job_id: i64,
    attempt: i32,
    bootstrap: &str,
    attempt_token: &str,
) -> Result<Exchange, DbError> {
    let presented = digest(bootstrap);
    let chosen = digest(attempt_token);
    let won = sqlx::query_scalar::<_, i64>(
        "WITH won AS (
             UPDATE worker_bootstrap_tokens b
             SET exchanged_at = clock_timestamp(), attempt_sha256 = $4
             FROM jobs j
             WHERE b.job_id = $1 AND b.attempt = $2 AND b.sha256 = $3 AND b.exchanged_at IS NULL
               AND j.id = b.job_id AND j.attempt = b.attempt
             RETURNING b.job_id, b.attempt
         )
         INSERT INTO attempt_tokens (job_id, attempt, sha256)
         SELECT job_id, attempt, $4 FROM won
         RETURNING job_id",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(&presented)
    .bind(&chosen)
    .fetch_optional(pool)
    .await;
    match won {
        Ok(Some(_)) => return Ok(Exchange::Exchanged),
        Ok(None) => {}
        // Another secret of the same attempt was exchanged (the one-exchange index).
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
        Err(e) => return Err(e.into()),
    }
    // Lost: say why (the compare-and-set above is the decision; this only names it).
    let row = sqlx::query(
        "SELECT j.attempt,
                EXISTS (SELECT 1 FROM worker_bootstrap_tokens b
                        WHERE b.job_id = j.id AND b.attempt = $2 AND b.sha256 = $3) AS known,
                (SELECT b.attempt_sha256 FROM worker_bootstrap_tokens b
                 WHERE b.job_id = j.id AND b.attempt = $2 AND b.exchanged_at IS NOT NULL) AS exchanged_for
         FROM jobs j WHERE j.id = $1",
    )
    .bind(job_id)
    .bind(attempt)
    .bind(&presented)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(Exchange::UnknownJob);
    };
    let current_attempt: i32 = row.try_get("attempt")?;
    let known: bool = row.try_get("known")?;
    let exchanged_for: Option<Vec<u8>> = row.try_get("exchanged_for")?;
    Ok(match exchanged_for {
        _ if !known => Exchange::Refused,
        Some(stored) if matches_any(std::slice::from_ref(&stored), attempt_token) => {
            Exchange::Exchanged
        }
        _ if current_attempt != attempt => Exchange::Stale { current_attempt },
        Some(_) => Exchange::AlreadyExchanged,
        // Not exchanged, yet the compare-and-set lost: an exchange that was rolled back meanwhile.
        None => Exchange::AlreadyExchanged,
    })
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
) -> Result<(TokenCheck, Option<swath_domain::Job>), DbError> {
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

//! Status changes in batches: the compare-and-sets of many jobs in one statement, each with its own
//! outcome, the same as if it had been applied alone with [`change_status`].
//!
//! A batch is a list of [`ChangeChain`]s: one or more changes of one job, applied all or none (a
//! worker's start that also records its dispatch; a failure and the retry it starts). It is applied
//! in waves, each naming a job at most once (a job named again waits for the next wave, so a job's
//! changes apply in the order given). In a wave, the first change of every chain goes into one
//! multi-row `UPDATE ... FROM unnest(...)`, the second changes into a second statement of the same
//! transaction, and so on. The row triggers fire for every row as for a single change: transition
//! check, history row, wake-ups and notifications.
//!
//! What does not fit is applied alone, exactly as before:
//! - a chain with a change the state machine refuses, so that the trigger's own error is the answer
//!   and its neighbours are not rolled back with it;
//! - every chain of a wave whose statement failed, or in which a later change did not apply.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool, Row};
use swath_domain::JobStatus;

use super::status::{change_status, change_status_on, StatusChange, Transition};
use super::DbError;

/// One or more changes of one job, applied all or none. Each change after the first must start from
/// the status the previous one enters, at the attempt it leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeChain(Vec<StatusChange>);

impl ChangeChain {
    /// A chain of one change.
    pub fn new(first: StatusChange) -> Self {
        ChangeChain(vec![first])
    }

    /// Adds the next change (of the same job).
    pub fn then(mut self, next: StatusChange) -> Self {
        self.0.push(next);
        self
    }

    /// The changes, in order.
    pub fn changes(&self) -> &[StatusChange] {
        &self.0
    }

    /// The job.
    pub fn job_id(&self) -> i64 {
        self.0[0].job_id
    }

    /// The first change, to add to it.
    pub fn first_mut(&mut self) -> &mut StatusChange {
        &mut self.0[0]
    }

    /// The last change, to add to it.
    pub fn last_mut(&mut self) -> &mut StatusChange {
        self.0.last_mut().expect("a chain has a first change")
    }
}

impl From<StatusChange> for ChangeChain {
    fn from(change: StatusChange) -> Self {
        ChangeChain::new(change)
    }
}

/// A job's status and attempt after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobState {
    /// The job.
    pub id: i64,
    /// Its status now.
    pub status: JobStatus,
    /// Its attempt now.
    pub attempt: i32,
}

/// Applies every chain of `chains` and returns one outcome per chain, in the same order: the job's
/// state after its last change, or the error [`change_status`] would have given (`LostRace`,
/// `InvalidTransition`, `NotFound`...). A chain that fails changes nothing; every change of a chain
/// whose outcome is `Ok` is committed (see [`applied_transitions`]).
pub async fn apply_chains(pool: &PgPool, chains: &[ChangeChain]) -> Vec<Result<JobState, DbError>> {
    let mut outcomes: Vec<Option<Result<JobState, DbError>>> =
        std::iter::repeat_with(|| None).take(chains.len()).collect();
    for wave in waves(chains) {
        let (fast, mut alone): (Vec<usize>, Vec<usize>) =
            wave.into_iter().partition(|&i| fits_fast_path(&chains[i]));
        match apply_wave(pool, chains, &fast).await {
            Ok(done) => {
                for (i, outcome) in done {
                    outcomes[i] = Some(outcome);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, chains = fast.len(), "a batch of status changes failed; applying them one by one");
                alone.extend(fast);
            }
        }
        for i in alone {
            outcomes[i] = Some(apply_alone(pool, &chains[i]).await);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every chain belongs to one wave"))
        .collect()
}

/// The transitions of the chains whose outcome (from [`apply_chains`]) is `Ok`: what was committed.
pub fn applied_transitions<'a>(
    chains: &'a [ChangeChain],
    outcomes: &'a [Result<JobState, DbError>],
) -> impl Iterator<Item = Transition> + 'a {
    chains
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .flat_map(|(chain, _)| chain.changes().iter().map(StatusChange::transition))
}

/// Splits `chains` (by index) into waves in which every job appears once, keeping each job's order.
fn waves(chains: &[ChangeChain]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<i64, usize> = HashMap::with_capacity(chains.len());
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let wave = seen.entry(chain.job_id()).or_insert(0);
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push(i);
        *wave += 1;
    }
    waves
}

/// Whether every change of `chain` is of its job, accepted by the transition trigger, and creates no
/// job (a change that spawns jobs is applied alone, with them, in its own transaction).
fn fits_fast_path(chain: &ChangeChain) -> bool {
    chain
        .changes()
        .iter()
        .all(|c| c.job_id == chain.job_id() && fits_state_machine(c) && c.spawn.is_empty())
}

/// Whether the transition trigger accepts `change` when the job is where the change expects it.
fn fits_state_machine(change: &StatusChange) -> bool {
    let bump = change.next_attempt.is_some();
    JobStatus::can_transition(Some(change.from), change.to)
        && (!bump || change.to == JobStatus::Ready)
        && (bump
            || change.to != JobStatus::Ready
            || !matches!(
                change.from,
                JobStatus::ExternalError | JobStatus::ErrorChecked
            ))
}

/// A chain applied on its own, as the callers of [`change_status`] did before batches.
async fn apply_alone(pool: &PgPool, chain: &ChangeChain) -> Result<JobState, DbError> {
    let state = |job: swath_domain::Job| JobState {
        id: job.id,
        status: job.status,
        attempt: job.attempt,
    };
    if let [change] = chain.changes() {
        return change_status_on(pool, change).await.map(state);
    }
    let mut tx = pool.begin().await?;
    let mut last = None;
    for change in chain.changes() {
        last = Some(change_status(&mut tx, change).await?);
    }
    tx.commit().await?;
    Ok(state(last.expect("a chain has a first change")))
}

/// The chains `members` of one wave (distinct jobs), in one statement per position in the chains.
/// Fails, having changed nothing, when a statement fails or a later change of a chain does not
/// apply.
async fn apply_wave(
    pool: &PgPool,
    chains: &[ChangeChain],
    members: &[usize],
) -> Result<Vec<(usize, Result<JobState, DbError>)>, DbError> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let depth = members
        .iter()
        .map(|&i| chains[i].changes().len())
        .max()
        .unwrap_or(1);
    let first: Vec<&StatusChange> = members.iter().map(|&i| &chains[i].changes()[0]).collect();
    let mut tx = pool.begin_with(super::GENERIC_PLANS).await?;
    let applied = update_many(&mut tx, &first).await?;
    let mut last = applied.clone();
    for level in 1..depth {
        let next: Vec<&StatusChange> = members
            .iter()
            .filter(|&&i| applied.contains_key(&chains[i].job_id()))
            .filter_map(|&i| chains[i].changes().get(level))
            .collect();
        let moved = update_many(&mut tx, &next).await?;
        if moved.len() != next.len() {
            return Err(DbError::Sqlx(sqlx::Error::Protocol(format!(
                "{} of {} chained status changes did not apply",
                next.len() - moved.len(),
                next.len()
            ))));
        }
        last.extend(moved);
    }
    let mut found = current_states(&mut tx, &missed(&first, &applied)).await?;
    tx.commit().await?;
    Ok(members
        .iter()
        .zip(&first)
        .map(|(&i, change)| match last.get(&change.job_id) {
            Some(state) => (i, Ok(*state)),
            None => (i, lost_race(change, &mut found)),
        })
        .collect())
}

/// The jobs of `changes` that are not in `applied`.
fn missed(changes: &[&StatusChange], applied: &HashMap<i64, JobState>) -> Vec<i64> {
    changes
        .iter()
        .map(|c| c.job_id)
        .filter(|id| !applied.contains_key(id))
        .collect()
}

/// The lost race of a chain whose first change `change` did not apply, against the job's state as
/// read after the statement.
fn lost_race(
    change: &StatusChange,
    found: &mut HashMap<i64, (i16, i32)>,
) -> Result<JobState, DbError> {
    let id = change.job_id;
    let (status, actual_attempt) = found.remove(&id).ok_or(DbError::NotFound(id))?;
    Err(DbError::LostRace {
        job_id: id,
        expected: change.from,
        expected_attempt: change.attempt,
        actual: decode_status(id, status)?,
        actual_attempt,
    })
}

fn decode_status(job_id: i64, status: i16) -> Result<JobStatus, DbError> {
    JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
        job_id,
        problem: e.to_string(),
    })
}

/// Status and attempt of the jobs `ids` (those that exist).
async fn current_states(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<HashMap<i64, (i16, i32)>, DbError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query("SELECT id, status, attempt FROM jobs WHERE id = ANY ($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                (r.try_get("status")?, r.try_get("attempt")?),
            ))
        })
        .collect()
}

/// One compare-and-set per change (distinct jobs) in one statement, rows locked in id order.
/// Returns the state of every job whose change applied.
async fn update_many(
    conn: &mut PgConnection,
    changes: &[&StatusChange],
) -> Result<HashMap<i64, JobState>, DbError> {
    if changes.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sorted = changes.to_vec();
    sorted.sort_by_key(|c| c.job_id);
    let col =
        |f: fn(&StatusChange) -> Option<&str>| sorted.iter().map(|c| f(c)).collect::<Vec<_>>();
    let json = |f: fn(&StatusChange) -> Option<&serde_json::Value>| {
        sorted
            .iter()
            .map(|c| f(c).map(|v| v.to_string()))
            .collect::<Vec<_>>()
    };
    let rows = sqlx::query(
        "UPDATE jobs SET status = c.to_status,
                status_changed_at = clock_timestamp(),
                status_error_subtype = c.error_subtype,
                status_message = c.message,
                status_service_id = c.service_id,
                attempt = jobs.attempt + CASE WHEN c.bump THEN 1 ELSE 0 END,
                next_attempt_at = CASE WHEN c.bump THEN c.not_before ELSE jobs.next_attempt_at END,
                params = coalesce(c.params::jsonb, jobs.params),
                depends_on = CASE WHEN c.waiting THEN c.depends_on ELSE jobs.depends_on END,
                recheck_at = CASE WHEN c.waiting THEN c.recheck_at ELSE jobs.recheck_at END,
                service_id = CASE WHEN c.release THEN NULL ELSE jobs.service_id END,
                tag = CASE WHEN c.release THEN NULL ELSE jobs.tag END,
                lease_expires_at = CASE WHEN c.release THEN NULL ELSE jobs.lease_expires_at END,
                results = coalesce(c.results::jsonb, jobs.results),
                software_version = coalesce(c.software_version, jobs.software_version),
                executor_ref = coalesce(c.executor_ref, jobs.executor_ref)
         FROM unnest($1::bigint[], $2::smallint[], $3::int[], $4::smallint[], $5::text[], $6::text[],
                     $7::uuid[], $8::bool[], $9::timestamptz[], $10::text[], $11::bool[], $12::bigint[],
                     $13::timestamptz[], $14::bool[], $15::text[], $16::text[], $17::text[])
              AS c (id, from_status, attempt, to_status, error_subtype, message, service_id, bump,
                    not_before, params, waiting, depends_on, recheck_at, release, results,
                    software_version, executor_ref)
         WHERE jobs.id = c.id AND jobs.status = c.from_status AND jobs.attempt = c.attempt
         RETURNING jobs.id, jobs.status, jobs.attempt",
    )
    .bind(sorted.iter().map(|c| c.job_id).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.from.id()).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.attempt).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.to.id()).collect::<Vec<_>>())
    .bind(col(|c| c.error_subtype.as_deref()))
    .bind(col(|c| c.message.as_deref()))
    .bind(sorted.iter().map(|c| c.service_id).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.next_attempt.is_some()).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.next_attempt.flatten()).collect::<Vec<_>>())
    .bind(json(|c| c.params.as_ref()))
    .bind(sorted.iter().map(|c| c.waiting.is_some()).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.waiting.and_then(|(on, _)| on)).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.waiting.and_then(|(_, at)| at)).collect::<Vec<_>>())
    .bind(sorted.iter().map(|c| c.release).collect::<Vec<_>>())
    .bind(json(|c| c.results.as_ref()))
    .bind(col(|c| c.software_version.as_deref()))
    .bind(col(|c| c.executor_ref.as_deref()))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            let state = JobState {
                id,
                status: decode_status(id, r.try_get("status")?)?,
                attempt: r.try_get("attempt")?,
            };
            Ok((id, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(job_id: i64, from: JobStatus, to: JobStatus) -> StatusChange {
        StatusChange::new(job_id, from, 1, to)
    }

    #[test]
    fn a_job_named_again_waits_for_the_next_wave_in_order() {
        use JobStatus::*;
        let chains: Vec<ChangeChain> = [
            (1, Queued),
            (2, Queued),
            (1, Started),
            (3, Queued),
            (1, PreProcessing),
        ]
        .into_iter()
        .map(|(id, from)| change(id, from, Started).into())
        .collect();
        assert_eq!(waves(&chains), vec![vec![0, 1, 3], vec![2], vec![4]]);
        assert!(waves(&[]).is_empty());
    }

    #[test]
    fn only_changes_the_triggers_accept_take_the_fast_path() {
        use JobStatus::*;
        assert!(fits_state_machine(&change(1, Queued, Started)));
        assert!(!fits_state_machine(&change(1, Queued, Processing)));
        assert!(fits_state_machine(
            &change(1, ExternalError, Ready).next_attempt(None)
        ));
        assert!(
            !fits_state_machine(&change(1, ExternalError, Ready)),
            "going back to ready from an error starts an attempt"
        );
        assert!(
            !fits_state_machine(&change(1, ExternalError, InternalError).next_attempt(None)),
            "an attempt starts only on ready"
        );
    }
}

//! The `schedules` rows of the background jobs and their `schedule_runs`.
//!
//! A cron tick is fired by the instance whose compare-and-set moves `next_run_time` from the tick it
//! read to the next one; a request, by the one that clears the `requested_at` it read. The same
//! transaction records the run: `running`, or `refused` with the reason (disabled, the previous run
//! still running, healing before a successful initial sync).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::services::Instance;
use super::DbError;

/// The three background jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    /// The backfill that runs once.
    InitialSync,
    /// The periodic re-scan.
    Healing,
    /// The periodic snapshot.
    Dump,
}

/// Every kind, in the order they are listed.
pub const ALL_KINDS: [ScheduleKind; 3] = [
    ScheduleKind::InitialSync,
    ScheduleKind::Healing,
    ScheduleKind::Dump,
];

impl ScheduleKind {
    /// The id of its `schedules` row.
    pub fn id(self) -> &'static str {
        match self {
            ScheduleKind::InitialSync => "initial_sync",
            ScheduleKind::Healing => "healing",
            ScheduleKind::Dump => "dump",
        }
    }

    /// The kind with that `schedules` id.
    pub fn from_id(id: &str) -> Option<ScheduleKind> {
        ALL_KINDS.into_iter().find(|k| k.id() == id)
    }

    /// What it is called in messages.
    pub fn label(self) -> &'static str {
        match self {
            ScheduleKind::InitialSync => "initial sync",
            ScheduleKind::Healing => "healing",
            ScheduleKind::Dump => "dump",
        }
    }

    /// The setting that enables it.
    pub fn switch(self) -> &'static str {
        match self {
            ScheduleKind::InitialSync => "SWATH_START_INITIAL_SYNC",
            ScheduleKind::Healing => "SWATH_ENABLE_HEALING_JOB_OPERATION",
            ScheduleKind::Dump => "SWATH_ENABLE_DUMP_FILE_CREATION",
        }
    }
}

impl std::fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A `schedules` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleRow {
    /// Which background job.
    pub id: String,
    /// Its cron pattern (none for the initial sync).
    pub cron_pattern: Option<String>,
    /// Its next cron tick.
    pub next_run_time: Option<DateTime<Utc>>,
    /// A run asked for and not fired yet.
    pub requested_at: Option<DateTime<Utc>>,
    /// `idle`, `running` or `disabled`.
    pub state: String,
    /// Healing only: it waits for a successful initial sync.
    pub wait_for_initial_sync: bool,
    /// When it last fired.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When a run last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last run failed or was refused.
    pub last_error: Option<String>,
    /// The instance that fired the last run.
    pub service_id: Option<Uuid>,
    /// Its tag.
    pub tag: Option<serde_json::Value>,
}

/// A `schedule_runs` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Its id.
    pub id: i64,
    /// Which background job.
    pub schedule_id: String,
    /// `cron` or `request`.
    pub trigger: String,
    /// The tick (or request time) it fired for.
    pub tick_at: DateTime<Utc>,
    /// `running`, `succeeded`, `failed`, `refused` or `abandoned`.
    pub state: String,
    /// The instance that fired it.
    pub service_id: Uuid,
    /// Its tag.
    pub tag: Option<serde_json::Value>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed, was refused or abandoned.
    pub message: Option<String>,
    /// What it did.
    pub result: Option<serde_json::Value>,
}

/// What fires a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A cron tick.
    Cron,
    /// A request (API, start-up).
    Request,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Request => "request",
        }
    }
}

/// A fired tick or request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// Its run.
    pub run_id: i64,
    /// The tick or request time.
    pub tick_at: DateTime<Utc>,
    /// `Some(reason)` when the run was refused (and is already recorded as such).
    pub refused: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// It did its work.
    Succeeded,
    /// It failed.
    Failed,
    /// Its instance stopped before it ended.
    Abandoned,
}

impl RunEnd {
    fn as_str(self) -> &'static str {
        match self {
            RunEnd::Succeeded => "succeeded",
            RunEnd::Failed => "failed",
            RunEnd::Abandoned => "abandoned",
        }
    }
}

const SCHEDULE_COLUMNS: &str = "id, cron_pattern, next_run_time, requested_at, state, \
    wait_for_initial_sync, last_run_at, last_success_at, last_error, service_id, tag";
const RUN_COLUMNS: &str = "id, schedule_id, trigger, tick_at, state, service_id, tag, started_at, \
    finished_at, message, result";

fn schedule_from_row(row: &PgRow) -> Result<ScheduleRow, DbError> {
    Ok(ScheduleRow {
        id: row.try_get("id")?,
        cron_pattern: row.try_get("cron_pattern")?,
        next_run_time: row.try_get("next_run_time")?,
        requested_at: row.try_get("requested_at")?,
        state: row.try_get("state")?,
        wait_for_initial_sync: row.try_get("wait_for_initial_sync")?,
        last_run_at: row.try_get("last_run_at")?,
        last_success_at: row.try_get("last_success_at")?,
        last_error: row.try_get("last_error")?,
        service_id: row.try_get("service_id")?,
        tag: row.try_get("tag")?,
    })
}

fn run_from_row(row: &PgRow) -> Result<RunRow, DbError> {
    Ok(RunRow {
        id: row.try_get("id")?,
        schedule_id: row.try_get("schedule_id")?,
        trigger: row.try_get("trigger")?,
        tick_at: row.try_get("tick_at")?,
        state: row.try_get("state")?,
        service_id: row.try_get("service_id")?,
        tag: row.try_get("tag")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        message: row.try_get("message")?,
        result: row.try_get("result")?,
    })
}

/// Applies this instance's settings to the `kind` row: its pattern (the next tick is `next` when
/// the pattern is new or changed, else kept, so that restarts neither skip nor repeat a tick), its
/// switch and, for healing, whether it waits for the initial sync.
pub async fn configure<'e>(
    db: impl PgExecutor<'e>,
    kind: ScheduleKind,
    pattern: Option<&str>,
    next: Option<DateTime<Utc>>,
    enabled: bool,
    wait_for_initial_sync: bool,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE schedules SET
             next_run_time = CASE
                 WHEN $2::text IS NULL THEN NULL
                 WHEN cron_pattern IS DISTINCT FROM $2 OR next_run_time IS NULL THEN $3
                 ELSE next_run_time END,
             cron_pattern = $2,
             state = CASE
                 WHEN NOT $4 THEN 'disabled'
                 WHEN state <> 'disabled' THEN state
                 WHEN EXISTS (SELECT 1 FROM schedule_runs r WHERE r.schedule_id = $1 AND r.state = 'running') THEN 'running'
                 ELSE 'idle' END,
             wait_for_initial_sync = $5,
             updated_at = clock_timestamp()
         WHERE id = $1",
    )
    .bind(kind.id())
    .bind(pattern)
    .bind(next)
    .bind(enabled)
    .bind(wait_for_initial_sync)
    .execute(db)
    .await?;
    Ok(())
}

/// Every schedule.
pub async fn schedules<'e>(db: impl PgExecutor<'e>) -> Result<Vec<ScheduleRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(schedule_from_row).collect()
}

/// Asks for an initial sync if it is enabled and none has succeeded, runs or is asked for already.
/// Returns whether it asked.
pub async fn request_initial_sync_if_needed<'e>(db: impl PgExecutor<'e>) -> Result<bool, DbError> {
    let asked = sqlx::query(
        "UPDATE schedules SET requested_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE id = 'initial_sync' AND state <> 'disabled' AND requested_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM schedule_runs
                           WHERE schedule_id = 'initial_sync' AND state IN ('running', 'succeeded'))",
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(asked == 1)
}

/// Fires the cron tick `seen` of `kind` (moving it to `next`) or its request made at `seen`, if this
/// instance wins the compare-and-set; records the run, refused or running, in the same transaction.
/// `None`: another instance fired it first (or it was disabled meanwhile, for a tick).
pub async fn fire(
    pool: &PgPool,
    kind: ScheduleKind,
    trigger: Trigger,
    seen: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    instance: &Instance,
) -> Result<Option<Fired>, DbError> {
    let mut tx = pool.begin().await?;
    let cas = match trigger {
        Trigger::Cron => {
            "UPDATE schedules SET next_run_time = $3, last_run_at = clock_timestamp(), service_id = $4,
                 tag = $5, updated_at = clock_timestamp()
             WHERE id = $1 AND next_run_time = $2 AND state <> 'disabled'
             RETURNING state, wait_for_initial_sync"
        }
        Trigger::Request => {
            "UPDATE schedules SET requested_at = NULL, next_run_time = coalesce($3, next_run_time),
                 last_run_at = clock_timestamp(), service_id = $4, tag = $5, updated_at = clock_timestamp()
             WHERE id = $1 AND requested_at = $2
             RETURNING state, wait_for_initial_sync"
        }
    };
    let won: Option<(String, bool)> = sqlx::query_as(cas)
        .bind(kind.id())
        .bind(seen)
        .bind(next)
        .bind(instance.service_id)
        .bind(instance.tag())
        .fetch_optional(&mut *tx)
        .await?;
    let Some((state, wait)) = won else {
        return Ok(None);
    };
    let refused = refusal(&mut tx, kind, &state, wait).await?;
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO schedule_runs (schedule_id, trigger, tick_at, state, service_id, tag, finished_at, message)
         VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $4 = 'refused' THEN clock_timestamp() END, $7)
         RETURNING id",
    )
    .bind(kind.id())
    .bind(trigger.as_str())
    .bind(seen)
    .bind(if refused.is_some() { "refused" } else { "running" })
    .bind(instance.service_id)
    .bind(instance.tag())
    .bind(refused.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE schedules SET
             state = CASE WHEN $2::text IS NULL THEN 'running' ELSE state END,
             last_error = CASE WHEN $2::text IS NULL THEN last_error ELSE $2 END
         WHERE id = $1",
    )
    .bind(kind.id())
    .bind(refused.as_deref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Fired {
        run_id,
        tick_at: seen,
        refused,
    }))
}

/// Why a run of `kind` cannot start now, if it cannot (read inside the firing transaction, which
/// holds the schedule's row).
async fn refusal(
    tx: &mut sqlx::PgConnection,
    kind: ScheduleKind,
    state: &str,
    wait_for_initial_sync: bool,
) -> Result<Option<String>, DbError> {
    if state == "disabled" {
        return Ok(Some(format!(
            "the {kind} is disabled ({}=false)",
            kind.switch()
        )));
    }
    let running: Option<(i64, Uuid)> = sqlx::query_as(
        "SELECT id, service_id FROM schedule_runs WHERE schedule_id = $1 AND state = 'running' LIMIT 1",
    )
    .bind(kind.id())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, service)) = running {
        return Ok(Some(format!(
            "run {id} of the {kind} (instance {service}) is still running"
        )));
    }
    if kind == ScheduleKind::Healing
        && wait_for_initial_sync
        && !initial_sync_succeeded(&mut *tx).await?
    {
        return Ok(Some(MUST_WAIT.to_string()));
    }
    Ok(None)
}

/// Why healing is refused before a successful initial sync.
pub const MUST_WAIT: &str = "healing waits for a successful initial sync \
    (SWATH_HEAL_MUST_WAIT_FOR_INITIAL_SYNC=true), and none has succeeded yet";

/// Whether an initial sync has succeeded.
pub async fn initial_sync_succeeded<'e>(db: impl PgExecutor<'e>) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM schedule_runs WHERE schedule_id = 'initial_sync' AND state = 'succeeded')",
    )
    .fetch_one(db)
    .await?)
}

/// Records the end of run `run_id` (if it is still running) and its schedule's summary. Returns
/// whether it was still running.
pub async fn finish(
    pool: &PgPool,
    run_id: i64,
    end: RunEnd,
    message: Option<&str>,
    result: Option<&serde_json::Value>,
) -> Result<bool, DbError> {
    let mut tx = pool.begin().await?;
    let schedule: Option<String> = sqlx::query_scalar(
        "UPDATE schedule_runs SET state = $2, finished_at = clock_timestamp(), message = $3, result = $4
         WHERE id = $1 AND state = 'running' RETURNING schedule_id",
    )
    .bind(run_id)
    .bind(end.as_str())
    .bind(message)
    .bind(result)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(schedule) = schedule else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE schedules SET
             state = CASE
                 WHEN state = 'disabled' THEN 'disabled'
                 WHEN EXISTS (SELECT 1 FROM schedule_runs r WHERE r.schedule_id = $1 AND r.state = 'running') THEN 'running'
                 ELSE 'idle' END,
             last_success_at = CASE WHEN $2 = 'succeeded' THEN clock_timestamp() ELSE last_success_at END,
             last_error = CASE WHEN $2 = 'succeeded' THEN NULL ELSE $3 END,
             updated_at = clock_timestamp()
         WHERE id = $1",
    )
    .bind(&schedule)
    .bind(end.as_str())
    .bind(message)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Whose running runs to abandon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// Those of instances that are not alive.
    OfGoneInstances,
    /// Those of this instance (it stops).
    Of(Uuid),
}

/// Records as abandoned the running runs of `whose`; an abandoned initial sync is asked for again
/// (unless one succeeded or it was disabled). Returns the abandoned runs.
pub async fn abandon(pool: &PgPool, whose: Abandon) -> Result<Vec<RunRow>, DbError> {
    let mut tx = pool.begin().await?;
    let who = match whose {
        Abandon::OfGoneInstances => None,
        Abandon::Of(id) => Some(id),
    };
    let rows = sqlx::query(&format!(
        "UPDATE schedule_runs r SET state = 'abandoned', finished_at = clock_timestamp(),
             message = 'its instance stopped or died before it ended'
         WHERE r.state = 'running'
           AND (r.service_id = $1 OR ($1::uuid IS NULL AND NOT EXISTS
                (SELECT 1 FROM services s WHERE s.id = r.service_id AND s.state = 'alive')))
         RETURNING {RUN_COLUMNS}"
    ))
    .bind(who)
    .fetch_all(&mut *tx)
    .await?;
    let runs: Vec<RunRow> = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
    let mut ids: Vec<&str> = runs.iter().map(|r| r.schedule_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        sqlx::query(
            "UPDATE schedules SET
                 state = CASE
                     WHEN state = 'disabled' THEN 'disabled'
                     WHEN EXISTS (SELECT 1 FROM schedule_runs r WHERE r.schedule_id = $1 AND r.state = 'running') THEN 'running'
                     ELSE 'idle' END,
                 last_error = 'a run was abandoned: its instance stopped or died before it ended',
                 requested_at = CASE
                     WHEN id = 'initial_sync' AND state <> 'disabled'
                          AND NOT EXISTS (SELECT 1 FROM schedule_runs r WHERE r.schedule_id = $1 AND r.state IN ('running', 'succeeded'))
                     THEN coalesce(requested_at, clock_timestamp())
                     ELSE requested_at END,
                 updated_at = clock_timestamp()
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(runs)
}

/// What a request for a run got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Asked for: an instance fires it at once.
    Requested(DateTime<Utc>),
    /// It was asked for already and has not fired yet.
    AlreadyRequested(DateTime<Utc>),
    /// Refused, with the reason.
    Refused(String),
}

/// Asks for a run of `kind` now, unless it is disabled, a run is in progress, or (healing) no initial
/// sync has succeeded while healing must wait for one.
pub async fn request(pool: &PgPool, kind: ScheduleKind) -> Result<Requested, DbError> {
    let mut tx = pool.begin().await?;
    let (state, wait, requested_at): (String, bool, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT state, wait_for_initial_sync, requested_at FROM schedules WHERE id = $1 FOR UPDATE",
    )
    .bind(kind.id())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(reason) = refusal(&mut tx, kind, &state, wait).await? {
        return Ok(Requested::Refused(reason));
    }
    if let Some(at) = requested_at {
        return Ok(Requested::AlreadyRequested(at));
    }
    let at: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE schedules SET requested_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE id = $1 RETURNING requested_at",
    )
    .bind(kind.id())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Requested::Requested(at))
}

/// Deletes the finished runs of `kind` (a running one stays) and brings its summary in line.
/// Returns how many went.
pub async fn delete_runs(pool: &PgPool, kind: ScheduleKind) -> Result<u64, DbError> {
    let mut tx = pool.begin().await?;
    let deleted =
        sqlx::query("DELETE FROM schedule_runs WHERE schedule_id = $1 AND state <> 'running'")
            .bind(kind.id())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    sqlx::query(
        "UPDATE schedules SET
             last_run_at = (SELECT max(started_at) FROM schedule_runs WHERE schedule_id = $1),
             last_success_at = (SELECT max(finished_at) FROM schedule_runs WHERE schedule_id = $1 AND state = 'succeeded'),
             last_error = NULL, updated_at = clock_timestamp()
         WHERE id = $1",
    )
    .bind(kind.id())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The runs of `kind`, newest first, at most `limit`.
pub async fn runs<'e>(
    db: impl PgExecutor<'e>,
    kind: ScheduleKind,
    limit: i64,
) -> Result<Vec<RunRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(kind.id())
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(run_from_row).collect()
}

/// The schedule row of `kind`.
pub async fn schedule<'e>(
    db: impl PgExecutor<'e>,
    kind: ScheduleKind,
) -> Result<ScheduleRow, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1"
    ))
    .bind(kind.id())
    .fetch_one(db)
    .await?;
    schedule_from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::services::register;

    async fn instances(pool: &PgPool) -> (Instance, Instance) {
        let (a, b) = (Instance::new("a"), Instance::new("b"));
        register(pool, &a).await.unwrap();
        register(pool, &b).await.unwrap();
        (a, b)
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[sqlx::test(migrations = "../sql")]
    async fn two_instances_racing_for_a_tick_fire_it_once(pool: PgPool) {
        let (a, b) = instances(&pool).await;
        let tick = at("2024-03-01T00:00:00Z");
        let next = at("2024-03-02T00:00:00Z");
        configure(
            &pool,
            ScheduleKind::Dump,
            Some("0 0 0 * * *"),
            Some(tick),
            true,
            true,
        )
        .await
        .unwrap();
        for round in 0..20 {
            let seen = tick + chrono::TimeDelta::days(round);
            let then = next + chrono::TimeDelta::days(round);
            let (x, y) = tokio::join!(
                fire(
                    &pool,
                    ScheduleKind::Dump,
                    Trigger::Cron,
                    seen,
                    Some(then),
                    &a
                ),
                fire(
                    &pool,
                    ScheduleKind::Dump,
                    Trigger::Cron,
                    seen,
                    Some(then),
                    &b
                )
            );
            let fired: Vec<Fired> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
            assert_eq!(fired.len(), 1, "round {round}: {fired:?}");
            assert_eq!(fired[0].refused, None);
            finish(&pool, fired[0].run_id, RunEnd::Succeeded, None, None)
                .await
                .unwrap();
            // A late instance that read the same tick loses too.
            assert_eq!(
                fire(
                    &pool,
                    ScheduleKind::Dump,
                    Trigger::Cron,
                    seen,
                    Some(then),
                    &a
                )
                .await
                .unwrap(),
                None
            );
        }
        let ticks: Vec<DateTime<Utc>> = runs(&pool, ScheduleKind::Dump, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.tick_at)
            .collect();
        assert_eq!(ticks.len(), 20);
        let row = schedule(&pool, ScheduleKind::Dump).await.unwrap();
        assert_eq!(row.next_run_time, Some(next + chrono::TimeDelta::days(19)));
        assert_eq!(row.state, "idle");
    }

    #[sqlx::test(migrations = "../sql")]
    async fn a_restart_keeps_the_next_tick_and_a_new_pattern_replaces_it(pool: PgPool) {
        let first = at("2024-03-01T00:00:00Z");
        configure(
            &pool,
            ScheduleKind::Healing,
            Some("0 0 0 * * *"),
            Some(first),
            true,
            true,
        )
        .await
        .unwrap();
        let later = at("2024-03-05T00:00:00Z");
        configure(
            &pool,
            ScheduleKind::Healing,
            Some("0 0 0 * * *"),
            Some(later),
            true,
            true,
        )
        .await
        .unwrap();
        let row = schedule(&pool, ScheduleKind::Healing).await.unwrap();
        assert_eq!(
            row.next_run_time,
            Some(first),
            "same pattern: the pending tick stays"
        );
        configure(
            &pool,
            ScheduleKind::Healing,
            Some("0 0 2 * * *"),
            Some(later),
            false,
            false,
        )
        .await
        .unwrap();
        let row = schedule(&pool, ScheduleKind::Healing).await.unwrap();
        assert_eq!(row.next_run_time, Some(later));
        assert_eq!(
            (row.state.as_str(), row.wait_for_initial_sync),
            ("disabled", false)
        );
    }

    #[sqlx::test(migrations = "../sql")]
    async fn runs_are_refused_while_one_runs_and_abandoned_with_their_instance(pool: PgPool) {
        let (a, b) = instances(&pool).await;
        configure(&pool, ScheduleKind::InitialSync, None, None, true, true)
            .await
            .unwrap();
        assert!(request_initial_sync_if_needed(&pool).await.unwrap());
        assert!(
            !request_initial_sync_if_needed(&pool).await.unwrap(),
            "asked once"
        );
        let asked = schedule(&pool, ScheduleKind::InitialSync)
            .await
            .unwrap()
            .requested_at
            .unwrap();
        let fired = fire(
            &pool,
            ScheduleKind::InitialSync,
            Trigger::Request,
            asked,
            None,
            &a,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(fired.refused, None);
        assert!(fire(
            &pool,
            ScheduleKind::InitialSync,
            Trigger::Request,
            asked,
            None,
            &b
        )
        .await
        .unwrap()
        .is_none());
        // Asked again while it runs: refused with the reason.
        match request(&pool, ScheduleKind::InitialSync).await.unwrap() {
            Requested::Refused(reason) => assert!(reason.contains("still running"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Its instance dies: the run is abandoned and the initial sync asked for again.
        sqlx::query(
            "UPDATE services SET state = 'dead', ended_at = clock_timestamp() WHERE id = $1",
        )
        .bind(a.service_id)
        .execute(&pool)
        .await
        .unwrap();
        let abandoned = abandon(&pool, Abandon::OfGoneInstances).await.unwrap();
        assert_eq!(abandoned.len(), 1);
        assert!(
            !finish(&pool, fired.run_id, RunEnd::Succeeded, None, None)
                .await
                .unwrap(),
            "an abandoned run cannot succeed later"
        );
        let row = schedule(&pool, ScheduleKind::InitialSync).await.unwrap();
        assert!(row.requested_at.is_some(), "asked for again");
        assert_eq!(row.state, "idle");
    }
}

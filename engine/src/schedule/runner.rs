//! The scheduler of one instance: it applies the instance's settings to the `schedules` rows at
//! start-up ([`prepare`]), then fires what is due ([`scheduler_loop`]) and runs what it fired.
//!
//! It sleeps until the next tick (or a request: `swath_schedules` notifications wake it at once).
//! A tick is fired with a compare-and-set that moves `next_run_time` to the first tick after now,
//! computed from the pattern stored in the row: however long every instance was down, a missed tick
//! fires once. When the instance stops, runs in progress get the shutdown timeout to end, then are
//! cancelled and recorded as abandoned (an abandoned initial sync is asked for again).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use swath_domain::JobTemplate;
use tokio::task::JoinSet;

use super::dump::write_dump;
use super::scan::{healing_targets, initial_sync_targets, scan};
use crate::catalogue::Catalogue;
use crate::config::cron::CronSchedule;
use crate::config::ScheduleSettings;
use crate::db::notifications::Notifications;
use crate::db::schedules::{
    abandon, configure, finish, fire, request_initial_sync_if_needed, schedules, Abandon, Fired,
    RunEnd, ScheduleKind, Trigger, ALL_KINDS,
};
use crate::db::services::Instance;
use crate::db::DbError;
use crate::service::{CancellationToken, Service};

/// The longest sleep between two looks at the schedules.
const IDLE: Duration = Duration::from_secs(30);
/// How long the end of a run is tried again when the database does not answer.
const FINISH_ATTEMPTS: u32 = 120;

/// What the scheduler needs.
pub struct Scheduler {
    /// The database.
    pub pool: PgPool,
    /// This instance.
    pub instance: Instance,
    /// The background jobs' settings.
    pub settings: ScheduleSettings,
    /// The enabled job types (the initial sync and healing scan for them).
    pub job_types: Vec<Arc<dyn JobTemplate>>,
    /// The catalogue they scan.
    pub catalogue: Arc<dyn Catalogue>,
    /// How long runs in progress may take to end when the instance stops.
    pub shutdown_timeout: Duration,
}

/// Applies this instance's settings to the schedules (patterns, switches), and asks for the initial
/// sync when it is enabled and none has succeeded yet.
pub async fn prepare(pool: &PgPool, settings: &ScheduleSettings) -> Result<(), DbError> {
    let now = Utc::now();
    for kind in ALL_KINDS {
        let cron = settings.cron(kind);
        configure(
            pool,
            kind,
            cron.map(CronSchedule::pattern),
            cron.and_then(|c| c.next_after(now)),
            settings.enabled(kind),
            settings.heal_must_wait_for_initial_sync,
        )
        .await?;
    }
    if settings.initial_sync && request_initial_sync_if_needed(pool).await? {
        tracing::info!(
            "initial sync asked for (SWATH_START_INITIAL_SYNC=true and none has succeeded yet)"
        );
    }
    Ok(())
}

/// Fires and runs what is due until `stop` resolves, then lets the runs in progress end (up to the
/// shutdown timeout) and records the others as abandoned.
pub async fn scheduler_loop(scheduler: Arc<Scheduler>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let pool = scheduler.pool.clone();
    let mut wake = Notifications::listen(&pool, "swath_schedules").await;
    let mut running: JoinSet<()> = JoinSet::new();
    let mut runs: HashMap<tokio::task::Id, i64> = HashMap::new();
    loop {
        while let Some(ended) = running.try_join_next_with_id() {
            forget(&mut runs, ended);
        }
        let sleep = match fire_due(&scheduler).await {
            Ok((fired, sleep)) => {
                for (kind, fired) in fired {
                    let task = Arc::clone(&scheduler);
                    let run_id = fired.run_id;
                    let handle = running.spawn(async move { run(&task, kind, fired).await });
                    runs.insert(handle.id(), run_id);
                }
                sleep
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look at the schedules; trying again shortly");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = wake.notified(Duration::from_secs(1)) => {}
            _ = tokio::time::sleep(sleep) => {}
            Some(ended) = running.join_next_with_id(), if !running.is_empty() => forget(&mut runs, ended),
            _ = &mut stop => break,
        }
    }
    if !running.is_empty() {
        tracing::info!(
            runs = running.len(),
            "waiting for background runs in progress"
        );
        let all_ended = async {
            while let Some(ended) = running.join_next_with_id().await {
                forget(&mut runs, ended);
            }
        };
        if tokio::time::timeout(scheduler.shutdown_timeout, all_ended)
            .await
            .is_err()
        {
            running.abort_all();
            while running.join_next().await.is_some() {}
            match abandon(&pool, Abandon::Of(scheduler.instance.service_id)).await {
                Ok(abandoned) => {
                    for run in abandoned {
                        tracing::warn!(run = run.id, schedule = %run.schedule_id, "background run abandoned: the instance stops");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record abandoned runs; the leader will")
                }
            }
        }
    }
}

fn forget(
    runs: &mut HashMap<tokio::task::Id, i64>,
    ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let id = match ended {
        Ok((id, ())) => id,
        Err(e) => {
            if e.is_panic() {
                tracing::error!(error = %e, "a background run panicked");
            }
            e.id()
        }
    };
    runs.remove(&id);
}

/// Fires every due tick and request this instance wins; returns them, and how long to sleep until
/// the next tick.
async fn fire_due(
    scheduler: &Scheduler,
) -> Result<(Vec<(ScheduleKind, Fired)>, Duration), DbError> {
    let now = Utc::now();
    let mut fired = Vec::new();
    let mut sleep = IDLE;
    for row in schedules(&scheduler.pool).await? {
        let Some(kind) = ScheduleKind::from_id(&row.id) else {
            continue;
        };
        if let Some(at) = row.requested_at {
            if let Some(f) = fire(
                &scheduler.pool,
                kind,
                Trigger::Request,
                at,
                None,
                &scheduler.instance,
            )
            .await?
            {
                fired.push((kind, f));
            }
        }
        let (Some(tick), Some(pattern)) = (row.next_run_time, row.cron_pattern.as_deref()) else {
            continue;
        };
        if row.state == "disabled" {
            continue;
        }
        if tick > now {
            sleep = sleep.min(until(tick, now));
            continue;
        }
        let next = next_tick(pattern, scheduler.settings.cron(kind), tick, now);
        if let Some(f) = fire(
            &scheduler.pool,
            kind,
            Trigger::Cron,
            tick,
            next,
            &scheduler.instance,
        )
        .await?
        {
            fired.push((kind, f));
        }
        if let Some(next) = next {
            sleep = sleep.min(until(next, Utc::now()));
        }
    }
    for (kind, f) in &fired {
        match &f.refused {
            Some(reason) => {
                tracing::info!(schedule = %kind, run = f.run_id, tick = %f.tick_at, %reason, "background run refused")
            }
            None => {
                tracing::info!(schedule = %kind, run = f.run_id, tick = %f.tick_at, "background run fired")
            }
        }
    }
    fired.retain(|(_, f)| f.refused.is_none());
    Ok((fired, sleep))
}

/// The first tick after `now` (and after `seen`) of the stored `pattern` (else this instance's).
pub fn next_tick(
    pattern: &str,
    own: Option<&CronSchedule>,
    seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let after = now.max(seen);
    match CronSchedule::parse(pattern) {
        Ok(stored) => stored.next_after(after),
        Err(_) => own.and_then(|c| c.next_after(after)),
    }
}

/// From `now` to `at` (a few milliseconds past it, so that the tick is due on waking).
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or_default() + Duration::from_millis(5)
}

/// Runs a fired run and records its end.
async fn run(scheduler: &Scheduler, kind: ScheduleKind, fired: Fired) {
    let pool = &scheduler.pool;
    let settings = &scheduler.settings;
    let now = Utc::now();
    let outcome: Result<serde_json::Value, String> = match kind {
        ScheduleKind::InitialSync => {
            let targets = initial_sync_targets(
                &scheduler.job_types,
                settings.initial_sync_from,
                settings.initial_sync_to,
                settings.default_lookback,
                now,
            );
            scan(pool, scheduler.catalogue.as_ref(), &targets)
                .await
                .map_err(|e| e.to_string())
        }
        ScheduleKind::Healing => {
            let targets = healing_targets(&scheduler.job_types, settings.healing_window, now);
            scan(pool, scheduler.catalogue.as_ref(), &targets)
                .await
                .map_err(|e| e.to_string())
        }
        ScheduleKind::Dump => {
            let key = format!(
                "jobs-{}-run{}.jsonl.gz",
                fired.tick_at.format("%Y%m%dT%H%M%SZ"),
                fired.run_id
            );
            write_dump(pool, &settings.dump_url, &key)
                .await
                .map(|r| serde_json::json!({"url": r.url, "jobs": r.jobs, "bytes": r.bytes}))
                .map_err(|e| e.to_string())
        }
    };
    let (end, message, result) = match outcome {
        Ok(result) => {
            tracing::info!(schedule = %kind, run = fired.run_id, %result, "background run succeeded");
            (RunEnd::Succeeded, None, Some(result))
        }
        Err(message) => {
            tracing::error!(schedule = %kind, run = fired.run_id, error = %message, "background run failed");
            (RunEnd::Failed, Some(message), None)
        }
    };
    for attempt in 1..=FINISH_ATTEMPTS {
        match finish(pool, fired.run_id, end, message.as_deref(), result.as_ref()).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(
                    run = fired.run_id,
                    "the run had been recorded as abandoned meanwhile"
                );
                return;
            }
            Err(e) if attempt < FINISH_ATTEMPTS => {
                tracing::warn!(run = fired.run_id, error = %e, "cannot record the end of a background run; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(run = fired.run_id, error = %e, "the end of a background run could not be recorded")
            }
        }
    }
}

#[async_trait::async_trait]
impl Service for Scheduler {
    fn name(&self) -> &'static str {
        "background jobs"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        scheduler_loop(Arc::new(*self), shutdown.cancelled_owned()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_missed_tick_fires_once_and_the_next_is_after_now() {
        // Ticks every 10 s; every instance was down from 00:00:00 to 00:01:03.
        let next = next_tick(
            "*/10 * * * * *",
            None,
            at("2024-03-01T00:00:00Z"),
            at("2024-03-01T00:01:03Z"),
        );
        assert_eq!(
            next,
            Some(at("2024-03-01T00:01:10Z")),
            "not 00:00:10, 00:00:20, ..."
        );
        // On time: the next tick follows the one fired.
        let next = next_tick(
            "*/10 * * * * *",
            None,
            at("2024-03-01T00:00:00Z"),
            at("2024-03-01T00:00:00.004Z"),
        );
        assert_eq!(next, Some(at("2024-03-01T00:00:10Z")));
        // A clock behind the tick still moves past it.
        let next = next_tick(
            "*/10 * * * * *",
            None,
            at("2024-03-01T00:00:00Z"),
            at("2024-03-01T00:00:59.990Z") - chrono::TimeDelta::seconds(60),
        );
        assert_eq!(next, Some(at("2024-03-01T00:00:10Z")));
    }

    #[test]
    fn an_unreadable_stored_pattern_falls_back_to_this_instances() {
        let own = CronSchedule::parse("0 0 * * * *").unwrap();
        let next = next_tick(
            "garbage",
            Some(&own),
            at("2024-03-01T00:00:00Z"),
            at("2024-03-01T00:10:00Z"),
        );
        assert_eq!(next, Some(at("2024-03-01T01:00:00Z")));
    }
}

//! The leader: every heartbeat interval, each instance tries to take or renew the `cluster_leader`
//! lease row (its lease lasts as long as the silence that makes an instance dead); the holder runs
//! the singleton duties:
//!
//! 1. declare dead the instances whose heartbeats stopped, once its own heartbeats have gone
//!    through for as long (after a database outage, nobody is judged on heartbeats it could not
//!    send);
//! 2. record the background runs of instances that are gone as abandoned;
//! 3. hand their jobs back ([`super::handback`]);
//! 4. now and then, keep the history's monthly partitions ready ahead and retire the months
//!    older than the retention ([`crate::db::retention::maintain_history`]).
//!
//! Every duty is a set of compare-and-sets, so that two instances that both believe they lead (one
//! whose lease just ran out) do no harm.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::handback::hand_back;
use super::Health;
use crate::attempt::failure::AttemptBackoff;
use crate::config::ClusterSettings;
use crate::db::retention::{maintain_history, prune_ended, HistoryMaintenance};
use crate::db::schedules::{abandon, Abandon};
use crate::db::services::Instance;
use crate::db::services::{declare_dead, resign, try_lead};
use crate::db::DbError;
use crate::executor::Executor;
use crate::service::{CancellationToken, Service};

/// Orphaned jobs handed back per round.
const HAND_BACK_BATCH: i64 = 500;
/// Rounds of hand-back per duty cycle at most (the next cycle goes on).
const HAND_BACK_ROUNDS: usize = 20;
/// Archived history rows deleted per statement.
const PRUNE_BATCH: i64 = 10_000;
/// Statements of pruning per cycle at most.
const PRUNE_ROUNDS: usize = 20;
/// Time between two rounds of history upkeep (partitions ahead, retention).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What the leader works with.
pub struct Leader {
    /// The database.
    pub pool: PgPool,
    /// This instance.
    pub instance: Instance,
    /// Heartbeats, leases, retention.
    pub settings: ClusterSettings,
    /// Whether this instance's own heartbeats go through.
    pub health: Arc<Health>,
    /// This instance's executor (asked about the attempts of instances that are gone).
    pub executor: Arc<dyn Executor>,
    /// Backoff between attempts, for the attempts it settles.
    pub backoff: AttemptBackoff,
}

/// Tries to lead every heartbeat interval and runs the duties while it leads, until `stop`
/// resolves; then resigns.
pub async fn leader_loop(leader: Leader, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(leader.settings.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        let ttl = leader.settings.dead_after();
        match try_lead(&leader.pool, leader.instance.service_id, ttl).await {
            Ok(true) => {
                if !leading {
                    tracing::info!(service_id = %leader.instance.service_id, "this instance leads");
                    leading = true;
                }
                if let Err(e) = duties(&leader, &mut last_prune).await {
                    tracing::warn!(error = %e, "leader duties failed; trying again at the next heartbeat");
                }
            }
            Ok(false) => {
                if leading {
                    tracing::info!("this instance no longer leads");
                    leading = false;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot take or renew the leader lease"),
        }
    }
    if leading {
        if let Err(e) = resign(&leader.pool, leader.instance.service_id).await {
            tracing::warn!(error = %e, "cannot resign the leader lease; it runs out by itself");
        }
    }
}

/// One cycle of the duties.
pub async fn duties(leader: &Leader, last_prune: &mut Option<Instant>) -> Result<(), DbError> {
    let pool = &leader.pool;
    let silence = leader.settings.dead_after();
    if leader.health.healthy_for() >= silence {
        for dead in declare_dead(pool, silence).await? {
            tracing::warn!(service_id = %dead.id, host = %dead.host, name = %dead.name, last_heartbeat = %dead.heartbeat_at,
                "instance declared dead: it missed its heartbeats");
        }
    }
    for run in abandon(pool, Abandon::OfGoneInstances).await? {
        tracing::warn!(run = run.id, schedule = %run.schedule_id, service_id = %run.service_id,
            "background run abandoned: its instance is gone");
    }
    for _ in 0..HAND_BACK_ROUNDS {
        let round = hand_back(
            pool,
            leader.executor.as_ref(),
            &leader.instance,
            leader.settings.lease,
            leader.backoff,
            HAND_BACK_BATCH,
        )
        .await?;
        if round.found > 0 {
            tracing::info!(
                found = round.found,
                released = round.released,
                adopted = round.adopted,
                settled = round.settled,
                deferred = round.deferred,
                "jobs of instances that are gone handed back"
            );
        }
        if round.found < HAND_BACK_BATCH as usize || round.deferred == round.found {
            break;
        }
    }
    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        *last_prune = Some(Instant::now());
        let retention = leader.settings.history_retention;
        let history = maintain_history(pool, retention, PRUNE_BATCH, PRUNE_ROUNDS).await?;
        let ended = match retention {
            Some(retention) => prune_ended(pool, retention).await?,
            None => 0,
        };
        let skipped = match leader.settings.skipped_products_retention_days {
            0 => 0,
            days => crate::db::ingestion::prune_skipped(pool, days).await?,
        };
        if history != HistoryMaintenance::default() || ended > 0 || skipped > 0 {
            tracing::info!(
                partitions_created = history.created,
                months_retired = history.retired.partitions,
                rows_kept = history.retired.kept,
                archived_pruned = history.pruned,
                records = ended,
                skipped_products = skipped,
                "history maintained"
            );
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Service for Leader {
    fn name(&self) -> &'static str {
        "leader"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        leader_loop(*self, shutdown.cancelled_owned()).await;
    }
}

//! The dispatch and tracking loops of `swath serve`: rounds of [`dispatch_round`] and
//! [`track_round`], woken by what can change their answer instead of a busy poll.
//!
//! - Dispatch wakes when a job becomes ready (`swath_ready` notifications), when the executor
//!   reports a change (a slot may be free), and every `interval` (retries whose backoff ended).
//! - Tracking wakes when the executor reports a change (Nomad: blocking queries) and every
//!   `interval` (status timeouts, executors that cannot watch).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::registry::JobTypeRegistry;

use super::dispatch::dispatch_round;
use super::track::track_round_in;
use crate::attempt::failure::{AttemptBackoff, StatusTimeouts};
use crate::db::claim::Claimant;
use crate::db::notifications::Notifications;
use crate::db::tracking::TrackScope;
use crate::executor::Executor;
use crate::service::{CancellationToken, Service};

/// What the dispatch loop dispatches, and how.
#[derive(Clone)]
pub struct DispatchLoop {
    /// Where attempts run.
    pub executor: Arc<dyn Executor>,
    /// The job types.
    pub registry: Arc<JobTypeRegistry>,
    /// The enabled job types.
    pub enabled: Vec<String>,
    /// The flavor table.
    pub flavors: Vec<WorkerFlavor>,
    /// This instance, as it claims jobs.
    pub claimant: Claimant,
    /// Backoff between attempts.
    pub backoff: AttemptBackoff,
    /// Longest sleep between rounds.
    pub interval: Duration,
}

/// Dispatches until `stop` resolves.
pub async fn dispatch_loop(pool: &PgPool, config: DispatchLoop, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut ready = Notifications::listen(pool, "swath_ready").await;
    loop {
        // Drain: rounds while they dispatch something.
        loop {
            match dispatch_round(
                pool,
                config.executor.as_ref(),
                &config.registry,
                &config.enabled,
                &config.flavors,
                &config.claimant,
                config.backoff,
            )
            .await
            {
                Ok(r) if r.queued + r.refused > 0 => {
                    tracing::info!(
                        executor = config.executor.name(),
                        claimed = r.claimed,
                        queued = r.queued,
                        deferred = r.deferred,
                        refused = r.refused,
                        "dispatch round"
                    );
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "dispatch round failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = ready.notified(config.interval) => {}
            _ = config.executor.changed() => {}
            _ = tokio::time::sleep(config.interval) => {}
            _ = &mut stop => return,
        }
    }
}

/// What the tracking loop follows.
#[derive(Clone)]
pub struct TrackLoop {
    /// Where attempts run.
    pub executor: Arc<dyn Executor>,
    /// Per-status timeouts.
    pub timeouts: StatusTimeouts,
    /// Backoff between attempts.
    pub backoff: AttemptBackoff,
    /// Which attempts this instance follows (its own; for an executor whose attempts outlive an
    /// instance, also those whose owner's lease ran out).
    pub scope: TrackScope,
    /// Jobs looked at per round.
    pub batch: i64,
    /// Longest sleep between rounds.
    pub interval: Duration,
}

/// Tracks attempts in flight until `stop` resolves.
pub async fn track_loop(pool: &PgPool, config: TrackLoop, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match track_round_in(
            pool,
            config.executor.as_ref(),
            &config.timeouts,
            config.backoff,
            config.scope,
            config.batch,
        )
        .await
        {
            Ok(r) if r.settled > 0 => {
                tracing::info!(
                    executor = config.executor.name(),
                    tracked = r.tracked,
                    settled = r.settled,
                    timed_out = r.timed_out,
                    "tracking round"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "tracking round failed"),
        }
        tokio::select! {
            _ = config.executor.changed() => {}
            _ = tokio::time::sleep(config.interval) => {}
            _ = &mut stop => return,
        }
    }
}

/// The dispatch loop as a service of a running instance.
pub struct DispatchService {
    /// The database.
    pub pool: PgPool,
    /// What it dispatches, and how.
    pub config: DispatchLoop,
}

#[async_trait::async_trait]
impl Service for DispatchService {
    fn name(&self) -> &'static str {
        "dispatch"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        dispatch_loop(&self.pool, self.config, shutdown.cancelled_owned()).await;
    }
}

/// The tracking loop as a service of a running instance.
pub struct TrackService {
    /// The database.
    pub pool: PgPool,
    /// What it follows.
    pub config: TrackLoop,
}

#[async_trait::async_trait]
impl Service for TrackService {
    fn name(&self) -> &'static str {
        "tracking"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        track_loop(&self.pool, self.config, shutdown.cancelled_owned()).await;
    }
}

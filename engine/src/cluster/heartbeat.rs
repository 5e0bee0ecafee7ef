//! The heartbeat loop of an instance: every interval, it records that the instance is alive and
//! renews the leases of the jobs it has dispatched. A failed heartbeat (database unreachable) is
//! logged and tried again at the next interval; an instance that was declared dead meanwhile is
//! alive again at its next heartbeat.

use std::future::Future;
use std::sync::Arc;

use sqlx::PgPool;

use super::Health;
use crate::config::ClusterSettings;
use crate::db::services::Instance;
use crate::db::services::{heartbeat, renew_leases, Heartbeat};
use crate::service::{CancellationToken, Service};

/// Heartbeats until `stop` resolves.
pub async fn heartbeat_loop(
    pool: &PgPool,
    instance: &Instance,
    settings: ClusterSettings,
    health: Arc<Health>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(settings.heartbeat_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => return,
        }
        match beat(pool, instance, settings).await {
            Ok(()) => health.beat_ok(),
            Err(e) => {
                health.beat_failed();
                tracing::warn!(error = %e, "heartbeat failed; trying again at the next one");
            }
        }
    }
}

/// One heartbeat: the instance's row, then its leases.
pub async fn beat(
    pool: &PgPool,
    instance: &Instance,
    settings: ClusterSettings,
) -> Result<(), crate::db::DbError> {
    match heartbeat(pool, instance.service_id).await? {
        Heartbeat::Alive => {}
        Heartbeat::Revived => tracing::warn!(
            service_id = %instance.service_id,
            "this instance had been declared dead (missed heartbeats); it is alive again, and what was handed back stays handed back"
        ),
        Heartbeat::Unknown => tracing::warn!(
            service_id = %instance.service_id,
            "this instance is not registered as running; heartbeat ignored"
        ),
    }
    let renewed = renew_leases(pool, instance.service_id, settings.lease).await?;
    if renewed > 0 {
        tracing::debug!(renewed, "leases renewed");
    }
    Ok(())
}

/// The heartbeat loop as a service of a running instance.
pub struct HeartbeatService {
    /// The database.
    pub pool: PgPool,
    /// This instance.
    pub instance: Instance,
    /// Heartbeats and leases.
    pub settings: ClusterSettings,
    /// Where it records whether its heartbeats go through.
    pub health: Arc<Health>,
}

#[async_trait::async_trait]
impl Service for HeartbeatService {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        heartbeat_loop(
            &self.pool,
            &self.instance,
            self.settings,
            self.health,
            shutdown.cancelled_owned(),
        )
        .await;
    }
}

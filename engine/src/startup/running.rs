//! A started orchestrator and its graceful stop: the services run in two groups, each with its
//! shutdown token and its join set; the claiming group stops first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinSet;

use super::Group;
use crate::db::leases::{owned_in_flight, release_all};
use crate::db::services::mark_stopped;
use crate::service::{CancellationToken, Service};

/// Services stopped together: their shutdown token, their tasks and the tasks' names.
struct Stage {
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl Stage {
    fn new() -> Self {
        Stage {
            shutdown: CancellationToken::new(),
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    fn spawn(&mut self, service: Box<dyn Service>) {
        let name = service.name();
        let handle = self.tasks.spawn(service.run(self.shutdown.clone()));
        self.names.insert(handle.id(), name);
    }

    /// Cancels the services' token, waits for them until `timeout`, then aborts those still
    /// running.
    async fn stop_within(mut self, timeout: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(None) => break,
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    let name = self.names.remove(&e.id()).unwrap_or("unknown");
                    tracing::error!(task = name, error = %e, "a background task ended abnormally");
                }
                Err(_) => {
                    for name in self.names.values() {
                        tracing::warn!(
                            task = name,
                            "a background task did not stop in time; cancelled"
                        );
                    }
                    self.tasks.shutdown().await;
                    break;
                }
            }
        }
    }
}

impl Drop for Stage {
    /// A stage dropped without being stopped (a [`Running`] dropped without [`Running::stop`]) asks
    /// its services to stop and lets each finish its step on its own, as a stop signal does; it
    /// never aborts a step halfway.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tasks.detach_all();
    }
}

/// A started orchestrator.
pub struct Running {
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    /// This instance's id, stamped on the jobs it claims.
    pub service_id: uuid::Uuid,
    pool: PgPool,
    /// The loops that take new work, stopped first.
    claiming: Stage,
    /// The others, stopped once the steps in flight have ended.
    finishing: Stage,
    /// Whether this instance's attempts run in its own process (the local executor).
    local_attempts: bool,
    shutdown_timeout: Duration,
}

impl Running {
    /// Starts `services`, each in its group, in the order given.
    pub(super) fn start(
        pool: PgPool,
        api_addr: SocketAddr,
        service_id: uuid::Uuid,
        services: Vec<(Group, Box<dyn Service>)>,
        local_attempts: bool,
        shutdown_timeout: Duration,
    ) -> Running {
        let (mut claiming, mut finishing) = (Stage::new(), Stage::new());
        for (group, service) in services {
            match group {
                Group::Claiming => claiming.spawn(service),
                Group::Finishing => finishing.spawn(service),
            }
        }
        Running {
            api_addr,
            service_id,
            pool,
            claiming,
            finishing,
            local_attempts,
            shutdown_timeout,
        }
    }

    /// Stops gracefully: stops claiming, lets the steps in flight end (and, with the local executor,
    /// the attempts it runs) up to the shutdown timeout, stops the other loops, releases the claims
    /// it holds and the leases of what it dispatched, and records the instance as stopped.
    pub async fn stop(self) {
        let timeout = self.shutdown_timeout;
        // The scheduler gives its runs the timeout, then records the others as abandoned.
        self.claiming
            .stop_within(timeout + Duration::from_secs(5))
            .await;
        if self.local_attempts {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                match owned_in_flight(&self.pool, self.service_id).await {
                    Ok(0) => break,
                    Ok(n) if tokio::time::Instant::now() >= deadline => {
                        tracing::warn!(
                            attempts = n,
                            "stopping with attempts still running; they count as failed attempts"
                        );
                        break;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot count the attempts still running");
                        break;
                    }
                }
            }
        }
        self.finishing.stop_within(timeout).await;
        match release_all(&self.pool, self.service_id).await {
            Ok(released) => tracing::info!(
                claims = released.claims,
                dispatched = released.dispatched,
                "claims and leases released"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release claims and leases; they run out by themselves")
            }
        }
        if let Err(e) = mark_stopped(&self.pool, self.service_id).await {
            tracing::warn!(error = %e, "cannot record the instance as stopped; the leader declares it dead later");
        }
        tracing::info!("orchestrator stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Ends when told to, and says so.
    struct Obedient(Arc<AtomicBool>);

    #[async_trait::async_trait]
    impl Service for Obedient {
        fn name(&self) -> &'static str {
            "obedient"
        }

        async fn run(self: Box<Self>, shutdown: CancellationToken) {
            shutdown.cancelled().await;
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Never ends by itself.
    struct Stuck;

    #[async_trait::async_trait]
    impl Service for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }

        async fn run(self: Box<Self>, _shutdown: CancellationToken) {
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test]
    async fn a_stage_ends_its_services_and_cancels_those_that_do_not_stop_in_time() {
        let ended = Arc::new(AtomicBool::new(false));
        let mut stage = Stage::new();
        stage.spawn(Box::new(Obedient(Arc::clone(&ended))));
        stage.spawn(Box::new(Stuck));
        let started = tokio::time::Instant::now();
        stage.stop_within(Duration::from_millis(100)).await;
        assert!(
            ended.load(Ordering::SeqCst),
            "the obedient service saw the token"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stuck one was aborted"
        );
    }

    #[tokio::test]
    async fn a_stage_dropped_without_a_stop_tells_its_services_to_stop_and_lets_them_end() {
        let ended = Arc::new(AtomicBool::new(false));
        let mut stage = Stage::new();
        stage.spawn(Box::new(Obedient(Arc::clone(&ended))));
        drop(stage);
        // Detached, the service sees its token and ends on its own; aborted, it never would.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ended.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the service was aborted, or never told to stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

//! The publication loop of `swath serve`: processed jobs get their outbox messages, unconfirmed
//! messages are sent; it wakes when the outbox changes (`swath_publications` notifications) and
//! every `interval` (jobs that became processed, messages to send again).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use swath_domain::publication::PublicationTarget;
use swath_domain::registry::JobTypeRegistry;

use super::start_publications;
use super::{publish_round, Publisher};
use crate::db::notifications::Notifications;
use crate::service::{CancellationToken, Service};

/// Jobs and messages handled per round.
const ROUND: i64 = 500;

/// What the publication loop needs.
#[derive(Clone)]
pub struct PublishLoop {
    /// The job types (they build the messages).
    pub registry: Arc<JobTypeRegistry>,
    /// Where products live and who publishes them.
    pub target: PublicationTarget,
    /// Where messages go.
    pub publisher: Arc<dyn Publisher>,
    /// Longest sleep between rounds.
    pub interval: Duration,
}

/// Publishes until `stop` resolves.
pub async fn publish_loop(pool: &PgPool, config: PublishLoop, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut outbox = Notifications::listen(pool, "swath_publications").await;
    loop {
        loop {
            let started =
                match start_publications(pool, &config.registry, &config.target, ROUND).await {
                    Ok(r) => r.started + r.done + r.failed,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start publications");
                        0
                    }
                };
            let sent = match publish_round(pool, config.publisher.as_ref(), ROUND).await {
                Ok(r) => {
                    if r.confirmed + r.failed > 0 {
                        tracing::info!(
                            publisher = config.publisher.name(),
                            confirmed = r.confirmed,
                            failed = r.failed,
                            done = r.done,
                            "publication round"
                        );
                    }
                    // Failures wait for the next wake-up instead of spinning.
                    r.confirmed
                }
                Err(e) => {
                    tracing::error!(error = %e, "publication round failed");
                    0
                }
            };
            if started + sent == 0 {
                break;
            }
        }
        tokio::select! {
            _ = outbox.notified(config.interval) => {}
            _ = tokio::time::sleep(config.interval) => {}
            _ = &mut stop => return,
        }
    }
}

/// Reads the catalogue's failure acknowledgements from `queue` every `interval` and turns each into
/// a bounded republish (`db::publications::republish`), acknowledging it once recorded; returns
/// when `stop` resolves.
pub async fn failures_loop(
    pool: &PgPool,
    publisher: Arc<super::rabbitmq::RabbitPublisher>,
    queue: String,
    cap: i32,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    use super::republish;
    use crate::db::publications::Republish;
    tokio::pin!(stop);
    loop {
        match publisher.next_failures(&queue, 100).await {
            Ok(failures) => {
                for failure in failures {
                    let reason = failure
                        .reason
                        .clone()
                        .unwrap_or_else(|| "no reason given".into());
                    match republish(pool, &failure.product_id, &reason, cap).await {
                        Ok(outcome) => {
                            match outcome {
                                Republish::Queued {
                                    job_id,
                                    job_type,
                                    n,
                                } => {
                                    tracing::warn!(job_id, %job_type, product = %failure.product_id, %reason, n, "catalogue refused a product: republishing")
                                }
                                Republish::GaveUp { job_id, job_type } => {
                                    tracing::error!(job_id, %job_type, product = %failure.product_id, %reason, "catalogue refused a product too often: the job failed")
                                }
                                Republish::Unknown => {
                                    tracing::warn!(product = %failure.product_id, "failure acknowledgement for an unknown or unpublished product: ignored")
                                }
                            }
                            if let Err(e) = failure.ack().await {
                                tracing::warn!(error = %e, "cannot acknowledge a failure report; it comes again");
                            }
                        }
                        // Not acknowledged: the broker delivers it again.
                        Err(e) => {
                            tracing::error!(error = %e, "cannot record a failure acknowledgement")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read failure acknowledgements"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stop => return,
        }
    }
}

/// The publication loop as a service of a running instance.
pub struct PublishService {
    /// The database.
    pub pool: PgPool,
    /// What it needs.
    pub config: PublishLoop,
}

#[async_trait::async_trait]
impl Service for PublishService {
    fn name(&self) -> &'static str {
        "publication"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        publish_loop(&self.pool, self.config, shutdown.cancelled_owned()).await;
    }
}

/// The loop of the catalogue's failure acknowledgements (RabbitMQ) as a service.
pub struct FailuresService {
    /// The database.
    pub pool: PgPool,
    /// The broker connection it reads from.
    pub publisher: Arc<super::rabbitmq::RabbitPublisher>,
    /// The queue of failure acknowledgements.
    pub queue: String,
    /// Republications of a product before its job fails.
    pub cap: i32,
    /// Time between two reads.
    pub interval: Duration,
}

#[async_trait::async_trait]
impl Service for FailuresService {
    fn name(&self) -> &'static str {
        "publication failures"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        let FailuresService {
            pool,
            publisher,
            queue,
            cap,
            interval,
        } = *self;
        failures_loop(
            &pool,
            publisher,
            queue,
            cap,
            interval,
            shutdown.cancelled_owned(),
        )
        .await;
    }
}

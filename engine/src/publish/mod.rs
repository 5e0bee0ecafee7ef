//! Publication: outbox messages sent by a [`Publisher`], each confirmed before its product counts
//! as published (see `db::publications`).
//!
//! Messages are serialized once: the body is the resto feature as a JSON object. The original
//! double-encoded it (a JSON string holding the JSON); [`Encoding::DoubleEncoded`] reproduces that
//! for consumers that still expect it.

pub mod file;
pub mod rabbitmq;
pub mod run;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::PgPool;

use swath_domain::publication::PublicationTarget;
use swath_domain::registry::JobTypeRegistry;

use crate::db::publications::{
    self, confirm, record_attempts, unconfirmed, Outgoing, Republish, StartReport,
};
use crate::db::DbError;
use crate::metrics::record_transitions;

/// A message could not be sent or was not confirmed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Somewhere to publish.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// A short name for logs (`file`, `rabbitmq`).
    fn name(&self) -> &'static str;

    /// Sends every message and waits for its confirmation; one answer per message, in order.
    async fn publish(&self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>>;
}

/// What one publication round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Messages confirmed.
    pub confirmed: usize,
    /// Messages not confirmed (sent again next round).
    pub failed: usize,
    /// Jobs that became `done`.
    pub done: usize,
}

/// Sends up to `limit` unconfirmed messages and records the confirmations.
pub async fn publish_round(
    pool: &PgPool,
    publisher: &dyn Publisher,
    limit: i64,
) -> Result<PublishReport, DbError> {
    let messages = unconfirmed(pool, limit).await?;
    if messages.is_empty() {
        return Ok(PublishReport::default());
    }
    let answers = publisher.publish(&messages).await;
    // The database keeps microseconds: the products' dates (in JSON) are given the same.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let mut confirmed = Vec::new();
    let mut failed = Vec::new();
    for (message, answer) in messages.iter().zip(answers) {
        match answer {
            Ok(()) => {
                confirmed.push(message.id);
                crate::metrics::observe_publication(
                    (now - message.created_at).to_std().unwrap_or_default(),
                );
            }
            Err(e) => {
                tracing::warn!(job_id = message.job_id, job_type = %message.job_type, product = %message.product_id, publisher = publisher.name(), error = %e, "publication not confirmed; it is sent again");
                failed.push((message.id, e.0));
            }
        }
    }
    record_attempts(pool, &confirmed, &failed).await?;
    let confirmation = confirm(pool, &confirmed, now).await?;
    record_transitions(confirmation.transitions);
    Ok(PublishReport {
        confirmed: confirmed.len(),
        failed: failed.len(),
        done: confirmation.done.len(),
    })
}

/// Moves up to `limit` processed jobs on towards publication (see
/// [`publications::start_publications`]) and counts their status changes.
pub async fn start_publications(
    pool: &PgPool,
    registry: &JobTypeRegistry,
    target: &PublicationTarget,
    limit: i64,
) -> Result<StartReport, DbError> {
    let report = publications::start_publications(pool, registry, target, limit).await?;
    record_transitions(report.transitions.iter().copied());
    Ok(report)
}

/// Handles the catalogue's refusal of product `message_id` (see [`publications::republish`]) and
/// counts the status changes it made.
pub async fn republish(
    pool: &PgPool,
    message_id: &str,
    reason: &str,
    cap: i32,
) -> Result<Republish, DbError> {
    let outcome = publications::republish(pool, message_id, reason, cap).await?;
    record_transitions(outcome.transitions());
    Ok(outcome)
}

//! Failure acknowledgements: the catalogue posts `{"productIdentifier" | "message_id": "...",
//! "reason": "..."}` to a queue when it could not ingest a product.
//!
//! They are pulled with `basic_get` and manual acknowledgements: [`RabbitPublisher::next_failures`]
//! takes up to `max` of them without acknowledging; the caller records the republication in the
//! database, then calls [`FailedProduct::ack`]. A failure not acknowledged (a crash, a lost
//! connection) is delivered again, so a republication may be counted twice; the count is bounded
//! by `publications.republish_count`. Messages without a product identifier are acknowledged and
//! dropped with a warning, so that they cannot block the queue.

use lapin::acker::Acker;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{drop_link, RabbitPublisher};
use crate::publish::PublishError;

/// A product the catalogue failed to ingest.
#[derive(Debug, Clone)]
pub struct FailedProduct {
    /// The message id of the failed publication (the product's title).
    pub product_id: String,
    /// Why, as the catalogue tells it.
    pub reason: Option<String>,
    acker: Acker,
}

impl FailedProduct {
    /// Removes the acknowledgement from the queue, once it is recorded.
    pub async fn ack(&self) -> Result<(), PublishError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| PublishError(format!("cannot acknowledge {}: {e}", self.product_id)))
    }
}

/// The product named by a failure acknowledgement body, and the reason.
fn parse(body: &[u8]) -> Option<(String, Option<String>)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    // The original double encoding: a JSON string holding the JSON.
    let value = match value {
        serde_json::Value::String(s) => serde_json::from_str(&s).ok()?,
        v => v,
    };
    let id = value
        .get("productIdentifier")
        .or_else(|| value.get("message_id"))?
        .as_str()?
        .to_owned();
    let reason = value.get("reason").and_then(|r| match r {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    });
    Some((id, reason))
}

impl RabbitPublisher {
    /// Up to `max` failure acknowledgements from `queue` (declared durable if missing), not yet
    /// acknowledged; an empty list when the queue is empty.
    pub async fn next_failures(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<FailedProduct>, PublishError> {
        let mut state = self.state.lock().await;
        let link = self.link(&mut state).await?;
        let read = async {
            if link.failures.as_ref().is_none_or(|c| !c.status().connected()) {
                let channel = link.connection.create_channel().await?;
                channel
                    .queue_declare(
                        queue,
                        QueueDeclareOptions {
                            durable: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                link.failures = Some(channel);
            }
            let channel = link.failures.as_ref().expect("opened above");
            let mut failed = Vec::new();
            while failed.len() < max {
                let Some(message) = channel
                    .basic_get(queue, BasicGetOptions { no_ack: false })
                    .await?
                else {
                    break;
                };
                let delivery = message.delivery;
                match parse(&delivery.data) {
                    Some((product_id, reason)) => failed.push(FailedProduct {
                        product_id,
                        reason,
                        acker: delivery.acker,
                    }),
                    None => {
                        tracing::warn!(queue, body = %String::from_utf8_lossy(&delivery.data), "failure acknowledgement without a product identifier; dropped");
                        delivery.acker.ack(BasicAckOptions::default()).await?;
                    }
                }
            }
            Ok::<_, lapin::Error>(failed)
        }
        .await;
        if read.is_err() && !state.link.as_ref().is_some_and(|l| l.usable()) {
            drop_link(state.link.take());
        }
        read.map_err(|e| PublishError(format!("cannot read failures from {queue}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn either_identifier_and_the_double_encoding_are_read() {
        assert_eq!(
            parse(br#"{"productIdentifier": "P1", "reason": "bad wkt"}"#),
            Some(("P1".into(), Some("bad wkt".into())))
        );
        assert_eq!(parse(br#"{"message_id": "P2"}"#), Some(("P2".into(), None)));
        assert_eq!(
            parse(br#""{\"message_id\": \"P3\", \"reason\": 4}""#),
            Some(("P3".into(), Some("4".into())))
        );
        assert_eq!(parse(br#"{"reason": "x"}"#), None);
        assert_eq!(parse(b"not json"), None);
    }
}

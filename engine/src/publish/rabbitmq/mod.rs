//! The RabbitMQ publisher: one long-lived connection and channel with publisher confirms, opened
//! lazily and opened again after a failure with exponential backoff.
//!
//! Each [`Publisher::publish`] call sends the whole batch, then waits for the broker's confirms
//! of all of it (pipelined, not one round trip per message). A message counts as published only
//! once the broker acknowledged it; a nack, a timeout or a lost connection answer `Err`, and the
//! outbox sends the message again later (at least once: consumers deduplicate by `message_id`,
//! `<product identity>#<revision>`, one per announcement; the AMQP `type` is the announcement's
//! operation, `create` or `update`).
//!
//! Failure acknowledgements from the catalogue are read with [`RabbitPublisher::next_failures`]
//! (see [`failures`]).

pub mod failures;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{PublishError, Publisher};
use crate::backoff::jittered;
use crate::config::Encoding;
use crate::db::publications::Outgoing;

pub use failures::FailedProduct;

/// Where and how to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct RabbitConfig {
    /// The broker, with the vhost as the path (`%2f` for `/`). Default
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: String,
    /// The exchange, declared durable. Default `resto`, as the original consumer expects.
    pub exchange: String,
    /// The exchange kind: `direct`, `topic`, `fanout` or `headers`. Default `direct`.
    pub exchange_kind: String,
    /// The routing key of every message. Default `resto`.
    pub routing_key: String,
    /// How bodies are written. Default [`Encoding::Json`].
    pub encoding: Encoding,
    /// How long to wait for the connection to open and for a batch's confirms. Default 30 s.
    pub confirm_timeout: Duration,
    /// The first delay before connecting again after a failed connection. Default 1 s.
    pub reconnect_min: Duration,
    /// The longest delay between connection attempts. Default 60 s.
    pub reconnect_max: Duration,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        RabbitConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "resto".into(),
            exchange_kind: "direct".into(),
            routing_key: "resto".into(),
            encoding: Encoding::Json,
            confirm_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

impl RabbitConfig {
    fn kind(&self) -> ExchangeKind {
        match self.exchange_kind.as_str() {
            "direct" => ExchangeKind::Direct,
            "topic" => ExchangeKind::Topic,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.into()),
        }
    }
}

/// An open connection with its publishing channel (confirms on, exchange declared).
struct Link {
    connection: Connection,
    channel: Channel,
    /// A separate channel for reading failure acknowledgements, opened on first use, so that a
    /// channel error there (a missing queue) does not close the publishing channel.
    failures: Option<Channel>,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// The connection state, behind one lock: publications go one batch at a time.
#[derive(Default)]
struct State {
    link: Option<Link>,
    /// Failed connection attempts in a row.
    failures: u32,
    /// No connection attempt before this.
    next_attempt: Option<Instant>,
}

/// Publishes to a RabbitMQ exchange with publisher confirms.
pub struct RabbitPublisher {
    config: RabbitConfig,
    state: Mutex<State>,
    connections: AtomicU64,
}

impl RabbitPublisher {
    /// A publisher for `config`; nothing is opened before the first publication.
    pub fn new(config: RabbitConfig) -> Self {
        RabbitPublisher {
            config,
            state: Mutex::new(State::default()),
            connections: AtomicU64::new(0),
        }
    }

    /// How many connections were opened so far (more than one after reconnections).
    pub fn connections_opened(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The open link, opening one if allowed; `Err` at once while the backoff runs.
    async fn link<'a>(&self, state: &'a mut State) -> Result<&'a mut Link, PublishError> {
        if state.link.as_ref().is_some_and(|l| !l.usable()) {
            drop_link(state.link.take());
        }
        if state.link.is_none() {
            if let Some(at) = state.next_attempt {
                let now = Instant::now();
                if now < at {
                    return Err(PublishError(format!(
                        "RabbitMQ unreachable; next connection attempt in {:?}",
                        at - now
                    )));
                }
            }
            match tokio::time::timeout(self.config.confirm_timeout, self.connect()).await {
                Ok(Ok(link)) => {
                    state.failures = 0;
                    state.next_attempt = None;
                    self.connections.fetch_add(1, Ordering::Relaxed);
                    state.link = Some(link);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no connection within {:?}", self.config.confirm_timeout),
                    };
                    state.failures = state.failures.saturating_add(1);
                    let delay = jittered(
                        self.config.reconnect_min,
                        self.config.reconnect_max,
                        state.failures,
                    );
                    state.next_attempt = Some(Instant::now() + delay);
                    tracing::warn!(%error, retry_in = ?delay, "cannot connect to RabbitMQ");
                    return Err(PublishError(format!("cannot connect to RabbitMQ: {error}")));
                }
            }
        }
        Ok(state.link.as_mut().expect("link opened above"))
    }

    async fn connect(&self) -> Result<Link, lapin::Error> {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name("swath".into());
        let connection = Connection::connect(&self.config.url, properties).await?;
        let opened = async {
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            channel
                .exchange_declare(
                    &self.config.exchange,
                    self.config.kind(),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok(channel)
        }
        .await;
        match opened {
            Ok(channel) => Ok(Link {
                connection,
                channel,
                failures: None,
            }),
            Err(e) => {
                let _ = connection.close(0, "set-up failed").await;
                Err(e)
            }
        }
    }

    fn properties(&self, message: &Outgoing) -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.as_str().into())
            // `create` or `update`: see the message's `announcement`.
            .with_type(operation_of(&message.message).into())
    }
}

/// The announcement's operation written in `message` by the outbox (`create` when absent).
fn operation_of(message: &serde_json::Value) -> &str {
    message
        .pointer("/announcement/operation")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("create")
}

/// Forgets a link, closing its connection in the background if it is still open.
fn drop_link(link: Option<Link>) {
    if let Some(link) = link {
        if link.connection.status().connected() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    link.connection.close(0, "channel lost"),
                )
                .await;
            });
        }
    }
}

#[async_trait]
impl Publisher for RabbitPublisher {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn publish(&self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let mut state = self.state.lock().await;
        let link = match self.link(&mut state).await {
            Ok(link) => link,
            Err(e) => return messages.iter().map(|_| Err(e.clone())).collect(),
        };
        let deadline = Instant::now() + self.config.confirm_timeout;
        let bodies: Vec<Vec<u8>> = messages
            .iter()
            .map(|m| self.config.encoding.body(&m.message))
            .collect();
        // Every message is handed to the connection before any confirm is awaited.
        let sent = join_all(messages.iter().zip(&bodies).map(|(m, body)| {
            link.channel.basic_publish(
                &self.config.exchange,
                &self.config.routing_key,
                BasicPublishOptions::default(),
                body,
                self.properties(m),
            )
        }))
        .await;
        // Each answer comes with whether the channel must be dropped (anything but a nack).
        let answers = join_all(sent.into_iter().map(|sent| async move {
            let confirm = match sent {
                Ok(confirm) => confirm,
                Err(e) => return (Err(PublishError(format!("not sent: {e}"))), true),
            };
            match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(Confirmation::Ack(_))) => (Ok(()), false),
                Ok(Ok(Confirmation::Nack(_))) => {
                    (Err(PublishError("refused by the broker".into())), false)
                }
                Ok(Ok(Confirmation::NotRequested)) => {
                    (Err(PublishError("publisher confirms are off".into())), true)
                }
                Ok(Err(e)) => (Err(PublishError(format!("not confirmed: {e}"))), true),
                Err(_) => (Err(PublishError("no confirmation in time".into())), true),
            }
        }))
        .await;
        let broken = answers.iter().any(|(_, broken)| *broken);
        if broken || !link.usable() {
            tracing::warn!("RabbitMQ channel lost; it is opened again on the next publication");
            drop_link(state.link.take());
        }
        answers.into_iter().map(|(answer, _)| answer).collect()
    }
}

//! The RabbitMQ publisher against the local broker (127.0.0.1:5672, guest/guest): messages with
//! their properties and the resto feature as body, every product delivered at least once through
//! connection cuts from the broker side, refused connections answered at once without spinning,
//! and failure acknowledgements read with manual acks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use sqlx::PgPool;
use swath_domain::publication::PublicationTarget;
use swath_domain::JobStatus;
use swath_engine::config::Encoding;
use swath_engine::config::Settings;
use swath_engine::db::jobs::get_job;
use swath_engine::db::publications::{start_publications, unconfirmed, Outgoing};
use swath_engine::publish::rabbitmq::{RabbitConfig, RabbitPublisher};
use swath_engine::publish::{publish_round, PublishError, Publisher};
use tokio::time::Instant;

use support::processed;

/// A `test_job` named `name` taken to `processed` with `products` products `<name>P<i>`.
async fn processed_as(pool: &PgPool, name: &str, products: usize) -> swath_domain::Job {
    let titles: Vec<String> = (0..products)
        .map(|i| format!("TEST_20210413T101021_S2B_{name}P{i}_V100_1"))
        .collect();
    processed(pool, name, &titles).await
}

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672";

fn unique(prefix: &str) -> String {
    format!("swath-test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn connect(vhost: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("swath-test-consumer".into());
    Connection::connect(&format!("{BROKER}/{vhost}"), properties)
        .await
        .unwrap()
}

/// Declares the publisher's exchange and a durable queue bound to it with `routing_key`.
async fn bound_queue(channel: &Channel, exchange: &str, queue: &str, routing_key: &str) {
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue,
            exchange,
            routing_key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Every message in `queue` until `expected` distinct message ids were seen and the queue is
/// empty, or the deadline passes.
async fn drain(channel: &Channel, queue: &str, expected: usize) -> Vec<lapin::message::Delivery> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut deliveries = Vec::new();
    let mut ids = HashSet::new();
    while Instant::now() < deadline {
        match channel
            .basic_get(queue, BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            Some(message) => {
                let delivery = message.delivery;
                if let Some(id) = delivery.properties.message_id() {
                    ids.insert(id.to_string());
                }
                deliveries.push(delivery);
            }
            None if ids.len() >= expected => break,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    deliveries
}

fn config(vhost: &str, exchange: &str) -> RabbitConfig {
    RabbitConfig {
        url: format!("{BROKER}/{vhost}"),
        exchange: exchange.into(),
        confirm_timeout: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
        ..RabbitConfig::default()
    }
}

async fn statuses(pool: &PgPool) -> Vec<(i64, i16)> {
    sqlx::query_as("SELECT id, status FROM jobs ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../sql")]
async fn messages_carry_the_resto_feature_and_their_properties(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::RabbitMq) {
        return;
    }
    let registry = Settings::default().registry().unwrap();
    let (exchange, queue) = (unique("exchange"), unique("queue"));
    let consumer = connect("%2f").await;
    let channel = consumer.create_channel().await.unwrap();
    bound_queue(&channel, &exchange, &queue, "resto").await;

    let job = processed_as(&pool, "one", 2).await;
    let target = PublicationTarget::default();
    start_publications(&pool, &registry, &target, 10)
        .await
        .unwrap();
    let publisher = RabbitPublisher::new(config("%2f", &exchange));
    let report = publish_round(&pool, &publisher, 10).await.unwrap();
    assert_eq!((report.confirmed, report.failed, report.done), (2, 0, 1));
    assert_eq!(
        get_job(&pool, job.id).await.unwrap().status,
        JobStatus::Done
    );

    let deliveries = drain(&channel, &queue, 2).await;
    assert_eq!(deliveries.len(), 2, "exactly the messages sent");
    for (i, delivery) in deliveries.iter().enumerate() {
        let title = format!("TEST_20210413T101021_S2B_oneP{i}_V100_1");
        let p = &delivery.properties;
        // One id per announcement: the product's identity (its title without the quality flag)
        // and the revision; the AMQP type says it is the first.
        let id = format!("TEST_20210413T101021_S2B_oneP{i}_V100#1");
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), id);
        assert_eq!(p.kind().as_ref().unwrap().as_str(), "create");
        assert_eq!(*p.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(delivery.routing_key.as_str(), "resto");
        let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        assert!(body.is_object(), "serialized once");
        assert_eq!(body["collection_name"], "HR-S&I");
        assert_eq!(
            body["resto"]["geometry"]["wkt"],
            "POLYGON((0 0,1 0,1 1,0 0))"
        );
        let properties = &body["resto"]["properties"];
        assert_eq!(
            properties["productIdentifier"]
                .as_str()
                .map(|s| s.ends_with(&title)),
            Some(true),
            "{properties}"
        );
        assert_eq!(properties["title"], title.as_str());
        assert_eq!(properties["resourceSize"], 1024 + i);
        assert_eq!(body["announcement"]["message_id"], id.as_str());
        assert_eq!(body["announcement"]["operation"], "create");
    }
    assert_eq!(publisher.connections_opened(), 1);

    // The double encoding switch: the body is a JSON string holding the feature.
    processed_as(&pool, "two", 1).await;
    start_publications(&pool, &registry, &target, 10)
        .await
        .unwrap();
    let double = RabbitPublisher::new(RabbitConfig {
        encoding: Encoding::DoubleEncoded,
        ..config("%2f", &exchange)
    });
    assert_eq!(
        publish_round(&pool, &double, 10).await.unwrap().confirmed,
        1
    );
    let deliveries = drain(&channel, &queue, 1).await;
    let body: serde_json::Value = serde_json::from_slice(&deliveries[0].data).unwrap();
    let inner: serde_json::Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    assert_eq!(inner["collection_name"], "HR-S&I");

    channel
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
}

/// A vhost of the test's own, so that cutting its connections touches nothing else.
struct Vhost(String);

impl Vhost {
    fn new() -> Self {
        let name = unique("vhost");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Vhost(name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.0]);
    }
}

/// Cuts the vhost's connections from the broker side during rounds 5 and 15: the batch is sent
/// again and again while `rabbitmqctl` runs, so that the cut lands in the middle of a publication
/// (duplicates are fine: delivery is at least once); the answers of the last sending count.
struct CutDuring {
    inner: RabbitPublisher,
    vhost: String,
    rounds: AtomicUsize,
    cuts: AtomicUsize,
    errors: AtomicUsize,
}

#[async_trait::async_trait]
impl Publisher for CutDuring {
    fn name(&self) -> &'static str {
        "cut-during"
    }

    async fn publish(&self, messages: &[Outgoing]) -> Vec<Result<(), PublishError>> {
        let round = self.rounds.fetch_add(1, Ordering::Relaxed);
        if round != 5 && round != 15 {
            return self.inner.publish(messages).await;
        }
        let vhost = self.vhost.clone();
        let cut = tokio::task::spawn_blocking(move || {
            rabbitmqctl(&["close_all_connections", "-p", &vhost, "test"])
        });
        loop {
            let answers = self.inner.publish(messages).await;
            let errors = answers.iter().filter(|a| a.is_err()).count();
            self.errors.fetch_add(errors, Ordering::Relaxed);
            if cut.is_finished() {
                self.cuts.fetch_add(1, Ordering::Relaxed);
                return answers;
            }
        }
    }
}

#[sqlx::test(migrations = "../sql")]
async fn every_product_is_delivered_through_connection_cuts(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::RabbitMq) {
        return;
    }
    const JOBS: usize = 250;
    const PER_JOB: usize = 4;
    let registry = Settings::default().registry().unwrap();
    let vhost = Vhost::new();
    let (exchange, queue) = (unique("exchange"), unique("queue"));
    {
        let setup = connect(&vhost.0).await;
        let channel = setup.create_channel().await.unwrap();
        bound_queue(&channel, &exchange, &queue, "resto").await;
        setup.close(0, "set up").await.unwrap();
    }
    for j in 0..JOBS {
        processed_as(&pool, &format!("j{j}"), PER_JOB).await;
    }
    let report = start_publications(&pool, &registry, &PublicationTarget::default(), 1000)
        .await
        .unwrap();
    assert_eq!(report.started, JOBS);
    let total = JOBS * PER_JOB;
    assert_eq!(unconfirmed(&pool, 10_000).await.unwrap().len(), total);

    let publisher = CutDuring {
        inner: RabbitPublisher::new(config(&vhost.0, &exchange)),
        vhost: vhost.0.clone(),
        rounds: AtomicUsize::new(0),
        cuts: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
    };
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut failed = 0;
    loop {
        let report = publish_round(&pool, &publisher, 20).await.unwrap();
        failed += report.failed;
        // No job is published before every one of its messages is confirmed.
        let early: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs j WHERE j.status IN ($1, $2)
             AND EXISTS (SELECT 1 FROM publications p WHERE p.job_id = j.id AND p.confirmed_at IS NULL)",
        )
        .bind(JobStatus::Published as i16)
        .bind(JobStatus::Done as i16)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(early, 0, "a job marked published with unconfirmed messages");
        if unconfirmed(&pool, 1).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "messages still unconfirmed");
    }
    let (rounds, cuts) = (publisher.rounds.into_inner(), publisher.cuts.into_inner());
    let errors = publisher.errors.into_inner();
    let connections = publisher.inner.connections_opened();
    eprintln!(
        "{rounds} rounds, {cuts} cut(s), {errors} answer(s) lost to cuts, {failed} unconfirmed \
         in the outbox, {connections} connection(s)"
    );
    assert_eq!(cuts, 2, "the connection was cut twice during the stream");
    assert!(connections >= 3, "the publisher reconnected after each cut");
    assert!(errors > 0, "a cut landed in the middle of a publication");
    assert!(statuses(&pool)
        .await
        .iter()
        .all(|(_, s)| *s == JobStatus::Done as i16));

    let consumer = connect(&vhost.0).await;
    let channel = consumer.create_channel().await.unwrap();
    let deliveries = drain(&channel, &queue, total).await;
    let ids: HashSet<String> = deliveries
        .iter()
        .filter_map(|d| d.properties.message_id().as_ref().map(|id| id.to_string()))
        .collect();
    let expected: HashSet<String> = sqlx::query_scalar("SELECT message_id FROM publications")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(expected.len(), total);
    assert!(
        expected.is_subset(&ids),
        "{} product(s) never delivered",
        expected.difference(&ids).count()
    );
    eprintln!("{} deliveries for {total} products", deliveries.len());
    consumer.close(0, "done").await.unwrap();
}

#[sqlx::test(migrations = "../sql")]
async fn a_refused_connection_fails_the_batch_at_once_and_backs_off(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::RabbitMq) {
        return;
    }
    let registry = Settings::default().registry().unwrap();
    processed_as(&pool, "refused", 3).await;
    start_publications(&pool, &registry, &PublicationTarget::default(), 10)
        .await
        .unwrap();
    let publisher = RabbitPublisher::new(RabbitConfig {
        url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
        reconnect_min: Duration::from_secs(30),
        ..RabbitConfig::default()
    });
    let messages = unconfirmed(&pool, 10).await.unwrap();

    let started = Instant::now();
    let answers = publisher.publish(&messages).await;
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let started = Instant::now();
    let answers = publisher.publish(&messages).await;
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "no new attempt"
    );
    assert!(answers.iter().all(|a| a
        .as_ref()
        .unwrap_err()
        .0
        .contains("next connection attempt")));
    assert_eq!(publisher.connections_opened(), 0);

    // Through the outbox: nothing confirmed, nothing published.
    let report = publish_round(&pool, &publisher, 10).await.unwrap();
    assert_eq!((report.confirmed, report.failed), (0, 3));
    assert!(statuses(&pool)
        .await
        .iter()
        .all(|(_, s)| *s == JobStatus::StartPublication as i16));

    let bad = RabbitPublisher::new(RabbitConfig {
        url: "not a url".into(),
        ..RabbitConfig::default()
    });
    assert!(bad.publish(&messages).await.iter().all(|a| a.is_err()));
}

#[tokio::test]
async fn failure_acknowledgements_are_read_then_acknowledged() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::RabbitMq) {
        return;
    }
    let (queue, exchange) = (unique("failures"), unique("exchange"));
    let publisher = RabbitPublisher::new(config("%2f", &exchange));
    assert!(publisher
        .next_failures(&queue, 10)
        .await
        .unwrap()
        .is_empty());

    let connection = connect("%2f").await;
    let channel = connection.create_channel().await.unwrap();
    for body in [
        r#"{"productIdentifier": "P1", "reason": "bad geometry"}"#,
        r#"{"reason": "no identifier"}"#,
        r#"{"message_id": "P2"}"#,
    ] {
        channel
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut failed = Vec::new();
    while failed.len() < 2 && Instant::now() < deadline {
        failed.extend(publisher.next_failures(&queue, 10).await.unwrap());
    }
    let ids: Vec<_> = failed.iter().map(|f| f.product_id.as_str()).collect();
    assert_eq!(ids, ["P1", "P2"]);
    assert_eq!(failed[0].reason.as_deref(), Some("bad geometry"));
    for f in &failed {
        f.ack().await.unwrap();
    }
    let remaining = channel
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(remaining, 0, "acknowledged and dropped messages are gone");
    channel
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

/// Polls (bounded) until job `id` is in `status`.
async fn wait_status(pool: &PgPool, id: i64, status: JobStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_job(pool, id).await.unwrap().status != status {
        assert!(Instant::now() < deadline, "job {id} never reached {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_failure_acknowledgement_republishes_through_the_broker_and_the_cap_holds(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::RabbitMq) {
        return;
    }
    use std::sync::Arc;
    let registry = Settings::default().registry().unwrap();
    let (exchange, queue, failures) = (unique("exchange"), unique("queue"), unique("failures"));
    let consumer = connect("%2f").await;
    let channel = consumer.create_channel().await.unwrap();
    bound_queue(&channel, &exchange, &queue, "resto").await;
    let publisher = Arc::new(RabbitPublisher::new(config("%2f", &exchange)));
    let job = processed_as(&pool, "refused-by-catalogue", 1).await;
    start_publications(&pool, &registry, &PublicationTarget::default(), 10)
        .await
        .unwrap();
    publish_round(&pool, publisher.as_ref(), 10).await.unwrap();
    assert_eq!(
        get_job(&pool, job.id).await.unwrap().status,
        JobStatus::Done
    );
    let first = drain(&channel, &queue, 1).await;
    let title = first[0]
        .properties
        .message_id()
        .as_ref()
        .unwrap()
        .to_string();

    // The catalogue side's queue (declared as the failure reader declares it).
    channel
        .queue_declare(
            &failures,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let (pool, publisher, failures) = (pool.clone(), Arc::clone(&publisher), failures.clone());
        tokio::spawn(async move {
            swath_engine::publish::run::failures_loop(
                &pool,
                publisher,
                failures,
                1,
                Duration::from_millis(50),
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await;
        })
    };
    let refuse = || async {
        let body = serde_json::json!({"productIdentifier": title, "reason": "footprint rejected"});
        channel
            .basic_publish(
                "",
                &failures,
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    };
    refuse().await;
    wait_status(&pool, job.id, JobStatus::StartPublication).await;
    publish_round(&pool, publisher.as_ref(), 10).await.unwrap();
    assert_eq!(
        get_job(&pool, job.id).await.unwrap().status,
        JobStatus::Done
    );
    let again = drain(&channel, &queue, 1).await;
    assert_eq!(
        again[0].properties.message_id().as_ref().unwrap().as_str(),
        title,
        "sent again"
    );
    refuse().await;
    wait_status(&pool, job.id, JobStatus::InternalError).await;
    assert!(get_job(&pool, job.id)
        .await
        .unwrap()
        .status_message
        .unwrap()
        .contains("after 1 republications"));
    let _ = stop_tx.send(());
    watcher.await.unwrap();
}

//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! Two kinds:
//! - what this instance did, counted in process as it happens ([`record_transition`],
//!   [`observe_dispatch`], [`observe_publication`]): status transitions, attempts, automatic
//!   retries, dispatch and publication latencies. Each instance counts its own: sum them across
//!   instances;
//! - the state of the whole system, read from the database at each scrape ([`render`]): jobs by
//!   type and status, queue depth per flavor, catalogue lag, instances and their heartbeats, manual
//!   retries. Every instance reports
//!   the same values: take any one (or `max`) across instances. These come from the summaries
//!   the triggers keep (`db::summaries`), so a scrape costs the same whatever the size of `jobs`.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::JobStatus;

use crate::db::gauges;
use crate::db::jobs::count_by_type_and_status;
use crate::db::status::Transition;
use crate::db::DbError;

/// Label pairs of one series.
type Labels = Vec<(String, String)>;
/// A family of histograms of durations in seconds.
type Latencies = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets from 10 ms to about 11 hours (the timeliness target is 3 hours).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.5, 16))
}

/// What this instance counted since it started.
struct Counted {
    transitions: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    dispatch_latency: Latencies,
    publication_latency: Latencies,
}

static COUNTED: LazyLock<Counted> = LazyLock::new(|| Counted {
    transitions: Family::default(),
    attempts: Family::default(),
    retries: Family::default(),
    dispatch_latency: Family::new_with_constructor(latency_histogram),
    publication_latency: Family::new_with_constructor(latency_histogram),
});

/// Counts a status change this instance applied and committed (never one that may still be rolled
/// back). A change that starts a new attempt counts as an automatic retry.
pub fn record_transition(transition: Transition) {
    COUNTED
        .transitions
        .get_or_create(&vec![
            ("from".into(), transition.from.name().into()),
            ("to".into(), transition.to.name().into()),
        ])
        .inc();
    if transition.new_attempt {
        COUNTED
            .retries
            .get_or_create(&vec![("kind".into(), "automatic".into())])
            .inc();
    }
}

/// Counts every transition of `transitions` (see [`record_transition`]).
pub fn record_transitions(transitions: impl IntoIterator<Item = Transition>) {
    transitions.into_iter().for_each(record_transition);
}

/// Records a dispatched attempt of `job_type` that waited `waited` in `ready`.
pub fn observe_dispatch(job_type: &str, waited: Duration) {
    let labels = vec![("job_type".to_string(), job_type.to_string())];
    COUNTED.attempts.get_or_create(&labels).inc();
    COUNTED
        .dispatch_latency
        .get_or_create(&labels)
        .observe(waited.as_secs_f64());
}

/// Records a publication confirmed `took` after its message was written to the outbox.
pub fn observe_publication(took: Duration) {
    COUNTED
        .publication_latency
        .get_or_create(&Vec::new())
        .observe(took.as_secs_f64());
}

/// Errors while reading the state for a scrape.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The database did not answer.
    #[error("reading the metrics from the database: {0}")]
    Database(#[from] DbError),
    /// The text could not be written.
    #[error("encoding the metrics: {0}")]
    Encoding(#[from] std::fmt::Error),
}

/// The metrics as OpenMetrics text: this instance's counters and the system's state now.
/// `timeliness_target_hours` is the configured target from input to output publication
/// (`swath_timeliness_target_seconds`, and what makes a job late in `swath_timeliness_late_jobs`).
pub async fn render(
    pool: &PgPool,
    registry: &JobTypeRegistry,
    timeliness_target_hours: f64,
) -> Result<String, MetricsError> {
    let mut metrics = Registry::with_prefix("swath");
    metrics.register(
        "status_transitions",
        "Status changes applied by this instance",
        COUNTED.transitions.clone(),
    );
    metrics.register(
        "attempts",
        "Attempts dispatched by this instance",
        COUNTED.attempts.clone(),
    );
    metrics.register(
        "retries",
        "New attempts started by this instance after a failed one (automatic retries)",
        COUNTED.retries.clone(),
    );
    metrics.register(
        "dispatch_latency_seconds",
        "Time from ready to dispatched, for the attempts this instance dispatched",
        COUNTED.dispatch_latency.clone(),
    );
    metrics.register(
        "publication_latency_seconds",
        "Time from the outbox to the publisher's confirm, for the messages this instance published",
        COUNTED.publication_latency.clone(),
    );
    register_state(&mut metrics, pool, registry).await?;
    register_alerting_state(&mut metrics, pool, registry, timeliness_target_hours).await?;
    let mut text = String::new();
    encode(&mut text, &metrics)?;
    Ok(text)
}

/// The system's state, read now: jobs by type and status, queue depth per flavor, catalogue lag,
/// instances and their heartbeats, and manual retries.
async fn register_state(
    metrics: &mut Registry,
    pool: &PgPool,
    registry: &JobTypeRegistry,
) -> Result<(), DbError> {
    let jobs = Family::<Labels, Gauge>::default();
    let queue = Family::<Labels, Gauge>::default();
    for (job_type, status, n) in count_by_type_and_status(pool).await? {
        jobs.get_or_create(&vec![
            ("job_type".into(), job_type.clone()),
            ("status".into(), status.name().into()),
        ])
        .set(n);
        if status == JobStatus::Ready {
            let flavor = registry
                .get(&job_type)
                .map(|t| t.spec().worker_flavor.clone())
                .unwrap_or_else(|| "unknown".into());
            queue
                .get_or_create(&vec![("flavor".into(), flavor)])
                .inc_by(n);
        }
    }
    // Every flavor is reported, empty ones as 0.
    for job_type in registry.iter() {
        queue
            .get_or_create(&vec![(
                "flavor".into(),
                job_type.spec().worker_flavor.clone(),
            )])
            .inc_by(0);
    }
    metrics.register("jobs", "Jobs by type and status", jobs);
    metrics.register(
        "queue_depth",
        "Ready jobs waiting for dispatch, per worker flavor",
        queue,
    );

    let lag = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (job_type, seconds) in gauges::catalogue_lag(pool).await? {
        lag.get_or_create(&vec![("job_type".into(), job_type)])
            .set(seconds.max(0.0));
    }
    metrics.register(
        "catalogue_lag_seconds",
        "Now minus the newest catalogue publication date ingested, per job type",
        lag,
    );

    let heartbeats = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let instances = Family::<Labels, Gauge>::default();
    for state in ["alive", "stopped", "dead"] {
        instances
            .get_or_create(&vec![("state".into(), state.into())])
            .set(0);
    }
    for instance in gauges::recent_instances(pool).await? {
        instances
            .get_or_create(&vec![("state".into(), instance.state.clone())])
            .inc();
        if instance.state == "alive" {
            heartbeats
                .get_or_create(&vec![
                    ("service_id".into(), instance.id),
                    ("host".into(), instance.host),
                    ("name".into(), instance.name),
                ])
                .set(instance.heartbeat_age.max(0.0));
        }
    }
    metrics.register(
        "instance_heartbeat_age_seconds",
        "Seconds since each live instance's last heartbeat",
        heartbeats,
    );
    metrics.register(
        "instances",
        "Instances by state (alive, and those stopped or declared dead in the last day)",
        instances,
    );

    let manual = gauges::manual_retries(pool).await?;
    let manual_retries = Gauge::<i64>::default();
    manual_retries.set(manual);
    metrics.register(
        "manual_retries",
        "Jobs created by a manual retry (all instances)",
        manual_retries,
    );
    Ok(())
}

/// What the alerting rules (`deploy/prometheus/alerts.yml`) need besides the rest: the leader, the
/// age of the oldest ready job per flavor, the publication outbox's backlog, the recent timeliness.
/// Each is a read of a summary, of one row, or of a partial index of active work (the ready queue,
/// the unconfirmed outbox): never of the archive.
async fn register_alerting_state(
    metrics: &mut Registry,
    pool: &PgPool,
    registry: &JobTypeRegistry,
    timeliness_target_hours: f64,
) -> Result<(), DbError> {
    let leaders = Gauge::<i64>::default();
    leaders.set(gauges::leaders(pool).await?);
    metrics.register(
        "leaders",
        "Instances holding an unexpired leader lease (1 normally, 0 when none leads)",
        leaders,
    );

    // Every flavor is reported, those with no ready job as 0.
    let oldest = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for job_type in registry.iter() {
        oldest
            .get_or_create(&vec![(
                "flavor".into(),
                job_type.spec().worker_flavor.clone(),
            )])
            .set(0.0);
    }
    for (job_type, age) in gauges::oldest_ready(pool).await? {
        let flavor = registry
            .get(&job_type)
            .map(|t| t.spec().worker_flavor.clone())
            .unwrap_or_else(|| "unknown".into());
        let gauge = oldest.get_or_create(&vec![("flavor".into(), flavor)]);
        if age > gauge.get() {
            gauge.set(age);
        }
    }
    metrics.register(
        "ready_oldest_age_seconds",
        "Seconds since the oldest ready job entered ready, per worker flavor (0 when none waits)",
        oldest,
    );

    let backlog = gauges::publication_backlog(pool).await?;
    let messages = Gauge::<i64>::default();
    messages.set(backlog.messages);
    metrics.register(
        "publication_backlog",
        "Outbox messages not yet confirmed by the broker",
        messages,
    );
    let oldest_message = Gauge::<f64, AtomicU64>::default();
    oldest_message.set(backlog.oldest_age.max(0.0));
    metrics.register(
        "publication_backlog_oldest_age_seconds",
        "Seconds since the oldest unconfirmed outbox message was written (0 when none)",
        oldest_message,
    );

    let target = Gauge::<f64, AtomicU64>::default();
    target.set(timeliness_target_hours * 3600.0);
    metrics.register(
        "timeliness_target_seconds",
        "The timeliness target, from input publication to output publication",
        target,
    );
    let published = Family::<Labels, Gauge>::default();
    let late = Family::<Labels, Gauge>::default();
    for recent in gauges::recent_timeliness(pool, timeliness_target_hours).await? {
        let labels = vec![("job_type".into(), recent.job_type)];
        published.get_or_create(&labels).set(recent.published);
        late.get_or_create(&labels).set(recent.late);
    }
    metrics.register(
        "timeliness_published_jobs",
        "Published jobs whose input was published yesterday or today (UTC), per job type",
        published,
    );
    metrics.register(
        "timeliness_late_jobs",
        "Of those, the jobs that took longer than the timeliness target, per job type",
        late,
    );
    Ok(())
}

/// The count of `from -> to` status changes recorded so far in this process (for tests).
#[cfg(test)]
pub(crate) fn counted_transitions(
    from: swath_domain::JobStatus,
    to: swath_domain::JobStatus,
) -> u64 {
    COUNTED
        .transitions
        .get_or_create(&vec![
            ("from".into(), from.name().into()),
            ("to".into(), to.name().into()),
        ])
        .get()
}

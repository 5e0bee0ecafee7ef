//! Start-up: from the settings to one running orchestrator. This is the only place where the
//! settings become the engine's parts (the API's state, the executor, the publisher) and where the
//! loops are started: [`start`] builds every [`Service`] of the instance into one table (its name,
//! its group), starts them, and [`Running::stop`] stops them group by group.
//!
//! Each instance is one of the cluster (`crate::cluster`): it registers, heartbeats, may lead, and
//! runs the background jobs it fires (`crate::schedule`).
//!
//! `swath serve` runs one until a stop signal; `swath demo` runs one on its own fresh database
//! until every job has ended. Stopping never loses committed work: each loop finishes its current
//! step, and a step in progress rolls back and is done again by the next instance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::api::{router_with, ApiState};
use crate::catalogue;
use crate::cluster::heartbeat::HeartbeatService;
use crate::cluster::leader::Leader;
use crate::cluster::Health;
use crate::config::Settings;
use crate::db::claim::Claimant;
use crate::db::services::register;
use crate::db::services::Instance;
use crate::db::tracking::TrackScope;
use crate::pipeline::campaign::CampaignService;
use crate::pipeline::configure::ConfigureService;
use crate::pipeline::execution::{DispatchLoop, DispatchService, TrackLoop, TrackService};
use crate::pipeline::poller::poll;
use crate::pipeline::withdrawals::{Relisting, WithdrawalService};
use crate::publish::run::{FailuresService, PublishLoop, PublishService};
use crate::schedule::runner::{prepare, Scheduler};
use crate::service::{CancellationToken, Service};

mod parts;
mod running;
mod settings;

pub use running::Running;
pub use settings::load_settings;

/// How recent publications a re-listing leaves out (a catalogue may list them late or in pieces).
const RELISTING_SETTLE: Duration = Duration::from_secs(15 * 60);

/// Attempts in flight looked at per tracking round.
const TRACK_BATCH: i64 = 500;

/// What a running orchestrator does beyond the settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Poll the catalogue every `ingest_interval_secs` (off when the caller ingests by itself).
    pub ingest: bool,
    /// Local executor only: extra environment of every worker (e.g. `SWATH_WORKER_RUNTIME`).
    pub worker_env: BTreeMap<String, String>,
    /// Local executor only: a directory for the workers' output instead of this process's own.
    pub worker_log_dir: Option<PathBuf>,
    /// Fire and run the background jobs (initial sync, healing, dump).
    pub background_jobs: bool,
}

/// When a service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The loops that take new work (dispatch, configuration, ingestion, background jobs): stopped
    /// first, so that nothing new starts while the steps in flight end.
    Claiming,
    /// The others (the API, tracking, publication, heartbeat, leader): stopped once the steps in
    /// flight have ended, so that their outcomes are still recorded and published.
    Finishing,
}

/// Starts the API on `listener` and every loop, on `pool` (migrated).
pub async fn start(
    pool: &PgPool,
    settings: &Settings,
    listener: tokio::net::TcpListener,
    options: Options,
) -> anyhow::Result<Running> {
    let registry = Arc::new(settings.registry()?);
    let cluster = settings.cluster_settings();
    let schedule_settings = settings
        .schedule_settings()
        .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
    let instance = Instance::new(&settings.service_name);
    let service_id = instance.service_id;
    register(pool, &instance)
        .await
        .context("registering this instance")?;
    let api_addr = listener.local_addr()?;
    let orchestrator_url = if settings.orchestrator_url.is_empty() {
        format!("http://{api_addr}")
    } else {
        settings.orchestrator_url.clone()
    };
    // The enabled job types and those of the children their jobs create.
    let running_types = settings.running_job_types()?;
    let interval = Duration::from_secs(settings.track_interval_secs);
    let (executor, owner) =
        parts::executor(settings, service_id, orchestrator_url, &options).await?;
    let (publisher, rabbit) = parts::publisher(settings);
    let health = Arc::new(Health::default());

    // Every service of the instance, in the order they start; each group stops in this order.
    let mut services: Vec<(Group, Box<dyn Service>)> = Vec::new();
    let state = ApiState {
        pool: pool.clone(),
        registry: Arc::clone(&registry),
        backoff: settings.attempt_backoff(),
        tasks: settings.task_locations(),
        timeliness_target_hours: settings.timeliness_target_hours,
    };
    let operator = settings.operator_api(Some(Arc::clone(&executor)));
    services.push((
        Group::Finishing,
        Box::new(ApiService {
            listener,
            router: router_with(state, operator),
        }),
    ));
    if let Some(rabbit) = rabbit {
        services.push((
            Group::Finishing,
            Box::new(FailuresService {
                pool: pool.clone(),
                publisher: rabbit,
                queue: settings.rabbitmq_failure_queue.clone(),
                cap: settings.publication_max_republish,
                interval,
            }),
        ));
    }
    services.push((
        Group::Finishing,
        Box::new(PublishService {
            pool: pool.clone(),
            config: PublishLoop {
                registry: Arc::clone(&registry),
                target: settings.publication_target.clone(),
                publisher,
                interval,
            },
        }),
    ));
    services.push((
        Group::Claiming,
        Box::new(DispatchService {
            pool: pool.clone(),
            config: DispatchLoop {
                executor: Arc::clone(&executor),
                registry: Arc::clone(&registry),
                enabled: running_types.clone(),
                flavors: settings.flavors.clone(),
                claimant: Claimant {
                    service_id,
                    tag: instance.tag(),
                    lease: cluster.lease,
                },
                backoff: settings.attempt_backoff(),
                interval,
            },
        }),
    ));
    services.push((
        Group::Finishing,
        Box::new(TrackService {
            pool: pool.clone(),
            config: TrackLoop {
                executor: Arc::clone(&executor),
                timeouts: settings.status_timeouts(),
                backoff: settings.attempt_backoff(),
                scope: match owner {
                    Some(id) => TrackScope::Owned(id),
                    None => TrackScope::OwnedOrOrphaned(service_id),
                },
                batch: TRACK_BATCH,
                interval,
            },
        }),
    ));
    services.push((
        Group::Claiming,
        Box::new(ConfigureService {
            pool: pool.clone(),
            job_types: running_types
                .iter()
                .filter_map(|n| registry.get(n).cloned())
                .collect(),
            settings: settings.configure_settings(),
            idle: Duration::from_secs(settings.configure_idle_secs),
        }),
    ));
    if options.ingest {
        services.push((
            Group::Claiming,
            Box::new(IngestService {
                pool: pool.clone(),
                settings: settings.clone(),
            }),
        ));
    }
    services.push((
        Group::Claiming,
        Box::new(CampaignService {
            pool: pool.clone(),
            registry: Arc::clone(&registry),
            catalogue_options: settings.catalogue_options(),
            owner: service_id,
            lease: cluster.lease,
            interval,
        }),
    ));
    services.push((
        Group::Finishing,
        Box::new(HeartbeatService {
            pool: pool.clone(),
            instance: instance.clone(),
            settings: cluster,
            health: Arc::clone(&health),
        }),
    ));
    services.push((
        Group::Finishing,
        Box::new(Leader {
            pool: pool.clone(),
            instance: instance.clone(),
            settings: cluster,
            health,
            executor,
            backoff: settings.attempt_backoff(),
        }),
    ));
    if settings.withdrawal_interval_secs > 0 {
        services.push((
            Group::Claiming,
            Box::new(WithdrawalService {
                pool: pool.clone(),
                catalogue: catalogue::open(&settings.catalogue, &settings.catalogue_options())
                    .context("opening the catalogue")?,
                service_id,
                interval: Duration::from_secs(settings.withdrawal_interval_secs),
                registry: Arc::clone(&registry),
                job_types: settings.job_types.clone(),
                relisting: Relisting {
                    window: Duration::from_secs(settings.withdrawal_relisting_hours * 3600),
                    settle: RELISTING_SETTLE,
                },
            }),
        ));
    }
    if options.background_jobs {
        prepare(pool, &schedule_settings)
            .await
            .context("preparing the background jobs")?;
        services.push((
            Group::Claiming,
            Box::new(Scheduler {
                pool: pool.clone(),
                instance: instance.clone(),
                job_types: settings
                    .job_types
                    .iter()
                    .filter_map(|n| registry.get(n).cloned())
                    .collect(),
                catalogue: catalogue::open(&settings.catalogue, &settings.catalogue_options())
                    .context("opening the catalogue")?,
                settings: schedule_settings,
                shutdown_timeout: cluster.shutdown_timeout,
            }),
        ));
    }

    let running = Running::start(
        pool.clone(),
        api_addr,
        service_id,
        services,
        owner.is_some(),
        cluster.shutdown_timeout,
    );
    tracing::info!(address = %api_addr, "HTTP API listening");
    tracing::info!(%service_id, host = %instance.host, name = %instance.name, "instance registered");
    Ok(running)
}

/// The HTTP API, until its graceful shutdown.
struct ApiService {
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

#[async_trait::async_trait]
impl Service for ApiService {
    fn name(&self) -> &'static str {
        "api"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        if let Err(e) = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "HTTP API failed");
        }
    }
}

/// Continuous ingestion: polls the catalogue for every enabled job type, every
/// `ingest_interval_secs`.
struct IngestService {
    pool: PgPool,
    settings: Settings,
}

#[async_trait::async_trait]
impl Service for IngestService {
    fn name(&self) -> &'static str {
        "ingestion"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        tokio::select! {
            result = ingest_loop(&self.pool, &self.settings) => {
                if let Err(e) = result {
                    tracing::error!(error = format!("{e:#}"), "continuous ingestion cannot run");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Polls the catalogue for every enabled job type, every `ingest_interval_secs`, forever. A failed
/// round is logged and done again next time (the cursor only moves after a complete page).
async fn ingest_loop(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let registry = settings.registry()?;
    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())
        .context("opening the catalogue")?;
    tracing::info!(source = %source.source(), job_types = ?settings.job_types, "ingesting continuously");
    let interval = Duration::from_secs(settings.ingest_interval_secs);
    loop {
        for name in &settings.job_types {
            let Some(job_type) = registry.get(name) else {
                continue;
            };
            let window = settings.continuous_window();
            match poll(pool, job_type, source.as_ref(), window, &mut |_| {}).await {
                Ok(r) => tracing::info!(
                    job_type = %name, pages = r.pages, created = r.ingest.created, cancelled = r.ingest.cancelled,
                    quarantined = r.ingest.quarantined.len(), "ingestion round done"
                ),
                Err(e) => {
                    tracing::error!(job_type = %name, error = %e, cause = %e.error, "ingestion round failed; retrying next round")
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

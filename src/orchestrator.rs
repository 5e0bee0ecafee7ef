//! One running orchestrator: the HTTP API and the background loops (continuous ingestion,
//! configuration, dispatch, tracking, publication and, with RabbitMQ, the catalogue's failure
//! acknowledgements), started together by [`start`] and stopped together by [`Running::stop`].
//! Each one is an instance of the cluster (`crate::cluster`): it registers, heartbeats, may lead,
//! and runs the background jobs it fires (`crate::schedule`).
//!
//! `swath serve` runs one until a stop signal; `swath demo` runs one on its own fresh database
//! until every job has ended. Stopping never loses committed work: each loop finishes its current
//! step, and a step in progress rolls back and is done again by the next instance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{router_with, ApiState};
use crate::catalogue;
use crate::cluster::heartbeat::heartbeat_loop;
use crate::cluster::leader::{leader_loop, Leader};
use crate::cluster::Health;
use crate::config::{ExecutorKind, PublisherKind, Settings};
use crate::db::claim::Claimant;
use crate::db::leases::{owned_in_flight, release_all};
use crate::db::services::{mark_stopped, register, Instance};
use crate::executor::local::LocalExecutor;
use crate::executor::nomad::NomadExecutor;
use crate::executor::Executor;
use crate::pipeline::configure::configure_loop;
use crate::pipeline::execution::{dispatch_loop, track_loop, DispatchLoop, TrackLoop};
use crate::pipeline::poller::poll;
use crate::pipeline::track::TrackScope;
use crate::publish::file::FilePublisher;
use crate::publish::rabbitmq::{RabbitConfig, RabbitPublisher};
use crate::publish::run::{failures_loop, publish_loop, PublishLoop};
use crate::publish::Publisher;
use crate::schedule::runner::{prepare, scheduler_loop, Scheduler};

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

/// A started orchestrator.
pub struct Running {
    /// Where the HTTP API listens.
    pub api_addr: SocketAddr,
    /// This instance's id, stamped on the jobs it claims.
    pub service_id: uuid::Uuid,
    pool: PgPool,
    /// Stops the loops that take new work (dispatch, configuration, ingestion, background jobs).
    stop_claiming: watch::Sender<bool>,
    claiming: Vec<(&'static str, JoinHandle<()>)>,
    /// Stops the others (API, tracking, publication, heartbeat, leader).
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// Whether this instance's attempts run in its own process (the local executor).
    local_attempts: bool,
    shutdown_timeout: Duration,
}

impl Running {
    /// Stops gracefully: stops claiming, lets the steps in flight end (and, with the local executor,
    /// the attempts it runs) up to the shutdown timeout, stops the other loops, releases the claims
    /// it holds and the leases of what it dispatched, and records the instance as stopped.
    pub async fn stop(self) {
        let timeout = self.shutdown_timeout;
        let _ = self.stop_claiming.send(true);
        // The scheduler gives its runs the timeout, then records the others as abandoned.
        join_within(self.claiming, timeout + Duration::from_secs(5)).await;
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
        let _ = self.stop.send(true);
        join_within(self.tasks, timeout).await;
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

/// Resolves once `flag` is set (or its sender is gone).
fn when_set(
    flag: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = flag.clone();
    async move {
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// Waits for `tasks` until `timeout`, then aborts those still running.
async fn join_within(tasks: Vec<(&'static str, JoinHandle<()>)>, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    for (name, mut task) in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(task = name, error = %e, "a background task ended abnormally")
            }
            Err(_) => {
                tracing::warn!(
                    task = name,
                    "a background task did not stop in time; cancelled"
                );
                task.abort();
                let _ = task.await;
            }
        }
    }
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
    let (stop, stop_rx) = watch::channel(false);
    let stopped = || when_set(&stop_rx);
    let (stop_claiming, claiming_rx) = watch::channel(false);
    let claiming_stopped = || when_set(&claiming_rx);
    let mut tasks = Vec::new();
    let mut claiming = Vec::new();

    let (executor, owner) = executor(settings, service_id, orchestrator_url, &options).await?;
    let state = ApiState {
        pool: pool.clone(),
        registry: Arc::clone(&registry),
        backoff: settings.attempt_backoff(),
        tasks: settings.task_locations(),
        timeliness_target_hours: settings.timeliness_target_hours,
    };
    let operator = settings.operator_api(Some(Arc::clone(&executor)));
    let shutdown = stopped();
    tasks.push((
        "api",
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router_with(state, operator))
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP API failed");
            }
        }),
    ));
    tracing::info!(address = %api_addr, "HTTP API listening");

    let (publisher, rabbit) = publisher(settings);
    if let Some(rabbit) = rabbit {
        let (pool, queue, cap) = (
            pool.clone(),
            settings.rabbitmq_failure_queue.clone(),
            settings.publication_max_republish,
        );
        let (interval, stopped) = (Duration::from_secs(settings.track_interval_secs), stopped());
        tasks.push((
            "publication failures",
            tokio::spawn(async move {
                failures_loop(&pool, rabbit, queue, cap, interval, stopped).await;
            }),
        ));
    }
    let publish = PublishLoop {
        registry: Arc::clone(&registry),
        target: settings.publication_target.clone(),
        publisher,
        interval: Duration::from_secs(settings.track_interval_secs),
    };
    let (pool_p, stopped_p) = (pool.clone(), stopped());
    tasks.push((
        "publication",
        tokio::spawn(async move { publish_loop(&pool_p, publish, stopped_p).await }),
    ));

    let dispatch = DispatchLoop {
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
        interval: Duration::from_secs(settings.track_interval_secs),
    };
    let local_attempts = owner.is_some();
    let track = TrackLoop {
        executor: Arc::clone(&executor),
        timeouts: settings.status_timeouts(),
        backoff: settings.attempt_backoff(),
        scope: match owner {
            Some(id) => TrackScope::Owned(id),
            None => TrackScope::OwnedOrOrphaned(service_id),
        },
        batch: TRACK_BATCH,
        interval: Duration::from_secs(settings.track_interval_secs),
    };
    let (pool_d, stopped_d) = (pool.clone(), claiming_stopped());
    claiming.push((
        "dispatch",
        tokio::spawn(async move { dispatch_loop(&pool_d, dispatch, stopped_d).await }),
    ));
    let (pool_t, stopped_t) = (pool.clone(), stopped());
    tasks.push((
        "tracking",
        tokio::spawn(async move { track_loop(&pool_t, track, stopped_t).await }),
    ));

    let enabled: Vec<_> = running_types
        .iter()
        .filter_map(|n| registry.get(n).cloned())
        .collect();
    let (pool_c, stopped_c) = (pool.clone(), claiming_stopped());
    let (configure, idle) = (
        settings.configure_settings(),
        Duration::from_secs(settings.configure_idle_secs),
    );
    claiming.push((
        "configuration",
        tokio::spawn(async move {
            configure_loop(&pool_c, &enabled, configure, idle, stopped_c).await;
        }),
    ));

    if options.ingest {
        let (pool_i, settings_i, stopped_i) = (pool.clone(), settings.clone(), claiming_stopped());
        claiming.push((
            "ingestion",
            tokio::spawn(async move {
                tokio::select! {
                    result = ingest_loop(&pool_i, &settings_i) => {
                        if let Err(e) = result {
                            tracing::error!(error = format!("{e:#}"), "continuous ingestion cannot run");
                        }
                    }
                    _ = stopped_i => {}
                }
            }),
        ));
    }

    let health = Arc::new(Health::default());
    let (pool_h, instance_h, health_h, stopped_h) = (
        pool.clone(),
        instance.clone(),
        Arc::clone(&health),
        stopped(),
    );
    tasks.push((
        "heartbeat",
        tokio::spawn(async move {
            heartbeat_loop(&pool_h, &instance_h, cluster, health_h, stopped_h).await;
        }),
    ));
    let leader = Leader {
        pool: pool.clone(),
        instance: instance.clone(),
        settings: cluster,
        health,
        executor,
        backoff: settings.attempt_backoff(),
    };
    let stopped_l = stopped();
    tasks.push((
        "leader",
        tokio::spawn(async move { leader_loop(leader, stopped_l).await }),
    ));
    if options.background_jobs {
        prepare(pool, &schedule_settings)
            .await
            .context("preparing the background jobs")?;
        let scheduler = Arc::new(Scheduler {
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
        });
        let stopped_s = claiming_stopped();
        claiming.push((
            "background jobs",
            tokio::spawn(async move { scheduler_loop(scheduler, stopped_s).await }),
        ));
    }
    tracing::info!(%service_id, host = %instance.host, name = %instance.name, "instance registered");
    Ok(Running {
        api_addr,
        service_id,
        pool: pool.clone(),
        stop_claiming,
        claiming,
        stop,
        tasks,
        local_attempts,
        shutdown_timeout: cluster.shutdown_timeout,
    })
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

/// The executor the settings choose, and whose attempts this instance tracks (`Some`: only its own,
/// for an executor that lives in this process).
async fn executor(
    settings: &Settings,
    service_id: uuid::Uuid,
    orchestrator_url: String,
    options: &Options,
) -> anyhow::Result<(Arc<dyn Executor>, Option<uuid::Uuid>)> {
    Ok(match settings.executor {
        ExecutorKind::Local => {
            let mut local = LocalExecutor::new(
                settings.local_worker_command()?,
                orchestrator_url,
                settings.local_work_root(),
                settings.flavors.clone(),
            )
            // Workers share this process's stores: their storage settings, and nothing else of
            // its environment.
            .with_worker_env({
                let mut env = crate::executor::local::storage_env();
                env.extend(options.worker_env.clone());
                env
            });
            if let Some(dir) = &options.worker_log_dir {
                local = local.with_log_dir(dir.clone());
            }
            (Arc::new(local), Some(service_id))
        }
        ExecutorKind::Nomad => {
            let config = settings.nomad_config().map_err(anyhow::Error::msg)?;
            // Only the flavors of the enabled job types: their worker jobs are the ones to
            // register, count and watch.
            let registry = settings.registry()?;
            let used: Vec<&str> = settings
                .job_types
                .iter()
                .filter_map(|t| registry.get(t))
                .map(|t| t.spec().worker_flavor.as_str())
                .collect();
            let flavors = settings
                .flavors
                .iter()
                .filter(|f| used.contains(&f.name.as_str()))
                .cloned()
                .collect();
            let nomad = NomadExecutor::new(config, flavors);
            if let Err(e) = nomad.register_all().await {
                tracing::warn!(error = %e, "cannot register the worker jobs in Nomad yet; they are registered when dispatching");
            }
            (Arc::new(nomad), None)
        }
    })
}

/// The publisher the settings choose, and the RabbitMQ one when it is that (it also reads the
/// catalogue's failure acknowledgements).
fn publisher(settings: &Settings) -> (Arc<dyn Publisher>, Option<Arc<RabbitPublisher>>) {
    match settings.publisher {
        PublisherKind::File => {
            let path = settings.publication_file();
            tracing::info!(file = %path.display(), "publishing to a JSON-lines file");
            let file = FilePublisher::new(
                path,
                settings.rabbitmq_routing_key.clone(),
                settings.publication_encoding,
            );
            (Arc::new(file), None)
        }
        PublisherKind::Rabbitmq => {
            let rabbit = Arc::new(RabbitPublisher::new(RabbitConfig {
                url: settings.rabbitmq_url().to_string(),
                exchange: settings.rabbitmq_exchange.clone(),
                exchange_kind: settings.rabbitmq_exchange_kind.clone(),
                routing_key: settings.rabbitmq_routing_key.clone(),
                encoding: settings.publication_encoding,
                ..RabbitConfig::default()
            }));
            tracing::info!(exchange = %settings.rabbitmq_exchange, "publishing to RabbitMQ");
            (Arc::clone(&rabbit) as Arc<dyn Publisher>, Some(rabbit))
        }
    }
}

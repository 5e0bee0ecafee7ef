//! `swath serve`: the running orchestrator. It ingests continuously (every interval, each enabled job
//! type polls the configured catalogue from its cursor), configures new and woken jobs as soon as
//! jobs change, dispatches ready jobs to the configured executor (local or Nomad) and tracks them,
//! publishes processed products (a JSON-lines file or RabbitMQ, with the catalogue's failure
//! acknowledgements read back), and serves the HTTP API (the operator API and the worker protocol). It stops on SIGINT or SIGTERM; committed work stays committed, a page or a decision
//! in progress rolls back and is done again next time.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::signal::unix::{signal, SignalKind};

use anyhow::Context;

use crate::api::{router_with, ApiState};
use crate::catalogue;
use crate::config::Settings;
use crate::config::{ExecutorKind, PublisherKind};
use crate::db::claim::Claimant;
use crate::executor::local::LocalExecutor;
use crate::executor::nomad::NomadExecutor;
use crate::executor::Executor;
use crate::pipeline::configure::configure_loop;
use crate::pipeline::execution::{dispatch_loop, track_loop, DispatchLoop, TrackLoop};
use crate::pipeline::poller::poll;
use crate::publish::file::FilePublisher;
use crate::publish::rabbitmq::{RabbitConfig, RabbitPublisher};
use crate::publish::run::{failures_loop, publish_loop, PublishLoop};
use crate::publish::Publisher;

/// How long a claim of this instance holds before another instance may take the job.
const CLAIM_LEASE_SECS: u64 = 120;
/// Attempts in flight looked at per tracking round.
const TRACK_BATCH: i64 = 500;

/// The executor the settings choose, and whose attempts this instance tracks (`Some`: only its own,
/// for an executor that lives in this process).
async fn executor(
    settings: &Settings,
    service_id: uuid::Uuid,
) -> anyhow::Result<(Arc<dyn Executor>, Option<uuid::Uuid>)> {
    Ok(match settings.executor {
        ExecutorKind::Local => (
            Arc::new(LocalExecutor::new(
                settings.local_worker_command()?,
                settings.orchestrator_url(),
                settings.local_work_root(),
                settings.flavors.clone(),
            )),
            Some(service_id),
        ),
        ExecutorKind::Nomad => {
            let config = settings.nomad_config().map_err(anyhow::Error::msg)?;
            let nomad = NomadExecutor::new(config, settings.flavors.clone());
            if let Err(e) = nomad.register_all().await {
                tracing::warn!(error = %e, "cannot register the worker jobs in Nomad yet; they are registered when dispatching");
            }
            (Arc::new(nomad), None)
        }
    })
}

/// The publisher the settings choose, and the RabbitMQ one when it is that (it also reads the
/// catalogue's failure acknowledgements).
async fn publisher(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn Publisher>, Option<Arc<RabbitPublisher>>)> {
    Ok(match settings.publisher {
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
    })
}

/// This machine's name, for the jobs it claims.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs until a stop signal.
pub async fn run(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let registry = settings.registry()?;
    let service_id = uuid::Uuid::new_v4();
    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let interval = Duration::from_secs(settings.ingest_interval_secs);
    tracing::info!(source = %source.source(), job_types = ?settings.job_types, "swath serve: ingesting continuously");
    // The enabled job types and those of the children their jobs create.
    let running = settings.running_job_types()?;
    let enabled: Vec<_> = running
        .iter()
        .filter_map(|n| registry.get(n).cloned())
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "HTTP API listening");
    let (executor, owner) = executor(settings, service_id).await?;
    let api = {
        let state = ApiState {
            pool: pool.clone(),
            registry: std::sync::Arc::new(registry.clone()),
            backoff: settings.attempt_backoff(),
            tasks: settings.task_locations(),
        };
        let operator = settings.operator_api(Some(Arc::clone(&executor)));
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            };
            if let Err(e) = axum::serve(listener, router_with(state, operator))
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP API failed");
            }
        })
    };
    let (publisher, rabbit) = publisher(settings).await?;
    let failures = rabbit.map(|rabbit| {
        let pool = pool.clone();
        let mut stop_rx = stop_rx.clone();
        let (queue, cap) = (
            settings.rabbitmq_failure_queue.clone(),
            settings.publication_max_republish,
        );
        let interval = Duration::from_secs(settings.track_interval_secs);
        tokio::spawn(async move {
            failures_loop(&pool, rabbit, queue, cap, interval, async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            })
            .await;
        })
    });
    let publish = {
        let config = PublishLoop {
            registry: std::sync::Arc::new(registry.clone()),
            target: settings.publication_target.clone(),
            publisher,
            interval: Duration::from_secs(settings.track_interval_secs),
        };
        let pool = pool.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            publish_loop(&pool, config, async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            })
            .await;
        })
    };
    let (dispatch, track) = {
        let dispatch = DispatchLoop {
            executor: Arc::clone(&executor),
            registry: Arc::new(registry.clone()),
            enabled: running.clone(),
            flavors: settings.flavors.clone(),
            claimant: Claimant {
                service_id,
                tag: serde_json::json!({ "host": hostname(), "name": "swath serve" }),
                lease: Duration::from_secs(CLAIM_LEASE_SECS),
            },
            backoff: settings.attempt_backoff(),
            interval: Duration::from_secs(settings.track_interval_secs),
        };
        let track = TrackLoop {
            executor,
            timeouts: settings.status_timeouts(),
            backoff: settings.attempt_backoff(),
            owner,
            batch: TRACK_BATCH,
            interval: Duration::from_secs(settings.track_interval_secs),
        };
        let spawn_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
        let (pool_d, pool_t) = (pool.clone(), pool.clone());
        let (stop_d, stop_t) = (spawn_stop(stop_rx.clone()), spawn_stop(stop_rx.clone()));
        (
            tokio::spawn(async move { dispatch_loop(&pool_d, dispatch, stop_d).await }),
            tokio::spawn(async move { track_loop(&pool_t, track, stop_t).await }),
        )
    };
    let configure = {
        let pool = pool.clone();
        let mut stop_rx = stop_rx.clone();
        let (settings, idle) = (
            settings.configure_settings(),
            Duration::from_secs(settings.configure_idle_secs),
        );
        tokio::spawn(async move {
            configure_loop(&pool, &enabled, settings, idle, async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            })
            .await;
        })
    };
    loop {
        let round = async {
            for name in &settings.job_types {
                let Some(job_type) = registry.get(name) else {
                    continue;
                };
                match poll(
                    pool,
                    job_type,
                    source.as_ref(),
                    settings.continuous_window(),
                    &mut |_| {},
                )
                .await
                {
                    Ok(r) => tracing::info!(
                        job_type = %name, pages = r.pages, created = r.ingest.created, cancelled = r.ingest.cancelled,
                        quarantined = r.ingest.quarantined.len(), "ingestion round done"
                    ),
                    Err(e) => {
                        tracing::error!(job_type = %name, error = %e, cause = %e.error, "ingestion round failed; retrying next round")
                    }
                }
            }
        };
        tokio::select! {
            _ = round => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    let _ = stop_tx.send(true);
    let _ = configure.await;
    let _ = dispatch.await;
    let _ = track.await;
    let _ = publish.await;
    if let Some(failures) = failures {
        let _ = failures.await;
    }
    let _ = api.await;
    drop(stop_rx);
    tracing::info!("swath serve: stopped");
    Ok(())
}

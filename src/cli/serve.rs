//! `swath serve`: the running orchestrator. It ingests continuously (every interval, each enabled job
//! type polls the configured catalogue from its cursor), configures new and woken jobs as soon as
//! jobs change, and serves the HTTP API (the worker protocol). It stops on SIGINT or SIGTERM; committed work stays committed, a page or a decision
//! in progress rolls back and is done again next time.

use std::time::Duration;

use sqlx::PgPool;
use tokio::signal::unix::{signal, SignalKind};

use anyhow::Context;

use crate::api::{router, ApiState};
use crate::catalogue;
use crate::config::Settings;
use crate::pipeline::configure::configure_loop;
use crate::pipeline::poller::poll;

/// Runs until a stop signal.
pub async fn run(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let registry = settings.registry()?;
    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let interval = Duration::from_secs(settings.ingest_interval_secs);
    tracing::info!(source = %source.source(), job_types = ?settings.job_types, "swath serve: ingesting continuously");
    let enabled: Vec<_> = settings
        .job_types
        .iter()
        .filter_map(|n| registry.get(n).cloned())
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "HTTP API listening");
    let api = {
        let state = ApiState {
            pool: pool.clone(),
            registry: std::sync::Arc::new(registry.clone()),
            backoff: settings.attempt_backoff(),
        };
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
            };
            if let Err(e) = axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "HTTP API failed");
            }
        })
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
    let _ = api.await;
    drop(stop_rx);
    tracing::info!("swath serve: stopped");
    Ok(())
}

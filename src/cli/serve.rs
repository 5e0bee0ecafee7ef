//! `swath serve`: the running orchestrator. For now it ingests continuously: every interval, each
//! enabled job type polls the configured catalogue from its cursor. It stops on SIGINT or SIGTERM;
//! committed pages stay committed, a page in progress rolls back and is listed again next time.

use std::time::Duration;

use sqlx::PgPool;
use tokio::signal::unix::{signal, SignalKind};

use crate::catalogue;
use crate::config::Settings;
use crate::pipeline::poller::poll;

/// Runs until a stop signal.
pub async fn run(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let registry = settings.registry()?;
    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let interval = Duration::from_secs(settings.ingest_interval_secs);
    tracing::info!(source = %source.source(), job_types = ?settings.job_types, "swath serve: ingesting continuously");
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
    tracing::info!("swath serve: stopped");
    Ok(())
}

//! `swath serve`: the running orchestrator ([`swath_engine::startup`]) until SIGINT or SIGTERM. It
//! ingests continuously, configures, dispatches to the configured executor (local or Nomad) and
//! tracks, publishes processed products (a JSON-lines file or RabbitMQ) and serves the HTTP API.
//! Committed work stays committed when it stops; a step in progress rolls back and is done again.

use anyhow::Context;
use sqlx::PgPool;
use tokio::signal::unix::{signal, SignalKind};

use swath_engine::config::Settings;
use swath_engine::startup::{self, Options};

/// Runs until a stop signal.
pub async fn run(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let options = Options {
        ingest: true,
        background_jobs: true,
        ..Options::default()
    };
    let running = startup::start(pool, settings, listener, options).await?;
    tracing::info!(service_id = %running.service_id, "swath serve: running");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("swath serve: stopping");
    running.stop().await;
    tracing::info!("swath serve: stopped");
    Ok(())
}

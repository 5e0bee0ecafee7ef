//! The command line: `swath migrate`, `swath db refresh`, `swath jobs ...`, `swath campaigns ...`, `swath report completeness`, `swath products inspect`, `swath demo`,
//! `swath config show`, `swath nomad hcl|register`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::PgPool;

use swath_engine::config::{SecretUrl, Settings};
use swath_engine::db;

mod bench;
mod campaigns;
mod database;
mod demo;
mod ingest;
mod jobs;
mod nomad;
mod products;
mod report;
mod serve;
mod table;

/// swath: turns Sentinel-1/Sentinel-2 product listings into processed, published products.
#[derive(Debug, Parser)]
#[command(name = "swath", version, about)]
pub struct Cli {
    /// TOML configuration file (also `SWATH_CONFIG`); `SWATH_*` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if needed and apply every pending schema migration.
    Migrate,
    /// Database maintenance: recompute the job summaries.
    #[command(subcommand)]
    Db(database::DbCommand),
    /// Inspect, cancel and retry jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Reprocessing campaigns: create, list, show, pause, resume, cancel.
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCommand),
    /// Reports: `swath report completeness` (is every product of a window there?).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Work with Sentinel product names.
    #[command(subcommand)]
    Products(products::ProductsCommand),
    /// List a catalogue window and create the jobs of one job type (one-off or backfill).
    Ingest(ingest::IngestArgs),
    /// Run the orchestrator: ingest continuously until stopped (SIGINT or SIGTERM).
    Serve,
    /// Run the demonstration on the shipped sample catalogue, in a fresh `<database>_demo` database.
    Demo,
    /// Measure performance against a baseline, in one run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the worker, as `swath-worker` does (the local executor's default when no `swath-worker`
    /// lies beside this program).
    #[command(subcommand)]
    Worker(swath_worker::cli::WorkerCommand),
    /// Show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write or register the Nomad worker jobs.
    #[command(subcommand)]
    Nomad(nomad::NomadCommand),
}

/// `swath config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings as TOML, secrets redacted.
    Show,
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Products(cmd) = &cli.command {
        return products::run(cmd);
    }
    // The worker reads its own environment and sets up its own logs.
    let cli = match cli.command {
        Command::Worker(command) => {
            return Ok(swath_worker::cli::run(swath_worker::cli::Cli { command }).await)
        }
        command => Cli { command, ..cli },
    };
    let settings = swath_engine::startup::load_settings(cli.config.as_deref())?;
    // The demo shows its own progress: the loops' routine logs would drown it.
    let log = if matches!(cli.command, Command::Demo) && settings.log == Settings::default().log {
        "warn"
    } else {
        settings.log.as_str()
    };
    swath_engine::telemetry::init(settings.log_format, log);
    match cli.command {
        Command::Migrate => {
            let pool = open_database(&settings, true).await?;
            db::migrate(&pool).await.context("applying migrations")?;
            println!("database {} is up to date", settings.database().redacted());
        }
        Command::Db(cmd) => {
            let pool = open_database(&settings, false).await?;
            db::check_schema(&pool).await?;
            database::run(&pool, cmd).await?;
        }
        Command::Jobs(cmd) => {
            let pool = open_database(&settings, false).await?;
            db::check_schema(&pool).await?;
            return jobs::run(&pool, &settings, cmd).await;
        }
        Command::Campaigns(cmd) => {
            let pool = open_database(&settings, false).await?;
            db::check_schema(&pool).await?;
            return campaigns::run(&pool, &settings, cmd).await;
        }
        Command::Report(cmd) => {
            let pool = open_database(&settings, false).await?;
            db::check_schema(&pool).await?;
            return report::run(&pool, &settings, cmd).await;
        }
        Command::Ingest(args) => {
            let pool = open_database(&settings, false).await?;
            db::check_schema(&pool).await?;
            return ingest::run(&pool, &settings, args).await;
        }
        Command::Serve => {
            let pool = open_database(&settings, true).await?;
            db::migrate(&pool).await.context("applying migrations")?;
            serve::run(&pool, &settings).await?;
        }
        Command::Demo => demo::run(&settings).await?,
        Command::Nomad(cmd) => nomad::run(&settings, cmd).await?,
        Command::Bench(cmd) => bench::run(&settings, cmd).await?,
        Command::Config(ConfigCommand::Show) => {
            let shown = settings.redacted();
            print!(
                "{}",
                toml::to_string_pretty(&shown).context("formatting the settings")?
            );
        }
        Command::Products(_) | Command::Worker(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Drops and recreates `<configured database>_<suffix>` on the configured server, migrates it and
/// connects to it (for the demo and the benchmarks, which never touch the real database).
async fn fresh_database(
    settings: &Settings,
    suffix: &str,
) -> anyhow::Result<(db::DatabaseUrl, PgPool)> {
    let configured = settings.database();
    let base = configured.database_name().unwrap_or_else(|| "swath".into());
    let url = configured
        .with_database(&format!("{base}_{suffix}"))
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("naming the {suffix} database"))?;
    db::drop_database_if_exists(&url).await.with_context(|| {
        format!("dropping the previous {suffix} database (is PostgreSQL running on the configured server?)")
    })?;
    db::create_database_if_missing(&url)
        .await
        .with_context(|| format!("creating the {suffix} database"))?;
    let pool = open_database(
        &Settings {
            database_url: SecretUrl::new(url.expose()),
            ..settings.clone()
        },
        false,
    )
    .await?;
    db::migrate(&pool).await.context("applying migrations")?;
    Ok((url, pool))
}

/// Connects to the configured database, creating it first when `create` is set.
async fn open_database(settings: &Settings, create: bool) -> anyhow::Result<PgPool> {
    let url = &settings.database();
    if create
        && db::create_database_if_missing(url)
            .await
            .with_context(|| format!("creating database {}", url.redacted()))?
    {
        tracing::info!(database = %url.redacted(), "database created");
    }
    db::connect(
        url,
        settings.database_max_connections,
        Duration::from_secs(settings.database_connect_timeout_secs),
    )
    .await
    .with_context(|| {
        format!(
            "connecting to {} (is PostgreSQL running there?)",
            url.redacted()
        )
    })
}

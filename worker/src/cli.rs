//! The worker's command line: `run` one attempt, `check` the configuration, or `bench stage`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use swath_domain::attempt::AttemptFailure;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::attempt::run_attempt;
use crate::config::{WorkerArgs, WorkerConfig};
use crate::outcome::{Outcome, EXIT_USAGE};
use crate::runtime::{detect, DockerRuntime, ProcessRuntime, Runtime};

/// swath-worker: runs one attempt of one swath job.
#[derive(Debug, Parser)]
#[command(name = "swath-worker", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: WorkerCommand,
}

/// The worker's subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run the attempt named by the configuration.
    Run(WorkerArgs),
    /// Validate the configuration and print it (the token redacted).
    Check(WorkerArgs),
    /// Print the runtime `run` would use here: `docker` when an engine answers (and holds
    /// `--image`, if given), else `process`, with the reason on standard error.
    Runtime(RuntimeArgs),
    /// Measure performance against a baseline, in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `swath-worker runtime`
#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    /// An image the Docker runtime must hold to be chosen.
    #[arg(long)]
    pub image: Option<String>,
}

/// `swath-worker bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Staging from S3 against `rclone copy` of the same objects from the same server.
    Stage(crate::bench::StageBenchArgs),
}

fn init_logs(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWATH_WORKER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The runtime `config` names (`auto`, `docker` or `process`), with its container limits.
async fn runtime(config: &WorkerConfig) -> Result<Box<dyn Runtime>, AttemptFailure> {
    let configure = |docker: DockerRuntime| {
        docker
            .with_limits(config.limits)
            .with_stop_grace(config.stop_grace)
            .with_nomad_alloc(config.nomad_alloc.clone())
    };
    match config.runtime.as_str() {
        "docker" => Ok(Box::new(configure(DockerRuntime::connect().await?))),
        "process" => Ok(Box::new(ProcessRuntime::new())),
        _ => Ok(detect(configure).await),
    }
}

/// The runtime `run` would pick with `auto`, and why not Docker when it is not.
async fn usable_runtime(args: &RuntimeArgs) -> (&'static str, Option<String>) {
    let docker = match DockerRuntime::connect().await {
        Ok(docker) => docker,
        Err(e) => return ("process", Some(format!("no Docker engine: {e}"))),
    };
    let Some(image) = &args.image else {
        return ("docker", None);
    };
    match docker.has_image(image).await {
        Ok(true) => ("docker", None),
        Ok(false) => (
            "process",
            Some(format!("the Docker engine has no image {image}")),
        ),
        Err(e) => ("process", Some(format!("cannot inspect {image}: {e}"))),
    }
}

/// A token cancelled on SIGTERM (Nomad stopping the attempt) or SIGINT.
fn cancel_on_signals() -> std::io::Result<CancellationToken> {
    let cancel = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let token = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("stop signal: stopping the attempt");
        token.cancel();
    });
    Ok(cancel)
}

/// Runs the worker and returns its exit code (0 finished, 1 unusable configuration, 2 retry).
pub async fn run(cli: Cli) -> ExitCode {
    let (args, check_only) = match &cli.command {
        WorkerCommand::Run(args) => (args, false),
        WorkerCommand::Check(args) => (args, true),
        WorkerCommand::Runtime(args) => {
            let (name, reason) = usable_runtime(args).await;
            if let Some(reason) = reason {
                eprintln!("{reason}");
            }
            println!("{name}");
            return ExitCode::SUCCESS;
        }
        WorkerCommand::Bench(BenchCommand::Stage(args)) => {
            init_logs(false);
            return match crate::bench::run_stage_bench(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let config = match WorkerConfig::from_args(args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logs(config.json_logs);
    if check_only {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    // Every line about the attempt carries the job's id, attempt and (once known) type.
    let span = tracing::info_span!(
        "attempt",
        job_id = config.job_id,
        attempt = config.attempt,
        job_type = tracing::field::Empty
    );
    let outcome = match (runtime(&config).await, cancel_on_signals()) {
        (Ok(runtime), Ok(cancel)) => {
            run_attempt(&config, runtime.as_ref(), cancel)
                .instrument(span.clone())
                .await
        }
        (Err(e), _) => Outcome::Failed(e),
        (_, Err(e)) => Outcome::Failed(AttemptFailure::internal("signals", e.to_string())),
    };
    let _in_attempt = span.enter();
    match &outcome {
        Outcome::Failed(err) => {
            tracing::error!(job_id = config.job_id, attempt = config.attempt, error = %err, "attempt failed")
        }
        Outcome::Superseded(why) => {
            tracing::warn!(job_id = config.job_id, attempt = config.attempt, %why, "attempt superseded: nothing done")
        }
        Outcome::Classified(class) => {
            tracing::info!(job_id = config.job_id, attempt = config.attempt, outcome = ?class, "attempt finished")
        }
    }
    ExitCode::from(outcome.exit_code())
}

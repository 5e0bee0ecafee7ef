//! The worker's command line: `run` one attempt, or `check` the configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{WorkerArgs, WorkerConfig};
use crate::outcome::{Outcome, WorkerError, EXIT_USAGE};
use crate::workdir::WorkDir;

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

/// Runs the worker and returns its exit code (0 finished, 1 unusable configuration, 2 retry).
pub async fn run(cli: Cli) -> ExitCode {
    let (args, check_only) = match &cli.command {
        WorkerCommand::Run(args) => (args, false),
        WorkerCommand::Check(args) => (args, true),
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
    let outcome = run_attempt(&config);
    if let Outcome::Failed(err) = &outcome {
        tracing::error!(job_id = config.job_id, attempt = config.attempt, error = %err, "attempt failed");
    }
    ExitCode::from(outcome.exit_code())
}

/// One attempt. The task protocol with the orchestrator is not part of this version of the worker:
/// the attempt prepares and removes its work directory, then reports that it cannot go further.
fn run_attempt(config: &WorkerConfig) -> Outcome {
    let uid = uuid::Uuid::new_v4();
    let work = match WorkDir::create(&config.work_root, uid) {
        Ok(w) => w,
        Err(e) => return Outcome::Failed(e),
    };
    tracing::info!(job_id = config.job_id, attempt = config.attempt, work_dir = %work.path().display(), "attempt started");
    Outcome::Failed(WorkerError::internal(
        "unsupported",
        "this worker version cannot fetch tasks: the orchestrator's worker protocol is not available",
    ))
}

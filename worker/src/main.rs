//! `swath-worker`: runs one attempt of one job, as dispatched by Nomad or the local executor.
//!
//! Thin entry point: parse the command line and configuration, set up logging, run, and exit 0 when
//! the attempt is finished (whatever its outcome) or 2 when it should be retried.

use std::process::ExitCode;

use clap::Parser;
use swath_worker::cli::{run, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse()).await
}

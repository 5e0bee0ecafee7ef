//! The `swath` command: parse the command line, run it, map failures to an exit code.
//!
//! The commands (`commands`) sit on the orchestrator library (`swath_engine`) and the worker
//! (`swath_worker`, for `swath worker ...`); `bench` holds the benchmarks (`swath bench ...`).

mod bench;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Ingestion allocates and frees many small JSON values and strings; mimalloc handles that churn
/// far better than the system allocator (it was a third of the process's CPU time under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

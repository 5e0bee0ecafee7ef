//! The `swath` command: parse the command line, run it, map failures to an exit code.

use std::process::ExitCode;

use clap::Parser;

/// Ingestion allocates and frees many small JSON values and strings; mimalloc handles that churn
/// far better than the system allocator (it was a third of the process's CPU time under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = swath::cli::Cli::parse();
    match swath::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! `swath nomad hcl` and `swath nomad register`: the worker jobs and the orchestrator's service
//! job as HCL files, or the worker jobs registered directly, from the effective settings.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use swath_engine::config::Settings;
use swath_engine::executor::nomad::hcl::{
    service_job_hcl, worker_job_file_name, worker_job_hcl, SERVICE_JOB_FILE,
};
use swath_engine::executor::nomad::NomadExecutor;

/// `swath nomad ...`
#[derive(Debug, Subcommand)]
pub enum NomadCommand {
    /// Write the HCL of the worker job of every flavor, and of the orchestrator's service job
    /// (registering the service the workers look up), into a directory.
    Hcl {
        /// Directory to write `<prefix>-<flavor>.nomad.hcl` and `swath.nomad.hcl` into.
        #[arg(long, default_value = "nomad")]
        out: PathBuf,
    },
    /// Register the worker job of every flavor in Nomad (swath serve does it at start-up too).
    Register,
}

/// Runs one command.
pub async fn run(settings: &Settings, command: NomadCommand) -> anyhow::Result<()> {
    let config = settings.nomad_config().map_err(anyhow::Error::msg)?;
    match command {
        NomadCommand::Hcl { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for flavor in &settings.flavors {
                let path = out.join(worker_job_file_name(&config.jobs, flavor));
                std::fs::write(&path, worker_job_hcl(&config.jobs, flavor))
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
            let path = out.join(SERVICE_JOB_FILE);
            std::fs::write(&path, service_job_hcl(&config.jobs, settings.listen_port()))
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{}", path.display());
        }
        NomadCommand::Register => {
            let executor = NomadExecutor::new(config, settings.flavors.clone());
            executor
                .register_all()
                .await
                .context("registering the worker jobs in Nomad")?;
            println!("{} worker jobs registered", settings.flavors.len());
        }
    }
    Ok(())
}

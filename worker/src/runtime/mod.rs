//! Running the scientific code of one attempt: in a Docker container, or as a plain process.
//!
//! Both runtimes take the same [`RunSpec`] and give the same [`RunReport`]: the code sees its work
//! directory (as `/work` in a container, as the real directory for a process, and in both cases
//! through `SWATH_WORK`), runs as a non-root user under a CPU and memory limit where the runtime
//! can set one, is killed at its wall-clock deadline, when its work directory grows past its disk
//! limit (measured every few seconds) or when the caller's cancellation token fires,
//! and leaves nothing behind: the container or process group is removed on every path, errors
//! included. Each output line goes to `tracing` (target `science`, fields `job` and `stream`) and to
//! `<work_dir>/logs/<name>.log`.
//!
//! [`detect`] picks Docker when an engine answers and the process runtime otherwise.

mod disk;
mod docker;
mod error;
mod logs;
mod owner;
mod process;
mod user;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

pub use docker::{
    ContainerLimits, DockerRuntime, ALLOC_LABEL, DEFAULT_STOP_GRACE, OWNER_LABEL, RUN_LABEL,
};
pub use error::RuntimeError;
pub use owner::ProcessIdentity;
pub use process::ProcessRuntime;
/// The token that cancels a run ([`Runtime::run`]).
pub use tokio_util::sync::CancellationToken;

/// Environment variable through which both runtimes tell the code where its work directory is.
pub const WORK_ENV: &str = "SWATH_WORK";

/// Where the work directory appears inside a container.
pub const CONTAINER_WORK_DIR: &str = "/work";

/// One run of the scientific code.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Container name and log prefix, e.g. `swath-<job>-<attempt>`; also names the log file.
    pub name: String,
    /// Docker image reference (tag or digest), never pulled; ignored by the process runtime.
    pub image: String,
    /// Argument vector. For the process runtime `command[0]` is a program on the host (looked up
    /// in `PATH`); for Docker an empty vector runs the image's own command.
    pub command: Vec<String>,
    /// Environment of the code, on top of the image's (Docker) or of `PATH`, `HOME` and `LANG`
    /// (process). `SWATH_WORK` is always set by the runtime.
    pub env: BTreeMap<String, String>,
    /// Host directory mounted at `/work`; `work_dir/inputs` is mounted read-only at `/work/inputs`.
    pub work_dir: PathBuf,
    /// Whether the code may use the network (Docker: the engine's default network instead of none).
    pub network: bool,
    /// CPU limit in cores; 0 means no limit.
    pub cpus: f64,
    /// Memory limit in MiB, without swap; 0 means no limit.
    pub memory_mb: u64,
    /// Wall-clock time the code may run; it is killed after that.
    pub deadline: Duration,
    /// Most the work directory may hold, in MiB (the flavor's disk); the code is killed past it
    /// and the run fails with [`RuntimeError::DiskLimit`]. 0 means no limit.
    pub disk_mb: u64,
    /// `uid:gid` to run as. Default: the worker's own ids, or `65534:65534` (nobody) when the worker
    /// runs as root. Root (uid 0) is refused.
    pub user: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The code exited by itself. A process killed by a signal reports `128 + signal`.
    Exited {
        /// The exit code, to classify with the job type's exit-code table.
        code: i64,
    },
    /// The deadline passed and the code was killed.
    DeadlineExceeded,
    /// The code was killed for going over its memory limit (Docker: the container's `OOMKilled`).
    OutOfMemory,
    /// The cancellation token fired and the code was killed.
    Cancelled,
}

/// What a run produced besides its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// The image's digest (`sha256:...`) for Docker, recorded as the job's software version; `None`
    /// for the process runtime.
    pub software_version: Option<String>,
    /// Wall-clock time from the start of the code to its end.
    pub duration: Duration,
}

/// A way of running the scientific code.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// `"docker"` or `"process"`.
    fn name(&self) -> &'static str;

    /// Runs `spec` to its end, its deadline or the cancellation of `cancel`, streaming its output
    /// lines to `tracing` and to `<work_dir>/logs/<name>.log`. The container or process group is
    /// gone when this returns, whatever the result.
    async fn run(
        &self,
        spec: &RunSpec,
        cancel: CancellationToken,
    ) -> Result<RunReport, RuntimeError>;
}

/// Docker (set up by `configure`: limits, stop grace, allocation) when an engine answers a ping
/// (local socket or `DOCKER_HOST`, within a few seconds), else the process runtime.
pub async fn detect(configure: impl FnOnce(DockerRuntime) -> DockerRuntime) -> Box<dyn Runtime> {
    match DockerRuntime::connect().await {
        Ok(docker) => Box::new(configure(docker)),
        Err(e) => {
            tracing::info!(error = %e, "no Docker engine: the code will run as a plain process");
            Box::new(ProcessRuntime::new())
        }
    }
}

//! The Docker runtime: the code runs in a container of a local image, through the engine's API.
//!
//! The image is never pulled: it must be on the engine, and its digest (the first `RepoDigests`
//! entry, `repo@sha256:...`, else the image ID) is the run's software version, a reference that
//! names exactly this image so that a retry can run it again; the container is created
//! from the image ID, so what runs is what is recorded. The container gets the work directory at
//! `/work` and `inputs/` read-only at `/work/inputs`, and nothing else writable: its root
//! filesystem is read-only and `/tmp` is a tmpfs of bounded size (its pages count against the
//! memory limit). It runs as a non-root user, with no capabilities and no new privileges, under an
//! init process (the engine's `docker-init`) that reaps orphans and forwards signals, with network
//! mode `none` unless the spec asks for the network (then the engine's default network), the CPU
//! and memory limits of the spec (memory without swap; CPUs capped at the engine's count), and the
//! [`ContainerLimits`] of the worker: a pids limit (every process and thread of the container,
//! counted by its pids cgroup: a fork bomb stops there) and `nofile`/`nproc` resource limits. Its
//! output is attached before it starts, so no line is lost. A container whose state says
//! `OOMKilled` (any of its processes was killed by the memory limit) ends `OutOfMemory`, whatever its
//! exit code. The engine sets that flag from the OOM-kill events of the container's memory cgroup
//! (cgroup v2: the `oom_kill` counter of `memory.events`, watched by containerd; v1:
//! `memory.oom_control`), the counter the worker would read itself, and keeps it after the container
//! stops, when its cgroup (and that file) is already gone: the flag is read, not the file. At the deadline or past the spec's disk limit (its work directory measured every few
//! seconds: Nomad does not enforce a flavor's disk) it is killed (SIGKILL: the work directory is
//! thrown away anyway). On cancellation (the worker's SIGTERM: Nomad stopping the attempt) it is
//! stopped like `docker stop` with the runtime's stop grace: SIGTERM, then SIGKILL after the grace,
//! which is shorter than the task's kill timeout, so the container is gone before Nomad SIGKILLs the
//! worker. It is force-removed on every path, errors and a dropped run future included, and a
//! container left with the same name by an earlier crash is removed first.
//!
//! Orphans: a worker killed outright (SIGKILL at Nomad's kill timeout, the OOM killer) leaves its
//! container running outside the task's cgroup, where it would keep the node busy. Every container
//! is labelled with its owner worker process ([`OWNER_LABEL`], a [`ProcessIdentity`]) and, under
//! Nomad, its allocation ([`ALLOC_LABEL`], `NOMAD_ALLOC_ID`); before starting its own, the runtime
//! removes every container of swath ([`RUN_LABEL`]) whose owner is known dead on this host. The
//! owner's liveness is the test, not the allocation's status in Nomad: asking Nomad would need the
//! agent's address and an ACL token that a raw_exec task does not have, while a worker removes its
//! container on every path it survives, so a container whose worker is dead is an orphan by
//! definition, and a live worker's container is never touched.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures_util::{Stream as FuturesStream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::disk;
use super::logs::{LineSender, LineSplitter, LogSink, Stream};
use super::owner::ProcessIdentity;
use super::user::{prepare_work_dir, RunUser};
use super::{RunOutcome, RunReport, RunSpec, Runtime, RuntimeError, CONTAINER_WORK_DIR, WORK_ENV};

/// How long connecting (version negotiation and ping) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a killed container may take to be reported stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the output of a finished container may take to reach the log.
const LOG_DRAIN: Duration = Duration::from_secs(5);
/// Label put on every container of the worker, with the run's name as value.
pub const RUN_LABEL: &str = "swath.run";
/// Label with the Nomad allocation the worker runs in (`NOMAD_ALLOC_ID`), when it runs under Nomad.
pub const ALLOC_LABEL: &str = "swath.nomad.alloc";
/// Label with the worker process that owns the container (a [`ProcessIdentity`]:
/// `<boot id>/<pid namespace>/<pid>/<start ticks>`).
pub const OWNER_LABEL: &str = "swath.owner";
/// Default stop grace: Nomad's default `max_kill_timeout` (30 s, the most a task's kill timeout can
/// be) less 10 s for the worker to remove the container and report.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(20);

/// Where a container may write besides `/work`.
const TMP_DIR: &str = "/tmp";

/// Limits put on every container, besides the CPU and memory of the run's flavor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// Most processes and threads the container may hold at once (its pids cgroup's `pids.max`).
    pub pids: u32,
    /// `RLIMIT_NOFILE` (soft and hard): open files per process. The engine's runtime sets it as
    /// the container starts, and cannot raise it past its own hard limit where it lacks
    /// `CAP_SYS_RESOURCE` (the container then fails to start).
    pub nofile: u64,
    /// `RLIMIT_NPROC` (soft and hard). Linux counts it per real uid across the whole host (the
    /// engine maps no user namespace), not per container: it bounds every process and thread of the
    /// code's uid on the node, of all the attempts that run as that uid (by default `nobody`) and of
    /// any host process of that uid. So it is no per-attempt limit (that is `pids`); it is a
    /// ceiling on what the code of all attempts of a node may hold together, and must be sized for
    /// the attempts a node runs at once.
    pub nproc: u64,
    /// Size of the tmpfs at `/tmp`, in MiB. Mounted `noexec`: code that executes scratch files
    /// writes them under `/work`.
    pub tmp_mb: u64,
}

impl Default for ContainerLimits {
    /// Sized for real science: thousands of threads (JVMs, OpenMP, GDAL), thousands of open
    /// rasters, a scratch `/tmp` of 1 GiB; `nproc` room for four attempts at their pids limit on
    /// one node.
    fn default() -> Self {
        ContainerLimits {
            pids: 4096,
            nofile: 16384,
            nproc: 4 * 4096,
            tmp_mb: 1024,
        }
    }
}

/// Runs the code in Docker containers.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    cpus: Option<f64>,
    limits: ContainerLimits,
    /// How long a cancelled container gets between SIGTERM and SIGKILL.
    stop_grace: Duration,
    /// This worker process, the owner of its containers (`None` if `/proc` is unreadable: the
    /// containers then carry no owner and are never judged orphans).
    owner: Option<ProcessIdentity>,
    /// The Nomad allocation the worker runs in.
    nomad_alloc: Option<String>,
}

/// An image found on the engine.
struct ResolvedImage {
    id: String,
    digest: String,
}

impl DockerRuntime {
    /// Connects to the engine of `DOCKER_HOST`, else the local socket, and checks that it answers.
    pub async fn connect() -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| RuntimeError::EngineUnavailable(e.to_string()))?;
        Self::ready(docker).await
    }

    /// Connects to the engine at `host` (`unix:///...` or `tcp://...`) and checks that it answers.
    pub async fn connect_to(host: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_host(host)
            .map_err(|e| RuntimeError::EngineUnavailable(format!("{host}: {e}")))?;
        Self::ready(docker).await
    }

    async fn ready(docker: Docker) -> Result<Self, RuntimeError> {
        let timed_out =
            |_| RuntimeError::EngineUnavailable(format!("no answer within {CONNECT_TIMEOUT:?}"));
        // The engine may speak an older API than the client: talk its version.
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(timed_out)?
            .map_err(|e| RuntimeError::from_docker("negotiate the API version", e))?;
        tokio::time::timeout(CONNECT_TIMEOUT, docker.ping())
            .await
            .map_err(timed_out)?
            .map_err(|e| RuntimeError::from_docker("answer a ping", e))?;
        let cpus = match tokio::time::timeout(CONNECT_TIMEOUT, docker.info()).await {
            Ok(Ok(info)) => info.ncpu.filter(|n| *n > 0).map(|n| n as f64),
            _ => None,
        };
        let owner = ProcessIdentity::current()
            .map_err(|e| tracing::warn!(error = %e, "cannot tell this process's identity: containers carry no owner"))
            .ok();
        Ok(DockerRuntime {
            docker,
            cpus,
            limits: ContainerLimits::default(),
            stop_grace: DEFAULT_STOP_GRACE,
            owner,
            nomad_alloc: None,
        })
    }

    /// The same runtime, putting `limits` on every container.
    pub fn with_limits(mut self, limits: ContainerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same runtime, giving a cancelled container `grace` between SIGTERM and SIGKILL (whole
    /// seconds, as `docker stop`; keep it below the task's kill timeout).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// The same runtime, labelling its containers with the Nomad allocation `alloc_id`.
    pub fn with_nomad_alloc(mut self, alloc_id: Option<String>) -> Self {
        self.nomad_alloc = alloc_id.filter(|a| !a.is_empty());
        self
    }

    /// Removes the containers of swath whose owner worker is known dead on this host (see the
    /// module's documentation), running or not, and returns their names.
    pub async fn remove_orphans(&self) -> Result<Vec<String>, RuntimeError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![RUN_LABEL.to_string()],
            )])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| RuntimeError::from_docker("list the containers", e))?;
        let mut removed = Vec::new();
        for container in containers {
            let labels = container.labels.unwrap_or_default();
            let Some(owner) = labels
                .get(OWNER_LABEL)
                .and_then(|l| ProcessIdentity::parse(l))
            else {
                continue;
            };
            match owner.is_known_dead() {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell whether a container's owner lives");
                    continue;
                }
            }
            let Some(id) = container.id else { continue };
            let name = labels.get(RUN_LABEL).cloned().unwrap_or_else(|| id.clone());
            tracing::warn!(container = %id, run = %name, owner = %owner, alloc = labels.get(ALLOC_LABEL).map(String::as_str).unwrap_or(""), "removing the container of a dead worker");
            Self::remove(&self.docker, &id).await?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Whether the engine holds `image` (never pulled).
    pub async fn has_image(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.resolve_image(image).await {
            Ok(_) => Ok(true),
            Err(RuntimeError::ImageNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The image's ID and digest, without pulling it.
    async fn resolve_image(&self, image: &str) -> Result<ResolvedImage, RuntimeError> {
        let info = match self.docker.inspect_image(image).await {
            Ok(info) => info,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(RuntimeError::ImageNotFound {
                    image: image.to_string(),
                })
            }
            Err(e) => return Err(RuntimeError::from_docker("inspect the image", e)),
        };
        let id = info.id.ok_or_else(|| RuntimeError::Engine {
            action: "inspect the image",
            status: None,
            message: format!("image {image} has no ID"),
        })?;
        let digest = info
            .repo_digests
            .unwrap_or_default()
            .iter()
            // `repo@sha256:...`: a reference that names exactly this image, to run it again.
            .find(|d| d.contains('@'))
            .cloned()
            .unwrap_or_else(|| id.clone());
        Ok(ResolvedImage { id, digest })
    }

    /// Force-removes the container `name_or_id`; one already gone is not an error.
    async fn remove(docker: &Docker, name_or_id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match docker.remove_container(name_or_id, Some(options)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(RuntimeError::from_docker("remove the container", e)),
        }
    }

    fn container_body(
        &self,
        spec: &RunSpec,
        image: &ResolvedImage,
        user: RunUser,
    ) -> Result<ContainerCreateBody, RuntimeError> {
        let work_dir =
            std::fs::canonicalize(&spec.work_dir).map_err(|source| RuntimeError::WorkDir {
                path: spec.work_dir.clone(),
                source,
            })?;
        let bind = |source: std::path::PathBuf, target: String, read_only: bool| Mount {
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target),
            typ: Some(MountType::BIND),
            read_only: Some(read_only),
            ..Default::default()
        };
        let mounts = vec![
            bind(work_dir.clone(), CONTAINER_WORK_DIR.to_string(), false),
            bind(
                work_dir.join("inputs"),
                format!("{CONTAINER_WORK_DIR}/inputs"),
                true,
            ),
        ];
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("{WORK_ENV}={CONTAINER_WORK_DIR}"));
        let memory = (spec.memory_mb > 0).then(|| (spec.memory_mb as i64).saturating_mul(1 << 20));
        let cpus = match self.cpus {
            Some(max) if spec.cpus > max => {
                tracing::warn!(job = %spec.name, asked = spec.cpus, max, "fewer CPUs on this engine than asked: capping the limit");
                max
            }
            _ => spec.cpus,
        };
        Ok(ContainerCreateBody {
            image: Some(image.id.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(env),
            user: Some(user.docker_user()),
            working_dir: Some(CONTAINER_WORK_DIR.to_string()),
            labels: Some(self.labels(spec)),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            host_config: Some(self.host_config(spec, mounts, memory, cpus)),
            ..Default::default()
        })
    }

    /// The run's name, its owner and its allocation.
    fn labels(&self, spec: &RunSpec) -> HashMap<String, String> {
        let mut labels = HashMap::from([(RUN_LABEL.to_string(), spec.name.clone())]);
        if let Some(owner) = &self.owner {
            labels.insert(OWNER_LABEL.to_string(), owner.to_string());
        }
        if let Some(alloc) = &self.nomad_alloc {
            labels.insert(ALLOC_LABEL.to_string(), alloc.clone());
        }
        labels
    }

    /// Where the container may write, what it may use, and what it may not do.
    fn host_config(
        &self,
        spec: &RunSpec,
        mounts: Vec<Mount>,
        memory: Option<i64>,
        cpus: f64,
    ) -> HostConfig {
        let limits = self.limits;
        let ulimit = |name: &str, value: u64| ResourcesUlimits {
            name: Some(name.to_string()),
            soft: Some(i64::try_from(value).unwrap_or(i64::MAX)),
            hard: Some(i64::try_from(value).unwrap_or(i64::MAX)),
        };
        HostConfig {
            mounts: Some(mounts),
            // `none`: loopback only. The engine's default network only for a task that declares it
            // needs the network.
            network_mode: Some(if spec.network { "default" } else { "none" }.to_string()),
            memory,
            memory_swap: memory,
            nano_cpus: (cpus > 0.0).then_some((cpus * 1e9) as i64),
            pids_limit: Some(i64::from(limits.pids)),
            ulimits: Some(vec![
                ulimit("nofile", limits.nofile),
                ulimit("nproc", limits.nproc),
            ]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                TMP_DIR.to_string(),
                format!("rw,noexec,nosuid,nodev,size={}m,mode=1777", limits.tmp_mb),
            )])),
            init: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            auto_remove: Some(false),
            ..Default::default()
        }
    }

    /// Starts the created container and follows it to its end, deadline or cancellation.
    async fn supervise(
        &self,
        spec: &RunSpec,
        id: &str,
        sink: LogSink,
        cancel: CancellationToken,
    ) -> Result<(RunOutcome, Duration), RuntimeError> {
        let attach = self
            .docker
            .attach_container(
                id,
                Some(AttachContainerOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| RuntimeError::from_docker("attach to the container", e))?;
        let (tx, writer) = sink.spawn_writer();
        let mut pump = tokio::spawn(pump(attach.output, tx));

        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| RuntimeError::from_docker("start the container", e))?;
        let started = Instant::now();
        tracing::info!(job = %spec.name, container = %id, "code started in a container");

        let mut wait = self.docker.wait_container(id, None);
        let stop = tokio::select! {
            waited = wait.next() => Stop::Exited(waited),
            _ = cancel.cancelled() => Stop::Cancelled,
            _ = tokio::time::sleep(spec.deadline) => Stop::Deadline,
            used = disk::exceeded(spec.work_dir.clone(), spec.disk_mb) => Stop::Disk(used),
        };
        let disk_limit = match stop {
            Stop::Disk(used_bytes) => Some(RuntimeError::DiskLimit {
                path: spec.work_dir.clone(),
                used_bytes,
                limit_mb: spec.disk_mb,
            }),
            _ => None,
        };
        let outcome = match stop {
            Stop::Exited(waited) => {
                wait_result(waited)?;
                self.exit_state(id).await?
            }
            Stop::Cancelled | Stop::Deadline | Stop::Disk(_) => {
                match stop {
                    Stop::Cancelled => self.stop(id).await?,
                    _ => self.kill(id).await?,
                }
                if tokio::time::timeout(STOP_TIMEOUT, wait.next())
                    .await
                    .is_err()
                {
                    tracing::warn!(job = %spec.name, container = %id, "the killed container is not reported stopped; removing it anyway");
                }
                match stop {
                    Stop::Cancelled => RunOutcome::Cancelled,
                    _ => RunOutcome::DeadlineExceeded,
                }
            }
        };
        let duration = started.elapsed();

        if tokio::time::timeout(LOG_DRAIN, &mut pump).await.is_err() {
            pump.abort();
            tracing::warn!(job = %spec.name, "the container's output did not close in time; its end may be missing from the log");
        }
        match writer.await {
            Ok(mut sink) => match &disk_limit {
                Some(e) => sink.note(&format!("{e} after {duration:?}")).await,
                None => sink.note(&format!("{outcome:?} after {duration:?}")).await,
            },
            Err(e) => tracing::warn!(job = %spec.name, error = %e, "the log writer failed"),
        }
        match disk_limit {
            Some(e) => Err(e),
            None => Ok((outcome, duration)),
        }
    }

    /// Exit code and OOM flag of a stopped container.
    async fn exit_state(&self, id: &str) -> Result<RunOutcome, RuntimeError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| RuntimeError::from_docker("inspect the container", e))?;
        let state = info.state.unwrap_or_default();
        if state.running == Some(true) {
            return Err(RuntimeError::EngineUnavailable(
                "the wait for the container ended while it still runs".into(),
            ));
        }
        if state.oom_killed == Some(true) {
            return Ok(RunOutcome::OutOfMemory);
        }
        Ok(RunOutcome::Exited {
            code: state.exit_code.unwrap_or(-1),
        })
    }

    /// `docker stop`: SIGTERM (forwarded by the init to the code), SIGKILL after the stop grace;
    /// returns once the container is stopped. One already stopped or gone is not an error.
    async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        let options = StopContainerOptions {
            t: Some(i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "docker stop failed: killing the container");
                self.kill(id).await
            }
        }
    }

    /// SIGKILL; a container already stopped or gone is not an error.
    async fn kill(&self, id: &str) -> Result<(), RuntimeError> {
        match self.docker.kill_container(id, None).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(e) => Err(RuntimeError::from_docker("kill the container", e)),
        }
    }
}

/// Largest log read for the init's own failure: it is the first line of a run whose program never
/// started, so a longer log is the program's.
const INIT_FAILURE_LOG_MAX: u64 = 64 * 1024;

/// The init's message when it could not execute the program (`[FATAL tini (7)] exec /x failed:
/// No such file or directory`, then exit code 127, or 126 for a permission): the container started,
/// but the program did not, which is a fault of the image or the command, not of the code.
fn init_exec_failure(work_dir: &std::path::Path, name: &str) -> Option<String> {
    let path = LogSink::path_for(work_dir, name);
    if std::fs::metadata(&path).ok()?.len() > INIT_FAILURE_LOG_MAX {
        return None;
    }
    let log = std::fs::read_to_string(path).ok()?;
    log.lines().find_map(|line| {
        let (_, message) = line.split_once("[FATAL tini (")?;
        let (_, message) = message.split_once("] ")?;
        (message.starts_with("exec ") && message.contains(" failed: ")).then(|| message.to_string())
    })
}

/// How the wait for the container ended.
enum Stop<T> {
    Exited(T),
    Cancelled,
    Deadline,
    /// The work directory holds this many bytes, past the disk limit.
    Disk(u64),
}

/// The end of the wait stream: a stop (whatever the code) or an engine failure.
fn wait_result(
    waited: Option<Result<bollard::models::ContainerWaitResponse, DockerError>>,
) -> Result<(), RuntimeError> {
    match waited {
        None | Some(Ok(_)) | Some(Err(DockerError::DockerContainerWaitError { .. })) => Ok(()),
        Some(Err(e)) => Err(RuntimeError::from_docker("wait for the container", e)),
    }
}

type OutputStream = Pin<Box<dyn FuturesStream<Item = Result<LogOutput, DockerError>> + Send>>;

/// Reads the attached output of the container and sends its lines to the log.
async fn pump(mut output: OutputStream, tx: LineSender) {
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let streams = [Stream::Stdout, Stream::Stderr];
    while let Some(item) = output.next().await {
        let (index, bytes) = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => (0, message),
            Ok(LogOutput::StdErr { message }) => (1, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "the container's output stream broke");
                break;
            }
        };
        for line in splitters[index].push(&bytes) {
            if tx.send((streams[index], line)).await.is_err() {
                return;
            }
        }
    }
    for (splitter, stream) in splitters.iter_mut().zip(streams) {
        if let Some(line) = splitter.finish() {
            let _ = tx.send((stream, line)).await;
        }
    }
}

/// Removes the container when dropped, unless removed already: covers a run future dropped midway.
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    /// Removes the container now.
    async fn remove(mut self) -> Result<(), RuntimeError> {
        match self.id.take() {
            Some(id) => DockerRuntime::remove(&self.docker, &id).await,
            None => Ok(()),
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let docker = self.docker.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = DockerRuntime::remove(&docker, &id).await {
                        tracing::error!(container = %id, error = %e, "cannot remove the container");
                    }
                });
            }
            Err(_) => tracing::error!(container = %id, "no runtime left to remove the container"),
        }
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn run(
        &self,
        spec: &RunSpec,
        cancel: CancellationToken,
    ) -> Result<RunReport, RuntimeError> {
        let user = RunUser::resolve(spec.user.as_deref())?;
        let image = self.resolve_image(&spec.image).await?;
        prepare_work_dir(&spec.work_dir, user)?;
        let body = self.container_body(spec, &image, user)?;
        let mut sink = LogSink::open(&spec.work_dir, &spec.name).await?;
        sink.note(&format!(
            "docker runtime: image {} ({}), command {:?}, as {}",
            spec.image,
            image.digest,
            spec.command,
            user.docker_user()
        ))
        .await;

        // Containers of dead workers would keep this node busy: they go before this one starts.
        match self.remove_orphans().await {
            Ok(removed) if !removed.is_empty() => {
                sink.note(&format!(
                    "removed the containers of dead workers: {removed:?}"
                ))
                .await
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove the containers of dead workers"),
        }
        // A container of the same name can only be a leftover of a crashed run of this attempt.
        Self::remove(&self.docker, &spec.name).await?;
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| RuntimeError::from_docker("create the container", e))?;
        let guard = ContainerGuard {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let supervised = self.supervise(spec, &created.id, sink, cancel).await;
        if let Err(e) = guard.remove().await {
            tracing::error!(job = %spec.name, container = %created.id, error = %e, "cannot remove the container");
        }
        let (outcome, duration) = supervised?;
        if let RunOutcome::Exited {
            code: code @ (126 | 127),
        } = outcome
        {
            if let Some(reason) = init_exec_failure(&spec.work_dir, &spec.name) {
                let kind = if code == 126 {
                    std::io::ErrorKind::PermissionDenied
                } else {
                    std::io::ErrorKind::NotFound
                };
                return Err(RuntimeError::Spawn {
                    program: spec
                        .command
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "the image's command".into()),
                    user: user.docker_user(),
                    work_dir: CONTAINER_WORK_DIR.into(),
                    source: std::io::Error::new(kind, reason),
                });
            }
        }
        tracing::info!(job = %spec.name, ?outcome, ?duration, "code ended");
        Ok(RunReport {
            outcome,
            software_version: Some(image.digest),
            duration,
        })
    }
}

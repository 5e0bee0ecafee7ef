//! The local executor: runs each attempt as a process on this machine (by default `swath-worker
//! run`), with at most `local_slots` attempts per flavor at once. The embedded default executor.
//!
//! Each worker starts with a cleared environment: only [`PASSED_ENV`] and the worker's own settings
//! (`SWATH_WORKER_*`) of this process's environment, the variables the executor was given
//! ([`LocalExecutor::with_worker_env`], e.g. storage credentials), and the attempt's. The
//! orchestrator's secrets (database URL, API and Nomad tokens, broker URL, anything else it holds)
//! never reach a worker, nor the code it runs.
//!
//! Each worker runs in its own process group. Stopping an attempt sends SIGTERM to the group (the
//! worker removes its container and work directory) and SIGKILL after a grace period, so that
//! nothing the worker started outlives it. Ended attempts are remembered for [`ENDED_RETENTION`]
//! (long enough for the tracking loop to read their exit code), then forgotten.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use swath_domain::flavor::WorkerFlavor;
use tokio::process::{Child, Command};

use super::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};

/// What runs an attempt: a program and its arguments. The attempt is described to it in the
/// environment: `SWATH_WORKER_JOB_ID`, `SWATH_WORKER_ATTEMPT`, `SWATH_WORKER_TOKEN`,
/// `SWATH_WORKER_ORCHESTRATOR_URL` and `SWATH_WORKER_WORK_ROOT`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Variables of this process's environment that every worker gets as they are: where programs
/// are, its home and temporary directory, and how to reach the Docker engine (its address and TLS
/// files, no secret).
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "DOCKER_HOST",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
];

/// Prefix of the worker's own settings, passed on from this process's environment too (but for
/// [`ATTEMPT_ENV`], which the executor sets for each attempt).
pub const WORKER_ENV_PREFIX: &str = "SWATH_WORKER_";

/// Variables the executor sets for each attempt; any value of this process's environment is
/// dropped. `SWATH_WORKER_TOKEN_FILE` would name another attempt's token.
const ATTEMPT_ENV: &[&str] = &[
    "SWATH_WORKER_JOB_ID",
    "SWATH_WORKER_ATTEMPT",
    "SWATH_WORKER_TOKEN",
    "SWATH_WORKER_TOKEN_FILE",
    "SWATH_WORKER_ORCHESTRATOR_URL",
    "SWATH_WORKER_WORK_ROOT",
];

/// The storage settings workers read (S3 endpoint, region and credentials), besides their
/// `SWATH_WORKER_*` settings.
pub const STORAGE_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
];

/// The [`STORAGE_ENV`] variables set in this process's environment, to give to the workers
/// explicitly ([`LocalExecutor::with_worker_env`]) when they share the orchestrator's stores.
pub fn storage_env() -> BTreeMap<String, String> {
    STORAGE_ENV
        .iter()
        .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
        .collect()
}

/// What a worker keeps of this process's environment: [`PASSED_ENV`] and its own settings.
fn inherited_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|name| {
                PASSED_ENV.contains(&name)
                    || (name.starts_with(WORKER_ENV_PREFIX) && !ATTEMPT_ENV.contains(&name))
            })
        })
        .collect()
}

/// Prefix of the references of local attempts: `local/<idempotency token>`. A local attempt lives in
/// the process of the instance that started it.
pub const REFERENCE_PREFIX: &str = "local/";

/// How long an ended attempt's outcome stays readable.
pub const ENDED_RETENTION: Duration = Duration::from_secs(3600);
/// Time between SIGTERM and SIGKILL when an attempt is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

struct Attempt {
    flavor: String,
    child: Option<Child>,
    /// The worker's process group (its pid: it leads its own group).
    group: Option<Pid>,
    ended: Option<(AttemptOutcome, Instant)>,
}

/// Runs attempts as local processes.
pub struct LocalExecutor {
    command: WorkerCommand,
    orchestrator_url: String,
    work_root: PathBuf,
    flavors: Vec<WorkerFlavor>,
    worker_env: BTreeMap<String, String>,
    log_dir: Option<PathBuf>,
    attempts: Arc<Mutex<HashMap<String, Attempt>>>,
}

impl LocalExecutor {
    /// An executor running `command` for each attempt, reporting to `orchestrator_url`.
    pub fn new(
        command: WorkerCommand,
        orchestrator_url: String,
        work_root: PathBuf,
        flavors: Vec<WorkerFlavor>,
    ) -> Self {
        LocalExecutor {
            command,
            orchestrator_url,
            work_root,
            flavors,
            worker_env: BTreeMap::new(),
            log_dir: None,
            attempts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Adds variables to every worker's environment (which holds nothing else of this process's
    /// but [`PASSED_ENV`] and `SWATH_WORKER_*`), e.g. storage credentials or
    /// `SWATH_WORKER_RUNTIME`.
    pub fn with_worker_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.worker_env = env;
        self
    }

    /// Writes each worker's output to `<dir>/job-<id>-attempt-<n>.log` instead of this process's
    /// own standard output and error.
    pub fn with_log_dir(mut self, dir: PathBuf) -> Self {
        self.log_dir = Some(dir);
        self
    }

    /// Where a worker's standard output and error go.
    fn worker_output(&self, request: &DispatchRequest) -> Result<(Stdio, Stdio), ExecutorError> {
        let Some(dir) = &self.log_dir else {
            return Ok((Stdio::inherit(), Stdio::inherit()));
        };
        let path = dir.join(format!(
            "job-{}-attempt-{}.log",
            request.job_id, request.attempt
        ));
        let open = || {
            std::fs::create_dir_all(dir)?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        };
        let file = open().map_err(|e| {
            ExecutorError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        let copy = file.try_clone().map_err(|e| {
            ExecutorError::Unavailable(format!("cannot open {}: {e}", path.display()))
        })?;
        Ok((Stdio::from(file), Stdio::from(copy)))
    }

    fn refresh(attempt: &mut Attempt) -> AttemptOutcome {
        if let Some((ended, _)) = &attempt.ended {
            return ended.clone();
        }
        let Some(child) = attempt.child.as_mut() else {
            return AttemptOutcome::Unknown;
        };
        match child.try_wait() {
            Ok(None) => AttemptOutcome::Running,
            Ok(Some(status)) => {
                let ended = match status.code() {
                    Some(code) => AttemptOutcome::Exited(code),
                    None => AttemptOutcome::Failed(format!(
                        "the worker ended without an exit code ({status})"
                    )),
                };
                attempt.ended = Some((ended.clone(), Instant::now()));
                attempt.child = None;
                ended
            }
            Err(e) => AttemptOutcome::Failed(format!("cannot read the worker's status: {e}")),
        }
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
        let mut attempts = self
            .attempts
            .lock()
            .expect("the attempt table is not poisoned");
        let mut running: HashMap<String, usize> = HashMap::new();
        attempts.retain(|_, a| {
            Self::refresh(a);
            !matches!(a.ended, Some((_, at)) if at.elapsed() > ENDED_RETENTION)
        });
        for attempt in attempts.values_mut() {
            if matches!(
                Self::refresh(attempt),
                AttemptOutcome::Running | AttemptOutcome::Pending
            ) {
                *running.entry(attempt.flavor.clone()).or_default() += 1;
            }
        }
        Ok(self
            .flavors
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    (f.local_slots as usize)
                        .saturating_sub(running.get(&f.name).copied().unwrap_or(0)),
                )
            })
            .collect())
    }

    async fn dispatch(&self, request: &DispatchRequest) -> Result<String, ExecutorError> {
        let reference = format!("{REFERENCE_PREFIX}{}", request.idempotency_token);
        let mut attempts = self
            .attempts
            .lock()
            .expect("the attempt table is not poisoned");
        if attempts.contains_key(&reference) {
            return Ok(reference);
        }
        let flavor = self
            .flavors
            .iter()
            .find(|f| f.name == request.flavor.name)
            .ok_or_else(|| {
                ExecutorError::Refused(format!("unknown flavor {}", request.flavor.name))
            })?;
        let mut busy = 0;
        for attempt in attempts.values_mut().filter(|a| a.flavor == flavor.name) {
            if matches!(Self::refresh(attempt), AttemptOutcome::Running) {
                busy += 1;
            }
        }
        if busy >= flavor.local_slots as usize {
            return Err(ExecutorError::Unavailable(format!(
                "no free {} slot ({busy} running)",
                flavor.name
            )));
        }
        let (stdout, stderr) = self.worker_output(request)?;
        let child = Command::new(&self.command.program)
            .args(&self.command.args)
            .env_clear()
            .envs(inherited_env())
            .envs(&self.worker_env)
            .env("SWATH_WORKER_JOB_ID", request.job_id.to_string())
            .env("SWATH_WORKER_ATTEMPT", request.attempt.to_string())
            .env("SWATH_WORKER_TOKEN", &request.worker_token)
            .env("SWATH_WORKER_ORCHESTRATOR_URL", &self.orchestrator_url)
            .env("SWATH_WORKER_WORK_ROOT", &self.work_root)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ExecutorError::Unavailable(format!(
                    "cannot start {}: {e}",
                    self.command.program.display()
                ))
            })?;
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        attempts.insert(
            reference.clone(),
            Attempt {
                flavor: flavor.name.clone(),
                child: Some(child),
                group,
                ended: None,
            },
        );
        Ok(reference)
    }

    async fn outcome(&self, reference: &str) -> Result<AttemptOutcome, ExecutorError> {
        let mut attempts = self
            .attempts
            .lock()
            .expect("the attempt table is not poisoned");
        Ok(attempts
            .get_mut(reference)
            .map_or(AttemptOutcome::Unknown, Self::refresh))
    }

    async fn stop(&self, reference: &str) -> Result<(), ExecutorError> {
        let mut attempts = self
            .attempts
            .lock()
            .expect("the attempt table is not poisoned");
        let Some(attempt) = attempts.get_mut(reference) else {
            return Ok(());
        };
        if Self::refresh(attempt) != AttemptOutcome::Running {
            return Ok(());
        }
        let Some(group) = attempt.group else {
            return Ok(());
        };
        killpg(group, Signal::SIGTERM)
            .map_err(|e| ExecutorError::Unavailable(format!("cannot stop {reference}: {e}")))?;
        tokio::spawn(async move {
            tokio::time::sleep(STOP_GRACE).await;
            // ESRCH: the whole group ended within the grace period.
            let _ = killpg(group, Signal::SIGKILL);
        });
        Ok(())
    }
}

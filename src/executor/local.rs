//! The local executor: runs each attempt as a process on this machine (by default `swath-worker
//! run`), with at most `local_slots` attempts per flavor at once. The embedded default executor.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use swath_job_types::flavor::WorkerFlavor;
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

struct Attempt {
    flavor: String,
    child: Option<Child>,
    ended: Option<AttemptOutcome>,
}

/// Runs attempts as local processes.
pub struct LocalExecutor {
    command: WorkerCommand,
    orchestrator_url: String,
    work_root: PathBuf,
    flavors: Vec<WorkerFlavor>,
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
            attempts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn refresh(attempt: &mut Attempt) -> AttemptOutcome {
        if let Some(ended) = &attempt.ended {
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
                attempt.ended = Some(ended.clone());
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
        let reference = format!("local/{}", request.idempotency_token);
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
        let child = Command::new(&self.command.program)
            .args(&self.command.args)
            .env("SWATH_WORKER_JOB_ID", request.job_id.to_string())
            .env("SWATH_WORKER_ATTEMPT", request.attempt.to_string())
            .env("SWATH_WORKER_TOKEN", &request.worker_token)
            .env("SWATH_WORKER_ORCHESTRATOR_URL", &self.orchestrator_url)
            .env("SWATH_WORKER_WORK_ROOT", &self.work_root)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ExecutorError::Unavailable(format!(
                    "cannot start {}: {e}",
                    self.command.program.display()
                ))
            })?;
        attempts.insert(
            reference.clone(),
            Attempt {
                flavor: flavor.name.clone(),
                child: Some(child),
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
        if let Some(child) = attempt.child.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                child.start_kill().map_err(|e| {
                    ExecutorError::Unavailable(format!("cannot stop {reference}: {e}"))
                })?;
            }
        }
        Ok(())
    }
}

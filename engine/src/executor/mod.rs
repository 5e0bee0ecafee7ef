//! Executors run job attempts somewhere: on this machine (`local`), or on a Nomad cluster (`nomad`).
//!
//! Every executor honours the same contract, checked by one conformance suite:
//! - dispatch is idempotent on the attempt's token `<uid>-<attempt>`: dispatching the same token
//!   again returns the same reference and starts nothing new;
//! - an attempt's outcome is observable from its reference: still pending or running, exited with a
//!   code, failed without an exit code (it could not be set up), lost, or unknown;
//! - a dispatched attempt can be stopped.

use std::collections::BTreeMap;

use async_trait::async_trait;
use swath_domain::flavor::WorkerFlavor;

pub mod local;
pub mod nomad;

/// One attempt to run. Its `Debug` form hides the worker token.
#[derive(Clone, PartialEq)]
pub struct DispatchRequest {
    /// The job.
    pub job_id: i64,
    /// The job type.
    pub job_type: String,
    /// The attempt.
    pub attempt: i32,
    /// Idempotency token: `<uid>-<attempt>`.
    pub idempotency_token: String,
    /// The attempt's one-time bootstrap secret (given to the worker, never logged), which the
    /// worker exchanges on its first call for its attempt token.
    pub worker_token: String,
    /// The flavor to run on.
    pub flavor: WorkerFlavor,
    /// The job type's original Nomad job name (for logs; executors pick their own jobs).
    pub nomad_job: String,
}

impl std::fmt::Debug for DispatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchRequest")
            .field("job_id", &self.job_id)
            .field("job_type", &self.job_type)
            .field("attempt", &self.attempt)
            .field("idempotency_token", &self.idempotency_token)
            .field("worker_token", &"***")
            .field("flavor", &self.flavor.name)
            .field("nomad_job", &self.nomad_job)
            .finish()
    }
}

/// How an attempt is doing, as its executor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Waiting for a slot or a node.
    Pending,
    /// Running.
    Running,
    /// The worker exited with this code.
    Exited(i32),
    /// It ended without an exit code (could not start, killed by a signal...).
    Failed(String),
    /// The executor lost it (node gone).
    Lost,
    /// The executor does not know this reference (never dispatched, or forgotten).
    Unknown,
}

/// An executor that cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The executor is unreachable or failed: worth trying again later.
    #[error("executor unavailable: {0}")]
    Unavailable(String),
    /// The request cannot work (unknown flavor, bad configuration).
    #[error("executor refused the request: {0}")]
    Refused(String),
}

/// Somewhere to run attempts.
#[async_trait]
pub trait Executor: Send + Sync {
    /// A short name for logs (`local`, `nomad`).
    fn name(&self) -> &'static str;

    /// Free slots per flavor name.
    async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError>;

    /// Starts the attempt (or returns the reference of the one started with the same token).
    async fn dispatch(&self, request: &DispatchRequest) -> Result<String, ExecutorError>;

    /// How the attempt behind `reference` is doing.
    async fn outcome(&self, reference: &str) -> Result<AttemptOutcome, ExecutorError>;

    /// Stops the attempt behind `reference` (a no-op if it already ended).
    async fn stop(&self, reference: &str) -> Result<(), ExecutorError>;

    /// Why the attempt behind `reference` is still waiting, if the executor can tell (Nomad: the
    /// placement failures of its evaluations); named in the error of an attempt that timed out
    /// waiting. The default knows nothing.
    async fn pending_reason(&self, _reference: &str) -> Option<String> {
        None
    }

    /// Resolves when attempts may have changed (an executor that can watch its attempts, like
    /// Nomad's blocking queries); the default never resolves, and callers look at their own pace.
    async fn changed(&self) {
        std::future::pending::<()>().await
    }
}

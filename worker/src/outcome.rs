//! How an attempt ends, and the process exit code that tells the executor what to do next.

use swath_job_types::exit_codes::ExitClass;

/// Exit code: the attempt is finished (succeeded, or failed terminally and was reported).
pub const EXIT_FINISHED: u8 = 0;
/// Exit code: the worker could not start at all (bad command line or configuration).
pub const EXIT_USAGE: u8 = 1;
/// Exit code: the attempt should be retried (storage, Docker or the orchestrator unavailable).
pub const EXIT_RETRY: u8 = 2;

/// A failure of the worker itself, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Probably a bug or bad input: retrying will not help.
    #[error("internal error ({subtype}): {message}")]
    Internal {
        /// Short class of the error, recorded as the status' error subtype.
        subtype: String,
        /// What happened.
        message: String,
    },
    /// A dependency failed: retrying may help.
    #[error("external error ({subtype}): {message}")]
    External {
        /// Short class of the error.
        subtype: String,
        /// What happened.
        message: String,
    },
}

impl WorkerError {
    /// An internal error.
    pub fn internal(subtype: impl Into<String>, message: impl Into<String>) -> Self {
        WorkerError::Internal {
            subtype: subtype.into(),
            message: message.into(),
        }
    }

    /// An external error.
    pub fn external(subtype: impl Into<String>, message: impl Into<String>) -> Self {
        WorkerError::External {
            subtype: subtype.into(),
            message: message.into(),
        }
    }
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The scientific code ran and its exit code was classified.
    Classified(ExitClass),
    /// The worker failed before or around the scientific code.
    Failed(WorkerError),
    /// The attempt is not this run's to do (another run of it is ahead, or the job moved on): the
    /// orchestrator answered 409. Nothing was changed.
    Superseded(String),
}

impl Outcome {
    /// The process exit code for this outcome. Only external errors ask for a retry; internal ones
    /// are reported and final.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Classified(ExitClass::ExternalError) => EXIT_RETRY,
            Outcome::Classified(_) => EXIT_FINISHED,
            Outcome::Failed(WorkerError::External { .. }) => EXIT_RETRY,
            Outcome::Failed(WorkerError::Internal { .. }) => EXIT_FINISHED,
            Outcome::Superseded(_) => EXIT_FINISHED,
        }
    }
}

impl From<swath_storage::StorageError> for WorkerError {
    /// Transient storage errors ask for a retry (external), the others are final (internal).
    fn from(e: swath_storage::StorageError) -> Self {
        if e.is_transient() {
            WorkerError::external("storage", e.to_string())
        } else {
            WorkerError::internal("storage", e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_external_errors_ask_for_a_retry() {
        assert_eq!(Outcome::Classified(ExitClass::Success).exit_code(), 0);
        assert_eq!(Outcome::Classified(ExitClass::NoProduct).exit_code(), 0);
        assert_eq!(Outcome::Classified(ExitClass::InternalError).exit_code(), 0);
        assert_eq!(Outcome::Classified(ExitClass::ExternalError).exit_code(), 2);
        assert_eq!(
            Outcome::Failed(WorkerError::external("s3", "timeout")).exit_code(),
            2
        );
        assert_eq!(
            Outcome::Failed(WorkerError::internal("bug", "x")).exit_code(),
            0
        );
        assert_eq!(Outcome::Superseded("stale".into()).exit_code(), 0);
    }
}

//! How an attempt ends, and the process exit code that tells the executor what to do next.

use swath_domain::attempt::AttemptFailure;
use swath_domain::exit_codes::ExitClass;

/// Exit code: the attempt is finished (succeeded, or failed terminally and was reported).
pub const EXIT_FINISHED: u8 = 0;
/// Exit code: the worker could not start at all (bad command line or configuration).
pub const EXIT_USAGE: u8 = 1;
/// Exit code: the attempt should be retried (storage, Docker or the orchestrator unavailable).
pub const EXIT_RETRY: u8 = 2;

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The scientific code ran and its exit code was classified.
    Classified(ExitClass),
    /// The worker failed before or around the scientific code.
    Failed(AttemptFailure),
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
            Outcome::Failed(failure) if failure.is_external() => EXIT_RETRY,
            Outcome::Failed(_) => EXIT_FINISHED,
            Outcome::Superseded(_) => EXIT_FINISHED,
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
            Outcome::Failed(AttemptFailure::external("s3", "timeout")).exit_code(),
            2
        );
        assert_eq!(
            Outcome::Failed(AttemptFailure::internal("bug", "x")).exit_code(),
            0
        );
        assert_eq!(Outcome::Superseded("stale".into()).exit_code(), 0);
    }
}

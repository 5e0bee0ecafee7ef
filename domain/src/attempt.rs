//! How an attempt fails: the one failure type shared by the worker (which classifies its own
//! errors), the worker protocol (which carries them in a result report) and the orchestrator (whose
//! retry policy reads them, and which turns executor outcomes and timeouts into them).
//!
//! An external failure (storage, Docker, the orchestrator or the executor unavailable, a timeout) is
//! worth another attempt; an internal one (a bug, bad input) is final.

use crate::exit_codes::ExitClass;

/// A failed attempt, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptFailure {
    /// A bug or bad input: retrying will not help.
    #[error("internal error ({subtype}): {message}")]
    Internal {
        /// Short class of the error (`inputs`, `exit code 1`...), recorded as the status' error
        /// subtype.
        subtype: String,
        /// What happened.
        message: String,
    },
    /// Something outside the job failed: retrying may help.
    #[error("external error ({subtype}): {message}")]
    External {
        /// Short class of the error (`storage`, `exit code 2`, `timeout`...).
        subtype: String,
        /// What happened.
        message: String,
    },
}

impl AttemptFailure {
    /// An internal (final) failure.
    pub fn internal(subtype: impl Into<String>, message: impl Into<String>) -> Self {
        AttemptFailure::Internal {
            subtype: subtype.into(),
            message: message.into(),
        }
    }

    /// An external (retryable) failure.
    pub fn external(subtype: impl Into<String>, message: impl Into<String>) -> Self {
        AttemptFailure::External {
            subtype: subtype.into(),
            message: message.into(),
        }
    }

    /// The failure of `class` (`External` for [`ExitClass::ExternalError`], `Internal` for any
    /// other class) with `subtype` and `message`.
    pub fn of_class(
        class: ExitClass,
        subtype: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        match class {
            ExitClass::ExternalError => AttemptFailure::external(subtype, message),
            _ => AttemptFailure::internal(subtype, message),
        }
    }

    /// Whether another attempt may help.
    pub fn is_external(&self) -> bool {
        matches!(self, AttemptFailure::External { .. })
    }

    /// The exit class a worker reports for this failure.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            AttemptFailure::Internal { .. } => ExitClass::InternalError,
            AttemptFailure::External { .. } => ExitClass::ExternalError,
        }
    }

    /// The short class of the failure.
    pub fn subtype(&self) -> &str {
        match self {
            AttemptFailure::Internal { subtype, .. } | AttemptFailure::External { subtype, .. } => {
                subtype
            }
        }
    }

    /// What happened.
    pub fn message(&self) -> &str {
        match self {
            AttemptFailure::Internal { message, .. } | AttemptFailure::External { message, .. } => {
                message
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_its_class_subtype_and_message() {
        let external = AttemptFailure::external("storage", "S3 down");
        assert!(external.is_external());
        assert_eq!(external.exit_class(), ExitClass::ExternalError);
        assert_eq!(
            (external.subtype(), external.message()),
            ("storage", "S3 down")
        );
        assert_eq!(external.to_string(), "external error (storage): S3 down");
        let internal = AttemptFailure::of_class(ExitClass::InternalError, "inputs", "bad name");
        assert_eq!(internal, AttemptFailure::internal("inputs", "bad name"));
        assert!(!internal.is_external());
        assert_eq!(internal.exit_class(), ExitClass::InternalError);
        assert_eq!(
            AttemptFailure::of_class(ExitClass::ExternalError, "x", "y"),
            AttemptFailure::external("x", "y")
        );
    }
}

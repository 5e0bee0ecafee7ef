//! Why a run could not be carried out, classified for the retry policy.
//!
//! Transient (the attempt exits 2 and is retried): the Docker engine is unreachable or fails on its
//! side (HTTP 5xx, broken connection, time-out), the work directory cannot be prepared (disk), a
//! process cannot be started for want of resources. Internal (reported, not retried): the image is
//! not present on the engine (images are never pulled, so retrying on the same node cannot help),
//! the engine refuses the request (HTTP 4xx, e.g. a program missing from the image), the program is
//! missing on the host, the code's user cannot enter its work directory, the code wrote more than
//! its disk limit (it would again), or the spec is invalid (root user, empty command).

use std::path::PathBuf;

use swath_domain::attempt::AttemptFailure;

/// A failure to run the scientific code (as opposed to the code failing, which is a
/// [`RunOutcome`](super::RunOutcome)).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No Docker engine answers (socket missing, connection refused or reset, time-out).
    #[error("the Docker engine is unreachable: {0}")]
    EngineUnavailable(String),
    /// The engine answered with an error.
    #[error("the Docker engine failed to {action}: {message}")]
    Engine {
        /// What was asked, e.g. `create the container`.
        action: &'static str,
        /// The HTTP status of the engine's answer, if it answered.
        status: Option<u16>,
        /// The engine's message.
        message: String,
    },
    /// The image is not on the engine, and images are never pulled.
    #[error("image {image} is not present on the Docker engine (images are never pulled)")]
    ImageNotFound {
        /// The reference asked for.
        image: String,
    },
    /// The program could not be started.
    #[error("cannot start {program} as user {user} in the work directory {}: {source}", work_dir.display())]
    Spawn {
        /// `command[0]`.
        program: String,
        /// `uid:gid` it was to run as.
        user: String,
        /// Where it was to run.
        work_dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The user the code runs as cannot reach its work directory: a directory on the way is not
    /// searchable by it (a deployment fault: retrying on the same setup cannot help).
    #[error("user {user} cannot enter the work directory {}: {}", path.display(), reason)]
    WorkDirAccess {
        /// The work directory.
        path: PathBuf,
        /// `uid:gid` of the code.
        user: String,
        /// Which directory stops it, and why.
        reason: String,
    },
    /// The work directory could not be prepared.
    #[error("work directory {path}: {source}")]
    WorkDir {
        /// The directory or file concerned.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The work directory grew past the spec's disk limit and the code was killed.
    #[error("the work directory {} grew to {} MiB, past its disk limit of {limit_mb} MiB: the code was stopped", path.display(), used_bytes >> 20)]
    DiskLimit {
        /// The work directory.
        path: PathBuf,
        /// What it held when measured.
        used_bytes: u64,
        /// The limit.
        limit_mb: u64,
    },
    /// The spec cannot be run as given.
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
}

impl RuntimeError {
    /// Whether retrying the attempt (on this node or another) may help.
    pub fn is_transient(&self) -> bool {
        match self {
            RuntimeError::EngineUnavailable(_) | RuntimeError::WorkDir { .. } => true,
            RuntimeError::Engine { status, .. } => status.is_none_or(|s| s >= 500),
            RuntimeError::Spawn { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            RuntimeError::ImageNotFound { .. }
            | RuntimeError::InvalidSpec(_)
            | RuntimeError::WorkDirAccess { .. }
            | RuntimeError::DiskLimit { .. } => false,
        }
    }

    /// Short class of the error, recorded as the status' error subtype.
    pub fn subtype(&self) -> &'static str {
        match self {
            RuntimeError::EngineUnavailable(_) => "docker unavailable",
            RuntimeError::Engine { .. } => "docker",
            RuntimeError::ImageNotFound { .. } => "image missing",
            RuntimeError::Spawn { .. } => "process start",
            RuntimeError::WorkDir { .. } => "work directory",
            RuntimeError::WorkDirAccess { .. } => "work directory access",
            RuntimeError::DiskLimit { .. } => "disk",
            RuntimeError::InvalidSpec(_) => "run spec",
        }
    }

    /// Classifies an error of the Docker client met while trying to `action`.
    pub(crate) fn from_docker(action: &'static str, e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code,
                message,
            } => RuntimeError::Engine {
                action,
                status: Some(status_code),
                message,
            },
            E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::HttpClientError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
            | E::DockerStreamError { .. } => {
                RuntimeError::EngineUnavailable(format!("{action}: {e}"))
            }
            other => RuntimeError::Engine {
                action,
                status: None,
                message: other.to_string(),
            },
        }
    }
}

impl From<RuntimeError> for AttemptFailure {
    fn from(e: RuntimeError) -> Self {
        if e.is_transient() {
            AttemptFailure::external(e.subtype(), e.to_string())
        } else {
            AttemptFailure::internal(e.subtype(), e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_down_is_transient_and_a_missing_image_is_not() {
        assert!(RuntimeError::EngineUnavailable("refused".into()).is_transient());
        assert!(!RuntimeError::ImageNotFound {
            image: "x:1".into()
        }
        .is_transient());
        let refused = RuntimeError::Engine {
            action: "start the container",
            status: Some(400),
            message: "executable file not found".into(),
        };
        assert!(!refused.is_transient());
        let broken = RuntimeError::Engine {
            action: "start the container",
            status: Some(500),
            message: "no space left on device".into(),
        };
        assert!(broken.is_transient());
    }

    #[test]
    fn maps_to_worker_errors_by_transience() {
        let e: AttemptFailure = RuntimeError::EngineUnavailable("gone".into()).into();
        assert!(matches!(e, AttemptFailure::External { .. }));
        let e: AttemptFailure = RuntimeError::InvalidSpec("root".into()).into();
        assert!(matches!(e, AttemptFailure::Internal { .. }));
    }

    #[test]
    fn a_missing_program_is_internal() {
        let e = RuntimeError::Spawn {
            program: "nope".into(),
            user: "65534:65534".into(),
            work_dir: "/work/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!e.is_transient());
        assert!(
            e.to_string().starts_with(
                "cannot start nope as user 65534:65534 in the work directory /work/x: "
            ),
            "{e}"
        );
    }
}

//! Storage errors, each naming the URL (or local path) it concerns, classified for retries.

use std::path::PathBuf;

use swath_domain::attempt::AttemptFailure;

/// Why a storage operation failed.
///
/// [`StorageError::is_transient`] tells whether the attempt may succeed when retried (the worker
/// then exits with the retry code): storage unreachable or overloaded, timeouts, transfers cut
/// short. Configuration problems, refused access, missing buckets or required inputs and local
/// disk errors are permanent.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URL cannot name a store.
    #[error("invalid storage URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store cannot be configured (missing credentials, bad endpoint).
    #[error("cannot configure the store for `{url}`: {reason}")]
    Config {
        /// The store's URL.
        url: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// A required input has no object under its prefix.
    #[error("required input `{url}` is missing: no object under that prefix")]
    MissingInput {
        /// The input's URL.
        url: String,
    },
    /// The bucket or object does not exist.
    #[error("`{url}` does not exist: {message}")]
    NotFound {
        /// The bucket's or object's URL.
        url: String,
        /// The store's words.
        message: String,
    },
    /// The store refused the credentials or the access.
    #[error("access to `{url}` refused: {message}")]
    AccessDenied {
        /// The URL accessed.
        url: String,
        /// The store's words.
        message: String,
    },
    /// The store cannot be reached, is overloaded or failed on its side (connection refused or
    /// reset, 5xx, throttling).
    #[error("storage unavailable for `{url}`: {message}")]
    Unavailable {
        /// The URL accessed.
        url: String,
        /// What happened.
        message: String,
    },
    /// A request or transfer took too long.
    #[error("timed out on `{url}`: {message}")]
    Timeout {
        /// The URL accessed.
        url: String,
        /// What timed out.
        message: String,
    },
    /// A transfer ended with other bytes than the store announced (size or checksum).
    #[error("`{url}` failed verification: {message}")]
    Integrity {
        /// The object's URL.
        url: String,
        /// Expected and actual values.
        message: String,
    },
    /// The store rejected the request for another reason (4xx).
    #[error("`{url}` rejected by the store ({code}): {message}")]
    Rejected {
        /// The URL accessed.
        url: String,
        /// The store's error code.
        code: String,
        /// The store's words.
        message: String,
    },
    /// A key cannot be mapped to a local path (empty, `.` or `..` segments).
    #[error("key `{key}` under `{url}` cannot be a local path: {reason}")]
    InvalidKey {
        /// The store's URL.
        url: String,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("local file `{}`: {source}", path.display())]
    Local {
        /// The local path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether retrying the attempt later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Unavailable { .. }
            | StorageError::Timeout { .. }
            | StorageError::Integrity { .. } => true,
            StorageError::InvalidUrl { .. }
            | StorageError::Config { .. }
            | StorageError::MissingInput { .. }
            | StorageError::NotFound { .. }
            | StorageError::AccessDenied { .. }
            | StorageError::Rejected { .. }
            | StorageError::InvalidKey { .. }
            | StorageError::Local { .. } => false,
        }
    }

    /// The same error with `context` (which part of a transfer) before the store's words.
    pub(crate) fn context(mut self, context: &str) -> StorageError {
        match &mut self {
            StorageError::InvalidUrl { reason, .. }
            | StorageError::Config { reason, .. }
            | StorageError::InvalidKey { reason, .. } => *reason = format!("{context}: {reason}"),
            StorageError::NotFound { message, .. }
            | StorageError::AccessDenied { message, .. }
            | StorageError::Unavailable { message, .. }
            | StorageError::Timeout { message, .. }
            | StorageError::Integrity { message, .. }
            | StorageError::Rejected { message, .. } => *message = format!("{context}: {message}"),
            StorageError::MissingInput { .. } | StorageError::Local { .. } => {}
        }
        self
    }

    pub(crate) fn local(path: impl Into<PathBuf>, source: std::io::Error) -> StorageError {
        StorageError::Local {
            path: path.into(),
            source,
        }
    }
}

impl From<StorageError> for AttemptFailure {
    /// Transient storage errors ask for a retry (external), the others are final (internal).
    fn from(e: StorageError) -> Self {
        if e.is_transient() {
            AttemptFailure::external("storage", e.to_string())
        } else {
            AttemptFailure::internal("storage", e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_url_and_classify() {
        let e = StorageError::Unavailable {
            url: "s3://b/k".into(),
            message: "connection refused".into(),
        };
        assert!(e.is_transient());
        assert!(e.to_string().contains("s3://b/k"), "{e}");
        let e = StorageError::MissingInput {
            url: "s3://b/in".into(),
        };
        assert!(!e.is_transient());
        assert!(e.to_string().contains("s3://b/in"), "{e}");
        let e = StorageError::local("/x/y", std::io::Error::other("disk full"));
        assert!(!e.is_transient());
        assert!(e.to_string().contains("/x/y"), "{e}");
    }
}

//! The worker protocol's messages, shared by the orchestrator (which serves them under
//! `/api/v1/worker/jobs/{id}/attempts/{attempt}/...`) and the worker (which sends them).
//!
//! - `GET task` answers an [`AttemptTask`];
//! - `POST status` takes a [`StatusReport`];
//! - `POST result` takes a [`ResultReport`];
//! - both answer a [`ReportAnswer`].

use serde::{Deserialize, Serialize};

use crate::exit_codes::ExitClass;
use crate::job::OutputProduct;
use crate::template::WorkerTask;
use crate::JobStatus;

/// What a worker is given for one attempt: the job type's task, with storage locations resolved to
/// URLs (`s3://bucket/key` or `file:///path`) and the flavor's limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptTask {
    /// The job type's task (inputs' `source` and outputs' `destination_prefix` are URLs).
    #[serde(flatten)]
    pub task: WorkerTask,
    /// The job's unique id: the worker's directory is `<work root>/<uid>`.
    pub uid: uuid::Uuid,
    /// CPU cores the scientific code may use.
    pub cpus: u32,
    /// Memory the scientific code may use, in MiB.
    pub memory_mb: u64,
    /// Scratch disk of the attempt (the flavor's), in MiB: the worker stops the code when its work
    /// directory grows past it. 0 means no limit (and is what an orchestrator that does not send
    /// it means).
    #[serde(default)]
    pub disk_mb: u64,
}

/// A status a worker reports.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// `started`, `pre_processing`, `processing` or `post_processing`.
    pub status: JobStatus,
    /// What the worker is doing.
    #[serde(default)]
    pub message: Option<String>,
}

/// An error a worker reports with a failed result.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedError {
    /// Short class (`storage`, `docker`, `exit code 1`...).
    pub subtype: String,
    /// What happened.
    pub message: String,
}

/// The result of an attempt.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResultReport {
    /// How the attempt ended.
    pub outcome: ExitClass,
    /// Exit code of the scientific code, if it ran.
    #[serde(default)]
    pub return_code: Option<i32>,
    /// Products written (success only).
    #[serde(default)]
    pub products: Vec<OutputProduct>,
    /// What ran (image digest...).
    #[serde(default)]
    pub software_version: Option<String>,
    /// The error, for failed outcomes.
    #[serde(default)]
    pub error: Option<ReportedError>,
}

/// The job's state after a report.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ReportAnswer {
    /// The job's status now.
    pub status: JobStatus,
    /// The job's attempt now (higher than the reported one after a retry was scheduled).
    pub attempt: i32,
}

/// The path of a store URL inside its bucket or root: `s3://bucket/a/b/` gives `a/b/`,
/// `file:///data/out/` gives `data/out/`. Workers report each product's `path` this way, and the
/// orchestrator checks it against the task's output prefixes read the same way.
pub fn path_in_store(url: &str) -> String {
    match url.split_once("://") {
        Some(("s3", rest)) => rest.split_once('/').map_or("", |(_, p)| p).to_string(),
        Some((_, rest)) => rest.trim_start_matches('/').to_string(),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_bucket_or_root() {
        assert_eq!(path_in_store("s3://hrsi/CLMS/FSC/x"), "CLMS/FSC/x");
        assert_eq!(path_in_store("file:///data/out/FSC/x"), "data/out/FSC/x");
    }

    #[test]
    fn product_paths_are_relative_to_the_bucket_or_the_file_system_root() {
        assert_eq!(path_in_store("s3://hrsi/CLMS/FSC/"), "CLMS/FSC/");
        assert_eq!(path_in_store("file:///data/out/test/"), "data/out/test/");
    }
}

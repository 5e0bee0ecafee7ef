//! The worker protocol's messages, shared by the orchestrator (which serves them under
//! `/api/v1/worker/jobs/{id}/attempts/{attempt}/...`) and the worker (which sends them).
//!
//! - `GET task` answers an [`AttemptTask`];
//! - `POST status` takes a [`StatusReport`];
//! - `POST products` takes a [`ProductReservation`] and answers a [`ReservedProducts`] (before any
//!   product is uploaded: see [`ProductReservation`]);
//! - `POST result` takes a [`ResultReport`];
//! - status and result answer a [`ReportAnswer`].

use serde::{Deserialize, Serialize};

use crate::attempt::AttemptFailure;
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

/// The result of an attempt.
///
/// On the wire, the failure is an `error` object with only its `subtype` and `message`: its class
/// is the report's `outcome` (an `external_error` outcome makes an external failure, any other an
/// internal one).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(from = "wire::ResultReport", into = "wire::ResultReport")]
pub struct ResultReport {
    /// How the attempt ended.
    pub outcome: ExitClass,
    /// Exit code of the scientific code, if it ran.
    pub return_code: Option<i32>,
    /// Products written (success only).
    pub products: Vec<OutputProduct>,
    /// What ran (image digest...).
    pub software_version: Option<String>,
    /// What went wrong, for failed outcomes; `None` when only the exit code tells.
    pub failure: Option<AttemptFailure>,
}

impl ResultReport {
    /// The report of an attempt that failed with `failure` (its outcome is the failure's class).
    pub fn failed(failure: AttemptFailure) -> Self {
        ResultReport {
            outcome: failure.exit_class(),
            return_code: None,
            products: Vec::new(),
            software_version: None,
            failure: Some(failure),
        }
    }

    /// Whether the attempt succeeded (with products or with nothing to produce).
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, ExitClass::Success | ExitClass::NoProduct)
    }
}

/// The wire shape of a [`ResultReport`], which workers and orchestrators of every version share.
mod wire {
    use serde::{Deserialize, Serialize};

    use crate::attempt::AttemptFailure;
    use crate::exit_codes::ExitClass;
    use crate::job::OutputProduct;

    /// The result of an attempt, as sent.
    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ResultReport {
        pub outcome: ExitClass,
        #[serde(default)]
        pub return_code: Option<i32>,
        #[serde(default)]
        pub products: Vec<OutputProduct>,
        #[serde(default)]
        pub software_version: Option<String>,
        #[serde(default)]
        pub error: Option<ReportedError>,
    }

    /// A failure as sent: its class is the report's outcome.
    #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ReportedError {
        pub subtype: String,
        pub message: String,
    }

    impl From<ResultReport> for super::ResultReport {
        fn from(wire: ResultReport) -> Self {
            super::ResultReport {
                outcome: wire.outcome,
                return_code: wire.return_code,
                products: wire.products,
                software_version: wire.software_version,
                failure: wire
                    .error
                    .map(|e| AttemptFailure::of_class(wire.outcome, e.subtype, e.message)),
            }
        }
    }

    impl From<super::ResultReport> for ResultReport {
        fn from(report: super::ResultReport) -> Self {
            ResultReport {
                outcome: report.outcome,
                return_code: report.return_code,
                products: report.products,
                software_version: report.software_version,
                error: report.failure.map(|f| ReportedError {
                    subtype: f.subtype().to_string(),
                    message: f.message().to_string(),
                }),
            }
        }
    }
}

/// The products a successful attempt is about to upload, sent before anything is uploaded. The
/// orchestrator reserves each product's identity (its name without the quality flag, see
/// [`crate::identity`]) for the job: a product that another live job holds is refused with 409, the
/// job ends in `internal_error` naming the other job, and the worker uploads nothing. The same job
/// reserving again (another attempt, a re-run that replaces an earlier run's products) is granted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductReservation {
    /// The products, each with the path it will be committed at.
    pub products: Vec<PlannedProduct>,
}

/// One product about to be uploaded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedProduct {
    /// Its kind (one of the task's outputs).
    pub kind: String,
    /// Its path in its store, as the result will report it (see [`path_in_store`]).
    pub path: String,
}

/// The answer to a [`ProductReservation`]: every product is reserved for the job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReservedProducts {
    /// One entry per reserved product, in the order asked.
    pub products: Vec<ReservedProduct>,
}

/// One reserved product.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReservedProduct {
    /// Its path.
    pub path: String,
    /// Its identity.
    pub identity: String,
    /// The path of the product it replaces, when that product is at another path (another quality
    /// flag): the worker deletes it once the new one is committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
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

    /// The JSON a report had before the failure became one type, byte for byte: workers and
    /// orchestrators of both sides of that change still understand each other.
    #[test]
    fn result_reports_keep_their_wire_shape() {
        let failed = ResultReport {
            return_code: Some(2),
            software_version: Some("img@sha256:ab".into()),
            ..ResultReport::failed(AttemptFailure::external("storage", "S3 down"))
        };
        let ok = ResultReport {
            outcome: ExitClass::Success,
            return_code: Some(0),
            products: vec![OutputProduct {
                kind: "fsc".into(),
                path: "CLMS/FSC/x".into(),
                size_bytes: Some(12),
                completed_at: None,
                infos: serde_json::json!({"a": 1}),
                published_at: None,
            }],
            software_version: None,
            failure: None,
        };
        let bare = ResultReport {
            outcome: ExitClass::InternalError,
            return_code: None,
            products: Vec::new(),
            software_version: None,
            failure: None,
        };
        let expected = [
            r#"{"outcome":"external_error","return_code":2,"products":[],"software_version":"img@sha256:ab","error":{"subtype":"storage","message":"S3 down"}}"#,
            r#"{"outcome":"success","return_code":0,"products":[{"kind":"fsc","path":"CLMS/FSC/x","size_bytes":12,"completed_at":null,"infos":{"a":1},"published_at":null}],"software_version":null,"error":null}"#,
            r#"{"outcome":"internal_error","return_code":null,"products":[],"software_version":null,"error":null}"#,
        ];
        for (report, json) in [failed, ok, bare].into_iter().zip(expected) {
            assert_eq!(serde_json::to_string(&report).unwrap(), json);
            let back: ResultReport = serde_json::from_str(json).unwrap();
            assert_eq!(back, report);
        }
    }

    #[test]
    fn a_reported_error_takes_its_class_from_the_outcome() {
        let report: ResultReport = serde_json::from_str(
            r#"{"outcome":"internal_error","error":{"subtype":"inputs","message":"bad"}}"#,
        )
        .unwrap();
        assert_eq!(
            report.failure,
            Some(AttemptFailure::internal("inputs", "bad"))
        );
        assert_eq!(report.return_code, None);
        let unknown = serde_json::from_str::<ResultReport>(r#"{"outcome":"success","extra":1}"#);
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
        let unknown = serde_json::from_str::<ResultReport>(
            r#"{"outcome":"external_error","error":{"subtype":"a","message":"b","class":"x"}}"#,
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn product_paths_are_relative_to_the_bucket_or_the_file_system_root() {
        assert_eq!(path_in_store("s3://hrsi/CLMS/FSC/"), "CLMS/FSC/");
        assert_eq!(path_in_store("file:///data/out/test/"), "data/out/test/");
    }
}

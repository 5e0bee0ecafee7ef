//! The job model: one row of the `jobs` table, and what a job type hands over to create one.
//!
//! Type-specific inputs live in `params` (JSON, (de)serialized by each job type with serde); worker
//! outputs live in `results` ([`JobResults`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::exit_codes::ExitClass;
use crate::listing::CatalogueProduct;
use crate::status::JobStatus;

/// Dispatch order: `nrt` jobs go first, then `delayed`, then `reprocessing`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum JobPriority {
    /// Near real time: the input reached the catalogue on time.
    #[default]
    Nrt,
    /// The input arrived late.
    Delayed,
    /// Reprocessing of old inputs (campaigns, backfills).
    Reprocessing,
}

impl JobPriority {
    /// The name stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobPriority::Nrt => "nrt",
            JobPriority::Delayed => "delayed",
            JobPriority::Reprocessing => "reprocessing",
        }
    }
}

impl fmt::Display for JobPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown priority name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0:?}: expected nrt, delayed or reprocessing")]
pub struct UnknownPriority(pub String);

impl FromStr for JobPriority {
    type Err = UnknownPriority;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nrt" => Ok(JobPriority::Nrt),
            "delayed" => Ok(JobPriority::Delayed),
            "reprocessing" => Ok(JobPriority::Reprocessing),
            other => Err(UnknownPriority(other.to_string())),
        }
    }
}

/// A job as stored in the `jobs` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Database id.
    pub id: i64,
    /// Unique id used for work directories and storage paths.
    pub uid: Uuid,
    /// The job type's name.
    pub job_type: String,
    /// Unique human name within the job type, e.g. `32TLR-2021-04-13`.
    pub name: String,
    /// Input product id (canonical product name).
    pub product_id: Option<String>,
    /// Tile the input covers (S2 MGRS tile, no `T` prefix).
    pub tile_id: Option<String>,
    /// Where the input lives, exactly as the catalogue gave it.
    pub input_path: Option<String>,
    /// Sensing time of the input.
    pub measured_at: Option<DateTime<Utc>>,
    /// When the input was published in the catalogue.
    pub input_published_at: Option<DateTime<Utc>>,
    /// Where the outputs were written.
    pub output_path: Option<String>,
    /// When the outputs were announced.
    pub output_published_at: Option<DateTime<Utc>>,
    /// Dispatch priority.
    pub priority: JobPriority,
    /// Current status, kept in step with the history by the database.
    pub status: JobStatus,
    /// When the current status was entered.
    pub status_changed_at: DateTime<Utc>,
    /// Error subtype of the last status change, if it was an error.
    pub status_error_subtype: Option<String>,
    /// Message of the last status change.
    pub status_message: Option<String>,
    /// Type-specific inputs.
    pub params: serde_json::Value,
    /// Worker outputs.
    pub results: Option<JobResults>,
    /// Current attempt, starting at 1.
    pub attempt: i32,
    /// Attempts allowed before an external error becomes terminal.
    pub max_attempts: i32,
    /// Earliest time of the next automatic attempt.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Parent this child is attached to (the parent waits for it).
    pub parent_id: Option<i64>,
    /// Job that spawned this best-effort child (traceability only).
    pub spawned_by: Option<i64>,
    /// The original job that this one retries.
    pub retry_of: Option<i64>,
    /// The reprocessing campaign that created it (its retries keep it).
    #[serde(default)]
    pub campaign_id: Option<i64>,
    /// When the catalogue withdrew its input, if it did.
    #[serde(default)]
    pub input_withdrawn_at: Option<DateTime<Utc>>,
    /// Why the catalogue withdrew its input (e.g. `Duplicated product`).
    #[serde(default)]
    pub input_withdrawal_reason: Option<String>,
    /// The job this one waits for while `configured`.
    pub depends_on: Option<i64>,
    /// When a `configured` job is examined again at the latest.
    pub recheck_at: Option<DateTime<Utc>>,
    /// What actually ran (image digest, git commit), pinned for retries.
    pub software_version: Option<String>,
    /// Executor reference, e.g. the dispatched Nomad job id.
    pub executor_ref: Option<String>,
    /// Orchestrator instance that owns the job now.
    pub service_id: Option<Uuid>,
    /// Tag of the owning instance (host, name).
    pub tag: Option<serde_json::Value>,
    /// Until when the owner's lease holds.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
}

impl Job {
    /// The type-specific parameters, decoded.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.params.clone())
    }

    /// The idempotency token of the current attempt: `<uid>-<attempt>`.
    pub fn attempt_token(&self) -> String {
        format!("{}-{}", self.uid, self.attempt)
    }
}

/// What a job type hands over to create a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The job type's name.
    pub job_type: String,
    /// Unique human name within the job type.
    pub name: String,
    /// Input product id.
    pub product_id: Option<String>,
    /// Tile of the input.
    pub tile_id: Option<String>,
    /// Where the input lives.
    pub input_path: Option<String>,
    /// Sensing time.
    pub measured_at: Option<DateTime<Utc>>,
    /// Publication time of the input in the catalogue.
    pub input_published_at: Option<DateTime<Utc>>,
    /// Dispatch priority.
    pub priority: JobPriority,
    /// First status: `initialized`, or `cancelled` for inputs that will not be processed.
    pub initial_status: JobStatus,
    /// Why the job starts in `initial_status` (recorded in its history).
    pub initial_message: Option<String>,
    /// Type-specific inputs.
    pub params: serde_json::Value,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Parent this child is attached to.
    pub parent_id: Option<i64>,
    /// Job that spawned this best-effort child.
    pub spawned_by: Option<i64>,
    /// The original job that this one retries.
    pub retry_of: Option<i64>,
    /// The reprocessing campaign that creates it.
    #[serde(default)]
    pub campaign_id: Option<i64>,
    /// Software version pinned for this job (retries keep the original's).
    pub software_version: Option<String>,
}

impl NewJob {
    /// A new `initialized` job with default priority and no input.
    pub fn new(job_type: impl Into<String>, name: impl Into<String>, max_attempts: i32) -> Self {
        NewJob {
            job_type: job_type.into(),
            name: name.into(),
            product_id: None,
            tile_id: None,
            input_path: None,
            measured_at: None,
            input_published_at: None,
            priority: JobPriority::Nrt,
            initial_status: JobStatus::Initialized,
            initial_message: None,
            params: serde_json::Value::Object(Default::default()),
            max_attempts,
            parent_id: None,
            spawned_by: None,
            retry_of: None,
            campaign_id: None,
            software_version: None,
        }
    }

    /// A new `initialized` job named `product_id` for a catalogue product: the product id, the input
    /// path and the publication date come from the listing.
    pub fn for_product(
        job_type: impl Into<String>,
        product_id: String,
        product: &CatalogueProduct,
        max_attempts: i32,
    ) -> Self {
        let mut job = NewJob::new(job_type, product_id.clone(), max_attempts);
        job.product_id = Some(product_id);
        job.input_path = Some(product.input_path.clone());
        job.input_published_at = Some(product.published_at);
        job
    }
}

/// What a worker reported for the last attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobResults {
    /// Exit code of the scientific code.
    pub return_code: Option<i32>,
    /// How the exit code was classified.
    pub outcome: Option<ExitClass>,
    /// Output products written by the attempt.
    #[serde(default)]
    pub products: Vec<OutputProduct>,
}

/// One output product of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputProduct {
    /// Product kind, one of the job type's `output_products` (e.g. `fsc`).
    pub kind: String,
    /// Path of the product inside the output bucket, e.g.
    /// `CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1`.
    pub path: String,
    /// Total size in bytes.
    pub size_bytes: Option<u64>,
    /// When the product was completed by the worker.
    pub completed_at: Option<DateTime<Utc>>,
    /// The metadata file the scientific code wrote (`dias_catalog_submit.json`).
    #[serde(default)]
    pub infos: serde_json::Value,
    /// When the broker confirmed its publication.
    pub published_at: Option<DateTime<Utc>>,
}

//! The `JobTemplate` trait: a job type as the orchestrator sees it, with its parameters erased to
//! JSON, and the data that crosses it (spec, created jobs, configuration outcomes, worker tasks).
//!
//! Job types do not implement `JobTemplate` themselves: they implement the typed
//! [`crate::job_type::JobType`], and its one adapter implements `JobTemplate` for them. The method
//! names are the original system's (`get_jobs_to_create`, `configure_single_job`,
//! `generated_a_product`...), so that someone who knows it finds them. Constants that the original kept
//! on the class live in one [`JobTypeSpec`] value, which keeps the trait usable as `dyn`.
//!
//! Three seed members have no method here, on purpose:
//! - `get_last_inserted_job` becomes the ingestion cursor that the orchestrator persists per job type
//!   and catalogue source;
//! - `from_database_value` becomes serde on each job type's typed `params`;
//! - `GET_JOBS_WITH_STATUS_PROCEDURE_NAME` becomes the single SQL function
//!   `jobs_with_last_status(job_type, statuses[])`.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::children::ChildJob;
use crate::context::{ContextError, JobContext};
use crate::exit_codes::ExitCodeTable;
use crate::job::{Job, NewJob};
use crate::listing::CatalogueProduct;
use crate::publication::{ProductPublication, PublicationError, PublicationTarget};
use crate::status::JobStatus;

/// Which satellite family a job type consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InputProductType {
    /// Sentinel-1 products.
    S1,
    /// Sentinel-2 products.
    S2,
    /// Any product (smoke tests).
    Any,
}

/// A job type's descriptive data (the original's class constants).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTypeSpec {
    /// Job type name (was `JOB_NAME`), e.g. `fsc_rlie`.
    pub name: String,
    /// Input family (was `INPUT_PRODUCT_TYPE`).
    pub input_product_type: InputProductType,
    /// The original system's Nomad job for this type (`NOMAD_JOB_NAME`), kept for logs and
    /// migration notes: swath's Nomad executor dispatches to one worker job per flavor instead.
    pub nomad_job: String,
    /// Worker flavor it needs (was `WORKER_FLAVOR_NAME`).
    pub worker_flavor: String,
    /// Output product kinds, one publication message each (was `OUTPUT_PRODUCTS_LIST`).
    pub output_products: Vec<String>,
    /// Attempts allowed before an external error becomes terminal.
    pub max_attempts: i32,
    /// Inputs sensed before this date are recorded as `cancelled` (reprocessing context).
    pub processing_start_date: Option<DateTime<Utc>>,
    /// Container image of the scientific code (pinned by digest in production).
    pub image: String,
    /// Command run in the image; `{params}` is replaced by the path of the parameter file.
    pub command: Vec<String>,
    /// Wall-clock limit of the scientific code.
    #[serde(with = "duration_secs")]
    pub processing_timeout: Duration,
    /// Whether the scientific code needs network access.
    pub network: bool,
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

/// A listed product that a job type will not turn into a job, and why. It is quarantined, not lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedProduct {
    /// The product name as listed.
    pub name: String,
    /// Why it was rejected.
    pub reason: String,
}

/// An existing job whose input a newer version replaces; it is cancelled if it has not been
/// dispatched yet (compare-and-set on the status and attempt seen here).
#[derive(Debug, Clone, PartialEq)]
pub struct Superseded {
    /// The job.
    pub job_id: i64,
    /// Its status when it was looked up.
    pub status: JobStatus,
    /// Its attempt when it was looked up.
    pub attempt: i32,
    /// The product name that replaces its input.
    pub by: String,
    /// Why it is replaced.
    pub why: SupersededWhy,
}

/// Why ingestion cancels a waiting job in favour of a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupersededWhy {
    /// A newer version of its input was listed.
    NewerVersion,
    /// Another partial-tile product of its datatake was listed: the new job has them all.
    MorePartials,
}

impl std::fmt::Display for SupersededWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SupersededWhy::NewerVersion => "a newer version of its input",
            SupersededWhy::MorePartials => "a job with every partial-tile product of its datatake",
        })
    }
}

/// The result of [`JobTemplate::get_jobs_to_create`] for one page of products.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobsToCreate {
    /// Jobs to insert (some may start `cancelled`, e.g. reprocessed or superseded products).
    pub jobs: Vec<NewJob>,
    /// Existing jobs to cancel because a newer version of their input arrived.
    pub superseded: Vec<Superseded>,
    /// Products that are not for this job type (wrong family, level, area): dropped on purpose.
    pub skipped: Vec<RejectedProduct>,
    /// Products that could not be understood (bad names, bad fields): to be quarantined.
    pub rejected: Vec<RejectedProduct>,
}

/// What configuration decided for one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Configuration {
    /// The job can be dispatched.
    Ready,
    /// The job waits (stays `configured`). When it waits for another job (`on`), it is examined
    /// again as soon as that job settles (processed, done, failed or cancelled); otherwise only by
    /// the configuration loop's slow safety pass.
    Wait {
        /// Why it waits.
        reason: String,
        /// The job it waits for.
        on: Option<i64>,
    },
    /// The job will not run.
    Cancel {
        /// Why.
        reason: String,
    },
    /// The job cannot be configured: an internal error.
    Error {
        /// Why.
        reason: String,
    },
}

/// A configuration decision plus the updated parameters, if configuration changed them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigureOutcome {
    /// The decision.
    pub decision: Configuration,
    /// New `params` to store with the decision.
    pub params: Option<serde_json::Value>,
}

/// One input product a worker must stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInput {
    /// Directory name under `/work/<uid>/inputs`.
    pub name: String,
    /// Where it lives (catalogue path or storage URL).
    pub source: String,
    /// Whether the attempt fails without it (auxiliary data may be optional).
    pub required: bool,
}

/// One output kind a worker must upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// Product kind (one of the job type's `output_products`).
    pub kind: String,
    /// Prefix inside the output bucket under which the product directory is uploaded.
    pub destination_prefix: String,
}

/// Everything a worker needs to run one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerTask {
    /// The job's database id.
    pub job_id: i64,
    /// The job type.
    pub job_type: String,
    /// The attempt this task is for.
    pub attempt: i32,
    /// Image of the scientific code.
    pub image: String,
    /// Command to run.
    pub command: Vec<String>,
    /// Inputs to stage.
    pub inputs: Vec<TaskInput>,
    /// Outputs to upload.
    pub outputs: Vec<TaskOutput>,
    /// Worker flavor (CPU and memory limits).
    pub flavor: String,
    /// Wall-clock limit, in seconds.
    pub timeout_secs: u64,
    /// Whether the container gets network access.
    pub network: bool,
    /// How to classify the exit code.
    pub exit_codes: ExitCodeTable,
    /// Parameters written to the parameter file for the scientific code.
    pub parameters: serde_json::Value,
}

/// Why a job type could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum JobTypeError {
    /// A lookup in the orchestrator failed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The job's `params` do not decode as this job type's parameters.
    #[error("job {job_id} ({job_type}): params do not match the job type: {source}")]
    InvalidParams {
        /// The job.
        job_id: i64,
        /// Its type.
        job_type: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The job lacks something the job type needs.
    #[error("job {job_id} ({job_type}): {problem}")]
    InvalidJob {
        /// The job.
        job_id: i64,
        /// Its type.
        job_type: String,
        /// What is missing or wrong.
        problem: String,
    },
}

impl JobTypeError {
    /// Decodes a job's parameters, mapping a failure to [`JobTypeError::InvalidParams`].
    pub fn decode_params<T: serde::de::DeserializeOwned>(job: &Job) -> Result<T, JobTypeError> {
        job.params_as()
            .map_err(|source| JobTypeError::InvalidParams {
                job_id: job.id,
                job_type: job.job_type.clone(),
                source,
            })
    }

    /// A [`JobTypeError::InvalidJob`] for `job`.
    pub fn invalid(job: &Job, problem: impl Into<String>) -> JobTypeError {
        JobTypeError::InvalidJob {
            job_id: job.id,
            job_type: job.job_type.clone(),
            problem: problem.into(),
        }
    }
}

/// The behaviour of one job type, with its parameters as JSON: what the registry holds (as
/// `Arc<dyn JobTemplate>`) and the orchestrator calls. It is implemented once, for every
/// [`crate::job_type::JobType`], by the adapter in [`crate::job_type`].
#[async_trait]
pub trait JobTemplate: Send + Sync + Debug {
    /// Descriptive data (name, input family, Nomad job, flavor, outputs...).
    fn spec(&self) -> &JobTypeSpec;

    /// How the scientific code's exit code is classified.
    fn exit_codes(&self) -> &ExitCodeTable;

    /// The longitude/latitude box `[west, south, east, north]` of the job type's area of interest,
    /// used to narrow catalogue queries (exact filtering happens in `get_jobs_to_create`).
    fn area_of_interest_bbox(&self) -> Option<[f64; 4]>;

    /// The new jobs for one page of catalogue products, after filtering and dedup against the
    /// database and within the page.
    async fn get_jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError>;

    /// Last changes to a job before it is inserted; `reprocessed` jobs start `cancelled`.
    fn job_pre_insertion_setup(&self, job: &mut NewJob, reprocessed: bool);

    /// Whether jobs of this type come from catalogue listings. Types whose jobs are only created by
    /// other jobs (children) answer `false`, and the poller never lists a catalogue for them.
    fn ingests(&self) -> bool;

    /// Checks `params` given for a new job of this type (e.g. through the API), naming what is wrong.
    fn check_params(&self, params: &serde_json::Value) -> Result<(), String>;

    /// The job types of the children [`JobTemplate::children_when_processed`] may create. They must
    /// be registered, and they run wherever this type runs.
    fn child_job_types(&self) -> Vec<String>;

    /// The children to create when `job` (with its results, entering `processed`) is processed.
    /// They are stored in the same transaction as the job's move to `processed`, so none is lost.
    fn children_when_processed(&self, job: &Job) -> Result<Vec<ChildJob>, JobTypeError>;

    /// Batch enrichment of newly created jobs before they are configured one by one.
    async fn configure_batch_jobs(
        &self,
        _ctx: &dyn JobContext,
        _jobs: &mut [Job],
    ) -> Result<(), JobTypeError> {
        Ok(())
    }

    /// Decides whether `job` is ready, waits for a dependency, is cancelled or is in error.
    async fn configure_single_job(
        &self,
        ctx: &dyn JobContext,
        job: &Job,
    ) -> Result<ConfigureOutcome, JobTypeError>;

    /// The task a worker runs for the job's current attempt.
    fn worker_task(&self, job: &Job) -> Result<WorkerTask, JobTypeError>;

    /// Whether the job produced something to publish.
    fn generated_a_product(&self, job: &Job) -> bool;

    /// One publication message per output product.
    fn get_products_publication_jsons(
        &self,
        job: &Job,
        target: &PublicationTarget,
    ) -> Result<Vec<ProductPublication>, PublicationError>;

    /// The other jobs whose output products `job` may replace (see [`crate::job_type::JobType::replaced_jobs`]).
    fn replaced_jobs(&self, job: &Job) -> Result<Vec<i64>, JobTypeError>;

    /// Records that `product` (a kind from `output_products`) was published at `at`.
    fn set_product_publication_date(
        &self,
        job: &mut Job,
        product: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PublicationError> {
        let entry = job
            .results
            .as_mut()
            .and_then(|r| r.products.iter_mut().find(|p| p.kind == product))
            .ok_or_else(|| PublicationError::UnknownProduct {
                job_id: job.id,
                product: product.to_string(),
            })?;
        entry.published_at = Some(at);
        Ok(())
    }
}

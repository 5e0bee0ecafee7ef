//! The typed job-type trait [`JobType`], and the one adapter that turns every `JobType` into the
//! type-erased [`JobTemplate`] that the registry holds and the orchestrator calls.
//!
//! A job type names its parameters once (`type Params`) and only supplies what is its own: which
//! products become jobs, how a job is configured, the inputs and outputs of its task and its
//! publication messages. The adapter does the rest, the same way for every type:
//! - it decodes `params` once per call, with one error text (`params: ...` for the API, "params do
//!   not match the job type" for a stored job), then runs [`JobType::validate`], whose errors name
//!   the field (`params.l1c_id: ...`);
//! - it re-encodes the parameters that configuration changed;
//! - it fills the fields of a [`WorkerTask`] that come from the spec and the job (id, attempt,
//!   image, command, flavor, limits, exit codes) and writes the parameter file as
//!   `{"job_type": ..., <extra entries>, "params": ...}`.
//!
//! Adding a job type is one file implementing [`JobType`] plus one line in the list of
//! [`crate::types::builtin_job_types`].

use std::fmt::Debug;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::children::ChildJob;
use crate::context::JobContext;
use crate::exit_codes::ExitCodeTable;
use crate::job::{Job, NewJob};
use crate::listing::CatalogueProduct;
use crate::publication::{ProductPublication, PublicationError, PublicationTarget};
use crate::template::{
    Configuration, ConfigureOutcome, JobTemplate, JobTypeError, JobTypeSpec, JobsToCreate,
    TaskInput, TaskOutput, WorkerTask,
};

/// The behaviour of one job type over its typed parameters. Every `JobType` is a [`JobTemplate`]
/// through the adapter below; the required methods are [`JobType::spec`],
/// [`JobType::exit_codes`], [`JobType::jobs_to_create`] and [`JobType::task`].
#[async_trait]
pub trait JobType: Send + Sync + Debug {
    /// The job's `params` as stored in the database and given to the scientific code.
    type Params: Serialize + DeserializeOwned + Send + Sync;

    /// Whether jobs of this type come from catalogue listings. Types whose jobs are only created by
    /// other jobs (children) set `false`, and the poller never lists a catalogue for them.
    const INGESTS: bool = true;

    /// Descriptive data (name, input family, flavor, outputs, limits...).
    fn spec(&self) -> &JobTypeSpec;

    /// How the scientific code's exit code is classified.
    fn exit_codes(&self) -> &ExitCodeTable;

    /// Checks decoded parameters beyond their shape, naming the field that is wrong
    /// (`params.<field>: ...`). It runs on API input, at configuration (a failure puts the job in
    /// error) and before a task is built (a failure refuses the task).
    fn validate(_params: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    /// The longitude/latitude box `[west, south, east, north]` of the area of interest, used to
    /// narrow catalogue queries.
    fn catalogue_bbox(&self) -> Option<[f64; 4]> {
        None
    }

    /// The new jobs for one page of catalogue products (see
    /// [`JobTemplate::get_jobs_to_create`]).
    async fn jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError>;

    /// Last changes to a job before it is inserted; `reprocessed` jobs (sensed before the processing
    /// start date) are usually recorded `cancelled`.
    fn before_insertion(&self, _job: &mut NewJob, _reprocessed: bool) {}

    /// The job types of the children [`JobType::children`] may create.
    fn child_types(&self) -> Vec<String> {
        Vec::new()
    }

    /// The children to create when `job` is processed.
    fn children(&self, _job: &Job) -> Result<Vec<ChildJob>, JobTypeError> {
        Ok(Vec::new())
    }

    /// Decides whether `job`, whose parameters decoded and validated, is ready, waits, is cancelled
    /// or is in error, possibly with changed parameters. By default it is ready as it is.
    async fn configure(
        &self,
        _ctx: &dyn JobContext,
        _job: &Job,
        _params: Self::Params,
    ) -> Result<Configured<Self::Params>, JobTypeError> {
        Ok(Configured::ready())
    }

    /// What is particular to the task of `job`: inputs, outputs and extra entries of the parameter
    /// file. The adapter fills the rest from the spec and the job.
    fn task(&self, job: &Job, params: &Self::Params) -> Result<TaskPlan, JobTypeError>;

    /// Whether a product of `kind` in the job's results is published (products that are not are
    /// kept for other jobs or stored beside the others).
    fn publishes(&self, _kind: &str) -> bool {
        true
    }

    /// The other jobs whose output products `job` replaces (at the same product identities) when
    /// it writes its own: the jobs of an earlier, incomplete run of the same inputs. By default
    /// none; a job may always replace its own products and those of jobs that ended in failure.
    fn replaced_jobs(&self, _job: &Job, _params: &Self::Params) -> Vec<i64> {
        Vec::new()
    }

    /// One publication message per published product of `job`. By default there is none.
    fn publications(
        &self,
        _job: &Job,
        _target: &PublicationTarget,
    ) -> Result<Vec<ProductPublication>, PublicationError> {
        Ok(Vec::new())
    }
}

/// What [`JobType::configure`] decided, with the typed parameters to store if they changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Configured<P> {
    /// The decision.
    pub decision: Configuration,
    /// New parameters to store with the decision.
    pub params: Option<P>,
}

impl<P> Configured<P> {
    /// Ready, parameters unchanged.
    pub fn ready() -> Self {
        Configured::decided(Configuration::Ready)
    }

    /// `decision`, parameters unchanged.
    pub fn decided(decision: Configuration) -> Self {
        Configured {
            decision,
            params: None,
        }
    }
}

/// The part of a [`WorkerTask`] that a job type supplies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPlan {
    /// Inputs to stage.
    pub inputs: Vec<TaskInput>,
    /// Outputs to upload.
    pub outputs: Vec<TaskOutput>,
    /// Entries of the parameter file besides `job_type` and `params`, in order.
    pub extra_parameters: serde_json::Map<String, serde_json::Value>,
}

impl TaskPlan {
    /// A plan with these inputs and outputs and no extra parameters.
    pub fn new(inputs: Vec<TaskInput>, outputs: Vec<TaskOutput>) -> Self {
        TaskPlan {
            inputs,
            outputs,
            extra_parameters: serde_json::Map::new(),
        }
    }

    /// Adds the entry `name` to the parameter file.
    pub fn with_parameter(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra_parameters.insert(name.to_string(), value);
        self
    }
}

/// Decodes `value` as the parameters of `T` and validates them, naming what is wrong: `params: ...`
/// when they do not decode, the field otherwise.
pub fn parse_params<T: JobType + ?Sized>(value: &serde_json::Value) -> Result<T::Params, String> {
    let params: T::Params =
        serde_json::from_value(value.clone()).map_err(|e| format!("params: {e}"))?;
    T::validate(&params)?;
    Ok(params)
}

/// The input path of `job` (where its catalogue product lives), which ingested jobs must have.
pub fn input_path(job: &Job) -> Result<String, JobTypeError> {
    job.input_path
        .clone()
        .ok_or_else(|| JobTypeError::invalid(job, "no input path"))
}

/// The encoding of parameters that could not be written back as JSON.
fn encode_params<P: Serialize>(job: &Job, params: &P) -> Result<serde_json::Value, JobTypeError> {
    serde_json::to_value(params).map_err(|source| JobTypeError::InvalidParams {
        job_id: job.id,
        job_type: job.job_type.clone(),
        source,
    })
}

/// The adapter: every typed job type is a type-erased [`JobTemplate`].
#[async_trait]
impl<T: JobType> JobTemplate for T {
    fn spec(&self) -> &JobTypeSpec {
        JobType::spec(self)
    }

    fn exit_codes(&self) -> &ExitCodeTable {
        JobType::exit_codes(self)
    }

    fn area_of_interest_bbox(&self) -> Option<[f64; 4]> {
        self.catalogue_bbox()
    }

    async fn get_jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError> {
        self.jobs_to_create(ctx, products).await
    }

    fn job_pre_insertion_setup(&self, job: &mut NewJob, reprocessed: bool) {
        self.before_insertion(job, reprocessed);
    }

    fn ingests(&self) -> bool {
        T::INGESTS
    }

    fn check_params(&self, params: &serde_json::Value) -> Result<(), String> {
        parse_params::<T>(params).map(|_| ())
    }

    fn child_job_types(&self) -> Vec<String> {
        self.child_types()
    }

    fn children_when_processed(&self, job: &Job) -> Result<Vec<ChildJob>, JobTypeError> {
        self.children(job)
    }

    async fn configure_single_job(
        &self,
        ctx: &dyn JobContext,
        job: &Job,
    ) -> Result<ConfigureOutcome, JobTypeError> {
        let params: T::Params = JobTypeError::decode_params(job)?;
        // Stored params that decode but break a rule (written by any means) put the job in error,
        // naming the field; they never reach the job type.
        if let Err(reason) = T::validate(&params) {
            return Ok(ConfigureOutcome {
                decision: Configuration::Error { reason },
                params: None,
            });
        }
        let configured = self.configure(ctx, job, params).await?;
        Ok(ConfigureOutcome {
            decision: configured.decision,
            params: configured
                .params
                .map(|params| encode_params(job, &params))
                .transpose()?,
        })
    }

    fn worker_task(&self, job: &Job) -> Result<WorkerTask, JobTypeError> {
        let params: T::Params = JobTypeError::decode_params(job)?;
        T::validate(&params).map_err(|problem| JobTypeError::invalid(job, problem))?;
        let plan = self.task(job, &params)?;
        let spec = JobType::spec(self);
        let mut parameters = serde_json::Map::new();
        parameters.insert("job_type".into(), spec.name.clone().into());
        parameters.extend(plan.extra_parameters);
        parameters.insert("params".into(), encode_params(job, &params)?);
        Ok(WorkerTask {
            job_id: job.id,
            job_type: spec.name.clone(),
            attempt: job.attempt,
            image: spec.image.clone(),
            command: spec.command.clone(),
            inputs: plan.inputs,
            outputs: plan.outputs,
            flavor: spec.worker_flavor.clone(),
            timeout_secs: spec.processing_timeout.as_secs(),
            network: spec.network,
            exit_codes: JobType::exit_codes(self).clone(),
            parameters: serde_json::Value::Object(parameters),
        })
    }

    fn generated_a_product(&self, job: &Job) -> bool {
        job.results
            .as_ref()
            .is_some_and(|r| r.products.iter().any(|p| self.publishes(&p.kind)))
    }

    fn get_products_publication_jsons(
        &self,
        job: &Job,
        target: &PublicationTarget,
    ) -> Result<Vec<ProductPublication>, PublicationError> {
        self.publications(job, target)
    }

    fn replaced_jobs(&self, job: &Job) -> Result<Vec<i64>, JobTypeError> {
        let params: T::Params = JobTypeError::decode_params(job)?;
        Ok(JobType::replaced_jobs(self, job, &params))
    }
}

//! `test_job`: a smoke-test job type that accepts any listed product and runs the stand-in code.
//!
//! It exercises the whole flow (creation, dispatch, worker, publication) without scientific
//! dependencies. Unlike the original's `TestJob`, which never published, a test job that reports an
//! output product publishes it, so the publication path is smoke-tested too.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::common::{check_file_name, jobs_from_products};
use super::{stand_in_command, JobTypeOverrides, STAND_IN_IMAGE};
use crate::context::JobContext;
use crate::exit_codes::{ExitClass, ExitCodeTable};
use crate::job::{Job, NewJob};
use crate::job_type::{input_path, parse_params, JobType, TaskPlan};
use crate::listing::CatalogueProduct;
use crate::product::ProductName;
use crate::publication::{
    resto_feature, ProductPublication, PublicationError, PublicationTarget, RestoProductInfo,
};
use crate::template::{
    InputProductType, JobTypeError, JobTypeSpec, JobsToCreate, TaskInput, TaskOutput,
};

/// The job type's name.
pub const NAME: &str = "test_job";

/// Typed `params` of a `test_job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestJobParams {
    /// The product name as listed.
    pub product: String,
    /// Mission family (`S1`, `S2`) when the name parses, for the publication message.
    pub mission: Option<String>,
}

impl TestJobParams {
    /// Decodes and checks `value`, naming the field that is wrong: `product` is one file name (the
    /// worker stages the input under it).
    pub fn parse(value: &serde_json::Value) -> Result<TestJobParams, String> {
        parse_params::<TestJob>(value)
    }

    fn check(&self) -> Result<(), String> {
        check_file_name("params.product", &self.product)?;
        if self.product.chars().any(char::is_whitespace) {
            return Err(format!(
                "params.product: {:?} holds white space",
                self.product
            ));
        }
        Ok(())
    }
}

/// The `test_job` job type.
#[derive(Debug)]
pub struct TestJob {
    spec: JobTypeSpec,
    exit_codes: ExitCodeTable,
}

/// Return codes of the stand-in code.
pub fn exit_code_table() -> ExitCodeTable {
    ExitCodeTable::new([
        (0..=0, ExitClass::Success, "products generated"),
        (1..=99, ExitClass::InternalError, "unrecoverable error"),
        (100..=199, ExitClass::ExternalError, "transient error"),
        (200..=249, ExitClass::NoProduct, "nothing to produce"),
    ])
    .expect("the test_job exit-code table is valid")
}

impl TestJob {
    /// The job type with `overrides` applied.
    pub fn new(overrides: &JobTypeOverrides) -> Self {
        let spec = JobTypeSpec {
            name: NAME.into(),
            input_product_type: InputProductType::Any,
            nomad_job: "test-job-processing".into(),
            worker_flavor: "eo1.xsmall".into(),
            output_products: vec!["test_product".into()],
            max_attempts: 3,
            processing_start_date: None,
            image: STAND_IN_IMAGE.into(),
            command: stand_in_command(),
            processing_timeout: Duration::from_secs(600),
            network: false,
        };
        TestJob {
            spec: overrides.apply(spec),
            exit_codes: exit_code_table(),
        }
    }

    fn new_job(&self, product: &CatalogueProduct) -> Result<NewJob, String> {
        let listed = product.name.trim().trim_end_matches('/');
        let base = listed.rsplit('/').next().unwrap_or_default();
        if base.is_empty() || base.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the product name {:?} is empty or contains white space",
                product.name
            ));
        }
        let parsed = ProductName::parse(base).ok();
        let product_id = parsed
            .as_ref()
            .map_or_else(|| base.to_string(), |p| p.canonical());
        let params = TestJobParams {
            product: base.to_string(),
            mission: parsed
                .as_ref()
                .map(|p| p.mission().to_string()[..2].to_string()),
        };
        let mut job = NewJob::for_product(NAME, product_id, product, self.spec.max_attempts);
        job.name = format!("test-{}", job.name);
        job.measured_at = parsed
            .as_ref()
            .map(|p| p.sensing_start())
            .or(product.sensing_start);
        job.params = serde_json::to_value(params).map_err(|e| e.to_string())?;
        Ok(job)
    }
}

#[async_trait]
impl JobType for TestJob {
    type Params = TestJobParams;

    fn spec(&self) -> &JobTypeSpec {
        &self.spec
    }

    fn exit_codes(&self) -> &ExitCodeTable {
        &self.exit_codes
    }

    fn validate(params: &TestJobParams) -> Result<(), String> {
        params.check()
    }

    async fn jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError> {
        jobs_from_products(self, ctx, products, |p| self.new_job(p)).await
    }

    fn task(&self, job: &Job, params: &TestJobParams) -> Result<TaskPlan, JobTypeError> {
        Ok(TaskPlan::new(
            vec![TaskInput {
                name: params.product.clone(),
                source: input_path(job)?,
                required: true,
            }],
            vec![TaskOutput {
                kind: "test_product".into(),
                destination_prefix: format!("test/{}/", job.uid),
            }],
        ))
    }

    fn publications(
        &self,
        job: &Job,
        target: &PublicationTarget,
    ) -> Result<Vec<ProductPublication>, PublicationError> {
        let params: TestJobParams =
            job.params_as()
                .map_err(|_| PublicationError::MissingField {
                    job_id: job.id,
                    product: "test_product".into(),
                    field: "params",
                })?;
        let mission = params.mission.unwrap_or_else(|| "NA".into());
        let info = RestoProductInfo {
            product_type: "TEST",
            mission: &mission,
            needs_cloud_cover: false,
        };
        let products = job
            .results
            .as_ref()
            .map(|r| r.products.as_slice())
            .unwrap_or_default();
        products
            .iter()
            .map(|p| resto_feature(job, p, info, target))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Configuration, JobTemplate};
    use crate::testing::{job_from_new, listed, MemoryContext};

    #[tokio::test]
    async fn accepts_any_name_but_blank_ones_and_dedups() {
        let t = TestJob::new(&JobTypeOverrides::default());
        let mut ctx = MemoryContext::default();
        let page = [
            listed(
                "S2B_MSIL2A_20240101T101010_N0510_R022_T32TLR_20240101T120000.SAFE",
                "2024-01-01T13:00:00Z",
            ),
            listed("anything-goes", "2024-01-01T13:00:00Z"),
            listed("anything-goes", "2024-01-01T13:00:01Z"),
            listed("has space", "2024-01-01T13:00:00Z"),
        ];
        let out = t.get_jobs_to_create(&ctx, &page).await.unwrap();
        assert_eq!(out.jobs.len(), 2);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(
            out.jobs[0].name,
            "test-S2B_MSIL2A_20240101T101010_N0510_R022_T32TLR_20240101T120000"
        );
        assert_eq!(out.jobs[0].params["mission"], "S2");
        assert!(out.jobs[0].measured_at.is_some());
        ctx.jobs = out
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| job_from_new(j, i as i64 + 1))
            .collect();
        let again = t.get_jobs_to_create(&ctx, &page).await.unwrap();
        assert!(again.jobs.is_empty(), "ingesting twice creates nothing new");
        let task = t.worker_task(&ctx.jobs[1]).unwrap();
        assert_eq!(task.inputs[0].name, "anything-goes");
        assert_eq!(task.flavor, "eo1.xsmall");
    }

    #[tokio::test]
    async fn a_product_that_is_not_one_file_name_is_refused_everywhere() {
        let t = TestJob::new(&JobTypeOverrides::default());
        for product in ["/tmp/x", "a/b", "..", ".", "", "a\\b", "a b"] {
            let params = serde_json::json!({"product": product, "mission": null});
            let err = t.check_params(&params).unwrap_err();
            assert!(err.contains("params.product"), "{product:?}: {err}");
            let mut job = job_from_new(&NewJob::new(NAME, "t", 3), 1);
            job.input_path = Some("/eodata/x".into());
            job.params = params;
            let out = t
                .configure_single_job(&MemoryContext::default(), &job)
                .await
                .unwrap();
            assert!(
                matches!(&out.decision, Configuration::Error { reason } if reason.contains("params.product")),
                "{product:?}: {:?}",
                out.decision
            );
            let err = t.worker_task(&job).unwrap_err();
            assert!(err.to_string().contains("params.product"), "{err}");
        }
    }
}

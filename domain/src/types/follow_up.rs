//! Follow-up job types: jobs that an `fsc_rlie` job creates when it is processed, working on the
//! products it uploaded (read back from the output store). They are never ingested from a catalogue
//! and their outputs are stored beside the products, not announced.
//!
//! - [`QUICKLOOK`] (`fsc_rlie_quicklook`): renders a preview of the FSC and RLIE products. It is a
//!   best-effort child: it keeps a `spawned_by` reference, and its failure changes nothing for the
//!   parent.
//! - [`CHECK`] (`fsc_rlie_check`): verifies the FSC and RLIE products (files, rasters, metadata)
//!   before the parent counts as done. It is an attached child: the parent is `done` only once the
//!   check is, and a failed check fails the parent.
//!
//! Each writes one product of its own kind (`quicklook`, `check`) under its own prefix, named by
//! the code after the acquisition (the stand-in reads it from the FSC/RLIE product names).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::common::{check_file_name, check_relative_path};
use super::{date_path, JobTypeOverrides, STAND_IN_IMAGE};
use crate::children::{output_store_source, ChildJob, ChildKind};
use crate::context::JobContext;
use crate::exit_codes::{ExitClass, ExitCodeTable};
use crate::job::{Job, NewJob};
use crate::job_type::{parse_params, JobType, TaskPlan};
use crate::listing::CatalogueProduct;
use crate::template::{
    InputProductType, JobTypeError, JobTypeSpec, JobsToCreate, RejectedProduct, TaskInput,
    TaskOutput,
};

/// Name of the preview job type.
pub const QUICKLOOK: &str = "fsc_rlie_quicklook";
/// Name of the product verification job type.
pub const CHECK: &str = "fsc_rlie_check";

/// Typed `params` of a follow-up job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpParams {
    /// The job whose products this one works on.
    pub source_job_id: i64,
    /// Those products.
    pub products: Vec<SourceProduct>,
}

/// One product a follow-up job reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceProduct {
    /// Its kind (`fsc`, `rlie`).
    pub kind: String,
    /// Its path in the output store.
    pub path: String,
}

impl FollowUpParams {
    /// Decodes and checks `value`, naming the field that is wrong: at least one product, each with
    /// a kind and a path relative to the output store (not absolute, no `..`; its last segment
    /// names the input the worker stages).
    pub fn parse(value: &serde_json::Value) -> Result<FollowUpParams, String> {
        parse_params::<FollowUp>(value)
    }

    fn check(&self) -> Result<(), String> {
        if self.products.is_empty() {
            return Err("params.products: at least one product is needed".into());
        }
        for (i, p) in self.products.iter().enumerate() {
            if p.kind.trim().is_empty() || p.kind.chars().any(char::is_control) {
                return Err(format!(
                    "params.products[{i}].kind: {:?} is not a product kind",
                    p.kind
                ));
            }
            let field = format!("params.products[{i}].path");
            let segments = check_relative_path(&field, &p.path)?;
            for segment in segments {
                check_file_name(&field, segment)?;
            }
        }
        Ok(())
    }
}

/// One of the follow-up job types.
#[derive(Debug)]
pub struct FollowUp {
    spec: JobTypeSpec,
    exit_codes: ExitCodeTable,
    /// Where its products go in the output store, before `<day>/`.
    destination: &'static str,
}

/// Return codes of the follow-up code (the stand-in's).
fn exit_code_table() -> ExitCodeTable {
    ExitCodeTable::new([
        (0..=0, ExitClass::Success, "done"),
        (1..=99, ExitClass::InternalError, "unrecoverable error"),
        (100..=199, ExitClass::ExternalError, "transient error"),
        (200..=249, ExitClass::NoProduct, "nothing to produce"),
    ])
    .expect("the follow-up exit-code table is valid")
}

/// The stand-in's command, writing products of `kind` only.
fn stand_in_command_for(kind: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("STANDIN_PRODUCTS={kind} exec /bin/sh /standin/run.sh"),
    ]
}

impl FollowUp {
    fn new(
        name: &str,
        nomad_job: &str,
        output: &str,
        destination: &'static str,
        overrides: &JobTypeOverrides,
    ) -> Self {
        let spec = JobTypeSpec {
            name: name.into(),
            input_product_type: InputProductType::S2,
            nomad_job: nomad_job.into(),
            worker_flavor: "eo1.xsmall".into(),
            output_products: vec![output.into()],
            max_attempts: 3,
            processing_start_date: None,
            image: STAND_IN_IMAGE.into(),
            command: stand_in_command_for(output),
            processing_timeout: Duration::from_secs(1800),
            network: false,
        };
        FollowUp {
            spec: overrides.apply(spec),
            exit_codes: exit_code_table(),
            destination,
        }
    }

    /// `fsc_rlie_quicklook`, with `overrides` applied.
    pub fn quicklook(overrides: &JobTypeOverrides) -> Self {
        FollowUp::new(
            QUICKLOOK,
            "quicklook-processing",
            "quicklook",
            "CLMS/Pan-European/High_Resolution_Layers/Preview",
            overrides,
        )
    }

    /// `fsc_rlie_check`, with `overrides` applied.
    pub fn check(overrides: &JobTypeOverrides) -> Self {
        FollowUp::new(
            CHECK,
            "product-check-processing",
            "check",
            "CLMS/Pan-European/High_Resolution_Layers/Checks",
            overrides,
        )
    }
}

/// The follow-ups of a processed `fsc_rlie` job: a quicklook (best effort) and a check (attached),
/// or nothing when it produced no product.
pub fn fsc_rlie_children(job: &Job) -> Vec<ChildJob> {
    let products: Vec<SourceProduct> = job
        .results
        .iter()
        .flat_map(|r| &r.products)
        .map(|p| SourceProduct {
            kind: p.kind.clone(),
            path: p.path.clone(),
        })
        .collect();
    if products.is_empty() {
        return Vec::new();
    }
    let params = FollowUpParams {
        source_job_id: job.id,
        products,
    };
    let child = |job_type: &str| {
        let mut new = NewJob::new(job_type, job.name.clone(), 3);
        new.product_id.clone_from(&job.product_id);
        new.tile_id.clone_from(&job.tile_id);
        new.measured_at = job.measured_at;
        new.input_published_at = job.input_published_at;
        new.priority = job.priority;
        new.params = serde_json::to_value(&params).expect("follow-up params serialize");
        new.initial_message = Some(format!("follow-up of job {} ({})", job.id, job.job_type));
        new
    };
    vec![
        ChildJob {
            kind: ChildKind::BestEffort,
            job: child(QUICKLOOK),
        },
        ChildJob {
            kind: ChildKind::Attached,
            job: child(CHECK),
        },
    ]
}

#[async_trait]
impl JobType for FollowUp {
    type Params = FollowUpParams;

    const INGESTS: bool = false;

    fn spec(&self) -> &JobTypeSpec {
        &self.spec
    }

    fn exit_codes(&self) -> &ExitCodeTable {
        &self.exit_codes
    }

    fn validate(params: &FollowUpParams) -> Result<(), String> {
        params.check()
    }

    /// Follow-ups are created by their source job, never from a catalogue: every product is skipped.
    async fn jobs_to_create(
        &self,
        _ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError> {
        Ok(JobsToCreate {
            skipped: products
                .iter()
                .map(|p| RejectedProduct {
                    name: p.name.clone(),
                    reason: format!(
                        "{} jobs are created by the jobs they follow up, not from a catalogue",
                        self.spec.name
                    ),
                })
                .collect(),
            ..JobsToCreate::default()
        })
    }

    fn task(&self, job: &Job, params: &FollowUpParams) -> Result<TaskPlan, JobTypeError> {
        let inputs = params
            .products
            .iter()
            .map(|p| TaskInput {
                name: p
                    .path
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(&p.kind)
                    .to_string(),
                source: output_store_source(&p.path),
                required: true,
            })
            .collect();
        let day = date_path(job.measured_at.unwrap_or(job.created_at));
        let kind = self.spec.output_products[0].clone();
        Ok(TaskPlan::new(
            inputs,
            vec![TaskOutput {
                kind,
                destination_prefix: format!("{}/{day}/", self.destination),
            }],
        ))
    }

    /// Follow-up outputs are stored beside the products they describe and not announced.
    fn publishes(&self, _kind: &str) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobResults, OutputProduct};
    use crate::template::JobTemplate;
    use crate::testing::job_from_new;

    fn processed_fsc_rlie(products: &[(&str, &str)]) -> Job {
        let mut new = NewJob::new(
            "fsc_rlie",
            "S2A_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T121553",
            3,
        );
        new.tile_id = Some("32TLR".into());
        new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
        let mut job = job_from_new(&new, 7);
        job.results = Some(JobResults {
            return_code: Some(0),
            outcome: Some(ExitClass::Success),
            products: products
                .iter()
                .map(|(kind, path)| OutputProduct {
                    kind: kind.to_string(),
                    path: path.to_string(),
                    size_bytes: None,
                    completed_at: None,
                    infos: serde_json::Value::Null,
                    published_at: None,
                })
                .collect(),
        });
        job
    }

    #[test]
    fn a_processed_job_with_products_gets_a_quicklook_and_an_attached_check() {
        let job = processed_fsc_rlie(&[("fsc", "hrsi/FSC/x_1"), ("rlie", "hrsi/RLIE/y_1")]);
        let children = fsc_rlie_children(&job);
        let kinds: Vec<(ChildKind, &str)> = children
            .iter()
            .map(|c| (c.kind, c.job.job_type.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ChildKind::BestEffort, QUICKLOOK),
                (ChildKind::Attached, CHECK)
            ]
        );
        let params = FollowUpParams::parse(&children[1].job.params).unwrap();
        assert_eq!(params.source_job_id, 7);
        assert_eq!(params.products.len(), 2);
        assert!(fsc_rlie_children(&processed_fsc_rlie(&[])).is_empty());
    }

    #[test]
    fn the_task_reads_the_products_back_from_the_output_store() {
        let parent = processed_fsc_rlie(&[("fsc", "hrsi/FSC/FSC_1"), ("rlie", "hrsi/RLIE/R_1")]);
        let check = FollowUp::check(&JobTypeOverrides::default());
        let child = job_from_new(&fsc_rlie_children(&parent)[1].job, 8);
        let task = check.worker_task(&child).unwrap();
        assert_eq!(task.inputs[0].source, "outputs:hrsi/FSC/FSC_1");
        assert_eq!(task.inputs[0].name, "FSC_1");
        assert_eq!(task.outputs[0].kind, "check");
        assert_eq!(
            task.outputs[0].destination_prefix,
            "CLMS/Pan-European/High_Resolution_Layers/Checks/2021/04/13/"
        );
        assert!(!check.ingests());
        assert!(!check.generated_a_product(&child));
    }

    #[test]
    fn bad_params_are_named() {
        let quicklook = FollowUp::quicklook(&JobTypeOverrides::default());
        let err = quicklook
            .check_params(&serde_json::json!({"source_job_id": 1, "products": []}))
            .unwrap_err();
        assert!(err.contains("params.products"), "{err}");
        let err = quicklook
            .check_params(&serde_json::json!({"source_job_id": 1, "products": [{"kind": "fsc", "path": "../etc"}]}))
            .unwrap_err();
        assert!(err.contains("products[0]"), "{err}");
        let err = quicklook
            .check_params(&serde_json::json!({"source": 1}))
            .unwrap_err();
        assert!(err.starts_with("params:"), "{err}");
        for path in ["/root/secret", "a//b", "a/./b", "", "a\\b"] {
            let params = serde_json::json!({"source_job_id": 1, "products": [{"kind": "fsc", "path": path}]});
            let err = quicklook.check_params(&params).unwrap_err();
            assert!(err.contains("params.products[0].path"), "{path}: {err}");
            // A job stored with such params gets no task.
            let mut job = job_from_new(&NewJob::new(QUICKLOOK, "q", 3), 9);
            job.params = params;
            let err = quicklook.worker_task(&job).unwrap_err();
            assert!(err.to_string().contains("params.products[0].path"), "{err}");
        }
    }
}

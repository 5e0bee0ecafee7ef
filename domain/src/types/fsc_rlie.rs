//! `fsc_rlie`: Sentinel-2 L1C -> Fractional Snow Cover (FSC) and River and Lake Ice Extent (RLIE).
//!
//! One job per L1C product over the area of interest. The jobs of one tile form a time series: the
//! scientific code (MAJA) continues from the previous date's L2A, so a job waits until the previous job
//! of its tile has been processed (original §3.4, without the backward mode, which belongs to the
//! science rather than the orchestration).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::common::{build_candidates, finish, mark_cancelled, mark_reprocessed, Candidates};
use super::common::{check_product_name, check_relative_path, check_tile, ProductKind};
use super::versions::{same_product, Listed, SUPERSEDE_GRACE};
use super::{area_of_interest, follow_up, footprint_of, SettingsError};
use super::{date_path, stand_in_command, utc_date, JobTypeOverrides, STAND_IN_IMAGE};
use crate::aoi::{Footprint, TileGrid};
use crate::children::ChildJob;
use crate::context::JobContext;
use crate::exit_codes::{ExitClass, ExitCodeTable};
use crate::job::{Job, JobPriority, NewJob};
use crate::job_type::{input_path, parse_params, Configured, JobType, TaskPlan};
use crate::listing::CatalogueProduct;
use crate::product::{ProductName, S2AcquisitionKey, S2Level, S2ProductName};
use crate::publication::{
    resto_feature, ProductPublication, PublicationError, PublicationTarget, RestoProductInfo,
};
use crate::status::JobStatus;
use crate::template::Superseded;
use crate::template::{
    Configuration, InputProductType, JobTypeError, JobTypeSpec, JobsToCreate, TaskInput, TaskOutput,
};
// The tests call the job type through the adapter, as the orchestrator does.
#[cfg(test)]
use crate::template::JobTemplate;

/// The job type's name.
pub const NAME: &str = "fsc_rlie";

/// A job is `nrt` when its input reached the catalogue within this delay after sensing.
pub const NRT_MAX_DELAY: chrono::TimeDelta = chrono::TimeDelta::hours(27);

/// Output kind of the L2A a job writes for the next date of its tile: kept in the output store
/// (under `<tile>/L2A/<l1c_id>/`, where the next job's `l2a_path_in` points), never published.
pub const L2A_KIND: &str = "l2a";

/// A previous L2A older than this cannot seed the time series: the job starts a new one (`init`).
pub const MAJA_CONSECUTIVE_JOBS_THRESHOLD: chrono::TimeDelta = chrono::TimeDelta::days(60);

/// How MAJA runs for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MajaMode {
    /// Start a new time series.
    Init,
    /// Continue from the previous job's L2A.
    Nominal,
}

/// Typed `params` of an `fsc_rlie` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FscRlieParams {
    /// Canonical L1C product name.
    pub l1c_id: String,
    /// Mission, e.g. `S2A`.
    pub mission: String,
    /// Processing baseline, e.g. `N0500`.
    pub baseline: String,
    /// Relative orbit.
    pub relative_orbit: u16,
    /// Product discriminator (generation time).
    pub discriminator: DateTime<Utc>,
    /// Cloud cover from the catalogue, in percent.
    pub cloud_cover: Option<f64>,
    /// Whether the job is part of the near-real-time stream.
    pub nrt: bool,
    /// Why the job is reprocessed, if it is.
    pub reprocessing_context: Option<String>,
    /// MAJA mode, set at configuration.
    pub maja_mode: Option<MajaMode>,
    /// The previous job of the tile's time series, set at configuration.
    pub previous_job_id: Option<i64>,
    /// L2A the job continues from (nominal mode).
    pub l2a_path_in: Option<String>,
    /// L2A the job writes for the next date.
    pub l2a_path_out: Option<String>,
    /// Footprint from the catalogue (GeoJSON), to tell versions from partial-tile products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<serde_json::Value>,
    /// Jobs of older versions of the same product that this one replaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<i64>,
}

impl FscRlieParams {
    /// Decodes and checks `value`, naming the field that is wrong: `l1c_id` is the canonical name
    /// of a Sentinel-2 L1C product (the worker stages the input under it), and the L2A paths are
    /// `<tile>/L2A/<L1C name>` inside the output store.
    pub fn parse(value: &serde_json::Value) -> Result<FscRlieParams, String> {
        parse_params::<FscRlie>(value)
    }

    fn check(&self) -> Result<(), String> {
        check_product_name("params.l1c_id", &self.l1c_id, ProductKind::S2(S2Level::L1C))?;
        for (field, path) in [
            ("params.l2a_path_in", &self.l2a_path_in),
            ("params.l2a_path_out", &self.l2a_path_out),
        ] {
            if let Some(path) = path {
                check_l2a_path(field, path)?;
            }
        }
        Ok(())
    }
}

/// Checks that `path`, the parameter `field`, is where a job keeps its L2A in the output store:
/// `<tile>/L2A/<L1C name>`.
fn check_l2a_path(field: &str, path: &str) -> Result<(), String> {
    let segments = check_relative_path(field, path)?;
    let [tile, level, l1c] = segments[..] else {
        return Err(format!(
            "{field}: {path:?} is not <tile>/L2A/<L1C product name>"
        ));
    };
    check_tile(field, tile)?;
    if level != "L2A" {
        return Err(format!(
            "{field}: {path:?} is not <tile>/L2A/<L1C product name>"
        ));
    }
    check_product_name(field, l1c, ProductKind::S2(S2Level::L1C)).map(|_| ())
}

/// The `fsc_rlie` job type.
#[derive(Debug)]
pub struct FscRlie {
    spec: JobTypeSpec,
    exit_codes: ExitCodeTable,
    tiles: TileGrid,
}

/// The scientific code's return codes (original §5.4), with codes above 207 made internal errors.
pub fn exit_code_table() -> ExitCodeTable {
    ExitCodeTable::new([
        (0..=0, ExitClass::Success, "products generated"),
        (1..=99, ExitClass::InternalError, "SIP unrecoverable error"),
        (
            100..=199,
            ExitClass::ExternalError,
            "SIP expected error (transient)",
        ),
        (200..=200, ExitClass::NoProduct, "cloud cover too high"),
        (
            201..=201,
            ExitClass::NoProduct,
            "corrupted or incomplete L1C",
        ),
        (202..=202, ExitClass::NoProduct, "incorrect L1C"),
        (203..=203, ExitClass::NoProduct, "L1C detection problem"),
        (204..=204, ExitClass::NoProduct, "incorrect L1C"),
        (205..=205, ExitClass::NoProduct, "missing band"),
        (206..=206, ExitClass::NoProduct, "L1C parsing problem"),
        (
            207..=207,
            ExitClass::NoProduct,
            "too many NoData pixels in the L2A",
        ),
    ])
    .expect("the fsc_rlie exit-code table is valid")
}

impl FscRlie {
    /// The job type with `overrides` applied; its area of interest is the EEA39 grid, or the
    /// `tiles` of the overrides (which must all be EEA39 tiles).
    pub fn new(overrides: &JobTypeOverrides) -> Result<Self, SettingsError> {
        let spec = JobTypeSpec {
            name: NAME.into(),
            input_product_type: InputProductType::S2,
            nomad_job: "si-processing".into(),
            worker_flavor: "hm.medium".into(),
            output_products: vec!["fsc".into(), "rlie".into(), L2A_KIND.into()],
            max_attempts: 3,
            processing_start_date: utc_date(2020, 5, 1),
            image: STAND_IN_IMAGE.into(),
            command: stand_in_command(),
            processing_timeout: Duration::from_secs(4 * 3600),
            network: false,
        };
        Ok(FscRlie {
            spec: overrides.apply(spec),
            exit_codes: exit_code_table(),
            tiles: area_of_interest(NAME, overrides)?,
        })
    }

    /// The job for `product`, with its parsed name and footprint.
    fn new_job(
        &self,
        product: &CatalogueProduct,
    ) -> Result<(NewJob, (S2ProductName, Option<Footprint>)), String> {
        let parsed = ProductName::parse(&product.name).map_err(|e| e.to_string())?;
        let canonical = parsed.canonical();
        let ProductName::S2(name) = parsed else {
            return Err("skip: not a Sentinel-2 product".into());
        };
        if name.level != S2Level::L1C {
            return Err(format!("skip: level {} is not L1C", name.level));
        }
        let tile = name.tile.to_string();
        if !self.tiles.contains(&tile) {
            return Err(format!("skip: tile {tile} is outside the area of interest"));
        }
        let params = FscRlieParams {
            l1c_id: canonical.clone(),
            mission: name.mission.to_string(),
            baseline: name.baseline.to_string(),
            relative_orbit: name.relative_orbit,
            discriminator: name.discriminator,
            cloud_cover: product.cloud_cover,
            nrt: true,
            reprocessing_context: None,
            maja_mode: None,
            previous_job_id: None,
            l2a_path_in: None,
            l2a_path_out: None,
            footprint: product.footprint.clone(),
            supersedes: Vec::new(),
        };
        let mut job = NewJob::for_product(NAME, canonical, product, self.spec.max_attempts);
        job.tile_id = Some(tile);
        job.measured_at = Some(name.sensing_start);
        job.priority = if product.published_at - name.sensing_start <= NRT_MAX_DELAY {
            JobPriority::Nrt
        } else {
            JobPriority::Delayed
        };
        job.params = serde_json::to_value(params).map_err(|e| e.to_string())?;
        let footprint = product
            .footprint
            .as_ref()
            .and_then(|f| Footprint::from_geojson(f).ok());
        Ok((job, (name, footprint)))
    }
}

#[async_trait]
impl JobType for FscRlie {
    type Params = FscRlieParams;

    fn spec(&self) -> &JobTypeSpec {
        &self.spec
    }

    fn exit_codes(&self) -> &ExitCodeTable {
        &self.exit_codes
    }

    fn validate(params: &FscRlieParams) -> Result<(), String> {
        params.check()
    }

    fn catalogue_bbox(&self) -> Option<[f64; 4]> {
        self.tiles.bounding_box()
    }

    /// One job per L1C product over the area of interest. Of several versions of one product
    /// (see [`super::versions`]), the newest wins: older versions listed later are recorded
    /// `cancelled`, and older versions that are still waiting are cancelled in its favour. A newer
    /// version of a product already being processed is processed again only within
    /// [`SUPERSEDE_GRACE`] of sensing.
    async fn jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError> {
        // A product's name holds its sensing time: one lookup by sensing time finds both the
        // products listed before and the other versions or duplicates of the new ones.
        let mut found = build_candidates(products, |p| self.new_job(p));
        let same_times = ctx.jobs_measured_at(NAME, &found.sensing_times()).await?;
        found.drop_known(&same_times);
        let Candidates { mut out, jobs } = found;
        let existing: Vec<(Job, S2ProductName, Option<Footprint>)> = same_times
            .into_iter()
            .filter_map(|job| {
                let name = job.product_id.as_deref()?.parse::<S2ProductName>().ok()?;
                let footprint = footprint_of(&job.params);
                Some((job, name, footprint))
            })
            .collect();
        let (jobs, listed): (
            Vec<(NewJob, &CatalogueProduct)>,
            Vec<(S2ProductName, Option<Footprint>)>,
        ) = jobs
            .into_iter()
            .map(|(job, product, parsed)| ((job, product), parsed))
            .unzip();
        // Versions can only match within one acquisition: group by it to stay linear in the page.
        let mut listed_by_key: HashMap<S2AcquisitionKey, Vec<usize>> = HashMap::new();
        for (i, (name, _)) in listed.iter().enumerate() {
            listed_by_key
                .entry(name.acquisition_key())
                .or_default()
                .push(i);
        }
        let mut existing_by_key: HashMap<S2AcquisitionKey, Vec<usize>> = HashMap::new();
        for (i, (_, name, _)) in existing.iter().enumerate() {
            existing_by_key
                .entry(name.acquisition_key())
                .or_default()
                .push(i);
        }
        for (i, (mut job, product)) in jobs.into_iter().enumerate() {
            let me = Listed {
                name: &listed[i].0,
                footprint: listed[i].1.as_ref(),
            };
            let key = me.name.acquisition_key();
            let same_acquisition_listed = listed_by_key
                .get(&key)
                .into_iter()
                .flatten()
                .map(|&j| &listed[j]);
            let same_acquisition_known = || {
                existing_by_key
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(|&j| &existing[j])
            };
            // Another version of the same product: newer (`Greater`) or older (`Less`) than this one.
            let version = |order: std::cmp::Ordering, n: &S2ProductName, f: &Option<Footprint>| {
                n.version_key().cmp(&me.name.version_key()) == order
                    && same_product(
                        me,
                        Listed {
                            name: n,
                            footprint: f.as_ref(),
                        },
                    )
            };
            let newer_listed = same_acquisition_listed
                .filter(|(n, f)| version(std::cmp::Ordering::Greater, n, f))
                .map(|(n, _)| n.to_string());
            let newer_known = same_acquisition_known()
                .filter(|(_, n, f)| version(std::cmp::Ordering::Greater, n, f))
                .map(|(_, n, _)| n.to_string());
            if let Some(newer) = newer_listed.chain(newer_known).max() {
                mark_cancelled(
                    &mut job,
                    format!("superseded by a newer version of the same product: {newer}"),
                    "superseded",
                );
                out.jobs.push(job);
                continue;
            }
            let older: Vec<&Job> = same_acquisition_known()
                .filter(|(_, n, f)| version(std::cmp::Ordering::Less, n, f))
                .map(|(j, _, _)| j)
                .collect();
            let waiting = |j: &&Job| {
                matches!(
                    j.status,
                    JobStatus::Initialized | JobStatus::Configured | JobStatus::Ready
                )
            };
            let gone =
                |j: &&Job| matches!(j.status, JobStatus::Cancelled | JobStatus::InternalError);
            let late = job
                .measured_at
                .is_some_and(|m| product.published_at - m > SUPERSEDE_GRACE);
            if let Some(running) = older
                .iter()
                .find(|j| !waiting(j) && !gone(j))
                .filter(|_| late)
            {
                mark_cancelled(
                    &mut job,
                    format!(
                        "a newer version of {} (job {}), which is already processed or running; late versions are left to reprocessing campaigns",
                        running.name, running.id
                    ),
                    "late_version",
                );
                out.jobs.push(job);
                continue;
            }
            let replaced: Vec<&Job> = older.iter().filter(|j| waiting(j)).copied().collect();
            for old in &replaced {
                out.superseded.push(Superseded {
                    job_id: old.id,
                    status: old.status,
                    attempt: old.attempt,
                    by: job.name.clone(),
                });
            }
            if let Some(params) = job.params.as_object_mut() {
                let ids: Vec<i64> = older.iter().filter(|j| !gone(j)).map(|j| j.id).collect();
                if !ids.is_empty() {
                    params.insert("supersedes".into(), ids.into());
                }
            }
            finish(self, &mut out, job);
        }
        Ok(out)
    }

    /// A quicklook (best effort) and a product check (attached) of the products, once processed.
    fn child_types(&self) -> Vec<String> {
        vec![follow_up::QUICKLOOK.into(), follow_up::CHECK.into()]
    }

    fn children(&self, job: &Job) -> Result<Vec<ChildJob>, JobTypeError> {
        Ok(follow_up::fsc_rlie_children(job))
    }

    fn before_insertion(&self, job: &mut NewJob, reprocessed: bool) {
        if !reprocessed {
            return;
        }
        mark_reprocessed(job, self.spec.processing_start_date);
        if let Some(params) = job.params.as_object_mut() {
            params.insert("nrt".into(), false.into());
        }
    }

    async fn configure(
        &self,
        ctx: &dyn JobContext,
        job: &Job,
        mut params: FscRlieParams,
    ) -> Result<Configured<FscRlieParams>, JobTypeError> {
        let (Some(tile), Some(measured)) = (job.tile_id.as_deref(), job.measured_at) else {
            return Ok(Configured::decided(Configuration::Error {
                reason: "the job has no tile or no sensing time".into(),
            }));
        };
        let failed = [JobStatus::InternalError, JobStatus::Cancelled];
        let previous = ctx
            .previous_job_on_tile(NAME, tile, measured, &failed)
            .await?;
        let mode = match &previous {
            None => MajaMode::Init,
            Some(prev) if !prev_is_processed(prev.status) => {
                return Ok(Configured::decided(Configuration::Wait {
                    reason: format!(
                        "waiting for job {} ({}), the previous date of tile {tile}, to be processed",
                        prev.id, prev.name
                    ),
                    on: Some(prev.id),
                }));
            }
            Some(prev) => {
                let recent = prev
                    .measured_at
                    .is_some_and(|m| measured - m <= MAJA_CONSECUTIVE_JOBS_THRESHOLD);
                let prev_params: FscRlieParams = JobTypeError::decode_params(prev)?;
                match (recent, prev_params.l2a_path_out) {
                    (true, Some(l2a)) => {
                        params.l2a_path_in = Some(l2a);
                        MajaMode::Nominal
                    }
                    _ => MajaMode::Init,
                }
            }
        };
        params.maja_mode = Some(mode);
        params.previous_job_id = previous.map(|p| p.id);
        params.l2a_path_out = Some(format!("{tile}/L2A/{}", params.l1c_id));
        Ok(Configured {
            decision: Configuration::Ready,
            params: Some(params),
        })
    }

    fn task(&self, job: &Job, params: &FscRlieParams) -> Result<TaskPlan, JobTypeError> {
        let source = input_path(job)?;
        let measured = job
            .measured_at
            .ok_or_else(|| JobTypeError::invalid(job, "no sensing time"))?;
        let mut inputs = vec![TaskInput {
            name: params.l1c_id.clone(),
            source,
            required: true,
        }];
        if let Some(l2a) = &params.l2a_path_in {
            inputs.push(TaskInput {
                name: "l2a".into(),
                source: l2a.clone(),
                required: true,
            });
        }
        let day = date_path(measured);
        let tile = job
            .tile_id
            .as_deref()
            .ok_or_else(|| JobTypeError::invalid(job, "no tile"))?;
        check_tile("tile_id", tile).map_err(|e| JobTypeError::invalid(job, e))?;
        let outputs = vec![
            TaskOutput {
                kind: "fsc".into(),
                destination_prefix: format!(
                    "CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/{day}/"
                ),
            },
            TaskOutput {
                kind: "rlie".into(),
                destination_prefix: format!(
                    "CLMS/Pan-European/High_Resolution_Layers/Ice/RLIE/{day}/"
                ),
            },
            TaskOutput {
                kind: L2A_KIND.into(),
                destination_prefix: format!("{tile}/L2A/"),
            },
        ];
        Ok(TaskPlan::new(inputs, outputs)
            .with_parameter("tile_id", serde_json::json!(job.tile_id))
            .with_parameter("measured_at", serde_json::json!(measured)))
    }

    /// The jobs of older versions or of an incomplete run of the same datatake (`supersedes`).
    fn replaced_jobs(&self, _job: &Job, params: &FscRlieParams) -> Vec<i64> {
        params.supersedes.clone()
    }

    /// The L2A is kept for the next date of the tile, not published.
    fn publishes(&self, kind: &str) -> bool {
        kind != L2A_KIND
    }

    fn publications(
        &self,
        job: &Job,
        target: &PublicationTarget,
    ) -> Result<Vec<ProductPublication>, PublicationError> {
        let products = job
            .results
            .as_ref()
            .map(|r| r.products.as_slice())
            .unwrap_or_default();
        products
            .iter()
            .filter(|product| self.publishes(&product.kind))
            .map(|product| {
                let product_type = match product.kind.as_str() {
                    "fsc" => "FSC",
                    "rlie" => "RLIE",
                    _ => {
                        return Err(PublicationError::UnknownProduct {
                            job_id: job.id,
                            product: product.kind.clone(),
                        })
                    }
                };
                let info = RestoProductInfo {
                    product_type,
                    mission: "S2",
                    needs_cloud_cover: true,
                };
                resto_feature(job, product, info, target)
            })
            .collect()
    }
}

/// Whether the previous job of a time series has produced what the next one needs.
fn prev_is_processed(status: JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Processed | JobStatus::StartPublication | JobStatus::Published | JobStatus::Done
    )
}

#[cfg(test)]
#[path = "fsc_rlie_tests.rs"]
mod tests;

//! `fsc_rlie`: Sentinel-2 L1C -> Fractional Snow Cover (FSC) and River and Lake Ice Extent (RLIE).
//!
//! One job per L1C product over the area of interest, except that the partial-tile products of one
//! datatake (a datatake split in two gives two L1C products of one tile, with different footprints)
//! are the inputs of one job: they make one output product, and two jobs would overwrite each
//! other's. The jobs of one tile form a time series: the scientific code (MAJA) continues from the
//! previous date's L2A, so a job waits until the previous job of its tile has been processed
//! (original §3.4, without the backward mode, which belongs to the science rather than the
//! orchestration).

use std::cmp::Ordering::{Greater, Less};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::common::{build_candidates, finish, mark_cancelled, mark_reprocessed, Candidates};
use super::common::{
    check_product_name, check_relative_path, check_tile, not_an_input_or_malformed, ProductKind,
};
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
use crate::product::{Baseline, ProductName, S2AcquisitionKey, S2Level, S2ProductName};
use crate::publication::{
    resto_feature, ProductPublication, PublicationError, PublicationTarget, RestoProductInfo,
};
use crate::status::JobStatus;
use crate::template::{
    Configuration, InputProductType, JobTypeError, JobTypeSpec, JobsToCreate, TaskInput, TaskOutput,
};
use crate::template::{Superseded, SupersededWhy};
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
    /// Jobs this one replaces: jobs of older versions of the same product, and jobs of the same
    /// datatake that processed fewer of its partial-tile products (see `inputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<i64>,
    /// Every L1C product the job processes when the datatake was split into partial-tile products:
    /// `l1c_id` and the other partials of the same datatake (same acquisition key and baseline).
    /// Empty when the job processes `l1c_id` alone (and in jobs made before datatakes were merged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<L1cInput>,
}

/// One L1C product of a job: its own product, or another partial-tile product of its datatake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L1cInput {
    /// Canonical L1C product name: the worker stages the product under it.
    pub l1c_id: String,
    /// Where the product is read from, as the catalogue listed it (the engine resolves it against
    /// the input roots when it builds the attempt's task, as every input's source).
    pub input_path: String,
    /// Footprint from the catalogue (GeoJSON), to tell versions from partial-tile products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<serde_json::Value>,
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
        self.check_inputs()
    }

    /// Checks `inputs`: L1C names of the datatake and baseline of `l1c_id`, each once, `l1c_id`
    /// among them, and input paths that are one line of text.
    fn check_inputs(&self) -> Result<(), String> {
        if self.inputs.is_empty() {
            return Ok(());
        }
        let own = s2_name("params.l1c_id", &self.l1c_id)?;
        let mut seen = HashSet::with_capacity(self.inputs.len());
        for (i, input) in self.inputs.iter().enumerate() {
            let field = format!("params.inputs[{i}].l1c_id");
            let name = s2_name(&field, &input.l1c_id)?;
            if name.acquisition_key() != own.acquisition_key() {
                return Err(format!(
                    "{field}: {:?} is not of the datatake of params.l1c_id {:?} (mission, sensing start, relative orbit and tile must agree)",
                    input.l1c_id, self.l1c_id
                ));
            }
            if name.baseline != own.baseline {
                return Err(format!(
                    "{field}: {:?} has processing baseline {}, params.l1c_id {:?} has {}",
                    input.l1c_id, name.baseline, self.l1c_id, own.baseline
                ));
            }
            if !seen.insert(input.l1c_id.as_str()) {
                return Err(format!("{field}: {:?} is listed twice", input.l1c_id));
            }
            let field = format!("params.inputs[{i}].input_path");
            if input.input_path.is_empty() {
                return Err(format!("{field}: is empty"));
            }
            if input.input_path.chars().any(char::is_control) {
                return Err(format!(
                    "{field}: {:?} holds control characters",
                    input.input_path
                ));
            }
        }
        if !seen.contains(self.l1c_id.as_str()) {
            return Err(format!(
                "params.inputs: does not list params.l1c_id {:?}, the job's own product",
                self.l1c_id
            ));
        }
        Ok(())
    }

    /// The name of the L2A the job writes for the next date: the first by name of its L1C products
    /// (the stand-in science names it so; a job that re-runs a datatake with one more partial
    /// writes it where the first run did).
    fn l2a_name(&self) -> &str {
        self.inputs
            .iter()
            .map(|input| input.l1c_id.as_str())
            .chain([self.l1c_id.as_str()])
            .min()
            .unwrap_or(self.l1c_id.as_str())
    }
}

/// Checks that `value`, the parameter `field`, is a canonical Sentinel-2 L1C name, and parses it.
fn s2_name(field: &str, value: &str) -> Result<S2ProductName, String> {
    match check_product_name(field, value, ProductKind::S2(S2Level::L1C))? {
        ProductName::S2(name) => Ok(name),
        ProductName::S1(_) => Err(format!("{field}: {value:?} is not a Sentinel-2 product")),
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
        let parsed = ProductName::parse(&product.name).map_err(not_an_input_or_malformed)?;
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
            inputs: Vec::new(),
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

    /// One job per L1C product over the area of interest, or per datatake split into partial-tile
    /// products: the partials of one datatake (same acquisition key and baseline, footprints that
    /// are not [`same_product`]) are the `inputs` of one job, named after the first by name. Of
    /// several versions of one product (see [`super::versions`]), the newest wins: older versions
    /// listed later are recorded `cancelled`, and older versions that are still waiting are
    /// cancelled in its favour. A newer version of a product already being processed is processed
    /// again only within [`SUPERSEDE_GRACE`] of sensing. A partial listed after the job of its
    /// datatake exists makes a new job with every partial, which replaces the old one (cancelled if
    /// it is still waiting, run again otherwise, without grace delay).
    async fn jobs_to_create(
        &self,
        ctx: &dyn JobContext,
        products: &[CatalogueProduct],
    ) -> Result<JobsToCreate, JobTypeError> {
        // A product's name holds its sensing time: one lookup by sensing time finds both the
        // products listed before and the other versions, duplicates or partials of the new ones.
        let mut found = build_candidates(products, |p| self.new_job(p));
        let same_times = ctx.jobs_measured_at(NAME, &found.sensing_times()).await?;
        let known: Vec<KnownJob> = same_times.into_iter().filter_map(KnownJob::new).collect();
        // A product is known when a job processes it, as its own product or as another partial.
        let known_ids: HashSet<&str> = known
            .iter()
            .flat_map(|k| {
                k.products
                    .iter()
                    .map(|p| p.input.l1c_id.as_str())
                    .chain(k.job.product_id.as_deref())
            })
            .collect();
        found.drop_products(&known_ids);
        let Candidates { mut out, jobs } = found;
        let listed: Vec<Candidate<'_>> = jobs
            .into_iter()
            .map(|(job, product, (name, footprint))| Candidate {
                job,
                product,
                name,
                footprint,
            })
            .collect();
        // Versions and partials can only match within one acquisition: index by it to stay linear
        // in the page.
        let mut listed_by_key: HashMap<S2AcquisitionKey, Vec<usize>> = HashMap::new();
        for (i, c) in listed.iter().enumerate() {
            listed_by_key
                .entry(c.name.acquisition_key())
                .or_default()
                .push(i);
        }
        let mut known_by_key: HashMap<S2AcquisitionKey, Vec<usize>> = HashMap::new();
        for (i, k) in known.iter().enumerate() {
            let keys: HashSet<S2AcquisitionKey> = k
                .products
                .iter()
                .map(|p| p.name.acquisition_key())
                .collect();
            for key in keys {
                known_by_key.entry(key).or_default().push(i);
            }
        }
        let same_acquisition_listed = |key: S2AcquisitionKey| {
            listed_by_key
                .get(&key)
                .into_iter()
                .flatten()
                .map(|&j| &listed[j])
        };
        let same_acquisition_known = |key: S2AcquisitionKey| {
            known_by_key
                .get(&key)
                .into_iter()
                .flatten()
                .map(|&j| &known[j])
        };
        // Whether `other` is another version of the same product as `me`: newer (`Greater`) or
        // older (`Less`).
        let version = |order: std::cmp::Ordering, me: Listed<'_>, other: Listed<'_>| {
            other.name.version_key().cmp(&me.name.version_key()) == order && same_product(me, other)
        };
        // Whether a product has a newer version, listed or known: its job is replaced by the
        // newer version's, and it is not processed again as a partial of another job.
        let outdated = |me: Listed<'_>| {
            let key = me.name.acquisition_key();
            same_acquisition_listed(key).any(|c| version(Greater, me, c.listed()))
                || same_acquisition_known(key)
                    .flat_map(|k| k.products.iter())
                    .any(|p| version(Greater, me, p.listed()))
        };
        // The newest other version of each listed product, listed or known, if there is one.
        let newer_of: Vec<Option<String>> = listed
            .iter()
            .map(|m| {
                let key = m.name.acquisition_key();
                let listed_newer = same_acquisition_listed(key)
                    .filter(|c| version(Greater, m.listed(), c.listed()))
                    .map(|c| c.name.to_string());
                let known_newer = same_acquisition_known(key)
                    .flat_map(|k| k.products.iter())
                    .filter(|p| version(Greater, m.listed(), p.listed()))
                    .map(|p| p.name.to_string());
                listed_newer.chain(known_newer).max()
            })
            .collect();
        for cluster in datatake_clusters(&listed, |i| newer_of[i].is_some()) {
            // Invariant: a cluster is not empty, its members share acquisition key and baseline,
            // and either all or none of them have a newer version.
            let members: Vec<&Candidate<'_>> = cluster.iter().map(|&i| &listed[i]).collect();
            let Some(lead) = members.first() else {
                continue;
            };
            let mut job = lead.job.clone();
            let key = lead.name.acquisition_key();
            let mut inputs: BTreeMap<String, L1cInput> = members
                .iter()
                .map(|m| (m.job.name.clone(), m.input()))
                .collect();
            if let Some(newer) = cluster.iter().filter_map(|&i| newer_of[i].clone()).max() {
                set_inputs(&mut job, inputs);
                mark_cancelled(
                    &mut job,
                    format!("superseded by a newer version of the same product: {newer}"),
                    "superseded",
                );
                out.jobs.push(job);
                continue;
            }
            // Jobs of older versions of a member, each with the member it is older than.
            let mut older: Vec<(&KnownJob, &Candidate<'_>)> = Vec::new();
            for m in &members {
                for k in same_acquisition_known(key) {
                    let is_older = k
                        .products
                        .iter()
                        .any(|p| version(Less, m.listed(), p.listed()));
                    if is_older && !older.iter().any(|(o, _)| o.job.id == k.job.id) {
                        older.push((k, m));
                    }
                }
            }
            let late = |m: &Candidate<'_>| {
                m.job
                    .measured_at
                    .is_some_and(|at| m.product.published_at - at > SUPERSEDE_GRACE)
            };
            if let Some((running, _)) = older
                .iter()
                .find(|(k, m)| !waiting(&k.job) && !gone(&k.job) && late(m))
            {
                set_inputs(&mut job, inputs);
                mark_cancelled(
                    &mut job,
                    format!(
                        "a newer version of {} (job {}), which is already processed or running; late versions are left to reprocessing campaigns",
                        running.job.name, running.job.id
                    ),
                    "late_version",
                );
                out.jobs.push(job);
                continue;
            }
            // Jobs of other partials of the datatake: their inputs are merged into this job. A job
            // whose products all have newer versions is replaced by theirs, not by this one.
            let siblings: Vec<&KnownJob> = same_acquisition_known(key)
                .filter(|k| !older.iter().any(|(o, _)| o.job.id == k.job.id))
                .filter(|k| k.is_partial_of(lead.name.baseline, &members))
                .filter(|k| k.products.iter().any(|p| !outdated(p.listed())))
                .collect();
            for sibling in &siblings {
                for p in &sibling.products {
                    // An old job without an input path cannot be staged again, and a product with
                    // a newer version is left to it.
                    if !p.input.input_path.is_empty() && !outdated(p.listed()) {
                        inputs
                            .entry(p.input.l1c_id.clone())
                            .or_insert_with(|| p.input.clone());
                    }
                }
            }
            // A sibling that another sibling already replaced is replaced through it.
            let replaced_by_siblings: HashSet<i64> = siblings
                .iter()
                .flat_map(|k| k.supersedes.iter().copied())
                .collect();
            let mut replaced: Vec<&Job> = older.iter().map(|(k, _)| &k.job).collect();
            for sibling in &siblings {
                if !replaced_by_siblings.contains(&sibling.job.id)
                    && !replaced.iter().any(|j| j.id == sibling.job.id)
                {
                    replaced.push(&sibling.job);
                }
            }
            for old in replaced.iter().filter(|j| waiting(j)) {
                if !out.superseded.iter().any(|s| s.job_id == old.id) {
                    out.superseded.push(Superseded {
                        job_id: old.id,
                        status: old.status,
                        attempt: old.attempt,
                        by: job.name.clone(),
                        why: if older.iter().any(|(o, _)| o.job.id == old.id) {
                            SupersededWhy::NewerVersion
                        } else {
                            SupersededWhy::MorePartials
                        },
                    });
                }
            }
            set_inputs(&mut job, inputs);
            if let Some(params) = job.params.as_object_mut() {
                let ids: Vec<i64> = replaced.iter().filter(|j| !gone(j)).map(|j| j.id).collect();
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
        // Two runs never write the same products at once: a job that replaces a job still running
        // (a re-run with every partial of the datatake, or a newer version) waits for it to end.
        // The replaced jobs share its sensing time.
        if !params.supersedes.is_empty() {
            let same_time = ctx.jobs_measured_at(NAME, &[measured]).await?;
            if let Some(busy) = same_time
                .iter()
                .find(|j| params.supersedes.contains(&j.id) && in_flight(j.status))
            {
                return Ok(Configured::decided(Configuration::Wait {
                    reason: format!(
                        "waiting for job {} ({}), which this job replaces, to end its run ({})",
                        busy.id,
                        busy.name,
                        busy.status.name()
                    ),
                    on: Some(busy.id),
                }));
            }
        }
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
        params.l2a_path_out = Some(format!("{tile}/L2A/{}", params.l2a_name()));
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
        // The other partial-tile products of the datatake; the job's own product is read from
        // the job's `input_path`, as for a job of one product.
        inputs.extend(
            params
                .inputs
                .iter()
                .filter(|input| input.l1c_id != params.l1c_id)
                .map(|input| TaskInput {
                    name: input.l1c_id.clone(),
                    source: input.input_path.clone(),
                    required: true,
                }),
        );
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

/// A listed product that may become a job (or one input of a job).
struct Candidate<'p> {
    /// The job it would be alone.
    job: NewJob,
    /// The catalogue's listing.
    product: &'p CatalogueProduct,
    /// Its parsed name.
    name: S2ProductName,
    /// Its footprint, if listed and readable.
    footprint: Option<Footprint>,
}

impl Candidate<'_> {
    fn listed(&self) -> Listed<'_> {
        Listed {
            name: &self.name,
            footprint: self.footprint.as_ref(),
        }
    }

    /// The product as an input of a job.
    fn input(&self) -> L1cInput {
        L1cInput {
            l1c_id: self.job.name.clone(),
            input_path: self.product.input_path.clone(),
            footprint: self.product.footprint.clone(),
        }
    }
}

/// One L1C product of an existing job, parsed.
struct KnownProduct {
    input: L1cInput,
    name: S2ProductName,
    footprint: Option<Footprint>,
}

impl KnownProduct {
    fn listed(&self) -> Listed<'_> {
        Listed {
            name: &self.name,
            footprint: self.footprint.as_ref(),
        }
    }
}

/// An existing job of the same sensing time as a listed product, with what ingestion needs of it.
struct KnownJob {
    job: Job,
    /// Its L1C products: `inputs`, or its own product for a job of one product.
    products: Vec<KnownProduct>,
    /// The jobs it replaces.
    supersedes: Vec<i64>,
}

impl KnownJob {
    /// `job` as ingestion sees it; `None` for a job without a product. A job whose params do not
    /// decode (written by other means) still counts through its product id.
    fn new(job: Job) -> Option<KnownJob> {
        let product_id = job.product_id.clone()?;
        let params = serde_json::from_value::<FscRlieParams>(job.params.clone()).ok();
        let parse = |input: L1cInput, footprint: Option<Footprint>| {
            let name = input.l1c_id.parse::<S2ProductName>().ok()?;
            Some(KnownProduct {
                input,
                name,
                footprint,
            })
        };
        let (products, supersedes) = match params {
            Some(p) if !p.inputs.is_empty() => {
                let products = p
                    .inputs
                    .into_iter()
                    .filter_map(|input| {
                        let footprint = input
                            .footprint
                            .as_ref()
                            .and_then(|f| Footprint::from_geojson(f).ok());
                        parse(input, footprint)
                    })
                    .collect();
                (products, p.supersedes)
            }
            params => {
                let own = L1cInput {
                    l1c_id: product_id,
                    input_path: job.input_path.clone().unwrap_or_default(),
                    footprint: job
                        .params
                        .get("footprint")
                        .filter(|f| f.is_object())
                        .cloned(),
                };
                let products = parse(own, footprint_of(&job.params)).into_iter().collect();
                (products, params.map(|p| p.supersedes).unwrap_or_default())
            }
        };
        Some(KnownJob {
            job,
            products,
            supersedes,
        })
    }

    /// Whether this job processes other partial-tile products of the datatake of `members` (of
    /// processing `baseline`): products of that baseline, none a version of a member. A job
    /// cancelled because a newer version exists is left out: the newer version's job stands for it.
    fn is_partial_of(&self, baseline: Baseline, members: &[&Candidate<'_>]) -> bool {
        let replaced_by_version = self.job.status == JobStatus::Cancelled
            && matches!(
                self.job
                    .params
                    .get("reprocessing_context")
                    .and_then(|c| c.as_str()),
                Some("superseded" | "late_version")
            );
        !replaced_by_version
            && !self.products.is_empty()
            && self.products.iter().all(|p| {
                p.name.baseline == baseline
                    && members.iter().all(|m| {
                        !same_product(
                            m.listed(),
                            Listed {
                                name: &p.name,
                                footprint: p.footprint.as_ref(),
                            },
                        )
                    })
            })
    }
}

/// The listed products grouped into jobs: products of one acquisition key and baseline that are
/// partials of each other (no two of them [`same_product`]) form one cluster, sorted by name (the
/// job is named after the first). Products that have a newer version (`superseded`) are clustered
/// apart from those that have none, so that a superseded product never takes a current partial
/// down with it. Clusters come in the order of their first listed member.
fn datatake_clusters(
    listed: &[Candidate<'_>],
    superseded: impl Fn(usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut groups: HashMap<(S2AcquisitionKey, Baseline, bool), Vec<usize>> = HashMap::new();
    for (i, c) in listed.iter().enumerate() {
        groups
            .entry((c.name.acquisition_key(), c.name.baseline, superseded(i)))
            .or_default()
            .push(i);
    }
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for (_, mut group) in groups {
        group.sort_by(|&a, &b| listed[a].job.name.cmp(&listed[b].job.name));
        let mut local: Vec<Vec<usize>> = Vec::new();
        for i in group {
            let partial_of_all = |cluster: &&mut Vec<usize>| {
                cluster
                    .iter()
                    .all(|&j| !same_product(listed[i].listed(), listed[j].listed()))
            };
            match local.iter_mut().find(partial_of_all) {
                Some(cluster) => cluster.push(i),
                None => local.push(vec![i]),
            }
        }
        clusters.extend(local);
    }
    clusters.sort_by_key(|cluster| cluster.iter().min().copied());
    clusters
}

/// Records `inputs` in the params of `job` when it has more than its own product.
fn set_inputs(job: &mut NewJob, inputs: BTreeMap<String, L1cInput>) {
    if inputs.len() < 2 {
        return;
    }
    let inputs: Vec<L1cInput> = inputs.into_values().collect();
    if let (Some(params), Ok(value)) = (job.params.as_object_mut(), serde_json::to_value(inputs)) {
        params.insert("inputs".into(), value);
    }
}

/// Whether `job` waits for dispatch: a replacement may still cancel it.
fn waiting(job: &Job) -> bool {
    matches!(
        job.status,
        JobStatus::Initialized | JobStatus::Configured | JobStatus::Ready
    )
}

/// Whether `job` ended without products to replace.
fn gone(job: &Job) -> bool {
    matches!(job.status, JobStatus::Cancelled | JobStatus::InternalError)
}

/// Whether a run of `job` may be writing its products: dispatched and not yet processed.
fn in_flight(status: JobStatus) -> bool {
    status == JobStatus::Queued || status.is_running()
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

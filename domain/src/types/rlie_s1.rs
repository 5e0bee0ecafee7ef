//! `rlie_s1`: Sentinel-1 GRD (IW, high resolution) -> River and Lake Ice Extent from radar (RLIE-S1).
//!
//! One job per GRD product; the S2 tiles its footprint covers are listed in `params` (filled by the
//! ingestion's area-of-interest step). Jobs are independent of each other, so they are always ready.
//! Unlike the original, the scientific code's exit code is classified (the original ignored it).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::common::{build_candidates, finish, mark_reprocessed, Candidates};
use super::common::{check_product_name, check_tile, not_an_input_or_malformed, ProductKind};
use super::{area_of_interest, SettingsError};
use super::{date_path, stand_in_command, utc_date, JobTypeOverrides, STAND_IN_IMAGE};
use crate::aoi::{Footprint, TileGrid};
use crate::context::JobContext;
use crate::exit_codes::{ExitClass, ExitCodeTable};
use crate::job::{Job, NewJob};
use crate::job_type::{input_path, parse_params, JobType, TaskPlan};
use crate::listing::CatalogueProduct;
use crate::product::{ProductName, Resolution, S1AcquisitionKey, S1Mode, S1ProductName};
use crate::publication::{
    resto_feature, ProductPublication, PublicationError, PublicationTarget, RestoProductInfo,
};
use crate::template::{
    InputProductType, JobTypeError, JobTypeSpec, JobsToCreate, RejectedProduct, TaskInput,
    TaskOutput,
};

/// The job type's name.
pub const NAME: &str = "rlie_s1";

/// Typed `params` of an `rlie_s1` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlieS1Params {
    /// Canonical GRD product name.
    pub s1grd_id: String,
    /// Mission, e.g. `S1A`.
    pub mission: String,
    /// Absolute orbit.
    pub absolute_orbit: u32,
    /// Relative orbit, when known for the mission.
    pub relative_orbit: Option<u16>,
    /// Mission datatake id.
    pub datatake_id: u32,
    /// End of sensing.
    pub sensing_stop: chrono::DateTime<chrono::Utc>,
    /// S2 tiles the footprint intersects.
    #[serde(default)]
    pub s2tile_ids: Vec<String>,
    /// Why the job is reprocessed, if it is.
    pub reprocessing_context: Option<String>,
}

impl RlieS1Params {
    /// Decodes and checks `value`, naming the field that is wrong: `s1grd_id` is the canonical name
    /// of a Sentinel-1 GRD product (the worker stages the input under it) and `s2tile_ids` are tile
    /// ids.
    pub fn parse(value: &serde_json::Value) -> Result<RlieS1Params, String> {
        parse_params::<RlieS1>(value)
    }

    fn check(&self) -> Result<(), String> {
        check_product_name("params.s1grd_id", &self.s1grd_id, ProductKind::S1Grd)?;
        for (i, tile) in self.s2tile_ids.iter().enumerate() {
            check_tile(&format!("params.s2tile_ids[{i}]"), tile)?;
        }
        Ok(())
    }
}

/// The `rlie_s1` job type.
#[derive(Debug)]
pub struct RlieS1 {
    spec: JobTypeSpec,
    exit_codes: ExitCodeTable,
    tiles: TileGrid,
}

/// Return codes of the RLIE-S1 scientific code.
pub fn exit_code_table() -> ExitCodeTable {
    ExitCodeTable::new([
        (0..=0, ExitClass::Success, "products generated"),
        (1..=99, ExitClass::InternalError, "unrecoverable error"),
        (
            100..=199,
            ExitClass::ExternalError,
            "expected error (transient)",
        ),
        (
            200..=249,
            ExitClass::NoProduct,
            "no tile of the footprint has usable data",
        ),
    ])
    .expect("the rlie_s1 exit-code table is valid")
}

impl RlieS1 {
    /// The job type with `overrides` applied; its area of interest is the EEA39 grid, or the
    /// `tiles` of the overrides.
    pub fn new(overrides: &JobTypeOverrides) -> Result<Self, SettingsError> {
        let spec = JobTypeSpec {
            name: NAME.into(),
            input_product_type: InputProductType::S1,
            nomad_job: "rlies1-processing".into(),
            worker_flavor: "hm.large".into(),
            output_products: vec!["rlies1".into()],
            max_attempts: 3,
            processing_start_date: utc_date(2021, 6, 24),
            image: STAND_IN_IMAGE.into(),
            command: stand_in_command(),
            processing_timeout: Duration::from_secs(2 * 3600),
            network: false,
        };
        Ok(RlieS1 {
            spec: overrides.apply(spec),
            exit_codes: exit_code_table(),
            tiles: area_of_interest(NAME, overrides)?,
        })
    }

    /// The job for `product`, with its acquisition key (equal for duplicates).
    fn new_job(&self, product: &CatalogueProduct) -> Result<(NewJob, S1AcquisitionKey), String> {
        let parsed = ProductName::parse(&product.name).map_err(not_an_input_or_malformed)?;
        let canonical = parsed.canonical();
        let ProductName::S1(name) = parsed else {
            return Err("skip: not a Sentinel-1 product".into());
        };
        if name.mode != S1Mode::IW || name.resolution != Resolution::High {
            return Err(format!(
                "skip: only IW GRDH products are processed, not {canonical}"
            ));
        }
        let footprint = product
            .footprint
            .as_ref()
            .ok_or_else(|| {
                "the catalogue gives no footprint: the tiles it covers are unknown".to_string()
            })
            .and_then(|f| {
                Footprint::from_geojson(f).map_err(|e| format!("unusable footprint: {e}"))
            })?;
        let s2tile_ids = self.tiles.tiles_intersecting(&footprint);
        if s2tile_ids.is_empty() {
            return Err("skip: the footprint covers no tile of the area of interest".into());
        }
        let params = RlieS1Params {
            s1grd_id: canonical.clone(),
            mission: name.mission.to_string(),
            absolute_orbit: name.absolute_orbit,
            relative_orbit: name.relative_orbit,
            datatake_id: name.datatake_id,
            sensing_stop: name.sensing_stop,
            s2tile_ids,
            reprocessing_context: None,
        };
        let mut job = NewJob::for_product(NAME, canonical, product, self.spec.max_attempts);
        job.measured_at = Some(name.sensing_start);
        job.params = serde_json::to_value(params).map_err(|e| e.to_string())?;
        Ok((job, name.acquisition_key()))
    }
}

#[async_trait]
impl JobType for RlieS1 {
    type Params = RlieS1Params;

    fn spec(&self) -> &JobTypeSpec {
        &self.spec
    }

    fn exit_codes(&self) -> &ExitCodeTable {
        &self.exit_codes
    }

    fn validate(params: &RlieS1Params) -> Result<(), String> {
        params.check()
    }

    fn catalogue_bbox(&self) -> Option<[f64; 4]> {
        self.tiles.bounding_box()
    }

    /// One job per IW GRDH product over the area of interest. Products that differ from a known
    /// one only in their CRC (a regenerated duplicate) or their `_COG` suffix are duplicates: the
    /// first one listed is kept. NRT-3h and Fast-24h products of one datatake are sliced
    /// differently, so they are different products and both are processed.
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
        let mut known: HashMap<S1AcquisitionKey, String> = same_times
            .into_iter()
            .filter_map(|j| {
                let name = j.product_id?.parse::<S1ProductName>().ok()?;
                Some((name.acquisition_key(), name.to_string()))
            })
            .collect();
        for (job, product, key) in jobs {
            if let Some(first) = known.get(&key) {
                out.skipped.push(RejectedProduct {
                    name: product.name.clone(),
                    reason: format!(
                        "duplicate of {first}: it differs only in its CRC or COG suffix"
                    ),
                });
                continue;
            }
            known.insert(key, job.name.clone());
            finish(self, &mut out, job);
        }
        Ok(out)
    }

    fn before_insertion(&self, job: &mut NewJob, reprocessed: bool) {
        if reprocessed {
            mark_reprocessed(job, self.spec.processing_start_date);
        }
    }

    fn task(&self, job: &Job, params: &RlieS1Params) -> Result<TaskPlan, JobTypeError> {
        let source = input_path(job)?;
        let measured = job
            .measured_at
            .ok_or_else(|| JobTypeError::invalid(job, "no sensing time"))?;
        let plan = TaskPlan::new(
            vec![TaskInput {
                name: params.s1grd_id.clone(),
                source,
                required: true,
            }],
            vec![TaskOutput {
                kind: "rlies1".into(),
                destination_prefix: format!(
                    "CLMS/Pan-European/High_Resolution_Layers/Ice/RLIE_S1/{}/",
                    date_path(measured)
                ),
            }],
        );
        Ok(plan.with_parameter("measured_at", serde_json::json!(measured)))
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
        let info = RestoProductInfo {
            product_type: "RLIE",
            mission: "S1",
            needs_cloud_cover: false,
        };
        products
            .iter()
            .map(|p| resto_feature(job, p, info, target))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::JobTemplate;
    use crate::testing::{job_from_new, listed, MemoryContext};

    const GRD: &str = "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A.SAFE";

    fn rlie() -> RlieS1 {
        RlieS1::new(&JobTypeOverrides::default()).unwrap()
    }

    /// An IW swath over the western Alps (about 250 km by 170 km).
    fn over_the_alps(name: &str, published: &str) -> CatalogueProduct {
        let mut p = listed(name, published);
        p.footprint = Some(
            serde_json::json!({"type": "Polygon", "coordinates": [[[6.2, 44.9], [9.4, 45.3], [9.0, 46.8], [5.8, 46.4], [6.2, 44.9]]]}),
        );
        p
    }

    #[test]
    fn identifiers_that_are_not_a_grd_name_or_tiles_are_refused_naming_the_field() {
        let t = rlie();
        let good = serde_json::json!({"s1grd_id": "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A",
            "mission": "S1A", "absolute_orbit": 37419, "relative_orbit": 15, "datatake_id": 289047,
            "sensing_stop": "2021-04-12T15:11:36Z", "s2tile_ids": ["32TLR"], "reprocessing_context": null});
        t.check_params(&good).unwrap();
        for (field, value, expected) in [
            ("s1grd_id", serde_json::json!("/tmp/x"), "params.s1grd_id"),
            (
                "s1grd_id",
                serde_json::json!(
                    "x/S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A"
                ),
                "params.s1grd_id",
            ),
            (
                "s1grd_id",
                serde_json::json!("S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408"),
                "params.s1grd_id",
            ),
            (
                "s2tile_ids",
                serde_json::json!(["../x"]),
                "params.s2tile_ids[0]",
            ),
        ] {
            let mut params = good.clone();
            params[field] = value;
            let err = t.check_params(&params).unwrap_err();
            assert!(err.contains(expected), "{params}: {err}");
            let mut job = job_from_new(&NewJob::new(NAME, "s1", 3), 1);
            job.input_path = Some("/eodata/x".into());
            job.measured_at = Some("2021-04-12T15:11:11Z".parse().unwrap());
            job.params = params;
            let err = t.worker_task(&job).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[tokio::test]
    async fn keeps_iw_grdh_over_the_area_and_lists_the_tiles_it_covers() {
        let t = rlie();
        let ctx = MemoryContext::default();
        let mut atlantic = over_the_alps(
            "S1A_IW_GRDH_1SDV_20210412T151211_20210412T151236_037419_046917_3C4D",
            "2021-04-12T16:00:00Z",
        );
        atlantic.footprint = Some(
            serde_json::json!({"type": "Polygon", "coordinates": [[[-40.0, 40.0], [-38.0, 40.0], [-38.0, 42.0], [-40.0, 40.0]]]}),
        );
        let mut blind = over_the_alps(
            "S1A_IW_GRDH_1SDV_20210412T151311_20210412T151336_037419_046917_5E6F",
            "2021-04-12T16:00:00Z",
        );
        blind.footprint = None;
        let page = [
            over_the_alps(GRD, "2021-04-12T16:00:00Z"),
            over_the_alps(
                "S1A_EW_GRDM_1SDH_20210412T151111_20210412T151136_037419_046917_218B",
                "2021-04-12T16:00:00Z",
            ),
            listed(
                "S2A_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408",
                "2021-04-13T16:00:00Z",
            ),
            listed("S1A_IW_GRDH_1SDV_2021", "2021-04-12T16:00:00Z"),
            atlantic,
            blind,
        ];
        let out = t.get_jobs_to_create(&ctx, &page).await.unwrap();
        assert_eq!(out.jobs.len(), 1);
        let skipped: Vec<&str> = out.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(
            skipped[2].contains("covers no tile of the area of interest"),
            "{skipped:?}"
        );
        assert_eq!(out.rejected.len(), 2, "{:?}", out.rejected);
        assert!(
            out.rejected[1].reason.contains("no footprint"),
            "{:?}",
            out.rejected
        );
        let job = &out.jobs[0];
        // Sensed before the default processing start date (2021-06-24): recorded as cancelled.
        assert_eq!(job.initial_status, crate::JobStatus::Cancelled);
        let params: RlieS1Params = serde_json::from_value(job.params.clone()).unwrap();
        assert_eq!(params.absolute_orbit, 37419);
        assert_eq!(params.datatake_id, 0x046917);
        assert_eq!(params.relative_orbit, Some(72));
        assert!(
            params.s2tile_ids.contains(&"32TLR".to_string()),
            "{:?}",
            params.s2tile_ids
        );
        assert!(
            params.s2tile_ids.contains(&"32TMS".to_string()),
            "{:?}",
            params.s2tile_ids
        );
        assert!(!params.s2tile_ids.contains(&"33TUN".to_string()));
        assert_eq!(
            params.reprocessing_context.as_deref(),
            Some("before_processing_start_date")
        );
        let task = t.worker_task(&job_from_new(job, 7)).unwrap();
        assert!(task.outputs[0]
            .destination_prefix
            .ends_with("RLIE_S1/2021/04/12/"));
        assert_eq!(task.exit_codes.classify(150), ExitClass::ExternalError);
    }

    /// The real duplicate pair of catalogue notes §2.4 differs only in its CRC (EBF8 published at
    /// 07:55, 6184 at 08:51); the COG twin differs only in its suffix. The NRT-3h and Fast-24h
    /// products of one datatake are sliced 3 s apart: two products.
    #[tokio::test]
    async fn crc_and_cog_twins_are_duplicates_but_re_slicings_are_not() {
        let t = rlie();
        let first = "S1B_IW_GRDH_1SDV_20210711T055219_20210711T055244_027738_034F9D_EBF8";
        let regenerated = "S1B_IW_GRDH_1SDV_20210711T055219_20210711T055244_027738_034F9D_6184";
        let cog = "S1B_IW_GRDH_1SDV_20210711T055219_20210711T055244_027738_034F9D_EBF8_COG";
        let nrt = "S1B_IW_GRDH_1SDV_20210711T055312_20210711T055337_027738_034F9D_0FCC";
        let fast = "S1B_IW_GRDH_1SDV_20210711T055315_20210711T055340_027738_034F9D_4C69";
        let page = [
            over_the_alps(first, "2021-07-11T07:55:00Z"),
            over_the_alps(regenerated, "2021-07-11T08:51:00Z"),
            over_the_alps(nrt, "2021-07-11T07:17:00Z"),
            over_the_alps(fast, "2021-07-11T10:33:00Z"),
        ];
        let out = t
            .get_jobs_to_create(&MemoryContext::default(), &page)
            .await
            .unwrap();
        let names: Vec<&str> = out.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, vec![first, nrt, fast]);
        assert_eq!(out.skipped.len(), 1);
        assert_eq!(
            out.skipped[0].reason,
            format!("duplicate of {first}: it differs only in its CRC or COG suffix")
        );

        // Against the database: the twin listed later is a duplicate of the known job.
        let ctx = MemoryContext {
            jobs: vec![job_from_new(&out.jobs[0], 1)],
        };
        let out = t
            .get_jobs_to_create(
                &ctx,
                &[
                    over_the_alps(cog, "2021-07-11T12:00:00Z"),
                    over_the_alps(regenerated, "2021-07-11T08:51:00Z"),
                ],
            )
            .await
            .unwrap();
        assert!(out.jobs.is_empty(), "{:?}", out.jobs);
        assert_eq!(out.skipped.len(), 2);
    }
}

//! The job types swath ships, and how configuration adjusts them.
//!
//! - [`fsc_rlie`]: Sentinel-2 L1C -> FSC and RLIE products, one time series per tile.
//! - [`rlie_s1`]: Sentinel-1 GRD -> RLIE-S1 products over the tiles its footprint covers.
//! - [`test_job`]: a smoke-test type that accepts any product.
//! - [`follow_up`]: `fsc_rlie_quicklook` and `fsc_rlie_check`, created by processed `fsc_rlie` jobs.
//!
//! Each implements [`crate::job_type::JobType`]. Adding a job type is one file here plus one line in
//! `BUILTIN` (and its `mod` line).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aoi::{Footprint, TileGrid};
use crate::template::{JobTemplate, JobTypeSpec};

mod common;
pub mod follow_up;
pub mod fsc_rlie;
pub mod rlie_s1;
pub mod test_job;
pub mod versions;

/// Image of the stand-in scientific code used by the demo and the tests (built locally from
/// `worker/standin/` by `scripts/tools-docker.sh`). Deployments set their real images.
pub const STAND_IN_IMAGE: &str = "swath-standin:latest";

/// The stand-in's command. A real chain's command may name its parameter file with `{params}`.
pub fn stand_in_command() -> Vec<String> {
    vec!["/bin/sh".into(), "/standin/run.sh".into()]
}

/// Per-job-type settings that a deployment may override. Unset fields keep the job type's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTypeOverrides {
    /// Container image of the scientific code.
    pub image: Option<String>,
    /// Command run in the image.
    pub command: Option<Vec<String>>,
    /// Attempts allowed.
    pub max_attempts: Option<i32>,
    /// Wall-clock limit of the scientific code, in seconds.
    pub processing_timeout_secs: Option<u64>,
    /// Inputs sensed before this date are recorded as cancelled. Written as an RFC 3339 time or a
    /// `YYYY-MM-DD` date (its midnight UTC).
    #[serde(default, with = "crate::dates::optional_date")]
    pub processing_start_date: Option<DateTime<Utc>>,
    /// Worker flavor.
    pub worker_flavor: Option<String>,
    /// Area of interest: the only tiles processed (all tiles when unset).
    pub tiles: Option<BTreeSet<String>>,
}

/// Job type settings that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Settings name a job type that does not exist.
    #[error("settings name unknown job type {0:?} (known: {known})", known = builtin_names().join(", "))]
    UnknownJobType(String),
    /// An area of interest names tiles outside the EEA39 grid.
    #[error("{job_type}: tiles {tiles:?} are not EEA39 Sentinel-2 tiles (ids like 32TLR, without the T)")]
    UnknownTiles {
        /// The job type.
        job_type: String,
        /// The unknown tiles.
        tiles: Vec<String>,
    },
}

/// The area of interest of `job_type`: the EEA39 grid, or the `tiles` of `overrides`.
pub(crate) fn area_of_interest(
    job_type: &str,
    overrides: &JobTypeOverrides,
) -> Result<TileGrid, SettingsError> {
    let grid = TileGrid::eea39();
    match &overrides.tiles {
        None => Ok(grid.clone()),
        Some(tiles) => grid
            .restrict(tiles.iter().map(String::as_str))
            .map_err(|e| match e {
                crate::aoi::AoiError::UnknownTiles { tiles } => SettingsError::UnknownTiles {
                    job_type: job_type.into(),
                    tiles,
                },
                other => SettingsError::UnknownTiles {
                    job_type: job_type.into(),
                    tiles: vec![other.to_string()],
                },
            }),
    }
}

/// The catalogue footprint stored in a job's params (`footprint`, GeoJSON), if any and valid.
pub(crate) fn footprint_of(params: &serde_json::Value) -> Option<Footprint> {
    params
        .get("footprint")
        .filter(|f| f.is_object())
        .and_then(|f| Footprint::from_geojson(f).ok())
}

impl JobTypeOverrides {
    /// Applies these overrides to a default spec.
    pub fn apply(&self, mut spec: JobTypeSpec) -> JobTypeSpec {
        if let Some(image) = &self.image {
            spec.image.clone_from(image);
        }
        if let Some(command) = &self.command {
            spec.command.clone_from(command);
        }
        if let Some(max) = self.max_attempts {
            spec.max_attempts = max;
        }
        if let Some(secs) = self.processing_timeout_secs {
            spec.processing_timeout = Duration::from_secs(secs);
        }
        if let Some(date) = self.processing_start_date {
            spec.processing_start_date = Some(date);
        }
        if let Some(flavor) = &self.worker_flavor {
            spec.worker_flavor.clone_from(flavor);
        }
        spec
    }
}

/// Builds one shipped job type with its overrides.
type Build = fn(&JobTypeOverrides) -> Result<Arc<dyn JobTemplate>, SettingsError>;

/// The shipped job types: each name with how to build it. This is the one list of job types; the
/// settings' known names and the registry's content come from it.
const BUILTIN: &[(&str, Build)] = &[
    (fsc_rlie::NAME, |o| Ok(Arc::new(fsc_rlie::FscRlie::new(o)?))),
    (rlie_s1::NAME, |o| Ok(Arc::new(rlie_s1::RlieS1::new(o)?))),
    (test_job::NAME, |o| Ok(Arc::new(test_job::TestJob::new(o)))),
    (follow_up::QUICKLOOK, |o| {
        Ok(Arc::new(follow_up::FollowUp::quicklook(o)))
    }),
    (follow_up::CHECK, |o| {
        Ok(Arc::new(follow_up::FollowUp::check(o)))
    }),
];

/// The names of the shipped job types, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names
}

/// The shipped job types, with `overrides` applied (keyed by job type name).
pub fn builtin_job_types(
    overrides: &BTreeMap<String, JobTypeOverrides>,
) -> Result<Vec<Arc<dyn JobTemplate>>, SettingsError> {
    if let Some(unknown) = overrides
        .keys()
        .find(|k| !BUILTIN.iter().any(|(name, _)| name == k))
    {
        return Err(SettingsError::UnknownJobType(unknown.clone()));
    }
    BUILTIN
        .iter()
        .map(|(name, build)| build(&overrides.get(*name).cloned().unwrap_or_default()))
        .collect()
}

/// `YYYY/MM/DD` of a date, as used in product paths.
pub(crate) fn date_path(at: DateTime<Utc>) -> String {
    at.format("%Y/%m/%d").to_string()
}

/// Midnight UTC of a calendar date (for defaults written as dates).
pub(crate) fn utc_date(year: i32, month: u32, day: u32) -> Option<DateTime<Utc>> {
    chrono::NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor::default_flavors;
    use crate::registry::{JobTypeRegistry, RegistryError};

    #[test]
    fn builtin_types_register_with_the_default_flavors() {
        let types = builtin_job_types(&BTreeMap::new()).unwrap();
        let registry = JobTypeRegistry::new(types, &default_flavors()).unwrap();
        assert_eq!(
            registry.names(),
            vec![
                "fsc_rlie",
                "fsc_rlie_check",
                "fsc_rlie_quicklook",
                "rlie_s1",
                "test_job"
            ]
        );
    }

    #[test]
    fn each_listed_name_is_the_name_of_the_job_type_it_builds() {
        let types = builtin_job_types(&BTreeMap::new()).unwrap();
        let built: Vec<&str> = types.iter().map(|t| t.spec().name.as_str()).collect();
        let listed: Vec<&str> = BUILTIN.iter().map(|(name, _)| *name).collect();
        assert_eq!(built, listed);
        let message = SettingsError::UnknownJobType("x".into()).to_string();
        assert!(
            message.starts_with("settings name unknown job type \"x\" (known: fsc_rlie, "),
            "{message}"
        );
        for name in listed {
            assert!(message.contains(name), "{message} lacks {name}");
        }
    }

    #[test]
    fn duplicate_names_fail_at_start_up() {
        let mut types = builtin_job_types(&BTreeMap::new()).unwrap();
        types.push(Arc::new(test_job::TestJob::new(
            &JobTypeOverrides::default(),
        )));
        let err = JobTypeRegistry::new(types, &default_flavors()).unwrap_err();
        assert_eq!(err, RegistryError::Duplicate("test_job".into()));
    }

    #[test]
    fn overrides_apply_and_bad_ones_are_reported() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "fsc_rlie".to_string(),
            JobTypeOverrides {
                image: Some("registry/si@sha256:abc".into()),
                max_attempts: Some(5),
                worker_flavor: Some("hm.huge".into()),
                ..Default::default()
            },
        );
        let types = builtin_job_types(&overrides).unwrap();
        let fsc = types.iter().find(|t| t.spec().name == "fsc_rlie").unwrap();
        assert_eq!(fsc.spec().image, "registry/si@sha256:abc");
        assert_eq!(fsc.spec().max_attempts, 5);
        let err = JobTypeRegistry::new(types, &default_flavors()).unwrap_err();
        assert!(matches!(err, RegistryError::UnknownFlavor { .. }), "{err}");
        assert!(err.to_string().contains("hm.huge"));

        overrides.insert("fsc_rlei".into(), JobTypeOverrides::default());
        let err = builtin_job_types(&overrides).unwrap_err();
        assert_eq!(err, SettingsError::UnknownJobType("fsc_rlei".into()));
        overrides.remove("fsc_rlei");

        let mut tiles = BTreeMap::new();
        tiles.insert(
            "fsc_rlie".to_string(),
            JobTypeOverrides {
                tiles: Some(
                    [
                        "32TLR".to_string(),
                        "54PXA".to_string(),
                        "T31UFS".to_string(),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
        );
        let err = builtin_job_types(&tiles).unwrap_err();
        assert_eq!(
            err,
            SettingsError::UnknownTiles {
                job_type: "fsc_rlie".into(),
                tiles: vec!["54PXA".into(), "T31UFS".into()]
            }
        );

        let mut zero = BTreeMap::new();
        zero.insert(
            "test_job".to_string(),
            JobTypeOverrides {
                max_attempts: Some(0),
                ..Default::default()
            },
        );
        let err = JobTypeRegistry::new(builtin_job_types(&zero).unwrap(), &default_flavors())
            .unwrap_err();
        assert!(
            err.to_string().contains("max_attempts must be at least 1"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn other_kinds_of_products_are_not_for_the_type_and_malformed_names_are_rejected() {
        let other = [
            "S1A_AUX_INS_V20190228T092500_G20210104T141310.SAFE",
            "S1A_OPER_AUX_POEORB_OPOD_20210401T121624_V20210311T225942_20210313T005942.EOF",
            "S2A_OPER_AUX_ECMWFD_ADG__20210101T000000_V20210101T000000_20210102T000000",
            "S1A_IW_SLC__1SDV_20210412T151111_20210412T151136_037419_046917_1F2E.SAFE",
        ];
        let malformed = "S2A_MSIL1C_20201308T010311_N0500_R045_T32TLR_20230413T212505.SAFE";
        let page: Vec<_> = other
            .iter()
            .chain([&malformed])
            .map(|name| crate::testing::listed(name, "2021-04-13T13:00:00Z"))
            .collect();
        let ctx = crate::testing::MemoryContext::default();
        for job_type in builtin_job_types(&BTreeMap::new()).unwrap() {
            let name = job_type.spec().name.clone();
            if name != fsc_rlie::NAME && name != rlie_s1::NAME {
                continue;
            }
            let out = job_type.get_jobs_to_create(&ctx, &page).await.unwrap();
            let skipped: Vec<&str> = out.skipped.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(skipped, other, "{name}: {:?}", out.skipped);
            assert!(
                out.skipped[0]
                    .reason
                    .contains("auxiliary data file (AUX_INS)"),
                "{name}: {:?}",
                out.skipped[0]
            );
            let rejected: Vec<&str> = out.rejected.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(rejected, [malformed], "{name}");
            assert!(
                out.rejected[0].reason.contains("month 13"),
                "{name}: {:?}",
                out.rejected[0]
            );
            assert!(out.jobs.is_empty());
        }
    }
}

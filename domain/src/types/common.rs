//! Helpers shared by the job types that create one job per catalogue product.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use crate::context::JobContext;
use crate::job::{Job, JobPriority, NewJob};
use crate::job_type::JobType;
use crate::listing::CatalogueProduct;
use crate::product::{ProductName, ProductNameError, S2Level, TileId};
use crate::status::JobStatus;
use crate::template::{JobTypeError, JobsToCreate, RejectedProduct};

/// The products of a page that a job type may turn into jobs, each with what the job type parsed
/// from it (`T`), after dropping those that already have a job. Skipped and rejected products are
/// already sorted into `out`.
pub(crate) struct Candidates<'p, T> {
    /// Skipped and rejected products so far; jobs are added by the caller.
    pub out: JobsToCreate,
    /// New jobs, each with the listed product it comes from and what was parsed from it.
    pub jobs: Vec<(NewJob, &'p CatalogueProduct, T)>,
}

/// Longest file name accepted in parameters (the usual file system limit, in bytes).
pub(crate) const MAX_FILE_NAME: usize = 255;
/// Longest path accepted in parameters, in bytes.
pub(crate) const MAX_PATH: usize = 1024;

/// Checks that `value`, the parameter `field`, is one file name: the worker stages an input under
/// such a name, so it must not leave its directory. Non-empty, at most [`MAX_FILE_NAME`] bytes,
/// neither `.` nor `..`, without `/`, backslashes or control characters.
pub(crate) fn check_file_name(field: &str, value: &str) -> Result<(), String> {
    let problem = if value.is_empty() {
        "is empty".to_string()
    } else if value.len() > MAX_FILE_NAME {
        format!("is longer than {MAX_FILE_NAME} bytes")
    } else if value == "." || value == ".." {
        "names a directory, not a file".to_string()
    } else if value.contains(['/', '\\']) {
        "holds a path separator: one file name is needed".to_string()
    } else if value.chars().any(char::is_control) {
        "holds control characters".to_string()
    } else {
        return Ok(());
    };
    Err(format!("{field}: {value:?} {problem}"))
}

/// Checks that `value`, the parameter `field`, is a relative path inside a store: non-empty, at most
/// [`MAX_PATH`] bytes, not absolute, without empty, `.` or `..` segments, backslashes or
/// control characters. Returns its segments.
pub(crate) fn check_relative_path<'v>(field: &str, value: &'v str) -> Result<Vec<&'v str>, String> {
    let problem = if value.is_empty() {
        "is empty"
    } else if value.len() > MAX_PATH {
        "is too long"
    } else if value.starts_with('/') {
        "is absolute: a path relative to the store is needed"
    } else if value.contains('\\') || value.chars().any(char::is_control) {
        "holds a backslash or control characters"
    } else {
        let segments: Vec<&str> = value.split('/').collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
        {
            "has an empty, `.` or `..` segment"
        } else {
            return Ok(segments);
        }
    };
    Err(format!("{field}: {value:?} {problem}"))
}

/// The kind of product a parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProductKind {
    /// A Sentinel-2 product of this level.
    S2(S2Level),
    /// A Sentinel-1 GRD product.
    S1Grd,
}

/// Checks that `value`, the parameter `field`, is the canonical name of a product of `kind` (as
/// ingestion writes it: upper case, no path, no `.SAFE`), naming what is wrong.
pub(crate) fn check_product_name(
    field: &str,
    value: &str,
    kind: ProductKind,
) -> Result<ProductName, String> {
    check_file_name(field, value)?;
    let parsed = ProductName::parse(value).map_err(|e| format!("{field}: {e}"))?;
    let canonical = parsed.canonical();
    if canonical != value {
        return Err(format!(
            "{field}: {value:?} is not a canonical product name (expected {canonical:?})"
        ));
    }
    match (kind, &parsed) {
        (ProductKind::S2(level), ProductName::S2(name)) if name.level == level => Ok(parsed),
        (ProductKind::S2(level), ProductName::S2(name)) => Err(format!(
            "{field}: {value:?} is a Sentinel-2 {} product, an {level} one is needed",
            name.level
        )),
        (ProductKind::S2(level), ProductName::S1(_)) => Err(format!(
            "{field}: {value:?} is a Sentinel-1 product, a Sentinel-2 {level} one is needed"
        )),
        (ProductKind::S1Grd, ProductName::S1(_)) => Ok(parsed),
        (ProductKind::S1Grd, ProductName::S2(_)) => Err(format!(
            "{field}: {value:?} is a Sentinel-2 product, a Sentinel-1 GRD one is needed"
        )),
    }
}

/// Checks that `value`, the parameter `field`, is a tile id as stored (`32TLR`: no `T`, upper case).
pub(crate) fn check_tile(field: &str, value: &str) -> Result<TileId, String> {
    let tile = TileId::parse(value).map_err(|e| format!("{field}: {value:?}: {}", e.reason))?;
    if tile.to_string() != value {
        return Err(format!(
            "{field}: {value:?} is not a tile id as stored (expected {:?})",
            tile.to_string()
        ));
    }
    Ok(tile)
}

/// The `build_candidates` reason of a listed name that does not parse: a name of another kind of
/// product (auxiliary data, ground-segment files, other product types and missions, see
/// [`ProductNameError::other_product`]) is skipped as not an input of the job type; a malformed
/// one is rejected (quarantined).
pub(crate) fn not_an_input_or_malformed(e: ProductNameError) -> String {
    if e.other_product {
        format!("skip: {}", e.reason)
    } else {
        e.to_string()
    }
}

/// Builds one candidate job per product with `build` (an `Err` starting with `skip: ` skips the
/// product, any other `Err` rejects it), keeping the first of several listings of one product.
pub(crate) fn build_candidates<'p, T>(
    products: &'p [CatalogueProduct],
    build: impl Fn(&CatalogueProduct) -> Result<(NewJob, T), String>,
) -> Candidates<'p, T> {
    let mut out = JobsToCreate::default();
    let mut jobs = Vec::with_capacity(products.len());
    let mut seen = HashSet::with_capacity(products.len());
    for product in products {
        match build(product) {
            Ok((job, parsed)) => {
                if seen.insert(job.name.clone()) {
                    jobs.push((job, product, parsed));
                }
            }
            Err(reason) => {
                let (list, reason) = match reason.strip_prefix("skip: ") {
                    Some(r) => (&mut out.skipped, r.to_string()),
                    None => (&mut out.rejected, reason),
                };
                list.push(RejectedProduct {
                    name: product.name.clone(),
                    reason,
                });
            }
        }
    }
    Candidates { out, jobs }
}

impl<T> Candidates<'_, T> {
    /// Drops the candidates whose product already has one of `existing` jobs.
    pub(crate) fn drop_known<'a>(&mut self, existing: impl IntoIterator<Item = &'a Job>) {
        let known: HashSet<&str> = existing
            .into_iter()
            .filter_map(|j| j.product_id.as_deref())
            .collect();
        self.drop_products(&known);
    }

    /// Drops the candidates whose product id is one of `known`.
    pub(crate) fn drop_products(&mut self, known: &HashSet<&str>) {
        self.jobs
            .retain(|(job, _, _)| !job.product_id.as_deref().is_some_and(|p| known.contains(p)));
    }

    /// The sensing times of the candidates.
    pub(crate) fn sensing_times(&self) -> Vec<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter_map(|(job, _, _)| job.measured_at)
            .collect()
    }
}

/// Applies the processing start date and the job type's pre-insertion setup, then adds the job.
pub(crate) fn finish<T: JobType>(job_type: &T, out: &mut JobsToCreate, mut job: NewJob) {
    let start = job_type.spec().processing_start_date;
    let reprocessed = matches!((job.measured_at, start), (Some(m), Some(s)) if m < s);
    job_type.before_insertion(&mut job, reprocessed);
    out.jobs.push(job);
}

/// Builds the candidates, drops the products that already have a job (one lookup by product),
/// then [`finish`]es each: for job types whose products are independent of each other.
pub(crate) async fn jobs_from_products<T: JobType>(
    job_type: &T,
    ctx: &dyn JobContext,
    products: &[CatalogueProduct],
    build: impl Fn(&CatalogueProduct) -> Result<NewJob, String>,
) -> Result<JobsToCreate, JobTypeError> {
    let mut found = build_candidates(products, |p| build(p).map(|job| (job, ())));
    let ids: Vec<String> = found
        .jobs
        .iter()
        .filter_map(|(j, _, _)| j.product_id.clone())
        .collect();
    let existing = ctx.jobs_with_products(&job_type.spec().name, &ids).await?;
    found.drop_known(&existing);
    let Candidates { mut out, jobs } = found;
    for (job, _, _) in jobs {
        finish(job_type, &mut out, job);
    }
    Ok(out)
}

/// Marks a job as created `cancelled` for `reason` (recorded in its history), with `context` as its
/// reprocessing context.
pub(crate) fn mark_cancelled(job: &mut NewJob, reason: String, context: &str) {
    job.priority = JobPriority::Reprocessing;
    job.initial_status = JobStatus::Cancelled;
    job.initial_message = Some(reason);
    if let Some(params) = job.params.as_object_mut() {
        params.insert("reprocessing_context".into(), context.into());
    }
}

/// Marks a job as reprocessed: it starts `cancelled` with the reason recorded, and its params say
/// why (`reprocessing_context`).
pub(crate) fn mark_reprocessed(job: &mut NewJob, start: Option<DateTime<Utc>>) {
    job.priority = JobPriority::Reprocessing;
    job.initial_status = JobStatus::Cancelled;
    job.initial_message = Some(match start {
        Some(s) => format!(
            "sensed before the processing start date {}: part of a reprocessing campaign",
            s.format("%Y-%m-%d")
        ),
        None => "part of a reprocessing campaign".to_string(),
    });
    if let Some(params) = job.params.as_object_mut() {
        params.insert(
            "reprocessing_context".into(),
            "before_processing_start_date".into(),
        );
    }
}

//! The completeness report: "is every product of last month there?".
//!
//! For one job type and a window of sensing days [`from`, `to`) (at most [`MAX_WINDOW_DAYS`]),
//! optionally some tiles, it counts per (tile, day) the inputs swath knows (the products of its jobs
//! and the products it skipped, see `skipped_products`) and what became of them, and lists every
//! gap with its reason. A product is counted by the last job of its retry chain; a product with
//! several chains (an original and a campaign's job) by its newest job.
//!
//! With the catalogue check, the catalogue is listed again over the publication window
//! [`from`, `to` + [`CATALOGUE_MARGIN_DAYS`]) (capped at now: a product is published after it is
//! sensed, most within days), and the inputs it holds for the window that swath never saw (no
//! job, not skipped, not quarantined) are gaps `never_listed`.
//!
//! The cost is bounded by the window: the rows read are those of the window's sensing days.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use swath_domain::context::{ContextError, JobContext};
use swath_domain::registry::JobTypeRegistry;
use swath_domain::template::JobTypeError;
use swath_domain::{Job, JobStatus, JobTemplate};

use crate::catalogue::{collection_for, Catalogue, CatalogueError, CatalogueQuery};
use crate::db::reports::{job_rows, seen_products, skipped_rows, JobRow};
use crate::db::DbError;

/// The longest window a report covers, in days.
pub const MAX_WINDOW_DAYS: i64 = 93;
/// How long after the window's end the catalogue check still looks for publications, in days.
pub const CATALOGUE_MARGIN_DAYS: u64 = 30;
/// Most catalogue pages the check lists (a safety net; the window bounds it first).
const MAX_CATALOGUE_PAGES: usize = 100_000;

/// What to report on, as the command line and the API give it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletenessRequest {
    /// The job type.
    pub job_type: String,
    /// First sensing day.
    pub from: NaiveDate,
    /// Day after the last sensing day.
    pub to: NaiveDate,
    /// Only these tiles (all tiles with inputs otherwise).
    pub tiles: Option<Vec<String>>,
}

impl CompletenessRequest {
    /// Reads the parameters (dates as `swath_engine::config::parse_date` reads them, a time
    /// standing for its UTC day); an error names the parameter at fault.
    pub fn parse(
        registry: &JobTypeRegistry,
        job_type: &str,
        from: &str,
        to: &str,
        tiles: Option<&str>,
    ) -> Result<Self, String> {
        if registry.get(job_type).is_none() {
            return Err(format!(
                "type: unknown job type {job_type:?} (known: {})",
                registry.names().join(", ")
            ));
        }
        let day = |name: &str, text: &str| -> Result<NaiveDate, String> {
            crate::config::parse_date(text.trim())
                .map(|t| t.date_naive())
                .map_err(|e| format!("{name}: {e}"))
        };
        let (from, to) = (day("from", from)?, day("to", to)?);
        if to <= from {
            return Err(format!("to: {to} must be after from ({from})"));
        }
        let days = (to - from).num_days();
        if days > MAX_WINDOW_DAYS {
            return Err(format!(
                "to: the window is {days} days, more than the {MAX_WINDOW_DAYS} a report covers; \
                 split it"
            ));
        }
        let tiles = match tiles {
            None => None,
            Some(text) => {
                let mut list = Vec::new();
                for tile in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let tile = tile.to_ascii_uppercase();
                    let valid = tile.len() == 5
                        && tile[..2].bytes().all(|b| b.is_ascii_digit())
                        && tile[2..].bytes().all(|b| b.is_ascii_uppercase());
                    if !valid {
                        return Err(format!("tiles: {tile:?} is not an MGRS tile (e.g. 32TLR)"));
                    }
                    if !list.contains(&tile) {
                        list.push(tile);
                    }
                }
                if list.is_empty() {
                    return Err("tiles: no tile given".into());
                }
                if list.len() > 1000 {
                    return Err("tiles: at most 1000 tiles".into());
                }
                Some(list)
            }
        };
        Ok(CompletenessRequest {
            job_type: job_type.to_string(),
            from,
            to,
            tiles,
        })
    }

    fn start(&self) -> DateTime<Utc> {
        self.from.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    fn end(&self) -> DateTime<Utc> {
        self.to.and_time(chrono::NaiveTime::MIN).and_utc()
    }
}

/// The state of one (tile, day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Every input ended with its job done (published in time, not withdrawn).
    Complete,
    /// Some inputs were skipped, cancelled, withdrawn, published late or never listed.
    Gaps,
    /// A job failed.
    Failed,
    /// A job has not ended yet.
    Waiting,
    /// No input known.
    Empty,
}

/// The counts of one (tile, day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The tile (`""` for inputs without one).
    pub tile: String,
    /// The sensing day (UTC).
    pub day: NaiveDate,
    /// Products known: those with a job, the skipped ones and (with the catalogue check) those
    /// never listed.
    pub inputs: i64,
    /// Products with a job.
    pub jobs: i64,
    /// Jobs done that wrote products.
    pub done_with_products: i64,
    /// Jobs done without a product (nothing to produce).
    pub done_without_product: i64,
    /// Jobs failed (`internal_error`, `error_checked`, `external_error` out of attempts).
    pub failed: i64,
    /// Jobs cancelled.
    pub cancelled: i64,
    /// Jobs not ended yet.
    pub waiting: i64,
    /// Jobs whose output was published.
    pub published: i64,
    /// Of those, published later than the timeliness target after their input.
    pub published_late: i64,
    /// Jobs whose input the catalogue withdrew.
    pub withdrawn: i64,
    /// The cell's state.
    pub state: CellState,
}

impl Cell {
    fn new(tile: String, day: NaiveDate) -> Self {
        Cell {
            tile,
            day,
            inputs: 0,
            jobs: 0,
            done_with_products: 0,
            done_without_product: 0,
            failed: 0,
            cancelled: 0,
            waiting: 0,
            published: 0,
            published_late: 0,
            withdrawn: 0,
            state: CellState::Empty,
        }
    }
}

/// Why a product is missing or late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The catalogue has it, swath never saw it (catalogue check only).
    NeverListed,
    /// Ingestion skipped it (detail: why).
    Skipped,
    /// Its job failed (detail: the last error).
    JobFailed,
    /// Its job has not ended (detail: its status).
    JobWaiting,
    /// Its job was cancelled (detail: the status message).
    Cancelled,
    /// Its output was published later than the target (detail: the hours).
    PublishedLate,
    /// The catalogue withdrew its input (detail: the cause).
    Withdrawn,
}

/// One product missing or late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// Its tile.
    pub tile: String,
    /// Its sensing day.
    pub day: NaiveDate,
    /// The product.
    pub product: String,
    /// Its job, if it has one.
    pub job_id: Option<i64>,
    /// Why.
    pub reason: GapReason,
    /// The details.
    pub detail: String,
}

/// What the catalogue check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogueCheck {
    /// Inputs of the window the catalogue lists.
    pub listed: i64,
    /// Of those, the ones swath never saw.
    pub unseen: i64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletenessReport {
    /// The job type.
    pub job_type: String,
    /// First sensing day.
    pub from: NaiveDate,
    /// Day after the last.
    pub to: NaiveDate,
    /// A product published later than this after its input is late.
    pub timeliness_target_hours: f64,
    /// Per tile and day, tiles then days in order.
    pub cells: Vec<Cell>,
    /// Every gap, by tile, day and product.
    pub gaps: Vec<Gap>,
    /// The catalogue check, when asked for.
    pub catalogue_check: Option<CatalogueCheck>,
}

/// A report that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The catalogue could not be listed.
    #[error("catalogue: {0}")]
    Catalogue(#[from] CatalogueError),
    /// The job type could not read the catalogue's products.
    #[error("catalogue: {0}")]
    JobType(#[from] JobTypeError),
}

/// An input the catalogue lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedInput {
    /// The product.
    pub product: String,
    /// Its tile.
    pub tile: String,
    /// Its sensing day.
    pub day: NaiveDate,
    /// When the catalogue published it.
    pub published_at: DateTime<Utc>,
}

/// Makes the report of `request` from the database (and `listed`, the catalogue's inputs of the
/// window when the catalogue was checked: see [`list_catalogue_inputs`]).
pub async fn completeness(
    pool: &PgPool,
    request: &CompletenessRequest,
    timeliness_target_hours: f64,
    listed: Option<Vec<ListedInput>>,
) -> Result<CompletenessReport, ReportError> {
    let tiles = request.tiles.as_deref();
    let (from, to) = (request.start(), request.end());
    let jobs = job_rows(pool, &request.job_type, from, to, tiles).await?;
    let skipped = skipped_rows(pool, &request.job_type, from, to, tiles).await?;

    let mut cells: BTreeMap<(String, NaiveDate), Cell> = BTreeMap::new();
    let mut gaps: Vec<Gap> = Vec::new();
    fn cell<'c>(
        cells: &'c mut BTreeMap<(String, NaiveDate), Cell>,
        tile: &str,
        day: NaiveDate,
    ) -> &'c mut Cell {
        cells
            .entry((tile.to_string(), day))
            .or_insert_with(|| Cell::new(tile.to_string(), day))
    }
    let gap = |row: &JobRow, reason: GapReason, detail: String| Gap {
        tile: row.tile.clone(),
        day: row.day,
        product: row.product.clone(),
        job_id: Some(row.job_id),
        reason,
        detail,
    };
    for row in &jobs {
        let c = cell(&mut cells, &row.tile, row.day);
        c.inputs += 1;
        c.jobs += 1;
        let message = || row.message.clone().unwrap_or_default();
        match row.status {
            JobStatus::Done if row.with_products => c.done_with_products += 1,
            JobStatus::Done => c.done_without_product += 1,
            JobStatus::InternalError | JobStatus::ErrorChecked => {
                c.failed += 1;
                gaps.push(gap(row, GapReason::JobFailed, message()));
            }
            JobStatus::ExternalError if row.out_of_attempts => {
                c.failed += 1;
                gaps.push(gap(row, GapReason::JobFailed, message()));
            }
            JobStatus::Cancelled => {
                c.cancelled += 1;
                gaps.push(gap(row, GapReason::Cancelled, message()));
            }
            status => {
                c.waiting += 1;
                gaps.push(gap(row, GapReason::JobWaiting, status.to_string()));
            }
        }
        if row.published {
            c.published += 1;
            if let Some(hours) = row
                .publication_hours
                .filter(|h| *h > timeliness_target_hours)
            {
                c.published_late += 1;
                gaps.push(gap(
                    row,
                    GapReason::PublishedLate,
                    format!("{hours:.1} h (target {timeliness_target_hours} h)"),
                ));
            }
        }
        if let Some(cause) = &row.withdrawn {
            c.withdrawn += 1;
            gaps.push(gap(row, GapReason::Withdrawn, cause.clone()));
        }
    }
    for row in &skipped {
        cell(&mut cells, &row.tile, row.day).inputs += 1;
        gaps.push(Gap {
            tile: row.tile.clone(),
            day: row.day,
            product: row.product.clone(),
            job_id: None,
            reason: GapReason::Skipped,
            detail: row.reason.clone(),
        });
    }
    let catalogue_check = match listed {
        None => None,
        Some(listed) => {
            let names: Vec<String> = listed.iter().map(|l| l.product.clone()).collect();
            let seen: HashSet<String> = seen_products(pool, &request.job_type, &names)
                .await?
                .into_iter()
                .collect();
            let mut unseen = 0;
            for input in listed.iter().filter(|l| !seen.contains(&l.product)) {
                unseen += 1;
                cell(&mut cells, &input.tile, input.day).inputs += 1;
                gaps.push(Gap {
                    tile: input.tile.clone(),
                    day: input.day,
                    product: input.product.clone(),
                    job_id: None,
                    reason: GapReason::NeverListed,
                    detail: format!(
                        "published {} in the catalogue, never seen by swath",
                        input.published_at.to_rfc3339()
                    ),
                });
            }
            Some(CatalogueCheck {
                listed: listed.len() as i64,
                unseen,
            })
        }
    };

    // Every day of the window for every tile asked for or seen, so that a missing day shows.
    let tiles: BTreeSet<String> = match &request.tiles {
        Some(t) => t.iter().cloned().collect(),
        None => cells.keys().map(|(t, _)| t.clone()).collect(),
    };
    for tile in &tiles {
        let mut day = request.from;
        while day < request.to {
            cell(&mut cells, tile, day);
            day = day + Days::new(1);
        }
    }
    let with_gaps: HashSet<(&str, NaiveDate)> =
        gaps.iter().map(|g| (g.tile.as_str(), g.day)).collect();
    for c in cells.values_mut() {
        c.state = if c.inputs == 0 {
            CellState::Empty
        } else if c.failed > 0 {
            CellState::Failed
        } else if c.waiting > 0 {
            CellState::Waiting
        } else if with_gaps.contains(&(c.tile.as_str(), c.day)) {
            CellState::Gaps
        } else {
            CellState::Complete
        };
    }
    gaps.sort_by(|a, b| {
        (&a.tile, a.day, &a.product, a.reason).cmp(&(&b.tile, b.day, &b.product, b.reason))
    });
    Ok(CompletenessReport {
        job_type: request.job_type.clone(),
        from: request.from,
        to: request.to,
        timeliness_target_hours,
        cells: cells.into_values().collect(),
        gaps,
        catalogue_check,
    })
}

/// No jobs: the catalogue check plans pages as if swath had seen nothing, to learn which listed
/// products are inputs of the job type.
struct NoJobs;

#[async_trait]
impl JobContext for NoJobs {
    async fn jobs_with_products(&self, _: &str, _: &[String]) -> Result<Vec<Job>, ContextError> {
        Ok(Vec::new())
    }

    async fn jobs_measured_at(
        &self,
        _: &str,
        _: &[DateTime<Utc>],
    ) -> Result<Vec<Job>, ContextError> {
        Ok(Vec::new())
    }

    async fn previous_job_on_tile(
        &self,
        _: &str,
        _: &str,
        _: DateTime<Utc>,
        _: &[JobStatus],
    ) -> Result<Option<Job>, ContextError> {
        Ok(None)
    }
}

/// Lists `catalogue` over the publication window [`from`, `to` + [`CATALOGUE_MARGIN_DAYS`])
/// (capped at now) with `job_type`'s query, and answers the inputs of the job type sensed in the
/// request's window (and tiles), as the job type would have made jobs of them.
pub async fn list_catalogue_inputs(
    job_type: &dyn JobTemplate,
    catalogue: &dyn Catalogue,
    request: &CompletenessRequest,
) -> Result<Vec<ListedInput>, ReportError> {
    let spec = job_type.spec();
    let (collection, product_type) = collection_for(&catalogue.source(), spec.input_product_type);
    let published_to = request
        .end()
        .checked_add_days(Days::new(CATALOGUE_MARGIN_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .min(Utc::now());
    let mut out: Vec<ListedInput> = Vec::new();
    if published_to <= request.start() {
        return Ok(out);
    }
    let query = CatalogueQuery {
        collection,
        product_type,
        bbox: job_type.area_of_interest_bbox(),
        published_from: request.start(),
        published_to,
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut next = None;
    for _ in 0..MAX_CATALOGUE_PAGES {
        let page = catalogue.page(&query, next.as_ref()).await?;
        let plan = job_type.get_jobs_to_create(&NoJobs, &page.products).await?;
        for job in plan.jobs {
            let (Some(product), Some(measured)) = (job.product_id, job.measured_at) else {
                continue;
            };
            if measured < request.start() || measured >= request.end() {
                continue;
            }
            let tile = job.tile_id.unwrap_or_default();
            if let Some(tiles) = &request.tiles {
                if !tiles.contains(&tile) {
                    continue;
                }
            }
            if seen.insert(product.clone()) {
                out.push(ListedInput {
                    product,
                    tile,
                    day: measured.date_naive(),
                    published_at: job.input_published_at.unwrap_or(published_to),
                });
            }
        }
        next = page.next;
        if next.is_none() {
            break;
        }
    }
    Ok(out)
}

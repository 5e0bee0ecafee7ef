//! Ingest one page: plan the jobs one job type wants for it (lookups only), then commit the jobs,
//! the cancellation of superseded jobs, the quarantine and the cursor together, or nothing.
//!
//! Planning and committing are separate so that the poller can plan the next page while the
//! previous one commits (see [`PagePlan::depends_on`] for when such a plan must be made again).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use swath_domain::context::JobContext;
use swath_domain::template::{JobTypeError, JobsToCreate, RejectedProduct};
use swath_domain::{JobStatus, JobTemplate};

use crate::catalogue::CataloguePage;
use crate::db::context::PgJobContext;
use crate::db::ingestion::{commit_page as commit_page_rows, Quarantined, Skipped};
use crate::db::status::StatusChange;
use crate::db::DbError;
use crate::metrics::record_transitions;

/// Products quarantined by this process since it started (for metrics and reports).
pub static QUARANTINED_PRODUCTS: AtomicU64 = AtomicU64::new(0);

/// What ingesting one or more pages did for one job type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// The job type.
    pub job_type: String,
    /// Products listed (usable or not).
    pub listed: usize,
    /// Jobs created `initialized`.
    pub created: usize,
    /// Jobs created `cancelled` (sensed before the processing start date, or an older version).
    pub cancelled: usize,
    /// Existing jobs cancelled because a newer version of their input arrived.
    pub superseded: usize,
    /// Products that already had a job, in the database or earlier in the same page.
    pub already_known: usize,
    /// Products that are not for this job type (other family or level, outside the area, duplicates).
    pub skipped: Vec<RejectedProduct>,
    /// Products that could not be understood, now in the quarantine.
    pub quarantined: Vec<RejectedProduct>,
}

impl IngestReport {
    /// Adds the counts of `other` to these.
    pub fn absorb(&mut self, other: IngestReport) {
        self.listed += other.listed;
        self.created += other.created;
        self.cancelled += other.cancelled;
        self.superseded += other.superseded;
        self.already_known += other.already_known;
        self.skipped.extend(other.skipped);
        self.quarantined.extend(other.quarantined);
    }
}

/// An ingest step that failed; nothing of the page was committed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The job type could not decide.
    #[error(transparent)]
    JobType(#[from] JobTypeError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        IngestError::Db(e.into())
    }
}

/// What a page will change, decided from what the database held when it was planned.
#[derive(Debug, Clone)]
pub struct PagePlan {
    pub(crate) plan: JobsToCreate,
    pub(crate) quarantined: Vec<Quarantined>,
    /// What the completeness report is told about the products not processed.
    pub(crate) skipped_products: Vec<Skipped>,
    pub(crate) listed: usize,
    pub(crate) considered: usize,
    newest: Option<DateTime<Utc>>,
}

impl PagePlan {
    /// The sensing times of the jobs this plan creates.
    pub fn sensing_times(&self) -> HashSet<DateTime<Utc>> {
        self.plan
            .jobs
            .iter()
            .filter_map(|j| j.measured_at)
            .collect()
    }

    /// Whether this plan may depend on jobs created with `times` (and must be made again if it was
    /// made before they were committed). Every relation between products that planning looks at
    /// (same product, other version, duplicate) requires equal sensing times.
    pub fn depends_on(&self, times: &HashSet<DateTime<Utc>>) -> bool {
        self.plan
            .jobs
            .iter()
            .filter_map(|j| j.measured_at)
            .any(|t| times.contains(&t))
    }
}

/// Decides what `job_type` does with `page`, reading the database but writing nothing.
pub async fn plan_page(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    page: &CataloguePage,
) -> Result<PagePlan, IngestError> {
    plan_page_in(&PgJobContext::new(pool.clone()), job_type, page).await
}

/// [`plan_page`] with the lookups of `ctx` (a campaign's listing sees the existing jobs its own way).
pub async fn plan_page_in(
    ctx: &dyn JobContext,
    job_type: &dyn JobTemplate,
    page: &CataloguePage,
) -> Result<PagePlan, IngestError> {
    let plan = job_type.get_jobs_to_create(ctx, &page.products).await?;
    let mut quarantined: Vec<Quarantined> = page
        .invalid
        .iter()
        .map(|e| Quarantined {
            name: e.name.clone(),
            reason: e.reason.clone(),
            raw: Some(e.raw.clone()),
        })
        .collect();
    quarantined.extend(plan.rejected.iter().map(|r| {
        Quarantined {
            name: r.name.clone(),
            reason: r.reason.clone(),
            raw: page
                .products
                .iter()
                .find(|p| p.name == r.name)
                .and_then(|p| serde_json::to_value(p).ok()),
        }
    }));
    let skipped_products = skipped_products(&plan, &quarantined, page);
    Ok(PagePlan {
        skipped_products,
        listed: page.products.len() + page.invalid.len(),
        considered: page.products.len() - plan.skipped.len() - plan.rejected.len(),
        newest: page.products.iter().map(|p| p.published_at).max(),
        plan,
        quarantined,
    })
}

/// Whether a skip `reason` says the product is of another family or level: plainly not an input,
/// not worth recording for the completeness report.
fn other_kind_of_product(reason: &str) -> bool {
    reason.starts_with("not a Sentinel-")
        || reason.starts_with("level ")
        || reason.starts_with("only IW GRDH")
}

/// The products of `page` the plan does not process and the completeness report can place (their
/// name parses, giving a sensing time and, for Sentinel-2, a tile): skipped ones (but not those of
/// another family or level), quarantined ones (`quarantined: ...`) and those created `cancelled`
/// (with the job's initial message).
pub(crate) fn skipped_products(
    plan: &JobsToCreate,
    quarantined: &[Quarantined],
    page: &CataloguePage,
) -> Vec<Skipped> {
    use swath_domain::product::ProductName;
    let place = |name: &str, reason: String| -> Option<Skipped> {
        let parsed = ProductName::parse(name).ok()?;
        let tile_id = match &parsed {
            ProductName::S2(n) => Some(n.tile.to_string()),
            ProductName::S1(_) => None,
        };
        Some(Skipped {
            name: parsed.canonical(),
            tile_id,
            measured_at: Some(parsed.sensing_start()),
            published_at: page
                .products
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.published_at),
            reason,
        })
    };
    let mut out = Vec::new();
    for s in &plan.skipped {
        if !other_kind_of_product(&s.reason) {
            out.extend(place(&s.name, s.reason.clone()));
        }
    }
    for q in quarantined {
        out.extend(place(&q.name, format!("quarantined: {}", q.reason)));
    }
    for job in plan
        .jobs
        .iter()
        .filter(|j| j.initial_status == JobStatus::Cancelled)
    {
        let Some(product) = job.product_id.as_deref() else {
            continue;
        };
        let reason = job
            .initial_message
            .clone()
            .unwrap_or_else(|| "created cancelled".to_string());
        out.extend(place(product, reason).map(|mut s| {
            s.published_at = job.input_published_at.or(s.published_at);
            s
        }));
    }
    out
}

/// Applies `plan` in one transaction and moves the cursor of (`job_type`, `source`) past its page.
pub async fn commit_page(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    source: &str,
    plan: PagePlan,
) -> Result<IngestReport, IngestError> {
    let name = job_type.spec().name.as_str();
    let cancellations: Vec<StatusChange> = plan
        .plan
        .superseded
        .iter()
        .map(|old| {
            StatusChange::new(old.job_id, old.status, old.attempt, JobStatus::Cancelled)
                .message(format!("superseded by {}: {}", old.why, old.by))
        })
        .collect();
    let committed = commit_page_rows(
        pool,
        name,
        source,
        &plan.plan.jobs,
        &cancellations,
        &plan.quarantined,
        &plan.skipped_products,
        plan.newest,
    )
    .await?;
    record_transitions(committed.transitions);
    let (inserted, superseded) = (committed.inserted, committed.superseded);

    for q in &plan.quarantined {
        tracing::warn!(job_type = name, %source, product = %q.name, reason = %q.reason, "product quarantined");
    }
    QUARANTINED_PRODUCTS.fetch_add(plan.quarantined.len() as u64, Ordering::Relaxed);
    let cancelled = inserted
        .iter()
        .filter(|j| j.status == JobStatus::Cancelled)
        .count();
    Ok(IngestReport {
        job_type: name.to_string(),
        listed: plan.listed,
        created: inserted.len() - cancelled,
        cancelled,
        superseded,
        already_known: plan.considered.saturating_sub(inserted.len()),
        skipped: plan.plan.skipped,
        quarantined: plan
            .quarantined
            .into_iter()
            .map(|q| RejectedProduct {
                name: q.name,
                reason: q.reason,
            })
            .collect(),
    })
}

/// Creates the jobs `job_type` wants for `page` (listed by `source`) and moves the cursor past it,
/// in one transaction. Idempotent: the same page again creates nothing.
pub async fn ingest_page(
    pool: &PgPool,
    job_type: &dyn JobTemplate,
    source: &str,
    page: &CataloguePage,
) -> Result<IngestReport, IngestError> {
    let plan = plan_page(pool, job_type, page).await?;
    commit_page(pool, job_type, source, plan).await
}

//! Reprocessing campaigns: listing a campaign's window page by page into its jobs, cancelling a
//! campaign with its jobs not yet started, and the loop every instance runs for them.
//!
//! Any instance may list a campaign: it takes the campaign's listing lease, lists from where the
//! last committed page left off (the next page's cursor is committed with each page), and commits
//! each page fenced on the lease ([`crate::db::campaigns::commit_listing_page`]). If it dies, the
//! lease runs out and another instance goes on from the last committed page; a page listed twice
//! creates nothing twice (the campaign's own jobs are always seen, and one job per product per
//! campaign is a unique index).
//!
//! Campaign jobs differ from continuously ingested ones in four ways: priority `reprocessing`, their
//! campaign's id (which the dispatch throttles on), the campaign's image when it pins one, and a
//! name of their own (`<name>-campaign-<id>`). The job type's lookups do not see the jobs the
//! campaign stands in for (those created `cancelled` before the processing start date, and for a
//! campaign that reprocesses, every job that ended), so that it plans their products again.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::{JobPriority, JobStatus, NewJob};
use uuid::Uuid;

use super::cancel::{cancel_job, CancelError};
use super::ingest::{plan_page_in, PagePlan};
use crate::catalogue::{
    collection_for, open, CatalogueError, CatalogueOptions, CatalogueQuery, PageCursor,
};
use crate::db::campaigns::{
    cancel_campaign, commit_listing_page, complete_finished, fail_campaign, note_listing_error,
    release_listings, renew_listing, take_listing, Campaign, CampaignError, CampaignPage,
    ListingError, ALREADY_KNOWN,
};
use crate::db::context::{CampaignView, PgJobContext};
use crate::executor::Executor;
use crate::metrics::record_transitions;
use crate::service::{CancellationToken, Service};

/// The skip reason, in a reprocessing campaign, of products whose job is still waiting or running.
pub const STILL_RUNNING: &str = "its job is still waiting or running";
/// The skip reason of jobs outside the campaign's tiles.
pub const OUTSIDE_TILES: &str = "outside the campaign's tiles";

/// What the reprocessing context of a campaign job says.
const CAMPAIGN_CONTEXT: &str = "campaign";

/// How a listing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingOutcome {
    /// The window is fully listed.
    Finished,
    /// The catalogue is unavailable or the database failed: tried again at the next round.
    Interrupted(String),
    /// The campaign failed (its catalogue refused the listing, or its job type is unknown).
    Failed(String),
    /// Another instance holds the listing now, or the campaign was cancelled.
    LostLease,
}

/// Lists campaign `campaign` from its last committed page to the end of its window, as `owner`,
/// whose listing lease each committed page extends by `lease`.
pub async fn list_campaign(
    pool: &PgPool,
    registry: &JobTypeRegistry,
    options: &CatalogueOptions,
    owner: Uuid,
    lease: Duration,
    campaign: &Campaign,
) -> Result<ListingOutcome, crate::db::DbError> {
    let id = campaign.id;
    let Some(job_type) = registry.get(&campaign.job_type) else {
        let reason = format!(
            "job type {:?} is not known to this orchestrator (known: {})",
            campaign.job_type,
            registry.names().join(", ")
        );
        fail_campaign(pool, id, &reason).await?;
        return Ok(ListingOutcome::Failed(reason));
    };
    let catalogue = match open(&campaign.source, options) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("cannot open the catalogue {}: {e}", campaign.source);
            fail_campaign(pool, id, &reason).await?;
            return Ok(ListingOutcome::Failed(reason));
        }
    };
    let (collection, product_type) =
        collection_for(&catalogue.source(), job_type.spec().input_product_type);
    let query = CatalogueQuery {
        collection,
        product_type,
        bbox: job_type.area_of_interest_bbox(),
        published_from: campaign.from,
        published_to: campaign.to,
    };
    let mut next: Option<PageCursor> = match &campaign.listing_cursor {
        None => None,
        Some(stored) => match serde_json::from_value(stored.clone()) {
            Ok(cursor) => Some(cursor),
            Err(e) => {
                let reason = format!("the stored listing cursor does not decode: {e}");
                fail_campaign(pool, id, &reason).await?;
                return Ok(ListingOutcome::Failed(reason));
            }
        },
    };
    let ctx = PgJobContext::for_campaign(
        pool.clone(),
        CampaignView {
            id,
            reprocess: campaign.reprocess,
        },
    );
    tracing::info!(campaign = id, name = %campaign.name, job_type = %campaign.job_type, from = %campaign.from, to = %campaign.to,
        resumed = next.is_some(), "listing the campaign's window");
    loop {
        // A page may take long (a slow catalogue, retries): the lease is renewed meanwhile, so that
        // no other instance takes the listing over from a live one and lists the same page.
        let fetched = {
            let fetch = catalogue.page(&query, next.as_ref());
            tokio::pin!(fetch);
            let mut renew = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
            renew.tick().await;
            loop {
                tokio::select! {
                    page = &mut fetch => break page,
                    _ = renew.tick() => {
                        if !renew_listing(pool, id, owner, lease).await? {
                            return Ok(ListingOutcome::LostLease);
                        }
                    }
                }
            }
        };
        let page = match fetched {
            Ok(page) => page,
            Err(e @ CatalogueError::Unavailable { .. }) => {
                let error = e.to_string();
                note_listing_error(pool, id, owner, &error).await?;
                return Ok(ListingOutcome::Interrupted(error));
            }
            Err(e) => {
                let reason = format!("the catalogue refused the listing: {e}");
                fail_campaign(pool, id, &reason).await?;
                return Ok(ListingOutcome::Failed(reason));
            }
        };
        let plan = match plan_page_in(&ctx, job_type.as_ref(), &page).await {
            Ok(plan) => plan,
            Err(e) => {
                let error = format!("planning a page: {e}");
                note_listing_error(pool, id, owner, &error).await?;
                return Ok(ListingOutcome::Interrupted(error));
            }
        };
        let next_cursor = page
            .next
            .as_ref()
            .map(|c| serde_json::to_value(c).expect("a cursor serializes"));
        let campaign_page = campaign_page(campaign, plan, next_cursor);
        match commit_listing_page(pool, id, owner, lease, &campaign_page).await {
            Ok(committed) => {
                record_transitions(committed.transitions);
                tracing::debug!(
                    campaign = id,
                    created = committed.inserted.len(),
                    listed = campaign_page.listed,
                    "campaign page committed"
                );
                if committed.finished {
                    tracing::info!(campaign = id, name = %campaign.name, "campaign window listed");
                    return Ok(ListingOutcome::Finished);
                }
            }
            Err(ListingError::LostLease(_)) => return Ok(ListingOutcome::LostLease),
            Err(ListingError::Db(e)) => {
                let error = format!("committing a page: {e}");
                note_listing_error(pool, id, owner, &error).await?;
                return Ok(ListingOutcome::Interrupted(error));
            }
        }
        next = page.next;
    }
}

/// The tiles a job covers: its tile, and the tiles its parameters list (`s2tile_ids`).
fn tiles_of(job: &NewJob) -> impl Iterator<Item = &str> {
    job.tile_id.as_deref().into_iter().chain(
        job.params
            .get("s2tile_ids")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str()),
    )
}

/// Turns the job type's plan of one page into the campaign's: jobs outside its tiles skipped, the
/// others made campaign jobs; the skipped products counted by reason.
pub fn campaign_page(
    campaign: &Campaign,
    plan: PagePlan,
    next: Option<serde_json::Value>,
) -> CampaignPage {
    let mut skipped: BTreeMap<String, i64> = BTreeMap::new();
    let mut count = |reason: String| *skipped.entry(reason).or_default() += 1;
    for s in &plan.plan.skipped {
        count(format!("not for this job type: {}", s.reason));
    }
    for q in &plan.quarantined {
        count(format!("quarantined: {}", q.reason));
    }
    let known = plan.considered.saturating_sub(plan.plan.jobs.len());
    for _ in 0..known {
        count(
            if campaign.reprocess {
                STILL_RUNNING
            } else {
                ALREADY_KNOWN
            }
            .to_string(),
        );
    }
    let mut dropped: HashSet<String> = HashSet::new();
    let mut jobs = Vec::with_capacity(plan.plan.jobs.len());
    let mut skipped_products = plan.skipped_products;
    for mut job in plan.plan.jobs {
        if let Some(tiles) = &campaign.tiles {
            if !tiles_of(&job).any(|t| tiles.iter().any(|kept| kept == t)) {
                count(OUTSIDE_TILES.to_string());
                if let Some(product) = job.product_id.clone() {
                    skipped_products.push(crate::db::ingestion::Skipped {
                        name: product,
                        tile_id: job.tile_id.clone(),
                        measured_at: job.measured_at,
                        published_at: job.input_published_at,
                        reason: OUTSIDE_TILES.to_string(),
                    });
                }
                dropped.insert(job.name.clone());
                continue;
            }
        }
        make_campaign_job(campaign, &mut job);
        jobs.push(job);
    }
    let cancellations = plan
        .plan
        .superseded
        .iter()
        .filter(|old| !dropped.contains(&old.by))
        .map(|old| {
            crate::db::status::StatusChange::new(
                old.job_id,
                old.status,
                old.attempt,
                JobStatus::Cancelled,
            )
            .message(format!("superseded by {}: {}", old.why, old.by))
        })
        .collect();
    CampaignPage {
        listed: plan.listed as i64,
        jobs,
        cancellations,
        quarantined: plan.quarantined,
        skipped,
        skipped_products,
        next,
    }
}

/// Makes `job` one of `campaign`'s: its id, priority `reprocessing`, its image and a name of its own
/// (`<name>-campaign-<id>`). A job the job type would have created `cancelled` because
/// its input was sensed before the processing start date is what campaigns are for: it starts
/// `initialized`.
fn make_campaign_job(campaign: &Campaign, job: &mut NewJob) {
    job.campaign_id = Some(campaign.id);
    job.priority = JobPriority::Reprocessing;
    // A name of its own: the job it stands in for (ended, or created `cancelled`) keeps its name.
    job.name = format!("{}-campaign-{}", job.name, campaign.id);
    if campaign.image.is_some() {
        job.software_version.clone_from(&campaign.image);
    }
    let context = job
        .params
        .get("reprocessing_context")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    if job.initial_status == JobStatus::Cancelled
        && context.as_deref() == Some("before_processing_start_date")
    {
        job.initial_status = JobStatus::Initialized;
        job.initial_message = None;
    }
    if job.initial_status == JobStatus::Initialized {
        job.initial_message = Some(format!("campaign {} ({})", campaign.id, campaign.name));
        if let Some(params) = job.params.as_object_mut() {
            if params.contains_key("reprocessing_context") {
                params.insert("reprocessing_context".into(), CAMPAIGN_CONTEXT.into());
            }
        }
    }
}

/// Cancels campaign `id` and its jobs not yet started (their attempts, if any were dispatched
/// meanwhile, are stopped through `executor`). Answers the campaign and how many jobs it cancelled.
pub async fn cancel_campaign_and_jobs(
    pool: &PgPool,
    executor: Option<&dyn Executor>,
    id: i64,
    reason: &str,
) -> Result<(Campaign, usize), CampaignError> {
    let (campaign, ids) = cancel_campaign(pool, id, reason).await?;
    let mut cancelled = 0;
    let why = format!("campaign {id} cancelled: {reason}");
    for job in ids {
        match cancel_job(pool, executor, job, &why).await {
            Ok(_) => cancelled += 1,
            // It started or ended meanwhile: it finishes as it is.
            Err(CancelError::NotFound(_) | CancelError::NotCancellable { .. }) => {}
            Err(CancelError::Db(e)) => return Err(e.into()),
        }
    }
    Ok((campaign, cancelled))
}

/// The campaign loop of an instance: every `interval`, completes the campaigns whose jobs all ended
/// and lists the windows nobody is listing.
pub struct CampaignService {
    /// The database.
    pub pool: PgPool,
    /// The job types.
    pub registry: Arc<JobTypeRegistry>,
    /// How catalogues are reached.
    pub catalogue_options: CatalogueOptions,
    /// This instance.
    pub owner: Uuid,
    /// How long a listing lease holds without a committed page.
    pub lease: Duration,
    /// Time between rounds.
    pub interval: Duration,
}

impl CampaignService {
    /// One round: completions, then the listings this instance can take (a listing interrupted is
    /// tried again next round; the others go on meanwhile).
    pub async fn round(&self) -> Result<(), crate::db::DbError> {
        for id in complete_finished(&self.pool).await? {
            tracing::info!(campaign = id, "campaign completed");
        }
        let mut interrupted = Vec::new();
        while let Some(campaign) =
            take_listing(&self.pool, self.owner, self.lease, &interrupted).await?
        {
            let outcome = list_campaign(
                &self.pool,
                &self.registry,
                &self.catalogue_options,
                self.owner,
                self.lease,
                &campaign,
            )
            .await?;
            match outcome {
                ListingOutcome::Finished | ListingOutcome::LostLease => {}
                ListingOutcome::Failed(reason) => {
                    tracing::error!(campaign = campaign.id, %reason, "campaign failed");
                }
                ListingOutcome::Interrupted(error) => {
                    tracing::warn!(campaign = campaign.id, %error, "campaign listing interrupted; going on next round");
                    interrupted.push(campaign.id);
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Service for CampaignService {
    fn name(&self) -> &'static str {
        "campaigns"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                result = self.round() => {
                    if let Err(e) = result {
                        tracing::error!(error = %e, "campaign round failed; trying again next round");
                    }
                }
                _ = shutdown.cancelled() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Another instance may go on at once with what this one was listing.
        if let Err(e) = release_listings(&self.pool, self.owner).await {
            tracing::warn!(error = %e, "cannot give the campaign listings back; their leases run out");
        }
    }
}

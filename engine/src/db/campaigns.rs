//! The `campaigns` table: creating campaigns, their states (pause, resume, cancel, completion), the
//! lease of the instance that lists a campaign's window, each listed page committed with its jobs and
//! the campaign's progress in one transaction, and the progress read back.
//!
//! A page is committed only by the holder of the listing lease ([`commit_listing_page`] fences on
//! it): an instance that lost the lease (it stalled, another one took over) writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use swath_domain::{JobStatus, NewJob};
use uuid::Uuid;

use super::claim::CLAIM_LOCK;
use super::ingestion::{quarantine, Quarantined};
use super::jobs::{insert_jobs, InsertedJob};
use super::status::{StatusChange, StatusTransaction, Transition};
use super::DbError;

/// Most distinct skip reasons kept per campaign; the others are counted under [`OTHER_REASONS`].
pub const MAX_SKIP_REASONS: usize = 32;
/// The skip reason under which reasons past [`MAX_SKIP_REASONS`] are counted.
pub const OTHER_REASONS: &str = "other reasons";
/// The skip reason of products whose job exists already (continuous ingestion made it, or the
/// catalogue listed the product twice).
pub const ALREADY_KNOWN: &str = "already has a job";

/// A campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Its window is being listed; the jobs listed so far already run.
    Listing,
    /// Listed; its jobs run.
    Running,
    /// No new dispatch (attempts in flight finish); the listing goes on.
    Paused,
    /// Listed, and every job ended.
    Completed,
    /// Cancelled by an operator: its jobs not yet started were cancelled.
    Cancelled,
    /// The listing cannot go on (the catalogue refused it, or the job type is gone).
    Failed,
}

impl CampaignState {
    /// The name stored in the table.
    pub const fn name(self) -> &'static str {
        match self {
            CampaignState::Listing => "listing",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Failed => "failed",
        }
    }

    /// Whether the campaign is over (nothing moves it any more).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            CampaignState::Completed | CampaignState::Cancelled | CampaignState::Failed
        )
    }
}

impl std::fmt::Display for CampaignState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CampaignState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use CampaignState::*;
        [Listing, Running, Paused, Completed, Cancelled, Failed]
            .into_iter()
            .find(|state| state.name() == s)
            .ok_or_else(|| format!("unknown campaign state {s:?}"))
    }
}

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCampaign {
    /// A unique name.
    pub name: String,
    /// The job type.
    pub job_type: String,
    /// The catalogue to list.
    pub source: String,
    /// Start of the publication window (inclusive).
    pub from: DateTime<Utc>,
    /// End of the publication window (exclusive).
    pub to: DateTime<Utc>,
    /// The tiles kept (`None`: every tile of the job type's area).
    pub tiles: Option<Vec<String>>,
    /// Whether products that already have a job are processed again.
    pub reprocess: bool,
    /// The processor image its jobs run (`None`: the job type's).
    pub image: Option<String>,
    /// Most jobs dispatched at once.
    pub max_in_flight: i32,
}

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The job type.
    pub job_type: String,
    /// The catalogue listed.
    pub source: String,
    /// Start of the publication window.
    pub from: DateTime<Utc>,
    /// End of the publication window (exclusive).
    pub to: DateTime<Utc>,
    /// The tiles kept, if restricted.
    pub tiles: Option<Vec<String>>,
    /// Whether products that already have a job are processed again.
    pub reprocess: bool,
    /// The processor image, if pinned.
    pub image: Option<String>,
    /// Most jobs dispatched at once.
    pub max_in_flight: i32,
    /// Its state.
    pub state: CampaignState,
    /// When it entered it.
    pub state_changed_at: DateTime<Utc>,
    /// Why it failed or was cancelled.
    pub state_message: Option<String>,
    /// Where the listing's next page starts (opaque), `None` before the first page.
    #[serde(skip)]
    pub listing_cursor: Option<serde_json::Value>,
    /// Pages listed.
    pub pages: i32,
    /// Products listed.
    pub products_listed: i64,
    /// Jobs created.
    pub jobs_created: i64,
    /// Products skipped, by reason.
    pub skipped: BTreeMap<String, i64>,
    /// When the listing finished.
    pub listing_finished_at: Option<DateTime<Utc>>,
    /// The last listing failure that will be retried.
    pub listing_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it completed, failed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

const CAMPAIGN_COLUMNS: &str = "id, name, job_type, source, window_from, window_to, tiles, reprocess, \
    image, max_in_flight, state, state_changed_at, state_message, listing_cursor, pages, products_listed, \
    jobs_created, skipped, listing_finished_at, listing_error, created_at, finished_at";

fn campaign_from_row(row: &PgRow) -> Result<Campaign, DbError> {
    let state: String = row.try_get("state")?;
    let skipped: serde_json::Value = row.try_get("skipped")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        job_type: row.try_get("job_type")?,
        source: row.try_get("source")?,
        from: row.try_get("window_from")?,
        to: row.try_get("window_to")?,
        tiles: row.try_get("tiles")?,
        reprocess: row.try_get("reprocess")?,
        image: row.try_get("image")?,
        max_in_flight: row.try_get("max_in_flight")?,
        state: state
            .parse()
            .map_err(|e: String| DbError::Sqlx(sqlx::Error::Decode(e.into())))?,
        state_changed_at: row.try_get("state_changed_at")?,
        state_message: row.try_get("state_message")?,
        listing_cursor: row.try_get("listing_cursor")?,
        pages: row.try_get("pages")?,
        products_listed: row.try_get("products_listed")?,
        jobs_created: row.try_get("jobs_created")?,
        skipped: serde_json::from_value(skipped).unwrap_or_default(),
        listing_finished_at: row.try_get("listing_finished_at")?,
        listing_error: row.try_get("listing_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Why a campaign could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// No campaign has this id.
    #[error("campaign {0} not found")]
    NotFound(i64),
    /// The name is taken.
    #[error("a campaign named {0:?} exists already")]
    NameTaken(String),
    /// The campaign's state does not allow the change.
    #[error("campaign {id} is {state}: it cannot be {action}")]
    NotNow {
        /// The campaign.
        id: i64,
        /// Its state.
        state: CampaignState,
        /// What was asked (`paused`, `resumed`, `cancelled`).
        action: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CampaignError {
    fn from(e: sqlx::Error) -> Self {
        CampaignError::Db(e.into())
    }
}

/// Creates a campaign in state `listing`.
pub async fn create_campaign(pool: &PgPool, new: &NewCampaign) -> Result<Campaign, CampaignError> {
    let row = sqlx::query(&format!(
        "INSERT INTO campaigns (name, job_type, source, window_from, window_to, tiles, reprocess, image, max_in_flight)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING {CAMPAIGN_COLUMNS}"
    ))
    .bind(&new.name)
    .bind(&new.job_type)
    .bind(&new.source)
    .bind(new.from)
    .bind(new.to)
    .bind(&new.tiles)
    .bind(new.reprocess)
    .bind(&new.image)
    .bind(new.max_in_flight)
    .fetch_one(pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("campaigns_name_unique") => {
            CampaignError::NameTaken(new.name.clone())
        }
        _ => CampaignError::from(e),
    })?;
    Ok(campaign_from_row(&row)?)
}

/// The campaign with this id.
pub async fn get_campaign<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Campaign, CampaignError> {
    let row = sqlx::query(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(CampaignError::NotFound(id))?;
    Ok(campaign_from_row(&row)?)
}

/// Every campaign, newest first (at most `limit`).
pub async fn list_campaigns<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> Result<Vec<Campaign>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(campaign_from_row).collect()
}

/// Moves campaign `id` from one of `from` to `to` under the claim lock (so that no claim is counting
/// its free slots meanwhile), recording `message`.
async fn change_state(
    pool: &PgPool,
    id: i64,
    from: &[CampaignState],
    to: CampaignState,
    action: &'static str,
    message: Option<&str>,
) -> Result<Campaign, CampaignError> {
    let mut tx = pool.begin().await?;
    let campaign = change_state_in(&mut tx, id, from, to, action, message).await?;
    tx.commit().await?;
    Ok(campaign)
}

/// [`change_state`] in the caller's transaction, which holds the claim lock until it ends.
async fn change_state_in(
    tx: &mut PgConnection,
    id: i64,
    from: &[CampaignState],
    to: CampaignState,
    action: &'static str,
    message: Option<&str>,
) -> Result<Campaign, CampaignError> {
    sqlx::query(CLAIM_LOCK).execute(&mut *tx).await?;
    let current =
        sqlx::query_scalar::<_, String>("SELECT state FROM campaigns WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CampaignError::NotFound(id))?;
    let state: CampaignState = current
        .parse()
        .map_err(|e: String| DbError::Sqlx(sqlx::Error::Decode(e.into())))?;
    if !from.contains(&state) {
        return Err(CampaignError::NotNow { id, state, action });
    }
    let row = sqlx::query(&format!(
        "UPDATE campaigns
         SET state = CASE WHEN $2 = 'running' AND listing_finished_at IS NULL THEN 'listing' ELSE $2 END,
             state_changed_at = clock_timestamp(), state_message = $3,
             finished_at = CASE WHEN $4 THEN clock_timestamp() END
         WHERE id = $1
         RETURNING {CAMPAIGN_COLUMNS}"
    ))
    .bind(id)
    .bind(to.name())
    .bind(message)
    .bind(to.is_final())
    .fetch_one(&mut *tx)
    .await?;
    Ok(campaign_from_row(&row)?)
}

/// Pauses a listing or running campaign: no job of it is claimed once this returns. Jobs a dispatch
/// round claimed before are still dispatched (see [`Paused::claimed`]); attempts in flight finish.
pub async fn pause_campaign(pool: &PgPool, id: i64) -> Result<Paused, CampaignError> {
    let mut tx = pool.begin().await?;
    let campaign = change_state_in(
        &mut tx,
        id,
        &[CampaignState::Listing, CampaignState::Running],
        CampaignState::Paused,
        "paused",
        None,
    )
    .await?;
    // Counted under the claim lock, in the pause's transaction: after it, a claimed job may be
    // dispatched (leaving `ready`) at any time, and would no longer be counted.
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs
         WHERE campaign_id = $1 AND status = $2 AND lease_expires_at >= clock_timestamp()",
    )
    .bind(id)
    .bind(JobStatus::Ready.id())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Paused { campaign, claimed })
}

/// A paused campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paused {
    /// The campaign.
    pub campaign: Campaign,
    /// Its jobs claimed by a dispatch round before the pause, which that round still dispatches.
    pub claimed: i64,
}

/// Resumes a paused campaign: `listing` if its listing is not finished, else `running`.
pub async fn resume_campaign(pool: &PgPool, id: i64) -> Result<Campaign, CampaignError> {
    change_state(
        pool,
        id,
        &[CampaignState::Paused],
        CampaignState::Running,
        "resumed",
        None,
    )
    .await
}

/// Marks a campaign `cancelled` (from any state that is not final) and answers the ids of its jobs
/// not yet started, which the caller cancels.
pub async fn cancel_campaign(
    pool: &PgPool,
    id: i64,
    reason: &str,
) -> Result<(Campaign, Vec<i64>), CampaignError> {
    let campaign = change_state(
        pool,
        id,
        &[
            CampaignState::Listing,
            CampaignState::Running,
            CampaignState::Paused,
        ],
        CampaignState::Cancelled,
        "cancelled",
        Some(reason),
    )
    .await?;
    let ids = unstarted_jobs(pool, id).await?;
    Ok((campaign, ids))
}

/// The campaign's jobs that have not started an attempt: created, configured, ready, or waiting to
/// be retried after an external error.
pub async fn unstarted_jobs<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Vec<i64>, DbError> {
    let waiting: Vec<i16> = [
        JobStatus::Initialized,
        JobStatus::Configured,
        JobStatus::Ready,
        JobStatus::ExternalError,
    ]
    .iter()
    .map(|s| s.id())
    .collect();
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE campaign_id = $1 AND status = ANY ($2) ORDER BY id",
    )
    .bind(id)
    .bind(&waiting)
    .fetch_all(db)
    .await?)
}

/// Marks a campaign `failed` with `reason` (its listing cannot go on).
pub async fn fail_campaign(pool: &PgPool, id: i64, reason: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE campaigns SET state = 'failed', state_changed_at = clock_timestamp(), state_message = $2,
             finished_at = clock_timestamp(), listing_owner = NULL, listing_lease_until = NULL
         WHERE id = $1 AND state IN ('listing', 'running', 'paused')",
    )
    .bind(id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes the listing of one campaign whose window is not fully listed and whose listing nobody holds
/// (or this instance holds already), for `lease`, other than those of `passed` (the caller tried them
/// already). A paused campaign goes on listing.
pub async fn take_listing(
    pool: &PgPool,
    owner: Uuid,
    lease: Duration,
    passed: &[i64],
) -> Result<Option<Campaign>, DbError> {
    let row = sqlx::query(&format!(
        "UPDATE campaigns SET listing_owner = $1,
             listing_lease_until = clock_timestamp() + make_interval(secs => $2)
         WHERE id = (
             SELECT id FROM campaigns
             WHERE state IN ('listing', 'running', 'paused') AND listing_finished_at IS NULL
               AND (listing_lease_until IS NULL OR listing_lease_until < clock_timestamp() OR listing_owner = $1)
               AND id <> ALL ($3)
             ORDER BY id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         RETURNING {CAMPAIGN_COLUMNS}"
    ))
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(passed)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(campaign_from_row).transpose()
}

/// Gives back every listing `owner` holds (it stops; another instance may take them at once).
pub async fn release_listings(pool: &PgPool, owner: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE campaigns SET listing_owner = NULL, listing_lease_until = NULL WHERE listing_owner = $1",
    )
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(())
}

/// Extends `owner`'s listing lease of campaign `id` by `lease`; `false` when it holds it no more.
pub async fn renew_listing(
    pool: &PgPool,
    id: i64,
    owner: Uuid,
    lease: Duration,
) -> Result<bool, DbError> {
    let renewed = sqlx::query(
        "UPDATE campaigns SET listing_lease_until = clock_timestamp() + make_interval(secs => $3)
         WHERE id = $1 AND listing_owner = $2 AND listing_finished_at IS NULL
           AND state IN ('listing', 'running', 'paused')",
    )
    .bind(id)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() == 1)
}

/// Records a listing failure that will be retried (the catalogue is unavailable), keeping the lease.
pub async fn note_listing_error(
    pool: &PgPool,
    id: i64,
    owner: Uuid,
    error: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE campaigns SET listing_error = $3 WHERE id = $1 AND listing_owner = $2")
        .bind(id)
        .bind(owner)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// One listed page of a campaign, planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignPage {
    /// Products the page listed.
    pub listed: i64,
    /// Jobs to create.
    pub jobs: Vec<NewJob>,
    /// Waiting jobs to cancel (superseded by a newer version).
    pub cancellations: Vec<StatusChange>,
    /// Unusable products, to quarantine.
    pub quarantined: Vec<Quarantined>,
    /// Products skipped, by reason (jobs that already existed are counted here by the caller).
    pub skipped: BTreeMap<String, i64>,
    /// The products not processed, recorded for the completeness report with the campaign's id.
    pub skipped_products: Vec<super::ingestion::Skipped>,
    /// Where the next page starts; `None` when the window is fully listed.
    pub next: Option<serde_json::Value>,
}

/// What [`commit_listing_page`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedCampaignPage {
    /// The jobs created.
    pub inserted: Vec<InsertedJob>,
    /// The status changes committed, for the caller to count.
    pub transitions: Vec<Transition>,
    /// Whether the window is now fully listed.
    pub finished: bool,
}

/// Why a page was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// This instance no longer holds the campaign's listing (its lease ran out and another instance
    /// took it, or the campaign was cancelled): nothing was written.
    #[error("campaign {0}: this instance no longer holds its listing")]
    LostLease(i64),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ListingError {
    fn from(e: sqlx::Error) -> Self {
        ListingError::Db(e.into())
    }
}

/// Commits one listed page of campaign `id` in one transaction, fenced on the listing lease of
/// `owner`: the page's jobs, the cancellations of the jobs they supersede, its quarantined products,
/// the campaign's progress and where the next page starts (and, on the last page, the end of the
/// listing). The lease is extended by `lease`.
pub async fn commit_listing_page(
    pool: &PgPool,
    id: i64,
    owner: Uuid,
    lease: Duration,
    page: &CampaignPage,
) -> Result<CommittedCampaignPage, ListingError> {
    let mut tx = StatusTransaction::begin(pool).await?;
    // The fence: the row is locked until the commit, and only the lease holder gets it.
    let row = sqlx::query(
        "SELECT job_type, source, skipped FROM campaigns
         WHERE id = $1 AND listing_owner = $2 AND listing_finished_at IS NULL
           AND state IN ('listing', 'running', 'paused')
         FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(tx.conn())
    .await?
    .ok_or(ListingError::LostLease(id))?;
    let job_type: String = row.try_get("job_type")?;
    let source: String = row.try_get("source")?;
    let stored: serde_json::Value = row.try_get("skipped")?;
    let mut skipped: BTreeMap<String, i64> = serde_json::from_value(stored).unwrap_or_default();
    merge_reasons(&mut skipped, &page.skipped);

    let inserted = insert_jobs(tx.conn(), &page.jobs).await?;
    // A job whose name exists already (a product listed twice by the catalogue) is not created.
    let not_created = (page.jobs.len() - inserted.len()) as i64;
    if not_created > 0 {
        merge_reasons(
            &mut skipped,
            &[(ALREADY_KNOWN.to_string(), not_created)].into(),
        );
    }
    for change in &page.cancellations {
        match tx.change(change).await {
            Ok(_) => {}
            Err(DbError::LostRace { actual, .. }) => {
                tracing::info!(job_id = change.job_id, campaign = id, status = %actual, "superseded job already moved on; kept");
            }
            Err(e) => return Err(e.into()),
        }
    }
    quarantine(tx.conn(), &job_type, &source, &page.quarantined).await?;
    super::ingestion::record_skipped(
        tx.conn(),
        &job_type,
        &source,
        Some(id),
        &page.skipped_products,
    )
    .await?;
    let finished = page.next.is_none();
    update_progress(
        tx.conn(),
        id,
        owner,
        lease,
        page,
        inserted.len() as i64,
        &skipped,
    )
    .await?;
    let transitions = tx.commit().await?;
    Ok(CommittedCampaignPage {
        inserted,
        transitions,
        finished,
    })
}

async fn update_progress(
    conn: &mut PgConnection,
    id: i64,
    owner: Uuid,
    lease: Duration,
    page: &CampaignPage,
    created: i64,
    skipped: &BTreeMap<String, i64>,
) -> Result<(), DbError> {
    let finished = page.next.is_none();
    sqlx::query(
        "UPDATE campaigns SET
             listing_cursor = $3, pages = pages + 1, products_listed = products_listed + $4,
             jobs_created = jobs_created + $5, skipped = $6, listing_error = NULL,
             listing_lease_until = CASE WHEN $7 THEN NULL ELSE clock_timestamp() + make_interval(secs => $8) END,
             listing_owner = CASE WHEN $7 THEN NULL ELSE listing_owner END,
             listing_finished_at = CASE WHEN $7 THEN clock_timestamp() END,
             state = CASE WHEN $7 AND state = 'listing' THEN 'running' ELSE state END,
             state_changed_at = CASE WHEN $7 AND state = 'listing' THEN clock_timestamp() ELSE state_changed_at END
         WHERE id = $1 AND listing_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(&page.next)
    .bind(page.listed)
    .bind(created)
    .bind(serde_json::to_value(skipped).unwrap_or_default())
    .bind(finished)
    .bind(lease.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `more` to `reasons`, keeping at most [`MAX_SKIP_REASONS`] distinct reasons (the others are
/// counted under [`OTHER_REASONS`]).
pub fn merge_reasons(reasons: &mut BTreeMap<String, i64>, more: &BTreeMap<String, i64>) {
    for (reason, count) in more {
        let key = if reasons.contains_key(reason) || reasons.len() < MAX_SKIP_REASONS {
            reason.as_str()
        } else {
            OTHER_REASONS
        };
        *reasons.entry(key.to_string()).or_default() += count;
    }
}

/// Moves every `running` campaign whose listing finished and whose jobs all ended to `completed`.
/// Answers the ids completed.
pub async fn complete_finished(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    Ok(sqlx::query_scalar(&format!(
        "UPDATE campaigns c SET state = 'completed', state_changed_at = clock_timestamp(),
             finished_at = clock_timestamp()
         WHERE c.state = 'running' AND c.listing_finished_at IS NOT NULL
           AND NOT EXISTS (
               SELECT 1 FROM jobs j
               WHERE j.campaign_id = c.id AND j.status <> ALL ($1) AND {LATEST})
         RETURNING c.id"
    ))
    .bind(ended_status_ids())
    .fetch_all(pool)
    .await?)
}

/// The earlier jobs of `job`'s product (same job type) when `job` belongs to a campaign that
/// reprocesses: its products replace theirs.
pub async fn reprocessed_jobs<'e>(
    db: impl PgExecutor<'e>,
    job: &swath_domain::Job,
) -> Result<Vec<i64>, DbError> {
    let (Some(campaign), Some(product)) = (job.campaign_id, job.product_id.as_deref()) else {
        return Ok(Vec::new());
    };
    Ok(sqlx::query_scalar(
        "SELECT j.id FROM jobs j
         WHERE j.job_type = $1 AND j.product_id = $2 AND j.id < $3
           AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $4 AND c.reprocess)
         ORDER BY j.id",
    )
    .bind(&job.job_type)
    .bind(product)
    .bind(job.id)
    .bind(campaign)
    .fetch_all(db)
    .await?)
}

/// A campaign job is counted once per product: the last of its retry chain.
const LATEST: &str = "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.retry_of = coalesce(j.retry_of, j.id) AND r.id > j.id)";

/// Statuses in which a campaign job counts as ended: done, failed for good, cancelled.
fn ended_status_ids() -> Vec<i16> {
    [
        JobStatus::Done,
        JobStatus::InternalError,
        JobStatus::ErrorChecked,
        JobStatus::Cancelled,
    ]
    .iter()
    .map(|s| s.id())
    .collect()
}

/// A campaign's jobs by stage (each product counted once, by the last job of its retry chain).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CampaignProgress {
    /// Jobs (last of each retry chain).
    pub jobs: i64,
    /// Not started yet: created, configured, ready, or waiting to be retried.
    pub waiting: i64,
    /// Dispatched and not finished running (`queued` to `post_processing`).
    pub in_flight: i64,
    /// Processed, being published.
    pub publishing: i64,
    /// Done.
    pub done: i64,
    /// Failed (internal error, checked errors).
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Jobs that ended (done or failed) in the last hour.
    pub ended_last_hour: i64,
}

impl CampaignProgress {
    /// Jobs that ended: done, failed or cancelled.
    pub fn ended(&self) -> i64 {
        self.done + self.failed + self.cancelled
    }

    /// Jobs not ended yet.
    pub fn remaining(&self) -> i64 {
        self.waiting + self.in_flight + self.publishing
    }

    /// Counts `count` jobs in status `status`, `recent` of which entered it in the last hour.
    fn add(&mut self, status: i16, count: i64, recent: i64) {
        let Ok(status) = JobStatus::from_id(status) else {
            return;
        };
        use JobStatus::*;
        let p = self;
        p.jobs += count;
        match status {
            Initialized | Configured | Ready | ExternalError => p.waiting += count,
            Queued | Started | PreProcessing | Processing | PostProcessing => p.in_flight += count,
            Processed | StartPublication | Published => p.publishing += count,
            Done => {
                p.done += count;
                p.ended_last_hour += recent;
            }
            InternalError | ErrorChecked => {
                p.failed += count;
                p.ended_last_hour += recent;
            }
            Cancelled => p.cancelled += count,
        }
    }
}

/// The progress of campaign `id`, counted from its jobs (see [`campaigns_progress`]).
pub async fn campaign_progress<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
) -> Result<CampaignProgress, DbError> {
    Ok(campaigns_progress(db, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}

/// The progress of each of the campaigns `ids`, counted from their jobs in one statement: every
/// job by status, less the jobs that a later retry replaces (the retried job, and every retry but
/// the last). Both counts read indexes only (`jobs_campaign`, `jobs_campaign_retries`), without a
/// lookup per job. A campaign without jobs has no entry.
pub async fn campaigns_progress<'e>(
    db: impl PgExecutor<'e>,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, CampaignProgress>, DbError> {
    let rows: Vec<(i64, i16, i64, i64)> = sqlx::query_as(
        "WITH everything AS (
             SELECT campaign_id, status, count(*) AS jobs,
                    count(*) FILTER (WHERE status_changed_at > clock_timestamp() - interval '1 hour') AS recent
             FROM jobs WHERE campaign_id = ANY ($1)
             GROUP BY campaign_id, status
         ),
         retries AS (
             SELECT id, retry_of FROM jobs WHERE campaign_id = ANY ($1) AND retry_of IS NOT NULL
         ),
         chains AS (
             SELECT retry_of AS original, max(id) AS last FROM retries GROUP BY retry_of
         ),
         replaced AS (
             SELECT o.id FROM jobs o JOIN chains ch ON o.id = ch.original
             UNION ALL
             SELECT r.id FROM retries r JOIN chains ch ON ch.original = r.retry_of WHERE r.id <> ch.last
         ),
         replaced_by_status AS (
             SELECT j.campaign_id, j.status, count(*) AS jobs,
                    count(*) FILTER (WHERE j.status_changed_at > clock_timestamp() - interval '1 hour') AS recent
             FROM jobs j JOIN replaced USING (id)
             GROUP BY j.campaign_id, j.status
         )
         SELECT e.campaign_id, e.status, e.jobs - coalesce(r.jobs, 0), e.recent - coalesce(r.recent, 0)
         FROM everything e LEFT JOIN replaced_by_status r USING (campaign_id, status)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    let mut progress: std::collections::HashMap<i64, CampaignProgress> = Default::default();
    for (campaign, status, count, recent) in rows {
        progress
            .entry(campaign)
            .or_default()
            .add(status, count, recent);
    }
    Ok(progress)
}

/// The campaigns that are not over, oldest first.
pub async fn active_campaigns<'e>(db: impl PgExecutor<'e>) -> Result<Vec<Campaign>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state IN ('listing', 'running', 'paused') ORDER BY id"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(campaign_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_three_are_final() {
        use CampaignState::*;
        for state in [Listing, Running, Paused, Completed, Cancelled, Failed] {
            assert_eq!(state.name().parse::<CampaignState>().unwrap(), state);
        }
        assert!("done".parse::<CampaignState>().is_err());
        assert!(!Paused.is_final() && Completed.is_final() && Failed.is_final());
    }

    #[test]
    fn skip_reasons_are_bounded() {
        let mut reasons = BTreeMap::new();
        let many: BTreeMap<String, i64> = (0..MAX_SKIP_REASONS + 5)
            .map(|i| (format!("reason {i:03}"), 1))
            .collect();
        merge_reasons(&mut reasons, &many);
        merge_reasons(&mut reasons, &[("reason 000".to_string(), 2)].into());
        assert_eq!(reasons.len(), MAX_SKIP_REASONS + 1);
        assert_eq!(reasons["reason 000"], 3);
        assert_eq!(reasons[OTHER_REASONS], 5);
        assert_eq!(
            reasons.values().sum::<i64>(),
            (MAX_SKIP_REASONS + 5 + 2) as i64
        );
    }
}

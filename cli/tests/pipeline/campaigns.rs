//! Reprocessing campaigns against PostgreSQL: what a campaign's listing creates (and skips, and
//! why), the dispatch throttle and priority, and the listing lease that keeps two instances from
//! committing one campaign's pages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::catalogue::local::list_directory;
use swath_engine::catalogue::CataloguePage;
use swath_engine::config::Settings;
use swath_engine::db::campaigns::{
    campaign_progress, commit_listing_page, create_campaign, get_campaign, pause_campaign,
    reprocessed_jobs, resume_campaign, take_listing, Campaign, CampaignPage, CampaignState,
    ListingError, NewCampaign, ALREADY_KNOWN,
};
use swath_engine::db::claim::{claim_ready_jobs, Claimant};
use swath_engine::db::jobs::{get_job, insert_jobs, list_jobs, JobFilter};
use swath_engine::pipeline::campaign::{CampaignService, OUTSIDE_TILES};
use swath_engine::pipeline::ingest::ingest_page;

use support::drive;

fn samples() -> std::path::PathBuf {
    support::workspace_root().join("samples/catalogue")
}

fn new_campaign(name: &str, job_type: &str) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        job_type: job_type.into(),
        source: format!("dir:{}", samples().display()),
        from: "2000-01-01T00:00:00Z".parse().unwrap(),
        to: "2100-01-01T00:00:00Z".parse().unwrap(),
        tiles: None,
        reprocess: false,
        image: None,
        max_in_flight: 10,
    }
}

fn service(pool: &PgPool) -> CampaignService {
    let settings = Settings::default();
    CampaignService {
        pool: pool.clone(),
        registry: Arc::new(settings.registry().unwrap()),
        catalogue_options: settings.catalogue_options(),
        owner: uuid::Uuid::new_v4(),
        lease: Duration::from_secs(60),
        interval: Duration::from_secs(1),
    }
}

async fn ingest_samples(pool: &PgPool) {
    let registry = Settings::default().registry().unwrap();
    let page = CataloguePage {
        products: list_directory(&samples()).unwrap(),
        ..Default::default()
    };
    ingest_page(
        pool,
        registry.get("fsc_rlie").unwrap().as_ref(),
        "dir:samples",
        &page,
    )
    .await
    .unwrap();
}

async fn jobs_of(pool: &PgPool, campaign: i64) -> Vec<Job> {
    let all = list_jobs(
        pool,
        &JobFilter {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    all.into_iter()
        .filter(|j| j.campaign_id == Some(campaign))
        .collect()
}

#[sqlx::test(migrations = "../sql")]
async fn a_backfill_campaign_creates_only_what_ingestion_left_and_says_why_it_skipped_the_rest(
    pool: PgPool,
) {
    ingest_samples(&pool).await;
    let campaign = create_campaign(&pool, &new_campaign("backfill", "fsc_rlie"))
        .await
        .unwrap();
    service(&pool).round().await.unwrap();

    let listed = get_campaign(&pool, campaign.id).await.unwrap();
    assert_eq!(listed.state, CampaignState::Running);
    assert!(listed.listing_finished_at.is_some());
    assert_eq!(listed.pages, 1);
    assert_eq!(
        listed.products_listed,
        list_directory(&samples()).unwrap().len() as i64,
        "every entry, the malformed one included"
    );
    // Ingestion left the 2015 product cancelled (sensed before the processing start date: left to
    // reprocessing campaigns): the campaign processes it, and only it.
    let jobs = jobs_of(&pool, campaign.id).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?} {:?}", listed.skipped);
    let job = &jobs[0];
    assert_eq!(job.tile_id.as_deref(), Some("31UFS"));
    assert_eq!(job.status, JobStatus::Initialized);
    assert_eq!(job.priority, JobPriority::Reprocessing);
    assert_eq!(job.params["reprocessing_context"], "campaign");
    assert_eq!(listed.jobs_created, 1);
    // The other 7 usable products have jobs already; the S1 and L2A products are not for fsc_rlie;
    // the month-13 name is quarantined.
    assert_eq!(listed.skipped[ALREADY_KNOWN], 7, "{:?}", listed.skipped);
    assert!(listed
        .skipped
        .keys()
        .any(|r| r.starts_with("not for this job type: ")));
    assert_eq!(
        listed
            .skipped
            .iter()
            .filter(|(r, _)| r.starts_with("quarantined: "))
            .map(|(_, n)| n)
            .sum::<i64>(),
        1
    );
    let progress = campaign_progress(&pool, campaign.id).await.unwrap();
    assert_eq!((progress.jobs, progress.waiting), (1, 1));

    // Nothing is listed twice: the listing is finished.
    service(&pool).round().await.unwrap();
    assert_eq!(jobs_of(&pool, campaign.id).await.len(), 1);
    assert_eq!(get_campaign(&pool, campaign.id).await.unwrap().pages, 1);
}

#[sqlx::test(migrations = "../sql")]
async fn a_reprocessing_campaign_makes_new_jobs_for_ended_products_of_its_tiles_that_replace_them(
    pool: PgPool,
) {
    ingest_samples(&pool).await;
    // Both 32TLR jobs end: one done, one failed.
    let tlr: Vec<Job> = list_jobs(
        &pool,
        &JobFilter {
            tile_id: Some("32TLR".into()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(tlr.len(), 2);
    let done = drive(&pool, tlr[0].clone(), &support::path_to(JobStatus::Done)).await;
    let failed = drive(
        &pool,
        tlr[1].clone(),
        &[
            JobStatus::Configured,
            JobStatus::Ready,
            JobStatus::InternalError,
        ],
    )
    .await;
    let mut asked = new_campaign("reprocess 32TLR", "fsc_rlie");
    asked.reprocess = true;
    asked.tiles = Some(vec!["32TLR".into()]);
    asked.image = Some("registry.example/fsc@sha256:abc".into());
    let campaign = create_campaign(&pool, &asked).await.unwrap();
    service(&pool).round().await.unwrap();

    let jobs = jobs_of(&pool, campaign.id).await;
    let mut names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    let mut expected = [
        format!("{}-campaign-{}", done.name, campaign.id),
        format!("{}-campaign-{}", failed.name, campaign.id),
    ];
    expected.sort_unstable();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for job in &jobs {
        assert_eq!(job.priority, JobPriority::Reprocessing);
        assert_eq!(job.status, JobStatus::Initialized);
        assert_eq!(
            job.software_version.as_deref(),
            Some("registry.example/fsc@sha256:abc")
        );
        let original = if job.product_id == done.product_id {
            &done
        } else {
            &failed
        };
        assert_eq!(
            reprocessed_jobs(&pool, job).await.unwrap(),
            vec![original.id],
            "the new job may take over the earlier job's products"
        );
    }
    let listed = get_campaign(&pool, campaign.id).await.unwrap();
    assert!(listed.skipped[OUTSIDE_TILES] >= 1, "{:?}", listed.skipped);
    // Jobs of other tiles still waiting are not reprocessed.
    assert!(
        listed
            .skipped
            .contains_key(swath_engine::pipeline::campaign::STILL_RUNNING),
        "{:?}",
        listed.skipped
    );
    // A job outside any campaign does not replace anybody through this rule.
    assert!(reprocessed_jobs(&pool, &done).await.unwrap().is_empty());
}

/// A ready `test_job`, in `campaign` if given, with input published at `published`.
async fn ready(pool: &PgPool, name: &str, campaign: Option<i64>, priority: JobPriority) -> Job {
    let mut new = NewJob::new("test_job", name, 3);
    new.campaign_id = campaign;
    new.priority = priority;
    new.input_published_at = Some("2021-01-01T00:00:00Z".parse().unwrap());
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    drive(pool, job, &[JobStatus::Configured, JobStatus::Ready]).await
}

fn claimant() -> Claimant {
    Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: serde_json::json!({"name": "test"}),
        lease: Duration::from_secs(60),
    }
}

fn types() -> Vec<String> {
    vec!["test_job".into()]
}

#[sqlx::test(migrations = "../sql")]
async fn campaign_jobs_wait_behind_nrt_jobs_of_the_same_flavor(pool: PgPool) {
    let mut asked = new_campaign("season", "test_job");
    asked.max_in_flight = 100;
    let campaign = create_campaign(&pool, &asked).await.unwrap();
    // The campaign's jobs are older, and there are more of them.
    let mut campaign_jobs = Vec::new();
    for i in 0..5 {
        campaign_jobs.push(
            ready(
                &pool,
                &format!("old-{i}"),
                Some(campaign.id),
                JobPriority::Reprocessing,
            )
            .await,
        );
    }
    let delayed = ready(&pool, "delayed", None, JobPriority::Delayed).await;
    let nrt = ready(&pool, "nrt", None, JobPriority::Nrt).await;

    let first = claim_ready_jobs(&pool, &claimant(), &types(), 2)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![nrt.id, delayed.id],
        "two free slots go to the nrt and the delayed job"
    );
    let rest = claim_ready_jobs(&pool, &claimant(), &types(), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 5);
    assert!(rest.iter().all(|j| j.campaign_id == Some(campaign.id)));
}

#[sqlx::test(migrations = "../sql")]
async fn concurrent_claims_never_take_more_than_a_campaigns_free_slots_and_none_while_paused(
    pool: PgPool,
) {
    let mut asked = new_campaign("throttled", "test_job");
    asked.max_in_flight = 3;
    let campaign = create_campaign(&pool, &asked).await.unwrap();
    for i in 0..20 {
        ready(
            &pool,
            &format!("c-{i}"),
            Some(campaign.id),
            JobPriority::Reprocessing,
        )
        .await;
    }
    let other = ready(&pool, "other", None, JobPriority::Reprocessing).await;
    // Eight instances claim at once.
    let claims: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                claim_ready_jobs(&pool, &claimant(), &types(), 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        claimed.extend(claim.await.unwrap());
    }
    let of_campaign = claimed
        .iter()
        .filter(|j| j.campaign_id == Some(campaign.id))
        .count();
    assert_eq!(of_campaign, 3, "three free slots, filled once");
    assert!(claimed.iter().any(|j| j.id == other.id));

    // One of them is dispatched and ends: one slot frees.
    let mut first = claimed
        .into_iter()
        .find(|j| j.campaign_id == Some(campaign.id))
        .unwrap();
    first = drive(&pool, first, &[JobStatus::Queued, JobStatus::Started]).await;
    assert!(claim_ready_jobs(&pool, &claimant(), &types(), 10)
        .await
        .unwrap()
        .is_empty());
    drive(
        &pool,
        first,
        &[
            JobStatus::PreProcessing,
            JobStatus::Processing,
            JobStatus::PostProcessing,
            JobStatus::Processed,
        ],
    )
    .await;
    let paused = pause_campaign(&pool, campaign.id).await.unwrap();
    assert_eq!(paused.campaign.state, CampaignState::Paused);
    assert_eq!(paused.claimed, 2, "the two claims still held");
    assert!(
        claim_ready_jobs(&pool, &claimant(), &types(), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing of a paused campaign is claimed"
    );
    let resumed = resume_campaign(&pool, campaign.id).await.unwrap();
    assert_eq!(
        resumed.state,
        CampaignState::Listing,
        "its window was never listed"
    );
    let after = claim_ready_jobs(&pool, &claimant(), &types(), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "one slot freed by the processed job");
    let progress = campaign_progress(&pool, campaign.id).await.unwrap();
    assert_eq!(
        (progress.jobs, progress.waiting, progress.publishing),
        (20, 19, 1)
    );
}

#[sqlx::test(migrations = "../sql")]
async fn only_the_holder_of_a_campaigns_listing_lease_commits_its_pages(pool: PgPool) {
    let campaign: Campaign = create_campaign(&pool, &new_campaign("leased", "test_job"))
        .await
        .unwrap();
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let short = Duration::from_millis(300);
    let taken = take_listing(&pool, a, short, &[]).await.unwrap().unwrap();
    assert_eq!(taken.id, campaign.id);
    assert!(take_listing(&pool, b, short, &[]).await.unwrap().is_none());
    // A stalls past its lease: B takes the listing over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if take_listing(&pool, b, Duration::from_secs(60), &[])
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "B never took the listing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut job = NewJob::new("test_job", "from-a", 3);
    job.campaign_id = Some(campaign.id);
    job.product_id = Some("P1".into());
    let page = CampaignPage {
        listed: 1,
        jobs: vec![job],
        next: Some(
            serde_json::json!({"url": "x", "body": null, "window_start": "2021-01-01T00:00:00Z"}),
        ),
        ..Default::default()
    };
    let refused = commit_listing_page(&pool, campaign.id, a, short, &page).await;
    assert!(matches!(refused, Err(ListingError::LostLease(id)) if id == campaign.id));
    assert!(
        jobs_of(&pool, campaign.id).await.is_empty(),
        "A wrote nothing"
    );

    let committed = commit_listing_page(&pool, campaign.id, b, short, &page)
        .await
        .unwrap();
    assert_eq!(committed.inserted.len(), 1);
    let stored = get_campaign(&pool, campaign.id).await.unwrap();
    assert_eq!(
        (stored.pages, stored.products_listed, stored.jobs_created),
        (1, 1, 1)
    );
    assert!(stored.listing_cursor.is_some());
    // The same product again (a page listed twice) is refused by the one-job-per-product rule.
    let mut again = page.clone();
    again.jobs[0].name = "from-b-again".into();
    assert!(commit_listing_page(&pool, campaign.id, b, short, &again)
        .await
        .is_err());
    assert_eq!(jobs_of(&pool, campaign.id).await.len(), 1);
}

#[sqlx::test(migrations = "../sql")]
async fn progress_counts_each_product_once_by_the_last_job_of_its_retry_chain(pool: PgPool) {
    let campaign = create_campaign(&pool, &new_campaign("retried", "test_job"))
        .await
        .unwrap();
    let failed = ready(
        &pool,
        "will-fail",
        Some(campaign.id),
        JobPriority::Reprocessing,
    )
    .await;
    ready(&pool, "waits", Some(campaign.id), JobPriority::Reprocessing).await;
    drive(&pool, failed.clone(), &[JobStatus::InternalError]).await;
    let progress = campaign_progress(&pool, campaign.id).await.unwrap();
    assert_eq!(
        (progress.jobs, progress.failed, progress.waiting),
        (2, 1, 1)
    );
    assert_eq!(progress.ended_last_hour, 1);

    let first = swath_engine::db::retries::retry_job(&pool, failed.id, 5)
        .await
        .unwrap();
    assert_eq!(
        first.job.campaign_id,
        Some(campaign.id),
        "a retry stays in its campaign"
    );
    drive(&pool, first.job.clone(), &[JobStatus::Cancelled]).await;
    let second = swath_engine::db::retries::retry_job(&pool, failed.id, 5)
        .await
        .unwrap();
    let progress = campaign_progress(&pool, campaign.id).await.unwrap();
    assert_eq!(
        (
            progress.jobs,
            progress.failed,
            progress.cancelled,
            progress.waiting
        ),
        (2, 0, 0, 2),
        "the original and the first retry are replaced by the second: {progress:?}"
    );
    assert_eq!(second.job.campaign_id, Some(campaign.id));
}

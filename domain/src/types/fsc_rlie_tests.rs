//! Tests of the `fsc_rlie` job type.

use super::*;
use crate::job::{JobResults, OutputProduct};
use crate::template::{Superseded, SupersededWhy};
use crate::testing::{job_from_new, listed, MemoryContext};

/// A product of the real OData sample page (`samples/odata_s2_l1c_page.json`), outside Europe.
const SAMPLE_A: &str = "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE";

fn fsc() -> FscRlie {
    FscRlie::new(&JobTypeOverrides::default()).unwrap()
}

/// `listed` with a footprint: a box from `south` to `north` over tile 29UNV.
fn listed_with_footprint(name: &str, published: &str, south: f64, north: f64) -> CatalogueProduct {
    let mut p = listed(name, published);
    p.footprint = Some(
        serde_json::json!({"type": "Polygon", "coordinates": [[[-8.0, south], [-6.4, south], [-6.4, north], [-8.0, north], [-8.0, south]]]}),
    );
    p
}

#[tokio::test]
async fn creates_one_job_per_l1c_over_the_area_and_sorts_out_the_rest() {
    let ctx = MemoryContext::default();
    let tlr = "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408.SAFE";
    let tls = "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLS_20210413T122408";
    let page = [
        listed(tlr, "2021-04-13T13:00:00Z"),
        listed(tls, "2021-04-13T13:00:00Z"),
        listed(tlr, "2021-04-13T13:00:00Z"),
        listed(SAMPLE_A, "2023-08-23T09:26:23.105134Z"),
        listed(
            "S2B_MSIL2A_20230301T104859_N0510_R051_T31UDT_20240824T133550.SAFE",
            "2024-08-24T15:00:00Z",
        ),
        listed(
            "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A.SAFE",
            "2021-04-12T16:00:00Z",
        ),
        listed(
            "S2A_MSIL1C_20200808T010311_N0500_R045_T54IXA_20230413T212505",
            "2023-08-23T09:26:23Z",
        ),
    ];
    let out = fsc().get_jobs_to_create(&ctx, &page).await.unwrap();
    assert_eq!(
        out.jobs.len(),
        2,
        "the duplicate within the page is dropped"
    );
    let reasons: Vec<&str> = out.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("tile 54PXA is outside the area of interest"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("L2A is not L1C"));
    assert!(reasons[2].contains("not a Sentinel-2 product"));
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].reason.contains("54IXA"),
        "{:?}",
        out.rejected
    );
    assert!(out.superseded.is_empty());

    let job = &out.jobs[0];
    assert_eq!(
        job.name,
        "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408"
    );
    assert_eq!(job.tile_id.as_deref(), Some("32TLR"));
    assert_eq!(job.initial_status, JobStatus::Initialized);
    assert_eq!(
        job.measured_at.unwrap().to_rfc3339(),
        "2021-04-13T10:10:21+00:00"
    );
    assert_eq!(job.priority, JobPriority::Nrt);
    let params: FscRlieParams = serde_json::from_value(job.params.clone()).unwrap();
    assert_eq!(params.baseline, "N0300");
    assert_eq!(params.relative_orbit, 22);
    assert_eq!(params.cloud_cover, Some(12.5));
}

#[tokio::test]
async fn a_reprocessing_published_years_later_is_delayed() {
    let overrides = JobTypeOverrides {
        tiles: Some(["32TLR".to_string()].into()),
        ..Default::default()
    };
    let t = FscRlie::new(&overrides).unwrap();
    let page = [listed(
        "S2A_MSIL1C_20200808T101031_N0500_R022_T32TLR_20230413T212505",
        "2023-08-23T09:26:23Z",
    )];
    let out = t
        .get_jobs_to_create(&MemoryContext::default(), &page)
        .await
        .unwrap();
    assert_eq!(out.jobs[0].priority, JobPriority::Delayed);
    assert_eq!(t.area_of_interest_bbox().map(|b| b[0] > 6.0), Some(true));
}

/// The four products of one datatake and tile of catalogue notes §2.4 (tile 29UNV, 2021-10-02),
/// as L1C: two partial-tile products (N0301) and their N0500 reprocessings.
const A301: &str = "S2B_MSIL1C_20211002T113319_N0301_R080_T29UNV_20211002T141024";
const B301: &str = "S2B_MSIL1C_20211002T113319_N0301_R080_T29UNV_20211002T160521";
const A500: &str = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230102T203816";
const B500: &str = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230103T031448";
/// A third partial of the same datatake and baseline (constructed: further south).
const C500: &str = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230104T010101";
const NORTH: (f64, f64) = (53.52, 54.15);
const SOUTH: (f64, f64) = (53.15, 53.96);

/// The L1C names of the `inputs` of `job`'s params (empty for a job of its own product only).
fn input_ids(params: &serde_json::Value) -> Vec<String> {
    FscRlieParams::parse(params)
        .unwrap()
        .inputs
        .into_iter()
        .map(|i| i.l1c_id)
        .collect()
}

/// The split pair of N0500 in one page is one job with both partials as inputs, and its task
/// stages both.
#[tokio::test]
async fn a_split_datatake_is_one_job_with_both_partials() {
    let t = fsc();
    let page = [
        listed_with_footprint(B500, "2023-01-03T04:00:00Z", SOUTH.0, SOUTH.1),
        listed_with_footprint(A500, "2023-01-02T22:00:00Z", NORTH.0, NORTH.1),
    ];
    let out = t
        .get_jobs_to_create(&MemoryContext::default(), &page)
        .await
        .unwrap();
    assert_eq!(out.jobs.len(), 1, "{:?}", out.jobs);
    let job = &out.jobs[0];
    assert_eq!(job.name, A500, "named after the first by name");
    assert_eq!(job.product_id.as_deref(), Some(A500));
    assert_eq!(job.initial_status, JobStatus::Initialized);
    assert_eq!(input_ids(&job.params), [A500, B500]);
    let params = FscRlieParams::parse(&job.params).unwrap();
    assert_eq!(params.l1c_id, A500);
    assert_eq!(params.inputs[1].input_path, format!("/eodata/test/{B500}"));
    assert!(params.inputs[1].footprint.is_some());
    assert!(params.supersedes.is_empty());

    // Configured and dispatched, it stages both partials, and writes its L2A once.
    let mut stored = job_from_new(job, 7);
    let configured = t
        .configure_single_job(&MemoryContext::default(), &stored)
        .await
        .unwrap();
    assert_eq!(configured.decision, Configuration::Ready);
    stored.params = configured.params.unwrap();
    assert_eq!(stored.params["l2a_path_out"], format!("29UNV/L2A/{A500}"));
    stored.status = JobStatus::Ready;
    let task = t.worker_task(&stored).unwrap();
    let staged: Vec<(&str, &str)> = task
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.source.as_str()))
        .collect();
    let (a, b) = (
        format!("/eodata/test/{A500}"),
        format!("/eodata/test/{B500}"),
    );
    assert_eq!(staged, [(A500, a.as_str()), (B500, b.as_str())]);
    assert!(task.inputs.iter().all(|i| i.required));
    assert_eq!(task.parameters["params"]["inputs"][1]["l1c_id"], B500);
}

/// The four products of the split datatake in one page: the N0301 pair is one cancelled job (a
/// newer version of both exists), the N0500 pair one job with both inputs.
#[tokio::test]
async fn the_n0301_pair_is_cancelled_and_the_n0500_pair_is_one_job() {
    let page = [
        listed_with_footprint(A301, "2021-10-02T15:00:00Z", NORTH.0, NORTH.1),
        listed_with_footprint(B301, "2021-10-02T17:00:00Z", SOUTH.0, SOUTH.1),
        listed_with_footprint(A500, "2023-01-02T22:00:00Z", NORTH.0, NORTH.1),
        listed_with_footprint(B500, "2023-01-03T04:00:00Z", SOUTH.0, SOUTH.1),
    ];
    let out = fsc()
        .get_jobs_to_create(&MemoryContext::default(), &page)
        .await
        .unwrap();
    assert_eq!(out.jobs.len(), 2, "{:?}", out.jobs);
    let (old, new) = (&out.jobs[0], &out.jobs[1]);
    assert_eq!(old.name, A301);
    assert_eq!(old.initial_status, JobStatus::Cancelled);
    let why = old.initial_message.as_deref().unwrap();
    assert!(
        why.contains(
            "superseded by a newer version of the same product: S2B_MSIL1C_20211002T113319_N0500"
        ),
        "{why}"
    );
    assert_eq!(old.params["reprocessing_context"], "superseded");
    assert_eq!(
        input_ids(&old.params),
        [A301, B301],
        "both are known, none listed again makes a job"
    );
    assert_eq!(new.name, A500);
    assert_eq!(new.initial_status, JobStatus::Initialized);
    assert_eq!(input_ids(&new.params), [A500, B500]);
    assert!(out.superseded.is_empty());

    // Listed again (the demo's catalogue is read at every start): nothing new.
    let ctx = MemoryContext {
        jobs: vec![job_from_new(old, 1), job_from_new(new, 2)],
    };
    let again = fsc().get_jobs_to_create(&ctx, &page).await.unwrap();
    assert!(again.jobs.is_empty(), "{:?}", again.jobs);
}

/// A partial with a newer version of its own in the page does not take the other partial down with
/// it: the superseded one is cancelled alone, the newest of each part make one job.
#[tokio::test]
async fn a_superseded_partial_is_cancelled_apart_from_its_current_sibling() {
    // The northern part generated again in N0500 (same footprint, later discriminator).
    const A500_AGAIN: &str = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230105T000000";
    let page = [
        listed_with_footprint(A500, "2023-01-02T22:00:00Z", NORTH.0, NORTH.1),
        listed_with_footprint(B500, "2023-01-03T04:00:00Z", SOUTH.0, SOUTH.1),
        listed_with_footprint(A500_AGAIN, "2023-01-05T01:00:00Z", NORTH.0, NORTH.1),
    ];
    let out = fsc()
        .get_jobs_to_create(&MemoryContext::default(), &page)
        .await
        .unwrap();
    assert_eq!(out.jobs.len(), 2, "{:?}", out.jobs);
    assert_eq!(out.jobs[0].name, A500);
    assert_eq!(out.jobs[0].initial_status, JobStatus::Cancelled);
    assert!(input_ids(&out.jobs[0].params).is_empty());
    assert_eq!(out.jobs[1].name, B500);
    assert_eq!(out.jobs[1].initial_status, JobStatus::Initialized);
    assert_eq!(input_ids(&out.jobs[1].params), [B500, A500_AGAIN]);
}

/// A partial listed again when a job already processes it among its `inputs` is known.
#[tokio::test]
async fn a_partial_known_as_an_input_is_not_listed_again() {
    let t = fsc();
    let both = t
        .get_jobs_to_create(
            &MemoryContext::default(),
            &[
                listed_with_footprint(A500, "2023-01-02T22:00:00Z", NORTH.0, NORTH.1),
                listed_with_footprint(B500, "2023-01-03T04:00:00Z", SOUTH.0, SOUTH.1),
            ],
        )
        .await
        .unwrap();
    let mut existing = job_from_new(&both.jobs[0], 5);
    for status in [
        JobStatus::Initialized,
        JobStatus::Processing,
        JobStatus::Done,
    ] {
        existing.status = status;
        let ctx = MemoryContext {
            jobs: vec![existing.clone()],
        };
        let out = t
            .get_jobs_to_create(
                &ctx,
                &[listed_with_footprint(
                    B500,
                    "2023-01-03T04:00:00Z",
                    SOUTH.0,
                    SOUTH.1,
                )],
            )
            .await
            .unwrap();
        assert!(out.jobs.is_empty(), "{status:?}: {:?}", out.jobs);
        assert!(out.superseded.is_empty());
    }
}

/// The northern partial alone, as a job of its own product, in `status`, with id 41.
async fn northern_job(status: JobStatus) -> Job {
    let out = fsc()
        .get_jobs_to_create(
            &MemoryContext::default(),
            &[listed_with_footprint(
                A500,
                "2023-01-02T22:00:00Z",
                NORTH.0,
                NORTH.1,
            )],
        )
        .await
        .unwrap();
    let mut job = job_from_new(&out.jobs[0], 41);
    job.status = status;
    job
}

/// The southern partial listed in a later page than the northern one, whose job exists.
async fn southern_later(existing: &[Job]) -> JobsToCreate {
    let ctx = MemoryContext {
        jobs: existing.to_vec(),
    };
    fsc()
        .get_jobs_to_create(
            &ctx,
            &[listed_with_footprint(
                B500,
                "2023-01-03T04:00:00Z",
                SOUTH.0,
                SOUTH.1,
            )],
        )
        .await
        .unwrap()
}

/// The southern partial listed after the northern's job was processed: a new job runs with both,
/// and replaces the first run's products (no grace delay, unlike versions: it was published a
/// day after sensing, well past `SUPERSEDE_GRACE`).
#[tokio::test]
async fn a_partial_listed_after_its_sibling_was_processed_reruns_the_datatake() {
    for status in [JobStatus::Processed, JobStatus::Done, JobStatus::Processing] {
        let northern = northern_job(status).await;
        let out = southern_later(&[northern]).await;
        assert_eq!(out.jobs.len(), 1, "{status:?}");
        let job = &out.jobs[0];
        assert_eq!(job.name, B500, "named after the new product");
        assert_eq!(job.initial_status, JobStatus::Initialized, "{status:?}");
        assert_eq!(input_ids(&job.params), [A500, B500]);
        assert_eq!(job.params["supersedes"], serde_json::json!([41]));
        assert!(out.superseded.is_empty(), "a run is never cancelled");
        // Its L2A goes where the first run put it: one L2A per datatake and tile.
        let configured = fsc()
            .configure_single_job(&MemoryContext::default(), &job_from_new(job, 42))
            .await
            .unwrap();
        assert_eq!(
            configured.params.unwrap()["l2a_path_out"],
            format!("29UNV/L2A/{A500}")
        );
    }

    // A northern job that ended without running: its inputs are merged, nothing is replaced.
    for status in [JobStatus::Cancelled, JobStatus::InternalError] {
        let out = southern_later(&[northern_job(status).await]).await;
        assert_eq!(input_ids(&out.jobs[0].params), [A500, B500], "{status:?}");
        assert!(out.jobs[0].params.get("supersedes").is_none());
        assert!(out.superseded.is_empty());
    }
}

/// The southern partial listed while the northern's job waits: the waiting job is cancelled in
/// favour of the new one with both.
#[tokio::test]
async fn a_partial_listed_while_its_sibling_waits_replaces_it() {
    for status in [
        JobStatus::Initialized,
        JobStatus::Configured,
        JobStatus::Ready,
    ] {
        let out = southern_later(&[northern_job(status).await]).await;
        assert_eq!(
            out.superseded,
            vec![Superseded {
                job_id: 41,
                status,
                attempt: 1,
                by: B500.into(),
                why: SupersededWhy::MorePartials,
            }]
        );
        assert_eq!(out.jobs[0].initial_status, JobStatus::Initialized);
        assert_eq!(input_ids(&out.jobs[0].params), [A500, B500]);
    }
}

/// A third partial after a re-run: the new job takes every input, and replaces the re-run only
/// (the re-run already replaces the first job).
#[tokio::test]
async fn a_third_partial_replaces_the_latest_run_only() {
    let northern = northern_job(JobStatus::Done).await;
    let rerun = southern_later(std::slice::from_ref(&northern)).await;
    let mut rerun = job_from_new(&rerun.jobs[0], 42);
    rerun.status = JobStatus::Done;
    let ctx = MemoryContext {
        jobs: vec![northern, rerun],
    };
    let out = fsc()
        .get_jobs_to_create(
            &ctx,
            &[listed_with_footprint(
                C500,
                "2023-01-04T02:00:00Z",
                52.9,
                53.2,
            )],
        )
        .await
        .unwrap();
    assert_eq!(input_ids(&out.jobs[0].params), [A500, B500, C500]);
    assert_eq!(out.jobs[0].params["supersedes"], serde_json::json!([42]));
}

/// A partial listed after its sibling was replaced by a newer version: the sibling's product is
/// left to the newer version's job, not processed again with the new partial.
#[tokio::test]
async fn a_sibling_replaced_by_a_newer_version_is_not_merged() {
    let t = fsc();
    let north_page = |name: &str| {
        [listed_with_footprint(
            name,
            "2021-10-02T15:00:00Z",
            NORTH.0,
            NORTH.1,
        )]
    };
    let a301 = t
        .get_jobs_to_create(&MemoryContext::default(), &north_page(A301))
        .await
        .unwrap();
    let mut a301 = job_from_new(&a301.jobs[0], 1);
    let a500 = t
        .get_jobs_to_create(
            &MemoryContext {
                jobs: vec![a301.clone()],
            },
            &north_page(A500),
        )
        .await
        .unwrap();
    let a500 = job_from_new(&a500.jobs[0], 2);
    // Cancelled by the superseding, which records no reprocessing context.
    a301.status = JobStatus::Cancelled;
    let ctx = MemoryContext {
        jobs: vec![a301, a500],
    };
    let out = t
        .get_jobs_to_create(
            &ctx,
            &[listed_with_footprint(
                B301,
                "2021-10-02T17:00:00Z",
                SOUTH.0,
                SOUTH.1,
            )],
        )
        .await
        .unwrap();
    assert_eq!(out.jobs.len(), 1);
    assert_eq!(out.jobs[0].name, B301);
    assert_eq!(out.jobs[0].initial_status, JobStatus::Initialized);
    assert!(input_ids(&out.jobs[0].params).is_empty());
    assert!(out.jobs[0].params.get("supersedes").is_none());
    assert!(out.superseded.is_empty());
}

/// A job that replaces a job still running waits for it to end; once it has, it is configured.
#[tokio::test]
async fn configuration_waits_for_a_replaced_job_in_flight() {
    let t = fsc();
    let out = southern_later(&[northern_job(JobStatus::Processing).await]).await;
    let rerun = job_from_new(&out.jobs[0], 42);
    for status in [
        JobStatus::Queued,
        JobStatus::Started,
        JobStatus::PreProcessing,
        JobStatus::Processing,
        JobStatus::PostProcessing,
    ] {
        let ctx = MemoryContext {
            jobs: vec![northern_job(status).await, rerun.clone()],
        };
        let configured = t.configure_single_job(&ctx, &rerun).await.unwrap();
        let Configuration::Wait { reason, on } = configured.decision else {
            panic!("{status:?}: {configured:?}")
        };
        assert_eq!(on, Some(41), "{status:?}");
        assert!(reason.contains("job 41"), "{reason}");
    }
    for status in [
        JobStatus::Processed,
        JobStatus::Done,
        JobStatus::InternalError,
        JobStatus::Cancelled,
    ] {
        let ctx = MemoryContext {
            jobs: vec![northern_job(status).await, rerun.clone()],
        };
        let configured = t.configure_single_job(&ctx, &rerun).await.unwrap();
        assert_eq!(configured.decision, Configuration::Ready, "{status:?}");
    }
}

/// `inputs` are checked: L1C names of the datatake and baseline of `l1c_id`, `l1c_id` among
/// them, each once, with an input path.
#[tokio::test]
async fn inputs_of_another_datatake_or_baseline_are_refused() {
    let t = fsc();
    let out = southern_later(&[northern_job(JobStatus::Done).await]).await;
    let good = job_from_new(&out.jobs[0], 42);
    let other_tile = "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNA_20230103T031448";
    for (i, field, value, expected) in [
        (0, "l1c_id", serde_json::json!(A301), "processing baseline"),
        (0, "l1c_id", serde_json::json!(other_tile), "datatake"),
        (0, "l1c_id", serde_json::json!(B500), "listed twice"),
        (
            0,
            "l1c_id",
            serde_json::json!("../x"),
            "params.inputs[0].l1c_id",
        ),
        (
            1,
            "l1c_id",
            serde_json::json!(C500),
            "does not list params.l1c_id",
        ),
        (
            0,
            "input_path",
            serde_json::json!(""),
            "params.inputs[0].input_path: is empty",
        ),
        (
            0,
            "input_path",
            serde_json::json!("/eodata/a\nb"),
            "control characters",
        ),
    ] {
        let mut job = good.clone();
        job.params["inputs"][i][field] = value;
        let out = t
            .configure_single_job(&MemoryContext::default(), &job)
            .await
            .unwrap();
        match out.decision {
            Configuration::Error { reason } => {
                assert!(reason.contains(expected), "{field}: {reason}")
            }
            other => panic!("{field}: configured {other:?}"),
        }
    }
    // Old params, without `inputs`, and unknown fields in an input.
    let mut old = good.clone();
    old.params.as_object_mut().unwrap().remove("inputs");
    assert!(FscRlieParams::parse(&old.params).unwrap().inputs.is_empty());
    let mut odd = good;
    odd.params["inputs"][0]["extra"] = serde_json::json!(1);
    assert!(FscRlieParams::parse(&odd.params).is_err());
}

#[tokio::test]
async fn a_newer_version_replaces_a_waiting_job_and_respects_a_processed_one() {
    let t = fsc();
    let old = t
        .get_jobs_to_create(
            &MemoryContext::default(),
            &[listed_with_footprint(
                A301,
                "2021-10-02T15:00:00Z",
                NORTH.0,
                NORTH.1,
            )],
        )
        .await
        .unwrap();
    let mut existing = job_from_new(&old.jobs[0], 41);

    // Still waiting: the newer version replaces it.
    let newer = [listed_with_footprint(
        A500,
        "2021-10-02T20:00:00Z",
        NORTH.0,
        NORTH.1,
    )];
    let ctx = MemoryContext {
        jobs: vec![existing.clone()],
    };
    let out = t.get_jobs_to_create(&ctx, &newer).await.unwrap();
    assert_eq!(
        out.superseded,
        vec![Superseded {
            job_id: 41,
            status: JobStatus::Initialized,
            attempt: 1,
            by: A500.into(),
            why: SupersededWhy::NewerVersion,
        }]
    );
    assert_eq!(out.jobs[0].initial_status, JobStatus::Initialized);
    assert_eq!(out.jobs[0].params["supersedes"], serde_json::json!([41]));

    // Already processed, and the newer version came within a day of sensing: processed again.
    existing.status = JobStatus::Done;
    let ctx = MemoryContext {
        jobs: vec![existing.clone()],
    };
    let out = t.get_jobs_to_create(&ctx, &newer).await.unwrap();
    assert!(out.superseded.is_empty());
    assert_eq!(out.jobs[0].initial_status, JobStatus::Initialized);

    // Already processed, and the newer version is a reprocessing published a year later: recorded,
    // not processed (campaigns are planned, not triggered by the catalogue).
    let late = [listed_with_footprint(
        A500,
        "2023-01-02T22:00:00Z",
        NORTH.0,
        NORTH.1,
    )];
    let out = t.get_jobs_to_create(&ctx, &late).await.unwrap();
    assert_eq!(out.jobs[0].initial_status, JobStatus::Cancelled);
    assert!(out.jobs[0]
        .initial_message
        .as_deref()
        .unwrap()
        .contains("(job 41), which is already processed"));
    assert_eq!(out.jobs[0].params["reprocessing_context"], "late_version");

    // An older version listed after a newer one is recorded as superseded.
    let newest = job_from_new(
        &t.get_jobs_to_create(&MemoryContext::default(), &newer)
            .await
            .unwrap()
            .jobs[0],
        42,
    );
    let ctx = MemoryContext { jobs: vec![newest] };
    let out = t
        .get_jobs_to_create(
            &ctx,
            &[listed_with_footprint(
                A301,
                "2021-10-02T15:00:00Z",
                NORTH.0,
                NORTH.1,
            )],
        )
        .await
        .unwrap();
    assert_eq!(out.jobs[0].initial_status, JobStatus::Cancelled);
    assert!(out.jobs[0]
        .initial_message
        .as_deref()
        .unwrap()
        .contains(A500));

    // A partial product next to a processed one of the same datatake is not a version of it: a new
    // job runs with both partials and replaces the first one's products.
    let ctx = MemoryContext {
        jobs: vec![existing],
    };
    let out = t
        .get_jobs_to_create(
            &ctx,
            &[listed_with_footprint(
                B301,
                "2021-10-02T17:00:00Z",
                SOUTH.0,
                SOUTH.1,
            )],
        )
        .await
        .unwrap();
    assert_eq!(out.jobs[0].initial_status, JobStatus::Initialized);
    assert_eq!(input_ids(&out.jobs[0].params), [A301, B301]);
    assert_eq!(out.jobs[0].params["supersedes"], serde_json::json!([41]));
    assert!(out.superseded.is_empty());
}

#[tokio::test]
async fn old_inputs_are_cancelled_recent_ones_are_nrt_and_the_aoi_filters() {
    let overrides = JobTypeOverrides {
        tiles: Some(["32TLR".to_string(), "31UFS".to_string()].into()),
        ..Default::default()
    };
    let t = FscRlie::new(&overrides).unwrap();
    let ctx = MemoryContext::default();
    let page = [
        listed(
            "S2A_MSIL1C_20151223T105452_N0201_R051_T31UFS_20151223T105449",
            "2015-12-23T15:00:00Z",
        ),
        listed(
            "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408",
            "2021-04-13T13:00:00Z",
        ),
        listed(
            "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLS_20210413T122408",
            "2021-04-13T13:00:00Z",
        ),
    ];
    let out = t.get_jobs_to_create(&ctx, &page).await.unwrap();
    assert_eq!(out.jobs.len(), 2);
    assert!(out.skipped[0]
        .reason
        .contains("outside the area of interest"));
    let old = &out.jobs[0];
    assert_eq!(old.initial_status, JobStatus::Cancelled);
    assert_eq!(old.priority, JobPriority::Reprocessing);
    assert!(old
        .initial_message
        .as_deref()
        .unwrap()
        .contains("2020-05-01"));
    assert_eq!(old.params["nrt"], false);
    let recent = &out.jobs[1];
    assert_eq!(recent.initial_status, JobStatus::Initialized);
    assert_eq!(recent.priority, JobPriority::Nrt);
}

#[tokio::test]
async fn ingesting_the_same_listing_twice_creates_nothing_new() {
    let mut ctx = MemoryContext::default();
    let page = [
        listed(
            "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T122408",
            "2021-04-13T13:00:00Z",
        ),
        listed(
            "S2B_MSIL1C_20210413T101021_N0300_R022_T32TLS_20210413T122408",
            "2021-04-13T13:00:00Z",
        ),
    ];
    let first = fsc().get_jobs_to_create(&ctx, &page).await.unwrap();
    ctx.jobs = first
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| job_from_new(j, i as i64 + 1))
        .collect();
    let second = fsc().get_jobs_to_create(&ctx, &page).await.unwrap();
    assert!(second.jobs.is_empty());
}

/// A job on tile 32TLR sensed on `day` of April 2021, in `status`, with `id`.
fn tile_job(id: i64, day: u32, status: JobStatus) -> Job {
    let name = format!("S2B_MSIL1C_202104{day:02}T101021_N0300_R022_T32TLR_202104{day:02}T122408");
    let (new, _) = fsc()
        .new_job(&listed(&name, "2021-04-30T00:00:00Z"))
        .unwrap();
    let mut job = job_from_new(&new, id);
    job.status = status;
    job
}

#[tokio::test]
async fn configuration_follows_the_tile_time_series() {
    let t = fsc();
    let first = tile_job(1, 1, JobStatus::Initialized);
    let ctx = MemoryContext {
        jobs: vec![first.clone()],
    };
    let out = t.configure_single_job(&ctx, &first).await.unwrap();
    assert_eq!(out.decision, Configuration::Ready);
    let params: FscRlieParams = serde_json::from_value(out.params.unwrap()).unwrap();
    assert_eq!(params.maja_mode, Some(MajaMode::Init));
    assert_eq!(params.l2a_path_in, None);

    // The next date waits while the previous one runs.
    let mut running = tile_job(1, 1, JobStatus::Processing);
    let second = tile_job(2, 5, JobStatus::Initialized);
    let ctx = MemoryContext {
        jobs: vec![running.clone(), second.clone()],
    };
    let out = t.configure_single_job(&ctx, &second).await.unwrap();
    let Configuration::Wait {
        reason,
        on: Some(1),
    } = out.decision
    else {
        panic!("{out:?}")
    };
    assert!(reason.contains("job 1"), "{reason}");

    // Once it is done, the next date continues its L2A.
    running.status = JobStatus::Done;
    let prev_params: FscRlieParams = serde_json::from_value(
        t.configure_single_job(&MemoryContext::default(), &running)
            .await
            .unwrap()
            .params
            .unwrap(),
    )
    .unwrap();
    running.params = serde_json::to_value(&prev_params).unwrap();
    let ctx = MemoryContext {
        jobs: vec![running.clone(), second.clone()],
    };
    let out = t.configure_single_job(&ctx, &second).await.unwrap();
    assert_eq!(out.decision, Configuration::Ready);
    let params: FscRlieParams = serde_json::from_value(out.params.unwrap()).unwrap();
    assert_eq!(params.maja_mode, Some(MajaMode::Nominal));
    assert_eq!(params.previous_job_id, Some(1));
    assert_eq!(params.l2a_path_in, prev_params.l2a_path_out);

    // A failed previous date is skipped: the series restarts from what exists.
    running.status = JobStatus::InternalError;
    let ctx = MemoryContext {
        jobs: vec![running, second.clone()],
    };
    let out = t.configure_single_job(&ctx, &second).await.unwrap();
    assert_eq!(out.decision, Configuration::Ready);
    assert_eq!(out.params.unwrap()["maja_mode"], "init");
}

#[tokio::test]
async fn configuration_rejects_foreign_params() {
    let mut job = tile_job(1, 1, JobStatus::Initialized);
    job.params = serde_json::json!({"product": "x"});
    let err = fsc()
        .configure_single_job(&MemoryContext::default(), &job)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("params do not match"), "{err}");
}

#[test]
fn worker_task_names_inputs_outputs_and_limits() {
    let job = tile_job(3, 13, JobStatus::Ready);
    let task = fsc().worker_task(&job).unwrap();
    assert_eq!(task.inputs.len(), 1);
    assert!(task.inputs[0].source.ends_with("T32TLR_20210413T122408"));
    assert_eq!(
        task.outputs[0].destination_prefix,
        "CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/"
    );
    assert_eq!(task.outputs[1].kind, "rlie");
    assert_eq!(task.flavor, "hm.medium");
    assert_eq!(task.timeout_secs, 4 * 3600);
    assert!(!task.network);
}

#[test]
fn exit_codes_follow_the_original_without_its_gap() {
    let t = exit_code_table();
    assert_eq!(t.classify(0), ExitClass::Success);
    assert_eq!(t.classify(42), ExitClass::InternalError);
    assert_eq!(t.classify(142), ExitClass::ExternalError);
    for code in 200..=207 {
        assert_eq!(t.classify(code), ExitClass::NoProduct, "{code}");
    }
    assert_eq!(t.classify(208), ExitClass::InternalError);
}

fn processed_job() -> Job {
    let mut job = tile_job(9, 13, JobStatus::Processed);
    job.measured_at = Some("2021-04-13T10:13:47.668204Z".parse().unwrap());
    job.results = Some(JobResults {
        return_code: Some(0),
        outcome: Some(ExitClass::Success),
        products: vec![OutputProduct {
            kind: "fsc".into(),
            path: "CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1".into(),
            size_bytes: Some(2_134_016),
            completed_at: Some("2021-04-13T14:53:50.579313Z".parse().unwrap()),
            infos: serde_json::json!({"wkt": "POLYGON ((20.99 59.45, 21.1 59.45, 21.1 59.5, 20.99 59.45))", "resolution": 20, "cloudCover": "86.0"}),
            published_at: None,
        }],
    });
    job
}

/// The reference message of the original's `test_publication_json.py` (original §3.6).
#[test]
fn publication_json_has_the_original_shape() {
    let job = processed_job();
    let t = fsc();
    assert!(t.generated_a_product(&job));
    let msgs = t
        .get_products_publication_jsons(&job, &PublicationTarget::default())
        .unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].product_id, "FSC_20210413T101347_S2A_T34VEM_V100_1");
    let expected = serde_json::json!({
        "collection_name": "HR-S&I",
        "resto": {
            "type": "Feature",
            "geometry": { "wkt": "POLYGON ((20.99 59.45, 21.1 59.45, 21.1 59.5, 20.99 59.45))" },
            "properties": {
                "productIdentifier": "/eodata/HRSI/CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1",
                "title": "FSC_20210413T101347_S2A_T34VEM_V100_1",
                "resourceSize": 2134016,
                "organisationName": "EEA",
                "startDate": "2021-04-13T10:13:47.668204",
                "completionDate": "2021-04-13T14:53:50.579313",
                "productType": "FSC",
                "resolution": 20,
                "mission": "S2",
                "cloudCover": "86.0",
                "processingBaseline": "V100",
                "host_base": "s3.waw2-1.cloudferro.com",
                "s3_bucket": "HRSI",
                "thumbnail": "Preview/CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1/thumbnail.png"
            }
        }
    });
    assert_eq!(msgs[0].message, expected);
}

#[test]
fn publication_reports_missing_fields_and_records_dates() {
    let t = fsc();
    let mut job = processed_job();
    job.results.as_mut().unwrap().products[0].infos = serde_json::json!({"resolution": 20});
    let err = t
        .get_products_publication_jsons(&job, &PublicationTarget::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "job 9, product \"fsc\": wkt is missing from the worker's results"
    );

    let mut job = processed_job();
    let at = "2021-04-13T15:00:00Z".parse().unwrap();
    t.set_product_publication_date(&mut job, "fsc", at).unwrap();
    assert_eq!(
        job.results.as_ref().unwrap().products[0].published_at,
        Some(at)
    );
    let err = t
        .set_product_publication_date(&mut job, "rlie", at)
        .unwrap_err();
    assert!(matches!(err, PublicationError::UnknownProduct { .. }));

    job.results = None;
    assert!(!t.generated_a_product(&job));
}

/// A job whose params name files outside the work directory or the output store (written to the
/// database by any means) is put in error at configuration and gets no task, with the field named.
#[tokio::test]
async fn unsafe_identifiers_in_a_stored_job_fail_configuration_and_the_task() {
    for (field, value) in [
        ("l1c_id", "/tmp/x"),
        ("l1c_id", "a/b"),
        ("l1c_id", ".."),
        (
            "l1c_id",
            "S2B_MSIL2A_20210413T101021_N0300_R022_T32TLR_20210413T122408",
        ),
        ("l2a_path_in", "../../root"),
        ("l2a_path_out", "/32TLR/L2A/x"),
    ] {
        let mut job = tile_job(1, 13, JobStatus::Initialized);
        job.params[field] = serde_json::json!(value);
        let expected = format!("params.{field}");
        let out = fsc()
            .configure_single_job(&MemoryContext::default(), &job)
            .await
            .unwrap();
        match out.decision {
            Configuration::Error { reason } => {
                assert!(reason.contains(&expected), "{field}={value}: {reason}")
            }
            other => panic!("{field}={value}: configured {other:?}"),
        }
        job.status = JobStatus::Ready;
        let err = fsc().worker_task(&job).unwrap_err();
        assert!(
            err.to_string().contains(&expected),
            "{field}={value}: {err}"
        );
    }
    let mut job = tile_job(1, 13, JobStatus::Ready);
    job.tile_id = Some("../x".into());
    let err = fsc().worker_task(&job).unwrap_err();
    assert!(err.to_string().contains("tile_id"), "{err}");
}

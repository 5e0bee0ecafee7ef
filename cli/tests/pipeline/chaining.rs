//! Job chaining, enforced by the database: a parent is done only once every attached child is; an
//! attached child's terminal failure fails it (naming the child); a retried child replaces the
//! failed one; best-effort children change nothing; children are created with the processed job.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use swath_domain::children::ChildKind;
use swath_domain::publication::PublicationTarget;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::db::chaining::{blocking_child, create_child, ChildError};
use swath_engine::db::history::job_history;
use swath_engine::db::publications::start_publications;
use swath_engine::db::retries::retry_job;
use swath_engine::db::status::{change_status_on, StatusChange};

use support::operator::{awaiting, move_to, reload, test_job};
use JobStatus::*;

/// A `test_job` parent that has published its products and tries to be done: it waits in
/// `published` when a child blocks it.
async fn parent_done(pool: &PgPool, parent: Job) -> Job {
    let parent = move_to(pool, parent, Published).await;
    move_to(pool, parent, Done).await
}

#[sqlx::test(migrations = "../sql")]
async fn attached_child_fails_then_parent_fails_naming_it(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    let parent = parent_done(&pool, parent).await;
    assert_eq!(parent.status, Published, "held while the child is not done");
    assert!(awaiting(&pool, parent.id).await);

    let child = move_to(&pool, child, Processing).await;
    let child = change_status_on(
        &pool,
        &StatusChange::of(&child, InternalError).error("exit code 1", "the code crashed"),
    )
    .await
    .unwrap();
    assert_eq!(child.status, InternalError);

    let parent = reload(&pool, parent.id).await;
    assert_eq!(parent.status, InternalError);
    assert_eq!(parent.status_error_subtype.as_deref(), Some("child failed"));
    let message = parent.status_message.unwrap();
    assert!(
        message.contains(&format!("attached child {} (test_job child)", child.id))
            && message.contains("internal_error")
            && message.contains("the code crashed"),
        "{message}"
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_child_that_failed_earlier_fails_the_parent_when_it_would_be_done(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    move_to(&pool, child.clone(), Cancelled).await;
    let parent = move_to(&pool, parent, Published).await;
    assert_eq!(parent.status, Published, "the parent's own work went on");
    let parent = move_to(&pool, parent, Done).await;
    assert_eq!(parent.status, InternalError);
    let message = parent.status_message.unwrap();
    assert!(
        message.contains(&format!("attached child {}", child.id)) && message.contains("cancelled"),
        "{message}"
    );
    let last = job_history(&pool, parent.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.previous_status, last.status),
        (Some(Published), InternalError)
    );
}

#[sqlx::test(migrations = "../sql")]
async fn attached_child_retried_and_done_then_parent_done(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    let parent = parent_done(&pool, parent).await;
    move_to(&pool, child.clone(), InternalError).await;
    assert_eq!(reload(&pool, parent.id).await.status, InternalError);

    let retried = retry_job(&pool, child.id, 3).await.unwrap();
    let retry = retried.job;
    assert_eq!(
        retry.parent_id,
        Some(parent.id),
        "the retry is attached to the same parent"
    );
    assert_eq!(retry.retry_of, Some(child.id));
    assert_eq!(retried.resumed_parent, Some(parent.id));
    let resumed = reload(&pool, parent.id).await;
    assert_eq!(
        resumed.status, Published,
        "the parent waits again, for the retry"
    );
    assert!(awaiting(&pool, parent.id).await);
    let blocking = blocking_child(&pool, parent.id).await.unwrap().unwrap();
    assert_eq!(blocking.id, retry.id, "the retry replaced the failed child");

    let retry = move_to(&pool, retry, Processed).await;
    assert_eq!(reload(&pool, parent.id).await.status, Published);
    move_to(&pool, retry, Done).await;
    let parent = reload(&pool, parent.id).await;
    assert_eq!(parent.status, Done);
    assert!(!awaiting(&pool, parent.id).await);
    let statuses: Vec<JobStatus> = job_history(&pool, parent.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.status)
        .skip_while(|s| *s != Published)
        .collect();
    assert_eq!(
        statuses,
        vec![Published, InternalError, ErrorChecked, Published, Done]
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_child_retried_before_the_parent_needs_it_is_never_noticed(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    let parent = move_to(&pool, parent, Processing).await;
    move_to(&pool, child.clone(), InternalError).await;
    assert_eq!(
        reload(&pool, parent.id).await.status,
        Processing,
        "a running parent goes on"
    );
    let retry = retry_job(&pool, child.id, 3).await.unwrap();
    assert_eq!(retry.resumed_parent, None);
    move_to(&pool, retry.job, Done).await;
    let parent = parent_done(&pool, parent).await;
    assert_eq!(parent.status, Done);
}

#[sqlx::test(migrations = "../sql")]
async fn best_effort_child_fails_then_parent_done(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let preview = test_job(&pool, "preview", None, Some(parent.id)).await;
    let parent = move_to(&pool, parent, Published).await;
    move_to(&pool, preview, InternalError).await;
    assert_eq!(reload(&pool, parent.id).await.status, Published);
    let parent = move_to(&pool, parent, Done).await;
    assert_eq!(
        parent.status, Done,
        "a best-effort child never holds its parent"
    );
    assert!(blocking_child(&pool, parent.id).await.unwrap().is_none());
}

#[sqlx::test(migrations = "../sql")]
async fn parent_with_three_children_done_only_after_the_last(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let mut children = Vec::new();
    for i in 0..3 {
        children.push(test_job(&pool, &format!("child-{i}"), Some(parent.id), None).await);
    }
    let parent = parent_done(&pool, parent).await;
    assert_eq!(parent.status, Published);
    let last = children.pop().unwrap();
    for child in children {
        move_to(&pool, child, Done).await;
        assert_eq!(
            reload(&pool, parent.id).await.status,
            Published,
            "one child is still running"
        );
    }
    let last = move_to(&pool, last, Processed).await;
    assert_eq!(reload(&pool, parent.id).await.status, Published);
    move_to(&pool, last.clone(), Done).await;
    let parent = reload(&pool, parent.id).await;
    assert_eq!(parent.status, Done);
    assert_eq!(
        parent.status_message.as_deref(),
        Some(format!("every attached child is done (the last one: {})", last.id).as_str())
    );
    let dones = job_history(&pool, parent.id)
        .await
        .unwrap()
        .iter()
        .filter(|h| h.status == Done)
        .count();
    assert_eq!(dones, 1, "held moves leave no history");
}

#[sqlx::test(migrations = "../sql")]
async fn a_parent_without_product_waits_in_processed_out_of_the_publication_loop(pool: PgPool) {
    let registry = swath_engine::config::Settings::default()
        .registry()
        .unwrap();
    let target = PublicationTarget::default();
    let parent = test_job(&pool, "parent", None, None).await;
    let child = test_job(&pool, "child", Some(parent.id), None).await;
    move_to(&pool, parent.clone(), Processed).await;
    let round = start_publications(&pool, &registry, &target, 10)
        .await
        .unwrap();
    assert_eq!(round.done, 1, "the move to done was asked for");
    assert_eq!(reload(&pool, parent.id).await.status, Processed, "and held");
    let again = start_publications(&pool, &registry, &target, 10)
        .await
        .unwrap();
    assert_eq!(
        (again.started, again.done, again.failed),
        (0, 0, 0),
        "a waiting parent is not publication work"
    );
    move_to(&pool, child, Done).await;
    assert_eq!(reload(&pool, parent.id).await.status, Done);
}

#[sqlx::test(migrations = "../sql")]
async fn no_child_is_attached_to_a_finished_parent(pool: PgPool) {
    let done = move_to(&pool, test_job(&pool, "done", None, None).await, Done).await;
    let failed = move_to(
        &pool,
        test_job(&pool, "failed", None, None).await,
        InternalError,
    )
    .await;
    let child = NewJob::new("test_job", "late-child", 3);
    let err = create_child(&pool, done.id, ChildKind::Attached, child.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ChildError::Refused(m) if m.contains(&format!("job {} is done", done.id))),
        "{err}"
    );
    let err = create_child(&pool, failed.id, ChildKind::Attached, child.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ChildError::Refused(_)), "{err}");
    // Raw SQL is refused just the same.
    let raw = sqlx::query(
        "INSERT INTO jobs (job_type, name, status, parent_id) VALUES ('test_job', 'raw', 1, $1)",
    )
    .bind(done.id)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        raw.to_string().contains("no child can be attached"),
        "{raw}"
    );
    // A best-effort child does not change its parent: any parent may have one.
    let spawned = create_child(&pool, done.id, ChildKind::BestEffort, child)
        .await
        .unwrap();
    assert_eq!(
        (spawned.spawned_by, spawned.parent_id),
        (Some(done.id), None)
    );
    let err = create_child(
        &pool,
        999_999,
        ChildKind::Attached,
        NewJob::new("test_job", "x", 3),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ChildError::ParentNotFound(999_999)), "{err}");
}

/// Runs `first` (left open), then `second` in another task, until `second` finishes or waits for a
/// lock; then commits `first` and waits for `second`.
async fn interleave(pool: &PgPool, first: &str, first_id: i64, second: &str, second_id: i64) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(first)
        .bind(first_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let concurrent = {
        let (pool, second) = (pool.clone(), second.to_string());
        tokio::spawn(async move {
            sqlx::query(&second)
                .bind(second_id)
                .execute(&pool)
                .await
                .unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !concurrent.is_finished() {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second statement neither ended nor waited"
        );
        tokio::task::yield_now().await;
    }
    tx.commit().await.unwrap();
    concurrent.await.unwrap();
}

const TO_DONE: &str = "UPDATE jobs SET status = 12 WHERE id = $1";

/// Two children of a waiting parent become done in concurrent transactions: the second one waits
/// for the first one's lock on the parent, then sees it done and completes the parent.
#[sqlx::test(migrations = "../sql")]
async fn children_settling_at_once_complete_the_parent(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let first = move_to(
        &pool,
        test_job(&pool, "first", Some(parent.id), None).await,
        Published,
    )
    .await;
    let second = move_to(
        &pool,
        test_job(&pool, "second", Some(parent.id), None).await,
        Published,
    )
    .await;
    let parent = parent_done(&pool, parent).await;
    assert_eq!(parent.status, Published);
    interleave(&pool, TO_DONE, first.id, TO_DONE, second.id).await;
    assert_eq!(reload(&pool, parent.id).await.status, Done);
}

/// The last child becomes done while its parent's own move to done is not committed yet (and is
/// held, since the child was not done when it looked): the child waits for the parent's row, then
/// sees it waiting and completes it.
#[sqlx::test(migrations = "../sql")]
async fn a_child_done_during_its_parents_move_to_done_completes_it(pool: PgPool) {
    let parent = test_job(&pool, "parent", None, None).await;
    let child = move_to(
        &pool,
        test_job(&pool, "child", Some(parent.id), None).await,
        Published,
    )
    .await;
    let parent = move_to(&pool, parent, Published).await;
    interleave(&pool, TO_DONE, parent.id, TO_DONE, child.id).await;
    assert_eq!(reload(&pool, child.id).await.status, Done);
    assert_eq!(
        reload(&pool, parent.id).await.status,
        Done,
        "never left waiting"
    );
}

/// A child attached while its parent moves to done: either the child comes first and the parent
/// waits for it, or the parent is done first and the child is refused; never a child beside a
/// parent that is done.
#[sqlx::test(migrations = "../sql")]
async fn a_child_attached_during_its_parents_move_to_done_holds_it(pool: PgPool) {
    let parent = move_to(
        &pool,
        test_job(&pool, "parent", None, None).await,
        Published,
    )
    .await;
    let attach =
        "INSERT INTO jobs (job_type, name, status, parent_id) VALUES ('test_job', 'late', 1, $1)";
    interleave(&pool, attach, parent.id, TO_DONE, parent.id).await;
    assert_eq!(reload(&pool, parent.id).await.status, Published);
    assert!(awaiting(&pool, parent.id).await);
}

/// A child as read back: type, parent, spawned by, status, params.
type ChildRow = (String, Option<i64>, Option<i64>, i16, serde_json::Value);

/// A worker's success result for an `fsc_rlie` job creates its quicklook (best effort) and its
/// check (attached) in the same transaction as the move to `processed`.
#[sqlx::test(migrations = "../sql")]
async fn processed_fsc_rlie_jobs_create_their_follow_ups(pool: PgPool) {
    let api = support::api::spawn_api(&pool).await;
    let http = reqwest::Client::new();
    // Products lie under their task's output prefixes, in the output store of the tests' settings.
    let output = swath_engine::config::Settings::default()
        .task_locations()
        .output_url;
    let layers = format!(
        "{}/CLMS/Pan-European/High_Resolution_Layers",
        output.strip_prefix("file:///").unwrap()
    );
    let rlie_path = format!("{layers}/Ice/RLIE/2021/04/13/RLIE_1");
    let mut results = Vec::new();
    for (name, products) in [
        (
            "S2A_MSIL1C_20210413T101021_N0300_R022_T32TLR_20210413T121553",
            true,
        ),
        (
            "S2A_MSIL1C_20210414T101021_N0300_R022_T32TLR_20210414T121553",
            false,
        ),
    ] {
        let mut new = NewJob::new("fsc_rlie", name, 3);
        new.tile_id = Some("32TLR".into());
        new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
        new.input_path = Some(format!("/eodata/Sentinel-2/{name}.SAFE"));
        new.params = serde_json::json!({"l1c_id": name, "mission": "S2A", "baseline": "N0300",
            "relative_orbit": 22, "discriminator": "2021-04-13T12:15:53Z", "cloud_cover": null,
            "nrt": true, "reprocessing_context": null, "maja_mode": "init", "previous_job_id": null,
            "l2a_path_in": null, "l2a_path_out": null});
        let inserted = swath_engine::db::jobs::insert_jobs(&pool, &[new])
            .await
            .unwrap();
        let job = reload(&pool, inserted[0].id).await;
        let job = move_to(&pool, job, Ready).await;
        let token = support::token_for_ready(&pool, &job).await;
        let job = move_to(&pool, job, PostProcessing).await;
        let report = if products {
            serde_json::json!({"outcome": "success", "return_code": 0, "products": [
                {"kind": "fsc", "path": format!("{layers}/Snow/FSC/2021/04/13/FSC_1"), "size_bytes": 10, "completed_at": null, "infos": {}, "published_at": null},
                {"kind": "rlie", "path": rlie_path, "size_bytes": 10, "completed_at": null, "infos": {}, "published_at": null}
            ]})
        } else {
            serde_json::json!({"outcome": "no_product", "return_code": 200, "products": []})
        };
        if products {
            let fsc = format!("{layers}/Snow/FSC/2021/04/13/FSC_1");
            let reserved = http
                .post(format!(
                    "{}/worker/jobs/{}/attempts/1/products",
                    api.base, job.id
                ))
                .bearer_auth(&token)
                .json(&serde_json::json!({"products": [
                    {"kind": "fsc", "path": fsc}, {"kind": "rlie", "path": rlie_path}
                ]}))
                .send()
                .await
                .unwrap();
            assert_eq!(reserved.status(), 200);
        }
        let answer = http
            .post(format!(
                "{}/worker/jobs/{}/attempts/1/result",
                api.base, job.id
            ))
            .bearer_auth(token)
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        results.push(job.id);
    }
    let rows: Vec<ChildRow> = sqlx::query_as(
        "SELECT job_type, parent_id, spawned_by, status, params FROM jobs WHERE parent_id IS NOT NULL OR spawned_by IS NOT NULL ORDER BY job_type",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let children: Vec<_> = rows
        .into_iter()
        .map(|(t, p, s, st, params)| (t, p, s, JobStatus::from_id(st).unwrap(), params))
        .collect();
    let producer = results[0];
    assert_eq!(
        children.len(),
        2,
        "only the job with products has follow-ups: {children:?}"
    );
    assert_eq!(children[0].0, "fsc_rlie_check");
    assert_eq!(
        (children[0].1, children[0].2),
        (Some(producer), None),
        "attached"
    );
    assert_eq!(children[1].0, "fsc_rlie_quicklook");
    assert_eq!(
        (children[1].1, children[1].2),
        (None, Some(producer)),
        "best effort"
    );
    assert_eq!(children[0].3, Initialized);
    assert_eq!(children[0].4["products"][1]["path"], rlie_path.as_str());
    assert_eq!(reload(&pool, producer).await.status, Processed);
}

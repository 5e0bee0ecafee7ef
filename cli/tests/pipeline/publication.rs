//! The publication outbox with the JSON-lines file publisher: messages written with the move to
//! `start_publication`, confirmed before the products count as published, jobs without a product
//! straight to `done`, jobs whose message cannot be built reported, and one body encoding at a time.

use sqlx::PgPool;
use swath_domain::publication::PublicationTarget;
use swath_domain::JobStatus;
use swath_engine::config::Encoding;
use swath_engine::config::Settings;
use swath_engine::db::jobs::get_job;
use swath_engine::db::publications::{start_publications, unconfirmed};
use swath_engine::publish::file::FilePublisher;
use swath_engine::publish::{publish_round, PublishError, Publisher};

use support::processed;

/// Titles of `n` products of one date and tile, versions V100, V101...
fn titles(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("TEST_20210413T101021_S2B_T32TLR_V10{i}_1"))
        .collect()
}

/// A publisher that refuses every message: nothing may be marked published.
struct Refusing;

#[async_trait::async_trait]
impl Publisher for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }
    async fn publish(
        &self,
        messages: &[swath_engine::db::publications::Outgoing],
    ) -> Vec<Result<(), PublishError>> {
        messages
            .iter()
            .map(|_| Err(PublishError("broker said no".into())))
            .collect()
    }
}

#[sqlx::test(migrations = "../sql")]
async fn products_are_published_only_once_confirmed(pool: PgPool) {
    let registry = Settings::default().registry().unwrap();
    let two = processed(&pool, "two-products", &titles(2)).await;
    let none = processed(&pool, "no-product", &titles(0)).await;
    let target = PublicationTarget::default();
    let report = start_publications(&pool, &registry, &target, 10)
        .await
        .unwrap();
    let message = get_job(&pool, two.id).await.unwrap().status_message;
    assert_eq!(
        (report.started, report.done, report.failed),
        (1, 1, 0),
        "{message:?}"
    );
    assert_eq!(
        get_job(&pool, none.id).await.unwrap().status,
        JobStatus::Done
    );
    assert_eq!(
        get_job(&pool, two.id).await.unwrap().status,
        JobStatus::StartPublication
    );
    assert_eq!(unconfirmed(&pool, 10).await.unwrap().len(), 2);

    // Not confirmed: nothing is published, nothing is lost.
    let report = publish_round(&pool, &Refusing, 10).await.unwrap();
    assert_eq!((report.confirmed, report.failed), (0, 2));
    let job = get_job(&pool, two.id).await.unwrap();
    assert_eq!(job.status, JobStatus::StartPublication);
    assert!(job
        .results
        .unwrap()
        .products
        .iter()
        .all(|p| p.published_at.is_none()));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("publications.jsonl");
    let publisher = FilePublisher::new(file.clone(), "resto".into(), Encoding::Json);
    let report = publish_round(&pool, &publisher, 10).await.unwrap();
    assert_eq!((report.confirmed, report.done), (2, 1));
    let job = get_job(&pool, two.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Done);
    // The job's own publication date is the confirm's, as its products'.
    let products_published = job.results.as_ref().unwrap().products[0].published_at;
    assert!(job.output_published_at.is_some());
    assert_eq!(job.output_published_at, products_published);
    assert!(job
        .results
        .unwrap()
        .products
        .iter()
        .all(|p| p.published_at.is_some()));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let ids: Vec<_> = lines
        .iter()
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "TEST_20210413T101021_S2B_T32TLR_V100#1",
            "TEST_20210413T101021_S2B_T32TLR_V101#1"
        ]
    );
    assert!(lines[0]["body"].is_object(), "serialized once");
    assert_eq!(
        lines[0]["body"]["resto"]["properties"]["resourceSize"],
        1024
    );
    assert_eq!(
        publish_round(&pool, &publisher, 10)
            .await
            .unwrap()
            .confirmed,
        0
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_message_that_cannot_be_built_is_reported_not_skipped(pool: PgPool) {
    let registry = Settings::default().registry().unwrap();
    let job = processed(&pool, "broken", &titles(1)).await;
    sqlx::query(
        "UPDATE jobs SET results = jsonb_set(results, '{products,0,infos}', '{}') WHERE id = $1",
    )
    .bind(job.id)
    .execute(&pool)
    .await
    .unwrap();
    let report = start_publications(&pool, &registry, &PublicationTarget::default(), 10)
        .await
        .unwrap();
    assert_eq!(report.failed, 1);
    let job = get_job(&pool, job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::InternalError);
    assert!(job.status_message.unwrap().contains("wkt"));
}

#[test]
fn the_original_double_encoding_is_available_as_a_switch() {
    let message = serde_json::json!({"a": 1});
    assert_eq!(Encoding::Json.body(&message), br#"{"a":1}"#);
    assert_eq!(Encoding::DoubleEncoded.body(&message), br#""{\"a\":1}""#);
}

#[sqlx::test(migrations = "../sql")]
async fn a_refused_product_is_republished_up_to_the_cap_and_the_history_says_so(pool: PgPool) {
    use swath_engine::db::publications::{republish, Republish};
    let registry = Settings::default().registry().unwrap();
    let job = processed(&pool, "refused", &titles(1)).await;
    start_publications(&pool, &registry, &PublicationTarget::default(), 10)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let publisher = FilePublisher::new(dir.path().join("p.jsonl"), "resto".into(), Encoding::Json);
    publish_round(&pool, &publisher, 10).await.unwrap();
    let id = "TEST_20210413T101021_S2B_T32TLR_V100_1";
    for n in 1..=2 {
        assert_eq!(
            republish(&pool, id, "footprint rejected", 2).await.unwrap(),
            Republish::Queued {
                job_id: job.id,
                job_type: "test_job".into(),
                n
            }
        );
        assert_eq!(
            get_job(&pool, job.id).await.unwrap().status,
            JobStatus::StartPublication
        );
        assert_eq!(publish_round(&pool, &publisher, 10).await.unwrap().done, 1);
    }
    assert_eq!(
        republish(&pool, id, "footprint rejected", 2).await.unwrap(),
        Republish::GaveUp {
            job_id: job.id,
            job_type: "test_job".into()
        }
    );
    let job = get_job(&pool, job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::InternalError);
    assert!(job
        .status_message
        .unwrap()
        .contains("after 2 republications"));
    let history: Vec<JobStatus> = swath_engine::db::history::job_history(&pool, job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.status)
        .collect();
    let refusals = history
        .windows(4)
        .filter(|w| {
            w == &[
                JobStatus::ExternalError,
                JobStatus::ErrorChecked,
                JobStatus::StartPublication,
                JobStatus::Published,
            ]
        })
        .count();
    assert_eq!(refusals, 2, "{history:?}");
    let lines = std::fs::read_to_string(dir.path().join("p.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3, "sent once, then twice again");
    assert_eq!(
        republish(&pool, "NO_SUCH_PRODUCT", "x", 2).await.unwrap(),
        Republish::Unknown
    );
}

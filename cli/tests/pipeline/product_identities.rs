//! The database's product identity rules (`product_identities`, `publications`): the SQL reads
//! identities as the domain does, of jobs racing for one identity exactly one wins, and who may take
//! an identity over.

use sqlx::PgPool;
use swath_domain::identity::product_identity;
use swath_domain::protocol::PlannedProduct;
use swath_domain::{Job, JobStatus};
use swath_engine::db::products::{reserve, Collision, Reservation};

use support::operator::{move_to, test_job};

/// A `test_job` called `name` whose attempt 1 is running (`post_processing`).
async fn running(pool: &PgPool, name: &str) -> Job {
    move_to(
        pool,
        test_job(pool, name, None, None).await,
        JobStatus::PostProcessing,
    )
    .await
}

fn planned(name: &str) -> Vec<PlannedProduct> {
    vec![PlannedProduct {
        kind: "test_product".into(),
        path: format!("out/2021/04/13/{name}"),
    }]
}

/// The migration's `product_identity` function and the domain's read every name alike.
#[sqlx::test(migrations = "../sql")]
async fn sql_and_rust_read_identities_alike(pool: PgPool) {
    for name in [
        "FSC_20211002T113319_S2B_T29UNV_V100_1",
        "FSC_20211002T113319_S2B_T29UNV_V100_0",
        "RLIE_20211002T113319_S2B_T29UNV_V200_9",
        "FSC_20210413T101347_S2A_T34VEM_1",
        "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230102T203816",
        "X_V_1",
        "X_V1_12",
        "X_V1_a",
        "V1_1",
        "_V1_1",
        "A_v1_1",
        "A_V1_1\n",
        "",
    ] {
        let sql: String = sqlx::query_scalar("SELECT product_identity($1)")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(sql, product_identity(name), "{name:?}");
    }
}

/// Many jobs reserve one identity at once: exactly one is granted, every other one is refused
/// naming the winner.
#[sqlx::test(migrations = "../sql")]
async fn of_jobs_racing_for_one_identity_exactly_one_wins(pool: PgPool) {
    let mut jobs = Vec::new();
    for i in 0..8 {
        jobs.push(running(&pool, &format!("racer-{i}")).await);
    }
    let attempts = jobs.iter().enumerate().map(|(i, job)| {
        let pool = pool.clone();
        // Other quality flags of one product: one identity.
        let products = planned(&format!("T_V100_{}", i % 2));
        let id = job.id;
        async move { (id, reserve(&pool, id, 1, &products, &[]).await.unwrap()) }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let winners: Vec<i64> = outcomes
        .iter()
        .filter(|(_, r)| matches!(r, Reservation::Granted(_)))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (_, outcome) in &outcomes {
        if let Reservation::Refused(Collision::Held { holder, .. }) = outcome {
            assert_eq!(holder.job_id, winners[0]);
        } else {
            assert!(matches!(outcome, Reservation::Granted(_)), "{outcome:?}");
        }
    }
}

/// Who may take an identity over: the holder itself (another attempt), a job replacing it once it is
/// no longer running, anybody once it failed; nobody else, and a stale attempt nothing.
#[sqlx::test(migrations = "../sql")]
async fn an_identity_is_taken_over_only_by_who_may(pool: PgPool) {
    let first = running(&pool, "first").await;
    let granted = reserve(&pool, first.id, 1, &planned("T_V100_1"), &[])
        .await
        .unwrap();
    assert!(matches!(granted, Reservation::Granted(_)), "{granted:?}");
    // Two products of one identity in one attempt.
    let mut twice = planned("T_V100_1");
    twice.extend(planned("T_V100_0"));
    let refused = reserve(&pool, first.id, 1, &twice, &[]).await.unwrap();
    assert!(
        matches!(refused, Reservation::Refused(Collision::Twice { .. })),
        "{refused:?}"
    );
    // The holder again: granted, and the other flag replaces the first path.
    let again = reserve(&pool, first.id, 1, &planned("T_V100_0"), &[])
        .await
        .unwrap();
    let Reservation::Granted(again) = again else {
        panic!("{again:?}")
    };
    assert_eq!(
        again[0].replaces.as_deref(),
        Some("out/2021/04/13/T_V100_1")
    );

    // A job that replaces the holder waits until the holder is no longer running.
    let rerun = running(&pool, "rerun").await;
    let refused = reserve(&pool, rerun.id, 1, &planned("T_V100_1"), &[first.id])
        .await
        .unwrap();
    let Reservation::Refused(collision) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        collision.to_string().contains("which is still running"),
        "{collision}"
    );
    let first = move_to(&pool, first, JobStatus::Done).await;
    // Another job, not replacing it: refused, naming the holder.
    let other = running(&pool, "other").await;
    let refused = reserve(&pool, other.id, 1, &planned("T_V100_1"), &[])
        .await
        .unwrap();
    let Reservation::Refused(collision) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        collision
            .to_string()
            .contains(&format!("job {} (first, done)", first.id)),
        "{collision}"
    );
    // The re-run, once the holder is done: granted.
    let granted = reserve(&pool, rerun.id, 1, &planned("T_V100_1"), &[first.id])
        .await
        .unwrap();
    assert!(matches!(granted, Reservation::Granted(_)), "{granted:?}");
    // The re-run failed: anybody may take the product over.
    move_to(&pool, rerun, JobStatus::InternalError).await;
    let granted = reserve(&pool, other.id, 1, &planned("T_V100_1"), &[])
        .await
        .unwrap();
    assert!(matches!(granted, Reservation::Granted(_)), "{granted:?}");
    // A stale attempt reserves nothing.
    let stale = reserve(&pool, other.id, 2, &planned("T_V200_1"), &[])
        .await
        .unwrap();
    assert!(matches!(stale, Reservation::Stale { .. }), "{stale:?}");
}

//! States set by raw statements for the unit tests of other modules, bypassing the state machine's
//! compare-and-set (the transition trigger still checks each change).

use sqlx::PgPool;
use swath_domain::JobStatus;
use uuid::Uuid;

/// Sets job `id` to `status` in one plain update.
pub async fn set_status(pool: &PgPool, id: i64, status: JobStatus) {
    sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status.id())
        .execute(pool)
        .await
        .expect("status set");
}

/// Makes job `id` owned by `owner`, with the executor's `reference` and a lease ending in
/// `lease_secs`.
pub async fn set_owner(
    pool: &PgPool,
    id: i64,
    owner: Uuid,
    reference: Option<&str>,
    lease_secs: f64,
) {
    sqlx::query(
        "UPDATE jobs SET service_id = $2, executor_ref = $3,
             lease_expires_at = clock_timestamp() + make_interval(secs => $4) WHERE id = $1",
    )
    .bind(id)
    .bind(owner)
    .bind(reference)
    .bind(lease_secs)
    .execute(pool)
    .await
    .expect("owner set");
}

/// Moves the last heartbeat of instance `service_id` an hour back.
pub async fn age_heartbeat(pool: &PgPool, service_id: Uuid) {
    sqlx::query(
        "UPDATE services SET heartbeat_at = clock_timestamp() - interval '1 hour' WHERE id = $1",
    )
    .bind(service_id)
    .execute(pool)
    .await
    .expect("heartbeat aged");
}

/// Ends the leases of every owned job but `kept`.
pub async fn expire_leases_except(pool: &PgPool, kept: i64) {
    sqlx::query(
        "UPDATE jobs SET lease_expires_at = clock_timestamp() - interval '1 s'
         WHERE id <> $1 AND service_id IS NOT NULL",
    )
    .bind(kept)
    .execute(pool)
    .await
    .expect("leases expired");
}

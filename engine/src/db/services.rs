//! The `services` table (orchestrator instances and their heartbeats) and the `cluster_leader`
//! lease row. Every time is the database's clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use super::{status_in_flight, DbError};

/// One orchestrator instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its unique id (new at every start).
    pub service_id: Uuid,
    /// The machine it runs on.
    pub host: String,
    /// Its configured name.
    pub name: String,
}

impl Instance {
    /// A new instance called `name` on this machine.
    pub fn new(name: &str) -> Instance {
        Instance {
            service_id: Uuid::new_v4(),
            host: hostname(),
            name: name.to_string(),
        }
    }

    /// The tag stamped on the jobs it owns: `{"host", "name"}`.
    pub fn tag(&self) -> serde_json::Value {
        serde_json::json!({ "host": self.host, "name": self.name })
    }
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Recorded.
    Alive,
    /// The instance had been declared dead (it missed heartbeats) and is alive again.
    Revived,
    /// The instance has no row, or stopped: nothing recorded.
    Unknown,
}

/// An instance as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    /// Its id.
    pub id: Uuid,
    /// Its machine.
    pub host: String,
    /// Its name.
    pub name: String,
    /// `alive`, `stopped` or `dead`.
    pub state: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// Registers `instance` as alive.
pub async fn register<'e>(db: impl PgExecutor<'e>, instance: &Instance) -> Result<(), DbError> {
    sqlx::query("INSERT INTO services (id, host, name, pid) VALUES ($1, $2, $3, $4)")
        .bind(instance.service_id)
        .bind(&instance.host)
        .bind(&instance.name)
        .bind(std::process::id() as i32)
        .execute(db)
        .await?;
    Ok(())
}

/// Records a heartbeat of `id`. An instance declared dead meanwhile is alive again (whatever the
/// leader handed back stays handed back).
pub async fn heartbeat<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<Heartbeat, DbError> {
    let previous: Option<String> = sqlx::query_scalar(
        "UPDATE services s SET heartbeat_at = clock_timestamp(), state = 'alive', ended_at = NULL
         FROM (SELECT state FROM services WHERE id = $1 FOR UPDATE) old
         WHERE s.id = $1 AND old.state <> 'stopped'
         RETURNING old.state",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(match previous.as_deref() {
        Some("alive") => Heartbeat::Alive,
        Some(_) => Heartbeat::Revived,
        None => Heartbeat::Unknown,
    })
}

/// Renews, to `lease` from now, the leases of the jobs `id` has dispatched (queued to
/// post-processing) that have less than half of it left. Returns how many were renewed.
pub async fn renew_leases<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    lease: Duration,
) -> Result<u64, DbError> {
    let renewed = sqlx::query(&format!(
        "UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $2)
         WHERE service_id = $1 AND {in_flight}
           AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp() + make_interval(secs => $2 / 2))",
        in_flight = status_in_flight("status")
    ))
    .bind(id)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok(renewed)
}

/// Records that `id` stopped (after a graceful shutdown).
pub async fn mark_stopped<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE services SET state = 'stopped', ended_at = clock_timestamp() WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Declares dead the alive instances whose last heartbeat is older than `silence`, and returns them.
pub async fn declare_dead<'e>(
    db: impl PgExecutor<'e>,
    silence: Duration,
) -> Result<Vec<ServiceRow>, DbError> {
    let rows = sqlx::query(
        "UPDATE services SET state = 'dead', ended_at = clock_timestamp()
         WHERE state = 'alive' AND heartbeat_at < clock_timestamp() - make_interval(secs => $1)
         RETURNING id, host, name, state, started_at, heartbeat_at",
    )
    .bind(silence.as_secs_f64())
    .fetch_all(db)
    .await?;
    rows.iter().map(service_from_row).collect()
}

/// Every instance, newest first.
pub async fn list_services<'e>(db: impl PgExecutor<'e>) -> Result<Vec<ServiceRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, host, name, state, started_at, heartbeat_at FROM services ORDER BY started_at DESC",
    )
    .fetch_all(db)
    .await?;
    rows.iter().map(service_from_row).collect()
}

fn service_from_row(row: &sqlx::postgres::PgRow) -> Result<ServiceRow, DbError> {
    Ok(ServiceRow {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        name: row.try_get("name")?,
        state: row.try_get("state")?,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
    })
}

/// Takes or renews the leader lease for `id` for `ttl`: it is taken when nobody holds it or the
/// holder's lease ran out. Returns whether `id` leads now.
pub async fn try_lead<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    ttl: Duration,
) -> Result<bool, DbError> {
    let leads = sqlx::query(
        "UPDATE cluster_leader
         SET service_id = $1, expires_at = clock_timestamp() + make_interval(secs => $2),
             acquired_at = CASE WHEN service_id IS DISTINCT FROM $1 THEN clock_timestamp() ELSE acquired_at END
         WHERE id = 1 AND (service_id = $1 OR expires_at < clock_timestamp())",
    )
    .bind(id)
    .bind(ttl.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok(leads == 1)
}

/// Gives the leader lease up, if `id` holds it, so that another instance takes it at once.
pub async fn resign<'e>(db: impl PgExecutor<'e>, id: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE cluster_leader SET expires_at = '-infinity' WHERE id = 1 AND service_id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// The instance holding a live leader lease, if any.
pub async fn leader<'e>(db: impl PgExecutor<'e>) -> Result<Option<Uuid>, DbError> {
    let id: Option<Option<Uuid>> = sqlx::query_scalar(
        "SELECT service_id FROM cluster_leader WHERE id = 1 AND expires_at > clock_timestamp()",
    )
    .fetch_optional(db)
    .await?;
    Ok(id.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    #[sqlx::test(migrations = "../sql")]
    async fn one_of_two_contenders_leads_until_its_lease_runs_out_or_it_resigns(pool: PgPool) {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ttl = Duration::from_millis(300);
        let (first, second) = tokio::join!(try_lead(&pool, a, ttl), try_lead(&pool, b, ttl));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert!(first ^ second, "exactly one leads: {first} {second}");
        let (leader_id, other) = if first { (a, b) } else { (b, a) };
        assert_eq!(leader(&pool).await.unwrap(), Some(leader_id));
        // The leader renews; the other cannot take a live lease.
        assert!(try_lead(&pool, leader_id, ttl).await.unwrap());
        assert!(!try_lead(&pool, other, ttl).await.unwrap());
        // The leader goes silent: once its lease ran out, the other takes over.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(try_lead(&pool, other, ttl).await.unwrap());
        assert!(!try_lead(&pool, leader_id, ttl).await.unwrap());
        // A resignation hands over at once.
        resign(&pool, other).await.unwrap();
        assert_eq!(leader(&pool).await.unwrap(), None);
        assert!(try_lead(&pool, leader_id, ttl).await.unwrap());
    }

    #[sqlx::test(migrations = "../sql")]
    async fn silent_instances_are_declared_dead_and_come_back_with_a_heartbeat(pool: PgPool) {
        let a = Instance::new("a");
        let b = Instance::new("b");
        register(&pool, &a).await.unwrap();
        register(&pool, &b).await.unwrap();
        sqlx::query("UPDATE services SET heartbeat_at = clock_timestamp() - interval '1 minute' WHERE id = $1")
            .bind(b.service_id)
            .execute(&pool)
            .await
            .unwrap();
        let dead = declare_dead(&pool, Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            dead.iter().map(|s| s.id).collect::<Vec<_>>(),
            [b.service_id]
        );
        assert_eq!(
            heartbeat(&pool, a.service_id).await.unwrap(),
            Heartbeat::Alive
        );
        assert_eq!(
            heartbeat(&pool, b.service_id).await.unwrap(),
            Heartbeat::Revived
        );
        mark_stopped(&pool, a.service_id).await.unwrap();
        assert_eq!(
            heartbeat(&pool, a.service_id).await.unwrap(),
            Heartbeat::Unknown,
            "a stopped instance stays stopped"
        );
        let states: Vec<(String, String)> = list_services(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.state))
            .collect();
        assert!(states.contains(&("a".into(), "stopped".into())));
        assert!(states.contains(&("b".into(), "alive".into())));
    }
}

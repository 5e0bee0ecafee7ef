//! Several instances on one database, and no job taken twice.
//!
//! - **Instances.** Each `swath serve` registers a `services` row (host, name, a unique id) and
//!   heartbeats ([`heartbeat`]). The jobs it claims carry its id, its tag and a lease: a claim holds
//!   for one lease, and the leases of the jobs it has dispatched are renewed by its heartbeats.
//!   Other instances never claim a ready job whose lease is alive, and only track the dispatched
//!   jobs of others once their lease ran out.
//! - **Leader.** The instance holding the `cluster_leader` lease row ([`leader`]) declares dead the
//!   instances that missed their heartbeats, hands their jobs back ([`handback`]: a claim is cleared;
//!   a dispatch that is still running is adopted, never dispatched again; a dispatch that ended is
//!   settled like the tracking loop would; a local attempt, which died with its instance, counts as
//!   a failed attempt), abandons their background runs, and prunes old history. A lease row rather
//!   than an advisory lock: it survives a restart of the database and the loss of one connection.
//! - **Graceful stop** (`startup::Running::stop`): stop claiming, let the steps in flight end
//!   (up to a timeout), release the claims, resign, and record the instance as stopped.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod handback;
pub mod heartbeat;
pub mod leader;

/// Whether this instance's own heartbeats get through, and since when without a break. A leader
/// judges others only after its own heartbeats have gone through for a whole `dead_after`: after an
/// outage of the database, every instance's last heartbeat is old, and none of them is dead.
#[derive(Debug, Default)]
pub struct Health {
    healthy_since: Mutex<Option<Instant>>,
}

impl Health {
    /// Records a heartbeat that went through.
    pub fn beat_ok(&self) {
        let mut since = self.healthy_since.lock().unwrap_or_else(|e| e.into_inner());
        since.get_or_insert_with(Instant::now);
    }

    /// Records a heartbeat that failed.
    pub fn beat_failed(&self) {
        *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How long heartbeats have been going through without a break.
    pub fn healthy_for(&self) -> Duration {
        self.healthy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterSettings;
    use crate::db::services::Instance;

    #[test]
    fn health_restarts_its_clock_after_a_failure() {
        let health = Health::default();
        assert_eq!(health.healthy_for(), Duration::ZERO);
        health.beat_ok();
        std::thread::sleep(Duration::from_millis(20));
        health.beat_ok();
        assert!(health.healthy_for() >= Duration::from_millis(20));
        health.beat_failed();
        assert_eq!(health.healthy_for(), Duration::ZERO);
    }

    #[test]
    fn an_instance_is_dead_after_its_missed_heartbeats() {
        let settings = ClusterSettings {
            heartbeat_interval: Duration::from_secs(2),
            missed_heartbeats: 3,
            ..ClusterSettings::default()
        };
        assert_eq!(settings.dead_after(), Duration::from_secs(6));
        let tag = Instance::new("swath").tag();
        assert_eq!(tag["name"], "swath");
    }
}

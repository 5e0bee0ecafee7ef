//! Settings of several instances on one database (heartbeats, leases, the leader's duties, graceful
//! shutdown) and of the background jobs (initial sync, healing, dump): typed views and validation.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cron::CronSchedule;
use super::{parse_date, Settings};

/// Name of the default dump directory, in the system's temporary directory.
pub const DEFAULT_DUMP_DIRECTORY: &str = "swath-dumps";

/// How instances heartbeat, lease and hand over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterSettings {
    /// Time between two heartbeats.
    pub heartbeat_interval: Duration,
    /// Heartbeats missed before an instance is declared dead.
    pub missed_heartbeats: u32,
    /// How long a claim or a dispatched job's lease holds without renewal.
    pub lease: Duration,
    /// History of finished jobs older than this is pruned; `None` keeps it.
    pub history_retention: Option<Duration>,
    /// Skipped products not listed again for this many days are deleted (setting
    /// `skipped_products_retention_days`); 0 keeps them.
    pub skipped_products_retention_days: u64,
    /// Longest wait of a graceful stop for the steps in flight.
    pub shutdown_timeout: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            lease: Duration::from_secs(60),
            history_retention: Some(Duration::from_secs(365 * 86_400)),
            skipped_products_retention_days: 400,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ClusterSettings {
    /// Silence after which an instance is declared dead (and the leader lease's length).
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats.max(1)
    }
}

/// How the background jobs are configured (validated settings; what each kind of job reads from
/// them is in the `schedule` module).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSettings {
    /// The initial sync may run (at start-up if none succeeded, and on request).
    pub initial_sync: bool,
    /// Its window's start; `None`: each job type's processing start date, else `default_lookback`
    /// before the run.
    pub initial_sync_from: Option<DateTime<Utc>>,
    /// Its window's end; `None`: the time it runs.
    pub initial_sync_to: Option<DateTime<Utc>>,
    /// How far back a window without a start goes for a job type without a processing start date.
    pub default_lookback: Duration,
    /// Healing runs on its pattern and on request.
    pub healing_enabled: bool,
    /// Healing's pattern.
    pub healing: CronSchedule,
    /// Healing refuses before an initial sync has succeeded.
    pub heal_must_wait_for_initial_sync: bool,
    /// How far back healing re-scans.
    pub healing_window: Duration,
    /// Dumps are written on their pattern and on request.
    pub dump_enabled: bool,
    /// The dump's pattern.
    pub dump: CronSchedule,
    /// Where dumps go (`file:///dir` or `s3://bucket/prefix`).
    pub dump_url: String,
}

impl Settings {
    /// How this instance takes part in the cluster.
    pub fn cluster_settings(&self) -> ClusterSettings {
        ClusterSettings {
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs),
            missed_heartbeats: self.heartbeat_missed_limit,
            lease: Duration::from_secs(self.lease_secs),
            history_retention: (self.history_retention_days > 0)
                .then(|| Duration::from_secs(self.history_retention_days * 86_400)),
            skipped_products_retention_days: self.skipped_products_retention_days,
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
        }
    }

    /// Where dumps are written. By default a private local directory, `swath-dumps` in the system's
    /// temporary directory (created readable by this user only): a dump holds every job, params and
    /// errors included, and must not land in the output store, whose products are published.
    pub fn dump_url(&self) -> String {
        if self.dump_url.is_empty() {
            format!(
                "file://{}",
                std::env::temp_dir().join(DEFAULT_DUMP_DIRECTORY).display()
            )
        } else {
            self.dump_url.trim_end_matches('/').to_string()
        }
    }

    /// The background jobs' settings, or the problems of the settings they come from (each naming
    /// its variable).
    pub fn schedule_settings(&self) -> Result<ScheduleSettings, Vec<String>> {
        let mut problems = Vec::new();
        let mut cron = |name: &str, pattern: &str| match CronSchedule::parse(pattern) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                None
            }
        };
        let healing = cron(
            "SWATH_CRON_PATTERN_HEALING_JOB",
            &self.cron_pattern_healing_job,
        );
        let dump = cron("SWATH_CRON_PATTERN_DUMP_JOB", &self.cron_pattern_dump_job);
        let mut date = |name: &str, text: &str| {
            if text.trim().is_empty() {
                return None;
            }
            match parse_date(text.trim()) {
                Ok(t) => Some(t),
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    None
                }
            }
        };
        let from = date("SWATH_INITIAL_SYNC_FROM", &self.initial_sync_from);
        let to = date("SWATH_INITIAL_SYNC_TO", &self.initial_sync_to);
        if let (Some(from), Some(to)) = (from, to) {
            if from >= to {
                problems.push(format!(
                    "SWATH_INITIAL_SYNC_FROM and SWATH_INITIAL_SYNC_TO: the window {from} .. {to} is empty"
                ));
            }
        }
        if self.healing_window_days == 0 {
            problems.push("SWATH_HEALING_WINDOW_DAYS: must be at least 1".into());
        }
        let dump_url = self.dump_url();
        if !(dump_url.starts_with("s3://") || dump_url.starts_with("file:///")) {
            problems.push(format!(
                "SWATH_DUMP_URL: {dump_url:?} is neither s3://bucket[/prefix] nor file:///absolute/path"
            ));
        }
        match (healing, dump) {
            (Some(healing), Some(dump)) if problems.is_empty() => Ok(ScheduleSettings {
                initial_sync: self.start_initial_sync,
                initial_sync_from: from,
                initial_sync_to: to,
                default_lookback: Duration::from_secs(self.ingest_initial_lookback_days * 86_400),
                healing_enabled: self.enable_healing_job_operation,
                healing,
                heal_must_wait_for_initial_sync: self.heal_must_wait_for_initial_sync,
                healing_window: Duration::from_secs(self.healing_window_days * 86_400),
                dump_enabled: self.enable_dump_file_creation,
                dump,
                dump_url,
            }),
            _ => Err(problems),
        }
    }

    pub(super) fn validate_cluster(&self, problems: &mut Vec<String>) {
        if self.service_name.trim().is_empty() {
            problems.push("SWATH_SERVICE_NAME: must not be empty".into());
        }
        if self.heartbeat_interval_secs == 0 {
            problems.push("SWATH_HEARTBEAT_INTERVAL_SECS: must be at least 1".into());
        }
        if self.heartbeat_missed_limit == 0 {
            problems.push("SWATH_HEARTBEAT_MISSED_LIMIT: must be at least 1".into());
        }
        // A lease is renewed once less than half of it is left, at a heartbeat.
        if self.lease_secs < 2 * self.heartbeat_interval_secs.max(1) {
            problems.push(format!(
                "SWATH_LEASE_SECS: {} s is too short: leases are renewed at heartbeats, so it must be at least twice SWATH_HEARTBEAT_INTERVAL_SECS ({} s)",
                self.lease_secs, self.heartbeat_interval_secs
            ));
        }
        if let Err(more) = self.schedule_settings() {
            problems.extend(more);
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use figment::providers::Env;
    use figment::Jail;

    use super::*;
    use crate::config::ENV_PREFIX;

    #[test]
    fn the_seeds_variables_are_read_with_the_prefix() {
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_START_INITIAL_SYNC", "true");
            jail.set_env("SWATH_HEAL_MUST_WAIT_FOR_INITIAL_SYNC", "false");
            jail.set_env("SWATH_CRON_PATTERN_HEALING_JOB", "0 0 2 * * *");
            jail.set_env("SWATH_CRON_PATTERN_DUMP_JOB", "0 0 0 * * 6");
            jail.set_env("SWATH_ENABLE_DUMP_FILE_CREATION", "false");
            jail.set_env("SWATH_ENABLE_HEALING_JOB_OPERATION", "true");
            jail.set_env("SWATH_INITIAL_SYNC_FROM", "2024-01-01");
            let s = Settings::load_from(None, Env::prefixed(ENV_PREFIX)).unwrap();
            let schedules = s.schedule_settings().unwrap();
            assert!(schedules.initial_sync);
            assert!(!schedules.heal_must_wait_for_initial_sync);
            assert_eq!(schedules.healing.pattern(), "0 0 2 * * *");
            assert!(schedules.healing_enabled && !schedules.dump_enabled);
            assert_eq!(
                schedules.initial_sync_from,
                Some("2024-01-01T00:00:00Z".parse().unwrap())
            );
            assert!(schedules.dump_url.ends_with("/swath-dumps"));
            Ok(())
        });
    }

    #[test]
    fn dumps_default_to_a_private_directory_not_the_output_store() {
        let s = Settings {
            output_url: "s3://public-products/hrsi".into(),
            ..Settings::default()
        };
        let dump_url = s.schedule_settings().unwrap().dump_url;
        assert!(
            !dump_url.starts_with("s3://public-products"),
            "the dump holds every job: not for the public bucket ({dump_url})"
        );
        assert_eq!(
            dump_url,
            format!(
                "file://{}",
                std::env::temp_dir().join("swath-dumps").display()
            )
        );
        let explicit = Settings {
            dump_url: "s3://private/dumps/".into(),
            ..s
        };
        assert_eq!(explicit.dump_url(), "s3://private/dumps");
    }

    #[test]
    fn defaults_are_the_seeds() {
        let s = Settings::default().schedule_settings().unwrap();
        assert!(!s.initial_sync && s.heal_must_wait_for_initial_sync);
        assert!(s.healing_enabled && s.dump_enabled);
        assert_eq!(s.healing.pattern(), "0 0 0 * * *");
        assert_eq!(s.dump.pattern(), "0 0 0 * * *");
    }

    #[test]
    fn bad_patterns_and_windows_name_their_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_CRON_PATTERN_HEALING_JOB", "0 0 * * *");
            jail.set_env("SWATH_CRON_PATTERN_DUMP_JOB", "every day");
            jail.set_env("SWATH_INITIAL_SYNC_FROM", "2024-02-01");
            jail.set_env("SWATH_INITIAL_SYNC_TO", "2024-01-01");
            jail.set_env("SWATH_LEASE_SECS", "3");
            let err = Settings::load_from(None, Env::prefixed(ENV_PREFIX))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("SWATH_CRON_PATTERN_HEALING_JOB: \"0 0 * * *\" is not a cron pattern with seconds"),
                "{err}"
            );
            assert!(
                err.contains("SWATH_CRON_PATTERN_DUMP_JOB: \"every day\""),
                "{err}"
            );
            assert!(err.contains("window"), "{err}");
            assert!(err.contains("SWATH_LEASE_SECS"), "{err}");
            Ok(())
        });
    }
}

//! Background jobs: the initial sync (a backfill of a configured window, once, at start-up or on
//! request), healing (on a cron pattern: re-scan a trailing window of the catalogue and create what
//! is missing) and dump (on a cron pattern: a snapshot of the job inventory, gzipped JSON lines, in
//! storage).
//!
//! Every instance runs a [`runner::scheduler_loop`]. A cron tick fires when an instance moves the
//! schedule's `next_run_time` from the tick it read to the next one, a compare-and-set that exactly
//! one instance wins; the next tick is computed from the present, so that a tick missed while every
//! instance was down fires once on recovery, not once per missed period. Requests (the API, the
//! start-up of the initial sync) fire the same way on `requested_at`. Each fired tick or request is
//! one `schedule_runs` row, with its outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub mod cron;
pub mod dump;
pub mod runner;
pub mod scan;

use self::cron::CronSchedule;
use crate::db::schedules::ScheduleKind;

/// How the background jobs are configured (validated settings).
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

impl ScheduleSettings {
    /// Whether `kind` is enabled.
    pub fn enabled(&self, kind: ScheduleKind) -> bool {
        match kind {
            ScheduleKind::InitialSync => self.initial_sync,
            ScheduleKind::Healing => self.healing_enabled,
            ScheduleKind::Dump => self.dump_enabled,
        }
    }

    /// The cron pattern of `kind`, when it has one (the initial sync has none).
    pub fn cron(&self, kind: ScheduleKind) -> Option<&CronSchedule> {
        match kind {
            ScheduleKind::InitialSync => None,
            ScheduleKind::Healing => Some(&self.healing),
            ScheduleKind::Dump => Some(&self.dump),
        }
    }
}

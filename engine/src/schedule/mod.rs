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

pub mod dump;
pub mod runner;
pub mod scan;

use crate::config::cron::CronSchedule;
use crate::config::ScheduleSettings;
use crate::db::schedules::ScheduleKind;

/// What each background job takes from its settings (the settings themselves are leaf data in
/// `config`, which knows nothing of the kinds).
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

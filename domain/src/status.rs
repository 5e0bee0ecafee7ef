//! The 16 job statuses and the state machine that connects them.
//!
//! The ids are those of the original system (`job_status` table), so that history exported from it keeps
//! its meaning. The same transition table is stored in SQL (`job_status_transitions`, enforced by a
//! trigger); a test compares both so that they can never disagree. `docs/state_machine.md` lists every
//! deliberate change from the original table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's status. The discriminant is the status id stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(i16)]
pub enum JobStatus {
    /// Job row created for a new input product.
    Initialized = 1,
    /// Configured, but waiting for a dependency.
    Configured = 2,
    /// Eligible for dispatch.
    Ready = 3,
    /// Dispatched to the executor; waiting for a worker to start.
    Queued = 4,
    /// A worker started the attempt.
    Started = 5,
    /// The worker is staging inputs.
    PreProcessing = 6,
    /// The scientific code is running.
    Processing = 7,
    /// The worker is classifying the result and uploading outputs.
    PostProcessing = 8,
    /// The attempt succeeded (with or without a product).
    Processed = 9,
    /// Publication messages are being sent.
    StartPublication = 10,
    /// Every product of the job was confirmed by the broker.
    Published = 11,
    /// Terminal success: nothing left to do.
    Done = 12,
    /// A bug or an unrecoverable error; not retried automatically.
    InternalError = 13,
    /// An external dependency failed; retried automatically while attempts remain.
    ExternalError = 14,
    /// An error acknowledged by an operator; any transition is allowed from here.
    ErrorChecked = 15,
    /// Will not be processed.
    Cancelled = 16,
}

/// Every status, in id order.
pub const ALL_STATUSES: [JobStatus; 16] = [
    JobStatus::Initialized,
    JobStatus::Configured,
    JobStatus::Ready,
    JobStatus::Queued,
    JobStatus::Started,
    JobStatus::PreProcessing,
    JobStatus::Processing,
    JobStatus::PostProcessing,
    JobStatus::Processed,
    JobStatus::StartPublication,
    JobStatus::Published,
    JobStatus::Done,
    JobStatus::InternalError,
    JobStatus::ExternalError,
    JobStatus::ErrorChecked,
    JobStatus::Cancelled,
];

/// An unknown status id or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status {0:?}: expected one of {names} or an id from 1 to 16", names = status_names())]
pub struct UnknownStatus(pub String);

fn status_names() -> String {
    ALL_STATUSES
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl JobStatus {
    /// The database id of this status.
    pub const fn id(self) -> i16 {
        self as i16
    }

    /// The status with this database id.
    pub fn from_id(id: i16) -> Result<Self, UnknownStatus> {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|s| s.id() == id)
            .ok_or_else(|| UnknownStatus(id.to_string()))
    }

    /// The snake_case name, as in the `job_status` table.
    pub const fn name(self) -> &'static str {
        match self {
            JobStatus::Initialized => "initialized",
            JobStatus::Configured => "configured",
            JobStatus::Ready => "ready",
            JobStatus::Queued => "queued",
            JobStatus::Started => "started",
            JobStatus::PreProcessing => "pre_processing",
            JobStatus::Processing => "processing",
            JobStatus::PostProcessing => "post_processing",
            JobStatus::Processed => "processed",
            JobStatus::StartPublication => "start_publication",
            JobStatus::Published => "published",
            JobStatus::Done => "done",
            JobStatus::InternalError => "internal_error",
            JobStatus::ExternalError => "external_error",
            JobStatus::ErrorChecked => "error_checked",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Statuses in which a job will not move again without an operator or a retry.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::InternalError | JobStatus::Cancelled
        )
    }

    /// Statuses of a dispatched attempt, `queued` to `post_processing`: a worker may be writing
    /// the job's products.
    pub const fn is_in_flight(self) -> bool {
        matches!(self, JobStatus::Queued) || self.is_running()
    }

    /// Statuses during which a worker owns the attempt.
    pub const fn is_running(self) -> bool {
        matches!(
            self,
            JobStatus::Started
                | JobStatus::PreProcessing
                | JobStatus::Processing
                | JobStatus::PostProcessing
        )
    }

    /// Whether `from -> to` is allowed. `from = None` is the first status of a new job.
    pub fn can_transition(from: Option<JobStatus>, to: JobStatus) -> bool {
        use JobStatus::*;
        let Some(from) = from else {
            return matches!(to, Initialized | InternalError | Cancelled);
        };
        match from {
            Initialized => matches!(to, Configured | InternalError | ExternalError | Cancelled),
            Configured => matches!(to, Ready | InternalError | Cancelled),
            Ready => matches!(to, Queued | InternalError | ExternalError | Cancelled),
            Queued => matches!(to, Started | InternalError | ExternalError | Cancelled),
            Started | PreProcessing | Processing | PostProcessing => {
                to == from.next_in_flow() || matches!(to, InternalError | ExternalError | Cancelled)
            }
            Processed => matches!(
                to,
                StartPublication | Done | InternalError | ExternalError | Cancelled
            ),
            StartPublication => {
                matches!(to, Published | InternalError | ExternalError | Cancelled)
            }
            // A parent waiting in `published` for its attached children fails when one of them does.
            Published => matches!(to, Done | InternalError),
            Done => matches!(to, InternalError | ExternalError),
            InternalError => matches!(to, InternalError | ExternalError | ErrorChecked),
            ExternalError => matches!(to, Ready | InternalError | ExternalError | ErrorChecked),
            ErrorChecked => true,
            Cancelled => to == InternalError,
        }
    }

    /// The next status of the nominal flow (itself for `done` and the error statuses).
    const fn next_in_flow(self) -> JobStatus {
        use JobStatus::*;
        match self {
            Initialized => Configured,
            Configured => Ready,
            Ready => Queued,
            Queued => Started,
            Started => PreProcessing,
            PreProcessing => Processing,
            Processing => PostProcessing,
            PostProcessing => Processed,
            Processed => StartPublication,
            StartPublication => Published,
            Published => Done,
            other => other,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    /// Accepts a name (`ready`, `pre-processing`, any case) or an id (`3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        if let Ok(id) = wanted.parse::<i16>() {
            return Self::from_id(id).map_err(|_| UnknownStatus(s.to_string()));
        }
        ALL_STATUSES
            .iter()
            .copied()
            .find(|st| st.name() == wanted)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Every allowed transition, `None` standing for "no status yet". Used to seed and check the SQL table.
pub fn allowed_transitions() -> Vec<(Option<JobStatus>, JobStatus)> {
    std::iter::once(None)
        .chain(ALL_STATUSES.iter().copied().map(Some))
        .flat_map(|from| {
            ALL_STATUSES
                .iter()
                .copied()
                .filter(move |&to| JobStatus::can_transition(from, to))
                .map(move |to| (from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    #[test]
    fn ids_are_the_originals() {
        let expected = [
            (1, "initialized"),
            (2, "configured"),
            (3, "ready"),
            (4, "queued"),
            (5, "started"),
            (6, "pre_processing"),
            (7, "processing"),
            (8, "post_processing"),
            (9, "processed"),
            (10, "start_publication"),
            (11, "published"),
            (12, "done"),
            (13, "internal_error"),
            (14, "external_error"),
            (15, "error_checked"),
            (16, "cancelled"),
        ];
        for (id, name) in expected {
            let status = JobStatus::from_id(id).unwrap();
            assert_eq!(status.name(), name);
            assert_eq!(status.id(), id);
            assert_eq!(name.parse::<JobStatus>().unwrap(), status);
            assert_eq!(id.to_string().parse::<JobStatus>().unwrap(), status);
        }
        assert!(JobStatus::from_id(0).is_err());
        assert!(JobStatus::from_id(17).is_err());
    }

    #[test]
    fn parsing_is_lenient_on_case_and_dashes_and_strict_otherwise() {
        assert_eq!(
            "Pre-Processing".parse::<JobStatus>().unwrap(),
            PreProcessing
        );
        let err = "finished".parse::<JobStatus>().unwrap_err();
        assert!(err.to_string().contains("\"finished\""));
        assert!(err.to_string().contains("start_publication"));
    }

    #[test]
    fn serde_uses_the_names() {
        assert_eq!(
            serde_json::to_string(&StartPublication).unwrap(),
            "\"start_publication\""
        );
        let back: JobStatus = serde_json::from_str("\"error_checked\"").unwrap();
        assert_eq!(back, ErrorChecked);
    }

    /// The original table (original-system.md §2.2) with this project's documented changes applied.
    #[test]
    fn transition_table_is_the_original_with_documented_changes() {
        let original: Vec<(Option<JobStatus>, Vec<JobStatus>)> = vec![
            (None, vec![Initialized, Started, InternalError, Cancelled]),
            (
                Some(Initialized),
                vec![Configured, InternalError, ExternalError, Cancelled],
            ),
            (Some(Configured), vec![Ready, InternalError, Cancelled]),
            (
                Some(Ready),
                vec![Queued, InternalError, ExternalError, Cancelled],
            ),
            (Some(Queued), vec![Started, InternalError]),
            (
                Some(Started),
                vec![PreProcessing, InternalError, ExternalError, Cancelled],
            ),
            (
                Some(PreProcessing),
                vec![Processing, InternalError, ExternalError, Cancelled],
            ),
            (
                Some(Processing),
                vec![PostProcessing, InternalError, ExternalError, Cancelled],
            ),
            (
                Some(PostProcessing),
                vec![Processed, InternalError, ExternalError, Cancelled],
            ),
            (
                Some(Processed),
                vec![
                    StartPublication,
                    Done,
                    InternalError,
                    ExternalError,
                    Cancelled,
                ],
            ),
            (
                Some(StartPublication),
                vec![Published, InternalError, ExternalError, Cancelled],
            ),
            (Some(Published), vec![Done]),
            (Some(Done), vec![InternalError, ExternalError]),
            (
                Some(InternalError),
                vec![InternalError, ExternalError, ErrorChecked],
            ),
            (
                Some(ExternalError),
                vec![Started, InternalError, ExternalError, ErrorChecked],
            ),
            (Some(ErrorChecked), ALL_STATUSES.to_vec()),
            (Some(Cancelled), vec![InternalError]),
        ];
        // (from, to, allowed now): each one is explained in docs/state_machine.md.
        let changes = [
            (None, Started, false),
            (Some(Queued), ExternalError, true),
            (Some(Queued), Cancelled, true),
            (Some(ExternalError), Started, false),
            (Some(ExternalError), Ready, true),
            (Some(Published), InternalError, true),
        ];
        for (from, allowed) in original {
            for to in ALL_STATUSES {
                let mut expected = allowed.contains(&to);
                if let Some(&(_, _, now)) = changes.iter().find(|(f, t, _)| *f == from && *t == to)
                {
                    assert_ne!(expected, now, "change {from:?} -> {to:?} is not a change");
                    expected = now;
                }
                assert_eq!(
                    JobStatus::can_transition(from, to),
                    expected,
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn nominal_flow_is_allowed_end_to_end() {
        let flow = [
            Initialized,
            Configured,
            Ready,
            Queued,
            Started,
            PreProcessing,
            Processing,
            PostProcessing,
            Processed,
            StartPublication,
            Published,
            Done,
        ];
        assert!(JobStatus::can_transition(None, flow[0]));
        for pair in flow.windows(2) {
            assert!(
                JobStatus::can_transition(Some(pair[0]), pair[1]),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn allowed_transitions_lists_exactly_can_transition() {
        let list = allowed_transitions();
        let count = std::iter::once(None)
            .chain(ALL_STATUSES.iter().copied().map(Some))
            .map(|f| {
                ALL_STATUSES
                    .iter()
                    .filter(|&&t| JobStatus::can_transition(f, t))
                    .count()
            })
            .sum::<usize>();
        assert_eq!(list.len(), count);
        assert!(list.contains(&(None, Initialized)));
        assert!(!list.contains(&(Some(Published), Cancelled)));
    }
}

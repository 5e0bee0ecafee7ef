//! How an attempt ends, decided in one place and without I/O: each function takes the job as read
//! (its head, or the whole job), what happened (a worker's report, an executor's outcome, the time
//! spent in a status), the job type's rules and the retry settings, and returns the status changes
//! to apply together in one transaction, or why the report is refused. The callers (the worker
//! protocol's handlers in `api::worker`, the tracking round in `pipeline::track`, the dispatcher
//! and the hand-back of a departing instance) read, call, apply and answer.
//!
//! - [`report`]: a worker's status and result reports.
//! - [`executor`]: what the executor says of an attempt whose worker could not report, and
//!   timeouts.
//! - [`failure`]: the retry policy every failure goes through.
//! - [`children`]: the children a processed job creates with its move to `processed`.
//!
//! Every failure is one [`swath_domain::attempt::AttemptFailure`], internal (final) or external
//! (retried after a backoff while attempts remain).

pub mod children;
pub mod executor;
pub mod failure;
pub mod report;

pub use executor::failure_of;
pub use failure::{plan_failure, AttemptBackoff, FailureOutcome, StatusTimeouts};
pub use report::{Plan, Refusal, ResultPlan, ResultRules};

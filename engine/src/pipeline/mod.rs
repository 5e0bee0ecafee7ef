//! The flow of jobs: ingest (catalogue products -> jobs), configure, dispatch and track (the
//! loops of `execution`), recording failures (`retry`), and cancellation. How an attempt ends is
//! decided in [`crate::attempt`]. Status changes are applied through `transitions`, which counts
//! them once committed.

pub mod campaign;
pub mod cancel;
pub mod configure;
pub mod dispatch;
pub mod execution;
pub mod ingest;
pub mod poller;
pub mod retry;
pub mod track;
pub mod transitions;
pub mod withdrawals;

//! The flow of jobs: ingest (catalogue products -> jobs), configure, dispatch and track (the
//! loops of `execution`), the children processed jobs create (`spawn`), and cancellation. Status
//! changes are applied through `transitions`, which counts them once committed.

pub mod cancel;
pub mod configure;
pub mod dispatch;
pub mod execution;
pub mod ingest;
pub mod poller;
pub mod retry;
pub mod spawn;
pub mod track;
pub mod transitions;

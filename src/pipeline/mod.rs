//! The flow of jobs: ingest (catalogue products -> jobs), configure, dispatch and track (the
//! loops of `execution`). Publication joins here later.

pub mod configure;
pub mod dispatch;
pub mod execution;
pub mod ingest;
pub mod poller;
pub mod retry;
pub mod track;

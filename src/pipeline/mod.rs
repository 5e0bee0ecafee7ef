//! The flow of jobs: ingest (catalogue products -> jobs). Later steps (configure, dispatch, track,
//! publish) join here.

pub mod configure;
pub mod dispatch;
pub mod ingest;
pub mod poller;
pub mod retry;
pub mod track;

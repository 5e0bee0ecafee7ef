//! `swath bench`: performance measured as ratios against a baseline in the same run.
//!
//! - [`archive`]: the operator's reads (dashboard, `/metrics`, a list, a job) on a large archive
//!   against the same reads on a small one;
//! - [`ingest`]: catalogue ingestion against a raw `COPY` of the same rows;
//! - [`pipeline`]: the control plane (claim, dispatch, worker reports) against `pgbench -N`.

pub mod archive;
pub mod ingest;
pub mod pipeline;

pub use ingest::{bench_ingest, generate_products};

//! swath's domain model, shared by the orchestrator and the worker.
//!
//! This crate knows no database driver, no HTTP client and no Nomad: job types reach the outside world
//! only through the [`context::JobContext`] trait that the orchestrator implements.

pub mod aoi;
pub mod attempt;
pub mod children;
pub mod context;
pub mod dates;
pub mod exit_codes;
pub mod flavor;
pub mod identity;
pub mod input_roots;
pub mod job;
pub mod job_type;
pub mod listing;
pub mod product;
pub mod protocol;
pub mod publication;
pub mod publication_schema;
pub mod redact;
pub mod registry;
pub mod status;
pub mod template;
pub mod types;

#[cfg(test)]
pub(crate) mod testing;

pub use job::{Job, JobPriority, NewJob};
pub use job_type::JobType;
pub use status::JobStatus;
pub use template::{JobTemplate, JobTypeSpec};

//! The swath worker: configuration, command line, outcome policy and work directory of one attempt.
//!
//! The worker never holds database credentials: it knows its job id, attempt and a per-attempt token,
//! and talks to the orchestrator's worker endpoint only.

pub mod attempt;
pub mod bench;
pub mod cli;
pub mod config;
pub mod orchestrator;
pub mod outcome;
pub mod products;
pub mod runtime;
pub mod workdir;

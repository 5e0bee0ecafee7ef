//! swath: an orchestrator that turns Sentinel-1/Sentinel-2 product listings into processed,
//! published products.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line and hands over to [`cli`].

pub mod api;
pub mod attempt;
pub mod backoff;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod db;
pub mod executor;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub mod schedule;
pub mod service;
pub mod startup;
pub mod telemetry;

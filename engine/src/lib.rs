//! swath's orchestrator: turns Sentinel-1/Sentinel-2 product listings into processed, published
//! products. The `swath` command (crate `swath`, `cli/`) runs it; the domain (statuses, job model,
//! job types, product names) is the `swath-domain` crate.
//!
//! # Module map
//!
//! Read in this order: a module imports only modules listed before it.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | settings as leaf data: typed sections, parsed and validated, importing nothing of the engine |
//! | [`service`] | the one shape of a background loop: a name and `run(shutdown)` |
//! | [`backoff`] | exponential backoff with jitter |
//! | [`db`] | all SQL (with `sql/`): jobs, status changes applied in transactions that report what they changed on commit, claims, leases, tokens, schedules |
//! | [`campaigns`] | what operators see of reprocessing campaigns: requests checked, progress with throughput and ETA |
//! | [`telemetry`] | logging |
//! | [`executor`] | where attempts run: the local executor and the Nomad executor |
//! | [`catalogue`] | catalogue adapters (OData, STAC, a local directory) and input roots |
//! | [`metrics`] | what the instance counts, and the state read at each scrape |
//! | [`attempt`] | pure planning of how an attempt ends (worker reports and executor outcomes alike): retry policy, timeouts, children, product checks |
//! | [`pipeline`] | ingestion, reprocessing campaigns' listings, withdrawn inputs, configuration, dispatch, tracking, cancellation, status changes counted after commit |
//! | [`reports`] | the completeness report: per tile and sensing day, the inputs known, what became of them, the gaps and why; the catalogue check |
//! | [`publish`] | the publication outbox, RabbitMQ and file publishers, failure acknowledgements |
//! | [`schedule`] | background jobs: initial sync, healing, dump |
//! | [`cluster`] | several instances: heartbeats, the leader, handing jobs back |
//! | [`api`] | the HTTP API: operator API, worker endpoint (thin handlers over [`attempt`]), dashboard, metrics |
//! | [`startup`] | the only wiring: settings to components, and every service started from one table and stopped in two phases |
//!
//! A job's path: a catalogue page is planned and committed by [`pipeline::ingest`]; configuration,
//! dispatch and tracking run as [`service::Service`]s started by [`startup::start`]; the worker
//! reports through [`api`], whose handlers ask [`attempt`] what the report means and apply the
//! planned changes through [`db`]; processed jobs are announced by [`publish`].

pub mod api;
pub mod attempt;
pub mod backoff;
pub mod campaigns;
pub mod catalogue;
pub mod cluster;
pub mod config;
pub mod db;
pub mod executor;
pub mod metrics;
pub mod pipeline;
pub mod publish;
pub mod reports;
pub mod schedule;
pub mod service;
pub mod startup;
pub mod telemetry;

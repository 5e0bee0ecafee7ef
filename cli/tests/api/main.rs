//! The HTTP API: the jobs and retries API (with bulk operations by filter), its OpenAPI description (checked by a fuzzer and a validator), the worker endpoint, metrics and the dashboard in a real browser.
//!
//! One test program per area: the modules below share `swath-test-support` (the `support` crate).

mod api_bulk;
mod api_campaigns;
mod api_completeness;
mod api_fuzz;
mod api_jobs;
mod api_routes;
mod dashboard_browser;
mod metrics;
mod openapi_validator;
mod worker_api;

//! The pipeline against a real PostgreSQL: ingestion from catalogues, configuration, dispatch and tracking, retries, the state machine and its partitioned history, chaining and publication.
//!
//! One test program per area: the modules below share `swath-test-support` (the `support` crate).

mod campaigns;
mod catalogue_ingest;
mod chaining;
mod completeness;
mod configure;
mod dispatch;
mod executor_local;
mod history_partitions;
mod ingest;
mod input_sources;
mod product_identities;
mod publication;
mod publication_rabbitmq;
mod retry;
mod state_machine;
mod status_batch;
mod summaries;
mod withdrawals;

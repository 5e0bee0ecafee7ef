//! Whole flows with the real worker binary: staging, running the code, uploading to an in-process S3 server, reporting, chaining.
//!
//! One test program per area: the modules below share `swath-test-support` (the `support` crate).

mod chaining_flow;
mod product_identity;
mod worker_end_to_end;
mod worker_outputs;

//! Jobs that a job creates when it is processed: attached children, which its completion waits for,
//! and best-effort children, which only keep a reference to it.
//!
//! A job type lists the types of the children it may create ([`crate::JobTemplate::child_job_types`])
//! and builds them from the processed job ([`crate::JobTemplate::children_when_processed`]); the
//! orchestrator stores them in the same transaction as the job's move to `processed`, with the
//! reference to the parent (`parent_id` for attached children, `spawned_by` for best-effort ones).

use serde::{Deserialize, Serialize};

use crate::job::NewJob;

/// How a child relates to the job that creates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// The parent is `done` only when this child is; its terminal failure fails the parent.
    Attached,
    /// The child keeps a `spawned_by` reference to the parent; its fate changes nothing for it.
    BestEffort,
}

/// A job to create beside the job that was processed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildJob {
    /// How it relates to the parent.
    pub kind: ChildKind,
    /// The job (its parent reference is set by the orchestrator).
    pub job: NewJob,
}

/// Prefix of an input source that names a product in the output store, by its path inside the store
/// (an [`crate::job::OutputProduct`]'s `path`): `outputs:CLMS/.../FSC_..._V100_1`. The orchestrator
/// resolves it to a URL of its output store for the worker.
pub const OUTPUT_STORE_SOURCE: &str = "outputs:";

/// The input source of the output product stored at `path`.
pub fn output_store_source(path: &str) -> String {
    format!("{OUTPUT_STORE_SOURCE}{}", path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_products_are_named_by_their_path_in_the_store() {
        assert_eq!(
            output_store_source("/products/FSC/2021/x"),
            "outputs:products/FSC/2021/x"
        );
        assert_eq!(
            serde_json::to_string(&ChildKind::BestEffort).unwrap(),
            "\"best_effort\""
        );
    }
}

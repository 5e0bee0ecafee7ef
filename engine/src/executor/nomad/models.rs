//! The parts of Nomad's JSON that swath reads, with Nomad's field names (`reference/nomad-api.md`
//! §2.2, §3.1). Every field has a default: Nomad omits zero values from some objects.

use std::collections::HashMap;

use serde::Deserialize;

/// The answer to a dispatch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DispatchResponse {
    /// The child job's ID, `<parent>/dispatch-...`.
    #[serde(rename = "DispatchedJobID")]
    pub dispatched_job_id: String,
    /// The evaluation created; empty when the idempotency token matched an existing child.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
}

/// A job's summary; on a parameterized parent, `Children` counts its dispatched children.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobSummary {
    /// Children by status.
    #[serde(rename = "Children")]
    pub children: Option<ChildrenSummary>,
}

/// Dispatched children by status.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct ChildrenSummary {
    /// Not yet running (including those that cannot be placed).
    #[serde(rename = "Pending")]
    pub pending: u64,
    /// Running.
    #[serde(rename = "Running")]
    pub running: u64,
    /// Ended.
    #[serde(rename = "Dead")]
    pub dead: u64,
}

/// The fields of a job swath reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobStub {
    /// `pending`, `running` or `dead`.
    #[serde(rename = "Status")]
    pub status: String,
    /// Whether the job was stopped.
    #[serde(rename = "Stop")]
    pub stop: bool,
}

/// An allocation as listed under a job (`AllocListStub`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AllocListStub {
    /// Allocation ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// `run`, `stop` or `evict`.
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    /// `pending`, `running`, `complete`, `failed`, `lost` or `unknown`.
    #[serde(rename = "ClientStatus")]
    pub client_status: String,
    /// Why the client status is what it is.
    #[serde(rename = "ClientDescription")]
    pub client_description: String,
    /// Task states by task name.
    #[serde(rename = "TaskStates")]
    pub task_states: Option<HashMap<String, TaskState>>,
    /// The allocation that replaced this one, if any.
    #[serde(rename = "NextAllocation")]
    pub next_allocation: String,
    /// Raft index of its creation: the latest allocation has the highest.
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
}

/// One task's state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskState {
    /// `pending`, `running` or `dead`.
    #[serde(rename = "State")]
    pub state: String,
    /// Whether the task failed.
    #[serde(rename = "Failed")]
    pub failed: bool,
    /// The last events (at most 10).
    #[serde(rename = "Events")]
    pub events: Option<Vec<TaskEvent>>,
}

/// One task event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TaskEvent {
    /// `Received`, `Started`, `Terminated`, `Not Restarting`, `Killing`...
    #[serde(rename = "Type")]
    pub kind: String,
    /// Human-readable message.
    #[serde(rename = "DisplayMessage")]
    pub display_message: String,
    /// Event details (`exit_code`, `signal`, `oom_killed`...), as strings.
    #[serde(rename = "Details")]
    pub details: Option<HashMap<String, String>>,
    /// Deprecated flat exit code; `Details.exit_code` comes first.
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
}

impl TaskEvent {
    /// A detail by key.
    pub fn detail(&self, key: &str) -> Option<&str> {
        self.details.as_ref()?.get(key).map(String::as_str)
    }
}

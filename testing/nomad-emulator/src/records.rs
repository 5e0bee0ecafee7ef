//! The stored objects: jobs (spec, status, summary), allocations with their task states, and
//! evaluations, with the predicates Nomad's status logic uses.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::task_events::TaskState;

/// Jobs are keyed by (namespace, ID).
pub(crate) type JobKey = (String, String);

/// A job as stored: the canonical spec and the fields the server manages.
#[derive(Debug, Clone)]
pub(crate) struct JobRecord {
    pub namespace: String,
    pub id: String,
    /// The job as registered, after defaults, without the server-managed fields below.
    pub spec: Map<String, Value>,
    pub stop: bool,
    pub parent_id: String,
    pub dispatched: bool,
    pub idempotency_token: String,
    pub payload: Vec<u8>,
    pub status: String,
    pub version: u64,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub summary: JobSummary,
}

/// `JobSummary` counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobSummary {
    pub groups: BTreeMap<String, GroupSummary>,
    pub children: Children,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Per task group allocation counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    pub queued: u64,
    pub complete: u64,
    pub failed: u64,
    pub running: u64,
    pub starting: u64,
    pub lost: u64,
    pub unknown: u64,
}

impl GroupSummary {
    /// The count for an allocation client status.
    pub fn count_mut(&mut self, client_status: &str) -> Option<&mut u64> {
        match client_status {
            "pending" => Some(&mut self.starting),
            "running" => Some(&mut self.running),
            "complete" => Some(&mut self.complete),
            "failed" => Some(&mut self.failed),
            "lost" => Some(&mut self.lost),
            "unknown" => Some(&mut self.unknown),
            _ => None,
        }
    }
}

/// Dispatched children of a parameterized job by status.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Children {
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
}

impl Children {
    /// The count for a job status.
    pub fn count_mut(&mut self, status: &str) -> Option<&mut i64> {
        match status {
            "pending" => Some(&mut self.pending),
            "running" => Some(&mut self.running),
            "dead" => Some(&mut self.dead),
            _ => None,
        }
    }
}

/// A task group of a job spec, as the scheduler and client need it.
#[derive(Debug, Clone)]
pub(crate) struct GroupSpec {
    pub name: String,
    pub count: u64,
    /// `EphemeralDisk.SizeMB`: the group's disk, counted against the node's.
    pub disk_mb: i64,
    pub tasks: Vec<TaskSpec>,
}

/// A task of a job spec.
#[derive(Debug, Clone)]
pub(crate) struct TaskSpec {
    pub name: String,
    pub driver: String,
    pub kill_timeout: i64,
    /// `Resources.CPU` in MHz (0 when the task asks for cores).
    pub cpu: i64,
    /// `Resources.Cores`: whole cores reserved for the task alone.
    pub cores: i64,
    pub memory_mb: i64,
}

impl JobRecord {
    /// Parameterized and not itself a dispatched child (Nomad's `IsParameterized`).
    pub fn is_parameterized(&self) -> bool {
        self.spec
            .get("ParameterizedJob")
            .is_some_and(Value::is_object)
            && !self.dispatched
    }

    /// `Type`.
    pub fn job_type(&self) -> &str {
        self.spec.get("Type").and_then(Value::as_str).unwrap_or("")
    }

    /// `Priority`.
    pub fn priority(&self) -> i64 {
        self.spec
            .get("Priority")
            .and_then(Value::as_i64)
            .unwrap_or(50)
    }

    /// The task groups.
    pub fn groups(&self) -> Vec<GroupSpec> {
        let groups = self.spec.get("TaskGroups").and_then(Value::as_array);
        groups
            .into_iter()
            .flatten()
            .map(|group| GroupSpec {
                name: str_field(group, "Name"),
                count: group["Count"].as_u64().unwrap_or(1),
                disk_mb: group["EphemeralDisk"]["SizeMB"].as_i64().unwrap_or(300),
                tasks: group["Tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|task| TaskSpec {
                        name: str_field(task, "Name"),
                        driver: str_field(task, "Driver"),
                        kill_timeout: task["KillTimeout"].as_i64().unwrap_or(5_000_000_000),
                        cpu: task["Resources"]["CPU"].as_i64().unwrap_or(100),
                        cores: task["Resources"]["Cores"].as_i64().unwrap_or(0),
                        memory_mb: task["Resources"]["MemoryMB"].as_i64().unwrap_or(300),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The first constraint of the job or its groups, as Nomad prints it in `ConstraintFiltered`.
    pub fn first_constraint(&self) -> Option<String> {
        let job_level = self.spec.get("Constraints").and_then(Value::as_array);
        let groups = self.spec.get("TaskGroups").and_then(Value::as_array);
        let group_level = groups
            .into_iter()
            .flatten()
            .filter_map(|g| g["Constraints"].as_array());
        job_level
            .into_iter()
            .chain(group_level)
            .flatten()
            .next()
            .map(|c| {
                format!(
                    "{} {} {}",
                    str_field(c, "LTarget"),
                    str_field(c, "Operand"),
                    str_field(c, "RTarget")
                )
            })
    }
}

fn str_field(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or("").to_string()
}

/// An allocation.
#[derive(Debug, Clone)]
pub(crate) struct AllocRecord {
    pub id: String,
    pub namespace: String,
    pub eval_id: String,
    pub name: String,
    pub node_id: String,
    pub node_name: String,
    pub job_id: String,
    pub job_type: String,
    pub job_version: u64,
    pub job_create_index: u64,
    /// The job as it was when the allocation was placed (rendered).
    pub job: Value,
    pub task_group: String,
    pub tasks: Vec<TaskSpec>,
    pub allocated_resources: Value,
    pub metrics: Value,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    /// `None` until the client first reports.
    pub task_states: Option<BTreeMap<String, TaskState>>,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl AllocRecord {
    /// Nomad's `TerminalStatus`: desired stop or evict, or a terminal client status.
    pub fn is_terminal(&self) -> bool {
        matches!(self.desired_status.as_str(), "stop" | "evict") || self.is_client_terminal()
    }

    /// `ClientStatus` is `complete`, `failed` or `lost`.
    pub fn is_client_terminal(&self) -> bool {
        matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }
}

/// An evaluation.
#[derive(Debug, Clone, Default)]
pub(crate) struct EvalRecord {
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub kind: String,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: u64,
    pub node_id: String,
    pub node_modify_index: u64,
    pub status: String,
    pub status_description: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub failed_tg_allocs: BTreeMap<String, Value>,
    pub class_eligibility: BTreeMap<String, bool>,
    pub escaped_computed_class: bool,
    pub queued_allocations: BTreeMap<String, u64>,
    pub snapshot_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl EvalRecord {
    /// `complete`, `failed` or `canceled`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "complete" | "failed" | "canceled")
    }
}

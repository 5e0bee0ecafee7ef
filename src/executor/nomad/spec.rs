//! The parameterized batch job swath registers for each worker flavor (`reference/nomad-api.md`
//! §1, §8): a node-class constraint and resources from the flavor, the attempt in required dispatch
//! meta, the worker token as the dispatch payload (written to a file, never in the environment or a
//! process listing), and no restart nor reschedule, so that one dispatch is one execution and retries
//! stay the orchestrator's decision.

use std::time::Duration;

use serde_json::{json, Value};
use swath_job_types::flavor::WorkerFlavor;

/// Dispatch meta keys every attempt carries.
pub const META_KEYS: [&str; 3] = ["job_id", "attempt", "job_type"];
/// The file (in the task's `local/` directory) that receives the worker token.
pub const TOKEN_FILE: &str = "attempt-token";
/// The task group's name.
pub const GROUP: &str = "attempt";
/// The task's name.
pub const TASK: &str = "worker";

/// What the worker jobs look like beyond the flavor.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerJobSettings {
    /// Prefix of the parent job IDs: `<prefix>-<flavor>`.
    pub job_prefix: String,
    /// Namespace of the jobs.
    pub namespace: String,
    /// Datacenters (globs) the workers may run in.
    pub datacenters: Vec<String>,
    /// Node pool of the workers.
    pub node_pool: String,
    /// The `swath-worker` binary on the worker nodes (run with the `raw_exec` driver).
    pub worker_command: String,
    /// The orchestrator's API as the workers reach it.
    pub orchestrator_url: String,
    /// Directory under which the worker creates one work directory per job.
    pub work_root: String,
    /// Time between SIGTERM and SIGKILL when an attempt is stopped (the worker removes its
    /// container in that time).
    pub kill_timeout: Duration,
}

impl Default for WorkerJobSettings {
    fn default() -> Self {
        WorkerJobSettings {
            job_prefix: "swath-worker".into(),
            namespace: "default".into(),
            datacenters: vec!["*".into()],
            node_pool: "default".into(),
            worker_command: "/usr/local/bin/swath-worker".into(),
            orchestrator_url: "http://swath.service.consul:8080".into(),
            work_root: "/work".into(),
            kill_timeout: Duration::from_secs(30),
        }
    }
}

/// The parent job ID of a flavor.
pub fn parent_job_id(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> String {
    format!("{}-{}", settings.job_prefix, flavor.name)
}

/// The `Job` object registered for `flavor`, in Nomad's JSON (durations in nanoseconds).
pub fn worker_job(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> Value {
    let id = parent_job_id(settings, flavor);
    json!({
        "ID": id,
        "Name": id,
        "Type": "batch",
        "Namespace": settings.namespace,
        "Datacenters": settings.datacenters,
        "NodePool": settings.node_pool,
        "Priority": 50,
        "ParameterizedJob": {
            "Payload": "required",
            "MetaRequired": META_KEYS,
            "MetaOptional": [],
        },
        "Meta": { "swath_flavor": flavor.name },
        "Constraints": [
            { "LTarget": "${node.class}", "Operand": "=", "RTarget": flavor.node_class }
        ],
        "TaskGroups": [{
            "Name": GROUP,
            "Count": 1,
            "RestartPolicy": { "Attempts": 0, "Mode": "fail" },
            "ReschedulePolicy": { "Attempts": 0, "Unlimited": false },
            "EphemeralDisk": { "SizeMB": flavor.disk_gb * 1024 },
            "Tasks": [{
                "Name": TASK,
                "Driver": "raw_exec",
                "Config": { "command": settings.worker_command, "args": ["run"] },
                "Env": {
                    "SWATH_WORKER_ORCHESTRATOR_URL": settings.orchestrator_url,
                    "SWATH_WORKER_WORK_ROOT": settings.work_root,
                    "SWATH_WORKER_TOKEN_FILE": format!("${{NOMAD_TASK_DIR}}/{TOKEN_FILE}"),
                },
                "DispatchPayload": { "File": TOKEN_FILE },
                "Resources": { "Cores": flavor.cpus, "MemoryMB": flavor.memory_mb },
                "KillTimeout": settings.kill_timeout.as_nanos() as u64,
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_job_types::flavor::default_flavors;

    #[test]
    fn each_flavor_gets_its_own_constrained_and_sized_parent() {
        let settings = WorkerJobSettings::default();
        let flavor = &default_flavors()[2];
        let job = worker_job(&settings, flavor);
        assert_eq!(job["ID"], format!("swath-worker-{}", flavor.name));
        assert_eq!(job["Constraints"][0]["RTarget"], flavor.node_class.as_str());
        let task = &job["TaskGroups"][0]["Tasks"][0];
        assert_eq!(task["Resources"]["Cores"], flavor.cpus);
        assert_eq!(task["Resources"]["MemoryMB"], flavor.memory_mb);
        assert_eq!(job["TaskGroups"][0]["RestartPolicy"]["Attempts"], 0);
        assert_eq!(job["TaskGroups"][0]["ReschedulePolicy"]["Attempts"], 0);
        assert_eq!(task["KillTimeout"], 30_000_000_000u64);
    }
}

//! The parameterized batch job swath registers for each worker flavor (`reference/nomad-api.md`
//! §1, §8): the flavor's request as resources and its placement as a constraint pinning it to its
//! kind of VM, the orchestrator's URL found the way the orchestrator registers itself
//! ([`Discovery`]), the attempt in required dispatch meta, the worker token as the dispatch payload (written to a file, never in the environment or a
//! process listing), and no restart nor reschedule, so that one dispatch is one execution and retries
//! stay the orchestrator's decision.

use std::time::Duration;

use serde_json::{json, Value};
use swath_domain::flavor::WorkerFlavor;

/// Dispatch meta keys every attempt carries.
pub const META_KEYS: [&str; 3] = ["job_id", "attempt", "job_type"];
/// The file (in the task's `local/` directory) that receives the worker token.
pub const TOKEN_FILE: &str = "attempt-token";
/// The task group's name.
pub const GROUP: &str = "attempt";
/// The task's name.
pub const TASK: &str = "worker";

/// The name the orchestrator registers its API under, by default.
pub const DEFAULT_SERVICE: &str = "swath";
/// The environment variable that gives the worker the orchestrator's URL.
pub const URL_VARIABLE: &str = "SWATH_WORKER_ORCHESTRATOR_URL";
/// Where the discovery template is rendered (in the task's secrets directory, read as `env`).
pub const DISCOVERY_FILE: &str = "secrets/orchestrator.env";

/// How the workers find the orchestrator: it must match how the orchestrator's service job
/// registers its service (`swath nomad hcl` writes both).
///
/// A `provider = "nomad"` service lives in Nomad's own service catalogue and never reaches
/// Consul or its DNS (`client/serviceregistration/wrapper/wrapper.go` sends it to the Nomad
/// handler only), so its workers read it with the template function `nomadService`; a
/// `provider = "consul"` service is reachable at `<name>.service.consul`.
#[derive(Clone, PartialEq, Eq)]
pub enum Discovery {
    /// The orchestrator is the Nomad service `service` (in the workers' namespace): a `template`
    /// block renders `SWATH_WORKER_ORCHESTRATOR_URL` from `nomadService` into the task's
    /// environment (`env = true`) before the worker starts.
    NomadService {
        /// The service name.
        service: String,
    },
    /// The orchestrator is the Consul service `service`; the workers get `url` in their `env`:
    /// Consul DNS (`http://swath.service.consul:8080`) or a load balancer in front of it.
    Consul {
        /// The service name.
        service: String,
        /// The URL the workers call.
        url: String,
    },
}

impl std::fmt::Debug for Discovery {
    /// The URL with any credential in it hidden.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discovery::NomadService { service } => f
                .debug_struct("NomadService")
                .field("service", service)
                .finish(),
            Discovery::Consul { service, url } => f
                .debug_struct("Consul")
                .field("service", service)
                .field("url", &crate::config::redact_url(url))
                .finish(),
        }
    }
}

impl Discovery {
    /// The template that writes the URL into the worker's environment, for a Nomad service.
    /// Several instances (HA) each write the line; the last one wins, and any instance serves
    /// the API.
    pub fn template(&self) -> Option<String> {
        match self {
            Discovery::NomadService { service } => Some(format!(
                "{{{{ range nomadService {service:?} }}}}\n{URL_VARIABLE}=http://{{{{ .Address }}}}:{{{{ .Port }}}}\n{{{{ end }}}}\n"
            )),
            Discovery::Consul { .. } => None,
        }
    }

    /// The service name the orchestrator registers.
    pub fn service(&self) -> &str {
        match self {
            Discovery::NomadService { service } | Discovery::Consul { service, .. } => service,
        }
    }

    /// The service block's `provider`.
    pub fn provider(&self) -> &'static str {
        match self {
            Discovery::NomadService { .. } => "nomad",
            Discovery::Consul { .. } => "consul",
        }
    }
}

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
    /// How the workers find the orchestrator's API.
    pub discovery: Discovery,
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
            discovery: Discovery::NomadService {
                service: DEFAULT_SERVICE.into(),
            },
            work_root: "/work".into(),
            kill_timeout: Duration::from_secs(30),
        }
    }
}

/// The parent job ID of a flavor.
pub fn parent_job_id(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> String {
    format!("{}-{}", settings.job_prefix, flavor.name)
}

/// The task's `Resources`: memory, and CPU in MHz or whole cores, never both.
pub fn resources(flavor: &WorkerFlavor) -> Value {
    match flavor.cpu_mhz {
        Some(mhz) => json!({ "CPU": mhz, "MemoryMB": flavor.memory_mb }),
        None => json!({ "Cores": flavor.cpus, "MemoryMB": flavor.memory_mb }),
    }
}

/// The `Job` object registered for `flavor`, in Nomad's JSON (durations in nanoseconds).
pub fn worker_job(settings: &WorkerJobSettings, flavor: &WorkerFlavor) -> Value {
    let id = parent_job_id(settings, flavor);
    let mut env = serde_json::Map::new();
    if let Discovery::Consul { url, .. } = &settings.discovery {
        env.insert(URL_VARIABLE.into(), json!(url));
    }
    env.insert("SWATH_WORKER_WORK_ROOT".into(), json!(settings.work_root));
    // The worker stops its container within the kill timeout, before Nomad's SIGKILL.
    env.insert(
        "SWATH_WORKER_KILL_TIMEOUT_SECS".into(),
        json!(settings.kill_timeout.as_secs().to_string()),
    );
    env.insert(
        "SWATH_WORKER_TOKEN_FILE".into(),
        json!(format!("${{NOMAD_TASK_DIR}}/{TOKEN_FILE}")),
    );
    let templates = match settings.discovery.template() {
        // `noop`: a change of the service's address must not restart a running attempt.
        Some(data) => json!([{
            "EmbeddedTmpl": data,
            "DestPath": DISCOVERY_FILE,
            "Envvars": true,
            "ChangeMode": "noop",
        }]),
        None => Value::Null,
    };
    let mut task = json!({
        "Name": TASK,
        "Driver": "raw_exec",
        "Config": { "command": settings.worker_command, "args": ["run"] },
        "Env": env,
        "DispatchPayload": { "File": TOKEN_FILE },
        "Resources": resources(flavor),
        "KillTimeout": settings.kill_timeout.as_nanos() as u64,
    });
    if !templates.is_null() {
        task["Templates"] = templates;
    }
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
        "Constraints": [{
            "LTarget": flavor.placement_attribute,
            "Operand": "=",
            "RTarget": flavor.placement_value(),
        }],
        "TaskGroups": [{
            "Name": GROUP,
            "Count": 1,
            "RestartPolicy": { "Attempts": 0, "Mode": "fail" },
            "ReschedulePolicy": { "Attempts": 0, "Unlimited": false },
            "EphemeralDisk": { "SizeMB": flavor.disk_gb * 1024 },
            "Tasks": [task],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_domain::flavor::default_flavors;

    #[test]
    fn each_flavor_gets_its_own_constrained_and_sized_parent() {
        let settings = WorkerJobSettings::default();
        let flavor = &default_flavors()[2];
        let job = worker_job(&settings, flavor);
        assert_eq!(job["ID"], format!("swath-worker-{}", flavor.name));
        assert_eq!(
            job["Constraints"],
            json!([{"LTarget": "${attr.platform.aws.instance-type}", "Operand": "=", "RTarget": "hm.medium"}])
        );
        let task = &job["TaskGroups"][0]["Tasks"][0];
        assert_eq!(task["Resources"], json!({"CPU": 50, "MemoryMB": 10000}));
        assert_eq!(job["TaskGroups"][0]["RestartPolicy"]["Attempts"], 0);
        assert_eq!(job["TaskGroups"][0]["ReschedulePolicy"]["Attempts"], 0);
        assert_eq!(task["KillTimeout"], 30_000_000_000u64);
    }

    #[test]
    fn cores_are_asked_only_without_a_cpu_figure() {
        let flavor = WorkerFlavor {
            name: "whole".into(),
            cpus: 3,
            ..WorkerFlavor::default()
        };
        assert_eq!(resources(&flavor), json!({"Cores": 3, "MemoryMB": 64}));
    }

    #[test]
    fn workers_find_a_nomad_service_by_template_and_a_consul_one_by_url() {
        let flavor = &default_flavors()[0];
        let task = |discovery| {
            let settings = WorkerJobSettings {
                discovery,
                ..WorkerJobSettings::default()
            };
            worker_job(&settings, flavor)["TaskGroups"][0]["Tasks"][0].clone()
        };
        let nomad = task(Discovery::NomadService {
            service: "swath".into(),
        });
        assert!(nomad["Env"].get(URL_VARIABLE).is_none());
        let template = &nomad["Templates"][0];
        assert_eq!(template["Envvars"], true);
        assert_eq!(template["ChangeMode"], "noop");
        assert_eq!(
            template["EmbeddedTmpl"],
            "{{ range nomadService \"swath\" }}\nSWATH_WORKER_ORCHESTRATOR_URL=http://{{ .Address }}:{{ .Port }}\n{{ end }}\n"
        );
        let consul = task(Discovery::Consul {
            service: "swath".into(),
            url: "http://swath.service.consul:8080".into(),
        });
        assert_eq!(
            consul["Env"][URL_VARIABLE],
            "http://swath.service.consul:8080"
        );
        assert!(consul.get("Templates").is_none());
    }
}

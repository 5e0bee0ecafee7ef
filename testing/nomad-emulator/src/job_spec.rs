//! A job spec as Nomad's server treats it on registration: canonicalization (`api.Job.Canonicalize`
//! and the server's defaults) and validation (`Job.Validate`, the parts that matter here), plus the
//! emulator's refusal of specs that would restart or reschedule.

use serde_json::{json, Map, Value};

use super::wire::{format_go_duration, go_list, multierror};

const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SECOND;

/// Nomad's defaults (`api.Job.Canonicalize` and the server's canonicalizer).
pub(crate) fn canonicalize(job: &mut Map<String, Value>) {
    let id = job.get("ID").cloned().unwrap_or(json!(""));
    default(job, "Name", id);
    default(job, "Type", json!("service"));
    if job.get("Priority").and_then(Value::as_i64).unwrap_or(0) == 0 {
        job.insert("Priority".into(), json!(50));
    }
    default(job, "AllAtOnce", json!(false));
    if job
        .get("Datacenters")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        job.insert("Datacenters".into(), json!(["*"]));
    }
    if job
        .get("NodePool")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        job.insert("NodePool".into(), json!("default"));
    }
    if let Some(Value::Object(parameterized)) = job.get_mut("ParameterizedJob") {
        if parameterized
            .get("Payload")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            parameterized.insert("Payload".into(), json!("optional"));
        }
    }
    let job_type = job["Type"].as_str().unwrap_or("").to_string();
    let job_reschedule = job.remove("Reschedule");
    job.remove("Migrate");
    let Some(Value::Array(groups)) = job.get_mut("TaskGroups") else {
        return;
    };
    for group in groups.iter_mut().filter_map(Value::as_object_mut) {
        canonicalize_group(group, &job_type, job_reschedule.as_ref());
    }
}

fn canonicalize_group(
    group: &mut Map<String, Value>,
    job_type: &str,
    job_reschedule: Option<&Value>,
) {
    default(group, "Count", json!(1));
    let restart_defaults = match job_type {
        "service" | "system" => {
            json!({"Attempts": 2, "Interval": 1800 * SECOND, "Delay": 15 * SECOND,
                                       "Mode": "fail", "RenderTemplates": false})
        }
        _ => json!({"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * SECOND,
                    "Mode": "fail", "RenderTemplates": false}),
    };
    let restart = merged(restart_defaults, &[group.get("RestartPolicy")]);
    group.insert("RestartPolicy".into(), restart.clone());
    let reschedule_defaults = match job_type {
        "batch" => Some(
            json!({"Attempts": 1, "Interval": 24 * HOUR, "Delay": 5 * SECOND,
                               "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": false}),
        ),
        "service" => Some(json!({"Attempts": 0, "Interval": 0, "Delay": 30 * SECOND,
                                 "DelayFunction": "exponential", "MaxDelay": HOUR, "Unlimited": true})),
        _ => None,
    };
    let reschedule = reschedule_defaults
        .map(|defaults| merged(defaults, &[job_reschedule, group.get("ReschedulePolicy")]))
        .unwrap_or(Value::Null);
    group.insert("ReschedulePolicy".into(), reschedule);
    let disk = merged(
        json!({"Sticky": false, "Migrate": false, "SizeMB": 300}),
        &[group.get("EphemeralDisk")],
    );
    group.insert("EphemeralDisk".into(), disk);
    let Some(Value::Array(tasks)) = group.get_mut("Tasks") else {
        return;
    };
    for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
        let task_restart = merged(restart.clone(), &[task.get("RestartPolicy")]);
        task.insert("RestartPolicy".into(), task_restart);
        // `api/resources.go` `Canonicalize`: the default CPU only when neither cpu nor cores is
        // given; a task asking for cores gets `CPU: 0`.
        let asks_cores = task
            .get("Resources")
            .and_then(|r| r.get("Cores"))
            .is_some_and(|c| !c.is_null());
        let defaults = if asks_cores {
            json!({"CPU": 0, "Cores": 0, "MemoryMB": 300})
        } else {
            json!({"CPU": 100, "Cores": 0, "MemoryMB": 300})
        };
        let resources = merged(defaults, &[task.get("Resources")]);
        task.insert("Resources".into(), resources);
        default(task, "KillTimeout", json!(5 * SECOND));
        let logs = merged(
            json!({"MaxFiles": 10, "MaxFileSizeMB": 10}),
            &[task.get("LogConfig")],
        );
        task.insert("LogConfig".into(), logs);
        default(task, "Leader", json!(false));
    }
}

fn default(object: &mut Map<String, Value>, field: &str, value: Value) {
    object.entry(field).or_insert(value);
}

/// `base` with the fields of each present override laid over it in turn.
fn merged(mut base: Value, overrides: &[Option<&Value>]) -> Value {
    for layer in overrides.iter().flatten() {
        if let (Some(base), Some(layer)) = (base.as_object_mut(), layer.as_object()) {
            base.extend(layer.clone());
        }
    }
    base
}

/// Nomad's `Job.Validate` (the parts that matter here) and the emulator's restriction to jobs
/// that never restart or reschedule.
pub(crate) fn validate(job: &Map<String, Value>) -> Vec<String> {
    let text = |field: &str| job.get(field).and_then(Value::as_str).unwrap_or("");
    let mut errors = Vec::new();
    let id = text("ID");
    if id.is_empty() {
        errors.push("Missing job ID".to_string());
    } else if id.contains(' ') {
        errors.push("Job ID contains a space".to_string());
    } else if id.contains('\0') {
        errors.push("Job ID contains a null character".to_string());
    }
    let job_type = text("Type");
    if !matches!(job_type, "service" | "batch" | "system" | "sysbatch") {
        errors.push(format!("Invalid job type: {job_type:?}"));
    }
    let priority = job.get("Priority").and_then(Value::as_i64).unwrap_or(0);
    if !(1..=100).contains(&priority) {
        errors.push("Job priority must be between [1, 100]".to_string());
    }
    errors.extend(constraint_errors(job.get("Constraints")));
    if let Some(parameterized) = job.get("ParameterizedJob").filter(|p| p.is_object()) {
        if !matches!(job_type, "batch" | "sysbatch") {
            errors.push(
                "Parameterized job can only be used with \"batch\" or \"sysbatch\" scheduler"
                    .into(),
            );
        }
        errors.extend(parameterized_errors(parameterized));
    }
    let groups = job.get("TaskGroups").and_then(Value::as_array);
    if groups.is_none_or(Vec::is_empty) {
        errors.push("Missing job task groups".to_string());
    }
    let mut names: Vec<&str> = Vec::new();
    for (n, group) in groups.into_iter().flatten().enumerate() {
        let name = group["Name"].as_str().unwrap_or("");
        if let Some(first) = names.iter().position(|seen| *seen == name) {
            errors.push(format!(
                "Job task group {} redefines '{name}' from group {}",
                n + 1,
                first + 1
            ));
        }
        names.push(name);
        let group_errors = group_errors(group);
        if !group_errors.is_empty() {
            errors.push(format!(
                "Task group {name} validation failed: {}",
                multierror(&group_errors)
            ));
        }
    }
    errors
}

fn parameterized_errors(parameterized: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let payload = parameterized["Payload"].as_str().unwrap_or("");
    if !matches!(payload, "optional" | "required" | "forbidden") {
        errors.push(format!("Unknown payload requirement: {payload:?}"));
    }
    let keys = |field: &str| -> Vec<String> {
        parameterized[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    };
    let optional = keys("MetaOptional");
    let both: Vec<String> = keys("MetaRequired")
        .into_iter()
        .filter(|k| optional.contains(k))
        .collect();
    if !both.is_empty() {
        errors.push(format!(
            "Required and optional meta keys should be disjoint. Following keys exist in both: {}",
            go_list(&both)
        ));
    }
    errors
}

fn constraint_errors(constraints: Option<&Value>) -> Vec<String> {
    let constraints = constraints.and_then(Value::as_array);
    constraints
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c["Operand"].as_str().unwrap_or("").is_empty())
        .map(|(n, _)| {
            format!(
                "Constraint {} validation failed: Missing constraint operand",
                n + 1
            )
        })
        .collect()
}

fn group_errors(group: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if group["Name"].as_str().unwrap_or("").is_empty() {
        errors.push("Missing task group name".to_string());
    }
    errors.extend(constraint_errors(group.get("Constraints")));
    errors.extend(restart_errors(&group["RestartPolicy"], "task group"));
    let reschedule = &group["ReschedulePolicy"];
    let attempts = reschedule["Attempts"].as_i64().unwrap_or(0);
    if attempts != 0 || reschedule["Unlimited"].as_bool() == Some(true) {
        errors.push(format!(
            "the Nomad emulator does not model rescheduling: set ReschedulePolicy {{Attempts: 0, Unlimited: false}} (got Attempts {attempts}, Unlimited {})",
            reschedule["Unlimited"].as_bool().unwrap_or(false)
        ));
    }
    let tasks = group["Tasks"].as_array();
    if tasks.is_none_or(Vec::is_empty) {
        errors.push("Missing tasks for task group".to_string());
    }
    for task in tasks.into_iter().flatten() {
        let task_errors = task_errors(task);
        if !task_errors.is_empty() {
            errors.push(format!(
                "Task {} validation failed: {}",
                task["Name"].as_str().unwrap_or(""),
                multierror(&task_errors)
            ));
        }
    }
    errors
}

fn task_errors(task: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if task["Name"].as_str().unwrap_or("").is_empty() {
        errors.push("Missing task name".to_string());
    }
    if task["Driver"].as_str().unwrap_or("").is_empty() {
        errors.push("Missing task driver".to_string());
    }
    errors.extend(constraint_errors(task.get("Constraints")));
    let cpu = task["Resources"]["CPU"].as_i64().unwrap_or(0);
    let cores = task["Resources"]["Cores"].as_i64().unwrap_or(0);
    // `nomad/structs/structs.go` `Resources.Validate`.
    if cores > 0 && cpu > 0 {
        errors.push("Task can only ask for 'cpu' or 'cores' resource, not both.".to_string());
    }
    if cpu < 1 && cores == 0 {
        errors.push(format!("minimum CPU value is 1; got {cpu}"));
    }
    let memory = task["Resources"]["MemoryMB"].as_i64().unwrap_or(0);
    if memory < 10 {
        errors.push(format!("minimum MemoryMB value is 10; got {memory}"));
    }
    errors.extend(restart_errors(&task["RestartPolicy"], "task"));
    errors
}

/// Nomad's `RestartPolicy.Validate`, then the emulator's refusal of restarts.
fn restart_errors(policy: &Value, scope: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mode = policy["Mode"].as_str().unwrap_or("");
    let attempts = policy["Attempts"].as_i64().unwrap_or(0);
    let interval = policy["Interval"].as_i64().unwrap_or(0);
    if !matches!(mode, "delay" | "fail") {
        errors.push(format!("Unsupported restart mode: {mode:?}"));
    }
    if attempts == 0 && mode != "fail" {
        errors.push(format!(
            "Restart policy {mode:?} with {attempts} attempts is ambiguous"
        ));
    }
    if interval < 5 * SECOND {
        errors.push(format!(
            "Interval can not be less than 5s (got {})",
            format_go_duration(interval)
        ));
    }
    if attempts != 0 {
        errors.push(format!(
            "the Nomad emulator does not model restarts: set the {scope} RestartPolicy Attempts to 0 (got {attempts})"
        ));
    }
    errors
}

//! The JSON shapes Nomad answers with: `Job`, `JobListStub`, `JobSummary`, `AllocListStub`, the full
//! `Allocation` and `Evaluation` (zero fields omitted, as go-msgpack's `omitempty` does), `TaskState`
//! and `TaskEvent` (every field present).

use serde_json::{json, Map, Value};

use super::records::{AllocRecord, EvalRecord, JobRecord};
use super::task_events::{TaskEvent, TaskState};
use super::wire::{base64_encode, rfc3339_nano, ZERO_TIME};

/// Top-level fields of `structs.Job` with their zero values, printed when the spec lacks them.
fn job_zero_fields() -> [(&'static str, Value); 23] {
    [
        ("Region", json!("global")),
        ("Namespace", json!("default")),
        ("ID", json!("")),
        ("Name", json!("")),
        ("Type", json!("service")),
        ("Priority", json!(50)),
        ("AllAtOnce", json!(false)),
        ("Datacenters", Value::Null),
        ("NodePool", json!("default")),
        ("Constraints", Value::Null),
        ("Affinities", Value::Null),
        ("Spreads", Value::Null),
        ("TaskGroups", Value::Null),
        (
            "Update",
            json!({"Stagger": 0, "MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": 0,
                   "HealthyDeadline": 0, "ProgressDeadline": 0, "Canary": 0,
                   "AutoRevert": false, "AutoPromote": false}),
        ),
        ("Multiregion", Value::Null),
        ("Periodic", Value::Null),
        ("ParameterizedJob", Value::Null),
        ("Meta", Value::Null),
        ("ConsulToken", json!("")),
        ("ConsulNamespace", json!("")),
        ("VaultToken", json!("")),
        ("VaultNamespace", json!("")),
        ("NomadTokenID", json!("")),
    ]
}

/// `Job`, with the payload decoded (base64).
pub(crate) fn job(job: &JobRecord) -> Value {
    let mut out = job.spec.clone();
    for (field, zero) in job_zero_fields() {
        out.entry(field).or_insert(zero);
    }
    let payload = if job.payload.is_empty() {
        Value::Null
    } else {
        json!(base64_encode(&job.payload))
    };
    let managed = json!({
        "Stop": job.stop,
        "ParentID": job.parent_id,
        "Dispatched": job.dispatched,
        "DispatchIdempotencyToken": job.idempotency_token,
        "Payload": payload,
        "Status": job.status,
        "StatusDescription": "",
        "Stable": false,
        "Version": job.version,
        "SubmitTime": job.submit_time,
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.job_modify_index,
    });
    out.extend(managed.as_object().cloned().unwrap_or_default());
    Value::Object(out)
}

/// `JobSummary`.
pub(crate) fn job_summary(job: &JobRecord) -> Value {
    let groups: Map<String, Value> = job
        .summary
        .groups
        .iter()
        .map(|(name, s)| {
            let counts = json!({
                "Queued": s.queued, "Complete": s.complete, "Failed": s.failed,
                "Running": s.running, "Starting": s.starting, "Lost": s.lost, "Unknown": s.unknown,
            });
            (name.clone(), counts)
        })
        .collect();
    let children = &job.summary.children;
    json!({
        "JobID": job.id,
        "Namespace": job.namespace,
        "Summary": groups,
        "Children": {"Pending": children.pending, "Running": children.running, "Dead": children.dead},
        "CreateIndex": job.summary.create_index,
        "ModifyIndex": job.summary.modify_index,
    })
}

/// `JobListStub`.
pub(crate) fn job_list_stub(job: &JobRecord) -> Value {
    let spec = &job.spec;
    json!({
        "ID": job.id,
        "ParentID": job.parent_id,
        "Name": spec.get("Name").cloned().unwrap_or_else(|| json!(job.id)),
        "Namespace": job.namespace,
        "Datacenters": spec.get("Datacenters").cloned().unwrap_or(Value::Null),
        "Type": job.job_type(),
        "Priority": job.priority(),
        "Periodic": spec.get("Periodic").is_some_and(Value::is_object),
        "ParameterizedJob": job.is_parameterized(),
        "Stop": job.stop,
        "Status": job.status,
        "StatusDescription": "",
        "JobSummary": job_summary(job),
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.job_modify_index,
        "SubmitTime": job.submit_time,
    })
}

/// `AllocListStub`: every field present, zero values included.
pub(crate) fn alloc_stub(alloc: &AllocRecord) -> Value {
    json!({
        "ID": alloc.id,
        "EvalID": alloc.eval_id,
        "Name": alloc.name,
        "Namespace": alloc.namespace,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "JobID": alloc.job_id,
        "JobType": alloc.job_type,
        "JobVersion": alloc.job_version,
        "TaskGroup": alloc.task_group,
        "DesiredStatus": alloc.desired_status,
        "DesiredDescription": alloc.desired_description,
        "ClientStatus": alloc.client_status,
        "ClientDescription": alloc.client_description,
        "DesiredTransition": desired_transition(),
        "TaskStates": task_states(alloc),
        "DeploymentStatus": Value::Null,
        "FollowupEvalID": "",
        "NextAllocation": alloc.next_allocation,
        "RescheduleTracker": Value::Null,
        "PreemptedAllocations": Value::Null,
        "PreemptedByAllocation": "",
        "CreateIndex": alloc.create_index,
        "ModifyIndex": alloc.modify_index,
        "CreateTime": alloc.create_time,
        "ModifyTime": alloc.modify_time,
    })
}

/// The full `Allocation`, with its job; zero fields omitted (so `DesiredTransition`, all of whose
/// fields are nil, is absent).
pub(crate) fn alloc(alloc: &AllocRecord) -> Value {
    let full = json!({
        "ID": alloc.id,
        "Namespace": alloc.namespace,
        "EvalID": alloc.eval_id,
        "Name": alloc.name,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "JobID": alloc.job_id,
        "Job": alloc.job,
        "TaskGroup": alloc.task_group,
        "AllocatedResources": alloc.allocated_resources,
        "Metrics": alloc.metrics,
        "DesiredStatus": alloc.desired_status,
        "DesiredDescription": alloc.desired_description,
        "ClientStatus": alloc.client_status,
        "ClientDescription": alloc.client_description,
        "TaskStates": task_states(alloc),
        "PreviousAllocation": alloc.previous_allocation,
        "NextAllocation": alloc.next_allocation,
        "CreateIndex": alloc.create_index,
        "ModifyIndex": alloc.modify_index,
        "AllocModifyIndex": alloc.alloc_modify_index,
        "CreateTime": alloc.create_time,
        "ModifyTime": alloc.modify_time,
    });
    omit_empty(full)
}

/// `Evaluation`, zero fields omitted.
pub(crate) fn eval(eval: &EvalRecord) -> Value {
    let full = json!({
        "ID": eval.id,
        "Namespace": eval.namespace,
        "Priority": eval.priority,
        "Type": eval.kind,
        "TriggeredBy": eval.triggered_by,
        "JobID": eval.job_id,
        "JobModifyIndex": eval.job_modify_index,
        "NodeID": eval.node_id,
        "NodeModifyIndex": eval.node_modify_index,
        "Status": eval.status,
        "StatusDescription": eval.status_description,
        "PreviousEval": eval.previous_eval,
        "BlockedEval": eval.blocked_eval,
        "FailedTGAllocs": eval.failed_tg_allocs,
        "ClassEligibility": eval.class_eligibility,
        "EscapedComputedClass": eval.escaped_computed_class,
        "QueuedAllocations": eval.queued_allocations,
        "SnapshotIndex": eval.snapshot_index,
        "CreateIndex": eval.create_index,
        "ModifyIndex": eval.modify_index,
        "CreateTime": eval.create_time,
        "ModifyTime": eval.modify_time,
    });
    omit_empty(full)
}

/// `AllocMetric` with every field, as the scheduler fills it.
pub(crate) fn alloc_metric(
    nodes_evaluated: u64,
    nodes_filtered: u64,
    nodes_exhausted: u64,
    constraint_filtered: Value,
    dimension_exhausted: Value,
) -> Value {
    json!({
        "NodesEvaluated": nodes_evaluated,
        "NodesFiltered": nodes_filtered,
        "NodesAvailable": {"dc1": 2},
        "ClassFiltered": Value::Null,
        "ConstraintFiltered": constraint_filtered,
        "NodesExhausted": nodes_exhausted,
        "ClassExhausted": Value::Null,
        "DimensionExhausted": dimension_exhausted,
        "QuotaExhausted": Value::Null,
        "ResourcesExhausted": Value::Null,
        "Scores": Value::Null,
        "ScoreMetaData": Value::Null,
        "AllocationTime": 52_000,
        "CoalescedFailures": 0,
    })
}

fn desired_transition() -> Value {
    json!({"Migrate": null, "Reschedule": null, "ForceReschedule": null,
           "NoShutdownDelay": null, "MigrateDisablePlacement": null})
}

fn task_states(alloc: &AllocRecord) -> Value {
    match &alloc.task_states {
        None => Value::Null,
        Some(states) => states
            .iter()
            .map(|(name, state)| (name.clone(), task_state(state)))
            .collect::<Map<String, Value>>()
            .into(),
    }
}

/// `TaskState`.
pub(crate) fn task_state(state: &TaskState) -> Value {
    let time = |t: Option<i64>| t.map_or_else(|| ZERO_TIME.to_string(), rfc3339_nano);
    json!({
        "State": state.state,
        "Failed": state.failed,
        "Restarts": state.restarts,
        "LastRestart": ZERO_TIME,
        "StartedAt": time(state.started_at),
        "FinishedAt": time(state.finished_at),
        "Events": state.events.iter().map(task_event).collect::<Vec<_>>(),
        "Paused": "",
    })
}

/// `TaskEvent`, every field present.
pub(crate) fn task_event(event: &TaskEvent) -> Value {
    json!({
        "Type": event.kind,
        "Time": event.time,
        "Message": event.message,
        "DisplayMessage": event.display_message,
        "Details": event.details,
        "FailsTask": event.fails_task,
        "RestartReason": event.restart_reason,
        "SetupError": "",
        "DriverError": event.driver_error,
        "ExitCode": event.exit_code,
        "Signal": event.signal,
        "KillTimeout": event.kill_timeout,
        "KillError": "",
        "KillReason": "",
        "StartDelay": 0,
        "DownloadError": "",
        "ValidationError": "",
        "DiskLimit": 0,
        "FailedSibling": "",
        "VaultError": "",
        "TaskSignalReason": "",
        "TaskSignal": "",
        "DriverMessage": event.driver_message,
        "GenericSource": "",
    })
}

/// Drops the top-level fields go-msgpack's `omitempty` drops: `null`, `""`, `0`, `false`, empty
/// arrays and empty maps.
fn omit_empty(value: Value) -> Value {
    let Value::Object(fields) = value else {
        return value;
    };
    fields
        .into_iter()
        .filter(|(_, v)| !is_empty(v))
        .collect::<Map<String, Value>>()
        .into()
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
    }
}

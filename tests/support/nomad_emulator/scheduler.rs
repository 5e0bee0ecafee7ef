//! The emulated scheduler: it processes evaluations one lifecycle step after they are created,
//! placing allocations, blocking unplaceable jobs, stopping the allocations of stopped jobs and
//! replacing allocations lost with their node.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::control::Outcome;
use super::lifecycle;
use super::models;
use super::records::{AllocRecord, EvalRecord, GroupSpec, JobKey, JobRecord};
use super::shared::{Node, Shared};
use super::state::Txn;
use super::wire::now_nanos;

/// A new evaluation of `job` for `trigger`, `pending`.
pub(crate) fn new_eval(job: &JobRecord, trigger: &str) -> EvalRecord {
    EvalRecord {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: job.namespace.clone(),
        priority: job.priority(),
        kind: job.job_type().to_string(),
        triggered_by: trigger.to_string(),
        job_id: job.id.clone(),
        job_modify_index: job.job_modify_index,
        status: "pending".into(),
        ..EvalRecord::default()
    }
}

/// Processes a registration evaluation after one step: the job's allocations are placed (and
/// their clients started with `outcome`), or for [`Outcome::NeverPlaced`] the evaluation is blocked.
pub(crate) fn schedule_registration(
    shared: &Arc<Shared>,
    key: JobKey,
    eval_id: String,
    outcome: Outcome,
) {
    let task_shared = shared.clone();
    shared.spawn(async move {
        let shared = task_shared;
        shared.step().await;
        let node = shared.nodes[0].clone();
        let placed = shared.write(|txn| place(txn, &node, &key, &eval_id, &outcome));
        for alloc_id in placed {
            lifecycle::run(&shared, alloc_id, outcome.clone());
        }
    });
}

fn place(
    txn: &mut Txn,
    node: &Node,
    key: &JobKey,
    eval_id: &str,
    outcome: &Outcome,
) -> Vec<String> {
    if txn
        .store
        .evals
        .get(eval_id)
        .is_none_or(EvalRecord::is_terminal)
    {
        return Vec::new();
    }
    let job = txn.store.jobs.get(key).filter(|job| !job.stop).cloned();
    let busy = txn
        .store
        .job_allocs(&key.0, &key.1)
        .any(|alloc| !alloc.is_terminal());
    let Some(job) = job.filter(|_| !busy) else {
        complete(txn, eval_id, BTreeMap::new());
        return Vec::new();
    };
    let groups = job.groups();
    if *outcome == Outcome::NeverPlaced {
        block(txn, &job, eval_id, &groups);
        return Vec::new();
    }
    let rendered = models::job(&job);
    let mut placed = Vec::new();
    for group in &groups {
        for n in 0..group.count {
            let alloc = new_alloc(&job, &rendered, group, n, eval_id, node, "");
            placed.push(alloc.id.clone());
            txn.insert_alloc(alloc);
        }
    }
    let queued = groups.iter().map(|g| (g.name.clone(), 0)).collect();
    complete(txn, eval_id, queued);
    placed
}

fn complete(txn: &mut Txn, eval_id: &str, queued: BTreeMap<String, u64>) {
    if !txn.store.evals.contains_key(eval_id) {
        return;
    }
    let index = txn.index();
    txn.update_eval(eval_id, |eval| {
        eval.status = "complete".into();
        eval.queued_allocations = queued;
        eval.snapshot_index = index;
    });
}

/// No node fits: the evaluation completes with `FailedTGAllocs` and a `blocked` evaluation takes
/// its place; the job stays `pending` with its allocations `Queued`.
fn block(txn: &mut Txn, job: &JobRecord, eval_id: &str, groups: &[GroupSpec]) {
    let metric = match job.first_constraint() {
        Some(constraint) => models::alloc_metric(2, 2, 0, json!({ constraint: 2 }), Value::Null),
        None => models::alloc_metric(2, 0, 2, Value::Null, json!({"memory": 2})),
    };
    let failed: BTreeMap<String, Value> = groups
        .iter()
        .map(|g| (g.name.clone(), metric.clone()))
        .collect();
    let queued: BTreeMap<String, u64> = groups.iter().map(|g| (g.name.clone(), g.count)).collect();
    let blocked = EvalRecord {
        status: "blocked".into(),
        status_description: "created to place remaining allocations".into(),
        previous_eval: eval_id.to_string(),
        failed_tg_allocs: failed.clone(),
        class_eligibility: BTreeMap::from([("v1:emulator".to_string(), false)]),
        ..new_eval(job, "queued-allocs")
    };
    let blocked_id = blocked.id.clone();
    txn.insert_eval(blocked);
    complete(txn, eval_id, queued.clone());
    txn.update_eval(eval_id, |eval| {
        eval.blocked_eval = blocked_id;
        eval.failed_tg_allocs = failed;
    });
    let key = (job.namespace.clone(), job.id.clone());
    for (group, count) in queued {
        txn.update_group_summary(&key, &group, |s| s.queued = count);
    }
}

/// A new allocation of `group` on `node`, `pending`/`run`, not yet seen by its client.
fn new_alloc(
    job: &JobRecord,
    rendered_job: &Value,
    group: &GroupSpec,
    n: u64,
    eval_id: &str,
    node: &Node,
    previous: &str,
) -> AllocRecord {
    let tasks: serde_json::Map<String, Value> = group
        .tasks
        .iter()
        .map(|task| {
            let resources = json!({
                "Cpu": {"CpuShares": task.cpu},
                "Memory": {"MemoryMB": task.memory_mb, "MemoryMaxMB": 0},
                "Networks": null,
                "Devices": null,
            });
            (task.name.clone(), resources)
        })
        .collect();
    let now = now_nanos();
    AllocRecord {
        id: uuid::Uuid::new_v4().to_string(),
        namespace: job.namespace.clone(),
        eval_id: eval_id.to_string(),
        name: format!("{}.{}[{n}]", job.id, group.name),
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        job_id: job.id.clone(),
        job_type: job.job_type().to_string(),
        job_version: job.version,
        job_create_index: job.create_index,
        job: rendered_job.clone(),
        task_group: group.name.clone(),
        tasks: group.tasks.clone(),
        allocated_resources: json!({
            "Tasks": tasks,
            "Shared": {"DiskMB": 300, "Networks": null, "Ports": null},
        }),
        metrics: models::alloc_metric(2, 0, 0, Value::Null, Value::Null),
        desired_status: "run".into(),
        desired_description: String::new(),
        client_status: "pending".into(),
        client_description: String::new(),
        task_states: None,
        previous_allocation: previous.to_string(),
        next_allocation: String::new(),
        create_index: 0,
        modify_index: 0,
        alloc_modify_index: 0,
        create_time: now,
        modify_time: now,
    }
}

/// Processes a deregistration evaluation after one step: other open evaluations of the job are
/// canceled and its running allocations get `DesiredStatus: stop` (their clients then kill them).
pub(crate) fn schedule_deregistration(shared: &Arc<Shared>, key: JobKey, eval_id: Option<String>) {
    let task_shared = shared.clone();
    shared.spawn(async move {
        let shared = task_shared;
        shared.step().await;
        shared.write(|txn| stop_job_allocs(txn, &key, eval_id.as_deref()));
    });
}

fn stop_job_allocs(txn: &mut Txn, key: &JobKey, eval_id: Option<&str>) {
    let open_evals: Vec<String> = txn
        .store
        .job_evals(&key.0, &key.1)
        .filter(|eval| !eval.is_terminal() && Some(eval.id.as_str()) != eval_id)
        .map(|eval| eval.id.clone())
        .collect();
    for id in open_evals {
        txn.update_eval(&id, |eval| {
            eval.status = "canceled".into();
            eval.status_description = "evaluation was canceled by a job deregister".into();
        });
    }
    let running: Vec<String> = txn
        .store
        .job_allocs(&key.0, &key.1)
        .filter(|alloc| !alloc.is_terminal())
        .map(|alloc| alloc.id.clone())
        .collect();
    for id in &running {
        txn.update_alloc(id, |alloc| {
            alloc.desired_status = "stop".into();
            alloc.desired_description = "alloc not needed due to job update".into();
        });
    }
    let groups: Vec<String> = txn
        .store
        .jobs
        .get(key)
        .map(|job| job.summary.groups.keys().cloned().collect())
        .unwrap_or_default();
    for group in groups {
        txn.update_group_summary(key, &group, |s| s.queued = 0);
    }
    if let Some(eval_id) = eval_id {
        complete(txn, eval_id, BTreeMap::new());
    }
    txn.refresh_job_status(key);
}

/// The node of `alloc_id` is lost: a `node-update` evaluation is created, and one step later the
/// allocation is marked `lost` (desired `stop`, `NextAllocation` set) and replaced on the other node
/// by an allocation (with `PreviousAllocation`) that runs until stopped.
pub(crate) async fn lose_node(shared: &Arc<Shared>, alloc_id: &str) {
    let eval_id = shared.write(|txn| {
        let alloc = txn.store.allocs.get(alloc_id)?;
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        let node_id = alloc.node_id.clone();
        let job = txn.store.jobs.get(&key)?.clone();
        let index = txn.index();
        let eval = EvalRecord {
            node_id,
            node_modify_index: index,
            ..new_eval(&job, "node-update")
        };
        let id = eval.id.clone();
        txn.insert_eval(eval);
        Some(id)
    });
    let Some(eval_id) = eval_id else {
        return;
    };
    shared.step().await;
    let node = shared.nodes[1].clone();
    let replacement = shared.write(|txn| replace_lost(txn, alloc_id, &eval_id, &node));
    if let Some(replacement) = replacement {
        lifecycle::run(shared, replacement, Outcome::RunUntilStopped);
    }
}

fn replace_lost(txn: &mut Txn, alloc_id: &str, eval_id: &str, node: &Node) -> Option<String> {
    let lost = txn.store.allocs.get(alloc_id)?.clone();
    let key = (lost.namespace.clone(), lost.job_id.clone());
    let job = txn.store.jobs.get(&key).cloned();
    let group = job
        .as_ref()
        .and_then(|job| job.groups().into_iter().find(|g| g.name == lost.task_group));
    let replacement = match (&job, group) {
        (Some(job), Some(group)) if lost.desired_status == "run" && !job.stop => {
            let index = lost.name.rsplit('[').next().unwrap_or("0]");
            let n = index.trim_end_matches(']').parse().unwrap_or(0);
            let alloc = new_alloc(job, &lost.job, &group, n, eval_id, node, alloc_id);
            Some(alloc)
        }
        _ => None,
    };
    let replacement_id = replacement.as_ref().map(|a| a.id.clone());
    if let Some(alloc) = replacement {
        txn.insert_alloc(alloc);
    }
    txn.update_alloc(alloc_id, |alloc| {
        alloc.desired_status = "stop".into();
        alloc.desired_description = "alloc is lost since its node is down".into();
        alloc.client_status = "lost".into();
        alloc.next_allocation = replacement_id.clone().unwrap_or_default();
    });
    let queued = BTreeMap::from([(lost.task_group.clone(), 0)]);
    complete(txn, eval_id, queued);
    replacement_id
}

//! The emulated scheduler: it processes evaluations one lifecycle step after they are created,
//! placing allocations on the nodes where they are feasible (constraints, then free resources, as
//! Nomad's scheduler decides), blocking what fits no node until it does, stopping the allocations
//! of stopped jobs and replacing allocations lost with their node.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::control::Outcome;
use super::lifecycle;
use super::models;
use super::nodes::EmulatedNode;
use super::records::{AllocRecord, EvalRecord, GroupSpec, JobKey, JobRecord, TaskSpec};
use super::shared::{Node, Shared};
use super::state::{Store, Txn};
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

/// Processes a registration evaluation after one step: each allocation is placed on the first node
/// where it is feasible (and its client started with `outcome`); what fits no node is left to a
/// `blocked` evaluation, placed once it fits (when other allocations end). For
/// [`Outcome::NeverPlaced`] the evaluation is blocked whatever the nodes offer.
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
        let nodes = shared.nodes.clone();
        let (placed, blocked) = shared.write(|txn| place(txn, &nodes, &key, &eval_id, &outcome));
        for alloc_id in placed {
            lifecycle::run(&shared, alloc_id, outcome.clone());
        }
        if let Some(blocked_id) = blocked {
            unblock_when_it_fits(&shared, key, blocked_id, outcome).await;
        }
    });
}

/// Places the job's allocations; returns them and the blocked evaluation left for the rest.
fn place(
    txn: &mut Txn,
    nodes: &[Node],
    key: &JobKey,
    eval_id: &str,
    outcome: &Outcome,
) -> (Vec<String>, Option<String>) {
    if txn
        .store
        .evals
        .get(eval_id)
        .is_none_or(EvalRecord::is_terminal)
    {
        return (Vec::new(), None);
    }
    let job = txn.store.jobs.get(key).filter(|job| !job.stop).cloned();
    let busy = txn
        .store
        .job_allocs(&key.0, &key.1)
        .any(|alloc| !alloc.is_terminal());
    let Some(job) = job.filter(|_| !busy) else {
        complete(txn, eval_id, BTreeMap::new());
        return (Vec::new(), None);
    };
    let groups = job.groups();
    if *outcome == Outcome::NeverPlaced {
        let metric = match job.first_constraint() {
            Some(constraint) => {
                models::alloc_metric(2, 2, 0, json!({ constraint: 2 }), Value::Null)
            }
            None => models::alloc_metric(2, 0, 2, Value::Null, json!({"memory": 2})),
        };
        let failed = groups
            .iter()
            .map(|g| (g.name.clone(), (g.count, metric.clone())))
            .collect();
        let blocked = block(txn, &job, eval_id, failed);
        return (Vec::new(), Some(blocked));
    }
    let rendered = models::job(&job);
    let mut placed = Vec::new();
    let mut failed: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for group in &groups {
        for n in 0..group.count {
            match fit(txn, nodes, &job, group, None) {
                Ok(node) => {
                    let alloc = new_alloc(&job, &rendered, group, n, eval_id, node, "");
                    placed.push(alloc.id.clone());
                    txn.insert_alloc(alloc);
                }
                Err(metric) => {
                    failed
                        .entry(group.name.clone())
                        .and_modify(|(count, _)| *count += 1)
                        .or_insert((1, metric));
                }
            }
        }
    }
    if failed.is_empty() {
        let queued = groups.iter().map(|g| (g.name.clone(), 0)).collect();
        complete(txn, eval_id, queued);
        return (placed, None);
    }
    let blocked = block(txn, &job, eval_id, failed);
    (placed, Some(blocked))
}

/// Waits until the blocked evaluation's allocations fit (other allocations ended), then places
/// them under it and completes it, as Nomad's blocked-evaluation tracker re-runs a blocked
/// evaluation when capacity frees up (`nomad/blocked_evals.go`). A scripted
/// [`Outcome::NeverPlaced`] never fits.
async fn unblock_when_it_fits(
    shared: &Arc<Shared>,
    key: JobKey,
    blocked: String,
    outcome: Outcome,
) {
    if outcome == Outcome::NeverPlaced {
        return;
    }
    let nodes = shared.nodes.clone();
    loop {
        let ready = |store: &Store| {
            let Some(eval) = store.evals.get(&blocked) else {
                return true;
            };
            let Some(job) = store.jobs.get(&key) else {
                return true;
            };
            eval.status != "blocked"
                || job.stop
                || job
                    .groups()
                    .iter()
                    .all(|g| fit_in(store, &nodes, job, g, None).is_ok())
        };
        if !shared.wait_until(ready, None).await {
            return;
        }
        // Several blocked evaluations may wake for the same freed room: each places only if all
        // its allocations still fit, else waits again.
        let placed = shared.write(|txn| place_blocked(txn, &nodes, &key, &blocked));
        match placed {
            Some(placed) => {
                for alloc_id in placed {
                    lifecycle::run(shared, alloc_id, outcome.clone());
                }
                return;
            }
            None => continue,
        }
    }
}

/// Places the queued allocations of a blocked evaluation and completes it, if they all fit now
/// (`Some(nothing)` when the evaluation or its job is gone); `None` if they do not yet.
fn place_blocked(
    txn: &mut Txn,
    nodes: &[Node],
    key: &JobKey,
    blocked: &str,
) -> Option<Vec<String>> {
    let still_blocked = txn
        .store
        .evals
        .get(blocked)
        .is_some_and(|e| e.status == "blocked");
    let job = txn.store.jobs.get(key).filter(|j| !j.stop).cloned();
    let (true, Some(job)) = (still_blocked, job) else {
        return Some(Vec::new());
    };
    let groups = job.groups();
    let pending = |group: &GroupSpec| job.summary.groups.get(&group.name).map_or(0, |s| s.queued);
    let fits = groups
        .iter()
        .filter(|g| pending(g) > 0)
        .all(|g| fit(txn, nodes, &job, g, None).is_ok());
    if !fits {
        return None;
    }
    let rendered = models::job(&job);
    let mut placed = Vec::new();
    let mut queued = BTreeMap::new();
    for group in &groups {
        for n in 0..pending(group) {
            // Our groups have one allocation; a later one that no longer fits stays unplaced.
            if let Ok(node) = fit(txn, nodes, &job, group, None) {
                let alloc = new_alloc(&job, &rendered, group, n, blocked, node, "");
                placed.push(alloc.id.clone());
                txn.insert_alloc(alloc);
            }
        }
        txn.update_group_summary(key, &group.name, |s| s.queued = 0);
        queued.insert(group.name.clone(), 0);
    }
    complete(txn, blocked, queued);
    txn.refresh_job_status(key);
    Some(placed)
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

/// Some allocations fit no node: the evaluation completes with `FailedTGAllocs` (per group: how
/// many did not fit, and why) and a `blocked` evaluation takes its place; the job stays `pending`
/// with those allocations `Queued`. Returns the blocked evaluation.
fn block(
    txn: &mut Txn,
    job: &JobRecord,
    eval_id: &str,
    failed: BTreeMap<String, (u64, Value)>,
) -> String {
    let queued: BTreeMap<String, u64> = failed
        .iter()
        .map(|(group, (count, _))| (group.clone(), *count))
        .collect();
    let failed: BTreeMap<String, Value> = failed
        .into_iter()
        .map(|(group, (_, metric))| (group, metric))
        .collect();
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
        eval.blocked_eval = blocked_id.clone();
        eval.failed_tg_allocs = failed;
    });
    let key = (job.namespace.clone(), job.id.clone());
    for (group, count) in queued {
        txn.update_group_summary(&key, &group, |s| s.queued = count);
    }
    blocked_id
}

/// The first node where one allocation of `group` is feasible, else the `AllocMetric` saying why
/// none is.
fn fit<'n>(
    txn: &Txn,
    nodes: &'n [Node],
    job: &JobRecord,
    group: &GroupSpec,
    except: Option<&str>,
) -> Result<&'n Node, Value> {
    fit_in(&*txn.store, nodes, job, group, except)
}

/// [`fit`] on a store, the way Nomad's scheduler decides (`scheduler/feasible/feasible.go`,
/// `nomad/structs/funcs.go` `AllocsFit`): nodes outside the job's datacenters and node pool are not
/// candidates; a node failing a job, group or task constraint is filtered; a node whose free
/// resources (reported minus reserved minus the non-terminal allocations on it) are short in a
/// dimension (`cpu`, `cores`, `memory`, `disk`, checked in that order as in
/// `ComparableResources.Superset`) is exhausted. Nodes are tried in pool order (Nomad ranks them
/// by bin-packing score; any feasible node is a correct answer here).
fn fit_in<'n>(
    store: &Store,
    nodes: &'n [Node],
    job: &JobRecord,
    group: &GroupSpec,
    except: Option<&str>,
) -> Result<&'n Node, Value> {
    let constraints = constraints(job, &group.name);
    let datacenters: Vec<&str> = job.spec["Datacenters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let pool = job.spec["NodePool"].as_str().unwrap_or("default");
    let mut available: BTreeMap<String, u64> = BTreeMap::new();
    let mut filtered: BTreeMap<String, u64> = BTreeMap::new();
    let mut exhausted: BTreeMap<&str, u64> = BTreeMap::new();
    let mut evaluated = 0;
    let used = usage(store, nodes);
    for node in nodes.iter().filter(|n| Some(n.id.as_str()) != except) {
        let spec = &node.spec;
        let in_dc = datacenters.iter().any(|dc| glob(dc, &spec.datacenter));
        if !in_dc || !(pool == "all" || pool == spec.pool) {
            continue;
        }
        *available.entry(spec.datacenter.clone()).or_default() += 1;
        evaluated += 1;
        if let Some(failed) = constraints.iter().find(|c| !meets(c, spec)) {
            *filtered.entry(failed.to_string()).or_default() += 1;
            continue;
        }
        let taken = used.get(&node.id).copied().unwrap_or_default();
        match exhausted_dimension(node, taken, group) {
            None => return Ok(node),
            Some(dimension) => *exhausted.entry(dimension).or_default() += 1,
        }
    }
    let nodes_filtered = filtered.values().sum();
    let nodes_exhausted = exhausted.values().sum();
    let as_map = |m: Value| {
        if m.as_object().is_some_and(|o| o.is_empty()) {
            Value::Null
        } else {
            m
        }
    };
    let mut metric = models::alloc_metric(
        evaluated,
        nodes_filtered,
        nodes_exhausted,
        as_map(json!(filtered)),
        as_map(json!(exhausted)),
    );
    metric["NodesAvailable"] = json!(available);
    Err(metric)
}

/// A constraint: `LTarget Operand RTarget`, printed as Nomad prints it in `ConstraintFiltered`.
struct Constraint {
    left: String,
    operand: String,
    right: String,
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.left, self.operand, self.right)
    }
}

/// The constraints of the job, then of `group` and its tasks.
fn constraints(job: &JobRecord, group: &str) -> Vec<Constraint> {
    let read = |list: &Value| -> Vec<Constraint> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|c| Constraint {
                left: c["LTarget"].as_str().unwrap_or("").to_string(),
                operand: c["Operand"].as_str().unwrap_or("=").to_string(),
                right: c["RTarget"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    };
    let mut all = read(&job.spec["Constraints"]);
    let groups = job.spec["TaskGroups"].as_array().into_iter().flatten();
    for g in groups.filter(|g| g["Name"] == group) {
        all.extend(read(&g["Constraints"]));
        for task in g["Tasks"].as_array().into_iter().flatten() {
            all.extend(read(&task["Constraints"]));
        }
    }
    all
}

/// `resolveTarget` of `scheduler/feasible/feasible.go`: a literal, or a node field or attribute
/// (absent attributes are not found).
fn resolve(target: &str, node: &EmulatedNode) -> Option<String> {
    if !target.starts_with("${") {
        return Some(target.to_string());
    }
    match target {
        "${node.datacenter}" => Some(node.datacenter.clone()),
        "${node.unique.name}" => Some(node.name.clone()),
        "${node.class}" => Some(node.class.clone()),
        "${node.pool}" => Some(node.pool.clone()),
        _ => target
            .strip_prefix("${attr.")
            .and_then(|t| t.strip_suffix('}'))
            .and_then(|name| node.attributes.get(name).cloned()),
    }
}

/// `checkConstraint` for the operators the emulator knows; any other operator is not met.
fn meets(constraint: &Constraint, node: &EmulatedNode) -> bool {
    let left = resolve(&constraint.left, node);
    let right = resolve(&constraint.right, node);
    match constraint.operand.as_str() {
        "=" | "==" | "is" => left.is_some() && right.is_some() && left == right,
        "!=" | "not" => left != right,
        "is_set" => left.is_some(),
        "is_not_set" => left.is_none(),
        _ => false,
    }
}

/// `*`-globs as in a job's `Datacenters`.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            value.len() >= prefix.len()
                && value.starts_with(prefix)
                && (0..=value.len() - prefix.len()).any(|i| {
                    value.is_char_boundary(prefix.len() + i)
                        && glob(rest, &value[prefix.len() + i..])
                })
        }
    }
}

/// What the non-terminal allocations use on each node: CPU MHz, cores, memory MiB, disk MiB.
fn usage(store: &Store, nodes: &[Node]) -> BTreeMap<String, [i64; 4]> {
    let mhz: BTreeMap<&str, i64> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.spec.mhz_per_core))
        .collect();
    let mut used: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for alloc in store.allocs.values().filter(|a| !a.is_terminal()) {
        let per_core = mhz.get(alloc.node_id.as_str()).copied().unwrap_or(0);
        let entry = used.entry(alloc.node_id.clone()).or_default();
        for task in &alloc.tasks {
            entry[0] += task.cpu + task.cores * per_core;
            entry[1] += task.cores;
            entry[2] += task.memory_mb;
        }
        entry[3] += alloc.allocated_resources["Shared"]["DiskMB"]
            .as_i64()
            .unwrap_or(0);
    }
    used
}

/// The first dimension in which `node`, with `used` taken, lacks room for one allocation of
/// `group`, if any.
fn exhausted_dimension(node: &Node, used: [i64; 4], group: &GroupSpec) -> Option<&'static str> {
    let spec = &node.spec;
    let cpu_of = |t: &TaskSpec| t.cpu + t.cores * spec.mhz_per_core;
    let asked = (
        group.tasks.iter().map(cpu_of).sum::<i64>(),
        group.tasks.iter().map(|t| t.cores).sum::<i64>(),
        group.tasks.iter().map(|t| t.memory_mb).sum::<i64>(),
        group.disk_mb,
    );
    let free_cpu = spec.cores * spec.mhz_per_core - spec.reserved.cpu_mhz - used[0];
    if free_cpu < asked.0 {
        Some("cpu")
    } else if spec.cores - used[1] < asked.1 {
        Some("cores")
    } else if spec.memory_mb - spec.reserved.memory_mb - used[2] < asked.2 {
        Some("memory")
    } else if spec.disk_mb - spec.reserved.disk_mb - used[3] < asked.3 {
        Some("disk")
    } else {
        None
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
            let shares = task.cpu + task.cores * node.spec.mhz_per_core;
            let resources = json!({
                "Cpu": {"CpuShares": shares},
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
            "Shared": {"DiskMB": group.disk_mb, "Networks": null, "Ports": null},
        }),
        metrics: models::alloc_metric(1, 0, 0, Value::Null, Value::Null),
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
/// allocation is marked `lost` (desired `stop`, `NextAllocation` set) and replaced on another
/// feasible node by an allocation (with `PreviousAllocation`) that runs until stopped (none if no
/// other node fits).
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
    let nodes = shared.nodes.clone();
    let replacement = shared.write(|txn| replace_lost(txn, alloc_id, &eval_id, &nodes));
    if let Some(replacement) = replacement {
        lifecycle::run(shared, replacement, Outcome::RunUntilStopped);
    }
}

fn replace_lost(txn: &mut Txn, alloc_id: &str, eval_id: &str, nodes: &[Node]) -> Option<String> {
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
            fit(txn, nodes, job, &group, Some(&lost.node_id))
                .ok()
                .map(|node| new_alloc(job, &lost.job, &group, n, eval_id, node, alloc_id))
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

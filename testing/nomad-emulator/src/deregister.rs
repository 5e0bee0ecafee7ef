//! Stopping, purging and garbage collection: `DELETE /v1/job/<id>[?purge=true]`,
//! `POST /v1/allocation/<id>/stop` (which reschedules), `PUT /v1/system/gc`, and the GC the tests
//! trigger.

use std::sync::Arc;

use serde_json::json;

use super::http::{authorize, ApiRequest, Reply};
use super::lifecycle;
use super::records::{AllocRecord, JobKey};
use super::scheduler::{new_eval, schedule_deregistration};
use super::shared::Shared;
use super::state::Txn;
use super::wire::{now_nanos, parse_go_bool, parse_go_int};

/// Parses a boolean query parameter as the deregister handler does: an unparsable value is an
/// uncoded error, so 500.
fn bool_param(request: &ApiRequest, name: &str) -> Result<bool, Reply> {
    match request.param(name) {
        None => Ok(false),
        Some(text) => parse_go_bool(text).ok_or_else(|| {
            Reply::internal(format!(
                "Failed to parse value of {name:?} ({text}) as a bool: strconv.ParseBool: parsing {text:?}: invalid syntax"
            ))
        }),
    }
}

/// `DELETE /v1/job/<id>`: sets `Stop` (or with `purge=true` deletes the job) and, unless the job
/// is parameterized, creates a `job-deregister` evaluation that stops its allocations. An unknown
/// job is not an error: 200 with `EvalID: ""` and index 0.
pub(crate) fn deregister(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    let purge = match bool_param(request, "purge") {
        Ok(purge) => purge,
        Err(reply) => return reply,
    };
    for name in ["global", "no_shutdown_delay"] {
        if let Err(reply) = bool_param(request, name) {
            return reply;
        }
    }
    if let Some(text) = request.param("eval_priority") {
        if parse_go_int(text).is_none() {
            return Reply::internal(format!(
                "Failed to parse value of \"eval_priority\" ({text}) as a int: strconv.Atoi: parsing {text:?}: invalid syntax"
            ));
        }
    }
    if let Err(reply) = authorize(shared, request, None) {
        return reply;
    }
    let key = (request.namespace_or(None), id.to_string());
    let written = shared.write(|txn| stop_or_purge(txn, &key, purge));
    let Some((index, eval)) = written else {
        return deregister_reply("", 0, 0, 0);
    };
    if let Some(eval_id) = &eval {
        schedule_deregistration(shared, key, Some(eval_id.clone()));
    }
    let eval_index = if eval.is_some() { index } else { 0 };
    deregister_reply(eval.as_deref().unwrap_or(""), eval_index, index, index)
}

/// Returns the write index and the deregistration evaluation, if one was created.
fn stop_or_purge(txn: &mut Txn, key: &JobKey, purge: bool) -> Option<(u64, Option<String>)> {
    let mut job = txn.store.jobs.get(key)?.clone();
    let index = txn.index();
    let periodic = job.spec.get("Periodic").is_some_and(|p| p.is_object());
    let needs_eval = !job.is_parameterized() && !periodic;
    if purge {
        txn.delete_job(key);
    } else {
        job.stop = true;
        job.version += 1;
        job.job_modify_index = index;
        txn.put_job(job.clone());
    }
    if !needs_eval {
        return Some((index, None));
    }
    let eval = new_eval(&job, "job-deregister");
    let eval_id = eval.id.clone();
    txn.insert_eval(eval);
    Some((index, Some(eval_id)))
}

fn deregister_reply(eval_id: &str, eval_index: u64, job_modify_index: u64, index: u64) -> Reply {
    Reply::json(json!({
        "EvalID": eval_id,
        "EvalCreateIndex": eval_index,
        "JobModifyIndex": job_modify_index,
        "VolumeEvalID": "",
        "VolumeEvalIndex": 0,
        "Index": index,
        "LastContact": 0,
        "KnownLeader": false,
        "NextToken": "",
    }))
    .with_index(index)
}

/// `PUT|POST /v1/allocation/<id>/stop[?no_shutdown_delay=&reschedule=]`: `Alloc.Stop`
/// (`nomad/alloc_endpoint.go`) commits `DesiredTransition.Migrate` on the allocation with an
/// `alloc-stop` evaluation and answers `{EvalID, Index}`. The scheduler then migrates the
/// allocation like any non-terminal one marked for migration (`scheduler/reconciler/filters.go`,
/// whatever the job's reschedule policy): one step later it is stopped ("alloc is being migrated",
/// its client kills the task) and a replacement with `PreviousAllocation` is placed, which runs
/// the child's scripted outcome again: the same dispatch, a second time.
pub(crate) fn alloc_stop(shared: &Arc<Shared>, request: &ApiRequest, alloc_id: &str) -> Reply {
    for name in ["no_shutdown_delay", "reschedule"] {
        if let Some(text) = request.param(name) {
            if parse_go_bool(text).is_none() {
                return Reply::bad_request(format!(
                    "Failed to parse value of {name:?} ({text}) as a bool: strconv.ParseBool: parsing {text:?}: invalid syntax"
                ));
            }
        }
    }
    if let Err(reply) = authorize(shared, request, None) {
        return reply;
    }
    let written = shared.write(|txn| {
        let alloc = txn.store.allocs.get(alloc_id)?.clone();
        let job = txn
            .store
            .jobs
            .get(&(alloc.namespace.clone(), alloc.job_id.clone()))?
            .clone();
        let index = txn.index();
        let eval = new_eval(&job, "alloc-stop");
        let eval_id = eval.id.clone();
        txn.insert_eval(eval);
        Some((index, eval_id))
    });
    let Some((index, eval_id)) = written else {
        return Reply::text(axum::http::StatusCode::NOT_FOUND, "allocation not found");
    };
    let task_shared = shared.clone();
    let (alloc_id, migrate_eval) = (alloc_id.to_string(), eval_id.clone());
    shared.spawn(async move {
        let shared = task_shared;
        shared.step().await;
        let replacement = shared.write(|txn| migrate(txn, &alloc_id, &migrate_eval));
        if let Some((replacement, child)) = replacement {
            let outcome = shared.read(|store| {
                store
                    .dispatches
                    .iter()
                    .rev()
                    .find(|d| d.child_id == child)
                    .map(|d| (d.parent.clone(), d.meta.clone()))
            });
            let outcome = outcome
                .map(|(parent, meta)| shared.control().outcome_for(&parent, &meta))
                .unwrap_or_default();
            lifecycle::run(&shared, replacement, outcome);
        }
    });
    Reply::json(json!({"EvalID": eval_id, "Index": index})).with_index(index)
}

/// The scheduler's migration of `alloc_id`: a non-terminal allocation of a job that still runs is
/// stopped and replaced on its node; the evaluation completes either way. Returns the replacement
/// and its job.
fn migrate(txn: &mut Txn, alloc_id: &str, eval_id: &str) -> Option<(String, String)> {
    let old = txn.store.allocs.get(alloc_id).cloned();
    let job_stopped = old.as_ref().is_none_or(|alloc| {
        txn.store
            .jobs
            .get(&(alloc.namespace.clone(), alloc.job_id.clone()))
            .is_none_or(|job| job.stop)
    });
    let replacement = match old {
        Some(old) if !old.is_terminal() && !job_stopped => {
            let now = now_nanos();
            let replacement = AllocRecord {
                id: uuid::Uuid::new_v4().to_string(),
                eval_id: eval_id.to_string(),
                desired_status: "run".into(),
                desired_description: String::new(),
                client_status: "pending".into(),
                client_description: String::new(),
                task_states: None,
                previous_allocation: old.id.clone(),
                next_allocation: String::new(),
                create_time: now,
                modify_time: now,
                ..old.clone()
            };
            let id = replacement.id.clone();
            txn.insert_alloc(replacement);
            txn.update_alloc(alloc_id, |alloc| {
                alloc.desired_status = "stop".into();
                alloc.desired_description = "alloc is being migrated".into();
                alloc.next_allocation = id.clone();
            });
            Some((id, old.job_id))
        }
        _ => None,
    };
    let index = txn.index();
    txn.update_eval(eval_id, |eval| {
        eval.status = "complete".into();
        eval.snapshot_index = index;
    });
    replacement
}

/// `PUT /v1/system/gc`.
pub(crate) fn system_gc(shared: &Arc<Shared>, request: &ApiRequest) -> Reply {
    if let Err(reply) = authorize(shared, request, None) {
        return reply;
    }
    collect_garbage(shared);
    Reply::empty(axum::http::StatusCode::OK)
}

/// Removes every job that is `dead` with all its allocations finished on the client, with its
/// allocations and evaluations, and the finished allocations and evaluations of purged jobs.
/// Removing a child updates its parent's `Children` counts.
pub(crate) fn collect_garbage(shared: &Shared) {
    shared.write(|txn| {
        let store = &*txn.store;
        let dead: Vec<JobKey> = store
            .jobs
            .iter()
            .filter(|(_, job)| job.status == "dead")
            .filter(|(key, _)| {
                store
                    .job_allocs(&key.0, &key.1)
                    .all(|a| a.is_client_terminal())
            })
            .filter(|(key, _)| store.job_evals(&key.0, &key.1).all(|e| e.is_terminal()))
            .map(|(key, _)| key.clone())
            .collect();
        let live = |ns: &str, id: &str| {
            store.jobs.contains_key(&(ns.to_string(), id.to_string()))
                && !dead.iter().any(|(n, i)| n == ns && i == id)
        };
        let allocs: Vec<String> = store
            .allocs
            .values()
            .filter(|a| !live(&a.namespace, &a.job_id) && a.is_client_terminal())
            .map(|a| a.id.clone())
            .collect();
        let evals: Vec<String> = store
            .evals
            .values()
            .filter(|e| !live(&e.namespace, &e.job_id) && e.is_terminal())
            .map(|e| e.id.clone())
            .collect();
        if dead.is_empty() && allocs.is_empty() && evals.is_empty() {
            return;
        }
        let index = txn.index();
        for key in &dead {
            txn.delete_job(key);
        }
        for id in &allocs {
            txn.store.remove_alloc(id);
        }
        for id in &evals {
            txn.store.remove_eval(id);
        }
        if !allocs.is_empty() {
            txn.store.tables.allocs = index;
        }
        if !evals.is_empty() {
            txn.store.tables.evals = index;
        }
    });
}

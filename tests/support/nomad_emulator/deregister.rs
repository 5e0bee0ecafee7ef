//! Stopping, purging and garbage collection: `DELETE /v1/job/<id>[?purge=true]`,
//! `PUT /v1/system/gc`, and the GC the tests trigger.

use std::sync::Arc;

use serde_json::json;

use super::http::{authorize, ApiRequest, Reply};
use super::records::JobKey;
use super::scheduler::{new_eval, schedule_deregistration};
use super::shared::Shared;
use super::state::Txn;
use super::wire::{parse_go_bool, parse_go_int};

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

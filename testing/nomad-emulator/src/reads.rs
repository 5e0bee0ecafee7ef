//! The GET endpoints, each with the index Nomad's blocking query compares: the object's
//! `ModifyIndex` when it exists, else its table's index; table indexes for lists.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use super::blocking::{self, Answer};
use super::http::{ApiRequest, Reply};
use super::models;
use super::shared::Shared;
use super::wire::{parse_go_bool, parse_go_int};

fn not_found(index: u64, message: &str) -> Answer {
    Answer {
        index,
        reply: Reply::text(StatusCode::NOT_FOUND, message),
    }
}

fn found(index: u64, value: Value) -> Answer {
    Answer {
        index,
        reply: Reply::json(value),
    }
}

/// `GET /v1/job/<id>`.
pub(crate) async fn job(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    let key = (request.namespace_or(None), id.to_string());
    blocking::read(shared, request, |store| match store.jobs.get(&key) {
        Some(job) => found(job.modify_index, models::job(job)),
        None => not_found(store.tables.jobs, "job not found"),
    })
    .await
}

/// `GET /v1/job/<id>/summary`.
pub(crate) async fn job_summary(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    let key = (request.namespace_or(None), id.to_string());
    blocking::read(shared, request, |store| match store.jobs.get(&key) {
        Some(job) => found(job.summary.modify_index, models::job_summary(job)),
        None => not_found(store.tables.job_summary, "job not found"),
    })
    .await
}

/// `GET /v1/job/<id>/allocations[?all=true]`: `[]` for an unknown job.
pub(crate) async fn job_allocations(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    let namespace = request.namespace_or(None);
    let all = request.param("all").and_then(parse_go_bool) == Some(true);
    blocking::read(shared, request, |store| {
        let job = store.jobs.get(&(namespace.clone(), id.to_string()));
        let stubs: Vec<Value> = store
            .job_allocs(&namespace, id)
            .filter(|alloc| all || job.is_none_or(|j| j.create_index == alloc.job_create_index))
            .map(models::alloc_stub)
            .collect();
        found(store.tables.allocs, Value::Array(stubs))
    })
    .await
}

/// `GET /v1/job/<id>/evaluations`: `[]` for an unknown job.
pub(crate) async fn job_evaluations(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    let namespace = request.namespace_or(None);
    blocking::read(shared, request, |store| {
        let evals: Vec<Value> = store.job_evals(&namespace, id).map(models::eval).collect();
        found(store.tables.evals, Value::Array(evals))
    })
    .await
}

/// `GET /v1/jobs[?prefix=&namespace=*&per_page=&next_token=]`: `JobListStub`s by (namespace, ID).
pub(crate) async fn list_jobs(shared: &Arc<Shared>, request: &ApiRequest) -> Reply {
    let per_page = match request.param("per_page") {
        None => None,
        Some(text) => match parse_go_int(text) {
            Some(n) => Some(n.max(0) as usize).filter(|n| *n > 0),
            None => {
                return Reply::bad_request("Expect a number for `per_page` query string parameter")
            }
        },
    };
    let namespace = request.namespace_or(None);
    let prefix = request.param("prefix").unwrap_or("").to_string();
    let next_token = request.param("next_token").unwrap_or("").to_string();
    blocking::read(shared, request, |store| {
        let mut jobs = store
            .jobs
            .values()
            .filter(|job| namespace == "*" || job.namespace == namespace)
            .filter(|job| job.id.starts_with(&prefix))
            .filter(|job| format!("{}.{}", job.namespace, job.id) >= next_token);
        let page: Vec<Value> = jobs
            .by_ref()
            .take(per_page.unwrap_or(usize::MAX))
            .map(models::job_list_stub)
            .collect();
        let mut answer = found(
            store.tables.jobs.max(store.tables.job_summary),
            Value::Array(page),
        );
        if let Some(next) = jobs.next() {
            let token = format!("{}.{}", next.namespace, next.id);
            answer.reply.headers.push(("X-Nomad-NextToken", token));
        }
        answer
    })
    .await
}

/// `GET /v1/allocation/<id>`: the full allocation.
pub(crate) async fn allocation(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    blocking::read(shared, request, |store| match store.allocs.get(id) {
        Some(alloc) => found(alloc.modify_index, models::alloc(alloc)),
        None => not_found(store.tables.allocs, "alloc not found"),
    })
    .await
}

/// `GET /v1/evaluation/<id>`.
pub(crate) async fn evaluation(shared: &Arc<Shared>, request: &ApiRequest, id: &str) -> Reply {
    blocking::read(shared, request, |store| match store.evals.get(id) {
        Some(eval) => found(eval.modify_index, models::eval(eval)),
        None => not_found(store.tables.evals, "eval not found"),
    })
    .await
}

/// `GET /v1/evaluation/<id>/allocations`: stubs of the allocations the evaluation placed.
pub(crate) async fn evaluation_allocations(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    id: &str,
) -> Reply {
    blocking::read(shared, request, |store| {
        let stubs: Vec<Value> = store
            .allocs
            .values()
            .filter(|alloc| alloc.eval_id == id)
            .map(models::alloc_stub)
            .collect();
        found(store.tables.allocs, Value::Array(stubs))
    })
    .await
}

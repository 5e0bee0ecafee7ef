//! Routing as Nomad's agent does it: fixed paths, and under `/v1/job/` a suffix match on the
//! percent-decoded path whose remainder is the job ID (so `parent/dispatch-…` works escaped or
//! not). Writes accept PUT and POST; any other verb is 405 `Invalid method`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};

use super::http::{ApiRequest, Reply};
use super::shared::Shared;
use super::{deregister, dispatch, reads, register};

/// Sub-resources of `/v1/job/<id>/` that Nomad serves and the emulator does not model.
const UNMODELLED_JOB_SUFFIXES: &[&str] = &[
    "/evaluate",
    "/periodic/force",
    "/plan",
    "/versions",
    "/revert",
    "/deployments",
    "/deployment",
    "/stable",
    "/scale",
    "/services",
    "/submission",
    "/actions",
    "/action",
];

fn is_write(method: &Method) -> bool {
    method == Method::PUT || method == Method::POST
}

/// Answers a `/v1` request.
pub(crate) async fn route(shared: &Arc<Shared>, request: &ApiRequest) -> Reply {
    let path = request.path.as_str();
    let method = &request.method;
    if path == "/v1/jobs" {
        return match *method {
            Method::GET => reads::list_jobs(shared, request).await,
            _ if is_write(method) => register::register(shared, request, None),
            _ => Reply::invalid_method(),
        };
    }
    if path == "/v1/system/gc" {
        if !is_write(method) {
            return Reply::invalid_method();
        }
        return deregister::system_gc(shared, request);
    }
    if let Some(rest) = path.strip_prefix("/v1/job/") {
        return job_request(shared, request, rest).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/allocation/") {
        let tokens: Vec<&str> = rest.split('/').collect();
        return match tokens.as_slice() {
            [id] if *method == Method::GET => reads::allocation(shared, request, id).await,
            [_] => Reply::invalid_method(),
            [id, "stop"] if is_write(method) => deregister::alloc_stop(shared, request, id),
            [_, "stop"] => Reply::invalid_method(),
            [_, "services" | "checks"] => not_modelled("/v1/allocation/<id>/", tokens[1]),
            _ => Reply::text(StatusCode::NOT_FOUND, "resource not found"),
        };
    }
    if let Some(rest) = path.strip_prefix("/v1/evaluation/") {
        if *method != Method::GET {
            return Reply::invalid_method();
        }
        return match rest.strip_suffix("/allocations") {
            Some(id) => reads::evaluation_allocations(shared, request, id).await,
            None => reads::evaluation(shared, request, rest).await,
        };
    }
    Reply::empty(StatusCode::NOT_FOUND)
}

async fn job_request(shared: &Arc<Shared>, request: &ApiRequest, path: &str) -> Reply {
    let method = &request.method;
    if let Some(id) = path.strip_suffix("/dispatch/payload") {
        if !is_write(method) {
            return Reply::invalid_method();
        }
        return dispatch::dispatch(shared, request, id, true);
    }
    if let Some(id) = path.strip_suffix("/dispatch") {
        if !is_write(method) {
            return Reply::invalid_method();
        }
        return dispatch::dispatch(shared, request, id, false);
    }
    if let Some(id) = path.strip_suffix("/allocations") {
        if *method != Method::GET {
            return Reply::invalid_method();
        }
        return reads::job_allocations(shared, request, id).await;
    }
    if let Some(id) = path.strip_suffix("/evaluations") {
        if *method != Method::GET {
            return Reply::invalid_method();
        }
        return reads::job_evaluations(shared, request, id).await;
    }
    if let Some(id) = path.strip_suffix("/summary") {
        if *method != Method::GET {
            return Reply::invalid_method();
        }
        return reads::job_summary(shared, request, id).await;
    }
    if let Some(suffix) = UNMODELLED_JOB_SUFFIXES
        .iter()
        .find(|suffix| path.ends_with(*suffix))
    {
        return not_modelled("/v1/job/<id>", suffix);
    }
    match *method {
        Method::GET => reads::job(shared, request, path).await,
        Method::DELETE => deregister::deregister(shared, request, path),
        _ if is_write(method) => register::register(shared, request, Some(path)),
        _ => Reply::invalid_method(),
    }
}

/// 501 for an endpoint Nomad serves and the emulator does not model (so a test using it fails
/// visibly, also through the OpenAPI problems).
fn not_modelled(prefix: &str, rest: &str) -> Reply {
    Reply::text(
        StatusCode::NOT_IMPLEMENTED,
        format!("the Nomad emulator does not model {prefix}{rest}"),
    )
}

//! Job registration: `PUT|POST /v1/jobs` and `/v1/job/<id>`. The HTTP layer's 400s, the ACL
//! check, the spec checks of [`job_spec`](super::job_spec) (500 with multierror text),
//! `EnforceIndex`, and idempotent re-registration.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::decode::decode_body;
use super::http::{authorize, ApiRequest, Reply};
use super::job_spec::{canonicalize, validate};
use super::records::{JobRecord, JobSummary};
use super::scheduler::{new_eval, schedule_registration};
use super::shared::Shared;
use super::state::Txn;
use super::wire::{multierror, now_nanos};

/// Fields of a registered job that the server manages; whatever the client sends is ignored.
const SERVER_FIELDS: &[&str] = &[
    "Stop",
    "ParentID",
    "Dispatched",
    "DispatchIdempotencyToken",
    "Payload",
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
];

/// Registers a job; `path_id` is the ID of the `/v1/job/<id>` form.
pub(crate) fn register(shared: &Arc<Shared>, request: &ApiRequest, path_id: Option<&str>) -> Reply {
    let body = match decode_body(&request.body, "JobRegisterRequest", "api") {
        Ok(body) => body,
        Err(e) => return Reply::bad_request(e),
    };
    let Some(Value::Object(mut job)) = body.get("Job").cloned() else {
        return Reply::bad_request("Job must be specified");
    };
    let Some(id) = job.get("ID").and_then(Value::as_str).map(str::to_string) else {
        return Reply::bad_request("Job ID hasn't been provided");
    };
    if path_id.is_some_and(|p| p != id) {
        return Reply::bad_request("Job ID does not match name");
    }
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    let job_namespace = job
        .get("Namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    let namespace = request.namespace_or(text("Namespace").or(job_namespace.as_deref()));
    job.insert("Namespace".into(), json!(namespace));
    let region = text("Region")
        .or(request.param("region"))
        .or(job.get("Region").and_then(Value::as_str))
        .filter(|r| !r.is_empty())
        .unwrap_or("global")
        .to_string();
    job.insert("Region".into(), json!(region));
    if let Err(reply) = authorize(shared, request, text("SecretID")) {
        return reply;
    }
    let stop = job.get("Stop").and_then(Value::as_bool).unwrap_or(false);
    for field in SERVER_FIELDS {
        job.remove(*field);
    }
    canonicalize(&mut job);
    let errors = validate(&job);
    if !errors.is_empty() {
        return Reply::internal(multierror(&errors));
    }
    let enforce = body.get("EnforceIndex").and_then(Value::as_bool) == Some(true);
    let expected = body
        .get("JobModifyIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let submission = Submission {
        namespace,
        id,
        spec: job,
        stop,
        enforce_index: enforce.then_some(expected),
    };
    let outcome_meta = submission.meta();
    let outcome = shared.control().outcome_for(&submission.id, &outcome_meta);
    let key = (submission.namespace.clone(), submission.id.clone());
    match shared.write(|txn| store(txn, submission)) {
        Err(message) => Reply::internal(message),
        Ok(Stored {
            job_modify_index,
            eval,
        }) => {
            let (eval_id, eval_index) = match eval {
                Some(eval_id) => {
                    schedule_registration(shared, key, eval_id.clone(), outcome);
                    (eval_id, job_modify_index)
                }
                None => (String::new(), 0),
            };
            Reply::json(json!({
                "EvalID": eval_id,
                "EvalCreateIndex": eval_index,
                "JobModifyIndex": job_modify_index,
                "Warnings": "",
                "Index": job_modify_index,
                "LastContact": 0,
                "KnownLeader": false,
                "NextToken": "",
            }))
            .with_index(job_modify_index)
        }
    }
}

/// A validated registration.
struct Submission {
    namespace: String,
    id: String,
    spec: Map<String, Value>,
    stop: bool,
    enforce_index: Option<u64>,
}

impl Submission {
    fn meta(&self) -> std::collections::BTreeMap<String, String> {
        let meta = self.spec.get("Meta").and_then(Value::as_object);
        meta.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect()
    }
}

struct Stored {
    job_modify_index: u64,
    eval: Option<String>,
}

fn store(txn: &mut Txn, submission: Submission) -> Result<Stored, String> {
    let key = (submission.namespace.clone(), submission.id.clone());
    let existing = txn.store.jobs.get(&key).cloned();
    if let Some(expected) = submission.enforce_index {
        let prefix = "Enforcing job modify index";
        match &existing {
            Some(_) if expected == 0 => return Err(format!("{prefix} 0: job already exists")),
            Some(job) if job.job_modify_index != expected => {
                return Err(format!(
                    "{prefix} {expected}: job exists with conflicting job modify index: {}",
                    job.job_modify_index
                ))
            }
            None if expected != 0 => {
                return Err(format!("{prefix} {expected}: job does not exist"))
            }
            _ => {}
        }
    }
    if let Some(job) = &existing {
        if job.spec == submission.spec && job.stop == submission.stop {
            return Ok(Stored {
                job_modify_index: job.job_modify_index,
                eval: None,
            });
        }
    }
    let index = txn.index();
    let mut summary = existing
        .as_ref()
        .map(|job| job.summary.clone())
        .unwrap_or(JobSummary {
            create_index: index,
            ..JobSummary::default()
        });
    summary.modify_index = index;
    let mut job = JobRecord {
        namespace: submission.namespace,
        id: submission.id,
        spec: submission.spec,
        stop: submission.stop,
        parent_id: String::new(),
        dispatched: false,
        idempotency_token: String::new(),
        payload: Vec::new(),
        status: String::new(),
        version: existing.as_ref().map_or(0, |job| job.version + 1),
        submit_time: now_nanos(),
        create_index: existing.as_ref().map_or(index, |job| job.create_index),
        modify_index: index,
        job_modify_index: index,
        summary,
    };
    for group in job.groups() {
        job.summary.groups.entry(group.name).or_default();
    }
    let periodic = job.spec.get("Periodic").is_some_and(Value::is_object);
    let needs_eval = !job.is_parameterized() && !periodic && !job.stop;
    let eval = needs_eval.then(|| new_eval(&job, "job-register"));
    txn.put_job(job);
    let eval_id = eval.as_ref().map(|e| e.id.clone());
    if let Some(eval) = eval {
        txn.insert_eval(eval);
    }
    Ok(Stored {
        job_modify_index: index,
        eval: eval_id,
    })
}

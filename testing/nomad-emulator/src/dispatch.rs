//! Dispatch: `PUT|POST /v1/job/<id>/dispatch` (and `/dispatch/payload`, whose raw body is the
//! payload). The HTTP layer's 400s, the ACL check, Nomad's validation order and texts (500s),
//! idempotent replay by token, and the child job with its `pending` evaluation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::decode::decode_body;
use super::http::{authorize, ApiRequest, Reply};
use super::records::{JobRecord, JobSummary};
use super::scheduler::{new_eval, schedule_registration};
use super::shared::Shared;
use super::state::Txn;
use super::wire::{base64_decode, go_list, now_nanos};
use super::Dispatched;

/// Nomad's `DispatchPayloadSizeLimit`.
const PAYLOAD_LIMIT: usize = 16 * 1024;

/// A dispatch request after the HTTP layer.
struct DispatchRequest {
    namespace: String,
    parent: String,
    payload: Vec<u8>,
    meta: BTreeMap<String, String>,
    id_prefix: String,
    priority: i64,
    token: String,
}

/// What a valid dispatch did.
enum Dispatch {
    Created {
        child_id: String,
        eval_id: String,
        index: u64,
    },
    Replayed {
        child_id: String,
        create_index: u64,
        modify_index: u64,
    },
}

/// Dispatches `parent`; with `raw_payload` the body is the payload itself.
pub(crate) fn dispatch(
    shared: &Arc<Shared>,
    request: &ApiRequest,
    parent: &str,
    raw_payload: bool,
) -> Reply {
    let body = if raw_payload {
        Map::new()
    } else {
        match decode_body(&request.body, "JobDispatchRequest", "structs") {
            Ok(body) => body,
            Err(e) => return Reply::bad_request(e),
        }
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or("");
    if !text("JobID").is_empty() && text("JobID") != parent {
        return Reply::bad_request("Job ID does not match");
    }
    let payload = if raw_payload {
        request.body.to_vec()
    } else {
        base64_decode(text("Payload")).unwrap_or_default()
    };
    let meta = body.get("Meta").and_then(Value::as_object);
    let dispatch = DispatchRequest {
        namespace: request.namespace_or(Some(text("Namespace"))),
        parent: parent.to_string(),
        payload,
        meta: meta
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
        id_prefix: text("IdPrefixTemplate").to_string(),
        priority: body.get("Priority").and_then(Value::as_i64).unwrap_or(0),
        token: request
            .param("idempotency_token")
            .unwrap_or(text("IdempotencyToken"))
            .to_string(),
    };
    if let Err(reply) = authorize(shared, request, None) {
        return reply;
    }
    let (outcome, race) = {
        let mut control = shared.control();
        let race = control.race_next_dispatch && !dispatch.token.is_empty();
        if race {
            control.race_next_dispatch = false;
        }
        (control.outcome_for(parent, &dispatch.meta), race)
    };
    match shared.write(|txn| dispatch_child(txn, &dispatch)) {
        Err(message) => Reply::internal(message),
        Ok(Dispatch::Replayed {
            child_id,
            create_index,
            modify_index,
        }) => Reply::json(json!({
            "DispatchedJobID": child_id,
            "EvalID": "",
            "EvalCreateIndex": 0,
            "JobCreateIndex": create_index,
            "Index": modify_index,
        }))
        .with_index(modify_index),
        Ok(Dispatch::Created {
            child_id,
            eval_id,
            index,
        }) => {
            let key = (dispatch.namespace.clone(), child_id.clone());
            schedule_registration(shared, key, eval_id.clone(), outcome);
            // The race: the child above is the earlier request's; this request's own child and
            // evaluation were dropped at apply time, but their IDs are still answered.
            let (child_id, eval_id) = if race {
                let dropped = dispatched_id(&dispatch, now_nanos());
                (dropped, uuid::Uuid::new_v4().to_string())
            } else {
                (child_id, eval_id)
            };
            Reply::json(json!({
                "DispatchedJobID": child_id,
                "EvalID": eval_id,
                "EvalCreateIndex": index,
                "JobCreateIndex": index,
                "Index": index,
            }))
            .with_index(index)
        }
    }
}

/// Nomad's `Job.Dispatch` after the ACL check, in its order.
fn dispatch_child(txn: &mut Txn, request: &DispatchRequest) -> Result<Dispatch, String> {
    let key = (request.namespace.clone(), request.parent.clone());
    let Some(parent) = txn.store.jobs.get(&key).cloned() else {
        return Err("parameterized job not found".into());
    };
    if !parent.is_parameterized() {
        return Err(format!(
            "Specified job {:?} is not a parameterized job",
            request.parent
        ));
    }
    if parent.stop {
        return Err(format!("Specified job {:?} is stopped", request.parent));
    }
    validate(&parent, request)?;
    if !request.token.is_empty() {
        let existing =
            txn.store
                .child_with_token(&request.namespace, &request.parent, &request.token);
        if let Some(child) = existing {
            return Ok(Dispatch::Replayed {
                child_id: child.id.clone(),
                create_index: child.create_index,
                modify_index: child.modify_index,
            });
        }
    }
    let index = txn.index();
    let child = child_of(&parent, request, index);
    let child_id = child.id.clone();
    let eval = new_eval(&child, "job-register");
    let eval_id = eval.id.clone();
    txn.put_job(child);
    txn.insert_eval(eval);
    txn.store.dispatches.push(Dispatched {
        namespace: request.namespace.clone(),
        parent: request.parent.clone(),
        child_id: child_id.clone(),
        idempotency_token: Some(request.token.clone()).filter(|t| !t.is_empty()),
        meta: request.meta.clone(),
        payload: request.payload.clone(),
    });
    Ok(Dispatch::Created {
        child_id,
        eval_id,
        index,
    })
}

/// Payload, meta and priority checks (`validateDispatchRequest`). Key lists come out in random
/// order, as Nomad's map iteration prints them.
fn validate(parent: &JobRecord, request: &DispatchRequest) -> Result<(), String> {
    let config = &parent.spec["ParameterizedJob"];
    let has_payload = !request.payload.is_empty();
    match config["Payload"].as_str() {
        Some("required") if !has_payload => {
            return Err("Payload is not provided but required by parameterized job".into())
        }
        Some("forbidden") if has_payload => {
            return Err("Payload provided but forbidden by parameterized job".into())
        }
        _ => {}
    }
    if request.payload.len() > PAYLOAD_LIMIT {
        return Err(format!(
            "Payload exceeds maximum size; {} > {PAYLOAD_LIMIT}",
            request.payload.len()
        ));
    }
    let keys = |field: &str| -> Vec<String> {
        config[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    };
    let (required, optional) = (keys("MetaRequired"), keys("MetaOptional"));
    let mut unpermitted: Vec<String> = request
        .meta
        .keys()
        .filter(|k| !required.contains(k) && !optional.contains(k))
        .cloned()
        .collect();
    if !unpermitted.is_empty() {
        fastrand::shuffle(&mut unpermitted);
        return Err(format!(
            "Dispatch request included unpermitted metadata keys: {}",
            go_list(&unpermitted)
        ));
    }
    let mut missing: Vec<String> = required
        .into_iter()
        .filter(|k| !request.meta.contains_key(k))
        .collect();
    if !missing.is_empty() {
        fastrand::shuffle(&mut missing);
        return Err(format!(
            "Dispatch did not provide required meta keys: {}",
            go_list(&missing)
        ));
    }
    if request.priority != 0 && !(1..=100).contains(&request.priority) {
        return Err("dispatch job priority must be between [1, 100]".into());
    }
    Ok(())
}

/// A new child ID (`structs.DispatchedID`): `<parent>/dispatch-[<prefix>-]<unix seconds>-<8 hex>`.
fn dispatched_id(request: &DispatchRequest, now: i64) -> String {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let seconds = now / 1_000_000_000;
    if request.id_prefix.is_empty() {
        format!("{}/dispatch-{seconds}-{suffix}", request.parent)
    } else {
        format!(
            "{}/dispatch-{}-{seconds}-{suffix}",
            request.parent, request.id_prefix
        )
    }
}

/// The child: a copy of the parent with its own ID and name, the dispatch meta merged over the
/// job meta, the payload, the token and (when given) the priority.
fn child_of(parent: &JobRecord, request: &DispatchRequest, index: u64) -> JobRecord {
    let now = now_nanos();
    let id = dispatched_id(request, now);
    let mut spec = parent.spec.clone();
    spec.insert("ID".into(), json!(id));
    spec.insert("Name".into(), json!(id));
    let mut meta = spec
        .get("Meta")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.extend(request.meta.iter().map(|(k, v)| (k.clone(), json!(v))));
    spec.insert("Meta".into(), Value::Object(meta));
    if request.priority != 0 {
        spec.insert("Priority".into(), json!(request.priority));
    }
    let groups = parent
        .groups()
        .into_iter()
        .map(|g| (g.name, Default::default()))
        .collect();
    JobRecord {
        namespace: request.namespace.clone(),
        id,
        spec,
        stop: false,
        parent_id: request.parent.clone(),
        dispatched: true,
        idempotency_token: request.token.clone(),
        payload: request.payload.clone(),
        status: String::new(),
        version: parent.version,
        submit_time: now,
        create_index: index,
        modify_index: index,
        job_modify_index: index,
        summary: JobSummary {
            groups,
            create_index: index,
            modify_index: index,
            ..JobSummary::default()
        },
    }
}

//! The validator of Nomad HTTP requests and responses against Nomad's OpenAPI description, on the
//! samples of the Nomad API research note (nomad-api.md).

use serde_json::{json, Value};
use support::openapi::OpenApi;

const ALLOCATIONS_PATH: &str = "/v1/job/worker-small%2Fdispatch-1724240000-1a2b3c4d/allocations";

/// The register request of nomad-api.md §1.2.
fn register_request() -> Value {
    json!({"Job": {
      "ID": "worker-small", "Name": "worker-small", "Type": "batch",
      "Namespace": "default", "Datacenters": ["*"], "NodePool": "default", "Priority": 50,
      "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["task_id"], "MetaOptional": ["attempt"]},
      "Meta": {"app": "orchestrator"},
      "Constraints": [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "small"}],
      "TaskGroups": [{
        "Name": "run", "Count": 1,
        "RestartPolicy":    {"Attempts": 0, "Mode": "fail"},
        "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
        "Tasks": [{
          "Name": "worker", "Driver": "docker",
          "Config": {"image": "registry.example/worker:1.2.3",
                     "command": "/app/worker",
                     "args": ["--task-id", "${NOMAD_META_task_id}", "--input", "${NOMAD_TASK_DIR}/input.json"]},
          "Env": {"TASK_ID": "${NOMAD_META_task_id}"},
          "DispatchPayload": {"File": "input.json"},
          "Resources": {"CPU": 500, "MemoryMB": 512},
          "KillTimeout": 30000000000u64
        }]
      }]
    }})
}

/// A `TaskEvent` with every field, zero unless given (nomad-api.md §3.1).
fn event(kind: &str, time: u64, display: &str, details: Value, exit_code: i64) -> Value {
    json!({
        "Type": kind, "Time": time, "Message": "", "DisplayMessage": display, "Details": details,
        "FailsTask": false, "RestartReason": "", "SetupError": "", "DriverError": "",
        "ExitCode": exit_code, "Signal": 0, "KillTimeout": 0, "KillError": "", "KillReason": "",
        "StartDelay": 0, "DownloadError": "", "ValidationError": "", "DiskLimit": 0,
        "FailedSibling": "", "VaultError": "", "TaskSignalReason": "", "TaskSignal": "",
        "DriverMessage": "", "GenericSource": ""
    })
}

/// The `AllocListStub` list of nomad-api.md Appendix B, with the events in full.
fn allocations_response() -> Value {
    let mut not_restarting = event(
        "Not Restarting",
        1787306409100000000,
        "Policy allows no restarts",
        json!({"restart_reason": "Policy allows no restarts", "fails_task": "true"}),
        0,
    );
    not_restarting["FailsTask"] = json!(true);
    not_restarting["RestartReason"] = json!("Policy allows no restarts");
    json!([{
      "ID": "ed344e0a-7a9c-4d2e-9f0b-1c2d3e4f5a6b", "EvalID": "a9c5d1e2-0000-4000-8000-000000000001",
      "Name": "worker-small/dispatch-1724240000-1a2b3c4d.run[0]", "Namespace": "default",
      "NodeID": "cb1f0000-0000-4000-8000-000000000002", "NodeName": "n1",
      "JobID": "worker-small/dispatch-1724240000-1a2b3c4d", "JobType": "batch", "JobVersion": 0,
      "TaskGroup": "run", "DesiredStatus": "run", "DesiredDescription": "",
      "ClientStatus": "failed", "ClientDescription": "Failed tasks",
      "DesiredTransition": {"Migrate": null, "Reschedule": null, "ForceReschedule": null,
                            "NoShutdownDelay": null, "MigrateDisablePlacement": null},
      "TaskStates": {"worker": {"State": "dead", "Failed": true, "Restarts": 0,
        "LastRestart": "0001-01-01T00:00:00Z",
        "StartedAt": "2026-08-21T10:00:01.5Z", "FinishedAt": "2026-08-21T10:00:09.1Z", "Paused": "",
        "Events": [
          event("Received", 1787306400000000000, "Task received by client", json!({}), 0),
          event("Started", 1787306401500000000, "Task started by client", json!({}), 0),
          event("Terminated", 1787306409000000000, "Exit Code: 2",
                json!({"exit_code": "2", "signal": "0", "oom_killed": "false"}), 2),
          not_restarting,
        ]}},
      "DeploymentStatus": null, "FollowupEvalID": "", "NextAllocation": "",
      "RescheduleTracker": null, "PreemptedAllocations": null, "PreemptedByAllocation": "",
      "CreateIndex": 14, "ModifyIndex": 19,
      "CreateTime": 1787306400000000000u64, "ModifyTime": 1787306409200000000u64
    }])
}

/// The problems of a check that must fail, sorted.
fn problems(result: Result<(), Vec<String>>) -> Vec<String> {
    let mut problems = result.expect_err("the check finds problems");
    problems.sort();
    problems
}

#[test]
fn the_reference_register_request_passes() {
    let api = OpenApi::nomad();
    let body = register_request();
    assert_eq!(
        api.check_request("PUT", "/v1/jobs", "", Some(&body)),
        Ok(())
    );
    assert_eq!(
        api.check_request("POST", "/v1/jobs", "namespace=default", Some(&body)),
        Ok(())
    );
    assert_eq!(
        api.check_request("PUT", "/v1/job/worker-small", "", Some(&body)),
        Ok(())
    );
}

#[test]
fn a_misspelled_field_is_named_by_its_json_path() {
    let mut body = register_request();
    let policy = &mut body["Job"]["TaskGroups"][0]["RestartPolicy"];
    policy["Atempts"] = policy["Attempts"].take();
    policy.as_object_mut().unwrap().remove("Attempts");
    assert_eq!(
        problems(OpenApi::nomad().check_request("PUT", "/v1/jobs", "", Some(&body))),
        ["PUT /v1/jobs: $.Job.TaskGroups[0].RestartPolicy.Atempts: property not in schema RestartPolicy"]
    );
}

#[test]
fn a_miscased_field_is_named_with_a_hint() {
    let mut body = register_request();
    let resources = &mut body["Job"]["TaskGroups"][0]["Tasks"][0]["Resources"];
    resources.as_object_mut().unwrap().remove("MemoryMB");
    resources["memoryMB"] = json!(512);
    body["Job"]["id"] = json!("worker-small");
    assert_eq!(
        problems(OpenApi::nomad().check_request("POST", "/v1/jobs", "", Some(&body))),
        [
            "POST /v1/jobs: $.Job.TaskGroups[0].Tasks[0].Resources.memoryMB: property not in schema Resources (did you mean MemoryMB?)",
            "POST /v1/jobs: $.Job.id: property not in schema Job (did you mean ID?)",
        ]
    );
}

#[test]
fn a_string_duration_fails() {
    let mut body = register_request();
    body["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!("30s");
    assert_eq!(
        problems(OpenApi::nomad().check_request("PUT", "/v1/jobs", "", Some(&body))),
        [
            r#"PUT /v1/jobs: $.Job.TaskGroups[0].Tasks[0].KillTimeout: expected integer (int64), got string "30s""#
        ]
    );
}

#[test]
fn nulls_are_accepted_where_go_writes_them_and_not_for_primitive_items() {
    let api = OpenApi::nomad();
    let mut body = register_request();
    body["Job"]["Meta"] = Value::Null;
    body["Job"]["Priority"] = Value::Null;
    body["Job"]["Update"] = Value::Null;
    assert_eq!(
        api.check_request("PUT", "/v1/jobs", "", Some(&body)),
        Ok(())
    );

    body["Job"]["Datacenters"] = json!(["*", null]);
    body["Job"]["Meta"] = json!({"app": null});
    assert_eq!(
        problems(api.check_request("PUT", "/v1/jobs", "", Some(&body))),
        [
            "PUT /v1/jobs: $.Job.Datacenters[1]: expected string, got null",
            "PUT /v1/jobs: $.Job.Meta.app: expected string, got null",
        ]
    );
    assert_eq!(
        problems(api.check_request("PUT", "/v1/jobs", "", Some(&Value::Null))),
        ["PUT /v1/jobs: $: expected object, got null"]
    );
}

#[test]
fn a_dispatch_with_an_idempotency_token_passes() {
    let body = json!({"Meta": {"task_id": "123"}, "Payload": "eyJ0YXNrIjoxMjN9", "IdPrefixTemplate": "t123"});
    assert_eq!(
        OpenApi::nomad().check_request(
            "PUT",
            "/v1/job/worker-small/dispatch",
            "idempotency_token=task-123-attempt-1",
            Some(&body)
        ),
        Ok(())
    );
}

#[test]
fn a_dispatch_with_an_undeclared_query_parameter_fails() {
    assert_eq!(
        problems(OpenApi::nomad().check_request(
            "POST",
            "/v1/job/worker-small/dispatch",
            "idempotency_token=x&token=secret",
            Some(&json!({}))
        )),
        ["POST /v1/job/worker-small/dispatch: query parameter token is not declared for /job/{jobName}/dispatch"]
    );
}

#[test]
fn a_dispatch_needs_a_body_with_valid_base64() {
    let api = OpenApi::nomad();
    let path = "/v1/job/worker-small/dispatch";
    assert_eq!(
        problems(api.check_request("POST", path, "", None)),
        [format!(
            "POST {path}: /job/{{jobName}}/dispatch requires a request body, none was sent"
        )]
    );
    assert_eq!(
        problems(api.check_request(
            "POST",
            path,
            "",
            Some(&json!({"Payload": "eyJ0YXNrIjoxMjN9fQ"}))
        )),
        [format!(
            r#"POST {path}: $.Payload: expected standard base64 with padding, got string "eyJ0YXNrIjoxMjN9fQ""#
        )]
    );
}

#[test]
fn blocking_query_parameters_must_parse() {
    let api = OpenApi::nomad();
    assert_eq!(
        api.check_request(
            "GET",
            ALLOCATIONS_PATH,
            "index=12&wait=1m30s&all=true",
            None
        ),
        Ok(())
    );
    assert_eq!(
        problems(api.check_request("GET", ALLOCATIONS_PATH, "index=abc&wait=60s", None)),
        [format!(
            r#"GET {ALLOCATIONS_PATH}: query parameter index="abc" is not an integer"#
        )]
    );
    assert_eq!(
        problems(api.check_request("GET", ALLOCATIONS_PATH, "index=12&wait=60&all=yes", None)),
        [
            format!(r#"GET {ALLOCATIONS_PATH}: query parameter all="yes" is not a boolean"#),
            format!(
                r#"GET {ALLOCATIONS_PATH}: query parameter wait="60" is not a Go duration such as 60s"#
            ),
        ]
    );
}

#[test]
fn the_reference_allocations_response_passes() {
    assert_eq!(
        OpenApi::nomad().check_response(
            "GET",
            ALLOCATIONS_PATH,
            200,
            Some(&allocations_response())
        ),
        Ok(())
    );
}

#[test]
fn a_response_with_a_wrong_type_or_an_invented_field_fails() {
    let mut body = allocations_response();
    body[0]["TaskStates"]["worker"]["Events"][2]["ExitCode"] = json!("2");
    body[0]["TaskStates"]["worker"]["StartedAt"] = json!(1787306401500000000u64);
    body[0]["ExitStatus"] = json!(2);
    assert_eq!(
        problems(OpenApi::nomad().check_response("GET", ALLOCATIONS_PATH, 200, Some(&body))),
        [
            format!("GET {ALLOCATIONS_PATH}: $[0].ExitStatus: property not in schema AllocationListStub"),
            format!(r#"GET {ALLOCATIONS_PATH}: $[0].TaskStates.worker.Events[2].ExitCode: expected integer, got string "2""#),
            format!("GET {ALLOCATIONS_PATH}: $[0].TaskStates.worker.StartedAt: expected string (date-time), got number 1787306401500000000"),
        ]
    );
}

#[test]
fn job_ids_with_slashes_match_by_suffix_escaped_or_not() {
    let api = OpenApi::nomad();
    assert_eq!(
        api.check_request(
            "GET",
            "/v1/job/a/dispatch-1-x/allocations",
            "all=true",
            None
        ),
        Ok(())
    );
    assert_eq!(
        api.check_response(
            "GET",
            "/v1/job/a/dispatch-1-x/allocations",
            200,
            Some(&json!([]))
        ),
        Ok(())
    );
    assert_eq!(
        api.check_response(
            "GET",
            "/v1/job/a%2Fdispatch-1-x",
            200,
            Some(&json!({"ID": "a/dispatch-1-x", "Stop": false}))
        ),
        Ok(())
    );
    assert_eq!(
        problems(api.check_request("GET", "/v1/job/a/dispatch-1-x/dispatch", "", None)),
        ["GET /v1/job/a/dispatch-1-x/dispatch: method GET is not declared for /job/{jobName}/dispatch"]
    );
}

#[test]
fn unknown_paths_and_methods_fail() {
    let api = OpenApi::nomad();
    assert_eq!(
        problems(api.check_request("GET", "/v1/jobz", "", None)),
        ["GET /v1/jobz: no path of the description matches /jobz"]
    );
    assert_eq!(
        problems(api.check_response("GET", "/job/worker-small", 200, None)),
        ["GET /job/worker-small: the path is not under /v1/"]
    );
    assert_eq!(
        problems(api.check_request("PATCH", "/v1/jobs", "", None)),
        ["PATCH /v1/jobs: method PATCH is not declared for /jobs"]
    );
}

#[test]
fn the_reference_dispatch_response_passes() {
    let body = json!({"DispatchedJobID": "worker-small/dispatch-1724240000-1a2b3c4d",
                      "EvalID": "e5f55fac-0000-4000-8000-000000000003",
                      "EvalCreateIndex": 13, "JobCreateIndex": 13, "Index": 13});
    assert_eq!(
        OpenApi::nomad().check_response("PUT", "/v1/job/worker-small/dispatch", 200, Some(&body)),
        Ok(())
    );
}

#[test]
fn the_reference_register_response_passes() {
    let body = json!({"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 109, "Warnings": "",
                      "Index": 109, "LastContact": 0, "KnownLeader": false, "NextToken": ""});
    assert_eq!(
        OpenApi::nomad().check_response("PUT", "/v1/jobs", 200, Some(&body)),
        Ok(())
    );
}

#[test]
fn plain_text_errors_pass_and_undeclared_statuses_fail() {
    let api = OpenApi::nomad();
    let path = "/v1/job/worker-small";
    assert_eq!(api.check_response("GET", path, 404, None), Ok(()));
    assert_eq!(
        api.check_response("PUT", "/v1/job/worker-small/dispatch", 500, None),
        Ok(())
    );
    assert_eq!(
        problems(api.check_response("GET", path, 404, Some(&json!({"error": "job not found"})))),
        [format!(
            "GET {path}: status 404 is not declared for /job/{{jobName}} (with a JSON body)"
        )]
    );
    assert_eq!(
        problems(api.check_response("GET", path, 400, Some(&json!("Invalid index")))),
        [format!(
            "GET {path}: status 400 of /job/{{jobName}} declares no JSON body, but one was given"
        )]
    );
    assert_eq!(
        problems(api.check_response("GET", path, 201, None)),
        [format!(
            "GET {path}: status 201 is not declared for /job/{{jobName}}"
        )]
    );
    assert_eq!(
        problems(api.check_response("GET", path, 200, None)),
        [format!(
            "GET {path}: status 200 of /job/{{jobName}} has a JSON body, none was given"
        )]
    );
}

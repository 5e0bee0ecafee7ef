//! The Nomad emulator, exercised through plain HTTP as a Nomad client would: registration,
//! dispatch validation, child lifecycles, blocking queries, stop/purge/GC, ACLs and namespaces.
//! Every test ends by checking the OpenAPI problems the emulator collected.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};
use support::nomad_emulator::{EmulatorOptions, NomadEmulator, Outcome};
use tokio::time::Instant;

/// What Go's `url.PathEscape` escapes in the IDs used here.
const PATH_SEGMENT: &AsciiSet = &CONTROLS.add(b'/').add(b' ').add(b'?').add(b'#').add(b'%');

const PARENT: &str = "worker-small";

/// A response, read whole.
struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn index(&self) -> u64 {
        self.header("X-Nomad-Index").parse().unwrap()
    }

    /// Asserts a plain-text error.
    fn assert_error(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.text.as_str()),
            (status, body),
            "unexpected error"
        );
        assert_eq!(self.header("content-type"), "text/plain; charset=utf-8");
    }
}

/// A client of one emulator.
struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(emulator: &NomadEmulator) -> Self {
        Api {
            client: reqwest::Client::new(),
            base: emulator.url(),
            token: None,
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<String>) -> Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Nomad-Token", token);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the emulator answers");
        Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Response {
        self.send("GET", path, None).await
    }

    async fn put(&self, path: &str, body: &Value) -> Response {
        self.send("PUT", path, Some(body.to_string())).await
    }

    async fn post(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, Some(body.to_string())).await
    }

    async fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None).await
    }

    /// GETs `path` with blocking queries until `done` holds (10 s at most).
    async fn wait_for(&self, path: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut index = 0;
        loop {
            let response = self
                .get(&format!("{path}{separator}index={index}&wait=2s"))
                .await;
            assert_eq!(response.status, 200, "{path}: {}", response.text);
            let value = response.json();
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {value:#}"
            );
            index = response.index();
        }
    }

    /// Registers the standard parent (or `job` in its place) and returns the response.
    async fn register(&self, job: Value) -> Response {
        let response = self.put("/v1/jobs", &json!({ "Job": job })).await;
        assert_eq!(response.status, 200, "register: {}", response.text);
        response
    }

    /// Dispatches `parent` with `body` and returns the child ID.
    async fn dispatch(&self, parent: &str, body: Value) -> String {
        let response = self.put(&format!("/v1/job/{parent}/dispatch"), &body).await;
        assert_eq!(response.status, 200, "dispatch: {}", response.text);
        response.json()["DispatchedJobID"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the job is `dead` and returns its allocations.
    async fn wait_dead(&self, id: &str) -> Vec<Value> {
        self.wait_for(&job_path(id, ""), |job| job["Status"] == "dead")
            .await;
        let allocs = self.get(&job_path(id, "/allocations")).await.json();
        allocs.as_array().unwrap().clone()
    }
}

/// `/v1/job/<escaped id><suffix>`.
fn job_path(id: &str, suffix: &str) -> String {
    format!("/v1/job/{}{suffix}", utf8_percent_encode(id, PATH_SEGMENT))
}

/// The standard parameterized parent, as §1.2 of the reference sends it.
fn parent_job(id: &str) -> Value {
    json!({
        "ID": id, "Name": id, "Type": "batch", "Datacenters": ["*"],
        "ParameterizedJob": {"Payload": "optional", "MetaRequired": ["task_id"], "MetaOptional": ["attempt"]},
        "Meta": {"app": "orchestrator"},
        "Constraints": [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "worker"}],
        "TaskGroups": [{
            "Name": "run", "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "Tasks": [{
                "Name": "worker", "Driver": "raw_exec",
                "Config": {"command": "/opt/worker/bin/worker", "args": ["--task-id", "${NOMAD_META_task_id}"]},
                "DispatchPayload": {"File": "input.json"},
                "Resources": {"CPU": 500, "MemoryMB": 512},
                "KillTimeout": 30_000_000_000i64
            }]
        }]
    })
}

async fn start() -> (NomadEmulator, Api) {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    let api = Api::new(&emulator);
    (emulator, api)
}

async fn start_with_parent() -> (NomadEmulator, Api) {
    let (emulator, api) = start().await;
    api.register(parent_job(PARENT)).await;
    (emulator, api)
}

async fn assert_no_openapi_problems(emulator: &NomadEmulator) {
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "OpenAPI problems: {problems:#?}");
}

/// For tests that send malformed requests on purpose: the emulator's answers must still be clean.
async fn assert_only_request_problems(emulator: &NomadEmulator) {
    let problems = emulator.openapi_problems().await;
    let responses: Vec<&String> = problems
        .iter()
        .filter(|p| !p.starts_with("request: "))
        .collect();
    assert!(responses.is_empty(), "OpenAPI problems: {responses:#?}");
}

/// The task's events by type.
fn event_types(alloc: &Value, task: &str) -> Vec<String> {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap().to_string())
        .collect()
}

fn event<'a>(alloc: &'a Value, task: &str, kind: &str) -> &'a Value {
    alloc["TaskStates"][task]["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {alloc:#}"))
}

#[tokio::test]
async fn registration_applies_defaults_and_is_idempotent() {
    let (emulator, api) = start().await;
    let first = api.register(parent_job(PARENT)).await;
    let body = first.json();
    assert_eq!(body["EvalID"], "");
    assert_eq!(body["EvalCreateIndex"], 0);
    assert_eq!(body["Index"], body["JobModifyIndex"]);
    assert_eq!(first.index(), body["Index"].as_u64().unwrap());

    let again = api.register(parent_job(PARENT)).await;
    assert_eq!(again.json()["JobModifyIndex"], body["JobModifyIndex"]);
    assert_eq!(again.index(), first.index());

    let job = api.get(&job_path(PARENT, "")).await;
    assert_eq!(job.header("X-Nomad-KnownLeader"), "true");
    assert_eq!(job.header("X-Nomad-LastContact"), "0");
    let job = job.json();
    assert_eq!(job["Namespace"], "default");
    assert_eq!(job["NodePool"], "default");
    assert_eq!(job["Priority"], 50);
    assert_eq!(job["Status"], "running");
    assert_eq!(job["ParameterizedJob"]["Payload"], "optional");
    let restart = &job["TaskGroups"][0]["RestartPolicy"];
    assert_eq!(restart["Interval"], 86_400_000_000_000i64);
    assert_eq!(restart["Delay"], 15_000_000_000i64);
    assert_eq!(
        Some(job.clone()),
        emulator.registered_job("default", PARENT).await
    );

    let mut changed = parent_job(PARENT);
    changed["Meta"]["app"] = json!("other");
    let third = api
        .post(&job_path(PARENT, ""), &json!({ "Job": changed }))
        .await;
    assert_eq!(third.status, 200, "{}", third.text);
    assert!(third.index() > first.index());
    assert_eq!(api.get(&job_path(PARENT, "")).await.json()["Version"], 1);

    let mismatch = api
        .put("/v1/job/another-id", &json!({ "Job": parent_job(PARENT) }))
        .await;
    mismatch.assert_error(400, "Job ID does not match name");
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn registration_decodes_like_go_and_validates() {
    let (emulator, api) = start().await;
    let lenient = json!({"job": {
        "id": "lenient", "TYPE": "batch", "unknown": 1, "Meta": null,
        "parameterizedjob": {"metarequired": ["task_id"]},
        "taskgroups": [{"name": "run",
            "restartpolicy": {"attempts": 0, "mode": "fail"},
            "reschedulepolicy": {"attempts": 0},
            "tasks": [{"name": "worker", "driver": "raw_exec", "killtimeout": 1000}]}]
    }});
    let response = api.put("/v1/jobs", &lenient).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let job = emulator.registered_job("default", "lenient").await.unwrap();
    assert_eq!(job["Type"], "batch");
    assert_eq!(job["ParameterizedJob"]["MetaRequired"], json!(["task_id"]));
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["KillTimeout"], 1000);
    assert!(job.get("unknown").is_none());

    let mut no_operand = parent_job("no-operand");
    no_operand["Constraints"][0]["Operand"] = json!("");
    let response = api.put("/v1/jobs", &json!({ "Job": no_operand })).await;
    assert_eq!(response.status, 500);
    assert!(
        response.text.contains("Missing constraint operand"),
        "{}",
        response.text
    );

    let mut service = parent_job("service");
    service["Type"] = json!("service");
    service["TaskGroups"][0]["ReschedulePolicy"] = json!({"Attempts": 0, "Unlimited": false});
    let response = api.put("/v1/jobs", &json!({ "Job": service })).await;
    assert_eq!(response.status, 500);
    assert!(
        response
            .text
            .contains("Parameterized job can only be used with \"batch\""),
        "{}",
        response.text
    );

    let mut overlap = parent_job("overlap");
    overlap["ParameterizedJob"]["MetaOptional"] = json!(["task_id"]);
    let response = api.put("/v1/jobs", &json!({ "Job": overlap })).await;
    assert_eq!(response.status, 500);
    assert!(
        response
            .text
            .contains("Following keys exist in both: [task_id]"),
        "{}",
        response.text
    );

    let mut restarts = parent_job("restarts");
    restarts["TaskGroups"][0]
        .as_object_mut()
        .unwrap()
        .remove("RestartPolicy");
    let response = api.put("/v1/jobs", &json!({ "Job": restarts })).await;
    assert_eq!(response.status, 500);
    assert!(
        response.text.contains("does not model restarts"),
        "{}",
        response.text
    );

    let mut string_duration = parent_job("string-duration");
    string_duration["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = json!("30s");
    let response = api
        .put("/v1/jobs", &json!({ "Job": string_duration }))
        .await;
    assert_eq!(response.status, 400);
    assert!(
        response.text.contains("cannot unmarshal string"),
        "{}",
        response.text
    );

    api.send("PUT", "/v1/jobs", None)
        .await
        .assert_error(400, "Request body is empty");
    api.put("/v1/jobs", &json!({}))
        .await
        .assert_error(400, "Job must be specified");
    let malformed = api.send("PUT", "/v1/jobs", Some("{\"Job\":".into())).await;
    assert_eq!(malformed.status, 400);
    assert_only_request_problems(&emulator).await;
}

#[tokio::test]
async fn dispatch_validation_follows_nomads_order_and_texts() {
    let (emulator, api) = start_with_parent().await;
    let dispatch = |body: Option<String>| {
        let api = &api;
        async move { api.send("PUT", &job_path(PARENT, "/dispatch"), body).await }
    };
    // 0a, 0b, 0c, 0d: the HTTP layer.
    dispatch(None)
        .await
        .assert_error(400, "Request body is empty");
    dispatch(Some(json!({"Meta": {"task_id": 1}}).to_string()))
        .await
        .assert_error(
            400,
            "json: cannot unmarshal number into Go struct field JobDispatchRequest.Meta of type string",
        );
    dispatch(Some(json!({"Payload": "aGVs!G8="}).to_string()))
        .await
        .assert_error(400, "illegal base64 data at input byte 4");
    dispatch(Some(
        json!({"JobID": "other", "Meta": {"task_id": "1"}}).to_string(),
    ))
    .await
    .assert_error(400, "Job ID does not match");
    api.get(&job_path(PARENT, "/dispatch"))
        .await
        .assert_error(405, "Invalid method");
    // 3: unknown parent.
    api.put(
        "/v1/job/missing/dispatch",
        &json!({"Meta": {"task_id": "1"}}),
    )
    .await
    .assert_error(500, "parameterized job not found");
    // 4: not parameterized.
    let mut plain = parent_job("plain");
    plain.as_object_mut().unwrap().remove("ParameterizedJob");
    api.register(plain).await;
    api.put("/v1/job/plain/dispatch", &json!({}))
        .await
        .assert_error(500, "Specified job \"plain\" is not a parameterized job");
    // 5: stopped parent.
    api.register(parent_job("stopped")).await;
    assert_eq!(api.delete("/v1/job/stopped").await.status, 200);
    api.put(
        "/v1/job/stopped/dispatch",
        &json!({"Meta": {"task_id": "1"}}),
    )
    .await
    .assert_error(500, "Specified job \"stopped\" is stopped");
    // 6, 7: payload requirements.
    let mut required = parent_job("required");
    required["ParameterizedJob"]["Payload"] = json!("required");
    api.register(required).await;
    api.put(
        "/v1/job/required/dispatch",
        &json!({"Meta": {"task_id": "1"}}),
    )
    .await
    .assert_error(
        500,
        "Payload is not provided but required by parameterized job",
    );
    let mut forbidden = parent_job("forbidden");
    forbidden["ParameterizedJob"]["Payload"] = json!("forbidden");
    api.register(forbidden).await;
    api.put(
        "/v1/job/forbidden/dispatch",
        &json!({"Meta": {"task_id": "1"}, "Payload": "aGVsbG8="}),
    )
    .await
    .assert_error(500, "Payload provided but forbidden by parameterized job");
    // 8: the 16384-byte limit, on the decoded payload.
    let too_big = standard_base64(&vec![b'x'; 16_385]);
    dispatch(Some(
        json!({"Meta": {"task_id": "1"}, "Payload": too_big}).to_string(),
    ))
    .await
    .assert_error(500, "Payload exceeds maximum size; 16385 > 16384");
    // 9 wins over 10; key lists print as [a b] in any order.
    let response = dispatch(Some(json!({"Meta": {"x": "1", "y": "2"}}).to_string())).await;
    assert_eq!(response.status, 500);
    assert!(
        [
            "Dispatch request included unpermitted metadata keys: [x y]",
            "Dispatch request included unpermitted metadata keys: [y x]"
        ]
        .contains(&response.text.as_str()),
        "{}",
        response.text
    );
    // 10: a required key missing.
    dispatch(Some(json!({"Meta": {"attempt": "1"}}).to_string()))
        .await
        .assert_error(
            500,
            "Dispatch did not provide required meta keys: [task_id]",
        );
    // 11: priority.
    dispatch(Some(
        json!({"Meta": {"task_id": "1"}, "Priority": 101}).to_string(),
    ))
    .await
    .assert_error(500, "dispatch job priority must be between [1, 100]");
    assert!(emulator.dispatches().await.is_empty());

    let exactly = standard_base64(&vec![b'x'; 16_384]);
    api.dispatch(
        PARENT,
        json!({"Meta": {"task_id": "1"}, "Payload": exactly}),
    )
    .await;
    assert_eq!(emulator.dispatches().await[0].payload.len(), 16_384);
    assert_only_request_problems(&emulator).await;
}

/// Standard base64 with padding, for payloads.
fn standard_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn child_runs_to_completion() {
    let (emulator, api) = start_with_parent().await;
    let response = api
        .put(
            &job_path(PARENT, "/dispatch"),
            &json!({"Meta": {"task_id": "17"}, "Payload": "aGVsbG8=", "IdPrefixTemplate": "t17"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let body = response.json();
    let child = body["DispatchedJobID"].as_str().unwrap().to_string();
    assert_ne!(body["EvalID"], "");
    assert_eq!(body["EvalCreateIndex"], body["Index"]);
    assert_eq!(body["JobCreateIndex"], body["Index"]);
    let rest = child.strip_prefix("worker-small/dispatch-t17-").unwrap();
    let (seconds, suffix) = rest.split_once('-').unwrap();
    assert!(seconds.parse::<i64>().unwrap() > 1_700_000_000);
    assert!(suffix.len() == 8 && suffix.chars().all(|c| c.is_ascii_hexdigit()));

    let job = api.get(&job_path(&child, "")).await.json();
    assert_eq!(job["Payload"], "aGVsbG8=");
    assert_eq!(job["Meta"], json!({"app": "orchestrator", "task_id": "17"}));
    assert_eq!(job["ParentID"], PARENT);
    assert_eq!(job["Dispatched"], true);
    assert_eq!(job["Name"], child);

    let allocs = api.wait_dead(&child).await;
    assert_eq!(allocs.len(), 1);
    let alloc = &allocs[0];
    assert_eq!(alloc.as_object().unwrap().len(), 26, "{alloc:#}");
    assert_eq!(alloc["ClientStatus"], "complete");
    assert_eq!(alloc["ClientDescription"], "All tasks have completed");
    assert_eq!(alloc["DesiredStatus"], "run");
    assert_eq!(alloc["Name"], format!("{child}.run[0]"));
    let task = &alloc["TaskStates"]["worker"];
    assert_eq!(
        (task["State"].as_str(), task["Failed"].as_bool()),
        (Some("dead"), Some(false))
    );
    assert_ne!(task["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        event_types(alloc, "worker"),
        ["Received", "Task Setup", "Started", "Terminated"]
    );
    let terminated = event(alloc, "worker", "Terminated");
    assert_eq!(terminated.as_object().unwrap().len(), 24);
    assert_eq!(terminated["ExitCode"], 0);
    assert_eq!(terminated["Details"]["exit_code"], "0");
    assert_eq!(terminated["DisplayMessage"], "Exit Code: 0");

    let summary = api.get(&job_path(&child, "/summary")).await.json();
    assert_eq!(
        summary["Summary"]["run"],
        json!({"Queued": 0, "Complete": 1, "Failed": 0, "Running": 0, "Starting": 0, "Lost": 0, "Unknown": 0})
    );
    let parent = api.get(&job_path(PARENT, "/summary")).await.json();
    assert_eq!(
        parent["Children"],
        json!({"Pending": 0, "Running": 0, "Dead": 1})
    );

    let evals = api.get(&job_path(&child, "/evaluations")).await.json();
    assert_eq!(evals[0]["Status"], "complete");
    assert_eq!(evals[0]["TriggeredBy"], "job-register");
    assert!(
        evals[0].get("BlockedEval").is_none(),
        "zero fields are omitted"
    );

    let full = api
        .get(&format!("/v1/allocation/{}", alloc["ID"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(full["Job"]["Payload"], "aGVsbG8=");
    assert!(full.get("NextAllocation").is_none() && full.get("PreviousAllocation").is_none());

    let stubs = api
        .get("/v1/jobs?prefix=worker-small/dispatch-")
        .await
        .json();
    assert_eq!(stubs.as_array().unwrap().len(), 1);
    assert_eq!(stubs[0]["ParentID"], PARENT);
    assert_eq!(stubs[0]["Status"], "dead");
    assert_eq!(stubs[0]["JobSummary"]["Summary"]["run"]["Complete"], 1);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn child_exiting_2_fails_without_restarting() {
    let (emulator, api) = start_with_parent().await;
    let exit_2 = Outcome::Exit {
        code: 2,
        after: Duration::from_millis(20),
    };
    emulator.script(PARENT, &[("task_id", "2")], exit_2).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "2"}}))
        .await;
    let allocs = api.wait_dead(&child).await;
    let alloc = &allocs[0];
    assert_eq!(alloc["ClientStatus"], "failed");
    assert_eq!(alloc["ClientDescription"], "Failed tasks");
    assert_eq!(alloc["TaskStates"]["worker"]["Failed"], true);
    assert_eq!(
        event_types(alloc, "worker"),
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    assert_eq!(
        event(alloc, "worker", "Terminated")["Details"]["exit_code"],
        "2"
    );
    let not_restarting = event(alloc, "worker", "Not Restarting");
    assert_eq!(not_restarting["FailsTask"], true);
    assert_eq!(not_restarting["RestartReason"], "Policy allows no restarts");
    let summary = api.get(&job_path(&child, "/summary")).await.json();
    assert_eq!(summary["Summary"]["run"]["Failed"], 1);
    let parent = api.get(&job_path(PARENT, "/summary")).await.json();
    assert_eq!(parent["Children"]["Dead"], 1);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn setup_failure_has_no_terminated_event() {
    let (emulator, api) = start_with_parent().await;
    let failure = Outcome::SetupFailure {
        message: "failed to pull image".into(),
    };
    emulator.script(PARENT, &[], failure).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "3"}}))
        .await;
    let allocs = api.wait_dead(&child).await;
    let alloc = &allocs[0];
    assert_eq!(alloc["ClientStatus"], "failed");
    assert_eq!(
        event_types(alloc, "worker"),
        ["Received", "Task Setup", "Driver Failure", "Not Restarting"]
    );
    assert_eq!(
        event(alloc, "worker", "Driver Failure")["DriverError"],
        "failed to pull image"
    );
    assert_eq!(
        event(alloc, "worker", "Not Restarting")["RestartReason"],
        "Error was unrecoverable"
    );
    assert_eq!(
        alloc["TaskStates"]["worker"]["StartedAt"],
        "0001-01-01T00:00:00Z"
    );
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn never_placed_child_stays_pending_with_a_blocked_eval() {
    let (emulator, api) = start_with_parent().await;
    emulator.script(PARENT, &[], Outcome::NeverPlaced).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "4"}}))
        .await;
    let evals = api
        .wait_for(&job_path(&child, "/evaluations"), |evals| {
            evals
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["Status"] == "blocked")
        })
        .await;
    let blocked = evals
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Status"] == "blocked")
        .unwrap();
    let first = evals
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Status"] == "complete")
        .unwrap();
    assert_eq!(first["BlockedEval"], blocked["ID"]);
    assert_eq!(
        first["FailedTGAllocs"]["run"]["ConstraintFiltered"],
        json!({"${node.class} = worker": 2})
    );
    assert_eq!(blocked["PreviousEval"], first["ID"]);
    let job = api.get(&job_path(&child, "")).await.json();
    assert_eq!(job["Status"], "pending");
    assert_eq!(
        api.get(&job_path(&child, "/allocations")).await.json(),
        json!([])
    );
    let summary = api.get(&job_path(&child, "/summary")).await.json();
    assert_eq!(summary["Summary"]["run"]["Queued"], 1);

    assert_eq!(api.delete(&job_path(&child, "")).await.status, 200);
    api.wait_dead(&child).await;
    let evals = api.get(&job_path(&child, "/evaluations")).await.json();
    let blocked_now = evals
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ID"] == blocked["ID"])
        .unwrap();
    assert_eq!(blocked_now["Status"], "canceled");
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn lost_alloc_is_replaced_on_another_node() {
    let (emulator, api) = start_with_parent().await;
    let lost = Outcome::Lost {
        after: Duration::ZERO,
    };
    emulator.script(PARENT, &[], lost).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "5"}}))
        .await;
    let allocs = api
        .wait_for(&job_path(&child, "/allocations"), |allocs| {
            let allocs = allocs.as_array().unwrap();
            let status = |s: &str| allocs.iter().any(|a| a["ClientStatus"] == s);
            allocs.len() == 2 && status("lost") && status("running")
        })
        .await;
    let old = allocs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ClientStatus"] == "lost")
        .unwrap();
    let new = allocs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ClientStatus"] != "lost")
        .unwrap();
    assert_eq!(old["DesiredStatus"], "stop");
    assert_eq!(old["NextAllocation"], new["ID"]);
    assert_ne!(old["NodeID"], new["NodeID"]);
    assert!(new["CreateIndex"].as_u64() > old["CreateIndex"].as_u64());
    let full = api
        .get(&format!("/v1/allocation/{}", new["ID"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(full["PreviousAllocation"], old["ID"]);
    let job = api.get(&job_path(&child, "")).await.json();
    assert_eq!(job["Status"], "running");
    let summary = api.get(&job_path(&child, "/summary")).await.json();
    assert_eq!(summary["Summary"]["run"]["Lost"], 1);
    assert_eq!(summary["Summary"]["run"]["Running"], 1);

    api.delete(&job_path(&child, "")).await;
    let allocs = api.wait_dead(&child).await;
    api.wait_for(
        &format!("/v1/allocation/{}", new["ID"].as_str().unwrap()),
        |a| a["ClientStatus"] == "complete",
    )
    .await;
    assert_eq!(allocs.len(), 2);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn idempotency_tokens_replay_until_gc() {
    let (emulator, api) = start_with_parent().await;
    let meta = json!({"Meta": {"task_id": "6"}});
    let path = job_path(PARENT, "/dispatch?idempotency_token=task-6-attempt-1");
    let first = api.put(&path, &meta).await.json();
    let child = first["DispatchedJobID"].as_str().unwrap().to_string();
    let replay = api.put(&path, &meta).await;
    let replayed = replay.json();
    assert_eq!(replayed["DispatchedJobID"], child);
    assert_eq!(replayed["EvalID"], "");
    assert_eq!(replayed["EvalCreateIndex"], 0);
    assert_eq!(replayed["JobCreateIndex"], first["JobCreateIndex"]);
    let in_body = api
        .put(
            &job_path(PARENT, "/dispatch"),
            &json!({"Meta": {"task_id": "6"}, "IdempotencyToken": "task-6-attempt-1"}),
        )
        .await
        .json();
    assert_eq!(in_body["DispatchedJobID"], child);
    assert_eq!(emulator.dispatches().await.len(), 1);
    assert_eq!(
        emulator.dispatches().await[0].idempotency_token.as_deref(),
        Some("task-6-attempt-1")
    );

    api.wait_dead(&child).await;
    let replay_when_dead = api.put(&path, &meta).await.json();
    assert_eq!(replay_when_dead["DispatchedJobID"], child);
    emulator.gc().await;
    api.get(&job_path(&child, ""))
        .await
        .assert_error(404, "job not found");
    assert_eq!(
        api.get(&job_path(&child, "/allocations")).await.json(),
        json!([])
    );
    // Garbage collection keeps the collected child counted in `Children.Dead`
    // (nomad/state/state_store.go `DeleteJobTxn` only moves pending and running children there).
    let parent = api.get(&job_path(PARENT, "/summary")).await.json();
    assert_eq!(parent["Children"]["Dead"], 1);
    let after_gc = api.put(&path, &meta).await.json();
    assert_ne!(after_gc["DispatchedJobID"], child);
    assert_eq!(emulator.dispatches().await.len(), 2);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn stop_kills_the_task_and_purge_removes_the_job() {
    let (emulator, api) = start_with_parent().await;
    emulator.script(PARENT, &[], Outcome::RunUntilStopped).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "7"}}))
        .await;
    api.wait_for(&job_path(&child, "/allocations"), |allocs| {
        allocs[0]["ClientStatus"] == "running"
    })
    .await;
    let parent = api.get(&job_path(PARENT, "/summary")).await.json();
    assert_eq!(parent["Children"]["Running"], 1);

    let stop = api.delete(&job_path(&child, "")).await;
    assert_eq!(stop.status, 200);
    let stopped = stop.json();
    assert_ne!(stopped["EvalID"], "");
    assert_eq!(stopped["EvalCreateIndex"], stopped["Index"]);
    assert_eq!(stop.index(), stopped["Index"].as_u64().unwrap());
    let allocs = api
        .wait_for(&job_path(&child, "/allocations"), |allocs| {
            allocs[0]["ClientStatus"] == "complete"
        })
        .await;
    let alloc = &allocs[0];
    assert_eq!(alloc["DesiredStatus"], "stop");
    assert_eq!(
        event_types(alloc, "worker"),
        [
            "Received",
            "Task Setup",
            "Started",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    assert_eq!(
        event(alloc, "worker", "Killing")["DisplayMessage"],
        "Sent interrupt. Waiting 30s before force killing"
    );
    assert_eq!(alloc["TaskStates"]["worker"]["Failed"], false);
    let job = api.get(&job_path(&child, "")).await.json();
    assert_eq!(
        (job["Stop"].as_bool(), job["Status"].as_str()),
        (Some(true), Some("dead"))
    );
    let evals = api.get(&job_path(&child, "/evaluations")).await.json();
    assert!(evals
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["TriggeredBy"] == "job-deregister" && e["Status"] == "complete"));

    let purge = api.delete(&job_path(&child, "?purge=true")).await;
    assert_eq!(purge.status, 200);
    api.get(&job_path(&child, ""))
        .await
        .assert_error(404, "job not found");
    api.get(&job_path(&child, "/summary"))
        .await
        .assert_error(404, "job not found");

    let unknown = api.delete("/v1/job/never-registered").await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json()["EvalID"], "");
    api.delete(&job_path(PARENT, "?purge=maybe"))
        .await
        .assert_error(
            500,
            "Failed to parse value of \"purge\" (maybe) as a bool: strconv.ParseBool: parsing \"maybe\": invalid syntax",
        );
    assert_only_request_problems(&emulator).await;
}

#[tokio::test]
async fn blocking_queries_wake_on_change_and_time_out() {
    let (emulator, api) = start_with_parent().await;
    emulator.script(PARENT, &[], Outcome::RunUntilStopped).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "8"}}))
        .await;
    api.wait_for(&job_path(&child, "/allocations"), |allocs| {
        allocs[0]["ClientStatus"] == "running"
    })
    .await;
    let now = api.get(&job_path(&child, "/allocations")).await;
    let index = now.index();
    let path = job_path(&child, &format!("/allocations?index={index}&wait=20s"));
    let blocked = {
        let api = Api::new(&emulator);
        let path = path.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = api.get(&path).await;
            (response.status, response.index(), started.elapsed())
        })
    };
    // Nothing writes to the allocations until the DELETE below, so the query must still be
    // waiting once the emulator has received it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !emulator
        .requests()
        .await
        .iter()
        .any(|r| path.ends_with(&format!("{}?{}", r.path, r.query)))
    {
        assert!(
            Instant::now() < deadline,
            "the blocking query never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!blocked.is_finished());
    api.delete(&job_path(&child, "")).await;
    let (status, woke_at, elapsed) = blocked.await.unwrap();
    assert_eq!(status, 200);
    assert!(woke_at > index);
    assert!(elapsed < Duration::from_secs(20));

    let parent = api.get(&job_path(PARENT, "")).await;
    let started = Instant::now();
    let timed_out = api
        .get(&job_path(
            PARENT,
            &format!("?index={}&wait=50ms", parent.index()),
        ))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(timed_out.status, 200);
    assert_eq!(timed_out.index(), parent.index());

    api.get(&job_path(PARENT, "?index=1&wait=30"))
        .await
        .assert_error(400, "Invalid wait time");
    api.get(&job_path(PARENT, "?index=-1"))
        .await
        .assert_error(400, "Invalid index");
    assert_only_request_problems(&emulator).await;
}

#[tokio::test]
async fn routes_verbs_and_not_found_bodies() {
    let (emulator, api) = start_with_parent().await;
    api.send("PATCH", "/v1/jobs", Some("{}".into()))
        .await
        .assert_error(405, "Invalid method");
    api.delete(&job_path(PARENT, "/allocations"))
        .await
        .assert_error(405, "Invalid method");
    let missing = api.get("/v1/job/nope").await;
    missing.assert_error(404, "job not found");
    assert!(missing.index() >= 1);
    api.get("/v1/job/nope/summary")
        .await
        .assert_error(404, "job not found");
    assert_eq!(api.get("/v1/job/nope/allocations").await.json(), json!([]));
    assert_eq!(api.get("/v1/job/nope/evaluations").await.json(), json!([]));
    api.get("/v1/allocation/nope")
        .await
        .assert_error(404, "alloc not found");
    api.get("/v1/evaluation/nope")
        .await
        .assert_error(404, "eval not found");
    let json = api.get(&job_path(PARENT, "")).await;
    assert_eq!(json.header("content-type"), "application/json");

    let child = api
        .post(
            &job_path(PARENT, "/dispatch"),
            &json!({"Meta": {"task_id": "9"}}),
        )
        .await
        .json()["DispatchedJobID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(child.contains('/'));
    let escaped = api.get(&job_path(&child, "/summary")).await;
    let raw = api.get(&format!("/v1/job/{child}/summary")).await;
    assert_eq!((escaped.status, raw.status), (200, 200));
    assert_eq!(escaped.json()["JobID"], raw.json()["JobID"]);
    assert!(emulator
        .requests()
        .await
        .iter()
        .any(|r| r.path.contains("%2F") && r.path.ends_with("/summary")));
    assert_only_request_problems(&emulator).await;
}

#[tokio::test]
async fn acl_token_is_required_when_configured() {
    let options = EmulatorOptions {
        acl_token: Some("s3cret".into()),
        ..EmulatorOptions::default()
    };
    let emulator = NomadEmulator::start(options).await;
    let mut api = Api::new(&emulator);
    api.get("/v1/jobs")
        .await
        .assert_error(403, "Permission denied");
    api.token = Some("wrong".into());
    api.get("/v1/jobs")
        .await
        .assert_error(403, "ACL token not found");
    api.put("/v1/job/x/dispatch", &json!({}))
        .await
        .assert_error(403, "ACL token not found");
    api.token = Some("s3cret".into());
    api.register(parent_job(PARENT)).await;
    let bearer = reqwest::Client::new()
        .get(format!("{}/v1/jobs", emulator.url()))
        .header("Authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn namespaces_keep_jobs_apart() {
    let (emulator, api) = start_with_parent().await;
    let mut other = parent_job(PARENT);
    other["Meta"]["app"] = json!("other-namespace");
    let response = api
        .put("/v1/jobs?namespace=batch", &json!({ "Job": other }))
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let default = api.get(&job_path(PARENT, "")).await.json();
    let batch = api.get(&job_path(PARENT, "?namespace=batch")).await.json();
    assert_eq!(default["Meta"]["app"], "orchestrator");
    assert_eq!(batch["Meta"]["app"], "other-namespace");
    assert_eq!(batch["Namespace"], "batch");
    let response = api
        .put(
            &job_path(PARENT, "/dispatch?namespace=batch"),
            &json!({"Meta": {"task_id": "11"}}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    let child = response.json()["DispatchedJobID"]
        .as_str()
        .unwrap()
        .to_string();
    api.get(&job_path(&child, ""))
        .await
        .assert_error(404, "job not found");
    let in_batch = api.get(&job_path(&child, "?namespace=batch")).await.json();
    assert_eq!(in_batch["Meta"]["app"], "other-namespace");
    assert_eq!(emulator.dispatches().await[0].namespace, "batch");
    assert_only_request_problems(&emulator).await;
}

#[tokio::test]
async fn control_api_over_http_and_unavailability() {
    let (emulator, api) = start_with_parent().await;
    let script = json!({"parent": PARENT, "meta": {"task_id": "10"},
                        "outcome": {"type": "exit", "code": 3, "after_ms": 5}});
    let response = api.post("/_emulator/script", &script).await;
    assert_eq!(response.status, 200, "{}", response.text);
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "10"}}))
        .await;
    let allocs = api.wait_dead(&child).await;
    assert_eq!(event(&allocs[0], "worker", "Terminated")["ExitCode"], 3);
    let dispatches = api.get("/_emulator/dispatches").await.json();
    assert_eq!(dispatches[0]["child_id"], child);
    assert_eq!(dispatches[0]["meta"], json!({"task_id": "10"}));
    assert_eq!(api.post("/_emulator/gc", &json!({})).await.status, 200);
    api.get(&job_path(&child, ""))
        .await
        .assert_error(404, "job not found");
    assert_eq!(
        api.get("/_emulator/openapi-problems").await.json(),
        json!([])
    );

    emulator.set_unavailable(true).await;
    api.get("/v1/jobs")
        .await
        .assert_error(500, "No cluster leader");
    emulator.set_unavailable(false).await;
    assert_eq!(api.get("/v1/jobs").await.status, 200);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn enforce_index_listing_and_plain_batch_jobs() {
    let (emulator, api) = start_with_parent().await;
    let create_only = json!({"Job": parent_job(PARENT), "EnforceIndex": true, "JobModifyIndex": 0});
    api.put("/v1/jobs", &create_only)
        .await
        .assert_error(500, "Enforcing job modify index 0: job already exists");

    for id in ["p0", "p1"] {
        api.register(parent_job(id)).await;
    }
    let page = api.get("/v1/jobs?per_page=2").await;
    assert_eq!(page.header("X-Nomad-NextToken"), "default.worker-small");
    let ids: Vec<Value> = page
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["ID"].clone())
        .collect();
    assert_eq!(ids, [json!("p0"), json!("p1")]);
    let rest = api
        .get("/v1/jobs?namespace=*&next_token=default.worker-small")
        .await
        .json();
    assert_eq!(rest[0]["ID"], PARENT);
    assert_eq!(rest[0]["ParameterizedJob"], true);

    let mut plain = parent_job("plain");
    plain.as_object_mut().unwrap().remove("ParameterizedJob");
    let registered = api.register(plain).await.json();
    let eval_id = registered["EvalID"].as_str().unwrap().to_string();
    assert_eq!(registered["EvalCreateIndex"], registered["Index"]);
    let allocs = api.wait_dead("plain").await;
    assert_eq!(allocs[0]["ClientStatus"], "complete");
    let eval = api.get(&format!("/v1/evaluation/{eval_id}")).await.json();
    assert_eq!(eval["Status"], "complete");
    assert_eq!(eval["QueuedAllocations"], json!({"run": 0}));
    let placed = api
        .get(&format!("/v1/evaluation/{eval_id}/allocations"))
        .await
        .json();
    assert_eq!(placed[0]["ID"], allocs[0]["ID"]);
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn alloc_stop_migrates_the_allocation_to_a_replacement() {
    let (emulator, api) = start_with_parent().await;
    emulator.script(PARENT, &[], Outcome::RunUntilStopped).await;
    let child = api
        .dispatch(PARENT, json!({"Meta": {"task_id": "7"}}))
        .await;
    let allocs = api
        .wait_for(&job_path(&child, "/allocations"), |allocs| {
            allocs[0]["ClientStatus"] == "running"
        })
        .await;
    let first = allocs[0]["ID"].as_str().unwrap().to_string();
    let stopped = api
        .send("POST", &format!("/v1/allocation/{first}/stop"), None)
        .await;
    assert_eq!(stopped.status, 200, "{}", stopped.text);
    let answer = stopped.json();
    assert_eq!(answer["Index"].as_u64(), Some(stopped.index()));
    let eval = api
        .get(&format!(
            "/v1/evaluation/{}",
            answer["EvalID"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(eval["TriggeredBy"], "alloc-stop");
    // The old allocation is stopped and killed; the replacement runs the same dispatch again.
    let allocs = api
        .wait_for(&job_path(&child, "/allocations"), |allocs| {
            let allocs = allocs.as_array().unwrap();
            allocs.len() == 2
                && allocs
                    .iter()
                    .any(|a| a["ID"] == first.as_str() && a["ClientStatus"] == "complete")
                && allocs.iter().any(|a| a["ClientStatus"] == "running")
        })
        .await;
    let allocs = allocs.as_array().unwrap();
    let old = allocs.iter().find(|a| a["ID"] == first.as_str()).unwrap();
    let new = allocs.iter().find(|a| a["ID"] != first.as_str()).unwrap();
    assert_eq!(old["DesiredStatus"], "stop");
    assert_eq!(old["DesiredDescription"], "alloc is being migrated");
    assert_eq!(old["NextAllocation"], new["ID"]);
    let full = api
        .get(&format!("/v1/allocation/{}", new["ID"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(full["PreviousAllocation"], first.as_str());
    assert_eq!(
        api.get(&job_path(&child, "")).await.json()["Status"],
        "running"
    );
    assert_no_openapi_problems(&emulator).await;
}

#[tokio::test]
async fn a_raced_dispatch_answers_a_child_dropped_at_apply_time() {
    let (emulator, api) = start_with_parent().await;
    emulator.race_next_dispatch().await;
    let path = format!("/v1/job/{PARENT}/dispatch?idempotency_token=tok-1");
    let raced = api.put(&path, &json!({"Meta": {"task_id": "8"}})).await;
    assert_eq!(raced.status, 200, "{}", raced.text);
    let dropped = raced.json()["DispatchedJobID"]
        .as_str()
        .unwrap()
        .to_string();
    // The earlier request's child exists; the answered one never does.
    let created = emulator.dispatches().await;
    assert_eq!(created.len(), 1);
    assert_ne!(created[0].child_id, dropped);
    assert!(dropped.starts_with(&format!("{PARENT}/dispatch-")));
    api.get(&job_path(&dropped, ""))
        .await
        .assert_error(404, "job not found");
    // The race is played once: the same token now names the child that exists.
    let again = api.put(&path, &json!({"Meta": {"task_id": "8"}})).await;
    assert_eq!(
        again.json()["DispatchedJobID"],
        created[0].child_id.as_str()
    );
    assert_eq!(emulator.dispatches().await.len(), 1);
    assert_no_openapi_problems(&emulator).await;
}

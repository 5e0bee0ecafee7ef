//! Placement on the original system's VMs: the job files `swath nomad hcl` writes, registered in
//! the Nomad emulator whose nodes are the original's five worker VM kinds (with the memory and
//! disk a Nomad client on them reports, below nominal), place every flavor's attempt on a VM of
//! its own kind; a request no VM can hold stays blocked, and the attempt is stopped at the queued
//! timeout and retried.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use sqlx::PgPool;
use swath_domain::flavor::{default_flavors, WorkerFlavor};
use swath_domain::{Job, JobPriority, JobStatus, NewJob};
use swath_engine::attempt::failure::{AttemptBackoff, StatusTimeouts};
use swath_engine::config::Settings;
use swath_engine::db::claim::Claimant;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::executor::nomad::NomadExecutor;
use swath_engine::executor::Executor;
use swath_engine::pipeline::dispatch::dispatch_round;
use swath_engine::pipeline::track::track_round;

use support::jobspec::job_from_hcl;
use support::nomad_emulator::{
    original_vms, EmulatedNode, EmulatorOptions, NomadEmulator, Outcome,
};

/// How long a child may take to be placed (the emulator places within a few steps).
const PLACEMENT_DEADLINE: Duration = Duration::from_secs(20);

async fn send(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the emulator answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The VM kind (`attr.platform.aws.instance-type`) of the emulator node named `name`.
fn vm_kind(name: &str) -> String {
    let node = original_vms()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node named {name:?}"));
    node.attributes["platform.aws.instance-type"].clone()
}

/// The node an allocation of `child` was placed on, waiting for it (bounded).
async fn placed_on(emulator: &NomadEmulator, child: &str) -> String {
    let path = format!(
        "{}/v1/job/{}/allocations",
        emulator.url(),
        percent_encoding::utf8_percent_encode(child, percent_encoding::NON_ALPHANUMERIC)
    );
    let deadline = Instant::now() + PLACEMENT_DEADLINE;
    loop {
        let (status, allocs) = send(reqwest::Method::GET, path.clone(), None).await;
        assert_eq!(status, 200, "{allocs}");
        if let Some(alloc) = allocs.as_array().and_then(|a| a.first()) {
            return alloc["NodeName"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{child} was never placed: its evaluations say {}",
            send(
                reqwest::Method::GET,
                path.replace("/allocations", "/evaluations"),
                None
            )
            .await
            .1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_flavor_of_the_written_job_files_runs_on_its_own_vm_kind() {
    let out = tempfile::tempdir().unwrap();
    let written = support::swath(
        &["nomad", "hcl", "--out", out.path().to_str().unwrap()],
        None,
    );
    assert!(written.status.success(), "{}", support::stderr(&written));
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    let flavors = default_flavors();
    for flavor in &flavors {
        let file = out
            .path()
            .join(format!("swath-worker-{}.nomad.hcl", flavor.name));
        let job = job_from_hcl(&std::fs::read_to_string(&file).unwrap());
        let (status, answer) = send(
            reqwest::Method::PUT,
            format!("{}/v1/jobs", emulator.url()),
            Some(json!({ "Job": job })),
        )
        .await;
        assert_eq!(status, 200, "registering {}: {answer}", file.display());
    }
    let mut children = Vec::new();
    for (n, flavor) in flavors.iter().enumerate() {
        let parent = format!("swath-worker-{}", flavor.name);
        let payload = base64::engine::general_purpose::STANDARD.encode("secret");
        let (status, answer) = send(
            reqwest::Method::PUT,
            format!("{}/v1/job/{parent}/dispatch", emulator.url()),
            Some(json!({
                "Meta": {"job_id": n.to_string(), "attempt": "1", "job_type": "test_job"},
                "Payload": payload,
            })),
        )
        .await;
        assert_eq!(status, 200, "dispatching {parent}: {answer}");
        children.push((
            flavor.name.clone(),
            answer["DispatchedJobID"].as_str().unwrap().to_string(),
        ));
    }
    let mut placements = Vec::new();
    for (flavor, child) in &children {
        let node = placed_on(&emulator, child).await;
        placements.push((flavor.clone(), vm_kind(&node)));
    }
    let expected: Vec<_> = flavors
        .iter()
        .map(|f| (f.name.clone(), f.name.clone()))
        .collect();
    assert_eq!(placements, expected, "each flavor on its own kind of VM");
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "OpenAPI problems: {problems:#?}");
}

/// Dispatches one child of `parent` for `job_id`; returns its ID.
async fn dispatch_child(emulator: &NomadEmulator, parent: &str, job_id: &str) -> String {
    let payload = base64::engine::general_purpose::STANDARD.encode("secret");
    let (status, answer) = send(
        reqwest::Method::PUT,
        format!("{}/v1/job/{parent}/dispatch", emulator.url()),
        Some(json!({
            "Meta": {"job_id": job_id, "attempt": "1", "job_type": "test_job"},
            "Payload": payload,
        })),
    )
    .await;
    assert_eq!(status, 200, "dispatching {parent}: {answer}");
    answer["DispatchedJobID"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_child_waits_blocked_for_room_on_its_vm_kind_and_is_placed_once_it_frees() {
    // One eo1.xsmall: room for one 500 MiB attempt at a time.
    let emulator = NomadEmulator::start(EmulatorOptions {
        nodes: vec![EmulatedNode::vm("only", "eo1.xsmall", 1, 1, 8)],
        ..EmulatorOptions::default()
    })
    .await;
    let settings = Settings::default();
    let jobs = settings.nomad_config().unwrap().jobs;
    let flavor = &settings.flavors[0];
    let (status, answer) = send(
        reqwest::Method::PUT,
        format!("{}/v1/jobs", emulator.url()),
        Some(json!({ "Job": swath_engine::executor::nomad::spec::worker_job(&jobs, flavor) })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let parent = format!("swath-worker-{}", flavor.name);
    emulator
        .script(&parent, &[("job_id", "1")], Outcome::RunUntilStopped)
        .await;
    let first = dispatch_child(&emulator, &parent, "1").await;
    assert_eq!(placed_on(&emulator, &first).await, "only");
    let second = dispatch_child(&emulator, &parent, "2").await;
    let encoded = |id: &str| {
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let evals_url = format!("{}/v1/job/{}/evaluations", emulator.url(), encoded(&second));
    let deadline = Instant::now() + PLACEMENT_DEADLINE;
    let failed = loop {
        let (_, evals) = send(reqwest::Method::GET, evals_url.clone(), None).await;
        let blocked = evals
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["Status"] == "blocked");
        if let Some(blocked) = blocked {
            break blocked["FailedTGAllocs"]["attempt"].clone();
        }
        assert!(Instant::now() < deadline, "never blocked: {evals}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        failed["DimensionExhausted"],
        json!({"memory": 1}),
        "{failed}"
    );
    let (status, _) = send(
        reqwest::Method::DELETE,
        format!("{}/v1/job/{}", emulator.url(), encoded(&first)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(placed_on(&emulator, &second).await, "only");
    let problems = emulator.openapi_problems().await;
    assert!(problems.is_empty(), "OpenAPI problems: {problems:#?}");
}

/// A flavor asking more memory than any `hm.xlarge` reports (its 64 GiB nominal: a node offers
/// less).
fn too_large() -> WorkerFlavor {
    WorkerFlavor {
        name: "too-large".into(),
        cpus: 8,
        cpu_mhz: Some(50),
        memory_mb: 65536,
        placement_value: Some("hm.xlarge".into()),
        ..WorkerFlavor::default()
    }
}

fn no_backoff() -> AttemptBackoff {
    AttemptBackoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    }
}

#[sqlx::test(migrations = "../sql")]
async fn a_request_no_vm_can_hold_stays_blocked_then_times_out_queued(pool: PgPool) {
    let emulator = NomadEmulator::start(EmulatorOptions::default()).await;
    let settings = Settings {
        nomad_addr: emulator.url(),
        flavors: default_flavors().into_iter().chain([too_large()]).collect(),
        job_type_settings: [(
            "test_job".to_string(),
            toml::from_str("worker_flavor = \"too-large\"").unwrap(),
        )]
        .into(),
        job_types: vec!["test_job".into()],
        ..Settings::default()
    };
    let executor = NomadExecutor::new(settings.nomad_config().unwrap(), settings.flavors.clone());
    executor.register_all().await.unwrap();
    let mut new = NewJob::new("test_job", "too-large", 3);
    new.priority = JobPriority::Nrt;
    let id = insert_jobs(&pool, &[new]).await.unwrap()[0].id;
    let job = get_job(&pool, id).await.unwrap();
    support::drive(&pool, job, &[JobStatus::Configured, JobStatus::Ready]).await;
    let claimant = Claimant {
        service_id: uuid::Uuid::new_v4(),
        tag: json!({"host": "test", "name": "swath"}),
        lease: Duration::from_secs(600),
    };
    let report = dispatch_round(
        &pool,
        &executor,
        &settings.registry().unwrap(),
        &settings.job_types,
        &settings.flavors,
        &claimant,
        no_backoff(),
    )
    .await
    .unwrap();
    assert_eq!(report.queued, 1);
    let queued = get_job(&pool, id).await.unwrap();
    let child = queued
        .executor_ref
        .clone()
        .unwrap()
        .strip_prefix("nomad/")
        .unwrap()
        .to_string();
    // Nomad's answer: the hm.xlarge nodes are exhausted in memory; every other node is filtered
    // by the placement constraint.
    let evals_url = format!(
        "{}/v1/job/{}/evaluations",
        emulator.url(),
        percent_encoding::utf8_percent_encode(&child, percent_encoding::NON_ALPHANUMERIC)
    );
    let deadline = Instant::now() + PLACEMENT_DEADLINE;
    let failed = loop {
        let (_, evals) = send(reqwest::Method::GET, evals_url.clone(), None).await;
        let blocked = evals
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["Status"] == "blocked");
        if let Some(blocked) = blocked {
            break blocked["FailedTGAllocs"]["attempt"].clone();
        }
        assert!(Instant::now() < deadline, "never blocked: {evals}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        failed["DimensionExhausted"],
        json!({"memory": 2}),
        "{failed}"
    );
    assert_eq!(
        failed["ConstraintFiltered"],
        json!({"${attr.platform.aws.instance-type} = hm.xlarge": 8}),
        "{failed}"
    );
    // Within its queued timeout the attempt only waits; past it, it is stopped and retried.
    let patient = StatusTimeouts(vec![(JobStatus::Queued, Duration::from_secs(3600))]);
    let report = track_round(&pool, &executor, &patient, no_backoff(), None, 100)
        .await
        .unwrap();
    assert_eq!((report.tracked, report.settled), (1, 0));
    let short = StatusTimeouts(vec![(JobStatus::Queued, Duration::from_secs(1))]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after: Job = loop {
        track_round(&pool, &executor, &short, no_backoff(), None, 100)
            .await
            .unwrap();
        let job = get_job(&pool, id).await.unwrap();
        if job.status != JobStatus::Queued {
            break job;
        }
        assert!(Instant::now() < deadline, "still queued");
        tokio::time::timeout(Duration::from_millis(200), executor.changed())
            .await
            .ok();
    };
    assert_eq!((after.status, after.attempt), (JobStatus::Ready, 2));
    let error = support::last_external_error(&pool, id).await;
    assert_eq!(error.error_subtype.as_deref(), Some("timeout"));
    // The error says why: what Nomad's evaluation found (every other VM kind filtered out by the
    // flavor's constraint, the two hm.xlarge nodes short of memory).
    let message = error.error_message.unwrap_or_default();
    assert!(
        message
            .starts_with("no progress in queued for more than 1 s: Nomad cannot place it: group ")
            && message.contains("filtered by constraint")
            && message.contains("2 exhausted (memory: 2)"),
        "{message}"
    );
    let stopped = emulator.requests().await.iter().any(|r| {
        let path = percent_encoding::percent_decode_str(&r.path).decode_utf8_lossy();
        r.method == "DELETE" && path == format!("/v1/job/{child}")
    });
    assert!(stopped, "the blocked child is stopped");
}

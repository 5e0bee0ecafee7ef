//! An emulator of the Nomad HTTP API for the tests (`reference/nomad-api.md` §7): parameterized
//! batch jobs, dispatch, placement on a pool of client nodes by feasibility (the original's VMs by
//! default), the child lifecycle with scripted outcomes, blocking queries, stop, purge and GC,
//! served on a random loopback port.
//!
//! Every `/v1` request and response is checked against Nomad's OpenAPI description; the problems
//! are collected in [`NomadEmulator::openapi_problems`]. The test controls are also served over
//! HTTP under `/_emulator/` (see the `control` module).

mod blocking;
mod control;
mod decode;
mod deregister;
mod dispatch;
mod http;
mod job_spec;
mod lifecycle;
mod models;
mod nodes;
mod reads;
mod records;
mod register;
mod routes;
mod scheduler;
mod shared;
mod state;
mod task_events;
mod wire;

pub mod openapi;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use control::Outcome;
pub use nodes::{original_vms, EmulatedNode};
use shared::Shared;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// When set, every `/v1` request must carry this token (`X-Nomad-Token` or
    /// `Authorization: Bearer`), else 403.
    pub acl_token: Option<String>,
    /// The time between two lifecycle steps of a child (placement, client setup, start, ...).
    pub step: Duration,
    /// What plays the task of a child scripted [`Outcome::Worker`].
    pub runner: Option<WorkerRunner>,
    /// The client nodes allocations are placed on, by feasibility (constraints, then free CPU,
    /// memory and disk); by default [`original_vms`].
    pub nodes: Vec<EmulatedNode>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            acl_token: None,
            step: Duration::from_millis(10),
            runner: None,
            nodes: original_vms(),
        }
    }
}

/// Plays the task of a child as a worker would: it gets the dispatch (meta, payload) once the task
/// runs, and its answer is the task's exit code. The task is killed instead if the job is stopped
/// first.
#[derive(Clone)]
pub struct WorkerRunner(pub Arc<dyn Fn(Dispatched) -> TaskRun + Send + Sync>);

/// A task played by a [`WorkerRunner`]: its exit code, in time.
pub type TaskRun = Pin<Box<dyn Future<Output = i32> + Send>>;

impl std::fmt::Debug for WorkerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerRunner")
    }
}

/// A child created by a dispatch (idempotent replays create none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched {
    /// The namespace of parent and child.
    pub namespace: String,
    /// The parameterized job.
    pub parent: String,
    /// The child's job ID.
    pub child_id: String,
    /// The idempotency token, if the dispatch had one.
    pub idempotency_token: Option<String>,
    /// The dispatch request's meta.
    pub meta: BTreeMap<String, String>,
    /// The decoded payload.
    pub payload: Vec<u8>,
}

/// A `/v1` request the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The body, when it is JSON.
    pub body: Option<serde_json::Value>,
}

/// A running emulator; dropping it shuts the server and every lifecycle driver down.
pub struct NomadEmulator {
    shared: Arc<Shared>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for NomadEmulator {
    fn drop(&mut self) {
        self.shared.shutdown();
        self.server.abort();
    }
}

impl NomadEmulator {
    /// Starts an emulator on `127.0.0.1` with a random port.
    pub async fn start(options: EmulatorOptions) -> NomadEmulator {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port is free");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let shared = Arc::new(Shared::new(options));
        let app = axum::Router::new()
            .fallback(http::serve)
            .with_state(shared.clone());
        let stopping = shared.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move { stopping.shut_down().await };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        NomadEmulator {
            shared,
            url,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every dispatch to `parent` whose meta contains all of `meta` gets `outcome` (later rules
    /// win; without a rule a child exits 0 at once).
    pub async fn script(&self, parent: &str, meta: &[(&str, &str)], outcome: Outcome) {
        self.shared.control().script(parent, meta, outcome);
    }

    /// The children actually created, in order.
    pub async fn dispatches(&self) -> Vec<Dispatched> {
        self.shared.read(|store| store.dispatches.clone())
    }

    /// A registered job as stored (defaults applied), as `GET /v1/job/<id>` shows it.
    pub async fn registered_job(&self, namespace: &str, id: &str) -> Option<serde_json::Value> {
        let key = (namespace.to_string(), id.to_string());
        self.shared
            .read(|store| store.jobs.get(&key).map(models::job))
    }

    /// Every `/v1` request received, in order.
    pub async fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.control().requests.clone()
    }

    /// The OpenAPI problems found in the requests received and the responses sent.
    pub async fn openapi_problems(&self) -> Vec<String> {
        self.shared.control().problems.clone()
    }

    /// Garbage-collects now: dead jobs whose allocations have finished go, with their allocations
    /// and evaluations (so their GETs 404 and their idempotency tokens stop deduplicating).
    pub async fn gc(&self) {
        deregister::collect_garbage(&self.shared);
    }

    /// Plays the same-token race on the next dispatch with an idempotency token: an earlier request
    /// with that token (which timed out on the caller's side) commits first and creates the child;
    /// the request itself passes the endpoint's token check (the child is not yet in its
    /// snapshot), gets a new child ID, and is dropped at apply time (`nomad/fsm.go`
    /// `applyUpsertJob` bails out on a known token) while `Job.Dispatch` still answers the new ID
    /// (`nomad/job_endpoint.go`). The answer names a child that never exists.
    pub async fn race_next_dispatch(&self) {
        self.shared.control().race_next_dispatch = true;
    }

    /// While `down`, every `/v1` request gets 500 `No cluster leader`.
    pub async fn set_unavailable(&self, down: bool) {
        self.shared.control().unavailable = down;
    }
}

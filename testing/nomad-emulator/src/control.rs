//! Outcome scripting and the test-side control surface: what dispatched children do, the journal of
//! requests and OpenAPI problems, the "no leader" switch, and the same controls over HTTP under
//! `/_emulator/...`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::Reply;
use super::shared::Shared;
use super::wire::base64_encode;
use super::RecordedRequest;

/// What a dispatched child does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Runs for `after`, then exits with `code`: 0 completes, anything else fails the task through
    /// `Not Restarting`.
    Exit {
        /// The exit code.
        code: i32,
        /// How long the task runs (at least one lifecycle step).
        after: Duration,
    },
    /// Runs for `after`, then its process is killed by `signal` (the OOM killer, an operator's
    /// `kill`): raw_exec reports exit code `128 + signal` with `Signal` set, and the task fails
    /// through `Not Restarting`.
    Signalled {
        /// The signal number (9 for SIGKILL).
        signal: i32,
        /// How long the task runs (at least one lifecycle step).
        after: Duration,
    },
    /// The driver cannot start the task: `Driver Failure` then `Not Restarting`, no `Terminated`
    /// event, no exit code, allocation `failed`.
    SetupFailure {
        /// The driver error.
        message: String,
    },
    /// Never placed: the job stays `pending` with a `blocked` evaluation.
    NeverPlaced,
    /// Runs for `after`, then its node is lost: the allocation becomes `lost` and a replacement
    /// allocation runs until stopped.
    Lost {
        /// How long the first allocation runs.
        after: Duration,
    },
    /// Runs until the job is stopped.
    RunUntilStopped,
    /// Played by the emulator's [`super::WorkerRunner`] (exits 0 at once without one).
    Worker,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome::Exit {
            code: 0,
            after: Duration::ZERO,
        }
    }
}

/// "Dispatches to `parent` whose meta contains `meta` get `outcome`."
#[derive(Debug, Clone)]
struct Rule {
    parent: String,
    meta: Vec<(String, String)>,
    outcome: Outcome,
}

/// The scripted outcomes and the journal.
#[derive(Debug, Default)]
pub(crate) struct Control {
    rules: Vec<Rule>,
    /// Every `/v1` request received.
    pub requests: Vec<RecordedRequest>,
    /// OpenAPI problems in requests and responses.
    pub problems: Vec<String>,
    /// Answer every `/v1` request with 500 `No cluster leader`.
    pub unavailable: bool,
    /// Play the same-token race on the next dispatch that carries an idempotency token (see
    /// [`super::NomadEmulator::race_next_dispatch`]).
    pub race_next_dispatch: bool,
}

impl Control {
    /// Adds a rule; later rules win.
    pub fn script(&mut self, parent: &str, meta: &[(&str, &str)], outcome: Outcome) {
        self.rules.push(Rule {
            parent: parent.to_string(),
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            outcome,
        });
    }

    /// The outcome of a dispatch to `parent` with `meta`.
    pub fn outcome_for(&self, parent: &str, meta: &BTreeMap<String, String>) -> Outcome {
        self.rules
            .iter()
            .rev()
            .find(|rule| {
                rule.parent == parent
                    && rule
                        .meta
                        .iter()
                        .all(|(k, v)| meta.get(k).is_some_and(|m| m == v))
            })
            .map(|rule| rule.outcome.clone())
            .unwrap_or_default()
    }
}

/// An outcome as the HTTP control API takes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutcomeJson {
    Exit {
        code: i32,
        #[serde(default)]
        after_ms: u64,
    },
    SetupFailure {
        message: String,
    },
    Signalled {
        signal: i32,
        #[serde(default)]
        after_ms: u64,
    },
    NeverPlaced,
    Lost {
        #[serde(default)]
        after_ms: u64,
    },
    RunUntilStopped,
}

impl From<OutcomeJson> for Outcome {
    fn from(json: OutcomeJson) -> Self {
        match json {
            OutcomeJson::Exit { code, after_ms } => Outcome::Exit {
                code,
                after: Duration::from_millis(after_ms),
            },
            OutcomeJson::SetupFailure { message } => Outcome::SetupFailure { message },
            OutcomeJson::Signalled { signal, after_ms } => Outcome::Signalled {
                signal,
                after: Duration::from_millis(after_ms),
            },
            OutcomeJson::NeverPlaced => Outcome::NeverPlaced,
            OutcomeJson::Lost { after_ms } => Outcome::Lost {
                after: Duration::from_millis(after_ms),
            },
            OutcomeJson::RunUntilStopped => Outcome::RunUntilStopped,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ScriptRequest {
    parent: String,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    outcome: OutcomeJson,
}

#[derive(Debug, Deserialize)]
struct UnavailableRequest {
    down: bool,
}

/// Serves `/_emulator/<action>`:
/// * `POST script` `{"parent", "meta": {..}, "outcome": {"type": "exit", "code", "after_ms"} |
///   {"type": "setup_failure", "message"} | {"type": "signalled", "signal", "after_ms"} | {"type": "never_placed"} | {"type": "lost", "after_ms"} |
///   {"type": "run_until_stopped"}}`;
/// * `GET dispatches`, `GET requests`, `GET openapi-problems`;
/// * `POST gc`; `POST unavailable` `{"down": bool}`; `POST race-next-dispatch`.
pub(crate) fn handle(shared: &Arc<Shared>, method: &Method, action: &str, body: &[u8]) -> Reply {
    let bad_request = |e: serde_json::Error| Reply::text(StatusCode::BAD_REQUEST, e.to_string());
    match (method.as_str(), action) {
        ("POST", "script") => match serde_json::from_slice::<ScriptRequest>(body) {
            Ok(request) => {
                let meta: Vec<(&str, &str)> = request
                    .meta
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                shared
                    .control()
                    .script(&request.parent, &meta, request.outcome.into());
                Reply::json(json!({}))
            }
            Err(e) => bad_request(e),
        },
        ("GET", "dispatches") => {
            let dispatches = shared.read(|store| store.dispatches.clone());
            let list: Vec<Value> = dispatches
                .iter()
                .map(|d| {
                    json!({
                        "namespace": d.namespace, "parent": d.parent, "child_id": d.child_id,
                        "idempotency_token": d.idempotency_token, "meta": d.meta,
                        "payload": base64_encode(&d.payload),
                    })
                })
                .collect();
            Reply::json(json!(list))
        }
        ("GET", "requests") => {
            let requests = shared.control().requests.clone();
            let list: Vec<Value> = requests
                .iter()
                .map(|r| json!({"method": r.method, "path": r.path, "query": r.query, "body": r.body}))
                .collect();
            Reply::json(json!(list))
        }
        ("GET", "openapi-problems") => Reply::json(json!(shared.control().problems.clone())),
        ("POST", "gc") => {
            super::deregister::collect_garbage(shared);
            Reply::json(json!({}))
        }
        ("POST", "race-next-dispatch") => {
            shared.control().race_next_dispatch = true;
            Reply::json(json!({}))
        }
        ("POST", "unavailable") => match serde_json::from_slice::<UnavailableRequest>(body) {
            Ok(request) => {
                shared.control().unavailable = request.down;
                Reply::json(json!({}))
            }
            Err(e) => bad_request(e),
        },
        _ => Reply::empty(StatusCode::NOT_FOUND),
    }
}

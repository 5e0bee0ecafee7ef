//! The operator API under test: a spawned API with tokens, a client whose every answer is checked
//! against the API's own OpenAPI description, and jobs taken to a given status.

use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::config::{Secret, Settings};
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::status::{change_status_on, StatusChange};

use super::api::{spawn_api_full, TestApi};

/// The write token of the tests.
pub const WRITE: &str = "test-write-token-0123456789";
/// The read token of the tests that close reads.
pub const READ: &str = "test-read-token-0123456789";

/// Default settings with the write token.
pub fn settings() -> Settings {
    Settings {
        api_write_token: Some(Secret::new(WRITE)),
        ..Settings::default()
    }
}

/// An answer: status, headers and JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body, parsed as JSON.
    pub body: Value,
}

impl Answer {
    /// The error message of an error answer.
    pub fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error answer: {} {}", self.status, self.body))
    }
}

/// A running API and a client for it.
pub struct Operator {
    /// The API.
    pub api: TestApi,
    http: reqwest::Client,
}

/// A request body.
pub enum Body<'a> {
    /// None.
    Empty,
    /// JSON.
    Json(&'a Value),
    /// Raw bytes with a content type.
    Raw(&'a str, &'a [u8]),
}

impl Operator {
    /// The API over `pool` with `settings` and an optional executor.
    pub async fn start(
        pool: &PgPool,
        settings: &Settings,
        executor: Option<std::sync::Arc<dyn swath_engine::executor::Executor>>,
    ) -> Operator {
        Operator {
            api: spawn_api_full(pool, settings, executor).await,
            http: reqwest::Client::new(),
        }
    }

    /// The API over `pool` with the tests' write token.
    pub async fn with_write_token(pool: &PgPool) -> Operator {
        Operator::start(pool, &settings(), None).await
    }

    /// Sends a request to `path` (relative to `/api/v1`, query included) with `token`, and
    /// returns the answer, which must be JSON. A documented path's answer must match the
    /// description (status declared, body valid).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body<'_>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::Empty => request,
            Body::Json(v) => request.json(v),
            Body::Raw(content_type, bytes) => request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes.to_vec()),
        };
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: {status} with a body that is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let wire_path = format!("/api/v1{}", path.split('?').next().unwrap_or(path));
        let doc = super::openapi::swath();
        if let Err(problems) = doc.check_response(method.as_str(), &wire_path, status, Some(&body))
        {
            // Paths and methods the description does not declare (unknown routes, empty path
            // segments) get a JSON client error.
            let undocumented = problems.iter().all(|p| {
                p.contains("no path of the description matches")
                    || p.contains("is not declared for")
            });
            assert!(
                undocumented && (400..500).contains(&status) && body["error"].is_string(),
                "{method} {path}: the answer does not match the description:\n{}\n{body:#}",
                problems.join("\n")
            );
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    /// `GET path` without a token.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, Body::Empty).await
    }

    /// `POST path` with the write token and a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(WRITE), Body::Json(body))
            .await
    }

    /// `POST path` with the write token and no body.
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.call(Method::POST, path, Some(WRITE), Body::Empty)
            .await
    }
}

/// The nominal flow, from `initialized`.
pub const FLOW: [JobStatus; 12] = [
    JobStatus::Initialized,
    JobStatus::Configured,
    JobStatus::Ready,
    JobStatus::Queued,
    JobStatus::Started,
    JobStatus::PreProcessing,
    JobStatus::Processing,
    JobStatus::PostProcessing,
    JobStatus::Processed,
    JobStatus::StartPublication,
    JobStatus::Published,
    JobStatus::Done,
];

/// A new `test_job` named `name` (optionally attached to `parent`, or spawned by `spawned_by`).
pub async fn test_job(
    pool: &PgPool,
    name: &str,
    parent: Option<i64>,
    spawned_by: Option<i64>,
) -> Job {
    let mut new = NewJob::new("test_job", name, 3);
    new.product_id = Some(format!("P-{name}"));
    new.tile_id = Some("32TLR".into());
    new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
    new.params = serde_json::json!({"product": name, "mission": "S2"});
    new.parent_id = parent;
    new.spawned_by = spawned_by;
    let inserted = insert_jobs(pool, &[new]).await.expect("insert");
    get_job(pool, inserted[0].id).await.expect("read back")
}

/// `job` moved along the nominal flow up to `target` (which must be on it), or, for an error or
/// `cancelled`, moved there from where it is.
pub async fn move_to(pool: &PgPool, job: Job, target: JobStatus) -> Job {
    let mut job = job;
    if !FLOW.contains(&target) {
        let change = StatusChange::of(&job, target).error("test", format!("test: {target}"));
        return change_status_on(pool, &change)
            .await
            .unwrap_or_else(|e| panic!("{} -> {target}: {e}", job.status));
    }
    let from = FLOW
        .iter()
        .position(|s| *s == job.status)
        .expect("on the flow");
    let to = FLOW.iter().position(|s| *s == target).expect("on the flow");
    for &next in &FLOW[from + 1..=to] {
        job = change_status_on(pool, &StatusChange::of(&job, next))
            .await
            .unwrap_or_else(|e| panic!("{} -> {next}: {e}", job.status));
    }
    job
}

/// Job `id` as it is now.
pub async fn reload(pool: &PgPool, id: i64) -> Job {
    get_job(pool, id).await.expect("the job exists")
}

/// Whether job `id` waits for its children.
pub async fn awaiting(pool: &PgPool, id: i64) -> bool {
    swath_engine::db::chaining::awaiting_children(pool, id)
        .await
        .expect("the job exists")
}

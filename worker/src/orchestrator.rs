//! The worker's side of the worker protocol: fetch the attempt's task, report statuses and the
//! result, each request authenticated by the attempt's token.
//!
//! Requests that fail for a reason that may pass (connection refused or reset, timeout, 5xx) are
//! tried again a few times with a growing delay: an orchestrator restarting or failing over must not
//! cost an attempt. Answers that will not change (400, 401, 404, 409) are returned at once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use swath_job_types::protocol::{AttemptTask, ReportAnswer, ResultReport, StatusReport};
use swath_job_types::JobStatus;

use crate::config::{Token, WorkerConfig};

/// Tries of a request before the orchestrator counts as unavailable.
const TRIES: u32 = 5;
/// Delay before the second try; it doubles with each try.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// A request the orchestrator did not accept.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The attempt is no longer the job's current one (409): another attempt or a decision won.
    #[error("the orchestrator refused the report: {0}")]
    Conflict(String),
    /// The request is wrong or not allowed (400, 401, 403, 404): a bug or a revoked token.
    #[error("the orchestrator answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The orchestrator's message.
        message: String,
    },
    /// The orchestrator could not be reached or failed (connection, timeout, 5xx), every try.
    #[error("the orchestrator is unavailable: {0}")]
    Unavailable(String),
}

/// A client of the orchestrator for one attempt.
pub struct Orchestrator {
    http: reqwest::Client,
    base: url::Url,
    job_id: i64,
    attempt: i32,
    token: Token,
}

impl Orchestrator {
    /// A client for the attempt `config` describes.
    pub fn new(config: &WorkerConfig) -> Result<Orchestrator, ProtocolError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()
            .map_err(|e| ProtocolError::Unavailable(format!("no HTTP client: {e}")))?;
        Ok(Orchestrator {
            http,
            base: config.orchestrator_url.clone(),
            job_id: config.job_id,
            attempt: config.attempt,
            token: config.token.clone(),
        })
    }

    fn url(&self, what: &str) -> String {
        format!(
            "{}/api/v1/worker/jobs/{}/attempts/{}/{what}",
            self.base.as_str().trim_end_matches('/'),
            self.job_id,
            self.attempt
        )
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        what: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ProtocolError> {
        let url = self.url(what);
        let mut delay = FIRST_DELAY;
        let mut last = String::new();
        for try_number in 1..=TRIES {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return response.json().await.map_err(|e| {
                        ProtocolError::Unavailable(format!("unreadable answer from {url}: {e}"))
                    });
                }
                Ok(response) if response.status().is_server_error() => {
                    last = format!("{} from {url}", response.status());
                }
                Ok(response) => {
                    let status = response.status();
                    let message = response
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                        .unwrap_or_else(|| status.to_string());
                    return Err(if status == StatusCode::CONFLICT {
                        ProtocolError::Conflict(message)
                    } else {
                        ProtocolError::Refused { status, message }
                    });
                }
                Err(e) => last = format!("{url}: {e}"),
            }
            if try_number < TRIES {
                tracing::warn!(try_number, error = %last, "orchestrator request failed; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(ProtocolError::Unavailable(last))
    }

    /// The attempt's task.
    pub async fn task(&self) -> Result<AttemptTask, ProtocolError> {
        self.call(Method::GET, "task", None::<&()>).await
    }

    /// Reports a status (`started`, `pre_processing`, `processing`, `post_processing`).
    pub async fn status(
        &self,
        status: JobStatus,
        message: impl Into<String>,
    ) -> Result<ReportAnswer, ProtocolError> {
        let report = StatusReport {
            status,
            message: Some(message.into()),
        };
        self.call(Method::POST, "status", Some(&report)).await
    }

    /// Reports the attempt's result.
    pub async fn result(&self, report: &ResultReport) -> Result<ReportAnswer, ProtocolError> {
        self.call(Method::POST, "result", Some(report)).await
    }
}

//! The worker's side of the worker protocol: exchange the dispatch's bootstrap secret for the
//! attempt token, fetch the attempt's task, report statuses and the result, each request after the
//! exchange authenticated by the attempt token.
//!
//! The secret the worker is given (the Nomad dispatch payload, or `SWATH_WORKER_TOKEN`) is a one-time
//! bootstrap secret: before its first request the worker chooses an attempt token at random and
//! registers it with `POST .../token`, the bootstrap secret as bearer. Once that succeeds the
//! bootstrap secret is void. A second run of the same attempt (Nomad restarting the task after the
//! first run exchanged it) is refused with `superseded`: it stops as superseded (exit 0), touching
//! nothing, instead of trying again.
//!
//! Requests that fail for a reason that may pass (connection refused or reset, timeout, 5xx) are
//! tried again a few times with a growing delay: an orchestrator restarting or failing over must not
//! cost an attempt. The exchange is tried again the same way, with the same attempt token, which the
//! orchestrator accepts again if an earlier try went through and its answer was lost. Answers that
//! will not change (400, 401, 404, 409) are returned at once.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use swath_domain::protocol::{
    AttemptTask, PlannedProduct, ProductReservation, ReportAnswer, ReservedProducts, ResultReport,
    StatusReport,
};
use swath_domain::JobStatus;

use crate::config::{Token, WorkerConfig};

/// Tries of a request before the orchestrator counts as unavailable.
const TRIES: u32 = 5;
/// Delay before the second try; it doubles with each try.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// A request the orchestrator did not accept.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The attempt is no longer the job's current one (409), or another run of it holds its token
    /// (the bootstrap secret was already exchanged): another attempt, run or decision won.
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
    /// The dispatch's one-time secret, presented once to obtain the attempt token.
    bootstrap: Token,
    /// The attempt token, once the bootstrap secret is exchanged (never printed: this type has no
    /// `Debug`).
    attempt_token: Mutex<Option<String>>,
}

/// A new attempt token: two version-4 UUIDs (244 random bits from the operating system).
fn new_attempt_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
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
            bootstrap: config.token.clone(),
            attempt_token: Mutex::new(None),
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

    /// The attempt token, exchanging the bootstrap secret for it on the first call.
    async fn attempt_token(&self) -> Result<String, ProtocolError> {
        let known = self
            .attempt_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(token) = known {
            return Ok(token);
        }
        let chosen = new_attempt_token();
        let exchange = serde_json::json!({ "token": chosen });
        match self
            .send::<serde_json::Value>(
                Method::POST,
                "token",
                self.bootstrap.expose(),
                Some(&exchange),
            )
            .await
        {
            Ok(_) => {
                tracing::info!("bootstrap secret exchanged for the attempt token");
                *self.attempt_token.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(chosen.clone());
                Ok(chosen)
            }
            Err(ProtocolError::Conflict(why)) => {
                tracing::warn!(%why, "this run's bootstrap secret cannot be exchanged: another run of this attempt holds its token, or the attempt is over; this run stops and exits 0");
                Err(ProtocolError::Conflict(why))
            }
            Err(e) => Err(e),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        what: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ProtocolError> {
        let token = self.attempt_token().await?;
        self.send(method, what, &token, body).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        what: &str,
        bearer: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ProtocolError> {
        let url = self.url(what);
        let mut delay = FIRST_DELAY;
        let mut last = String::new();
        for try_number in 1..=TRIES {
            let mut request = self.http.request(method.clone(), &url).bearer_auth(bearer);
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
                    let answer = response.json::<serde_json::Value>().await.ok();
                    let message = answer
                        .as_ref()
                        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                        .unwrap_or_else(|| status.to_string());
                    // A bootstrap secret another run of the attempt already exchanged.
                    let superseded = status == StatusCode::UNAUTHORIZED
                        && answer
                            .as_ref()
                            .and_then(|v| v.get("superseded"))
                            .and_then(serde_json::Value::as_bool)
                            == Some(true);
                    return Err(if status == StatusCode::CONFLICT || superseded {
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

    /// Reserves the products about to be uploaded (a 409 when another job holds one: the job has
    /// then failed and the worker must upload nothing).
    pub async fn reserve_products(
        &self,
        products: Vec<PlannedProduct>,
    ) -> Result<ReservedProducts, ProtocolError> {
        self.call(
            Method::POST,
            "products",
            Some(&ProductReservation { products }),
        )
        .await
    }

    /// Reports the attempt's result.
    pub async fn result(&self, report: &ResultReport) -> Result<ReportAnswer, ProtocolError> {
        self.call(Method::POST, "result", Some(report)).await
    }
}

//! A small client of Nomad's HTTP API (`reference/nomad-api.md`): register, dispatch, read a job,
//! its summary, allocations and evaluations (optionally as blocking queries), stop and purge.
//!
//! Every request carries the namespace (and region, when set) as query parameters and the ACL token
//! in `X-Nomad-Token`. Job IDs are percent-escaped as path segments (a dispatched child's ID holds
//! a `/`). Nomad's errors are plain text; they are kept verbatim in [`NomadError::Status`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::models::{AllocListStub, DispatchResponse, JobStub, JobSummary};

/// Characters escaped in a job ID path segment: everything but unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Dispatch errors (`reference/nomad-api.md` §2.3 rows 6–11) that no retry can fix: the request
/// itself is wrong.
const PERMANENT_DISPATCH_ERRORS: [&str; 6] = [
    "Payload is not provided but required",
    "Payload provided but forbidden",
    "Payload exceeds maximum size",
    "Dispatch request included unpermitted metadata keys",
    "Dispatch did not provide required meta keys",
    "dispatch job priority must be between",
];

/// A request to Nomad that did not work.
#[derive(Debug, thiserror::Error)]
pub enum NomadError {
    /// Nomad could not be reached or the connection broke.
    #[error("cannot reach Nomad ({method} {path}): {source}")]
    Transport {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// Nomad answered with an error status.
    #[error("Nomad answered {status} to {method} {path}: {body}")]
    Status {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The status.
        status: StatusCode,
        /// Nomad's plain-text error.
        body: String,
    },
    /// Nomad's answer could not be read.
    #[error("cannot read Nomad's answer to {method} {path}: {source}")]
    Decode {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
        /// The cause.
        source: reqwest::Error,
    },
}

impl NomadError {
    /// Whether the request itself is wrong, so that sending it again cannot work: a decode error
    /// (400) or a dispatch Nomad refuses for its payload, meta or priority.
    pub fn is_permanent(&self) -> bool {
        match self {
            NomadError::Status { status, body, .. } => {
                *status == StatusCode::BAD_REQUEST
                    || PERMANENT_DISPATCH_ERRORS.iter().any(|e| body.contains(e))
            }
            _ => false,
        }
    }

    /// Whether Nomad says the parameterized parent job does not exist.
    pub fn is_missing_parent(&self) -> bool {
        matches!(self, NomadError::Status { body, .. } if body.contains("parameterized job not found"))
    }

    /// Whether Nomad refuses a dispatch because the parent job was stopped: `Specified job "<id>"
    /// is stopped` (`nomad/job_endpoint.go` `Dispatch`), which lasts until the job is registered
    /// again (a registration without `Stop` clears it).
    pub fn is_stopped_parent(&self) -> bool {
        matches!(self, NomadError::Status { body, .. }
            if body.contains("Specified job") && body.ends_with("is stopped"))
    }
}

/// Where and as whom to talk to Nomad.
#[derive(Clone)]
pub struct NomadClient {
    http: reqwest::Client,
    address: url::Url,
    token: Option<String>,
    namespace: String,
    region: Option<String>,
    request_timeout: Duration,
}

impl std::fmt::Debug for NomadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadClient")
            .field("address", &self.address.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("namespace", &self.namespace)
            .field("region", &self.region)
            .finish()
    }
}

/// A blocking query's position: wait until Nomad's index passes `index`, for at most `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// The last index seen.
    pub index: u64,
    /// Longest wait (Nomad caps it at 300 s).
    pub wait: Duration,
}

impl NomadClient {
    /// A client of the agent at `address`.
    pub fn new(
        address: url::Url,
        token: Option<String>,
        namespace: String,
        region: Option<String>,
        request_timeout: Duration,
    ) -> NomadClient {
        let http = reqwest::Client::builder()
            .connect_timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("a TLS backend is compiled in");
        NomadClient {
            http,
            address,
            token,
            namespace,
            region,
            request_timeout,
        }
    }

    /// The namespace jobs are registered and dispatched in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `job/<escaped id><suffix>`.
    fn job_path(id: &str, suffix: &str) -> String {
        format!("job/{}{suffix}", utf8_percent_encode(id, PATH_SEGMENT))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        blocking: Option<Blocking>,
    ) -> Result<(Option<reqwest::Response>, u64), NomadError> {
        let mut url = self.address.clone();
        url.set_path(&format!("/v1/{path}"));
        // set_path escapes what is not valid in a path but keeps our %XX escapes.
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("namespace", &self.namespace);
            if let Some(region) = &self.region {
                pairs.append_pair("region", region);
            }
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
            if let Some(b) = blocking {
                pairs.append_pair("index", &b.index.to_string());
                pairs.append_pair("wait", &format!("{}ms", b.wait.as_millis()));
            }
        }
        // A blocking query may be held for `wait` plus Nomad's jitter of up to wait/16.
        let timeout =
            self.request_timeout + blocking.map_or(Duration::ZERO, |b| b.wait + b.wait / 8);
        let mut request = self.http.request(method.clone(), url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.header("X-Nomad-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| NomadError::Transport {
                method: method.clone(),
                path: path.to_string(),
                source,
            })?;
        let status = response.status();
        // Nomad sets `X-Nomad-Index` on a 404 as on a 200 (`command/agent/job_endpoint.go`: the
        // query meta is set before "job not found"): a watch of a missing job blocks on it.
        let index = response
            .headers()
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if status == StatusCode::NOT_FOUND {
            return Ok((None, index));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(NomadError::Status {
                method,
                path: path.to_string(),
                status,
                body: body.trim().to_string(),
            });
        }
        Ok((Some(response), index))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        blocking: Option<Blocking>,
    ) -> Result<(Option<T>, u64), NomadError> {
        let (response, index) = self
            .send(method.clone(), path, query, body, blocking)
            .await?;
        let Some(response) = response else {
            return Ok((None, index));
        };
        let value = response.json().await.map_err(|source| NomadError::Decode {
            method,
            path: path.to_string(),
            source,
        })?;
        Ok((Some(value), index))
    }

    /// Registers (or updates) a job; re-registering an unchanged job changes nothing.
    pub async fn register(&self, job: &serde_json::Value) -> Result<(), NomadError> {
        let body = serde_json::json!({ "Job": job });
        self.send(Method::PUT, "jobs", &[], Some(body), None)
            .await?
            .0
            .ok_or_else(|| NomadError::Status {
                method: Method::PUT,
                path: "jobs".into(),
                status: StatusCode::NOT_FOUND,
                body: "the agent has no /v1/jobs endpoint".into(),
            })?;
        Ok(())
    }

    /// Dispatches a child of the parameterized job `parent` with `meta`, `payload` and an
    /// idempotency token: the same token returns the same child while it exists.
    pub async fn dispatch(
        &self,
        parent: &str,
        meta: &BTreeMap<String, String>,
        payload: &[u8],
        idempotency_token: &str,
    ) -> Result<DispatchResponse, NomadError> {
        let path = Self::job_path(parent, "/dispatch");
        let body = serde_json::json!({
            "Meta": meta,
            "Payload": base64::engine::general_purpose::STANDARD.encode(payload),
        });
        let query = [("idempotency_token", idempotency_token.to_string())];
        match self
            .json(Method::POST, &path, &query, Some(body), None)
            .await?
            .0
        {
            Some(response) => Ok(response),
            None => Err(NomadError::Status {
                method: Method::POST,
                path,
                status: StatusCode::NOT_FOUND,
                body: "parameterized job not found".into(),
            }),
        }
    }

    /// A job, or `None` if Nomad does not know it.
    pub async fn job(&self, id: &str) -> Result<Option<JobStub>, NomadError> {
        let path = Self::job_path(id, "");
        Ok(self.json(Method::GET, &path, &[], None, None).await?.0)
    }

    /// A job's summary (`None` if Nomad does not know the job) and the index Nomad answered with
    /// (also on a 404: the summaries table's index, so that a missing job can be watched); with
    /// `blocking`, answered once that index passes the given one (or the wait ends).
    pub async fn summary(
        &self,
        id: &str,
        blocking: Option<Blocking>,
    ) -> Result<(Option<JobSummary>, u64), NomadError> {
        let path = Self::job_path(id, "/summary");
        self.json(Method::GET, &path, &[], None, blocking).await
    }

    /// A job's allocations (empty if Nomad does not know the job).
    pub async fn allocations(&self, id: &str) -> Result<Vec<AllocListStub>, NomadError> {
        let path = Self::job_path(id, "/allocations");
        Ok(self
            .json(Method::GET, &path, &[], None, None)
            .await?
            .0
            .unwrap_or_default())
    }

    /// A job's evaluations, as Nomad's JSON (empty if Nomad does not know the job).
    pub async fn evaluations(&self, id: &str) -> Result<Vec<serde_json::Value>, NomadError> {
        let path = Self::job_path(id, "/evaluations");
        Ok(self
            .json(Method::GET, &path, &[], None, None)
            .await?
            .0
            .unwrap_or_default())
    }

    /// Stops a job (and removes it when `purge`); stopping an unknown job is not an error.
    pub async fn stop(&self, id: &str, purge: bool) -> Result<(), NomadError> {
        let path = Self::job_path(id, "");
        let query = [("purge", purge.to_string())];
        self.send(Method::DELETE, &path, &query, None, None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_are_escaped_as_one_path_segment() {
        assert_eq!(
            NomadClient::job_path(
                "swath-worker-hm.medium/dispatch-17-ab12cd34",
                "/allocations"
            ),
            "job/swath-worker-hm.medium%2Fdispatch-17-ab12cd34/allocations"
        );
    }

    #[test]
    fn request_errors_are_permanent_and_outages_are_not() {
        let status = |status: u16, body: &str| NomadError::Status {
            method: Method::POST,
            path: "job/x/dispatch".into(),
            status: StatusCode::from_u16(status).unwrap(),
            body: body.into(),
        };
        assert!(status(
            500,
            "rpc error: Dispatch did not provide required meta keys: [job_id]"
        )
        .is_permanent());
        assert!(status(400, "Request body is empty").is_permanent());
        assert!(!status(500, "No cluster leader").is_permanent());
        assert!(!status(403, "Permission denied").is_permanent());
        assert!(status(500, "parameterized job not found").is_missing_parent());
        let stopped = status(500, "Specified job \"swath-worker-tiny\" is stopped");
        assert!(stopped.is_stopped_parent() && !stopped.is_permanent());
        assert!(!status(500, "No cluster leader").is_stopped_parent());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let client = NomadClient::new(
            "http://127.0.0.1:4646".parse().unwrap(),
            Some("s3cr3t".into()),
            "default".into(),
            None,
            Duration::from_secs(5),
        );
        assert!(!format!("{client:?}").contains("s3cr3t"));
    }
}

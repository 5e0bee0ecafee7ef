//! The HTTP front: one axum fallback handler that records each `/v1` request, checks it and its
//! response against the OpenAPI description, plays "no cluster leader" when asked, and hands the
//! request to the router; plus the request and reply types the handlers share, and the ACL check.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::shared::Shared;
use super::{control, routes, RecordedRequest};
use crate::openapi::OpenApi;

/// A `/v1` request as the handlers see it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub method: Method,
    /// The path as sent (percent-encoded).
    pub raw_path: String,
    /// The percent-decoded path, which Nomad routes on.
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    /// The first value of a query parameter, `None` when absent or empty (Go's `Query().Get`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `?namespace=`, else `fallback`, else `default`.
    pub fn namespace_or(&self, fallback: Option<&str>) -> String {
        self.param("namespace")
            .or(fallback.filter(|ns| !ns.is_empty()))
            .unwrap_or("default")
            .to_string()
    }

    /// The ACL token from `X-Nomad-Token`, else from `Authorization: Bearer`.
    fn header_token(&self) -> Option<String> {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        if let Some(token) = header("x-nomad-token") {
            return Some(token.to_string());
        }
        let parts: Vec<&str> = header("authorization")?.split(' ').collect();
        match parts.as_slice() {
            [scheme, value] if scheme.eq_ignore_ascii_case("bearer") => {
                Some(value.trim().to_string())
            }
            _ => None,
        }
    }
}

/// What a handler answers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: ReplyBody,
    pub headers: Vec<(&'static str, String)>,
}

/// A reply body: JSON on success, plain text for errors.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    Json(Value),
    Text(String),
    Empty,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(value: Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body: ReplyBody::Json(value),
            headers: Vec::new(),
        }
    }

    /// An error with a plain-text body.
    pub fn text(status: StatusCode, message: impl Into<String>) -> Self {
        Reply {
            status,
            body: ReplyBody::Text(message.into()),
            headers: Vec::new(),
        }
    }

    /// An uncoded RPC error: 500 with the message.
    pub fn internal(message: impl Into<String>) -> Self {
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 400 with the message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Reply::text(StatusCode::BAD_REQUEST, message)
    }

    /// 405 `Invalid method`.
    pub fn invalid_method() -> Self {
        Reply::text(StatusCode::METHOD_NOT_ALLOWED, "Invalid method")
    }

    /// A status with no body.
    pub fn empty(status: StatusCode) -> Self {
        Reply {
            status,
            body: ReplyBody::Empty,
            headers: Vec::new(),
        }
    }

    /// Adds `X-Nomad-Index` (what writes set).
    pub fn with_index(mut self, index: u64) -> Self {
        self.headers.push(("X-Nomad-Index", index.to_string()));
        self
    }

    /// Adds the query-meta headers reads set.
    pub fn with_query_meta(self, index: u64) -> Self {
        let mut reply = self.with_index(index);
        reply.headers.push(("X-Nomad-KnownLeader", "true".into()));
        reply.headers.push(("X-Nomad-LastContact", "0".into()));
        reply
    }

    fn into_response(self) -> Response {
        let (content_type, body) = match self.body {
            ReplyBody::Json(value) => ("application/json", Body::from(value.to_string())),
            ReplyBody::Text(text) => ("text/plain; charset=utf-8", Body::from(text)),
            ReplyBody::Empty => ("", Body::empty()),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if !content_type.is_empty() {
            headers.insert("content-type", HeaderValue::from_static(content_type));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// The ACL check of the RPC layer: with a token configured, a request must carry it (from the
/// headers, else `body_token`): no token is 403 `Permission denied`, another token 403
/// `ACL token not found`.
pub(crate) fn authorize(
    shared: &Shared,
    request: &ApiRequest,
    body_token: Option<&str>,
) -> Result<(), Reply> {
    let Some(expected) = &shared.options.acl_token else {
        return Ok(());
    };
    let token = request
        .header_token()
        .or_else(|| body_token.filter(|t| !t.is_empty()).map(str::to_string));
    match token {
        None => Err(Reply::text(StatusCode::FORBIDDEN, "Permission denied")),
        Some(token) if &token == expected => Ok(()),
        Some(_) => Err(Reply::text(StatusCode::FORBIDDEN, "ACL token not found")),
    }
}

/// The single axum handler.
pub(crate) async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let raw_path = parts.uri.path().to_string();
    if let Some(action) = raw_path.strip_prefix("/_emulator/") {
        return control::handle(&shared, &parts.method, action, &body).into_response();
    }
    if !raw_path.starts_with("/v1/") {
        return Reply::empty(StatusCode::NOT_FOUND).into_response();
    }
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let request = ApiRequest {
        method: parts.method,
        path: percent_encoding::percent_decode_str(&raw_path)
            .decode_utf8_lossy()
            .into_owned(),
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        raw_path,
        raw_query,
        headers: parts.headers,
        body,
    };
    let method = request.method.as_str();
    let body_json: Option<Value> = serde_json::from_slice(&request.body).ok();
    let openapi = OpenApi::nomad();
    let request_problems = openapi
        .check_request(
            method,
            &request.raw_path,
            &request.raw_query,
            body_json.as_ref(),
        )
        .err()
        .unwrap_or_default();
    note_problems(&shared, "request", request_problems.clone());
    let unavailable = journal(&shared, &request, body_json);
    let reply = if unavailable {
        Reply::internal("No cluster leader")
    } else {
        routes::route(&shared, &request).await
    };
    let response_json = match &reply.body {
        ReplyBody::Json(value) => Some(value),
        _ => None,
    };
    let status = reply.status.as_u16();
    if let Err(problems) = openapi.check_response(method, &request.raw_path, status, response_json)
    {
        // An undeclared route or method fails both checks alike: it is reported once, as the
        // request's problem.
        let new = problems
            .into_iter()
            .filter(|p| !request_problems.contains(p))
            .collect();
        note_problems(&shared, "response", new);
    }
    reply.into_response()
}

/// Records the request; returns whether the API plays "no cluster leader".
fn journal(shared: &Shared, request: &ApiRequest, body: Option<Value>) -> bool {
    let mut control = shared.control();
    control.requests.push(RecordedRequest {
        method: request.method.to_string(),
        path: request.raw_path.clone(),
        query: request.raw_query.clone(),
        body,
    });
    control.unavailable
}

/// Journals problems; the validator already names the method and path.
fn note_problems(shared: &Shared, side: &str, problems: Vec<String>) {
    let mut control = shared.control();
    for problem in problems {
        control.problems.push(format!("{side}: {problem}"));
    }
}

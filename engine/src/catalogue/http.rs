//! JSON over HTTP with bounded retries: exponential backoff with jitter on timeouts, connection
//! errors, 429 (honouring `Retry-After`), 5xx and truncated or unreadable bodies.
//!
//! Bodies are read chunk by chunk and never past a cap ([`DEFAULT_MAX_BODY_BYTES`] unless set): a
//! body announced or found larger fails its request at once, without a retry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;

use super::CatalogueError;

/// How hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay; it doubles with each attempt.
    pub base_delay: Duration,
    /// Longest backoff delay, and longest `Retry-After` honoured.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempts count from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        crate::backoff::jittered(self.base_delay, self.max_delay, attempt)
    }
}

/// The largest response body read unless [`HttpFetcher::with_max_body`] says otherwise: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The setting that sets the cap, named in errors.
pub const MAX_BODY_SETTING: &str = "SWATH_CATALOGUE_MAX_BODY_MB";

/// A JSON client with timeouts, retries and a cap on response bodies.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    policy: RetryPolicy,
    max_body: u64,
}

/// Why one attempt failed, and whether to try again.
enum AttemptError {
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fatal(CatalogueError),
}

impl HttpFetcher {
    /// A client whose every request times out after `timeout`.
    pub fn new(timeout: Duration, policy: RetryPolicy) -> Result<Self, CatalogueError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("swath/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CatalogueError::Config(format!("HTTP client: {e}")))?;
        Ok(HttpFetcher {
            client,
            policy,
            max_body: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// The same client, reading response bodies of at most `bytes` bytes.
    pub fn with_max_body(mut self, bytes: u64) -> Self {
        self.max_body = bytes;
        self
    }

    /// The largest response body this client reads, in bytes.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// GETs `url` (or POSTs `body` to it) and decodes the JSON answer, retrying transient failures.
    pub async fn json(
        &self,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, CatalogueError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(url, body).await {
                Ok(value) => return Ok(value),
                Err(AttemptError::Fatal(e)) => return Err(e),
                Err(AttemptError::Retry { reason, after }) => {
                    if attempt >= self.policy.max_attempts {
                        return Err(CatalogueError::Unavailable {
                            url: url.to_string(),
                            attempts: attempt,
                            last_error: reason,
                        });
                    }
                    let delay = after.map_or_else(
                        || self.policy.backoff(attempt),
                        |d| d.min(self.policy.max_delay),
                    );
                    tracing::warn!(%url, attempt, delay_ms = delay.as_millis() as u64, %reason, "catalogue request failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, AttemptError> {
        let request = match body {
            Some(body) => self.client.post(url).json(body),
            None => self.client.get(url),
        };
        let response = request.send().await.map_err(|e| AttemptError::Retry {
            reason: describe(&e),
            after: None,
        })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(AttemptError::Retry {
                reason: "HTTP 429 Too Many Requests".into(),
                after,
            });
        }
        if status.is_server_error() {
            return Err(AttemptError::Retry {
                reason: format!("HTTP {status}"),
                after: None,
            });
        }
        let bytes = self.read_body(url, response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(AttemptError::Fatal(CatalogueError::Refused {
                url: url.to_string(),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            }));
        }
        // A body cut short (connection dropped, proxy limits) does not parse: worth another try.
        serde_json::from_slice(&bytes).map_err(|e| AttemptError::Retry {
            reason: format!("unreadable JSON body ({} bytes): {e}", bytes.len()),
            after: None,
        })
    }
}

impl HttpFetcher {
    /// The body of `response`, read chunk by chunk up to the cap: a `Content-Length` over the cap
    /// fails before anything is read, and a body that grows past it fails as soon as it does.
    async fn read_body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, AttemptError> {
        let too_large = |size: String| {
            AttemptError::Fatal(CatalogueError::BodyTooLarge {
                url: url.to_string(),
                size,
                limit: self.max_body,
            })
        };
        if let Some(announced) = response.content_length() {
            if announced > self.max_body {
                return Err(too_large(format!("{announced} bytes (Content-Length)")));
            }
        }
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| AttemptError::Retry {
                reason: format!("reading the body: {}", describe(&e)),
                after: None,
            })?;
            let Some(chunk) = chunk else {
                return Ok(body);
            };
            // Checked before the chunk is kept: the buffer never holds more than the cap.
            let read = body.len() as u64 + chunk.len() as u64;
            if read > self.max_body {
                return Err(too_large(format!("more than {} bytes", self.max_body)));
            }
            body.extend_from_slice(&chunk);
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = (Utc::now() + chrono::TimeDelta::seconds(30)).to_rfc2822();
        let d = parse_retry_after(&later).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}

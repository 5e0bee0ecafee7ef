//! Settings of the S3 store (from the environment) and the SDK client they make.

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;

pub(crate) const MIB: u64 = 1024 * 1024;

/// The smallest part S3 accepts in a multipart upload (but the last).
pub(crate) const MIN_PART_SIZE: u64 = 5 * MIB;

/// How the S3 store connects and transfers.
#[derive(Clone)]
pub struct S3Settings {
    /// Endpoint URL (`http://host:port`); `None`: AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// Region used for signing.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Files larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part of a multipart upload (at least 5 MiB).
    pub part_size: u64,
    /// Parts of one file uploaded at once.
    pub part_concurrency: usize,
    /// Keys asked for per listing page; `None`: the server's default (1000 on S3).
    pub list_page_size: Option<i32>,
    /// Attempts per request, retries of transient failures included.
    pub max_attempts: u32,
    /// First delay between attempts (then exponential, with jitter).
    pub initial_backoff: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for the next bytes of a download.
    pub idle_timeout: Duration,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("part_concurrency", &self.part_concurrency)
            .field("list_page_size", &self.list_page_size)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Default settings with the given credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> S3Settings {
        S3Settings {
            endpoint: None,
            region: "us-east-1".to_owned(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            multipart_threshold: 8 * MIB,
            part_size: 8 * MIB,
            part_concurrency: 4,
            list_page_size: None,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// Settings from the process environment (see [`S3Settings::from_lookup`]).
    pub fn from_env() -> Result<S3Settings, String> {
        S3Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from environment variables read through `var`: `SWATH_WORKER_S3_ENDPOINT` or
    /// `AWS_ENDPOINT_URL`, `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. The error says what is
    /// missing or invalid.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<S3Settings, String> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let access = get("AWS_ACCESS_KEY_ID");
        let secret = get("AWS_SECRET_ACCESS_KEY");
        let (Some(access), Some(secret)) = (access, secret) else {
            return Err(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            );
        };
        let mut settings = S3Settings::new(access, secret);
        settings.session_token = get("AWS_SESSION_TOKEN");
        if let Some(region) = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")) {
            settings.region = region;
        }
        settings.endpoint = get("SWATH_WORKER_S3_ENDPOINT").or_else(|| get("AWS_ENDPOINT_URL"));
        if let Some(endpoint) = &settings.endpoint {
            check_endpoint(endpoint)?;
        }
        Ok(settings)
    }
}

pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), String> {
    match ::url::Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "endpoint `{endpoint}` is not an http(s)://host[:port] URL"
        )),
    }
}

/// The SDK client for `settings`: path style, rustls with ring, static credentials.
pub(crate) fn sdk_client(settings: &S3Settings) -> Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let credentials = Credentials::new(
        &settings.access_key_id,
        &settings.secret_access_key,
        settings.session_token.clone(),
        None,
        "swath-worker",
    );
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .http_client(http_client)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.max_attempts.max(1))
                .with_initial_backoff(settings.initial_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn settings_come_from_the_environment() {
        let s = S3Settings::from_lookup(lookup(&[
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("SWATH_WORKER_S3_ENDPOINT", "http://127.0.0.1:9001"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9001"));
        assert_eq!(s.region, "us-east-1");
        assert!(!format!("{s:?}").contains("sk"), "{s:?}");

        let s = S3Settings::from_lookup(lookup(&[
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_REGION", "eu-central-1"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint, None);
        assert_eq!(s.region, "eu-central-1");

        let e = S3Settings::from_lookup(lookup(&[("AWS_ACCESS_KEY_ID", "ak")])).unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        let e = S3Settings::from_lookup(lookup(&[
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:9000"),
        ]))
        .unwrap_err();
        assert!(e.contains("127.0.0.1:9000"), "{e}");
    }
}

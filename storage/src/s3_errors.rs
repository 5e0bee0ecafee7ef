//! Classification of `aws-sdk-s3` errors into [`StorageError`]s.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::StorageError;

/// Error codes that S3-compatible stores answer when overloaded or failing on their side.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
];

/// Error codes of refused credentials or access.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
];

/// The storage error for a failed SDK call on `url`.
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, url: &str) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let url = url.to_owned();
    let detail = || DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            from_service(
                url,
                status,
                service.err().code(),
                service.err().message().unwrap_or_default(),
            )
        }
        SdkError::TimeoutError(_) => StorageError::Timeout {
            url,
            message: detail(),
        },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => StorageError::Timeout {
            url,
            message: detail(),
        },
        SdkError::DispatchFailure(failure) if failure.is_user() => StorageError::Config {
            url,
            reason: detail(),
        },
        SdkError::ConstructionFailure(_) => StorageError::Config {
            url,
            reason: detail(),
        },
        // I/O failures (refused, reset), other dispatch failures and responses cut short.
        _ => StorageError::Unavailable {
            url,
            message: detail(),
        },
    }
}

fn from_service(url: String, status: u16, code: Option<&str>, message: &str) -> StorageError {
    let code = code
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = if message.is_empty() {
        format!("{code} (HTTP {status})")
    } else {
        format!("{code} (HTTP {status}): {message}")
    };
    if code == "RequestTimeout" || status == 408 {
        StorageError::Timeout { url, message }
    } else if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code.as_str()) {
        StorageError::Unavailable { url, message }
    } else if status == 401 || status == 403 || ACCESS_CODES.contains(&code.as_str()) {
        StorageError::AccessDenied { url, message }
    } else if status == 404 || code.starts_with("NoSuch") {
        StorageError::NotFound { url, message }
    } else {
        StorageError::Rejected { url, code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_classified_by_status_and_code() {
        let cases: &[(u16, Option<&str>, bool, &str)] = &[
            (503, Some("SlowDown"), true, "Unavailable"),
            (500, Some("InternalError"), true, "Unavailable"),
            (502, None, true, "Unavailable"),
            (429, None, true, "Unavailable"),
            (400, Some("RequestTimeout"), true, "Timeout"),
            (403, Some("SignatureDoesNotMatch"), false, "AccessDenied"),
            (403, Some("InvalidAccessKeyId"), false, "AccessDenied"),
            (404, Some("NoSuchBucket"), false, "NotFound"),
            (404, None, false, "NotFound"),
            (400, Some("InvalidArgument"), false, "Rejected"),
        ];
        for &(status, code, transient, kind) in cases {
            let e = from_service("s3://b/k".into(), status, code, "words");
            assert_eq!(e.is_transient(), transient, "{status} {code:?}: {e:?}");
            assert!(
                format!("{e:?}").starts_with(kind),
                "{status} {code:?}: {e:?}"
            );
            assert!(e.to_string().contains("s3://b/k"), "{e}");
        }
    }
}

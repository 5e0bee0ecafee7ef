//! Reading requests: path parameters, query strings and JSON bodies, each refused with a JSON
//! [`ApiError`] that names what is wrong (axum's own rejections are plain text); and the JSON answers
//! to unknown routes and methods.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode, Uri};
use axum::Json;
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Path parameters, refused with a 400 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::BadRequest(format!("path: {}", e.body_text())))
    }
}

/// A JSON body: 415 when it is not JSON, 413 when too large, 400 naming the field otherwise.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(json_rejection)
    }
}

/// A JSON body that may be left out (an empty body is `T::default()`).
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(e.body_text()),
                _ => ApiError::BadRequest(e.body_text()),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(ApiError::UnsupportedMediaType(
                "a request body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        Json::<T>::from_bytes(&bytes)
            .map(|Json(v)| OptionalJson(v))
            .map_err(json_rejection)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(e: JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
            "a request body must be JSON (Content-Type: application/json)".into(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(e.body_text()),
        _ => ApiError::BadRequest(e.body_text()),
    }
}

/// The decoded `name=value` pairs of a query string, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Refuses text PostgreSQL cannot store (NUL characters) or longer than `max` bytes, naming `field`.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{field}: NUL characters are not allowed"
        )));
    }
    if value.len() > max {
        return Err(ApiError::BadRequest(format!(
            "{field}: at most {max} bytes are allowed"
        )));
    }
    Ok(())
}

/// Refuses JSON PostgreSQL cannot store (`\u0000` in a string or a key), naming `field`.
pub fn check_json(field: &str, value: &serde_json::Value) -> Result<(), ApiError> {
    let nul = match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => {
            return items.iter().try_for_each(|v| check_json(field, v))
        }
        serde_json::Value::Object(members) => {
            for (k, v) in members {
                if k.contains('\0') {
                    return Err(ApiError::BadRequest(format!(
                        "{field}: NUL characters are not allowed"
                    )));
                }
                check_json(field, v)?;
            }
            false
        }
        _ => false,
    };
    if nul {
        return Err(ApiError::BadRequest(format!(
            "{field}: NUL characters are not allowed"
        )));
    }
    Ok(())
}

/// An RFC 3339 date-time given as `field`, between years 1 and 9999.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let at = DateTime::parse_from_rfc3339(value)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "{field}: {value:?} is not an RFC 3339 date-time such as 2021-04-13T10:10:21Z ({e})"
            ))
        })?
        .with_timezone(&Utc);
    check_year(field, at)?;
    Ok(at)
}

/// Refuses a time outside years 1 to 9999, naming `field`.
pub fn check_year(field: &str, at: DateTime<Utc>) -> Result<(), ApiError> {
    if !(1..=9999).contains(&at.year()) {
        return Err(ApiError::BadRequest(format!(
            "{field}: the year must be between 1 and 9999"
        )));
    }
    Ok(())
}

/// The JSON answer to a path no route serves.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// The JSON answer to a method a route does not serve.
pub async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_are_checked_for_what_postgresql_refuses() {
        assert!(check_text("name", "ok", 10).is_ok());
        let err = check_text("name", "a\0b", 10).unwrap_err().to_string();
        assert!(err.starts_with("name: NUL"), "{err}");
        let err = check_text("name", &"x".repeat(11), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 10 bytes"), "{err}");
        assert!(check_json("params", &serde_json::json!({"a": [1, "b"]})).is_ok());
        assert!(check_json("params", &serde_json::json!({"a": ["x\u{0}"]})).is_err());
        assert!(check_json("params", &serde_json::json!({"k\u{0}": 1})).is_err());
    }

    #[test]
    fn times_are_rfc3339_within_the_years_postgresql_stores() {
        assert_eq!(
            parse_time("created_after", "2021-04-13T12:10:21+02:00").unwrap(),
            "2021-04-13T10:10:21Z".parse::<DateTime<Utc>>().unwrap()
        );
        let err = parse_time("created_after", "yesterday")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("created_after: \"yesterday\""), "{err}");
        assert!(parse_time("x", "0000-01-01T00:00:00Z").is_err());
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
    }

    #[test]
    fn query_strings_are_decoded_in_order() {
        assert_eq!(
            query_pairs(Some("status=done&status=ready&tile=T32%20TLR")),
            vec![
                ("status".to_string(), "done".to_string()),
                ("status".to_string(), "ready".to_string()),
                ("tile".to_string(), "T32 TLR".to_string())
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}

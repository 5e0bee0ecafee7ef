//! Bearer tokens of the operator API (`Authorization: Bearer <token>`).
//!
//! - Writes need the write token (`SWATH_API_WRITE_TOKEN`). Without one configured, writes are
//!   impossible: they are refused with 403, whatever the request carries.
//! - Reads are open unless a read token is configured (`SWATH_API_READ_TOKEN`); then they need it,
//!   or the write token.
//! - Health, readiness and the OpenAPI description are always open; the worker protocol has its own
//!   per-attempt tokens.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is compared by digest in
//! constant time.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::{ApiContext, ApiError};

/// The tokens of the operator API, as digests.
#[derive(Clone, Default)]
pub struct ApiTokens {
    write: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokens")
            .field("write", &self.write.map(|_| "***"))
            .field("read", &self.read.map(|_| "***"))
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in a time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl ApiTokens {
    /// Tokens from their values (`None`: not configured).
    pub fn new(write: Option<&str>, read: Option<&str>) -> Self {
        ApiTokens {
            write: write.map(digest),
            read: read.map(digest),
        }
    }

    /// Whether writes are possible at all.
    pub fn writes_enabled(&self) -> bool {
        self.write.is_some()
    }

    fn check(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        if access == Access::Write && self.write.is_none() {
            return Err(ApiError::Forbidden(
                "writes are disabled: this instance has no write token (SWATH_API_WRITE_TOKEN)"
                    .into(),
            ));
        }
        if access == Access::Read && self.read.is_none() {
            return Ok(());
        }
        let presented = bearer(headers)?;
        let presented = digest(presented);
        if self.write.is_some_and(|w| same(&w, &presented)) {
            return Ok(());
        }
        let is_read_token = self.read.is_some_and(|r| same(&r, &presented));
        match access {
            Access::Read if is_read_token => Ok(()),
            Access::Write if is_read_token => Err(ApiError::Forbidden(
                "the read token does not allow writes".into(),
            )),
            _ => Err(ApiError::Unauthorized(format!(
                "the bearer token is not valid for {}",
                match access {
                    Access::Read => "reads",
                    Access::Write => "writes",
                }
            ))),
        }
    }
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        })
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })
}

/// A request allowed to read (extracted before the body, so that credentials are checked first).
#[derive(Debug, Clone, Copy)]
pub struct ReadAccess;

impl FromRequestParts<ApiContext> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        ctx.operator.tokens.check(&parts.headers, Access::Read)?;
        Ok(ReadAccess)
    }
}

/// A request allowed to write (extracted before the body, so that credentials are checked first).
#[derive(Debug, Clone, Copy)]
pub struct WriteAccess;

impl FromRequestParts<ApiContext> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        ctx.operator.tokens.check(&parts.headers, Access::Write)?;
        Ok(WriteAccess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = authorization {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    fn status(result: Result<(), ApiError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(ApiError::Unauthorized(_)) => "401",
            Err(ApiError::Forbidden(_)) => "403",
            Err(_) => "other",
        }
    }

    #[test]
    fn writes_need_the_write_token_and_are_impossible_without_one() {
        let none = ApiTokens::default();
        assert_eq!(
            status(none.check(&headers(Some("Bearer x")), Access::Write)),
            "403"
        );
        assert_eq!(status(none.check(&headers(None), Access::Read)), "ok");
        let tokens = ApiTokens::new(Some("write-secret-0123456789"), None);
        let write = Some("Bearer write-secret-0123456789");
        assert_eq!(status(tokens.check(&headers(write), Access::Write)), "ok");
        assert_eq!(
            status(tokens.check(
                &headers(Some("bearer write-secret-0123456789")),
                Access::Write
            )),
            "ok"
        );
        assert_eq!(status(tokens.check(&headers(None), Access::Write)), "401");
        assert_eq!(
            status(tokens.check(&headers(Some("Bearer nope")), Access::Write)),
            "401"
        );
        assert_eq!(
            status(tokens.check(&headers(Some("Basic abc")), Access::Write)),
            "401"
        );
        assert_eq!(
            status(tokens.check(&headers(Some("Bearer ")), Access::Write)),
            "401"
        );
        assert_eq!(status(tokens.check(&headers(None), Access::Read)), "ok");
    }

    #[test]
    fn a_read_token_closes_reads_and_does_not_open_writes() {
        let tokens = ApiTokens::new(
            Some("write-secret-0123456789"),
            Some("read-secret-0123456789"),
        );
        let read = Some("Bearer read-secret-0123456789");
        assert_eq!(status(tokens.check(&headers(None), Access::Read)), "401");
        assert_eq!(status(tokens.check(&headers(read), Access::Read)), "ok");
        assert_eq!(
            status(tokens.check(
                &headers(Some("Bearer write-secret-0123456789")),
                Access::Read
            )),
            "ok"
        );
        assert_eq!(status(tokens.check(&headers(read), Access::Write)), "403");
        assert!(!format!("{tokens:?}").contains("secret"));
    }

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = digest("a");
        assert!(same(&a, &digest("a")));
        assert!(!same(&a, &digest("b")));
    }
}

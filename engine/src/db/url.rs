//! The URL of a PostgreSQL database, whose password is never printed.

use std::fmt;

use serde::{Deserialize, Serialize};
use swath_domain::redact::redact_password;

/// Longest database name PostgreSQL keeps; longer names are silently truncated by the server.
pub const MAX_DATABASE_NAME_LEN: usize = 63;

/// A PostgreSQL URL whose password is never printed (`Debug` and `Display` show it redacted).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The full URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`, in the user info and in a `?password=` query
    /// parameter (and any other secret parameter).
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }

    /// The same server with another database name (at most [`MAX_DATABASE_NAME_LEN`] bytes).
    pub fn with_database(&self, name: &str) -> Result<DatabaseUrl, String> {
        if name.is_empty() || name.len() > MAX_DATABASE_NAME_LEN {
            return Err(format!(
                "database name {name:?} must have 1 to {MAX_DATABASE_NAME_LEN} bytes"
            ));
        }
        let mut url = url::Url::parse(&self.0).map_err(|e| e.to_string())?;
        url.set_path(&format!("/{name}"));
        Ok(DatabaseUrl(url.to_string()))
    }

    /// The database name in the URL.
    pub fn database_name(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        let name = url.path().trim_start_matches('/');
        (!name.is_empty()).then(|| name.to_string())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_never_printed() {
        let url = DatabaseUrl::new("postgres://swath:s3cret@db:5432/swath");
        assert_eq!(url.redacted(), "postgres://swath:***@db:5432/swath");
        assert_eq!(url.to_string(), "postgres://swath:***@db:5432/swath");
        let query = DatabaseUrl::new("postgres://swath@db/swath?sslmode=require&password=s3cret");
        assert_eq!(
            query.redacted(),
            "postgres://swath@db/swath?sslmode=require&password=***"
        );
        assert_eq!(
            format!("{query:?}"),
            "DatabaseUrl(postgres://swath@db/swath?sslmode=require&password=***)"
        );
        assert_eq!(
            url.with_database("other").unwrap().expose(),
            "postgres://swath:s3cret@db:5432/other"
        );
        assert_eq!(url.database_name().as_deref(), Some("swath"));
    }
}

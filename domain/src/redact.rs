//! Credentials out of printed URLs: user info and secret query parameters.
//!
//! [`redact_url`] hides what any URL may carry (`user:password@`, `?password=`, `?token=`...);
//! [`redact_password`] hides only the password and the secret parameters, keeping the user name
//! (for a database URL, where it says who connects).

/// What stands for a hidden value.
const HIDDEN: &str = "***";

/// Whether a query parameter named `key` carries a secret (`password`, `token`, `secret`, `key`,
/// `signature`, `credential`, `auth`, `sig`, in any case and inside longer names such as
/// `X-Amz-Signature` or `access_token`).
fn secret_parameter(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "sig"
        || [
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "key",
            "signature",
            "credential",
            "auth",
        ]
        .iter()
        .any(|word| key.contains(word))
}

/// `url` with the values of its secret query parameters replaced by `***`.
pub fn redact_query(url: &mut url::Url) {
    if !url.query_pairs().any(|(k, _)| secret_parameter(&k)) {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if secret_parameter(&k) {
                HIDDEN.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
}

/// `text` with the credentials of a URL hidden: its user name and password become `***`, and so do
/// its secret query parameters. Text that is not a URL is kept; a URL-like text that does not parse
/// is hidden whole when it holds an `@` (it may carry user info).
pub fn redact_url(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    match url::Url::parse(text) {
        Ok(mut url) => {
            if !url.username().is_empty() {
                let _ = url.set_username(HIDDEN);
            }
            if url.password().is_some() {
                let _ = url.set_password(Some(HIDDEN));
            }
            redact_query(&mut url);
            url.to_string()
        }
        Err(_) if text.contains('@') => "(unparsable URL, hidden)".to_string(),
        Err(_) => text.to_string(),
    }
}

/// `url` with its password and its secret query parameters replaced by `***`, its user name kept;
/// a text that does not parse is hidden whole.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(HIDDEN));
            }
            redact_query(&mut url);
            url.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_user_info_and_secret_parameters() {
        assert_eq!(
            redact_url("https://user:pw@host:8443/p?a=1&token=t&X-Amz-Signature=s"),
            "https://***:***@host:8443/p?a=1&token=***&X-Amz-Signature=***"
        );
        assert_eq!(
            redact_url("s3://AKIA:SECRET@bucket/x"),
            "s3://***:***@bucket/x"
        );
        assert_eq!(redact_url("file:///data/x"), "file:///data/x");
        assert_eq!(redact_url("dir:/data/catalogue"), "dir:/data/catalogue");
        assert_eq!(
            redact_url("https://x.example/odata/v1"),
            "https://x.example/odata/v1"
        );
    }

    #[test]
    fn a_database_url_keeps_its_user_name() {
        assert_eq!(
            redact_password("postgres://swath:s3cret@db:5432/swath?password=s3cret"),
            "postgres://swath:***@db:5432/swath?password=***"
        );
        assert_eq!(redact_password("not a url"), "(unparsable URL)");
    }
}

//! Storage URLs (`s3://bucket/prefix`, `file:///abs/path`) and the mapping of keys to local paths.

use std::path::{Path, PathBuf};

use super::StorageError;

/// Where a store URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A bucket and a prefix without leading or trailing `/` (empty: the whole bucket).
    S3 { bucket: String, prefix: String },
    /// An absolute directory.
    File { root: PathBuf },
}

impl Location {
    pub(crate) fn parse(url: &str) -> Result<Location, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            if rest.contains(['?', '#']) {
                return Err(invalid("an S3 URL takes no query or fragment"));
            }
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket: expected s3://bucket[/prefix]"));
            }
            if !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                return Err(invalid(
                    "a bucket name has only letters, digits, `.`, `-` and `_`",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix
                .split('/')
                .any(|s| s.is_empty() && !prefix.is_empty())
            {
                return Err(invalid("empty segment (`//`) in the prefix"));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let parsed = ::url::Url::parse(url).map_err(|e| invalid(&format!("not a URL ({e})")))?;
        match parsed.scheme() {
            "file" => {
                let absolute = "a file URL names an absolute path without host: file:///abs/path";
                // The parser would read `file:relative` as `file:///relative`.
                if !url.starts_with("file://") {
                    return Err(invalid(absolute));
                }
                let root = parsed
                    .to_file_path()
                    .ok()
                    .filter(|p| p.is_absolute())
                    .ok_or_else(|| invalid(absolute))?;
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(invalid("a file URL takes no query or fragment"));
                }
                Ok(Location::File { root })
            }
            other => Err(invalid(&format!(
                "unsupported scheme `{other}` (expected s3:// or file://)"
            ))),
        }
    }
}

/// The local path of `key` under `dir`, refusing keys that would escape it or name no file.
pub(crate) fn local_path(dir: &Path, key: &str, store_url: &str) -> Result<PathBuf, StorageError> {
    let invalid = |reason: &str| StorageError::InvalidKey {
        url: store_url.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let mut path = dir.to_path_buf();
    for segment in key.split('/') {
        match segment {
            "" => return Err(invalid("empty path segment")),
            "." | ".." => return Err(invalid("`.` or `..` segment")),
            s if s.contains('\0') => return Err(invalid("NUL character")),
            s => path.push(s),
        }
    }
    Ok(path)
}

/// The key of the local file `path` under `dir`, `/`-separated.
pub(crate) fn relative_key(dir: &Path, path: &Path) -> Result<String, StorageError> {
    let rel = path
        .strip_prefix(dir)
        .map_err(|e| StorageError::local(path, std::io::Error::other(e)))?;
    let segments: Option<Vec<&str>> = rel.iter().map(|s| s.to_str()).collect();
    let segments = segments.ok_or_else(|| {
        StorageError::local(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "file name is not UTF-8"),
        )
    })?;
    Ok(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> Location {
        Location::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn parses_s3_and_file_urls() {
        assert_eq!(Location::parse("s3://b").unwrap(), s3("b", ""));
        assert_eq!(Location::parse("s3://b/").unwrap(), s3("b", ""));
        assert_eq!(Location::parse("s3://b/p/q/").unwrap(), s3("b", "p/q"));
        assert_eq!(
            Location::parse("file:///data/in").unwrap(),
            Location::File {
                root: PathBuf::from("/data/in")
            }
        );
    }

    #[test]
    fn refuses_bad_urls_with_the_reason() {
        for (url, words) in [
            ("s3://", "no bucket"),
            ("s3:///key", "no bucket"),
            ("s3://b/a//c", "empty segment"),
            ("s3://b?x=1", "query"),
            ("ftp://x", "unsupported scheme `ftp`"),
            ("file://relative/path", "absolute path"),
            ("file:relative", "absolute path"),
            ("relative/path", "not a URL"),
            ("", "not a URL"),
        ] {
            let e = Location::parse(url).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, StorageError::InvalidUrl { .. }), "{url}: {e:?}");
            assert!(text.contains(words), "{url}: {text}");
            assert!(text.contains(&format!("`{url}`")), "{url}: {text}");
            assert!(!e.is_transient());
        }
    }

    #[test]
    fn keys_map_to_paths_inside_the_directory() {
        let dir = Path::new("/w/in");
        assert_eq!(
            local_path(dir, "a/b/c.tif", "s3://b").unwrap(),
            PathBuf::from("/w/in/a/b/c.tif")
        );
        for key in ["", "a//b", "../x", "a/./b", "a/"] {
            assert!(
                matches!(
                    local_path(dir, key, "s3://b"),
                    Err(StorageError::InvalidKey { .. })
                ),
                "{key}"
            );
        }
        assert_eq!(
            relative_key(dir, Path::new("/w/in/a/b.txt")).unwrap(),
            "a/b.txt"
        );
    }
}

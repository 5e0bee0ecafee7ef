//! Where inputs may be read from: the configured stores only.
//!
//! An input source (a catalogue's storage path, or a source a job type names from its params) is
//! resolved to the URL a worker stages it from, then accepted only if that URL lies under one of the
//! allowed roots: `SWATH_EODATA_URL`, `SWATH_OUTPUT_URL`, the directory of a local (`dir:`)
//! catalogue, and the roots of `SWATH_INPUT_EXTRA_ROOTS`. Roots match on whole path segments
//! (`file:///data/eo` does not allow `file:///data/eodata-evil`), and a source must name something
//! below its root, not the root itself.
//!
//! Refused whatever the roots: `.` and `..` segments (also percent-encoded: URL parsers resolve
//! them, so `file:///eodata/../../root` would be read as `file:///root`), empty sources, paths and
//! segments, encoded slashes, NUL characters, `file://` URLs with a host, and any scheme but `s3://`
//! and `file:///`.
//!
//! The orchestrator applies these rules twice: ingestion quarantines a product whose source is
//! refused, and task building fails the job.

use std::path::Path;

use percent_encoding::percent_decode_str;

use crate::children::OUTPUT_STORE_SOURCE;

/// An input source that is not under the configured stores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input {input:?} refused: {reason}")]
pub struct InputRefused {
    /// The source as given.
    pub input: String,
    /// Why.
    pub reason: String,
}

/// One allowed root: a bucket and key prefix, or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// `s3://bucket[/prefix]`: keys compared as written (S3 does not decode them).
    S3 { bucket: String, prefix: Vec<String> },
    /// `file:///dir`: path segments compared decoded (as the worker turns the URL into a path).
    File { dir: Vec<String> },
}

/// The segments of `path` (from a URL), refusing what could leave a root: `.`/`..` (decoded),
/// empty segments (a trailing `/` aside), encoded slashes and NUL. With `decode`, the decoded
/// segments are returned, else the segments as written.
fn segments(path: &str, decode: bool) -> Result<Vec<String>, String> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(Vec::new());
    }
    path.split('/')
        .map(|raw| {
            let decoded = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| format!("segment {raw:?} is not UTF-8 once decoded"))?;
            match decoded.as_ref() {
                "" => Err("an empty path segment (`//`)".to_string()),
                "." | ".." => Err(format!("a `{decoded}` segment ({raw:?})")),
                d if d.contains(['/', '\\', '\0']) => Err(format!(
                    "segment {raw:?} holds an encoded slash, backslash or NUL"
                )),
                d => Ok(if decode {
                    d.to_string()
                } else {
                    raw.to_string()
                }),
            }
        })
        .collect()
}

/// A storage URL as a root kind and its segments, or why it is not one.
fn parse(url: &str) -> Result<Root, String> {
    if url.contains(['?', '#']) {
        return Err("a storage URL takes no query or fragment".into());
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty()
            || !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(format!("bucket {bucket:?} is not a bucket name"));
        }
        return Ok(Root::S3 {
            bucket: bucket.to_string(),
            prefix: segments(key, false)?,
        });
    }
    if let Some(rest) = url.strip_prefix("file://") {
        let path = rest
            .strip_prefix('/')
            .ok_or("a file URL names an absolute path without host: file:///abs/path")?;
        return Ok(Root::File {
            dir: segments(path, true)?,
        });
    }
    let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
    Err(format!(
        "scheme {scheme:?} is not one workers read (s3:// or file:///)"
    ))
}

impl Root {
    /// Whether `other` names something strictly below this root.
    fn holds(&self, other: &Root) -> bool {
        match (self, other) {
            (
                Root::S3 { bucket, prefix },
                Root::S3 {
                    bucket: b,
                    prefix: key,
                },
            ) => bucket == b && key.len() > prefix.len() && key.starts_with(prefix),
            (Root::File { dir }, Root::File { dir: path }) => {
                path.len() > dir.len() && path.starts_with(dir)
            }
            _ => false,
        }
    }
}

/// The root of a store URL, which paths in the store are relative to (what workers report as a
/// product's `path`): the bucket of `s3://bucket/prefix`, the file system root of `file:///dir`.
fn store_root(url: &str) -> String {
    match url.split_once("://") {
        Some(("s3", rest)) => format!("s3://{}", rest.split('/').next().unwrap_or_default()),
        Some((scheme, _)) => format!("{scheme}://"),
        None => url.trim_end_matches('/').to_string(),
    }
}

/// How input sources become URLs, and the roots those URLs must lie under.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRoots {
    eodata_url: String,
    output_url: String,
    /// Each allowed root as configured (no credentials: a root with user info does not parse), and
    /// parsed.
    roots: Vec<(String, Root)>,
}

impl InputRoots {
    /// Sources resolved against `eodata_url` (catalogue paths under `/eodata/`) and `output_url`
    /// (`outputs:` sources and relative paths), allowed under those two and under `extra` roots
    /// (`s3://bucket[/prefix]` or `file:///dir`). Returns the roots that do not parse with the
    /// reason, alongside the others (which are kept).
    pub fn new(eodata_url: &str, output_url: &str, extra: &[String]) -> (Self, Vec<String>) {
        let mut roots = InputRoots {
            eodata_url: eodata_url.trim_end_matches('/').to_string(),
            output_url: output_url.trim_end_matches('/').to_string(),
            roots: Vec::new(),
        };
        let mut problems = Vec::new();
        for url in [eodata_url, output_url]
            .into_iter()
            .chain(extra.iter().map(String::as_str))
        {
            if let Err(e) = roots.allow(url) {
                problems.push(e);
            }
        }
        (roots, problems)
    }

    /// Also allows inputs under `url`, a store URL naming at least a bucket or one directory.
    pub fn allow(&mut self, url: &str) -> Result<(), String> {
        // Trailing slashes say nothing, except in `file:///` and `s3://` themselves.
        let trimmed = url.trim_end_matches('/');
        let url = if trimmed.ends_with(':') { url } else { trimmed };
        let root = parse(url).map_err(|e| format!("root {url:?}: {e}"))?;
        if matches!(&root, Root::File { dir } if dir.is_empty()) {
            return Err(format!(
                "root {url:?}: the whole file system cannot be an input root"
            ));
        }
        if !self.roots.iter().any(|(_, r)| *r == root) {
            self.roots.push((url.to_string(), root));
        }
        Ok(())
    }

    /// Also allows the directory of a local catalogue (as it lists entries: canonical, when it
    /// exists).
    pub fn allow_directory(&mut self, dir: &Path) -> Result<(), String> {
        let dir = dir
            .canonicalize()
            .or_else(|_| std::path::absolute(dir))
            .unwrap_or_else(|_| dir.to_path_buf());
        let text = dir
            .to_str()
            .ok_or_else(|| format!("directory {} is not UTF-8", dir.display()))?;
        if !dir.is_absolute() {
            return Err(format!("directory {text:?} is not absolute"));
        }
        let dir = text.trim_matches('/');
        let root = Root::File {
            dir: if dir.is_empty() {
                Vec::new()
            } else {
                dir.split('/').map(String::from).collect()
            },
        };
        if matches!(&root, Root::File { dir } if dir.is_empty()) {
            return Err("the whole file system cannot be an input root".into());
        }
        if !self.roots.iter().any(|(_, r)| *r == root) {
            self.roots.push((format!("file://{text}"), root));
        }
        Ok(())
    }

    /// The allowed roots, as configured.
    pub fn roots(&self) -> Vec<&str> {
        self.roots.iter().map(|(u, _)| u.as_str()).collect()
    }

    /// Where products are uploaded (`s3://bucket/prefix` or `file:///dir`), without a trailing `/`.
    pub fn output_url(&self) -> &str {
        &self.output_url
    }

    /// The URL a worker stages `source` from, if it lies under an allowed root: catalogue paths
    /// under `/eodata/` are read from the eodata store; products of the output store
    /// (`outputs:<path in the store>`, see [`OUTPUT_STORE_SOURCE`]) from the store's root; relative
    /// paths name what an earlier job wrote under the output URL; `s3://` and `file:///` URLs are
    /// kept as they are. Any other absolute path, any other scheme, is refused.
    pub fn resolve(&self, source: &str) -> Result<String, InputRefused> {
        let refused = |reason: String| InputRefused {
            input: source.to_string(),
            reason,
        };
        if source.trim().is_empty() {
            return Err(refused("the source is empty".into()));
        }
        let url = if let Some(path) = source.strip_prefix(OUTPUT_STORE_SOURCE) {
            format!(
                "{}/{}",
                store_root(&self.output_url),
                path.trim_start_matches('/')
            )
        } else if let Some(rest) = source.strip_prefix("/eodata/") {
            format!("{}/{rest}", self.eodata_url)
        } else if source.contains("://") {
            source.to_string()
        } else if source.starts_with('/') {
            return Err(refused(
                "an absolute path that is not a catalogue path under /eodata/".into(),
            ));
        } else {
            format!("{}/{source}", self.output_url)
        };
        let parsed = parse(&url).map_err(|e| refused(format!("{url}: {e}")))?;
        if self.roots.iter().any(|(_, root)| root.holds(&parsed)) {
            Ok(url)
        } else {
            Err(refused(format!(
                "{url} is not below any configured store ({})",
                self.roots().join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(eodata: &str, output: &str, extra: &[&str]) -> InputRoots {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (roots, problems) = InputRoots::new(eodata, output, &extra);
        assert!(problems.is_empty(), "{problems:?}");
        roots
    }

    #[test]
    fn sources_resolve_to_the_stores() {
        let r = roots("s3://eodata", "s3://hrsi/products/", &[]);
        assert_eq!(
            r.resolve("/eodata/Sentinel-2/MSI/L1C/2021/x.SAFE").unwrap(),
            "s3://eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"
        );
        assert_eq!(
            r.resolve("s3://eodata/Sentinel-2/x.SAFE").unwrap(),
            "s3://eodata/Sentinel-2/x.SAFE"
        );
        assert_eq!(
            r.resolve("32TLR/L2A/S2B_MSIL1C_20210413T101021").unwrap(),
            "s3://hrsi/products/32TLR/L2A/S2B_MSIL1C_20210413T101021"
        );
        assert_eq!(
            r.resolve("outputs:products/FSC/2021/x").unwrap(),
            "s3://hrsi/products/FSC/2021/x"
        );
        let files = roots("file:///mnt/eodata", "file:///tmp/out", &[]);
        assert_eq!(
            files.resolve("outputs:tmp/out/FSC/x").unwrap(),
            "file:///tmp/out/FSC/x"
        );
        assert_eq!(
            files.resolve("/eodata/S2/x.SAFE").unwrap(),
            "file:///mnt/eodata/S2/x.SAFE"
        );
    }

    #[test]
    fn anything_outside_the_stores_is_refused_with_the_reason() {
        let r = roots(
            "s3://eodata",
            "file:///tmp/out",
            &["file:///data/eo", "s3://archive/l1c"],
        );
        for (source, reason) in [
            ("file:///root", "not below any configured store"),
            ("file:///root/.ssh/id_rsa", "not below any configured store"),
            ("/eodata/../../root", "`..` segment"),
            ("/eodata/S2/%2e%2e/%2E%2E/root", "`..` segment"),
            ("/eodata/S2/./x", "`.` segment"),
            ("file:///data/eo/../../etc/passwd", "`..` segment"),
            (
                "file:///data/eodata-evil/x",
                "not below any configured store",
            ),
            ("file:///data/eo", "not below any configured store"),
            ("file://host/data/eo/x", "absolute path without host"),
            ("s3://archive/l1cx/y", "not below any configured store"),
            ("s3://archive/l1c", "not below any configured store"),
            ("s3://eodata", "not below any configured store"),
            ("s3://eodata/a%2Fb", "encoded slash"),
            ("s3://other/x", "not below any configured store"),
            ("https://elsewhere.example/x.SAFE", "scheme \"https\""),
            ("/etc/passwd", "not a catalogue path under /eodata/"),
            ("", "empty"),
            ("/eodata/", "not below any configured store"),
            ("outputs:", "not below any configured store"),
            ("outputs:root/secret", "not below any configured store"),
            ("outputs:tmp/out/../../root", "`..` segment"),
            ("../../root", "`..` segment"),
            ("/eodata/S2//x", "empty path segment"),
            ("/eodata/S2/x?y", "no query"),
        ] {
            let err = r.resolve(source).unwrap_err();
            assert_eq!(err.input, source);
            let text = err.to_string();
            assert!(
                text.contains(reason) && text.contains(&format!("{source:?}")),
                "{source}: {text}"
            );
        }
        assert_eq!(
            r.resolve("file:///data/eo/S2/x.SAFE").unwrap(),
            "file:///data/eo/S2/x.SAFE"
        );
        assert_eq!(
            r.resolve("s3://archive/l1c/x.SAFE").unwrap(),
            "s3://archive/l1c/x.SAFE"
        );
    }

    #[test]
    fn roots_must_be_stores_below_the_file_system_root() {
        let extra: Vec<String> = [
            "file:///",
            "http://x/y",
            "s3://",
            "file://relative",
            "s3://b/../c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (roots, problems) = InputRoots::new("s3://eodata", "file:///tmp/out", &extra);
        assert_eq!(problems.len(), extra.len(), "{problems:?}");
        assert_eq!(roots.roots(), vec!["s3://eodata", "file:///tmp/out"]);
    }

    #[test]
    fn a_local_catalogue_directory_is_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = roots("s3://eodata", "file:///tmp/out", &[]);
        let entry = format!(
            "file://{}/X.SAFE",
            dir.path().canonicalize().unwrap().display()
        );
        assert!(r.resolve(&entry).is_err());
        r.allow_directory(dir.path()).unwrap();
        assert_eq!(r.resolve(&entry).unwrap(), entry);
        assert!(r.allow_directory(Path::new("/")).is_err());
    }
}

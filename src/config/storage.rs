//! Where workers read inputs and write products: the storage URLs given to them in each task.

use super::Settings;

/// Schemes workers can read and write.
const SCHEMES: [&str; 2] = ["s3://", "file:///"];

impl Settings {
    /// Where products are uploaded.
    pub fn output_url(&self) -> String {
        if self.output_url.is_empty() {
            format!(
                "file://{}",
                std::env::temp_dir().join("swath-outputs").display()
            )
        } else {
            self.output_url.trim_end_matches('/').to_string()
        }
    }

    /// The URL a worker stages an input from: catalogue paths under `/eodata/` are read from
    /// `eodata_url`; URLs are kept as they are.
    pub fn input_url(&self, source: &str) -> String {
        match source.strip_prefix("/eodata/") {
            Some(rest) => format!("{}/{rest}", self.eodata_url.trim_end_matches('/')),
            None => source.to_string(),
        }
    }

    /// The URL under which a worker uploads products of a job type's `prefix`.
    pub fn output_prefix_url(&self, prefix: &str) -> String {
        format!("{}/{}", self.output_url(), prefix.trim_start_matches('/'))
    }

    pub(super) fn validate_storage(&self, problems: &mut Vec<String>) {
        for (name, value) in [
            ("SWATH_EODATA_URL", self.eodata_url.as_str()),
            ("SWATH_OUTPUT_URL", self.output_url.as_str()),
        ] {
            let known = SCHEMES
                .iter()
                .any(|s| value.starts_with(s) && value.len() > s.len());
            let defaulted = value.is_empty() && name == "SWATH_OUTPUT_URL";
            if !known && !defaulted {
                problems.push(format!(
                    "{name}: {value:?} is neither s3://bucket[/prefix] nor file:///absolute/path"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_paths_map_to_the_eodata_store_and_urls_stay() {
        let s = Settings::default();
        assert_eq!(
            s.input_url("/eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"),
            "s3://eodata/Sentinel-2/MSI/L1C/2021/x.SAFE"
        );
        assert_eq!(s.input_url("file:///data/x.SAFE"), "file:///data/x.SAFE");
        let out = Settings {
            output_url: "s3://hrsi/".into(),
            ..Settings::default()
        };
        assert_eq!(out.output_prefix_url("/FSC/2021/"), "s3://hrsi/FSC/2021/");
    }

    #[test]
    fn bad_storage_urls_are_refused() {
        let s = Settings {
            eodata_url: "http://x".into(),
            output_url: "file://relative".into(),
            ..Settings::default()
        };
        let mut problems = Vec::new();
        s.validate_storage(&mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}

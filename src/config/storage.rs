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

    /// Where workers read and write, with the flavor table.
    pub fn task_locations(&self) -> crate::api::tasks::TaskLocations {
        crate::api::tasks::TaskLocations {
            eodata_url: self.eodata_url.clone(),
            output_url: self.output_url(),
            flavors: self.flavors.clone(),
        }
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

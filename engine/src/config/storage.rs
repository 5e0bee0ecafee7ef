//! Where workers read inputs and write products: the storage URLs given to them in each task, and
//! the roots inputs may be read from (see [`InputRoots`]).

use swath_domain::input_roots::InputRoots;

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

    /// Where inputs may be read from: the eodata and output stores and the extra roots (roots that
    /// do not parse are left out; [`Settings::validate`] reports them).
    pub fn input_roots(&self) -> InputRoots {
        InputRoots::new(
            &self.eodata_url,
            &self.output_url(),
            &self.input_extra_roots,
        )
        .0
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
        let (_, bad_roots) =
            InputRoots::new("s3://eodata", "file:///output", &self.input_extra_roots);
        for problem in bad_roots {
            problems.push(format!("SWATH_INPUT_EXTRA_ROOTS: {problem}"));
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

    #[test]
    fn extra_input_roots_are_checked_and_allowed() {
        let s = Settings {
            input_extra_roots: vec![
                "s3://archive/l1c".into(),
                "file:///".into(),
                "https://x/y".into(),
            ],
            ..Settings::default()
        };
        let mut problems = Vec::new();
        s.validate_storage(&mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems
            .iter()
            .all(|p| p.starts_with("SWATH_INPUT_EXTRA_ROOTS: root")));
        let locations = s.task_locations();
        assert_eq!(
            locations.input_url("s3://archive/l1c/x.SAFE").unwrap(),
            "s3://archive/l1c/x.SAFE"
        );
        // The embedded catalogue's samples are its own inputs.
        let sample = format!(
            "file://{}/S2B_MSIL1C_X.SAFE",
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/catalogue"))
                .canonicalize()
                .unwrap()
                .display()
        );
        assert_eq!(locations.input_url(&sample).unwrap(), sample);
        assert!(locations.input_url("file:///root").is_err());
    }
}

//! The API settings: its bearer tokens, the retry cap and the bulk operations' cap, and the job types an instance runs.

use super::Settings;

/// Shortest token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// Manual retries an original job may have unless configured otherwise (`SWATH_RETRY_CAP`).
pub const DEFAULT_RETRY_CAP: u32 = 3;

/// Most jobs one bulk operation (`POST /jobs/retry`, `POST /jobs/cancel`, `swath jobs retry` and
/// `cancel` by filter) acts on unless configured otherwise (`SWATH_BULK_MAX_JOBS`).
pub const DEFAULT_BULK_MAX_JOBS: u32 = 10_000;

impl Settings {
    pub(super) fn validate_api(&self, problems: &mut Vec<String>) {
        if self.bulk_max_jobs == 0 {
            problems.push("SWATH_BULK_MAX_JOBS: must be at least 1".into());
        }
        for (name, token) in [
            ("SWATH_API_WRITE_TOKEN", &self.api_write_token),
            ("SWATH_API_READ_TOKEN", &self.api_read_token),
        ] {
            let Some(token) = token else { continue };
            let value = token.expose();
            if value.len() < MIN_TOKEN_LEN
                || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(format!(
                    "{name}: at least {MIN_TOKEN_LEN} characters without white space are needed"
                ));
            }
        }
        if let (Some(write), Some(read)) = (&self.api_write_token, &self.api_read_token) {
            if write.expose() == read.expose() {
                problems.push(
                    "SWATH_API_READ_TOKEN: must differ from SWATH_API_WRITE_TOKEN (it would allow writes)"
                        .into(),
                );
            }
        }
    }

    /// The job types this instance configures and dispatches: the enabled ones and those of the
    /// children their jobs create.
    pub fn running_job_types(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.registry()?.with_children(&self.job_types))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tokens_must_be_long_and_distinct_and_are_never_shown() {
        let mut s = Settings {
            api_write_token: Some(Secret::new("short")),
            ..Settings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("SWATH_API_WRITE_TOKEN: at least 16"), "{err}");
        s.api_write_token = Some(Secret::new("a-long-enough-write-token"));
        s.api_read_token = Some(Secret::new("a-long-enough-write-token"));
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("must differ"), "{err}");
        s.api_read_token = Some(Secret::new("a-long-enough-read-token"));
        s.validate().unwrap();
        assert!(!format!("{s:?}").contains("long-enough"));
        assert!(!toml::to_string(&s).unwrap().contains("long-enough"));
        assert!(s.operator_api(None).tokens.writes_enabled());
    }

    #[test]
    fn the_bulk_cap_travels_to_the_api_and_must_be_positive() {
        let mut s = Settings::default();
        assert_eq!(s.bulk_max_jobs, DEFAULT_BULK_MAX_JOBS);
        s.bulk_max_jobs = 25;
        assert_eq!(s.operator_api(None).bulk_max_jobs, 25);
        s.bulk_max_jobs = 0;
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("SWATH_BULK_MAX_JOBS: must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn children_types_run_with_the_enabled_ones() {
        let s = Settings::default();
        assert_eq!(
            s.running_job_types().unwrap(),
            vec![
                "fsc_rlie",
                "fsc_rlie_quicklook",
                "fsc_rlie_check",
                "rlie_s1"
            ]
        );
    }
}

//! The executor settings: which executor runs attempts, how long each in-flight status may last,
//! and how to reach Nomad.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Settings;

/// Where attempts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Worker processes on this machine (the embedded default).
    #[default]
    Local,
    /// Dispatches of parameterized jobs on a Nomad cluster.
    Nomad,
}

/// Where the orchestrator's service is registered, and so how the workers find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceProvider {
    /// Nomad's own service catalogue (`provider = "nomad"`): no Consul needed.
    #[default]
    Nomad,
    /// Consul (`provider = "consul"`), reached through Consul DNS.
    Consul,
}

/// A secret setting: never printed, serialized as `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value: only for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl Settings {
    /// The API as workers reach it.
    pub fn orchestrator_url(&self) -> String {
        if self.orchestrator_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.orchestrator_url.clone()
        }
    }

    /// Where local workers create their work directories.
    pub fn local_work_root(&self) -> PathBuf {
        if self.local_work_root.is_empty() {
            std::env::temp_dir().join("swath-work")
        } else {
            PathBuf::from(&self.local_work_root)
        }
    }

    /// The port of `listen` (8080 when it cannot be read; `listen` is validated on its own).
    pub fn listen_port(&self) -> u16 {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.port())
            .unwrap_or(8080)
    }

    /// The Nomad agent's address (`SWATH_NOMAD_ADDR`), an http(s) URL.
    pub fn nomad_address(&self) -> Result<url::Url, String> {
        url::Url::parse(&self.nomad_addr)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "SWATH_NOMAD_ADDR: {:?} is not an http(s) URL",
                    self.nomad_addr
                )
            })
    }

    pub(super) fn validate_executor(&self, problems: &mut Vec<String>) {
        if !self.orchestrator_url.is_empty() && url::Url::parse(&self.orchestrator_url).is_err() {
            problems.push(format!(
                "SWATH_ORCHESTRATOR_URL: {:?} is not a URL",
                self.orchestrator_url
            ));
        }
        for (name, value) in [
            ("SWATH_TRACK_INTERVAL_SECS", self.track_interval_secs),
            ("SWATH_TIMEOUT_QUEUED_SECS", self.timeout_queued_secs),
            ("SWATH_TIMEOUT_STARTED_SECS", self.timeout_started_secs),
            (
                "SWATH_TIMEOUT_PRE_PROCESSING_SECS",
                self.timeout_pre_processing_secs,
            ),
            (
                "SWATH_TIMEOUT_PROCESSING_SECS",
                self.timeout_processing_secs,
            ),
            (
                "SWATH_TIMEOUT_POST_PROCESSING_SECS",
                self.timeout_post_processing_secs,
            ),
            (
                "SWATH_NOMAD_MAX_IN_FLIGHT",
                u64::from(self.nomad_max_in_flight),
            ),
        ] {
            if value == 0 {
                problems.push(format!("{name}: must be at least 1"));
            }
        }
        if self.nomad_kill_timeout_secs == 0 {
            problems.push("SWATH_NOMAD_KILL_TIMEOUT_SECS: must be at least 1".into());
        }
        if self.nomad_kill_timeout_secs > self.nomad_max_kill_timeout_secs {
            problems.push(format!(
                "SWATH_NOMAD_KILL_TIMEOUT_SECS: {} s is above the Nomad clients' max_kill_timeout (SWATH_NOMAD_MAX_KILL_TIMEOUT_SECS = {} s; Nomad's default is 30 s): the client would SIGKILL the worker after {} s, before its container is stopped. Lower it, or raise max_kill_timeout in the clients' configuration and SWATH_NOMAD_MAX_KILL_TIMEOUT_SECS with it",
                self.nomad_kill_timeout_secs,
                self.nomad_max_kill_timeout_secs,
                self.nomad_max_kill_timeout_secs
            ));
        }
        if !(1..=300).contains(&self.nomad_watch_wait_secs) {
            problems
                .push("SWATH_NOMAD_WATCH_WAIT_SECS: must be from 1 to 300 (Nomad's cap)".into());
        }
        if let Err(e) = self.nomad_address() {
            problems.push(e);
        }
        let id_part = |s: &str| !s.is_empty() && !s.contains([' ', '\0', '/']);
        if !id_part(&self.nomad_job_prefix) {
            problems.push(format!(
                "SWATH_NOMAD_JOB_PREFIX: {:?} cannot start a Nomad job ID (empty, or has a space, NUL or /)",
                self.nomad_job_prefix
            ));
        }
        let service_name = &self.nomad_service_name;
        // Nomad's service names: RFC 1123 labels (`nomad/structs/services.go`), as DNS needs.
        let label = service_name.len() <= 63
            && !service_name.starts_with('-')
            && !service_name.ends_with('-')
            && !service_name.is_empty()
            && service_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !label {
            problems.push(format!(
                "SWATH_NOMAD_SERVICE_NAME: {service_name:?} is not a service name (letters, digits and inner dashes, at most 63)"
            ));
        }
        if self.nomad_namespace.is_empty() {
            problems.push("SWATH_NOMAD_NAMESPACE: must not be empty".into());
        }
        if self.nomad_datacenters.is_empty() {
            problems
                .push("SWATH_NOMAD_DATACENTERS: name at least one datacenter (or \"*\")".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("s3cr3t");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
    }

    #[test]
    fn bad_nomad_settings_are_all_reported() {
        let settings = Settings {
            nomad_addr: "ftp://nomad".into(),
            nomad_job_prefix: "has space".into(),
            nomad_watch_wait_secs: 600,
            nomad_max_in_flight: 0,
            ..Settings::default()
        };
        let mut problems = Vec::new();
        settings.validate_executor(&mut problems);
        let text = problems.join("\n");
        for expected in [
            "SWATH_NOMAD_ADDR",
            "SWATH_NOMAD_JOB_PREFIX",
            "SWATH_NOMAD_WATCH_WAIT_SECS",
            "SWATH_NOMAD_MAX_IN_FLIGHT",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
    }

    #[test]
    fn the_kill_timeout_is_capped_by_the_clients_max_kill_timeout_unless_raised_with_it() {
        let mut problems = Vec::new();
        Settings::default().validate_executor(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let too_long = Settings {
            nomad_kill_timeout_secs: 60,
            ..Settings::default()
        };
        too_long.validate_executor(&mut problems);
        let text = problems.join("\n");
        assert!(
            text.contains("SWATH_NOMAD_KILL_TIMEOUT_SECS: 60 s is above")
                && text.contains("SWATH_NOMAD_MAX_KILL_TIMEOUT_SECS = 30 s"),
            "{text}"
        );
        let allowed = Settings {
            nomad_kill_timeout_secs: 60,
            nomad_max_kill_timeout_secs: 120,
            ..Settings::default()
        };
        let mut problems = Vec::new();
        allowed.validate_executor(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn local_workers_report_to_the_listen_address_by_default() {
        let settings = Settings::default();
        assert_eq!(settings.orchestrator_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn the_service_name_must_be_a_dns_label() {
        let bad = Settings {
            nomad_service_name: "swath.api".into(),
            ..Settings::default()
        };
        let mut problems = Vec::new();
        bad.validate_executor(&mut problems);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("SWATH_NOMAD_SERVICE_NAME: \"swath.api\"")),
            "{problems:?}"
        );
    }
}

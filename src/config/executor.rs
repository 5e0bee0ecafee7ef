//! The executor settings: which executor runs attempts, how long each in-flight status may last,
//! and how to reach Nomad.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swath_job_types::JobStatus;

use super::Settings;
use crate::executor::local::WorkerCommand;
use crate::executor::nomad::spec::{Discovery, WorkerJobSettings};
use crate::executor::nomad::NomadConfig;
use crate::pipeline::retry::StatusTimeouts;

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

    /// The worker command of the local executor: the configured program with `run`, else
    /// `swath-worker run` beside this program, else this program's own `worker run`.
    pub fn local_worker_command(&self) -> anyhow::Result<WorkerCommand> {
        if !self.local_worker_command.is_empty() {
            return Ok(WorkerCommand {
                program: PathBuf::from(&self.local_worker_command),
                args: vec!["run".into()],
            });
        }
        let this = std::env::current_exe()?;
        let beside = this.with_file_name("swath-worker");
        Ok(if beside.is_file() {
            WorkerCommand {
                program: beside,
                args: vec!["run".into()],
            }
        } else {
            WorkerCommand {
                program: this,
                args: vec!["worker".into(), "run".into()],
            }
        })
    }

    /// Where local workers create their work directories.
    pub fn local_work_root(&self) -> PathBuf {
        if self.local_work_root.is_empty() {
            std::env::temp_dir().join("swath-work")
        } else {
            PathBuf::from(&self.local_work_root)
        }
    }

    /// How long each in-flight status may last.
    pub fn status_timeouts(&self) -> StatusTimeouts {
        StatusTimeouts(vec![
            (
                JobStatus::Queued,
                Duration::from_secs(self.timeout_queued_secs),
            ),
            (
                JobStatus::Started,
                Duration::from_secs(self.timeout_started_secs),
            ),
            (
                JobStatus::PreProcessing,
                Duration::from_secs(self.timeout_pre_processing_secs),
            ),
            (
                JobStatus::Processing,
                Duration::from_secs(self.timeout_processing_secs),
            ),
            (
                JobStatus::PostProcessing,
                Duration::from_secs(self.timeout_post_processing_secs),
            ),
        ])
    }

    /// How the Nomad workers find the orchestrator (`SWATH_NOMAD_SERVICE_PROVIDER`).
    pub fn nomad_discovery(&self) -> Discovery {
        let service = self.nomad_service_name.clone();
        match self.nomad_service_provider {
            ServiceProvider::Nomad => Discovery::NomadService { service },
            ServiceProvider::Consul => {
                let url = if self.orchestrator_url.is_empty() {
                    format!("http://{service}.service.consul:{}", self.listen_port())
                } else {
                    self.orchestrator_url.clone()
                };
                Discovery::Consul { service, url }
            }
        }
    }

    /// The port of `listen` (8080 when it cannot be read; `listen` is validated on its own).
    pub fn listen_port(&self) -> u16 {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.port())
            .unwrap_or(8080)
    }

    /// The Nomad executor's configuration.
    pub fn nomad_config(&self) -> Result<NomadConfig, String> {
        let address = url::Url::parse(&self.nomad_addr)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "SWATH_NOMAD_ADDR: {:?} is not an http(s) URL",
                    self.nomad_addr
                )
            })?;
        Ok(NomadConfig {
            address,
            token: self.nomad_token.as_ref().map(|t| t.expose().to_string()),
            region: (!self.nomad_region.is_empty()).then(|| self.nomad_region.clone()),
            jobs: WorkerJobSettings {
                job_prefix: self.nomad_job_prefix.clone(),
                namespace: self.nomad_namespace.clone(),
                datacenters: self.nomad_datacenters.clone(),
                node_pool: self.nomad_node_pool.clone(),
                worker_command: self.nomad_worker_command.clone(),
                discovery: self.nomad_discovery(),
                work_root: self.nomad_work_root.clone(),
                kill_timeout: Duration::from_secs(self.nomad_kill_timeout_secs),
            },
            max_in_flight: self.nomad_max_in_flight,
            purge_on_stop: self.nomad_purge_on_stop,
            request_timeout: Duration::from_secs(30),
            watch_wait: Duration::from_secs(self.nomad_watch_wait_secs),
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
        if let Err(e) = self.nomad_config() {
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
    fn the_local_worker_is_the_configured_one_else_beside_else_this_program() {
        let configured = Settings {
            local_worker_command: "/opt/swath/bin/swath-worker".into(),
            ..Settings::default()
        };
        let command = configured.local_worker_command().unwrap();
        assert_eq!(
            command.program,
            PathBuf::from("/opt/swath/bin/swath-worker")
        );
        assert_eq!(command.args, vec!["run"]);
        // A unit test runs from `deps/`, where no `swath-worker` lies: this program's `worker run`.
        let command = Settings::default().local_worker_command().unwrap();
        assert_eq!(command.program, std::env::current_exe().unwrap());
        assert_eq!(command.args, vec!["worker", "run"]);
    }

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
    fn nomad_workers_find_the_service_the_orchestrator_registers() {
        let settings = Settings::default();
        assert_eq!(
            settings.nomad_config().unwrap().jobs.discovery,
            Discovery::NomadService {
                service: "swath".into()
            }
        );
        let consul = Settings {
            nomad_service_provider: ServiceProvider::Consul,
            listen: "0.0.0.0:9090".into(),
            ..Settings::default()
        };
        assert_eq!(
            consul.nomad_discovery(),
            Discovery::Consul {
                service: "swath".into(),
                url: "http://swath.service.consul:9090".into()
            }
        );
        let balanced = Settings {
            orchestrator_url: "https://swath.example".into(),
            ..consul
        };
        assert!(
            matches!(balanced.nomad_discovery(), Discovery::Consul { url, .. } if url == "https://swath.example")
        );
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

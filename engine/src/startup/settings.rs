//! What the engine takes from the settings: each part's typed configuration, built from the leaf
//! settings of `config` (which import nothing of the engine), and the one check only opening
//! something can make (the catalogue).
//!
//! These are methods of [`Settings`] so that every caller reads them the same way
//! (`settings.nomad_config()`), but they live here, with the wiring that uses them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swath_domain::JobStatus;

use crate::api::auth::ApiTokens;
use crate::api::tasks::TaskLocations;
use crate::api::OperatorApi;
use crate::attempt::failure::{AttemptBackoff, StatusTimeouts};
use crate::catalogue::http::RetryPolicy;
use crate::catalogue::CatalogueOptions;
use crate::config::{ConfigError, ServiceProvider, Settings};
use crate::db::DatabaseUrl;
use crate::executor::local::WorkerCommand;
use crate::executor::nomad::spec::{Discovery, WorkerJobSettings};
use crate::executor::nomad::NomadConfig;
use crate::executor::Executor;
use crate::pipeline::configure::ConfigureSettings;
use crate::pipeline::poller::PollWindow;

/// Loads the settings (defaults, the TOML file `file` or `SWATH_CONFIG`, `SWATH_*` variables) and
/// checks them, the catalogue included: every problem is reported at once.
pub fn load_settings(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let settings = Settings::read(file)?;
    let mut problems = settings.problems();
    problems.extend(settings.catalogue_problem());
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

impl Settings {
    /// Why the catalogue cannot be opened, if it cannot (`SWATH_CATALOGUE: ...`).
    pub fn catalogue_problem(&self) -> Option<String> {
        crate::catalogue::open(&self.catalogue, &self.catalogue_options())
            .err()
            .map(|e| format!("SWATH_CATALOGUE: {e}"))
    }

    /// The database to connect to.
    pub fn database(&self) -> DatabaseUrl {
        DatabaseUrl::new(self.database_url.expose())
    }

    /// How catalogue adapters make their requests.
    pub fn catalogue_options(&self) -> CatalogueOptions {
        CatalogueOptions {
            timeout: Duration::from_secs(self.catalogue_timeout_secs),
            retry: RetryPolicy {
                max_attempts: self.catalogue_max_attempts,
                base_delay: Duration::from_millis(self.catalogue_retry_base_ms),
                max_delay: Duration::from_secs(self.catalogue_retry_max_secs),
            },
            page_size: self.catalogue_page_size,
            stac_sensing_lookback: Duration::from_secs(self.stac_sensing_lookback_days * 86_400),
            max_body_bytes: self.catalogue_max_body_mb.saturating_mul(1024 * 1024),
            input_roots: self.input_roots(),
        }
    }

    /// The continuous polling window.
    pub fn continuous_window(&self) -> PollWindow {
        PollWindow::Continuous {
            overlap: Duration::from_secs(self.ingest_overlap_secs),
            initial_lookback: Duration::from_secs(self.ingest_initial_lookback_days * 86_400),
        }
    }

    /// Backoff between attempts of a job.
    pub fn attempt_backoff(&self) -> AttemptBackoff {
        AttemptBackoff {
            base: Duration::from_secs(self.retry_base_secs),
            max: Duration::from_secs(self.retry_max_secs),
        }
    }

    /// How the configuration loop works.
    pub fn configure_settings(&self) -> ConfigureSettings {
        ConfigureSettings {
            batch: i64::from(self.configure_batch),
            recheck_after: Duration::from_secs(self.configure_recheck_secs),
        }
    }

    /// The operator API's settings, stopping cancelled attempts through `executor`.
    pub fn operator_api(&self, executor: Option<std::sync::Arc<dyn Executor>>) -> OperatorApi {
        if self.api_write_token.is_none() {
            tracing::warn!("the API refuses every write: SWATH_API_WRITE_TOKEN is not set");
        }
        OperatorApi {
            tokens: ApiTokens::new(
                self.api_write_token.as_ref().map(|t| t.expose()),
                self.api_read_token.as_ref().map(|t| t.expose()),
            ),
            retry_cap: self.retry_cap,
            bulk_max_jobs: self.bulk_max_jobs,
            executor,
            catalogue: self.catalogue.clone(),
            catalogue_options: Some(self.catalogue_options()),
        }
    }

    /// Where workers read and write, with the flavor table. Inputs are allowed under
    /// [`Settings::input_roots`] and, when the catalogue is a local directory, under it.
    pub fn task_locations(&self) -> TaskLocations {
        let mut inputs = self.input_roots();
        if let Some(dir) = crate::catalogue::local_directory(&self.catalogue) {
            // A directory that cannot be a root was reported when the catalogue was opened.
            let _ = inputs.allow_directory(Path::new(dir));
        }
        TaskLocations {
            eodata_url: self.eodata_url.clone(),
            output_url: self.output_url(),
            inputs,
            flavors: self.flavors.clone(),
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

    /// The Nomad executor's configuration.
    pub fn nomad_config(&self) -> Result<NomadConfig, String> {
        Ok(NomadConfig {
            address: self.nomad_address()?,
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
    }

    #[test]
    fn the_catalogue_is_checked_with_the_other_settings() {
        let settings = Settings {
            catalogue: "gopher://nowhere".into(),
            ..Settings::default()
        };
        let problem = settings.catalogue_problem().unwrap();
        assert!(problem.starts_with("SWATH_CATALOGUE: "), "{problem}");
        assert_eq!(Settings::default().catalogue_problem(), None);
    }
}

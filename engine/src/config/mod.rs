//! Typed settings: defaults, then an optional TOML file, then `SWATH_*` environment variables.
//!
//! Everything is validated at start-up and every problem is reported at once, naming the setting.
//! Secrets (the database password, tokens, credentials in any URL setting) never appear in `Debug`
//! output or logs (see [`redact`]).
//!
//! Settings are leaf data: this module imports nothing of the engine, only the domain. Each file
//! is one section (the API, the executors, storage, publication, the cluster and its background
//! jobs) with its typed views and its validation; what the engine builds from them (the executor,
//! the publisher, the loops, the catalogue) is built by the `startup` module, which also checks
//! what only opening it can tell (the catalogue).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use swath_domain::flavor::{default_flavors, validate_flavors, WorkerFlavor};
use swath_domain::redact::redact_password;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::types::{builtin_job_types, JobTypeOverrides};

mod api;
mod cluster;
pub mod cron;
mod dates;
mod executor;
mod publication;
mod redact;
mod storage;

pub use api::{DEFAULT_BULK_MAX_JOBS, DEFAULT_RETRY_CAP};
pub use cluster::{ClusterSettings, ScheduleSettings};
pub use dates::parse_date;
pub use executor::{ExecutorKind, Secret, ServiceProvider};
pub use publication::{Encoding, PublisherKind};
pub use redact::redact_url;

/// Prefix of every environment variable swath reads.
pub const ENV_PREFIX: &str = "SWATH_";
/// Environment variable naming the optional TOML file.
pub const CONFIG_FILE_ENV: &str = "SWATH_CONFIG";

/// Longest database name PostgreSQL keeps; longer names are silently truncated by the server (the
/// same bound as the `db` module's, which cannot be imported here: settings are leaf data).
pub const MAX_DATABASE_NAME_LEN: usize = 63;

/// A URL that may carry a password (the database's): kept as given, printed with its password and
/// secret query parameters hidden. The `db` module turns it into its `DatabaseUrl` to connect.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(url.into())
    }

    /// The full URL, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password and secret query parameters replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Every setting of the orchestrator. Field `x` is read from `SWATH_X` or key `x` of the TOML file.
/// `Debug` shows them with every credential hidden.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// PostgreSQL URL; the database is created if it does not exist.
    pub database_url: SecretUrl,
    /// Size of the connection pool.
    pub database_max_connections: u32,
    /// Seconds to wait for a connection before failing.
    pub database_connect_timeout_secs: u64,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Log filter, in `RUST_LOG` syntax.
    pub log: String,
    /// Job types this instance ingests and runs.
    pub job_types: Vec<String>,
    /// Per-job-type overrides (image, command, attempts, flavor, tiles, start date).
    pub job_type_settings: BTreeMap<String, JobTypeOverrides>,
    /// Worker flavor table.
    pub flavors: Vec<WorkerFlavor>,
    /// Catalogue to ingest from: `odata+https://...`, `stac+https://...`, or a directory (`dir:PATH`).
    pub catalogue: String,
    /// Timeout of one catalogue request, in seconds.
    pub catalogue_timeout_secs: u64,
    /// Products per catalogue page (OData caps it at 1000).
    pub catalogue_page_size: u32,
    /// Attempts per catalogue request (timeouts, 429, 5xx and truncated bodies are retried).
    pub catalogue_max_attempts: u32,
    /// First retry delay, in milliseconds; it doubles with each attempt (with jitter).
    pub catalogue_retry_base_ms: u64,
    /// Longest retry delay and longest `Retry-After` honoured, in seconds.
    pub catalogue_retry_max_secs: u64,
    /// Largest catalogue response body read, in MiB: a larger page fails (not retried), and the
    /// pages before it stay ingested.
    pub catalogue_max_body_mb: u64,
    /// How far before the cursor each continuous poll starts again, in seconds.
    pub ingest_overlap_secs: u64,
    /// How far back the first poll of a job type starts, in days.
    pub ingest_initial_lookback_days: u64,
    /// How often `swath serve` polls the catalogue, in seconds.
    pub ingest_interval_secs: u64,
    /// How often the leader reads the products withdrawn from the catalogue, in seconds (0: never).
    pub withdrawal_interval_secs: u64,
    /// For a catalogue that does not list withdrawals (STAC, a directory): how many hours of recent
    /// publications are listed again to find the products that disappeared.
    pub withdrawal_relisting_hours: u64,
    /// How far before the publication window a STAC sensing window starts, in days.
    pub stac_sensing_lookback_days: u64,
    /// Jobs the configuration loop examines per query.
    pub configure_batch: u32,
    /// When a waiting job is examined again if nothing wakes it earlier, in seconds.
    pub configure_recheck_secs: u64,
    /// Longest sleep of the configuration loop between wake-ups, in seconds (a safety net: status
    /// changes wake it at once).
    pub configure_idle_secs: u64,
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Bearer token of the API's writes (cancel, children, retries); without one, writes are
    /// refused. Never printed.
    pub api_write_token: Option<Secret>,
    /// Bearer token of the API's reads; without one, reads are open. Never printed.
    pub api_read_token: Option<Secret>,
    /// Manual retries an original job may have.
    pub retry_cap: u32,
    /// Most jobs one bulk retry or cancel by filter acts on (`POST /jobs/retry`, `POST
    /// /jobs/cancel`, `swath jobs retry|cancel --status ...`): when more match, the call is refused
    /// and the filter must be narrowed. A dry run still counts them.
    pub bulk_max_jobs: u32,
    /// Delay before the second attempt of a job after an external error, in seconds; it doubles
    /// with each attempt (with jitter).
    pub retry_base_secs: u64,
    /// Longest delay between attempts of a job, in seconds.
    pub retry_max_secs: u64,
    /// Where attempts run: `local` (worker processes on this machine) or `nomad`.
    pub executor: ExecutorKind,
    /// The API as workers reach it; empty means `http://` followed by `listen`.
    pub orchestrator_url: String,
    /// How often the tracking loop looks at attempts in flight when nothing wakes it, in seconds.
    pub track_interval_secs: u64,
    /// Longest time in `queued` (dispatched, not started) before the attempt counts as failed, in seconds.
    pub timeout_queued_secs: u64,
    /// Longest time in `started`, in seconds.
    pub timeout_started_secs: u64,
    /// Longest time in `pre_processing`, in seconds.
    pub timeout_pre_processing_secs: u64,
    /// Longest time in `processing`, in seconds.
    pub timeout_processing_secs: u64,
    /// Longest time in `post_processing`, in seconds.
    pub timeout_post_processing_secs: u64,
    /// The worker program the local executor runs (with `run`); empty means `swath-worker` beside
    /// the `swath` binary.
    pub local_worker_command: String,
    /// Directory under which local workers create their work directories; empty means
    /// `swath-work` in the system's temporary directory.
    pub local_work_root: String,
    /// Where catalogue paths under `/eodata/` are read from by workers (`s3://bucket` or `file:///dir`).
    pub eodata_url: String,
    /// Where workers upload products (`s3://bucket/prefix` or `file:///dir`); empty means
    /// `swath-outputs` in the system's temporary directory.
    pub output_url: String,
    /// Further roots inputs may be read from (`s3://bucket[/prefix]` or `file:///dir`), besides
    /// `eodata_url`, `output_url` and the directory of a local catalogue: any other input source is
    /// refused (quarantined at ingestion, the job failed at task build).
    pub input_extra_roots: Vec<String>,
    /// Where publication messages go: `file` (JSON lines, the embedded default) or `rabbitmq`.
    pub publisher: PublisherKind,
    /// The JSON-lines file of the `file` publisher; empty means `swath-publications.jsonl` in the
    /// system's temporary directory.
    pub publication_file: String,
    /// Message bodies: `json` (the feature as a JSON object) or `double_encoded` (a JSON string
    /// holding it, as the original sent it).
    pub publication_encoding: Encoding,
    /// Republications of a product the catalogue refused, before its job fails.
    pub publication_max_republish: i32,
    /// Fields of the publication messages: collection, organisation, S3 host, bucket, eodata root.
    pub publication_target: swath_domain::publication::PublicationTarget,
    /// The timeliness target the dashboard draws: hours from an input's publication to its
    /// products' publication.
    pub timeliness_target_hours: f64,
    /// AMQP URL of the broker (the vhost is its path, `%2f` for `/`); never printed. Unset means
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub rabbitmq_url: Option<Secret>,
    /// Exchange the messages are published to (declared durable).
    pub rabbitmq_exchange: String,
    /// Its kind: `direct`, `topic` or `fanout`.
    pub rabbitmq_exchange_kind: String,
    /// Routing key of the messages.
    pub rabbitmq_routing_key: String,
    /// Queue where the catalogue side reports products it failed to ingest.
    pub rabbitmq_failure_queue: String,
    /// Nomad agent address.
    pub nomad_addr: String,
    /// Nomad ACL token (needs `submit-job`, `dispatch-job` and `read-job` in the namespace).
    pub nomad_token: Option<Secret>,
    /// Nomad namespace of the worker jobs.
    pub nomad_namespace: String,
    /// Nomad region; empty means the agent's own.
    pub nomad_region: String,
    /// Datacenters (globs) the workers may run in.
    pub nomad_datacenters: Vec<String>,
    /// Node pool of the worker nodes.
    pub nomad_node_pool: String,
    /// How the orchestrator registers its API and the workers find it: `nomad` (Nomad's service
    /// catalogue, read by the workers' `nomadService` template) or `consul` (the workers call
    /// `SWATH_ORCHESTRATOR_URL`, by default `http://<service>.service.consul:<listen port>`).
    pub nomad_service_provider: ServiceProvider,
    /// Name of the orchestrator's service.
    pub nomad_service_name: String,
    /// Prefix of the worker job IDs (`<prefix>-<flavor>`).
    pub nomad_job_prefix: String,
    /// Path of `swath-worker` on the worker nodes (run with the `raw_exec` driver).
    pub nomad_worker_command: String,
    /// Directory on the worker nodes under which each job gets its work directory.
    pub nomad_work_root: String,
    /// Attempts per flavor dispatched to Nomad and not yet ended.
    pub nomad_max_in_flight: u32,
    /// Whether stopped attempts are purged from Nomad at once (else Nomad's GC removes them later).
    pub nomad_purge_on_stop: bool,
    /// Seconds between the stop signal and SIGKILL when Nomad stops an attempt (the worker task's
    /// `kill_timeout`): at most [`Settings::nomad_max_kill_timeout_secs`]. The worker stops its
    /// container within it (`SWATH_WORKER_STOP_GRACE_SECS`, by default 10 s less).
    pub nomad_kill_timeout_secs: u64,
    /// The Nomad clients' `max_kill_timeout` in seconds (Nomad's default: 30,
    /// `command/agent/config.go`): a client cuts any longer `kill_timeout` to it, so a larger
    /// `nomad_kill_timeout_secs` is refused unless this is raised too, as an explicit statement that
    /// the clients were configured with a larger `max_kill_timeout`.
    pub nomad_max_kill_timeout_secs: u64,
    /// Longest wait of a blocking query on Nomad, in seconds (Nomad caps it at 300).
    pub nomad_watch_wait_secs: u64,
    /// Name of this instance, in `services` and on the jobs it owns (with the host name).
    pub service_name: String,
    /// Seconds between two heartbeats of an instance.
    pub heartbeat_interval_secs: u64,
    /// Heartbeats an instance may miss before the leader declares it dead.
    pub heartbeat_missed_limit: u32,
    /// How long the claim of a ready job, or the lease of a dispatched one, holds without being
    /// renewed, in seconds.
    pub lease_secs: u64,
    /// Status history of finished jobs older than this is pruned, except each job's last change, in
    /// days; 0 keeps everything.
    pub history_retention_days: u64,
    /// Products ingestion skipped (`skipped_products`, what the completeness report explains gaps
    /// with) not listed again for this many days are deleted by the leader; 0 keeps them.
    pub skipped_products_retention_days: u64,
    /// Longest wait of a graceful shutdown for the steps in flight, in seconds.
    pub shutdown_timeout_secs: u64,
    /// Run the initial sync (a backfill) at start-up if none has succeeded yet, and allow it on
    /// request.
    pub start_initial_sync: bool,
    /// Start of the initial sync's publication window (RFC 3339 or YYYY-MM-DD); empty means each
    /// job type's processing start date (else `ingest_initial_lookback_days` before now).
    pub initial_sync_from: String,
    /// End of the initial sync's publication window; empty means the time it runs.
    pub initial_sync_to: String,
    /// Healing refuses to run before an initial sync has succeeded.
    pub heal_must_wait_for_initial_sync: bool,
    /// Healing runs on its cron pattern (and on request).
    pub enable_healing_job_operation: bool,
    /// When healing runs: a cron pattern with seconds (`sec min hour day month weekday`).
    pub cron_pattern_healing_job: String,
    /// How far back healing re-scans the catalogue, in days.
    pub healing_window_days: u64,
    /// Dumps of the job inventory are written on their cron pattern (and on request).
    pub enable_dump_file_creation: bool,
    /// When dumps are written: a cron pattern with seconds.
    pub cron_pattern_dump_job: String,
    /// Where dumps are written (`s3://bucket[/prefix]` or `file:///dir`); empty means the private
    /// directory `swath-dumps` in the system's temporary directory (never the output store: a dump
    /// holds every job).
    pub dump_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/swath"),
            database_max_connections: 10,
            database_connect_timeout_secs: 10,
            log_format: LogFormat::Human,
            log: "info,sqlx=warn".into(),
            job_types: vec!["fsc_rlie".into(), "rlie_s1".into()],
            job_type_settings: BTreeMap::new(),
            flavors: default_flavors(),
            catalogue: format!(
                "dir:{}",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/catalogue")
            ),
            catalogue_timeout_secs: 60,
            catalogue_page_size: 1000,
            catalogue_max_attempts: 6,
            catalogue_retry_base_ms: 500,
            catalogue_retry_max_secs: 60,
            catalogue_max_body_mb: 64,
            ingest_overlap_secs: 3600,
            ingest_initial_lookback_days: 7,
            ingest_interval_secs: 60,
            withdrawal_interval_secs: 3600,
            withdrawal_relisting_hours: 48,
            stac_sensing_lookback_days: 7,
            configure_batch: 500,
            configure_recheck_secs: 600,
            configure_idle_secs: 30,
            listen: "127.0.0.1:8080".into(),
            api_write_token: None,
            api_read_token: None,
            retry_cap: DEFAULT_RETRY_CAP,
            bulk_max_jobs: DEFAULT_BULK_MAX_JOBS,
            retry_base_secs: 60,
            retry_max_secs: 3600,
            executor: ExecutorKind::Local,
            orchestrator_url: String::new(),
            track_interval_secs: 10,
            timeout_queued_secs: 60 * 60,
            timeout_started_secs: 30 * 60,
            timeout_pre_processing_secs: 30 * 60,
            timeout_processing_secs: 270 * 60,
            timeout_post_processing_secs: 60 * 60,
            local_worker_command: String::new(),
            local_work_root: String::new(),
            eodata_url: "s3://eodata".into(),
            output_url: String::new(),
            input_extra_roots: Vec::new(),
            publisher: PublisherKind::File,
            publication_file: String::new(),
            publication_encoding: Encoding::Json,
            publication_max_republish: 3,
            publication_target: swath_domain::publication::PublicationTarget::default(),
            timeliness_target_hours: 3.0,
            rabbitmq_url: None,
            rabbitmq_exchange: "resto".into(),
            rabbitmq_exchange_kind: "direct".into(),
            rabbitmq_routing_key: "resto".into(),
            rabbitmq_failure_queue: "resto.failed".into(),
            nomad_addr: "http://127.0.0.1:4646".into(),
            nomad_token: None,
            nomad_namespace: "default".into(),
            nomad_region: String::new(),
            nomad_datacenters: vec!["*".into()],
            nomad_node_pool: "default".into(),
            nomad_service_provider: ServiceProvider::Nomad,
            nomad_service_name: "swath".into(),
            nomad_job_prefix: "swath-worker".into(),
            nomad_worker_command: "/usr/local/bin/swath-worker".into(),
            nomad_work_root: "/work".into(),
            nomad_max_in_flight: 50,
            nomad_purge_on_stop: false,
            nomad_kill_timeout_secs: 30,
            nomad_max_kill_timeout_secs: 30,
            nomad_watch_wait_secs: 60,
            service_name: "swath".into(),
            heartbeat_interval_secs: 5,
            heartbeat_missed_limit: 3,
            lease_secs: 60,
            history_retention_days: 365,
            skipped_products_retention_days: 400,
            shutdown_timeout_secs: 30,
            start_initial_sync: false,
            initial_sync_from: String::new(),
            initial_sync_to: String::new(),
            heal_must_wait_for_initial_sync: true,
            enable_healing_job_operation: true,
            cron_pattern_healing_job: "0 0 0 * * *".into(),
            healing_window_days: 7,
            enable_dump_file_creation: true,
            cron_pattern_dump_job: "0 0 0 * * *".into(),
            dump_url: String::new(),
        }
    }
}

/// Settings that could not be loaded or are not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read (wrong type, unknown key, unreadable file).
    #[error("cannot read the configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// Values that were read but do not make sense.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Loads defaults, then the TOML file (`file`, or `SWATH_CONFIG`), then `SWATH_*` variables,
    /// without validating the values (see [`Settings::problems`]).
    pub fn read(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env_file = std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from);
        Self::read_from(
            file.map(Path::to_path_buf).or(env_file),
            Env::prefixed(ENV_PREFIX),
        )
    }

    #[cfg(test)]
    fn load_from(file: Option<PathBuf>, env: Env) -> Result<Settings, ConfigError> {
        let settings = Self::read_from(file, env)?;
        settings.validate()?;
        Ok(settings)
    }

    fn read_from(file: Option<PathBuf>, env: Env) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid(vec![format!(
                    "configuration file {} does not exist",
                    file.display()
                )]));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // SWATH_CONFIG names the file; SWATH_WORKER_* belong to the worker binary; SWATH_TEST_*
        // turn on the test suite's heavy tiers (set by scripts/test, seen by every process it starts).
        let env = env.filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            key != "config" && !key.starts_with("worker_") && !key.starts_with("test_")
        });
        Ok(figment.merge(env).extract().map_err(Box::new)?)
    }

    /// Checks every value and reports all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every problem of the values, each naming its setting (empty when they are valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match url::Url::parse(self.database_url.expose()) {
            Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => {
                match Some(url.path().trim_start_matches('/')).filter(|n| !n.is_empty()) {
                    None => problems.push("SWATH_DATABASE_URL: the URL names no database".to_string()),
                    Some(name) if name.len() > MAX_DATABASE_NAME_LEN => problems.push(format!(
                        "SWATH_DATABASE_URL: database name {name:?} is longer than {MAX_DATABASE_NAME_LEN} bytes (PostgreSQL would truncate it)"
                    )),
                    Some(_) => {}
                }
            }
            Ok(url) => problems.push(format!(
                "SWATH_DATABASE_URL: scheme {:?} is not postgres:// or postgresql://",
                url.scheme()
            )),
            Err(e) => problems.push(format!("SWATH_DATABASE_URL: not a URL ({e})")),
        }
        if self.database_max_connections == 0 {
            problems.push("SWATH_DATABASE_MAX_CONNECTIONS: must be at least 1".into());
        }
        if self.database_connect_timeout_secs == 0 {
            problems.push("SWATH_DATABASE_CONNECT_TIMEOUT_SECS: must be at least 1".into());
        }
        for (name, value) in [
            ("SWATH_CATALOGUE_TIMEOUT_SECS", self.catalogue_timeout_secs),
            (
                "SWATH_CATALOGUE_PAGE_SIZE",
                u64::from(self.catalogue_page_size),
            ),
            (
                "SWATH_CATALOGUE_MAX_ATTEMPTS",
                u64::from(self.catalogue_max_attempts),
            ),
            ("SWATH_CATALOGUE_MAX_BODY_MB", self.catalogue_max_body_mb),
            ("SWATH_INGEST_INTERVAL_SECS", self.ingest_interval_secs),
            ("SWATH_CONFIGURE_BATCH", u64::from(self.configure_batch)),
            ("SWATH_CONFIGURE_RECHECK_SECS", self.configure_recheck_secs),
            ("SWATH_CONFIGURE_IDLE_SECS", self.configure_idle_secs),
        ] {
            if value == 0 {
                problems.push(format!("{name}: must be at least 1"));
            }
        }
        if let Err(e) = self.listen.parse::<std::net::SocketAddr>() {
            problems.push(format!(
                "SWATH_LISTEN: {:?} is not an address and port ({e})",
                self.listen
            ));
        }
        if self.retry_base_secs == 0 || self.retry_max_secs < self.retry_base_secs {
            problems.push("SWATH_RETRY_BASE_SECS and SWATH_RETRY_MAX_SECS: the base must be at least 1 and at most the maximum".into());
        }
        self.validate_api(&mut problems);
        self.validate_executor(&mut problems);
        self.validate_storage(&mut problems);
        self.validate_publication(&mut problems);
        if !(self.timeliness_target_hours.is_finite() && self.timeliness_target_hours > 0.0) {
            problems
                .push("SWATH_TIMELINESS_TARGET_HOURS: must be a number of hours above 0".into());
        }
        self.validate_cluster(&mut problems);
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            problems.push(format!("SWATH_LOG: {e}"));
        }
        if let Err(e) = validate_flavors(&self.flavors) {
            problems.push(format!("SWATH_FLAVORS: {e}"));
        }
        if self.job_types.is_empty() {
            problems.push("SWATH_JOB_TYPES: at least one job type must be enabled".into());
        }
        match self.registry_unchecked() {
            Ok(registry) => {
                for name in &self.job_types {
                    if registry.get(name).is_none() {
                        problems.push(format!(
                            "SWATH_JOB_TYPES: unknown job type {name:?} (known: {})",
                            registry.names().join(", ")
                        ));
                    }
                }
            }
            Err(e) => problems.push(format!("SWATH_JOB_TYPE_SETTINGS: {e}")),
        }
        problems
    }

    fn registry_unchecked(&self) -> Result<JobTypeRegistry, String> {
        let types = builtin_job_types(&self.job_type_settings).map_err(|e| e.to_string())?;
        JobTypeRegistry::new(types, &self.flavors).map_err(|e| e.to_string())
    }

    /// Every shipped job type with this configuration's overrides.
    pub fn registry(&self) -> anyhow::Result<JobTypeRegistry> {
        self.registry_unchecked().map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads settings from the variables and file set up in `jail` (never the real environment).
    fn load_in(jail: &Jail, toml: Option<&str>) -> Result<Settings, ConfigError> {
        let file = toml.map(|text| {
            jail.create_file("swath.toml", text).unwrap();
            jail.directory().join("swath.toml")
        });
        Settings::load_from(file, Env::prefixed(ENV_PREFIX))
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(
            url::Url::parse(s.database_url.expose()).unwrap().path(),
            "/swath"
        );
        assert!(s.catalogue.starts_with("dir:") && s.catalogue.ends_with("samples/catalogue"));
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_DATABASE_MAX_CONNECTIONS", "4");
            jail.set_env("SWATH_JOB_TYPES", "[fsc_rlie, test_job]");
            jail.set_env("SWATH_WORKER_JOB_ID", "12");
            jail.set_env("SWATH_TEST_DOCKER", "1");
            let s = load_in(
                jail,
                Some(
                    r#"
                    database_max_connections = 2
                    log_format = "json"
                    [job_type_settings.fsc_rlie]
                    image = "registry.example/si@sha256:0123"
                    max_attempts = 5
                    "#,
                ),
            )
            .unwrap();
            assert_eq!(s.database_max_connections, 4);
            assert_eq!(s.log_format, LogFormat::Json);
            assert_eq!(s.job_types, vec!["fsc_rlie", "test_job"]);
            let registry = s.registry().unwrap();
            let fsc = registry.get("fsc_rlie").unwrap();
            assert_eq!(fsc.spec().max_attempts, 5);
            Ok(())
        });
    }

    #[test]
    fn a_processing_start_date_may_be_a_day_or_an_rfc_3339_time() {
        let start = |jail: &Jail, toml: &str| {
            let s = load_in(jail, Some(toml))?;
            let registry = s.registry().unwrap();
            Ok::<_, ConfigError>(
                registry
                    .get("fsc_rlie")
                    .unwrap()
                    .spec()
                    .processing_start_date
                    .map(|d| d.to_rfc3339()),
            )
        };
        let midnight = Some("2015-01-01T00:00:00+00:00".to_string());
        Jail::expect_with(|jail| {
            for toml in [
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"2015-01-01\"",
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"2015-01-01T00:00:00Z\"",
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"2015-01-01T01:00:00+01:00\"",
                // TOML's own dates, without quotes.
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = 2015-01-01",
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = 2015-01-01T00:00:00Z",
            ] {
                assert_eq!(start(jail, toml).unwrap(), midnight, "{toml}");
            }
            jail.set_env(
                "SWATH_JOB_TYPE_SETTINGS",
                "{fsc_rlie={processing_start_date=\"2015-01-01\"}}",
            );
            assert_eq!(start(jail, "").unwrap(), midnight, "from the environment");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let err = start(
                jail,
                "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"01/01/2015\"",
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("job_type_settings.fsc_rlie.processing_start_date")
                    && err.contains("\"01/01/2015\"")
                    && err.contains("RFC 3339")
                    && err.contains("YYYY-MM-DD"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn extra_input_roots_and_the_body_cap_are_read_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "SWATH_INPUT_EXTRA_ROOTS",
                "[s3://archive/l1c, file:///data/eo]",
            );
            jail.set_env("SWATH_CATALOGUE_MAX_BODY_MB", "8");
            let s = load_in(jail, None).unwrap();
            assert_eq!(
                s.input_extra_roots,
                vec!["s3://archive/l1c", "file:///data/eo"]
            );
            assert_eq!(s.catalogue_options().max_body_bytes, 8 * 1024 * 1024);
            jail.set_env("SWATH_INPUT_EXTRA_ROOTS", "[file:///]");
            jail.set_env("SWATH_CATALOGUE_MAX_BODY_MB", "0");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.contains("SWATH_INPUT_EXTRA_ROOTS: root \"file:///\": the whole file system")
                    && err.contains("SWATH_CATALOGUE_MAX_BODY_MB: must be at least 1"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn flavors_can_be_replaced_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "SWATH_FLAVORS",
                r#"[{name="hm.medium",cpus=2,memory_mb=8000},{name="hm.large",cpus=4,cpu_mhz=100,memory_mb=9000,placement_attribute="${node.class}",placement_value="big"},{name="eo1.xsmall",cpus=1,memory_mb=500,local_slots=3}]"#,
            );
            let s = load_in(jail, None).unwrap();
            assert_eq!(s.flavors.len(), 3);
            assert_eq!(s.flavors[2].local_slots, 3);
            assert_eq!(s.flavors[1].placement_value(), "big");
            assert_eq!(s.flavors[0].placement_value(), "hm.medium");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_reported_with_the_setting_name() {
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_DATABASE_MAX_CONNECTIONS", "many");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.contains("DATABASE_MAX_CONNECTIONS") && err.contains("\"many\""),
                "{err}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_DATABSE_URL", "postgres://x/y");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.contains("unknown field") && err.to_lowercase().contains("databse_url"),
                "{err}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("SWATH_DATABASE_URL", "mysql://root@localhost/db");
            jail.set_env("SWATH_DATABASE_MAX_CONNECTIONS", "0");
            jail.set_env("SWATH_JOB_TYPES", "[fsc_rlie, snow_magic]");
            jail.set_env("SWATH_LOG", "info,[bad");
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(
                err.contains("SWATH_DATABASE_URL: scheme \"mysql\""),
                "{err}"
            );
            assert!(
                err.contains("SWATH_DATABASE_MAX_CONNECTIONS: must be at least 1"),
                "{err}"
            );
            assert!(err.contains("unknown job type \"snow_magic\""), "{err}");
            assert!(err.contains("SWATH_LOG"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env(
                "SWATH_DATABASE_URL",
                format!("postgres://h/{}", "d".repeat(64)),
            );
            let err = load_in(jail, None).unwrap_err().to_string();
            assert!(err.contains("longer than 63 bytes"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let err = load_in(
                jail,
                Some("[job_type_settings.fsc_rlie]\nworker_flavor = \"nope\""),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("needs worker flavor \"nope\""), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            let missing = jail.directory().join("missing.toml");
            let err = Settings::load_from(Some(missing), Env::prefixed(ENV_PREFIX)).unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn password_is_never_printed() {
        let url = SecretUrl::new("postgres://swath:s3cret@db:5432/swath");
        assert_eq!(url.redacted(), "postgres://swath:***@db:5432/swath");
        let query = SecretUrl::new("postgres://swath@db/swath?sslmode=require&password=s3cret");
        assert_eq!(
            query.redacted(),
            "postgres://swath@db/swath?sslmode=require&password=***"
        );
        assert_eq!(
            format!("{query:?}"),
            "SecretUrl(postgres://swath@db/swath?sslmode=require&password=***)"
        );
        let s = Settings {
            database_url: url.clone(),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://swath:s3cret@db:5432/swath");
    }
}

//! The worker's configuration: who it works for (job, attempt, token) and where (orchestrator, work root).
//!
//! Values come from the command line or `SWATH_WORKER_*` variables; the job id and attempt also from
//! Nomad's dispatch meta (`NOMAD_META_job_id`, `NOMAD_META_attempt`). The token is read from the
//! environment (`SWATH_WORKER_TOKEN`) or from a file (`SWATH_WORKER_TOKEN_FILE`, where Nomad writes
//! the dispatch payload), never from the command line, so that it never shows in a process listing;
//! it is never printed.
//!
//! The limits put on each container (`SWATH_WORKER_PIDS_LIMIT`, `SWATH_WORKER_NOFILE_LIMIT`,
//! `SWATH_WORKER_NPROC_LIMIT`, `SWATH_WORKER_TMP_SIZE_MB`) are settings of the worker too, with
//! defaults sized for real science (see [`ContainerLimits`]); the process runtime enforces none of
//! them.
//!
//! Stopping: Nomad stops an attempt by signalling the worker, then SIGKILLs it after the task's
//! kill timeout, which the client caps at its `max_kill_timeout` (30 s by default). The worker then
//! stops its container like `docker stop` with a stop grace (`SWATH_WORKER_STOP_GRACE_SECS`)
//! shorter than that kill timeout (`SWATH_WORKER_KILL_TIMEOUT_SECS`, the job's `kill_timeout`), so
//! that the container is gone before the worker is killed; by default the grace is the kill timeout
//! less 10 s (at least half of it), left for removing the container and reporting.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::runtime::ContainerLimits;

/// Highest `nofile` limit Linux accepts by default (`fs.nr_open`): a container asking for more
/// fails to start.
const MAX_NOFILE: u64 = 1 << 20;
/// Fewest processes a container needs: its init, the program, and a few helpers.
const MIN_PIDS: u32 = 8;
/// Time the default stop grace leaves, within the kill timeout, to remove the container and report.
const STOP_MARGIN_SECS: u64 = 10;
/// The Nomad variable with the allocation the task runs in.
const NOMAD_ALLOC_ENV: &str = "NOMAD_ALLOC_ID";

/// The default stop grace for a kill timeout of `kill_timeout_secs`: the kill timeout less
/// [`STOP_MARGIN_SECS`], but at least half of it (20 s for Nomad's default cap of 30 s).
pub fn default_stop_grace_secs(kill_timeout_secs: u64) -> u64 {
    kill_timeout_secs
        .saturating_sub(STOP_MARGIN_SECS)
        .max(kill_timeout_secs / 2)
}

/// A secret string that prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret value, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Command-line and environment options of the worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The job's database id (else `NOMAD_META_job_id`).
    #[arg(long, env = "SWATH_WORKER_JOB_ID")]
    pub job_id: Option<i64>,
    /// The attempt this run is for (else `NOMAD_META_attempt`).
    #[arg(long, env = "SWATH_WORKER_ATTEMPT")]
    pub attempt: Option<i32>,
    /// Base URL of the orchestrator's API.
    #[arg(
        long,
        env = "SWATH_WORKER_ORCHESTRATOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub orchestrator_url: String,
    /// Directory under which `<uid>` work directories are created.
    #[arg(long, env = "SWATH_WORKER_WORK_ROOT", default_value = "/work")]
    pub work_root: PathBuf,
    /// Timeout of each request to the orchestrator, in seconds.
    #[arg(long, env = "SWATH_WORKER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Log format: `human` or `json`.
    #[arg(long, env = "SWATH_WORKER_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Where the scientific code runs: `docker`, `process`, or `auto` (Docker when an engine
    /// answers, else a process).
    #[arg(long, env = "SWATH_WORKER_RUNTIME", default_value = "auto", value_parser = ["auto", "docker", "process"])]
    pub runtime: String,
    /// Most processes and threads each container may hold at once (its pids cgroup): a fork bomb
    /// stops there.
    #[arg(long, env = "SWATH_WORKER_PIDS_LIMIT", default_value_t = ContainerLimits::default().pids)]
    pub pids_limit: u32,
    /// Open files per process in a container (`RLIMIT_NOFILE`); at most the engine's own hard
    /// limit where its runtime lacks `CAP_SYS_RESOURCE`, else containers fail to start.
    #[arg(long, env = "SWATH_WORKER_NOFILE_LIMIT", default_value_t = ContainerLimits::default().nofile)]
    pub nofile_limit: u64,
    /// `RLIMIT_NPROC` of the code in a container. Linux counts it per uid over the whole node, so
    /// it bounds the processes of all the attempts running as the same user together: size it for
    /// the attempts a node runs at once (the default: four at the default pids limit).
    #[arg(long, env = "SWATH_WORKER_NPROC_LIMIT", default_value_t = ContainerLimits::default().nproc)]
    pub nproc_limit: u64,
    /// Size of the tmpfs at `/tmp` in a container, in MiB (it counts against the memory limit).
    #[arg(long, env = "SWATH_WORKER_TMP_SIZE_MB", default_value_t = ContainerLimits::default().tmp_mb)]
    pub tmp_size_mb: u64,
    /// The task's kill timeout in seconds (its `kill_timeout`, capped by the Nomad client's
    /// `max_kill_timeout`, 30 s by default): how long Nomad waits after its stop signal before it
    /// SIGKILLs the worker.
    #[arg(long, env = "SWATH_WORKER_KILL_TIMEOUT_SECS", default_value_t = 30)]
    pub kill_timeout_secs: u64,
    /// Seconds a container gets between SIGTERM and SIGKILL when the attempt is stopped; must be
    /// shorter than the kill timeout. Default: the kill timeout less 10 s, at least half of it.
    #[arg(long, env = "SWATH_WORKER_STOP_GRACE_SECS")]
    pub stop_grace_secs: Option<u64>,
}

/// A validated worker configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The job.
    pub job_id: i64,
    /// The attempt.
    pub attempt: i32,
    /// The attempt's one-time bootstrap secret from the dispatch, exchanged for the attempt token
    /// on the first call to the orchestrator.
    pub token: Token,
    /// The orchestrator's base URL.
    pub orchestrator_url: url::Url,
    /// Work directory root.
    pub work_root: PathBuf,
    /// Request timeout in seconds.
    pub request_timeout_secs: u64,
    /// Whether logs are JSON lines.
    pub json_logs: bool,
    /// `auto`, `docker` or `process`.
    pub runtime: String,
    /// Limits put on each container.
    pub limits: ContainerLimits,
    /// Time a container gets between SIGTERM and SIGKILL when the attempt is stopped.
    pub stop_grace: Duration,
    /// The Nomad allocation the worker runs in (`NOMAD_ALLOC_ID`), a label of its containers.
    pub nomad_alloc: Option<String>,
}

/// A configuration that cannot work, with every problem named.
#[derive(Debug, thiserror::Error)]
#[error("invalid worker configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl WorkerConfig {
    /// Validates `args`, taking fallbacks and the token from `env` (a variable lookup).
    pub fn from_args(
        args: &WorkerArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let from_meta = |names: &[&str]| names.iter().find_map(|n| env(n));
        let job_id = match args.job_id {
            Some(id) => Some(id),
            None => match from_meta(&["NOMAD_META_job_id", "NOMAD_META_JOB_ID"]) {
                Some(v) => v
                    .parse()
                    .map_err(|_| problems.push(format!("NOMAD_META_job_id {v:?} is not a number")))
                    .ok(),
                None => None,
            },
        };
        let attempt = match args.attempt {
            Some(a) => Some(a),
            None => match from_meta(&["NOMAD_META_attempt", "NOMAD_META_ATTEMPT"]) {
                Some(v) => v
                    .parse()
                    .map_err(|_| problems.push(format!("NOMAD_META_attempt {v:?} is not a number")))
                    .ok(),
                None => None,
            },
        };
        match job_id {
            Some(id) if id < 1 => problems.push(format!("job id {id} must be positive")),
            None if problems.is_empty() => problems
                .push("no job id: pass --job-id, SWATH_WORKER_JOB_ID or NOMAD_META_job_id".into()),
            _ => {}
        }
        match attempt {
            Some(a) if a < 1 => problems.push(format!("attempt {a} must be at least 1")),
            None => problems.push(
                "no attempt: pass --attempt, SWATH_WORKER_ATTEMPT or NOMAD_META_attempt".into(),
            ),
            _ => {}
        }
        let token = match env("SWATH_WORKER_TOKEN").filter(|t| !t.trim().is_empty()) {
            Some(token) => Some(token),
            None => match env("SWATH_WORKER_TOKEN_FILE") {
                Some(path) => match std::fs::read_to_string(&path) {
                    Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                    Ok(_) => {
                        problems.push(format!("SWATH_WORKER_TOKEN_FILE {path} is empty"));
                        None
                    }
                    Err(e) => {
                        problems.push(format!("SWATH_WORKER_TOKEN_FILE {path}: {e}"));
                        None
                    }
                },
                None => {
                    problems.push(
                        "neither SWATH_WORKER_TOKEN nor SWATH_WORKER_TOKEN_FILE is set (the attempt's bootstrap secret from the dispatch)".into(),
                    );
                    None
                }
            },
        };
        let url = match url::Url::parse(&args.orchestrator_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                problems.push(format!(
                    "orchestrator URL scheme {:?} is not http or https",
                    u.scheme()
                ));
                None
            }
            Err(e) => {
                problems.push(format!("orchestrator URL {:?}: {e}", args.orchestrator_url));
                None
            }
        };
        if args.request_timeout_secs == 0 {
            problems.push("request timeout must be at least 1 second".into());
        }
        if !args.work_root.is_absolute() {
            problems.push(format!(
                "work root {} must be an absolute path",
                args.work_root.display()
            ));
        }
        if args.pids_limit < MIN_PIDS {
            problems.push(format!(
                "pids limit {} is below {MIN_PIDS} (the container's init and program need some)",
                args.pids_limit
            ));
        }
        if !(1..=MAX_NOFILE).contains(&args.nofile_limit) {
            problems.push(format!(
                "nofile limit {} is not between 1 and {MAX_NOFILE}",
                args.nofile_limit
            ));
        }
        if args.nproc_limit == 0 {
            problems.push("nproc limit must be at least 1".into());
        }
        if args.tmp_size_mb == 0 {
            problems.push("tmp size must be at least 1 MiB".into());
        }
        if args.kill_timeout_secs == 0 {
            problems.push("kill timeout must be at least 1 second".into());
        }
        let stop_grace_secs = args
            .stop_grace_secs
            .unwrap_or_else(|| default_stop_grace_secs(args.kill_timeout_secs));
        if args.kill_timeout_secs > 0 && stop_grace_secs >= args.kill_timeout_secs {
            problems.push(format!(
                "stop grace {stop_grace_secs} s (SWATH_WORKER_STOP_GRACE_SECS) must be shorter than the kill timeout {} s (SWATH_WORKER_KILL_TIMEOUT_SECS): Nomad would kill the worker before its container stops",
                args.kill_timeout_secs
            ));
        }
        match (job_id, attempt, token, url) {
            (Some(job_id), Some(attempt), Some(token), Some(orchestrator_url))
                if problems.is_empty() =>
            {
                Ok(WorkerConfig {
                    job_id,
                    attempt,
                    token: Token(token),
                    orchestrator_url,
                    work_root: args.work_root.clone(),
                    request_timeout_secs: args.request_timeout_secs,
                    json_logs: args.log_format == "json",
                    runtime: args.runtime.clone(),
                    limits: ContainerLimits {
                        pids: args.pids_limit,
                        nofile: args.nofile_limit,
                        nproc: args.nproc_limit,
                        tmp_mb: args.tmp_size_mb,
                    },
                    stop_grace: Duration::from_secs(stop_grace_secs),
                    nomad_alloc: env(NOMAD_ALLOC_ENV).filter(|a| !a.trim().is_empty()),
                })
            }
            _ => Err(ConfigError(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: WorkerArgs,
    }

    fn parse(argv: &[&str]) -> WorkerArgs {
        TestCli::try_parse_from(std::iter::once("w").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_nomad_meta_and_hides_the_token() {
        let args = parse(&["--work-root", "/tmp/work"]);
        let cfg = WorkerConfig::from_args(
            &args,
            env_of(&[
                ("NOMAD_META_job_id", "42"),
                ("NOMAD_META_attempt", "2"),
                ("SWATH_WORKER_TOKEN", "t0p-secret"),
            ]),
        )
        .unwrap();
        assert_eq!((cfg.job_id, cfg.attempt), (42, 2));
        assert_eq!(cfg.limits, ContainerLimits::default());
        assert_eq!(cfg.token.expose(), "t0p-secret");
        assert!(!format!("{cfg:?}").contains("t0p-secret"));
    }

    #[test]
    fn reports_every_problem() {
        let args = parse(&[
            "--attempt",
            "0",
            "--orchestrator-url",
            "ftp://x",
            "--work-root",
            "rel",
            "--request-timeout-secs",
            "0",
            "--pids-limit",
            "2",
            "--nofile-limit",
            "2000000",
            "--nproc-limit",
            "0",
            "--tmp-size-mb",
            "0",
        ]);
        let err = WorkerConfig::from_args(&args, env_of(&[("NOMAD_META_job_id", "abc")]))
            .unwrap_err()
            .to_string();
        for expected in [
            "\"abc\" is not a number",
            "attempt 0",
            "SWATH_WORKER_TOKEN",
            "\"ftp\"",
            "absolute path",
            "timeout",
            "pids limit 2 is below 8",
            "nofile limit 2000000",
            "nproc limit",
            "tmp size",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
        let err = WorkerConfig::from_args(&parse(&[]), env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no job id"), "{err}");
    }

    #[test]
    fn container_limits_are_settings() {
        let args = parse(&[
            "--job-id",
            "1",
            "--attempt",
            "1",
            "--pids-limit",
            "64",
            "--nofile-limit",
            "1024",
            "--nproc-limit",
            "512",
            "--tmp-size-mb",
            "16",
        ]);
        let cfg = WorkerConfig::from_args(&args, env_of(&[("SWATH_WORKER_TOKEN", "t")])).unwrap();
        assert_eq!(
            cfg.limits,
            ContainerLimits {
                pids: 64,
                nofile: 1024,
                nproc: 512,
                tmp_mb: 16
            }
        );
    }

    #[test]
    fn the_stop_grace_is_shorter_than_the_kill_timeout_and_the_alloc_comes_from_nomad() {
        let env = env_of(&[
            ("SWATH_WORKER_TOKEN", "t"),
            ("NOMAD_ALLOC_ID", "5d6c1f2a-0000-4000-8000-000000000001"),
        ]);
        let cfg =
            WorkerConfig::from_args(&parse(&["--job-id", "1", "--attempt", "1"]), &env).unwrap();
        assert_eq!(cfg.stop_grace, Duration::from_secs(20), "30 s less 10 s");
        assert_eq!(
            cfg.nomad_alloc.as_deref(),
            Some("5d6c1f2a-0000-4000-8000-000000000001")
        );
        let short = parse(&[
            "--job-id",
            "1",
            "--attempt",
            "1",
            "--kill-timeout-secs",
            "6",
        ]);
        let cfg = WorkerConfig::from_args(&short, &env).unwrap();
        assert_eq!(cfg.stop_grace, Duration::from_secs(3), "at least half");
        let too_long = parse(&["--job-id", "1", "--attempt", "1", "--stop-grace-secs", "30"]);
        let err = WorkerConfig::from_args(&too_long, &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stop grace 30 s") && err.contains("kill timeout 30 s"),
            "{err}"
        );
    }

    #[test]
    fn the_token_can_come_from_the_dispatch_payload_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("attempt-token");
        std::fs::write(&file, "from-payload\n").unwrap();
        let path = file.display().to_string();
        let env = move |k: &str| match k {
            "NOMAD_META_job_id" => Some("7".to_string()),
            "NOMAD_META_attempt" => Some("1".to_string()),
            "SWATH_WORKER_TOKEN_FILE" => Some(path.clone()),
            _ => None,
        };
        let cfg = WorkerConfig::from_args(&parse(&["--work-root", "/tmp/w"]), env).unwrap();
        assert_eq!(cfg.token.expose(), "from-payload");
        let missing =
            |k: &str| (k == "SWATH_WORKER_TOKEN_FILE").then(|| "/nonexistent/t".to_string());
        let err = WorkerConfig::from_args(&parse(&["--job-id", "1", "--attempt", "1"]), missing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SWATH_WORKER_TOKEN_FILE /nonexistent/t"),
            "{err}"
        );
    }
}

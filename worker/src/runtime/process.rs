//! The process runtime: the code runs on the host, in its own process group, in the work directory.
//!
//! Used when no Docker engine answers, for the demo and the tests: it gives no isolation (the code
//! sees the host's filesystem, network and processes as its user does). What it enforces, and how:
//! - deadline, disk limit and cancellation: SIGTERM to the whole process group, SIGKILL after a grace period;
//!   whatever is left of the group is killed when the code exits, and on every other path;
//! - memory: `RLIMIT_AS` set by `/bin/sh`'s `ulimit -v` just before it execs the program (no
//!   privilege needed, nothing escapes it). Approximate: it limits address space, not resident
//!   memory, so it also counts mappings that use none. Going over it makes allocations fail inside
//!   the code, which reports it as its own exit code: this runtime never reports `OutOfMemory`;
//! - CPU: not limited (the deadline bounds the time);
//! - network and read-only inputs: not enforced;
//! - user: a worker running as root runs the code as the spec's user (default `nobody`), after
//!   checking that this user can reach the work directory (else an error naming both);
//! - environment: cleared, then `PATH` (the worker's), `HOME` and `SWATH_WORK` (the work
//!   directory), `LANG=C.UTF-8`, and the spec's variables: the worker's own secrets never leak.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::disk;
use super::logs::{LineSender, LineSplitter, LogSink, Stream};
use super::user::{check_can_enter, prepare_work_dir, RunUser};
use super::{RunOutcome, RunReport, RunSpec, Runtime, RuntimeError, WORK_ENV};

/// Time between SIGTERM and SIGKILL.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long the output of a finished run may take to reach the log.
const LOG_DRAIN: Duration = Duration::from_secs(5);
/// `PATH` of the code when the worker has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Sets the memory limit (`$1`, KiB), then becomes the program (the other arguments).
const LIMIT_SCRIPT: &str =
    "ulimit -v \"$1\" || echo 'swath: cannot limit the memory of the code' >&2; shift; exec \"$@\"";

/// Runs the code as a plain process on the host.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    grace: Duration,
}

impl Default for ProcessRuntime {
    fn default() -> Self {
        ProcessRuntime::new()
    }
}

impl ProcessRuntime {
    /// A process runtime with a 5 s grace period between SIGTERM and SIGKILL.
    pub fn new() -> Self {
        ProcessRuntime {
            grace: DEFAULT_GRACE,
        }
    }

    /// The same, with another grace period between SIGTERM and SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    fn command(spec: &RunSpec, program: &Path, path: &OsStr, user: RunUser) -> Command {
        let mut cmd = if spec.memory_mb > 0 {
            let mut cmd = Command::new("/bin/sh");
            cmd.args(["-c", LIMIT_SCRIPT, "swath-memory-limit"])
                .arg(spec.memory_mb.saturating_mul(1024).to_string())
                .arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.args(&spec.command[1..])
            .current_dir(&spec.work_dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &spec.work_dir)
            .env("LANG", "C.UTF-8")
            .envs(&spec.env)
            .env(WORK_ENV, &spec.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if user != RunUser::current() {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    /// SIGTERM to the group, then SIGKILL if the program is still there after the grace period.
    async fn terminate(&self, group: &ProcessGroup, child: &mut Child) {
        group.signal(Signal::SIGTERM);
        if tokio::time::timeout(self.grace, child.wait())
            .await
            .is_err()
        {
            group.signal(Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
}

/// How the wait for the program ended.
enum Stop {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    Deadline,
    /// The work directory holds this many bytes, past the disk limit.
    Disk(u64),
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn run(
        &self,
        spec: &RunSpec,
        cancel: CancellationToken,
    ) -> Result<RunReport, RuntimeError> {
        let user = RunUser::resolve(spec.user.as_deref())?;
        let program = spec
            .command
            .first()
            .ok_or_else(|| RuntimeError::InvalidSpec("the command is empty".into()))?;
        check_can_enter(&spec.work_dir, user)?;
        prepare_work_dir(&spec.work_dir, user)?;
        let mut sink = LogSink::open(&spec.work_dir, &spec.name).await?;
        sink.note(&format!(
            "process runtime: {:?} as {}",
            spec.command,
            user.docker_user()
        ))
        .await;

        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        let spawn_error = |source| RuntimeError::Spawn {
            program: program.clone(),
            user: user.docker_user(),
            work_dir: spec.work_dir.clone(),
            source,
        };
        let resolved = find_program(program, &path, &spec.work_dir).map_err(spawn_error)?;
        let started = Instant::now();
        let mut child = Self::command(spec, &resolved, &path, user)
            .spawn()
            .map_err(spawn_error)?;
        let Some(pid) = child.id() else {
            return Err(spawn_error(std::io::Error::other(
                "the started program has no pid",
            )));
        };
        let group = ProcessGroup::new(pid);
        tracing::info!(job = %spec.name, pid, program = %program, "code started as a process");

        let (tx, writer) = sink.spawn_writer();
        let out = tokio::spawn(pump(child.stdout.take(), Stream::Stdout, tx.clone()));
        let err = tokio::spawn(pump(child.stderr.take(), Stream::Stderr, tx));

        let stop = tokio::select! {
            status = child.wait() => Stop::Exited(status),
            _ = cancel.cancelled() => Stop::Cancelled,
            _ = tokio::time::sleep(spec.deadline) => Stop::Deadline,
            used = disk::exceeded(spec.work_dir.clone(), spec.disk_mb) => Stop::Disk(used),
        };
        let outcome = match stop {
            Stop::Exited(Ok(status)) => Ok(exit_outcome(status)),
            Stop::Exited(Err(source)) => Err(spawn_error(source)),
            Stop::Cancelled => {
                self.terminate(&group, &mut child).await;
                Ok(RunOutcome::Cancelled)
            }
            Stop::Deadline => {
                self.terminate(&group, &mut child).await;
                Ok(RunOutcome::DeadlineExceeded)
            }
            Stop::Disk(used_bytes) => {
                self.terminate(&group, &mut child).await;
                Err(RuntimeError::DiskLimit {
                    path: spec.work_dir.clone(),
                    used_bytes,
                    limit_mb: spec.disk_mb,
                })
            }
        };
        let duration = started.elapsed();
        group.kill();

        let pumps = async {
            let _ = tokio::join!(out, err);
        };
        if tokio::time::timeout(LOG_DRAIN, pumps).await.is_err() {
            tracing::warn!(job = %spec.name, "the code's output did not close in time; its end may be missing from the log");
        }
        match writer.await {
            Ok(mut sink) => {
                sink.note(&format!("{outcome:?} after {duration:?}")).await;
            }
            Err(e) => tracing::warn!(job = %spec.name, error = %e, "the log writer failed"),
        }
        tracing::info!(job = %spec.name, ?outcome, ?duration, "code ended");
        Ok(RunReport {
            outcome: outcome?,
            software_version: None,
            duration,
        })
    }
}

/// The outcome of a program that ended by itself; a signal `s` is reported as `128 + s`.
fn exit_outcome(status: ExitStatus) -> RunOutcome {
    let code = status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|s| 128 + i64::from(s)))
        .unwrap_or(-1);
    RunOutcome::Exited { code }
}

/// The program to execute: `program` itself when it has a slash (relative to the work directory),
/// else the first executable file of that name in `path`.
fn find_program(program: &str, path: &OsStr, work_dir: &Path) -> std::io::Result<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![work_dir.join(program)]
    } else {
        std::env::split_paths(path)
            .map(|dir| dir.join(program))
            .collect()
    };
    candidates
        .into_iter()
        .find(|p| executable(p))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such executable file (looked in the work directory or PATH)",
            )
        })
}

/// Reads one output of the program and sends its lines to the log.
async fn pump<R: AsyncRead + Unpin>(reader: Option<R>, stream: Stream, tx: LineSender) {
    let Some(mut reader) = reader else {
        return;
    };
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for line in splitter.push(&buf[..n]) {
                    if tx.send((stream, line)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = tx.send((stream, line)).await;
    }
}

/// The program's process group, killed when dropped unless already killed.
struct ProcessGroup {
    pgid: Pid,
    killed: std::sync::atomic::AtomicBool,
}

impl ProcessGroup {
    fn new(leader: u32) -> Self {
        ProcessGroup {
            pgid: Pid::from_raw(leader as i32),
            killed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Sends `signal` to every process of the group; a group already gone is not an error.
    fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pgid = %self.pgid, %signal, error = %e, "cannot signal the code's process group")
            }
        }
    }

    /// SIGKILL to whatever is left of the group, once.
    fn kill(&self) {
        if !self.killed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.signal(Signal::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

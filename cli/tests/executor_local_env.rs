//! What a local worker and the code it runs can see of the orchestrator's environment: nothing.
//!
//! The orchestrator is this test program run again, as a separate process holding the secrets of a
//! real deployment in its environment (database URL, API tokens, Nomad token, broker URL, ...); its
//! local executor starts this program a third time as the worker, which runs a shell script through
//! the process runtime. The script copies `/proc/$PPID/environ` (the worker's environment) and its
//! own environment to its outputs, and the test looks for the secrets there. The orchestrator and
//! the worker run as `nobody` when the tests run as root, as a local deployment runs as one user:
//! the code can then read its parent's environment, which is what the attack needs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use swath_engine::executor::local::{LocalExecutor, WorkerCommand};
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor};
use swath_worker::runtime::{CancellationToken, ProcessRuntime, RunOutcome, RunSpec, Runtime};

use support::tiny_flavor;

/// What the orchestrator's environment holds, with the names `swath serve` reads.
const SECRETS: &[(&str, &str)] = &[
    (
        "SWATH_DATABASE_URL",
        "postgres://swath:db-pass-4f1c@127.0.0.1:5432/swath",
    ),
    ("SWATH_API_WRITE_TOKEN", "write-token-9b2e"),
    ("SWATH_API_READ_TOKEN", "read-token-77aa"),
    ("SWATH_NOMAD_TOKEN", "nomad-token-c3d0"),
    (
        "SWATH_RABBITMQ_URL",
        "amqp://swath:rabbit-pass-51e8@127.0.0.1:5672/%2f",
    ),
    ("PGPASSWORD", "pg-pass-e21b"),
    ("AWS_SECRET_ACCESS_KEY", "orchestrator-aws-secret-0d3a"),
];
/// The storage credentials the executor is explicitly given for its workers.
const GIVEN: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "given-key-id-6a"),
    ("AWS_SECRET_ACCESS_KEY", "given-secret-8c"),
];
/// The attempt's own token: the worker's, never its code's.
const WORKER_TOKEN: &str = "worker-token-5d7f";
/// Tells this program, run again, that it is the orchestrator, and where the work root is.
const ORCHESTRATOR_ROLE: &str = "SWATH_TEST_ORCHESTRATOR_WORK_ROOT";
/// Where the worker puts the attempt's work directory, under the work root.
const ATTEMPT_DIR: &str = "attempt";

/// This test program under `dir`, where a user other than root can run it.
fn runnable_copy(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let copy = dir.join("env-probe");
    if std::fs::hard_link(&exe, &copy).is_err() {
        std::fs::copy(&exe, &copy).unwrap();
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// The `NAME=value` entries of a `/proc/<pid>/environ` copy.
fn entries(path: &Path) -> Vec<String> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    bytes
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

#[test]
fn local_workers_and_their_code_never_see_the_orchestrators_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = runnable_copy(dir.path());
    let work_root = dir.path().join("work");
    std::fs::create_dir(&work_root).unwrap();
    std::fs::set_permissions(&work_root, std::fs::Permissions::from_mode(0o777)).unwrap();

    let mut orchestrator = Command::new(&program);
    orchestrator
        .args(["--ignored", "--exact", "orchestrator_role", "--nocapture"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(ORCHESTRATOR_ROLE, &work_root)
        .envs(SECRETS.iter().copied());
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt;
        orchestrator.uid(65534).gid(65534);
    }
    let ran = orchestrator.output().unwrap();
    assert!(
        ran.status.success(),
        "the orchestrator failed: {}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );

    let outputs = work_root.join(ATTEMPT_DIR).join("outputs");
    let worker = entries(&outputs.join("worker.environ"));
    let code = entries(&outputs.join("code.environ"));
    for (name, value) in SECRETS {
        for (whose, env) in [("worker", &worker), ("code", &code)] {
            assert!(
                !env.iter().any(|e| e.contains(value)),
                "the {whose} sees the orchestrator's {name}: {env:?}"
            );
        }
    }
    // What the worker needs is there: the copy is the real environment.
    for expected in [
        "SWATH_WORKER_JOB_ID=7".to_string(),
        format!("SWATH_WORKER_TOKEN={WORKER_TOKEN}"),
        "AWS_ACCESS_KEY_ID=given-key-id-6a".to_string(),
        "AWS_SECRET_ACCESS_KEY=given-secret-8c".to_string(),
    ] {
        assert!(worker.contains(&expected), "{expected} not in {worker:?}");
    }
    assert!(worker.iter().any(|e| e.starts_with("PATH=")), "{worker:?}");
    // The code sees neither the worker's token nor its storage credentials.
    assert!(
        code.iter()
            .any(|e| e.starts_with("SWATH_WORK=") && e.ends_with(ATTEMPT_DIR)),
        "{code:?}"
    );
    for value in [WORKER_TOKEN, "given-secret-8c"] {
        assert!(!code.iter().any(|e| e.contains(value)), "{code:?}");
    }
}

/// The orchestrator: a local executor starting this program as the worker of one attempt, with
/// the storage credentials of [`GIVEN`]. Does nothing unless run by the test above.
#[tokio::test]
#[ignore = "run as a subprocess by local_workers_and_their_code_never_see_the_orchestrators_secrets"]
async fn orchestrator_role() {
    let Some(work_root) = std::env::var_os(ORCHESTRATOR_ROLE) else {
        return;
    };
    let executor = LocalExecutor::new(
        WorkerCommand {
            program: std::env::current_exe().unwrap(),
            args: ["--ignored", "--exact", "worker_role", "--nocapture"]
                .map(String::from)
                .to_vec(),
        },
        "http://127.0.0.1:9".into(),
        PathBuf::from(work_root),
        vec![tiny_flavor()],
    )
    .with_worker_env(
        GIVEN
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    let request = DispatchRequest {
        job_id: 7,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "t-env".into(),
        worker_token: WORKER_TOKEN.into(),
        flavor: tiny_flavor(),
        nomad_job: "x".into(),
    };
    let reference = executor.dispatch(&request).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match executor.outcome(&reference).await.unwrap() {
            AttemptOutcome::Exited(code) => {
                assert_eq!(code, 0, "the worker failed");
                return;
            }
            AttemptOutcome::Running | AttemptOutcome::Pending => {}
            other => panic!("the worker ended as {other:?}"),
        }
        assert!(Instant::now() < deadline, "the worker did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The worker: runs the probe script through the process runtime. Does nothing unless started by
/// [`orchestrator_role`].
#[tokio::test]
#[ignore = "run as a subprocess by orchestrator_role"]
async fn worker_role() {
    let Some(work_root) = std::env::var_os("SWATH_WORKER_WORK_ROOT") else {
        return;
    };
    let script = "cat /proc/$PPID/environ > \"$SWATH_WORK/outputs/worker.environ\" && \
                  cat /proc/$$/environ > \"$SWATH_WORK/outputs/code.environ\"";
    let spec = RunSpec {
        name: "env-probe".into(),
        image: String::new(),
        command: ["/bin/sh", "-c", script].map(String::from).to_vec(),
        env: BTreeMap::new(),
        work_dir: PathBuf::from(work_root).join(ATTEMPT_DIR),
        network: false,
        cpus: 0.0,
        memory_mb: 0,
        deadline: Duration::from_secs(60),
        disk_mb: 0,
        user: None,
    };
    let report = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap();
    let log = std::fs::read_to_string(spec.work_dir.join("logs/env-probe.log")).unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 }, "{log}");
}

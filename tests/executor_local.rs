//! The executor conformance suite against the local executor, with a worker stand-in script.

mod support;

use std::path::PathBuf;

use async_trait::async_trait;
use swath::executor::local::{LocalExecutor, WorkerCommand};
use swath::executor::Executor;
use swath_job_types::flavor::WorkerFlavor;

use support::conformance::{run_conformance, stand_in_worker, Behaviour, Harness};

struct LocalHarness {
    dir: tempfile::TempDir,
    executor: LocalExecutor,
}

fn flavor() -> WorkerFlavor {
    WorkerFlavor {
        name: "tiny".into(),
        cpus: 1,
        memory_mb: 64,
        disk_gb: 0,
        node_class: "worker".into(),
        local_slots: 1,
    }
}

#[async_trait]
impl Harness for LocalHarness {
    fn executor(&self) -> &dyn Executor {
        &self.executor
    }
    fn flavor(&self) -> WorkerFlavor {
        flavor()
    }
    async fn script(&self, job_id: i64, behaviour: Behaviour) {
        let text = match behaviour {
            Behaviour::Exit(code) => code.to_string(),
            Behaviour::RunUntilStopped => "run".into(),
        };
        std::fs::write(self.dir.path().join(job_id.to_string()), text).unwrap();
    }
    async fn starts(&self, job_id: i64) -> usize {
        std::fs::read_to_string(self.dir.path().join(format!("{job_id}.starts")))
            .map_or(0, |t| t.lines().count())
    }
}

#[tokio::test]
async fn the_local_executor_honours_the_executor_contract() {
    let dir = tempfile::tempdir().unwrap();
    let command = stand_in_worker(dir.path());
    let executor = LocalExecutor::new(
        command,
        "http://127.0.0.1:9".into(),
        dir.path().join("work"),
        vec![flavor()],
    );
    run_conformance(&LocalHarness { dir, executor }).await;
}

#[tokio::test]
async fn a_worker_that_cannot_start_is_an_executor_error() {
    let command = WorkerCommand {
        program: PathBuf::from("/nonexistent/swath-worker"),
        args: vec![],
    };
    let executor = LocalExecutor::new(
        command,
        "http://127.0.0.1:9".into(),
        std::env::temp_dir(),
        vec![flavor()],
    );
    let request = swath::executor::DispatchRequest {
        job_id: 1,
        job_type: "test_job".into(),
        attempt: 1,
        idempotency_token: "t-1".into(),
        worker_token: "secret".into(),
        flavor: flavor(),
        nomad_job: "x".into(),
    };
    let err = executor.dispatch(&request).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot start /nonexistent/swath-worker"),
        "{err}"
    );
}

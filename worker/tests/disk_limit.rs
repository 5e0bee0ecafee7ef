//! The work directory held to the flavor's scratch disk: the process runtime runs the stand-in,
//! which writes more than the limit; the worker stops it and fails the attempt naming the
//! directory, its size and the limit.

mod runtime_support;

use std::time::Duration;

use runtime_support::*;
use swath_worker::attempt::run_within_disk;
use swath_worker::outcome::WorkerError;
use swath_worker::runtime::{ProcessRuntime, RunOutcome};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_run_writing_past_the_disk_limit_is_stopped_with_a_clear_error() {
    let runtime = ProcessRuntime::new().with_grace(Duration::from_millis(500));
    let work = Work::with_inputs();
    let name = unique_name("p-disk");
    let script = standin_script();
    let spec = spec(
        &name,
        &work,
        "",
        &["sh", &script],
        &[("STANDIN_ATTACK", "fill:8"), ("STANDIN_SLEEP", "120")],
    );
    let error = run_within_disk(&runtime, &spec, CancellationToken::new(), 2, POLL)
        .await
        .unwrap_err();
    let WorkerError::Internal { subtype, message } = &error else {
        panic!("not an internal error: {error}");
    };
    assert_eq!(subtype, "disk");
    assert!(
        message.contains(&work.dir.display().to_string())
            && message.contains("scratch disk of 2 MiB"),
        "{message}"
    );
    // Stopped during its 120 s of processing: it never finished.
    let log = work.log(&name);
    assert!(log.contains("attack: writing 8 MiB"), "{log}");
    assert!(!log.contains("done:"), "{log}");
}

#[tokio::test]
async fn a_run_within_the_disk_limit_is_untouched() {
    let runtime = ProcessRuntime::new();
    let work = Work::with_inputs();
    let name = unique_name("p-disk-ok");
    let script = standin_script();
    let spec = spec(
        &name,
        &work,
        "",
        &["sh", &script],
        &[("STANDIN_ATTACK", "fill:1")],
    );
    let report = run_within_disk(&runtime, &spec, CancellationToken::new(), 64, POLL)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Exited { code: 0 },
        "{}",
        work.log(&name)
    );
}

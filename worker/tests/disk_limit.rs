//! The work directory held to the flavor's scratch disk: the process runtime runs the stand-in,
//! which writes more than the limit through its `fill` misbehaviour; the runtime stops it and
//! fails naming the directory, its size and the limit.

mod runtime_support;

use std::time::Duration;

use runtime_support::*;
use swath_worker::runtime::{ProcessRuntime, RunOutcome, Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_run_writing_past_the_disk_limit_is_stopped_with_a_clear_error() {
    let runtime = ProcessRuntime::new().with_grace(Duration::from_millis(500));
    let work = Work::with_inputs();
    let name = unique_name("p-disk");
    let script = standin_script();
    let mut spec = spec(
        &name,
        &work,
        "",
        &["sh", &script],
        &[("STANDIN_ATTACK", "fill:8"), ("STANDIN_SLEEP", "120")],
    );
    spec.disk_mb = 2;
    let error = runtime
        .run(&spec, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::DiskLimit { limit_mb: 2, .. }),
        "{error:?}"
    );
    assert_eq!(error.subtype(), "disk");
    let message = error.to_string();
    assert!(
        message.contains(&work.dir.display().to_string())
            && message.contains("disk limit of 2 MiB"),
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
    let mut spec = spec;
    spec.disk_mb = 64;
    let report = runtime.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Exited { code: 0 },
        "{}",
        work.log(&name)
    );
}

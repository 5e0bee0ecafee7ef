//! The process runtime with the same stand-in script, run on the host with `SWATH_WORK` set to the
//! real work directory.

mod runtime_support;

use std::time::{Duration, Instant};

use runtime_support::*;
use swath_worker::runtime::{ProcessRuntime, RunOutcome, RunSpec, Runtime, RuntimeError};
use tokio_util::sync::CancellationToken;

fn standin(name: &str, work: &Work, env: &[(&str, &str)]) -> RunSpec {
    let script = standin_script();
    spec(name, work, "", &["sh", &script], env)
}

/// The stand-in behind a shell that first starts a background process of the same group and
/// prints its pid, to check that the whole group goes.
fn standin_with_background(name: &str, work: &Work, env: &[(&str, &str)]) -> RunSpec {
    let script = standin_script();
    let wrapper = "sleep 300 & echo \"background $!\"; sh \"$0\"";
    spec(name, work, "", &["sh", "-c", wrapper, &script], env)
}

fn background_pid(log: &str) -> i32 {
    log.lines()
        .find_map(|l| l.strip_prefix("[stdout] background "))
        .unwrap_or_else(|| panic!("no background pid in {log}"))
        .trim()
        .parse()
        .unwrap()
}

/// Whether `pid` is a live process (a zombie waiting to be reaped is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn runs_the_standin_script_on_the_real_work_dir() {
    let runtime = ProcessRuntime::new();
    assert_eq!(runtime.name(), "process");
    let work = Work::with_inputs();
    let name = unique_name("p-full");
    let report = runtime
        .run(&standin(&name, &work, &[]), CancellationToken::new())
        .await
        .unwrap();
    let log = work.log(&name);
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 }, "{log}");
    assert_eq!(report.software_version, None);
    assert_standin_products(&work);
    let real = work.dir.canonicalize().unwrap();
    assert!(
        log.contains(&format!("standin: starting in {}", work.dir.display()))
            || log.contains(&format!("standin: starting in {}", real.display())),
        "{log}"
    );
    assert!(log.contains("standin: done: 3 products"), "{log}");
}

#[tokio::test]
async fn reports_each_class_of_exit_code() {
    let runtime = ProcessRuntime::new();
    for code in [0, 200, 42, 142] {
        let work = Work::with_inputs();
        let name = unique_name("p-exit");
        let exit = code.to_string();
        let report = runtime
            .run(
                &standin(&name, &work, &[("STANDIN_EXIT", &exit)]),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        let log = work.log(&name);
        assert_eq!(report.outcome, RunOutcome::Exited { code }, "{log}");
        match code {
            0 => assert_standin_products(&work),
            200 => assert!(
                log.contains("[stdout] ") && log.contains("too cloudy"),
                "{log}"
            ),
            _ => assert!(
                log.contains("[stderr] ") && log.contains("error (simulated)"),
                "{log}"
            ),
        }
    }
}

#[tokio::test]
async fn parameters_can_come_from_a_file() {
    let runtime = ProcessRuntime::new();
    let work = Work::with_inputs();
    let name = unique_name("p-params");
    let params = work.dir.join("inputs/parameters.env");
    std::fs::write(
        &params,
        "# simulated failure\nSTANDIN_EXIT=205\nSTANDIN_PRODUCTS=fsc\n",
    )
    .unwrap();
    let script = standin_script();
    let spec = spec(
        &name,
        &work,
        "",
        &["sh", &script, params.to_str().unwrap()],
        &[("STANDIN_EXIT", "0")],
    );
    let report = runtime.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Exited { code: 205 },
        "{}",
        work.log(&name)
    );
}

#[tokio::test]
async fn kills_the_process_group_past_the_deadline() {
    let runtime = ProcessRuntime::new();
    let work = Work::with_inputs();
    let name = unique_name("p-deadline");
    let mut spec = standin_with_background(&name, &work, &[("STANDIN_SLEEP", "120")]);
    spec.deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = runtime.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::DeadlineExceeded);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let log = work.log(&name);
    assert!(log.contains("processing for 120 s"), "{log}");
    let pid = background_pid(&log);
    poll_until(
        "the background process is gone",
        Duration::from_secs(5),
        || !alive(pid),
    )
    .await;
    assert!(work.outputs().is_empty());
}

#[tokio::test]
async fn a_program_ignoring_sigterm_is_killed_after_the_grace_period() {
    let runtime = ProcessRuntime::new().with_grace(Duration::from_millis(300));
    let work = Work::with_inputs();
    let name = unique_name("p-grace");
    let mut spec = spec(
        &name,
        &work,
        "",
        &["sh", "-c", "trap '' TERM; echo stubborn; sleep 120"],
        &[],
    );
    spec.deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = runtime.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::DeadlineExceeded);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(work.log(&name).contains("[stdout] stubborn"));
}

#[tokio::test]
async fn cancellation_kills_the_process_group_midway() {
    let runtime = ProcessRuntime::new();
    let work = Work::with_inputs();
    let name = unique_name("p-cancel");
    let spec = standin_with_background(&name, &work, &[("STANDIN_SLEEP", "120")]);
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { runtime.run(&spec, cancel).await }
    });
    poll_until(
        "the stand-in reaches its processing",
        Duration::from_secs(30),
        || work.log(&name).contains("processing for 120 s"),
    )
    .await;
    let pid = background_pid(&work.log(&name));
    assert!(alive(pid));
    let cancelled_at = Instant::now();
    cancel.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        cancelled_at.elapsed()
    );
    poll_until(
        "the background process is gone",
        Duration::from_secs(5),
        || !alive(pid),
    )
    .await;
    assert!(work.outputs().is_empty());
}

#[tokio::test]
async fn output_lines_go_to_the_log_file_and_to_tracing() {
    let captured = Captured::default();
    let _default = tracing::subscriber::set_default(captured.subscriber());
    let work = Work::with_inputs();
    let name = unique_name("p-logs");
    let spec = spec(
        &name,
        &work,
        "",
        &[
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; printf 'no newline'",
        ],
        &[],
    );
    let report = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    let log = work.log(&name);
    for line in [
        "[stdout] to-out\n",
        "[stderr] to-err\n",
        "[stdout] no newline\n",
    ] {
        assert!(log.contains(line), "{line:?} not in {log}");
    }
    let science: Vec<_> = captured
        .events()
        .into_iter()
        .filter(|e| e["target"] == "science")
        .map(|e| {
            (
                e["fields"]["job"].as_str().unwrap().to_string(),
                e["fields"]["stream"].as_str().unwrap().to_string(),
                e["fields"]["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (stream, message) in [
        ("stdout", "to-out"),
        ("stderr", "to-err"),
        ("stdout", "no newline"),
    ] {
        assert!(
            science.contains(&(name.clone(), stream.to_string(), message.to_string())),
            "{stream} {message} not in {science:?}"
        );
    }
}

#[tokio::test]
async fn the_environment_is_the_specs_not_the_workers() {
    let work = Work::with_inputs();
    let name = unique_name("p-env");
    let script = "echo \"manifest=${CARGO_MANIFEST_DIR:-unset} work=$SWATH_WORK pwd=$(pwd) tile=$STANDIN_TILE uid=$(id -u)\"";
    let spec = spec(
        &name,
        &work,
        "",
        &["sh", "-c", script],
        &[("STANDIN_TILE", "31TCH")],
    );
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let report = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    let dir = work.dir.display();
    let expected = format!(
        "[stdout] manifest=unset work={dir} pwd={dir} tile=31TCH uid={}\n",
        default_code_uid()
    );
    assert!(
        work.log(&name).contains(&expected),
        "{expected:?} not in {}",
        work.log(&name)
    );
}

#[tokio::test]
async fn a_memory_limit_makes_big_allocations_fail() {
    let work = Work::with_inputs();
    let name = unique_name("p-mem");
    let mut spec = standin(&name, &work, &[("STANDIN_ALLOC_MB", "512")]);
    spec.memory_mb = 64;
    let report = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap();
    let log = work.log(&name);
    assert!(
        matches!(report.outcome, RunOutcome::Exited { code } if code != 0),
        "{report:?} {log}"
    );
    assert!(
        log.contains("allocating 512 MiB") && !log.contains("allocated"),
        "{log}"
    );
}

#[tokio::test]
async fn a_missing_program_is_an_internal_error() {
    let work = Work::with_inputs();
    let name = unique_name("p-noprogram");
    let spec = spec(&name, &work, "", &["swath-no-such-program"], &[]);
    let err = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Spawn { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("swath-no-such-program"), "{err}");

    let empty = RunSpec {
        command: vec![],
        ..spec
    };
    let err = ProcessRuntime::new()
        .run(&empty, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidSpec(_)), "{err:?}");
}

#[tokio::test]
async fn a_work_dir_the_code_cannot_enter_is_named_with_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let work = Work::with_inputs();
    let name = unique_name("p-noentry");
    // A parent nobody but root may search: the worker (root) prepares the work directory, the code
    // (nobody) could not even enter it. A worker that is not root cannot search it either.
    let parent = work.dir.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o000)).unwrap();
    let result = ProcessRuntime::new()
        .run(&standin(&name, &work, &[]), CancellationToken::new())
        .await;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = result.unwrap_err();
    let user = if nix::unistd::geteuid().is_root() {
        "65534:65534".to_string()
    } else {
        format!("{}:{}", nix::unistd::geteuid(), nix::unistd::getegid())
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "user {user} cannot enter the work directory {}",
            work.dir.display()
        )) && message.contains(&format!("{} (mode 0000", parent.display())),
        "{message}"
    );
    assert!(!err.is_transient(), "{err:?}");
    assert!(work.log(&name).is_empty());
}

#[tokio::test]
async fn a_process_filling_its_work_directory_past_the_disk_limit_is_stopped() {
    let work = Work::with_inputs();
    let name = unique_name("p-disk");
    let script = "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero > \"$SWATH_WORK/outputs/fill-$i\"; \
                  i=$((i+1)); done; echo filled; exec sleep 600";
    let mut spec = spec(&name, &work, "", &["sh", "-c", script], &[]);
    spec.disk_mb = 4;
    spec.deadline = Duration::from_secs(120);
    let err = ProcessRuntime::new()
        .run(&spec, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::DiskLimit { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("past its disk limit of 4 MiB"),
        "{err}"
    );
}

//! The Docker runtime against a real engine and the stand-in image. Run `scripts/tools-docker.sh`
//! first: without an engine these tests fail, they never skip.

mod runtime_support;

use std::time::{Duration, Instant};

use runtime_support::*;
use swath_worker::runtime::{
    ContainerLimits, DockerRuntime, ProcessIdentity, RunOutcome, Runtime, RuntimeError,
    ALLOC_LABEL, OWNER_LABEL, RUN_LABEL,
};
use tokio_util::sync::CancellationToken;

fn standin(name: &str, work: &Work, env: &[(&str, &str)]) -> swath_worker::runtime::RunSpec {
    spec(
        name,
        work,
        STANDIN_IMAGE,
        &["/bin/sh", STANDIN_IN_IMAGE],
        env,
    )
}

fn shell(name: &str, work: &Work, script: &str) -> swath_worker::runtime::RunSpec {
    spec(name, work, STANDIN_IMAGE, &["/bin/sh", "-c", script], &[])
}

/// Runs `script` in the stand-in image, asserts that it exits with 0, and returns its log.
async fn shell_exits_0(docker: &DockerRuntime, name: &str, work: &Work, script: &str) -> String {
    let report = docker
        .run(&shell(name, work, script), CancellationToken::new())
        .await
        .unwrap();
    let log = work.log(name);
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 }, "{log}");
    log
}

#[tokio::test]
async fn runs_the_standin_on_its_inputs_and_writes_products() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    assert_eq!(docker.name(), "docker");
    let work = Work::with_inputs();
    let name = unique_name("full");
    let report = docker
        .run(&standin(&name, &work, &[]), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Exited { code: 0 },
        "{}",
        work.log(&name)
    );
    let version = report.software_version.unwrap();
    assert!(version.starts_with("sha256:"), "{version}");
    assert_eq!(version, image_id(STANDIN_IMAGE).await);
    assert_standin_products(&work);
    assert_log_has(
        &work.log(&name),
        &[
            "[stdout] ",
            "standin: starting in /work ",
            &format!("input l1c/{L1C}/GRANULE/L1C_T32TLR_A036108/B03.jp2 4096 bytes"),
            "standin: done: 3 products",
        ],
    );
    assert_no_container(&name).await;
}

#[tokio::test]
async fn reports_each_class_of_exit_code() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    for code in [0, 203, 42, 142] {
        let work = Work::with_inputs();
        let name = unique_name("exit");
        let exit = code.to_string();
        let report = docker
            .run(
                &standin(&name, &work, &[("STANDIN_EXIT", &exit)]),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            RunOutcome::Exited { code },
            "STANDIN_EXIT={code}"
        );
        let log = work.log(&name);
        match code {
            0 => assert_standin_products(&work),
            203 => {
                assert!(work.outputs().is_empty());
                assert!(
                    log.contains("[stdout] ") && log.contains("no product (code 203)"),
                    "{log}"
                );
            }
            _ => {
                assert!(work.outputs().is_empty());
                assert!(
                    log.contains("[stderr] ") && log.contains("error (simulated)"),
                    "{log}"
                );
            }
        }
        assert_no_container(&name).await;
    }
}

#[tokio::test]
async fn kills_and_removes_a_container_past_its_deadline() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("deadline");
    let mut spec = standin(&name, &work, &[("STANDIN_SLEEP", "120")]);
    spec.deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = docker.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::DeadlineExceeded);
    assert!(report.duration >= Duration::from_secs(1));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(work.log(&name).contains("processing for 120 s"));
    assert!(work.outputs().is_empty());
    assert_no_container(&name).await;
}

#[tokio::test]
async fn reports_out_of_memory_when_the_limit_is_hit() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("oom");
    let mut spec = standin(&name, &work, &[("STANDIN_ALLOC_MB", "256")]);
    spec.memory_mb = 64;
    let report = docker.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::OutOfMemory);
    let log = work.log(&name);
    assert!(
        log.contains("allocating 256 MiB") && !log.contains("allocated"),
        "{log}"
    );
    assert_no_container(&name).await;
}

#[tokio::test]
async fn within_its_memory_limit_the_code_allocates_for_real() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("mem-ok");
    let mut spec = standin(&name, &work, &[("STANDIN_ALLOC_MB", "16")]);
    spec.memory_mb = 128;
    let report = docker.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    assert!(work.log(&name).contains("allocated 16777216 bytes"));
    assert_no_container(&name).await;
}

#[tokio::test]
async fn cancellation_stops_and_removes_the_container_midway() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("cancel");
    let spec = standin(&name, &work, &[("STANDIN_SLEEP", "120")]);
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { docker.run(&spec, cancel).await }
    });
    // The log is streamed: the line shows up while the container is still running.
    poll_until(
        "the stand-in reaches its processing",
        Duration::from_secs(30),
        || work.log(&name).contains("processing for 120 s"),
    )
    .await;
    assert_eq!(containers_named(&name).await.len(), 1);
    let cancelled_at = Instant::now();
    cancel.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert!(work.outputs().is_empty());
    assert_no_container(&name).await;
}

#[tokio::test]
async fn dropping_a_run_midway_still_removes_its_container() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("dropped");
    let spec = standin(&name, &work, &[("STANDIN_SLEEP", "120")]);
    let run = tokio::spawn(async move { docker.run(&spec, CancellationToken::new()).await });
    poll_until(
        "the stand-in reaches its processing",
        Duration::from_secs(30),
        || work.log(&name).contains("processing for 120 s"),
    )
    .await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    // The removal runs in the background once the run is dropped.
    await_no_container(&name, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn inputs_are_read_only_and_outputs_writable() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("readonly");
    let script = "if echo x > /work/inputs/intruder; then echo 'wrote into inputs'; exit 1; fi; \
                  rm /work/inputs/aux/*.tif && exit 2; \
                  echo ok > /work/outputs/allowed && echo 'outputs writable'";
    let log = shell_exits_0(&docker, &name, &work, script).await;
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("[stdout] outputs writable"), "{log}");
    assert!(!work.dir.join("inputs/intruder").exists());
    assert!(work.dir.join("inputs/aux/dem 32TLR.tif").exists());
    assert_eq!(work.outputs(), vec!["allowed"]);
    assert_no_container(&name).await;
}

#[tokio::test]
async fn the_code_never_runs_as_root() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("user");
    let report = docker
        .run(
            &shell(&name, &work, "echo \"uid=$(id -u) gid=$(id -g)\""),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    let uid = default_code_uid();
    assert!(
        work.log(&name).contains(&format!("[stdout] uid={uid} ")),
        "{}",
        work.log(&name)
    );
    assert_ne!(uid, 0);

    let mut asked = shell(&name, &work, "id -u");
    asked.user = Some("4321:4321".into());
    docker.run(&asked, CancellationToken::new()).await.unwrap();
    assert!(
        work.log(&name).contains("[stdout] 4321"),
        "{}",
        work.log(&name)
    );

    asked.user = Some("0:0".into());
    let refused = docker
        .run(&asked, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(refused, RuntimeError::InvalidSpec(_)), "{refused}");
    assert!(!refused.is_transient());
    assert_no_container(&name).await;
}

#[tokio::test]
async fn no_network_and_the_flavor_limits_inside_the_container() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("limits");
    let script = "echo \"interfaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')\"; \
                  echo \"memory $(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\"; \
                  echo \"cpu $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)\"";
    let mut spec = shell(&name, &work, script);
    spec.memory_mb = 96;
    spec.cpus = 0.5;
    let report = docker.run(&spec, CancellationToken::new()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    let log = work.log(&name);
    assert!(log.contains("[stdout] interfaces lo \n"), "{log}");
    assert!(
        log.contains(&format!("[stdout] memory {}\n", 96 * 1024 * 1024)),
        "{log}"
    );
    assert!(log.contains("[stdout] cpu 50000"), "{log}");

    // `network: true` asks for the engine's default network; the test engine has no bridge, so
    // the container still only has loopback, but the request is valid.
    let mut networked = shell(&name, &work, "echo networked");
    networked.network = true;
    let report = docker
        .run(&networked, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Exited { code: 0 },
        "{}",
        work.log(&name)
    );
    assert_no_container(&name).await;
}

#[tokio::test]
async fn a_missing_image_is_an_internal_error_naming_it() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("noimage");
    let spec = spec(&name, &work, "swath-no-such-image:never", &["true"], &[]);
    let err = docker
        .run(&spec, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::ImageNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("swath-no-such-image:never"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert_no_container(&name).await;
}

#[tokio::test]
async fn a_program_missing_from_the_image_fails_and_leaves_no_container() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("noprogram");
    let spec = spec(&name, &work, STANDIN_IMAGE, &["/no/such/program"], &[]);
    let run = docker.run(&spec, CancellationToken::new()).await;
    let Err(err) = run else {
        panic!("{run:?}: {}", work.log(&name));
    };
    // The init process starts, and cannot execute the program.
    assert!(matches!(err, RuntimeError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("exec /no/such/program failed: No such file or directory"),
        "{err}"
    );
    assert!(!err.is_transient(), "{err:?}");
    assert_no_container(&name).await;
}

#[tokio::test]
async fn a_leftover_container_of_the_same_name_is_replaced() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("leftover");
    client()
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(STANDIN_IMAGE.into()),
                cmd: Some(vec!["sleep".into(), "600".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(containers_named(&name).await.len(), 1);
    let report = docker
        .run(&shell(&name, &work, "echo fresh"), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Exited { code: 0 });
    assert!(work.log(&name).contains("[stdout] fresh"));
    assert_no_container(&name).await;
}

#[tokio::test]
async fn an_unreachable_engine_is_a_transient_error() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let err = DockerRuntime::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, RuntimeError::EngineUnavailable(_)), "{err:?}");
}

/// The pids limit of the fork-bomb tests: small, so that the bombs stay cheap on a shared machine.
const SMALL_PIDS_LIMIT: u64 = 32;
/// The open-files limit of the tests.
const SMALL_NOFILE: u64 = 1024;
/// The nproc limit of the tests: well above the pids limit, so that what stops the bombs is the
/// container's own pids cgroup (nproc counts every process of the uid on the host).
const TEST_NPROC: u64 = 4096;
/// The size of `/tmp` in the tests' containers, in MiB.
const SMALL_TMP_MB: u64 = 16;

/// The Docker runtime with the tests' small limits.
async fn limited_runtime() -> DockerRuntime {
    docker_runtime().await.with_limits(ContainerLimits {
        pids: SMALL_PIDS_LIMIT as u32,
        nofile: SMALL_NOFILE,
        nproc: TEST_NPROC,
        tmp_mb: SMALL_TMP_MB,
    })
}

#[tokio::test]
async fn a_container_cannot_have_more_processes_than_its_pids_limit() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = limited_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("pids");
    // A bomb that stops by itself: twice the limit of sleepers, in a subshell that the first
    // refused fork ends; then a mark, and a wait that needs no fork.
    let script = "( i=0; while [ $i -lt 64 ]; do sleep 600 & i=$((i+1)); done ); \
                  echo forked > /work/outputs/forked; exec sleep 600";
    let mut spec = shell(&name, &work, script);
    spec.cpus = 0.5;
    spec.deadline = Duration::from_secs(10);
    let run = tokio::spawn(async move { docker.run(&spec, CancellationToken::new()).await });
    let cgroup = await_pids_cgroup(&name, Duration::from_secs(30)).await;
    poll_until("the bomb is done forking", Duration::from_secs(30), || {
        work.dir.join("outputs/forked").exists()
    })
    .await;
    let count = pids_count(&cgroup).expect("the container still runs");
    // The host stays usable while the container is at its limit.
    let host = std::process::Command::new("true").status().unwrap();
    let report = run.await.unwrap().unwrap();
    assert!(host.success());
    assert_eq!(report.outcome, RunOutcome::DeadlineExceeded);
    assert_no_container(&name).await;
    assert_eq!(count.max, Some(SMALL_PIDS_LIMIT), "{count:?}");
    assert!(count.peak <= SMALL_PIDS_LIMIT, "{count:?}");
    assert!(count.refused > 0, "the limit was reached: {count:?}");
    assert!(
        work.log(&name).contains("can't fork"),
        "{}",
        work.log(&name)
    );
}

#[tokio::test]
async fn a_fork_bomb_is_held_at_the_pids_limit_until_its_deadline() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = limited_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("forkbomb");
    // A real fork bomb, in a subshell; the main shell then waits without forking. It refuses to
    // start unless its cgroup has the small limit (v2 path, else v1), so it never runs unbounded.
    let script = format!(
        "read max < /sys/fs/cgroup/pids.max || read max < /sys/fs/cgroup/pids/pids.max; \
         [ \"$max\" = {SMALL_PIDS_LIMIT} ] || {{ echo \"pids.max is $max: no bomb\"; exit 3; }}; \
         ( bomb() {{ bomb | bomb & }}; bomb ); exec sleep 600"
    );
    let mut spec = shell(&name, &work, &script);
    spec.cpus = 0.5;
    spec.deadline = Duration::from_secs(8);
    let run = tokio::spawn(async move { docker.run(&spec, CancellationToken::new()).await });
    let cgroup = await_pids_cgroup(&name, Duration::from_secs(30)).await;
    let mut at_limit = None;
    poll_until(
        "the bomb reaches the limit",
        Duration::from_secs(30),
        || {
            at_limit = pids_count(&cgroup).filter(|c| c.refused > 0);
            at_limit.is_some() || run.is_finished()
        },
    )
    .await;
    // The host still starts processes while the bomb presses on its limit.
    let host = std::process::Command::new("true").status().unwrap();
    let peak_then = pids_count(&cgroup);
    let report = run.await.unwrap().unwrap();
    let log = work.log(&name);
    let count = at_limit.unwrap_or_else(|| panic!("the bomb ended early: {report:?} {log}"));
    assert!(host.success());
    assert_eq!(report.outcome, RunOutcome::DeadlineExceeded, "{log}");
    assert_no_container(&name).await;
    assert_eq!(count.max, Some(SMALL_PIDS_LIMIT), "{count:?}");
    for count in [Some(count), peak_then].into_iter().flatten() {
        assert!(count.peak <= SMALL_PIDS_LIMIT, "{count:?}");
    }
    assert!(log.contains("can't fork"), "{log}");
}

#[tokio::test]
async fn the_root_filesystem_is_read_only_and_tmp_a_bounded_tmpfs() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = limited_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("rootfs");
    let script = "while read dev mnt fs opts rest; do \
                    [ \"$mnt\" = / ] && echo \"mount / $opts\"; \
                    [ \"$mnt\" = /tmp ] && echo \"mount /tmp $fs $opts\"; \
                  done < /proc/mounts; \
                  for f in /etc/intruder /intruder /bin/intruder; do \
                    if echo x > $f; then echo \"wrote $f\"; fi; \
                  done; \
                  echo x > /tmp/scratch && echo 'tmp writable'; \
                  head -c 32m /dev/zero > /tmp/big || echo 'tmp is full'; rm -f /tmp/big; \
                  echo \"limits nofile $(ulimit -n) nproc $(ulimit -u)\"; \
                  echo \"init $(cat /proc/1/comm)\"; \
                  grep -E '^(CapEff|NoNewPrivs)' /proc/self/status";
    let log = shell_exits_0(&docker, &name, &work, script).await;
    assert!(log.contains("[stdout] mount / ro,"), "{log}");
    assert!(
        log.contains("[stdout] mount /tmp tmpfs rw,nosuid,nodev,noexec,")
            && log.contains(&format!("size={}k", SMALL_TMP_MB * 1024)),
        "{log}"
    );
    assert!(!log.contains("[stdout] wrote "), "{log}");
    assert_eq!(log.matches("Read-only file system").count(), 3, "{log}");
    assert_log_has(
        &log,
        &[
            "[stdout] tmp writable",
            "[stdout] tmp is full",
            &format!("[stdout] limits nofile {SMALL_NOFILE} nproc {TEST_NPROC}"),
            "[stdout] init docker-init",
            "CapEff:\t0000000000000000",
            "NoNewPrivs:\t1",
        ],
    );
    assert_no_container(&name).await;
}

#[tokio::test]
async fn a_container_filling_its_work_directory_past_the_disk_limit_is_stopped() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = limited_runtime().await;
    let work = Work::with_inputs();
    let name = unique_name("disk");
    // Writes 1 MiB a time, far past the limit, then waits: only the disk limit stops it in time.
    let script = "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero > /work/outputs/fill-$i; \
                  i=$((i+1)); done; echo filled; exec sleep 600";
    let mut spec = shell(&name, &work, script);
    spec.disk_mb = 4;
    spec.deadline = Duration::from_secs(120);
    let err = docker
        .run(&spec, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::DiskLimit { .. }), "{err:?}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "the work directory {} grew to",
            work.dir.display()
        )) && message.contains("past its disk limit of 4 MiB"),
        "{message}"
    );
    assert!(
        work.log(&name).contains("past its disk limit"),
        "{}",
        work.log(&name)
    );
    assert_no_container(&name).await;
}

#[tokio::test]
async fn a_stopped_attempt_gives_its_code_the_stop_grace_before_sigkill() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    // The default runtime: a stop grace of 20 s, below Nomad's default kill timeout cap of 30 s.
    let docker = docker_runtime()
        .await
        .with_nomad_alloc(Some("5d6c1f2a-0000-4000-8000-00000000a110".into()));
    let work = Work::with_inputs();
    let name = unique_name("grace");
    let script = "trap 'echo graceful > /work/stopped; exit 0' TERM; echo ready; \
                  while true; do sleep 1; done";
    let spec = shell(&name, &work, script);
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { docker.run(&spec, cancel).await }
    });
    poll_until("the code is ready", Duration::from_secs(30), || {
        work.log(&name).contains("[stdout] ready")
    })
    .await;
    // The container carries its run, its owner (this process) and its allocation.
    let labels = client()
        .inspect_container(&name, None)
        .await
        .unwrap()
        .config
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(labels.get(RUN_LABEL), Some(&name));
    assert_eq!(
        labels.get(ALLOC_LABEL).map(String::as_str),
        Some("5d6c1f2a-0000-4000-8000-00000000a110")
    );
    let owner = ProcessIdentity::parse(&labels[OWNER_LABEL]).unwrap();
    assert_eq!(owner, ProcessIdentity::current().unwrap());

    cancel.cancel();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    let stopped = std::fs::read_to_string(work.dir.join("stopped")).unwrap_or_else(|e| {
        panic!(
            "the code got no SIGTERM before being killed ({e}): {}",
            work.log(&name)
        )
    });
    assert_eq!(stopped, "graceful\n");
    assert_no_container(&name).await;
}

/// Creates and starts a container of run `name` owned by `owner`, as a worker would leave it.
async fn leftover_container(name: &str, owner: &ProcessIdentity) -> String {
    let body = bollard::models::ContainerCreateBody {
        image: Some(STANDIN_IMAGE.to_string()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(
            [
                (RUN_LABEL.to_string(), name.to_string()),
                (OWNER_LABEL.to_string(), owner.to_string()),
            ]
            .into(),
        ),
        host_config: Some(bollard::models::HostConfig {
            network_mode: Some("none".into()),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let id = client()
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    client().start_container(&id, None).await.unwrap();
    id
}

#[tokio::test]
async fn containers_of_dead_workers_are_removed_before_a_run_and_live_ones_kept() {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let docker = docker_runtime().await;
    // A worker that was SIGKILLed: a process of this boot, dead and reaped.
    let mut worker = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let dead = ProcessIdentity::of(worker.id()).unwrap().unwrap();
    worker.kill().unwrap();
    worker.wait().unwrap();
    let orphan = unique_name("orphan");
    leftover_container(&orphan, &dead).await;
    // A live worker's container (this process owns it): never touched.
    let alive = unique_name("alive");
    let alive_id = leftover_container(&alive, &ProcessIdentity::current().unwrap()).await;

    let work = Work::with_inputs();
    let name = unique_name("after-orphans");
    shell_exits_0(&docker, &name, &work, "true").await;
    assert_no_container(&orphan).await;
    assert_eq!(
        containers_named(&alive).await.len(),
        1,
        "a live worker's container is kept"
    );
    // (Which run removed the orphan, this one or a test's running beside it, is not asserted.)
    client()
        .remove_container(
            &alive_id,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
}

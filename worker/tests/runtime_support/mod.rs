//! Shared by the runtime tests: work directories with staged inputs, specs for the stand-in, checks
//! of its products, polling with a deadline, and the Docker engine (required, never skipped).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use swath_worker::runtime::{DockerRuntime, RunSpec};

/// The stand-in image built by `scripts/tools-docker.sh`.
pub const STANDIN_IMAGE: &str = "swath-standin:latest";
/// Where the stand-in script is inside its image.
pub const STANDIN_IN_IMAGE: &str = "/standin/run.sh";
/// The Sentinel-2 product staged as input.
pub const L1C: &str = "S2B_MSIL1C_20240116T103329_N0510_R108_T32TLR_20240116T123411.SAFE";

/// The stand-in script on the host, for the process runtime.
pub fn standin_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("standin/run.sh")
        .to_string_lossy()
        .into_owned()
}

/// A unique run name, `swath-<test>-<pid>-<n>`, so that parallel tests never share a container.
pub fn unique_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "swath-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A work directory with staged inputs, removed when dropped.
pub struct Work {
    _root: tempfile::TempDir,
    /// The work directory (`/work/<uid>` in production).
    pub dir: PathBuf,
}

impl Work {
    /// A work directory whose inputs are a small L1C product tree and an auxiliary file.
    pub fn with_inputs() -> Work {
        let root = tempfile::tempdir().unwrap();
        // The code may run as another user (nobody, when the tests run as root): let it through.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.path().join("3f0c2a4e-uid");
        let granule = dir
            .join("inputs/l1c")
            .join(L1C)
            .join("GRANULE/L1C_T32TLR_A036108");
        std::fs::create_dir_all(&granule).unwrap();
        std::fs::write(granule.join("B03.jp2"), vec![7u8; 4096]).unwrap();
        std::fs::write(granule.join("B11.jp2"), vec![11u8; 2048]).unwrap();
        std::fs::write(
            dir.join("inputs/l1c").join(L1C).join("manifest.safe"),
            "<xfdu/>",
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("inputs/aux")).unwrap();
        std::fs::write(dir.join("inputs/aux/dem 32TLR.tif"), "dem").unwrap();
        std::fs::create_dir_all(dir.join("outputs")).unwrap();
        Work { _root: root, dir }
    }

    /// The log file of run `name`, empty if not written yet.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Files under `outputs/`, relative to it, sorted.
    pub fn outputs(&self) -> Vec<String> {
        let root = self.dir.join("outputs");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    found.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        found
    }
}

/// A spec with the tests' defaults: no network, 1 CPU, 256 MiB, one minute.
pub fn spec(
    name: &str,
    work: &Work,
    image: &str,
    command: &[&str],
    env: &[(&str, &str)],
) -> RunSpec {
    RunSpec {
        name: name.to_string(),
        image: image.to_string(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        work_dir: work.dir.clone(),
        network: false,
        cpus: 1.0,
        memory_mb: 256,
        deadline: Duration::from_secs(60),
        disk_mb: 0,
        user: None,
    }
}

/// Checks the products of a successful stand-in run: one FSC and one RLIE directory, each with a
/// raster, a quicklook and a plausible `dias_catalog_submit.json`.
pub fn assert_standin_products(work: &Work) {
    let fsc = "FSC_20240116T103329_S2B_T32TLR_V100_1";
    let rlie = "RLIE_20240116T103329_S2B_T32TLR_V100_1";
    // The L2A the next date of the tile continues from is named after the L1C.
    let l2a = L1C.trim_end_matches(".SAFE");
    assert_eq!(
        work.outputs(),
        vec![
            format!("fsc/{fsc}/{fsc}_FSCTOC.pgm"),
            format!("fsc/{fsc}/{fsc}_QLK.png"),
            format!("fsc/{fsc}/dias_catalog_submit.json"),
            format!("l2a/{l2a}/{l2a}_QLK.png"),
            format!("l2a/{l2a}/{l2a}_SRE.pgm"),
            format!("l2a/{l2a}/dias_catalog_submit.json"),
            format!("rlie/{rlie}/{rlie}_QLK.png"),
            format!("rlie/{rlie}/{rlie}_RLIE.pgm"),
            format!("rlie/{rlie}/dias_catalog_submit.json"),
        ]
    );
    let product = work.dir.join("outputs/fsc").join(fsc);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(product.join("dias_catalog_submit.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["productIdentifier"],
        format!("CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2024/01/16/{fsc}")
    );
    assert_eq!(meta["title"], fsc);
    assert_eq!(meta["resolution"], 20);
    assert_eq!(meta["startDate"], "2024-01-16T10:33:29Z");
    assert_eq!(meta["inputFiles"], 4);
    assert!(meta["wkt"].as_str().unwrap().starts_with("POLYGON (("));
    let cloud: f64 = meta["cloudCover"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&cloud));
    assert!(meta["completionDate"].as_str().unwrap().ends_with('Z'));
    let png = std::fs::read(product.join(format!("{fsc}_QLK.png"))).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let raster = std::fs::read_to_string(product.join(format!("{fsc}_FSCTOC.pgm"))).unwrap();
    assert!(raster.starts_with("P2\n"));
    assert_eq!(raster.lines().count(), 4 + 8);
}

/// Asserts that `log` contains each of `fragments` (the whole log is shown on a failure).
pub fn assert_log_has(log: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(log.contains(fragment), "{fragment:?} is missing: {log}");
    }
}

/// Polls `check` every 20 ms until it holds, failing after `timeout`.
pub async fn poll_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Docker runtime, or a failure telling how to get an engine and the stand-in image.
pub async fn docker_runtime() -> DockerRuntime {
    let runtime = DockerRuntime::connect().await.unwrap_or_else(|e| {
        panic!("these tests need a Docker engine and none answers ({e}): run `bash scripts/tools-docker.sh` first")
    });
    if let Err(e) = client().inspect_image(STANDIN_IMAGE).await {
        panic!("image {STANDIN_IMAGE} is missing ({e}): run `bash scripts/tools-docker.sh` first");
    }
    runtime
}

/// A client of the same engine, to look at it independently of the runtime.
pub fn client() -> Docker {
    Docker::connect_with_defaults().unwrap()
}

/// The ID of an image on the engine.
pub async fn image_id(image: &str) -> String {
    client().inspect_image(image).await.unwrap().id.unwrap()
}

/// Names of all containers (running or not) whose name contains `name`, as `docker ps -a` lists them.
pub async fn containers_named(name: &str) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(
            [("name".to_string(), vec![name.to_string()])]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    };
    client()
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect()
}

/// Fails if a container of run `name` is left.
pub async fn assert_no_container(name: &str) {
    let left = containers_named(name).await;
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

/// Polls the engine until no container of run `name` is left, failing after `timeout`.
pub async fn await_no_container(name: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let left = containers_named(name).await;
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "containers left behind after {timeout:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The uid the code runs as by default: the tests' own, or nobody when they run as root.
pub fn default_code_uid() -> u32 {
    let own = nix::unistd::geteuid().as_raw();
    if own == 0 {
        65534
    } else {
        own
    }
}

/// Captures what is traced while it is the thread's default subscriber, as JSON lines.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A JSON subscriber writing here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let buf = self.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || buf.clone())
            .finish()
    }

    /// The events captured so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The ID of the container of run `name`, once the engine has created it.
pub async fn container_id(name: &str) -> Option<String> {
    client()
        .inspect_container(name, None)
        .await
        .ok()
        .and_then(|c| c.id)
}

/// The host directory of the pids cgroup of container `id` (cgroup v1 or v2, `cgroupfs` or
/// `systemd` driver), once it exists.
pub fn pids_cgroup(id: &str) -> Option<PathBuf> {
    [
        format!("/sys/fs/cgroup/pids/docker/{id}"),
        format!("/sys/fs/cgroup/pids/system.slice/docker-{id}.scope"),
        format!("/sys/fs/cgroup/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("pids.current").is_file())
}

/// What the pids controller says of a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidsCount {
    /// `pids.max`; `None` for `max` (no limit).
    pub max: Option<u64>,
    /// `pids.peak`: the most processes and threads the container ever had at once.
    pub peak: u64,
    /// The `max` line of `pids.events`: how many forks the limit refused.
    pub refused: u64,
}

/// Reads `pids.max`, `pids.peak` and `pids.events` of a pids cgroup directory; `None` once it is
/// gone (the container was removed).
pub fn pids_count(dir: &Path) -> Option<PidsCount> {
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let max = read("pids.max")?;
    let peak = read("pids.peak")?;
    let events = read("pids.events")?;
    Some(PidsCount {
        max: max.trim().parse().ok(),
        peak: peak.trim().parse().expect("pids.peak is a number"),
        refused: events
            .lines()
            .find_map(|l| l.strip_prefix("max "))
            .map_or(0, |n| n.trim().parse().expect("pids.events counts")),
    })
}

/// Polls until run `name` has a container whose pids cgroup is readable, failing after `timeout`.
pub async fn await_pids_cgroup(name: &str, timeout: Duration) -> PathBuf {
    let start = Instant::now();
    loop {
        if let Some(dir) = container_id(name).await.as_deref().and_then(pids_cgroup) {
            return dir;
        }
        assert!(
            start.elapsed() < timeout,
            "no pids cgroup for run {name} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

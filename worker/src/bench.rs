//! `swath-worker bench stage`: staging throughput against `rclone copy` on the same S3 server.
//!
//! The bench starts the in-process S3 server ([`swath_s3_test_server`]) on 127.0.0.1, fills a
//! bucket with a generated object set, then downloads the whole set with `rclone copy` (configured
//! through `RCLONE_CONFIG_<NAME>_*` variables, path style, the server's endpoint) and with
//! [`swath_storage::stage_from`], with the same parallelism. Both copies are checked against the
//! generated files before their throughputs and ratio are printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use swath_s3_test_server::{TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};
use swath_storage::{stage_from, upload_dir_to, Store};

/// The bucket and prefix the object set is uploaded to.
const BUCKET: &str = "bench";
const PREFIX: &str = "objects";
/// Name of the rclone remote defined through environment variables.
const REMOTE: &str = "SWATHBENCH";

/// Arguments of `bench stage`.
#[derive(Debug, Clone, clap::Args)]
pub struct StageBenchArgs {
    /// Objects in the generated set.
    #[arg(long, default_value_t = 64)]
    pub objects: usize,
    /// Size of each object, in MiB.
    #[arg(long, default_value_t = 4)]
    pub size_mb: u64,
    /// Downloads at once, for both (rclone's `--transfers`).
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// Runs of each copier; the fastest run of each is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The rclone binary.
    #[arg(long, default_value = "/usr/bin/rclone")]
    pub rclone: PathBuf,
    /// Directory for the server's objects and the copies (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Measured figures of one bench run.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBenchReport {
    /// Objects copied by each copier.
    pub objects: usize,
    /// Bytes copied by each copier.
    pub bytes: u64,
    /// Fastest `rclone copy`.
    pub rclone: Duration,
    /// Fastest staging by the worker.
    pub ours: Duration,
}

impl StageBenchReport {
    /// Throughput of `rclone copy`, in MB/s (10^6 bytes).
    pub fn rclone_mb_s(&self) -> f64 {
        mb_per_s(self.bytes, self.rclone)
    }

    /// Throughput of the worker's staging, in MB/s (10^6 bytes).
    pub fn ours_mb_s(&self) -> f64 {
        mb_per_s(self.bytes, self.ours)
    }

    /// Our throughput over rclone's.
    pub fn ratio(&self) -> f64 {
        self.ours_mb_s() / self.rclone_mb_s()
    }
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64().max(1e-9)
}

/// Runs the bench and prints the figures.
pub async fn run_stage_bench(args: &StageBenchArgs) -> anyhow::Result<()> {
    let report = measure_stage_bench(args).await?;
    println!(
        "stage bench: {} objects x {} MiB = {:.1} MB, parallelism {}, best of {} round(s)",
        report.objects,
        args.size_mb,
        report.bytes as f64 / 1e6,
        args.parallelism,
        args.rounds.max(1)
    );
    println!(
        "rclone copy:  {:>8.3} s  {:>8.1} MB/s",
        report.rclone.as_secs_f64(),
        report.rclone_mb_s()
    );
    println!(
        "swath stage:  {:>8.3} s  {:>8.1} MB/s",
        report.ours.as_secs_f64(),
        report.ours_mb_s()
    );
    println!("ratio (swath / rclone): {:.2}", report.ratio());
    Ok(())
}

/// Runs the bench and returns the figures.
pub async fn measure_stage_bench(args: &StageBenchArgs) -> anyhow::Result<StageBenchReport> {
    ensure!(
        args.objects > 0 && args.size_mb > 0,
        "--objects and --size-mb must be positive"
    );
    if !args.rclone.is_file() {
        bail!(
            "rclone not found at {}: install Debian's rclone (scripts/tools-storage.sh)",
            args.rclone.display()
        );
    }
    let work = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("cannot create the bench's work directory")?;
    let source = work.path().join("source");
    let size = args.size_mb * 1024 * 1024;
    let generated = tokio::task::spawn_blocking({
        let source = source.clone();
        let objects = args.objects;
        move || generate(&source, objects, size)
    })
    .await??;

    // The server gets threads of its own, as it has when rclone copies: the stager does not
    // share its runtime with the server it measures.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-s3-server")
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let result = measure_with_server(
        args,
        &server_runtime,
        work.path(),
        &source,
        size,
        &generated,
    )
    .await;
    server_runtime.shutdown_background();
    result
}

async fn measure_with_server(
    args: &StageBenchArgs,
    runtime: &tokio::runtime::Runtime,
    work: &Path,
    source: &Path,
    size: u64,
    generated: &[String],
) -> anyhow::Result<StageBenchReport> {
    let root = work.join("server");
    let server = runtime
        .spawn(async move { TestServer::start(&root).await })
        .await?
        .context("cannot start the S3 server")?;
    server.create_bucket(BUCKET)?;
    let store: Arc<dyn Store> = Arc::new(server.store(BUCKET, PREFIX)?);
    upload_dir_to(source, Arc::clone(&store), args.parallelism)
        .await
        .context("cannot upload the object set")?;

    let mut best_rclone = Duration::MAX;
    let mut best_ours = Duration::MAX;
    for round in 0..args.rounds.max(1) {
        let dest = work.join(format!("rclone-{round}"));
        let started = Instant::now();
        run_rclone(args, &server, work, &dest).await?;
        best_rclone = best_rclone.min(started.elapsed());
        same_files(source, &dest, generated).context("rclone's copy")?;
        std::fs::remove_dir_all(&dest)?;

        let dest = work.join(format!("swath-{round}"));
        let started = Instant::now();
        let report = stage_from(Arc::clone(&store), &dest, args.parallelism, true).await?;
        best_ours = best_ours.min(started.elapsed());
        ensure!(
            report.objects == generated.len(),
            "staged {} objects of {}",
            report.objects,
            generated.len()
        );
        same_files(source, &dest, generated).context("the worker's copy")?;
        std::fs::remove_dir_all(&dest)?;
    }
    server.stop().await;
    Ok(StageBenchReport {
        objects: generated.len(),
        bytes: size * generated.len() as u64,
        rclone: best_rclone,
        ours: best_ours,
    })
}

/// Writes `count` files of `size` pseudo-random bytes under `dir`; returns their names.
fn generate(dir: &Path, count: usize, size: u64) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut names = Vec::with_capacity(count);
    let mut buffer = vec![0u8; usize::try_from(size)?];
    for index in 0..count {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (index as u64 + 1);
        for chunk in buffer.chunks_mut(8) {
            // xorshift64: incompressible enough that no layer can shortcut the transfer.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let name = format!("part-{index:05}.bin");
        std::fs::write(dir.join(&name), &buffer)?;
        names.push(name);
    }
    Ok(names)
}

async fn run_rclone(
    args: &StageBenchArgs,
    server: &TestServer,
    work: &Path,
    dest: &Path,
) -> anyhow::Result<()> {
    let var = |field: &str| format!("RCLONE_CONFIG_{REMOTE}_{field}");
    let transfers = args.parallelism.max(1).to_string();
    let mut command = tokio::process::Command::new(&args.rclone);
    // Only the remote defined here: AWS_* variables of the environment (a CA bundle, a profile)
    // would change how rclone's S3 client connects, and other RCLONE_* variables its behaviour.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("RCLONE_") {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .arg("copy")
        .arg(format!("{}:{BUCKET}/{PREFIX}", REMOTE.to_lowercase()))
        .arg(dest)
        .args(["--transfers", &transfers, "--checkers", &transfers])
        // An empty configuration file: the remote comes from the environment only.
        .arg("--config")
        .arg(work.join("rclone.conf"))
        .env(var("TYPE"), "s3")
        .env(var("PROVIDER"), "Other")
        .env(var("ENV_AUTH"), "false")
        .env(var("ACCESS_KEY_ID"), TEST_ACCESS_KEY)
        .env(var("SECRET_ACCESS_KEY"), TEST_SECRET_KEY)
        .env(var("ENDPOINT"), server.endpoint())
        .env(var("REGION"), "us-east-1")
        .env(var("FORCE_PATH_STYLE"), "true")
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {}", args.rclone.display()))?;
    if !output.status.success() {
        bail!(
            "rclone copy failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Checks that `copy` holds exactly the files `names` of `source`, byte for byte.
fn same_files(source: &Path, copy: &Path, names: &[String]) -> anyhow::Result<()> {
    let mut found: Vec<String> = std::fs::read_dir(copy)
        .with_context(|| format!("cannot read {}", copy.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    found.sort();
    ensure!(found == names, "files differ: {found:?}");
    for name in names {
        let expected = std::fs::read(source.join(name))?;
        let actual = std::fs::read(copy.join(name))?;
        ensure!(
            expected == actual,
            "{name} differs from the generated object"
        );
    }
    Ok(())
}

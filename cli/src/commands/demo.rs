//! `swath demo`: the whole flow on the shipped sample catalogue, on this machine alone.
//!
//! It ingests every sample, then runs an orchestrator (configuration, dispatch to the local
//! executor, real `swath-worker` processes running the stand-in science in Docker when the engine
//! holds the stand-in image, as a plain process otherwise, publication to a JSON-lines file) until
//! every job has ended, showing progress, and prints a summary. It works in a fresh
//! `<database>_demo` database and a fresh directory (`swath-demo` in the system's temporary
//! directory), so that it never touches production data and can be run again and again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, TimeZone, Utc};
use sqlx::PgPool;
use swath_domain::types::STAND_IN_IMAGE;
use swath_domain::JobStatus;

use super::ingest::summary_table;
use super::table;
use swath_engine::catalogue;
use swath_engine::config::{ExecutorKind, PublisherKind, Settings};
use swath_engine::db;
use swath_engine::pipeline::poller::{poll, PollWindow};
use swath_engine::startup::{self, Options};

/// The stand-in science, written out for the process runtime (the image holds the same script).
const STAND_IN_SCRIPT: &str = include_str!("../../../worker/standin/run.sh");
/// How long the demo waits for every job to end.
const DEADLINE: Duration = Duration::from_secs(600);
/// How often progress is read.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Stops, naming the URL, the error and the command that sets PostgreSQL up, when the configured
/// server cannot be reached at all (connection refused, unknown host, no answer in time). Any other
/// failure (credentials, permissions) is left to the steps that follow, which name it.
async fn check_server(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database();
    let options: sqlx::postgres::PgConnectOptions = match url.expose().parse() {
        Ok(options) => options,
        Err(_) => return Ok(()), // invalid URLs are reported by the settings' validation
    };
    let timeout = Duration::from_secs(settings.database_connect_timeout_secs);
    let admin = options.database("postgres");
    let attempt = sqlx::ConnectOptions::connect(&admin);
    let error = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            return Ok(());
        }
        Ok(Err(sqlx::Error::Io(e))) => e.to_string(),
        Ok(Err(_)) => return Ok(()),
        Err(_) => format!("no answer within {} s", timeout.as_secs()),
    };
    anyhow::bail!(
        "cannot reach PostgreSQL at {}: {error}\n\
         swath demo needs a PostgreSQL server that accepts the postgres user. To install and start \
         one on 127.0.0.1:5432 (the default), run:\n    {}\n\
         or point SWATH_DATABASE_URL at a running server.",
        url.redacted(),
        services_command()
    )
}

/// The command that installs and starts the services (`scripts/services.sh` of the source tree).
fn services_command() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    match script.canonicalize() {
        Ok(path) if path.is_file() => format!("sudo bash {}", path.display()),
        _ => "sudo bash scripts/services.sh   (in swath's source tree)".to_string(),
    }
}

/// Runs the demo and prints its summary.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    check_server(settings).await?;
    let (url, pool) = super::fresh_database(settings, "demo").await?;
    println!("swath demo: database {} (recreated)", url.redacted());
    let root = std::env::temp_dir().join("swath-demo");
    recreate_dir(&root)?;
    println!("swath demo: files under {}", root.display());

    let (runtime, reason) = worker_runtime(settings).await?;
    match &reason {
        Some(reason) => println!("worker runtime: {runtime} ({reason})"),
        None => println!("worker runtime: {runtime} (image {STAND_IN_IMAGE})"),
    }
    let settings = demo_settings(settings, &root, &runtime)?;

    ingest_samples(&pool, &settings).await?;

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let options = Options {
        ingest: false,
        worker_env: BTreeMap::from([("SWATH_WORKER_RUNTIME".to_string(), runtime.clone())]),
        worker_log_dir: Some(root.join("logs")),
        ..Options::default()
    };
    let running = startup::start(&pool, &settings, listener, options).await?;
    println!(
        "orchestrator: API on http://{}, workers' logs in {}",
        running.api_addr,
        root.join("logs").display()
    );
    println!();
    let waited = wait_until_every_job_ended(&pool).await;
    running.stop().await;
    waited?;

    println!();
    print_summary(&pool, &settings, &root, started.elapsed()).await?;
    println!(
        "look at the jobs:   SWATH_DATABASE_URL={} swath jobs list   (from the source tree: cargo run -p swath -- jobs list)",
        url.redacted()
    );
    Ok(())
}

/// Removes `dir` and creates it again, empty.
fn recreate_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// `docker` when the engine answers and holds the stand-in image, else `process` (with the reason),
/// as the worker itself finds it.
async fn worker_runtime(settings: &Settings) -> anyhow::Result<(String, Option<String>)> {
    let command = settings.local_worker_command()?;
    let worker = command.program;
    // The same program, asked `runtime` instead of `run`.
    let mut args = command.args;
    args.pop();
    args.extend(["runtime".into(), "--image".into(), STAND_IN_IMAGE.into()]);
    let output = tokio::process::Command::new(&worker)
        .args(&args)
        .output()
        .await
        .with_context(|| format!("running {}", worker.display()))?;
    let runtime = String::from_utf8_lossy(&output.stdout).trim().to_string();
    anyhow::ensure!(
        output.status.success() && (runtime == "docker" || runtime == "process"),
        "{} runtime: unexpected answer {runtime:?} ({})",
        worker.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Ok((runtime, (!reason.is_empty()).then_some(reason)))
}

/// The settings of the demo: the local executor, files under `root` for work, outputs and
/// publications, an API on a free loopback port, short retry delays, and, for the process runtime,
/// the stand-in script written under `root` as every job type's command.
fn demo_settings(settings: &Settings, root: &Path, runtime: &str) -> anyhow::Result<Settings> {
    let mut demo = settings.clone();
    demo.executor = ExecutorKind::Local;
    demo.publisher = PublisherKind::File;
    demo.publication_file = root.join("publications.jsonl").display().to_string();
    demo.output_url = format!("file://{}", root.join("outputs").display());
    demo.local_work_root = root.join("work").display().to_string();
    demo.listen = "127.0.0.1:0".into();
    demo.orchestrator_url = String::new();
    demo.retry_base_secs = 1;
    demo.retry_max_secs = 2;
    demo.track_interval_secs = 1;
    // Writes need a token: the demo's own, used by nobody (it makes no API write).
    demo.api_write_token = Some(swath_engine::config::Secret::new(
        uuid::Uuid::new_v4().to_string(),
    ));
    if runtime == "process" {
        let script = root.join("standin").join("run.sh");
        std::fs::create_dir_all(script.parent().expect("a parent"))?;
        std::fs::write(&script, STAND_IN_SCRIPT)
            .with_context(|| format!("writing {}", script.display()))?;
        // Every job type's command, with the image's script path replaced by the written one.
        let commands: Vec<(String, Vec<String>)> = demo
            .registry()?
            .iter()
            .map(|t| (t.spec().name.clone(), t.spec().command.clone()))
            .collect();
        let written = script.display().to_string();
        for (name, command) in commands {
            demo.job_type_settings.entry(name).or_default().command = Some(
                command
                    .iter()
                    .map(|arg| arg.replace("/standin/run.sh", &written))
                    .collect(),
            );
        }
    }
    Ok(demo)
}

/// Ingests every sample, whenever it was published, and prints what was created or refused.
async fn ingest_samples(pool: &PgPool, settings: &Settings) -> anyhow::Result<()> {
    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())?;
    println!("catalogue: {}", source.source());
    let window = PollWindow::Explicit {
        from: Utc
            .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid date"),
        to: Utc::now() + TimeDelta::days(1),
    };
    let registry = settings.registry()?;
    let mut reports = Vec::new();
    for name in &settings.job_types {
        let job_type = registry
            .get(name)
            .with_context(|| format!("unknown job type {name}"))?;
        let report = poll(pool, job_type, source.as_ref(), window, &mut |_| {})
            .await
            .with_context(|| format!("ingesting for {name}"))?;
        reports.push(report);
    }
    println!();
    print!("{}", summary_table(&reports));
    println!("(quarantined products are logged with the reason; they never block the others)");
    Ok(())
}

/// Prints a progress line whenever the jobs' statuses change, until every job has ended.
async fn wait_until_every_job_ended(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut last = String::new();
    loop {
        let counts = db::jobs::count_by_type_and_status(pool).await?;
        let mut by_status = BTreeMap::<JobStatus, i64>::new();
        for (_, status, n) in &counts {
            *by_status.entry(*status).or_default() += n;
        }
        let line = by_status
            .iter()
            .map(|(status, n)| format!("{n} {}", status.name()))
            .collect::<Vec<_>>()
            .join(", ");
        if line != last {
            println!(
                "  {:>6.1} s  {line}",
                DEADLINE.as_secs_f64() - remaining(deadline)
            );
            last = line;
        }
        let unfinished: i64 = by_status
            .iter()
            .filter(|(status, _)| !status.is_terminal())
            .map(|(_, n)| n)
            .sum();
        if unfinished == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{unfinished} jobs have not ended after {} s ({last})",
            DEADLINE.as_secs()
        );
        tokio::time::sleep(PROGRESS_EVERY).await;
    }
}

/// Seconds left before `deadline`.
fn remaining(deadline: Instant) -> f64 {
    deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64()
}

/// Jobs by type and status, outputs written, messages published, time taken, and where to look.
async fn print_summary(
    pool: &PgPool,
    settings: &Settings,
    root: &Path,
    took: Duration,
) -> anyhow::Result<()> {
    let counts = db::jobs::count_by_type_and_status(pool).await?;
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|(t, s, n)| vec![t.clone(), s.to_string(), n.to_string()])
        .collect();
    print!("{}", table::render(&["JOB TYPE", "STATUS", "JOBS"], &rows));
    println!();

    print!("{}", products_table(pool, settings).await?);
    println!();

    let outputs = root.join("outputs");
    let (files, bytes) = tree_size(&outputs)?;
    let published = db::publications::count_confirmed(pool).await?;
    let publication_file = PathBuf::from(&settings.publication_file);
    let lines = match std::fs::read_to_string(&publication_file) {
        Ok(text) => text.lines().count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", publication_file.display())),
    };
    let rows = vec![
        vec![
            "outputs written".to_string(),
            format!("{files} files, {bytes} bytes"),
            outputs.display().to_string(),
        ],
        vec![
            "messages published".to_string(),
            format!("{published} confirmed ({lines} lines)"),
            publication_file.display().to_string(),
        ],
        vec![
            "workers' logs".to_string(),
            String::new(),
            root.join("logs").display().to_string(),
        ],
        vec![
            "time taken".to_string(),
            format!("{:.1} s", took.as_secs_f64()),
            String::new(),
        ],
    ];
    print!("{}", table::render(&["WHAT", "HOW MUCH", "WHERE"], &rows));
    Ok(())
}

/// The products announced: each once, with its message id, its job and the inputs the job staged
/// (every partial-tile product of a split datatake).
async fn products_table(pool: &PgPool, settings: &Settings) -> anyhow::Result<String> {
    let registry = settings.registry()?;
    let mut rows = Vec::new();
    for announced in db::publications::confirmed(pool).await? {
        let job = db::jobs::get_job(pool, announced.job_id).await?;
        let inputs = registry
            .get(&job.job_type)
            .and_then(|t| t.worker_task(&job).ok())
            .map(|task| {
                task.inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        rows.push(vec![
            announced.product_id,
            announced.message_id,
            job.id.to_string(),
            inputs,
        ]);
    }
    Ok(table::render(
        &["PRODUCT PUBLISHED", "MESSAGE ID", "JOB", "INPUTS"],
        &rows,
    ))
}

/// Files and bytes under `dir` (none when it does not exist).
fn tree_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

//! The control-plane benchmark: N jobs go from `ready` to `processed` through the real claim and
//! dispatch round, an instant executor that hands each attempt to simulated workers, and the
//! workers' token exchanges, status and result reports over the real worker HTTP endpoints. The
//! baseline is `pgbench -N` (PostgreSQL's own simple-update transactions) on the same server in the
//! same run: one transaction per status change cannot go faster than that on this machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use sqlx::PgPool;
use swath_domain::flavor::WorkerFlavor;
use swath_domain::registry::JobTypeRegistry;
use swath_domain::{JobStatus, NewJob};
use tokio::sync::mpsc;
use uuid::Uuid;

use swath_engine::api::{router, ApiState};
use swath_engine::attempt::failure::AttemptBackoff;
use swath_engine::db::bench::{count_in_status, set_status_of_type};
use swath_engine::db::claim::Claimant;
use swath_engine::db::jobs::insert_jobs;
use swath_engine::executor::{AttemptOutcome, DispatchRequest, Executor, ExecutorError};
use swath_engine::pipeline::dispatch::dispatch_round;

/// Status changes per job from `ready` to `processed`.
pub const TRANSITIONS_PER_JOB: usize = 6;

/// Hands every dispatched attempt to the simulated workers at once; never busy.
struct InstantExecutor {
    attempts: mpsc::UnboundedSender<DispatchRequest>,
    slots: usize,
    flavor: String,
}

#[async_trait]
impl Executor for InstantExecutor {
    fn name(&self) -> &'static str {
        "instant"
    }
    async fn capacity(&self) -> Result<BTreeMap<String, usize>, ExecutorError> {
        Ok(BTreeMap::from([(self.flavor.clone(), self.slots)]))
    }
    async fn dispatch(&self, request: &DispatchRequest) -> Result<String, ExecutorError> {
        self.attempts
            .send(request.clone())
            .map_err(|e| ExecutorError::Unavailable(e.to_string()))?;
        Ok(format!("instant/{}", request.idempotency_token))
    }
    async fn outcome(&self, _reference: &str) -> Result<AttemptOutcome, ExecutorError> {
        Ok(AttemptOutcome::Running)
    }
    async fn stop(&self, _reference: &str) -> Result<(), ExecutorError> {
        Ok(())
    }
}

/// What the pipeline benchmark measured.
#[derive(Debug, Clone)]
pub struct PipelineBench {
    /// Jobs driven to `processed`.
    pub jobs: usize,
    /// Time from the first claim to the last `processed`.
    pub elapsed: Duration,
    /// `pgbench -N` transactions per second.
    pub pgbench_tps: f64,
}

impl PipelineBench {
    /// Jobs per second.
    pub fn jobs_per_second(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64()
    }
    /// Status changes per second.
    pub fn transitions_per_second(&self) -> f64 {
        (self.jobs * TRANSITIONS_PER_JOB) as f64 / self.elapsed.as_secs_f64()
    }
}

/// N `test_job`s set `ready` (not timed).
async fn ready_jobs(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|i| {
                let mut j = NewJob::new("test_job", format!("bench-{i:08}"), 3);
                j.params = serde_json::json!({"product": format!("bench-{i}"), "mission": null});
                j.input_path = Some(format!("/bench/{i}"));
                j
            })
            .collect();
        insert_jobs(pool, &jobs).await?;
    }
    for status in [JobStatus::Configured, JobStatus::Ready] {
        set_status_of_type(pool, "test_job", status).await?;
    }
    Ok(())
}

/// The bodies of a simulated worker's reports, in order: four statuses, then the result.
const REPORTS: [(&str, &str); 5] = [
    ("status", r#"{"status":"started"}"#),
    ("status", r#"{"status":"pre_processing"}"#),
    ("status", r#"{"status":"processing"}"#),
    ("status", r#"{"status":"post_processing"}"#),
    ("result", r#"{"outcome":"no_product","return_code":200}"#),
];

/// One simulated worker: exchanges the bootstrap secret of each attempt it receives for an attempt
/// token, reports every step, then its result, over a kept-alive connection.
async fn worker(
    client: reqwest::Client,
    base: String,
    attempts: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<DispatchRequest>>>,
) -> anyhow::Result<usize> {
    let mut done = 0;
    loop {
        let Some(attempt) = attempts.lock().await.recv().await else {
            return Ok(done);
        };
        let prefix = format!(
            "{base}/worker/jobs/{}/attempts/{}/",
            attempt.job_id, attempt.attempt
        );
        // The first call exchanges the dispatch's bootstrap secret for the attempt token.
        let token = swath_engine::db::tokens::new_token();
        let r = client
            .post(format!("{prefix}token"))
            .bearer_auth(&attempt.worker_token)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "token exchange of job {}: {}",
            attempt.job_id,
            r.text().await.unwrap_or_default()
        );
        r.bytes().await?;
        let authorization = format!("Bearer {token}");
        for (what, body) in REPORTS {
            let r = client
                .post(format!("{prefix}{what}"))
                .header(reqwest::header::AUTHORIZATION, &authorization)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "{what} {body} of job {}: {}",
                attempt.job_id,
                r.text().await.unwrap_or_default()
            );
            // The whole answer is read, so that the connection is kept for the next report.
            r.bytes().await?;
        }
        done += 1;
    }
}

/// `pgbench -N` transactions per second on `url`'s server (initialized in a scratch database).
fn pgbench_tps(url: &url::Url, clients: usize, seconds: u64) -> anyhow::Result<f64> {
    let conn = |args: &mut std::process::Command| {
        args.arg("-h").arg(url.host_str().unwrap_or("127.0.0.1"));
        args.arg("-p").arg(url.port().unwrap_or(5432).to_string());
        if !url.username().is_empty() {
            args.arg("-U").arg(url.username());
        }
        if let Some(p) = url.password() {
            args.env("PGPASSWORD", p);
        }
        args.arg(url.path().trim_start_matches('/'));
    };
    let mut init = std::process::Command::new("pgbench");
    init.args(["-i", "-q", "-s", "1"]);
    conn(&mut init);
    let out = init
        .output()
        .context("running pgbench -i (is pgbench installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = std::process::Command::new("pgbench");
    run.args([
        "-N",
        "-n",
        "-c",
        &clients.to_string(),
        "-j",
        "2",
        "-T",
        &seconds.to_string(),
    ]);
    conn(&mut run);
    let out = run.output().context("running pgbench -N")?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench -N failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}

/// Runs the pipeline benchmark on `pool` (a fresh database) and `pgbench -N` on `pgbench_url`.
pub async fn bench_pipeline(
    pool: &PgPool,
    registry: Arc<JobTypeRegistry>,
    jobs: usize,
    workers: usize,
    pgbench_url: &url::Url,
) -> anyhow::Result<PipelineBench> {
    ready_jobs(pool, jobs).await?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let state = ApiState {
        pool: pool.clone(),
        registry: registry.clone(),
        backoff: AttemptBackoff::default(),
        tasks: swath_engine::config::Settings::default().task_locations(),
        timeliness_target_hours: 3.0,
    };
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let (tx, rx) = mpsc::unbounded_channel();
    let flavor = registry
        .get("test_job")
        .context("the test_job job type")?
        .spec()
        .worker_flavor
        .clone();
    let executor = InstantExecutor {
        attempts: tx,
        slots: 1000,
        flavor: flavor.clone(),
    };
    let flavors = vec![WorkerFlavor {
        name: flavor,
        cpus: 1,
        memory_mb: 1,
        disk_gb: 0,
        local_slots: 1000,
        ..WorkerFlavor::default()
    }];
    let claimant = Claimant {
        service_id: Uuid::new_v4(),
        tag: serde_json::json!({"bench": true}),
        lease: Duration::from_secs(600),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()?;
    let rx = Arc::new(tokio::sync::Mutex::new(rx));

    let started = Instant::now();
    let worker_tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(worker(client.clone(), base.clone(), rx.clone())))
        .collect();
    let types = vec!["test_job".to_string()];
    // Every job is claimed once: the rounds end when there is nothing left to claim.
    loop {
        let report = dispatch_round(
            pool,
            &executor,
            &registry,
            &types,
            &flavors,
            &claimant,
            AttemptBackoff::default(),
        )
        .await?;
        anyhow::ensure!(report.refused == 0, "the executor refused jobs");
        if report.claimed == 0 {
            break;
        }
    }
    drop(executor);
    let mut reported = 0;
    for task in worker_tasks {
        reported += task.await??;
    }
    let elapsed = started.elapsed();
    server.abort();
    anyhow::ensure!(reported == jobs, "{reported} of {jobs} jobs reported");
    let processed = count_in_status(pool, JobStatus::Processed).await?;
    anyhow::ensure!(
        processed as usize == jobs,
        "{processed} of {jobs} jobs processed"
    );
    let pgbench_tps = pgbench_tps(pgbench_url, workers.min(16), 10)?;
    Ok(PipelineBench {
        jobs,
        elapsed,
        pgbench_tps,
    })
}

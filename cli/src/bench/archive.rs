//! `swath bench archive`: what an operator's reads cost as the archive grows.
//!
//! A synthetic archive is loaded the fastest way (set-based inserts with the triggers off, see
//! `db::bench::load_archive`), its derived summaries rebuilt (`db::summaries::refresh`, what `swath db
//! refresh` runs) and the tables analysed. The API then answers four reads over HTTP, each timed as
//! the median of several calls: the dashboard's data, `/metrics`, a filtered job list and one job.
//! The same reads are timed first on the baseline archive (its first jobs), then on the whole
//! archive; the ratio of each pair says whether the read grows with the archive (goal: at most 1.5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use swath_domain::registry::JobTypeRegistry;
use swath_engine::api::{router, ApiState};
use swath_engine::attempt::AttemptBackoff;
use swath_engine::db;

/// Timed calls of each read (after as many unmeasured ones).
const CALLS: usize = 15;
/// Jobs loaded per statement.
const CHUNK: i64 = 250_000;

/// The reads timed, with their path under the API's root.
const READS: [(&str, &str); 4] = [
    ("dashboard data", "/api/v1/dashboard"),
    ("/metrics", "/metrics"),
    (
        "filtered list (fsc_rlie, internal_error, 50)",
        "/api/v1/jobs?type=fsc_rlie&status=internal_error&limit=50",
    ),
    ("one job, with its history", "/api/v1/jobs/{id}"),
];

/// The median time of each read, in [`READS`] order.
pub type Timings = Vec<Duration>;

/// What the benchmark measured.
#[derive(Debug)]
pub struct ArchiveBench {
    /// Jobs of the baseline archive.
    pub baseline_jobs: i64,
    /// Jobs of the whole archive.
    pub jobs: i64,
    /// How long loading the rest of the archive took (jobs, history, summaries, statistics).
    pub load: Duration,
    /// The reads on the baseline archive.
    pub baseline: Timings,
    /// The reads on the whole archive.
    pub whole: Timings,
}

impl ArchiveBench {
    /// Each read: its name, its time on the baseline and on the whole archive, and their ratio.
    pub fn rows(&self) -> Vec<(&'static str, Duration, Duration, f64)> {
        READS
            .iter()
            .zip(self.baseline.iter().zip(&self.whole))
            .map(|((name, _), (base, whole))| {
                (
                    *name,
                    *base,
                    *whole,
                    whole.as_secs_f64() / base.as_secs_f64().max(1e-9),
                )
            })
            .collect()
    }
}

/// Loads jobs `first..=last` in chunks, printing progress, then refreshes the summaries and the
/// statistics.
async fn load(pool: &PgPool, first: i64, last: i64) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut from = first;
    while from <= last {
        let to = (from + CHUNK - 1).min(last);
        db::bench::load_archive(&mut conn, from, to)
            .await
            .with_context(|| format!("loading jobs {from} to {to} (needs a superuser)"))?;
        eprintln!("  loaded jobs up to {to}");
        from = to + 1;
    }
    drop(conn);
    db::summaries::refresh(pool)
        .await
        .context("refreshing the summaries")?;
    db::bench::analyze(pool).await?;
    Ok(())
}

/// The median time of `CALLS` calls of each read on the API at `base` (`{id}` is `job`).
async fn time_reads(client: &reqwest::Client, base: &str, job: i64) -> anyhow::Result<Timings> {
    let mut timings = Vec::new();
    for (name, path) in READS {
        let url = format!("{base}{}", path.replace("{id}", &job.to_string()));
        let mut times = Vec::with_capacity(CALLS);
        for call in 0..2 * CALLS {
            let started = Instant::now();
            let answer = client.get(&url).send().await?;
            let status = answer.status();
            answer.bytes().await?;
            anyhow::ensure!(status.is_success(), "{name}: {url} answered {status}");
            if call >= CALLS {
                times.push(started.elapsed());
            }
        }
        times.sort_unstable();
        timings.push(times[times.len() / 2]);
    }
    Ok(timings)
}

/// Runs the benchmark on `pool` (a fresh database): `baseline_jobs` jobs, then `jobs` in all.
pub async fn bench_archive(
    pool: &PgPool,
    registry: Arc<JobTypeRegistry>,
    baseline_jobs: i64,
    jobs: i64,
) -> anyhow::Result<ArchiveBench> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = ApiState {
        pool: pool.clone(),
        registry,
        backoff: AttemptBackoff::default(),
        tasks: swath_engine::config::Settings::default().task_locations(),
        timeliness_target_hours: 3.0,
    };
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let client = reqwest::Client::new();

    eprintln!("loading the baseline archive ({baseline_jobs} jobs)");
    load(pool, 1, baseline_jobs).await?;
    let baseline = time_reads(&client, &base, baseline_jobs / 2).await?;
    eprintln!("loading the rest of the archive ({jobs} jobs in all)");
    let started = Instant::now();
    load(pool, baseline_jobs + 1, jobs).await?;
    let load = started.elapsed();
    let whole = time_reads(&client, &base, jobs / 2).await?;
    server.abort();
    Ok(ArchiveBench {
        baseline_jobs,
        jobs,
        load,
        baseline,
        whole,
    })
}

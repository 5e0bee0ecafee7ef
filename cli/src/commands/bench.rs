//! `swath bench ...`: benchmarks in a fresh `<database>_bench` database, printed as ratios.

use anyhow::Context;
use clap::Subcommand;

use super::table;
use crate::bench::{bench_ingest, generate_products};
use swath_engine::config::Settings;
use swath_engine::db;

/// `swath bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest N generated Sentinel-2 L1C listings and compare with a raw COPY of the same rows.
    Ingest {
        /// How many products to generate.
        #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        products: u64,
        /// Products per catalogue page (one transaction each).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        page_size: u64,
    },
    /// Load a synthetic archive of N jobs (six history rows each) and time the operator's reads
    /// (dashboard data, /metrics, a filtered list, one job) against the same reads on its first
    /// 10,000 jobs.
    Archive {
        /// How many jobs in the whole archive.
        #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(20_000..=50_000_000))]
        jobs: u64,
        /// Keep the benchmark's database afterwards (to look at the plans of the reads).
        #[arg(long)]
        keep: bool,
    },
    /// Drive N jobs from ready to processed through claim, dispatch and the worker HTTP reports,
    /// and compare the status changes per second with `pgbench -N`'s transactions per second.
    Pipeline {
        /// How many jobs.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        jobs: u64,
        /// Simulated workers reporting at once (also pgbench's clients, up to 16).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
        workers: u64,
    },
}

/// Runs a benchmark and prints its figures.
pub async fn run(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    let (products, page_size) = match cmd {
        BenchCommand::Ingest {
            products,
            page_size,
        } => (products, page_size),
        BenchCommand::Pipeline { jobs, workers } => {
            return run_pipeline(settings, jobs as usize, workers as usize).await
        }
        BenchCommand::Archive { jobs, keep } => {
            return run_archive(settings, jobs as i64, keep).await
        }
    };
    let (url, pool) = super::fresh_database(settings, "bench").await?;
    let registry = settings.registry()?;
    let job_type = registry.get("fsc_rlie").context("the fsc_rlie job type")?;

    println!(
        "swath bench ingest: {products} products, pages of {page_size}, database {}",
        url.redacted()
    );
    let listed = generate_products(products as usize);
    let result = bench_ingest(&pool, job_type, listed, page_size as usize).await?;
    let rows = vec![
        vec![
            "swath ingest (parse, area, dedup, insert with history, per-page transaction)"
                .to_string(),
            result.products.to_string(),
            format!("{:.2}", result.ingest.as_secs_f64()),
            format!("{:.0}", result.ingest_rate()),
        ],
        vec![
            "raw COPY of the same rows into an identical table".to_string(),
            result.jobs.to_string(),
            format!("{:.2}", result.copy.as_secs_f64()),
            format!("{:.0}", result.copy_rate()),
        ],
    ];
    print!(
        "{}",
        table::render(&["PATH", "ROWS", "SECONDS", "PER SECOND"], &rows)
    );
    println!(
        "ratio: swath ingests at {:.2} of the COPY rate",
        result.ingest_rate() / result.copy_rate()
    );
    pool.close().await;
    db::drop_database_if_exists(&url)
        .await
        .context("dropping the bench database")?;
    Ok(())
}

/// Jobs of the archive benchmark's baseline.
const ARCHIVE_BASELINE_JOBS: i64 = 10_000;

async fn run_archive(settings: &Settings, jobs: i64, keep: bool) -> anyhow::Result<()> {
    let (url, pool) = super::fresh_database(settings, "bench").await?;
    println!(
        "swath bench archive: {jobs} jobs (six history rows each) against {ARCHIVE_BASELINE_JOBS}, database {}",
        url.redacted()
    );
    let registry = std::sync::Arc::new(settings.registry()?);
    let result =
        crate::bench::archive::bench_archive(&pool, registry, ARCHIVE_BASELINE_JOBS, jobs).await?;
    let rows: Vec<Vec<String>> = result
        .rows()
        .into_iter()
        .map(|(name, base, whole, ratio)| {
            vec![
                name.to_string(),
                format!("{:.2} ms", base.as_secs_f64() * 1000.0),
                format!("{:.2} ms", whole.as_secs_f64() * 1000.0),
                format!("{ratio:.2}"),
            ]
        })
        .collect();
    let baseline_header = format!("{} JOBS", result.baseline_jobs);
    let whole_header = format!("{} JOBS", result.jobs);
    print!(
        "{}",
        table::render(
            &["READ (median)", &baseline_header, &whole_header, "RATIO"],
            &rows
        )
    );
    println!(
        "loading {} more jobs with their history, summaries and statistics took {:.1} s",
        result.jobs - result.baseline_jobs,
        result.load.as_secs_f64()
    );
    pool.close().await;
    if keep {
        println!("the database is kept: {}", url.redacted());
    } else {
        db::drop_database_if_exists(&url).await?;
    }
    Ok(())
}

async fn run_pipeline(settings: &Settings, jobs: usize, workers: usize) -> anyhow::Result<()> {
    let (url, pool) = super::fresh_database(settings, "bench").await?;
    let (pgbench_url, pgbench_pool) = super::fresh_database(settings, "pgbench").await?;
    pgbench_pool.close().await;
    println!(
        "swath bench pipeline: {jobs} jobs, {workers} workers, database {}",
        url.redacted()
    );
    let registry = std::sync::Arc::new(settings.registry()?);
    let pgbench_url = url::Url::parse(pgbench_url.expose()).context("the pgbench database URL")?;
    let result =
        crate::bench::pipeline::bench_pipeline(&pool, registry, jobs, workers, &pgbench_url)
            .await?;
    let rows = vec![
        vec![
            "swath: ready -> processed (claim, dispatch, worker reports over HTTP)".to_string(),
            format!("{:.0} jobs/s", result.jobs_per_second()),
            format!("{:.0} status changes/s", result.transitions_per_second()),
        ],
        vec![
            "pgbench -N on the same server".to_string(),
            String::new(),
            format!("{:.0} transactions/s", result.pgbench_tps),
        ],
    ];
    print!("{}", table::render(&["PATH", "JOBS", "CHANGES"], &rows));
    println!(
        "ratio: swath changes statuses at {:.2} of pgbench's transaction rate",
        result.transitions_per_second() / result.pgbench_tps
    );
    pool.close().await;
    db::drop_database_if_exists(&url).await?;
    db::drop_database_if_exists(&db::DatabaseUrl::new(pgbench_url.to_string())).await?;
    Ok(())
}

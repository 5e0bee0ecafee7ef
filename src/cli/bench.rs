//! `swath bench ...`: benchmarks in a fresh `<database>_bench` database, printed as ratios.

use anyhow::Context;
use clap::Subcommand;

use super::table;
use crate::bench::{bench_ingest, generate_products};
use crate::config::Settings;
use crate::db;

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
}

/// Runs a benchmark and prints its figures.
pub async fn run(settings: &Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Ingest {
        products,
        page_size,
    } = cmd;
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

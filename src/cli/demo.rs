//! `swath demo`: the whole flow, as far as it exists, on the shipped sample catalogue.
//!
//! It works in a fresh `<database>_demo` database on the configured server, so that it never
//! touches production data and can be run again and again.

use std::time::Instant;

use anyhow::Context;
use chrono::{TimeDelta, TimeZone, Utc};

use super::ingest::summary_table;
use super::table;
use crate::catalogue;
use crate::config::Settings;
use crate::db;
use crate::pipeline::configure::configure_round;
use crate::pipeline::poller::{poll, PollWindow};

/// Runs the demo and prints its summary.
pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let (url, pool) = super::fresh_database(settings, "demo").await?;
    println!("swath demo: database {} (recreated)", url.redacted());

    let source = catalogue::open(&settings.catalogue, &settings.catalogue_options())?;
    println!("catalogue: {}", source.source());
    // Every sample, whenever it was published.
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
        let report = poll(&pool, job_type, source.as_ref(), window, &mut |_| {})
            .await
            .with_context(|| format!("ingesting for {name}"))?;
        reports.push(report);
    }
    for name in &settings.job_types {
        let job_type = registry
            .get(name)
            .with_context(|| format!("unknown job type {name}"))?;
        // Configure until nothing moves (the demo has no running dependencies to wait for).
        while configure_round(&pool, job_type.as_ref(), settings.configure_settings())
            .await?
            .ready
            > 0
        {}
    }
    println!();
    print!("{}", summary_table(&reports));
    println!(
        "(quarantined products are logged above with the reason; they never block the others)"
    );

    let counts = db::jobs::count_by_type_and_status(&pool).await?;
    let rows: Vec<Vec<String>> = counts
        .iter()
        .map(|(t, s, n)| vec![t.clone(), s.to_string(), n.to_string()])
        .collect();
    println!();
    print!("{}", table::render(&["JOB TYPE", "STATUS", "JOBS"], &rows));
    println!();
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    println!(
        "look at the jobs: SWATH_DATABASE_URL={} swath jobs list   (from the source tree: cargo run -- jobs list)",
        url.redacted()
    );
    Ok(())
}

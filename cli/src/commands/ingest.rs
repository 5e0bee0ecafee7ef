//! `swath ingest`: a one-off or backfill run of the poller for one job type.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

use super::table;
use swath_engine::catalogue;
use swath_engine::config::{parse_date, Settings};
use swath_engine::pipeline::poller::{poll, PollReport, PollWindow};

/// `swath ingest ...`
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The job type to create jobs for.
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: String,
    /// Catalogue to list (default: the `catalogue` setting): `odata+https://...`, `stac+https://...`
    /// or a directory.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Start of the publication window (RFC 3339 or YYYY-MM-DD). Without it: from the saved cursor.
    #[arg(long, value_parser = parse_date)]
    pub from: Option<DateTime<Utc>>,
    /// End of the publication window (exclusive; default now).
    #[arg(long, value_parser = parse_date, requires = "from")]
    pub to: Option<DateTime<Utc>>,
}

/// The per-job-type summary printed after ingestion.
pub fn summary_table(reports: &[PollReport]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let i = &r.ingest;
            [
                &i.job_type as &dyn ToString,
                &r.pages,
                &i.listed,
                &i.created,
                &i.cancelled,
                &i.superseded,
                &i.already_known,
                &i.skipped.len(),
                &i.quarantined.len(),
            ]
            .iter()
            .map(|v| v.to_string())
            .collect()
        })
        .collect();
    table::render(
        &[
            "JOB TYPE",
            "PAGES",
            "LISTED",
            "CREATED",
            "CANCELLED",
            "SUPERSEDED",
            "KNOWN",
            "NOT FOR TYPE",
            "QUARANTINED",
        ],
        &rows,
    )
}

/// Runs an ingestion.
pub async fn run(pool: &PgPool, settings: &Settings, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let registry = settings.registry()?;
    let job_type = registry.get(&args.job_type).with_context(|| {
        format!(
            "unknown job type {:?} (known: {})",
            args.job_type,
            registry.names().join(", ")
        )
    })?;
    let spec = args.source.as_deref().unwrap_or(&settings.catalogue);
    let source = catalogue::open(spec, &settings.catalogue_options())?;
    let window = match args.from {
        Some(from) => {
            let to = args.to.unwrap_or_else(Utc::now);
            anyhow::ensure!(from < to, "--from {from} is not before --to {to}");
            PollWindow::Explicit { from, to }
        }
        None => settings.continuous_window(),
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let mut on_page = |r: &PollReport| {
        let i = &r.ingest;
        let line = format!(
            "page {}: {} listed, {} created, {} cancelled, {} known, {} quarantined",
            r.pages,
            i.listed,
            i.created,
            i.cancelled,
            i.already_known,
            i.quarantined.len()
        );
        match &bar {
            Some(bar) => bar.set_message(line),
            None => tracing::info!(job_type = %i.job_type, source = %r.source, "{line}"),
        }
    };
    let result = poll(pool, job_type, source.as_ref(), window, &mut on_page).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            println!("{} from {} to {}", report.source, report.from, report.to);
            print!("{}", summary_table(std::slice::from_ref(&report)));
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            print!("{}", summary_table(std::slice::from_ref(&err.done)));
            eprintln!("error: {err}: {}", err.error);
            Ok(ExitCode::from(1))
        }
    }
}

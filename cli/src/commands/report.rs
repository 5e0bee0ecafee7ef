//! `swath report completeness`: is every product of a window there? On the database directly
//! (and the catalogue, with `--check-catalogue`), the same report as
//! `GET /api/v1/reports/completeness`.
//!
//! The exit code is 0 whenever the report was made, gaps or not (a report is not an error: read
//! its `state`s and gaps, or `--json`); 1 when a parameter is wrong (the message names it).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sqlx::PgPool;

use super::table;
use swath_engine::config::Settings;
use swath_engine::reports::{
    completeness, list_catalogue_inputs, CompletenessReport, CompletenessRequest,
};

/// `swath report ...`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per tile and sensing day: the inputs known, what became of them, and every gap with its
    /// reason.
    Completeness(CompletenessArgs),
}

/// `swath report completeness`.
#[derive(Debug, Args)]
pub struct CompletenessArgs {
    /// The job type.
    #[arg(long = "type", value_name = "TYPE")]
    job_type: String,
    /// First sensing day (2026-11-01; an RFC 3339 time stands for its UTC day).
    #[arg(long, value_name = "DATE")]
    from: String,
    /// Day after the last sensing day (exclusive); at most 93 days after --from.
    #[arg(long, value_name = "DATE")]
    to: String,
    /// Only these tiles (comma-separated, e.g. 32TLR,32TLS); every tile with inputs otherwise.
    #[arg(long, value_name = "TILES")]
    tiles: Option<String>,
    /// List the catalogue again and report the inputs swath never saw (`never_listed`).
    #[arg(long)]
    check_catalogue: bool,
    /// Print JSON (the API's answer) instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs a report command.
pub async fn run(
    pool: &PgPool,
    settings: &Settings,
    cmd: ReportCommand,
) -> anyhow::Result<ExitCode> {
    let ReportCommand::Completeness(args) = cmd;
    let registry = settings.registry()?;
    let request = match CompletenessRequest::parse(
        &registry,
        &args.job_type,
        &args.from,
        &args.to,
        args.tiles.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let listed = if args.check_catalogue {
        let template = registry
            .get(&request.job_type)
            .context("the job type vanished")?;
        let catalogue =
            swath_engine::catalogue::open(&settings.catalogue, &settings.catalogue_options())
                .with_context(|| format!("opening the catalogue {}", settings.catalogue))?;
        Some(
            list_catalogue_inputs(template.as_ref(), catalogue.as_ref(), &request)
                .await
                .context("listing the catalogue")?,
        )
    } else {
        None
    };
    let report = completeness(pool, &request, settings.timeliness_target_hours, listed)
        .await
        .context("making the report")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn snake(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The report as text: the cells, then the gaps.
pub fn render(report: &CompletenessReport) -> String {
    let mut out = format!(
        "{} from {} to {} (exclusive), timeliness target {} h\n\n",
        report.job_type, report.from, report.to, report.timeliness_target_hours
    );
    let rows: Vec<Vec<String>> = report
        .cells
        .iter()
        .map(|c| {
            vec![
                if c.tile.is_empty() {
                    "-".into()
                } else {
                    c.tile.clone()
                },
                c.day.to_string(),
                snake(&c.state),
                c.inputs.to_string(),
                c.jobs.to_string(),
                c.done_with_products.to_string(),
                c.done_without_product.to_string(),
                c.failed.to_string(),
                c.cancelled.to_string(),
                c.waiting.to_string(),
                c.published.to_string(),
                c.published_late.to_string(),
                c.withdrawn.to_string(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &[
            "TILE",
            "DAY",
            "STATE",
            "INPUTS",
            "JOBS",
            "DONE",
            "DONE_EMPTY",
            "FAILED",
            "CANCELLED",
            "WAITING",
            "PUBLISHED",
            "LATE",
            "WITHDRAWN",
        ],
        &rows,
    ));
    if let Some(check) = &report.catalogue_check {
        out.push_str(&format!(
            "\ncatalogue: {} input(s) listed, {} never seen by swath\n",
            check.listed, check.unseen
        ));
    }
    if report.gaps.is_empty() {
        out.push_str("\nno gaps\n");
    } else {
        out.push_str(&format!("\n{} gap(s):\n", report.gaps.len()));
        let rows: Vec<Vec<String>> = report
            .gaps
            .iter()
            .map(|g| {
                vec![
                    if g.tile.is_empty() {
                        "-".into()
                    } else {
                        g.tile.clone()
                    },
                    g.day.to_string(),
                    snake(&g.reason),
                    g.job_id.map_or("-".into(), |id| id.to_string()),
                    g.product.clone(),
                    g.detail.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["TILE", "DAY", "REASON", "JOB", "PRODUCT", "DETAIL"],
            &rows,
        ));
    }
    out
}

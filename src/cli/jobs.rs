//! `swath jobs list` and `swath jobs show`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sqlx::PgPool;
use swath_job_types::{Job, JobStatus};

use super::table;
use crate::db::history::{job_history, StatusChangeRecord};
use crate::db::jobs::{get_job, list_jobs, JobFilter};
use crate::db::DbError;

/// `swath jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this job type.
        #[arg(long = "type", value_name = "TYPE")]
        job_type: Option<String>,
        /// Only this status (name or id); repeat for several.
        #[arg(long, value_name = "STATUS")]
        status: Vec<JobStatus>,
        /// Only this tile (e.g. 32TLR).
        #[arg(long)]
        tile: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its full status history.
    Show {
        /// The job id.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a jobs command.
pub async fn run(pool: &PgPool, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::List {
            job_type,
            status,
            tile,
            limit,
            json,
        } => {
            let tile = tile.map(|t| t.trim_start_matches(['T', 't']).to_ascii_uppercase());
            let filter = JobFilter {
                job_type,
                statuses: status,
                tile_id: tile,
                limit,
                ..Default::default()
            };
            let jobs = list_jobs(pool, &filter).await.context("listing jobs")?;
            if json {
                for job in &jobs {
                    println!("{}", serde_json::to_string(job)?);
                }
            } else {
                print!("{}", render_list(&jobs));
            }
        }
        JobsCommand::Show { id, json } => {
            let job = match get_job(pool, id).await {
                Err(DbError::NotFound(id)) => {
                    eprintln!("error: job {id} not found");
                    return Ok(ExitCode::from(1));
                }
                other => other.context("reading the job")?,
            };
            let history = job_history(pool, id)
                .await
                .context("reading the job's history")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"job": job, "history": history})
                    )?
                );
            } else {
                print!("{}", render_show(&job, &history));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

/// The `jobs list` table.
pub fn render_list(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.job_type.clone(),
                j.status.to_string(),
                j.attempt.to_string(),
                opt(&j.tile_id),
                opt(&j.measured_at.map(time)),
                j.name.clone(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "ID", "TYPE", "STATUS", "ATTEMPT", "TILE", "MEASURED", "NAME",
        ],
        &rows,
    );
    out.push_str(&format!("{} job(s)\n", jobs.len()));
    out
}

/// The `jobs show` text: the job's fields, then its history.
pub fn render_show(job: &Job, history: &[StatusChangeRecord]) -> String {
    let fields: Vec<(&str, String)> = vec![
        ("uid", job.uid.to_string()),
        ("type", job.job_type.clone()),
        (
            "status",
            format!("{} since {}", job.status, time(job.status_changed_at)),
        ),
        (
            "attempt",
            format!("{} of {}", job.attempt, job.max_attempts),
        ),
        ("priority", job.priority.to_string()),
        ("product", opt(&job.product_id)),
        ("tile", opt(&job.tile_id)),
        ("input", opt(&job.input_path)),
        ("measured at", opt(&job.measured_at.map(time))),
        ("input published", opt(&job.input_published_at.map(time))),
        ("output", opt(&job.output_path)),
        ("output published", opt(&job.output_published_at.map(time))),
        ("parent", opt(&job.parent_id)),
        ("spawned by", opt(&job.spawned_by)),
        ("retry of", opt(&job.retry_of)),
        ("waits for", opt(&job.depends_on)),
        ("software", opt(&job.software_version)),
        ("executor ref", opt(&job.executor_ref)),
        ("created", time(job.created_at)),
        ("params", job.params.to_string()),
        (
            "results",
            opt(&job
                .results
                .as_ref()
                .and_then(|r| serde_json::to_string(r).ok())),
        ),
    ];
    let mut out = format!("job {} {}\n", job.id, job.name);
    for (key, value) in fields {
        out.push_str(&format!("  {key:<17}{value}\n"));
    }
    out.push_str(&format!("history ({} change(s))\n", history.len()));
    let rows: Vec<Vec<String>> = history
        .iter()
        .map(|h| {
            vec![
                time(h.time),
                opt(&h.previous_status),
                h.status.to_string(),
                h.attempt.to_string(),
                opt(&h.error_subtype),
                opt(&h.error_message),
            ]
        })
        .collect();
    let table = table::render(
        &["TIME", "FROM", "TO", "ATTEMPT", "SUBTYPE", "MESSAGE"],
        &rows,
    );
    for line in table.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

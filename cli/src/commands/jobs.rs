//! `swath jobs list`, `show`, `cancel` and `retry`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sqlx::PgPool;
use swath_domain::{Job, JobStatus};

use super::table;
use swath_engine::config::{ExecutorKind, Settings};
use swath_engine::db::history::{job_history, StatusChangeRecord};
use swath_engine::db::jobs::{get_job, list_jobs, JobFilter};
use swath_engine::db::retries::{retry_job, RetryError};
use swath_engine::db::DbError;
use swath_engine::executor::nomad::NomadExecutor;
use swath_engine::executor::Executor;
use swath_engine::pipeline::cancel::{cancel_job, AttemptStop, CancelError};

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
    /// Cancel a job (with the Nomad executor, its attempt in flight is stopped too).
    Cancel {
        /// The job id.
        id: i64,
        /// Why, recorded in the job's history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Retry jobs that ended in internal_error or cancelled: one new job each (`retry_of`), with
    /// the same inputs and software version, attached to the same parent. Prints per id the new
    /// job or the error; the exit code is 1 if any failed.
    Retry {
        /// The job ids, each once.
        #[arg(required = true, num_args = 1..)]
        ids: Vec<i64>,
    },
}

/// Runs a jobs command.
pub async fn run(pool: &PgPool, settings: &Settings, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::Cancel { id, reason } => return cancel(pool, settings, id, reason).await,
        JobsCommand::Retry { ids } => return retry(pool, settings, &ids).await,
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

/// The executor through which a command stops attempts: Nomad (which any process can reach), or
/// none for the local executor (a local attempt belongs to the `swath serve` that started it).
pub(super) fn operator_executor(settings: &Settings) -> anyhow::Result<Option<Box<dyn Executor>>> {
    Ok(match settings.executor {
        ExecutorKind::Nomad => {
            let config = settings.nomad_config().map_err(anyhow::Error::msg)?;
            Some(Box::new(NomadExecutor::new(
                config,
                settings.flavors.clone(),
            )))
        }
        ExecutorKind::Local => None,
    })
}

/// `swath jobs cancel`: the attempt in flight is stopped through Nomad (which any process can reach);
/// a local attempt belongs to the `swath serve` that started it, and its worker ends at its next
/// report, which is refused.
async fn cancel(
    pool: &PgPool,
    settings: &Settings,
    id: i64,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let executor = operator_executor(settings)?;
    let reason = match reason {
        Some(r) if r.contains('\0') => anyhow::bail!("the reason may not contain NUL characters"),
        Some(r) => format!("cancelled from the command line: {r}"),
        None => "cancelled from the command line".to_string(),
    };
    match cancel_job(pool, executor.as_deref(), id, &reason).await {
        Ok(cancelled) => {
            let attempt = match cancelled.attempt {
                AttemptStop::NotDispatched => "no attempt was running".to_string(),
                AttemptStop::Requested { reference } => {
                    format!("its attempt {reference} is being stopped")
                }
                AttemptStop::Failed { reference, error } => {
                    format!("its attempt {reference} could not be stopped ({error}); its worker ends at its next report")
                }
                AttemptStop::NoExecutor { reference } => {
                    format!("its attempt {reference} ends at its worker's next report")
                }
            };
            println!("job {id} cancelled; {attempt}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (CancelError::NotFound(_) | CancelError::NotCancellable { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(CancelError::Db(e)) => Err(anyhow::Error::new(e).context("cancelling the job")),
    }
}

/// `swath jobs retry`: each id on its own, like the API's batch retry.
async fn retry(pool: &PgPool, settings: &Settings, ids: &[i64]) -> anyhow::Result<ExitCode> {
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
        eprintln!("error: job {twice} is given more than once");
        return Ok(ExitCode::from(2));
    }
    let mut failed = 0;
    for &id in ids {
        match retry_job(pool, id, settings.retry_cap).await {
            Ok(retried) => {
                swath_engine::metrics::record_transitions(retried.transitions.iter().copied());
                let resumed = retried
                    .resumed_parent
                    .map(|p| format!("; its parent {p} waits for it again"))
                    .unwrap_or_default();
                println!(
                    "{id}: retried as job {} ({}, retry {} of job {}){resumed}",
                    retried.job.id, retried.job.name, retried.n, retried.original
                );
            }
            Err(RetryError::Db(e)) => {
                return Err(anyhow::Error::new(e).context(format!("retrying job {id}")))
            }
            Err(e) => {
                failed += 1;
                println!("{id}: error: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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

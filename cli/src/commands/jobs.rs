//! `swath jobs list`, `show`, `cancel` and `retry`.
//!
//! `cancel` and `retry` take job ids, or filters (`--status`, `--type`, `--since`, `--tile`,
//! `--campaign`, optionally `--dry-run`) that select the jobs as the API's `POST /jobs/cancel` and
//! `POST /jobs/retry` do, with the same cap (setting `bulk_max_jobs`) and the same refusal.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sqlx::PgPool;
use swath_domain::{Job, JobStatus};

use super::table;
use swath_engine::api::bulk::{dry_run_ids, too_many_message};
use swath_engine::config::parse_date;
use swath_engine::config::{ExecutorKind, Settings};
use swath_engine::db::history::{job_history, StatusChangeRecord};
use swath_engine::db::jobs::{count_jobs, get_job, job_ids, list_jobs, JobFilter};
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
    /// Cancel a job, or every job matching filters (with the Nomad executor, its attempt in flight
    /// is stopped too). By filter, prints per job the outcome; the exit code is 1 if any failed.
    Cancel {
        /// The job id (or give filters instead).
        #[arg(
            conflicts_with_all = FILTER_ARGS,
            required_unless_present_any = SELECTING_ARGS
        )]
        id: Option<i64>,
        /// Why, recorded in the job's history.
        #[arg(long)]
        reason: Option<String>,
        /// The jobs to cancel, instead of an id.
        #[command(flatten)]
        filter: BulkFilter,
    },
    /// Retry jobs that ended in internal_error or cancelled: one new job each (`retry_of`), with
    /// the same inputs and software version, attached to the same parent. Prints per id the new
    /// job or the error; the exit code is 1 if any failed.
    ///
    /// By filter (`--status internal_error --type fsc_rlie --since 2d`), every matching job is
    /// retried, newest first; `--dry-run` only counts them.
    Retry {
        /// The job ids, each once (or give filters instead).
        #[arg(
            num_args = 1..,
            conflicts_with_all = FILTER_ARGS,
            required_unless_present_any = SELECTING_ARGS
        )]
        ids: Vec<i64>,
        /// The jobs to retry, instead of ids.
        #[command(flatten)]
        filter: BulkFilter,
    },
}

/// The arguments of [`BulkFilter`], which exclude ids.
const FILTER_ARGS: [&str; 6] = ["status", "job_type", "since", "tile", "campaign", "dry_run"];
/// The arguments of [`BulkFilter`] that select jobs (`--dry-run` alone selects none).
const SELECTING_ARGS: [&str; 5] = ["status", "job_type", "since", "tile", "campaign"];

/// The jobs a bulk `retry` or `cancel` acts on: those matching every filter given.
#[derive(Debug, Clone, Default, Args)]
pub struct BulkFilter {
    /// Only this status (name or id); repeat for several.
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<JobStatus>,
    /// Only this job type.
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: Option<String>,
    /// Only jobs whose status changed since: a duration back from now (`2d`, `12h`, `30m`, `45s`,
    /// `1w`) or a date (RFC 3339, or YYYY-MM-DD).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Only this tile (e.g. 32TLR).
    #[arg(long)]
    pub tile: Option<String>,
    /// Only the jobs of this reprocessing campaign (its id).
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub campaign: Option<i64>,
    /// Only count the matching jobs and print the first ids; nothing changes.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--since`: a duration back from now (`2d`), or a date.
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    since_at(text, Utc::now())
}

/// `--since` read at `now`: `<n><unit>` with unit `s`, `m`, `h`, `d` or `w` is that long before
/// `now`; anything else must be a date ([`parse_date`]).
fn since_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        "w" => Some(7 * 86_400),
        _ => None,
    };
    if let (false, Some(per_unit)) = (number.is_empty(), seconds_per_unit) {
        let back = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("{text:?} is too long ago"))?;
        return Ok(back);
    }
    parse_date(text).map_err(|e| {
        format!("{e}; or give a duration back from now such as 2d, 12h, 30m, 45s or 1w")
    })
}

impl BulkFilter {
    /// The database filter, with the job type checked against the registry.
    fn to_filter(&self, settings: &Settings) -> anyhow::Result<JobFilter> {
        if let Some(job_type) = &self.job_type {
            let registry = settings.registry()?;
            if registry.get(job_type).is_none() {
                anyhow::bail!(
                    "unknown job type {job_type:?} (known: {})",
                    registry.names().join(", ")
                );
            }
        }
        let mut statuses = Vec::new();
        for status in &self.status {
            if !statuses.contains(status) {
                statuses.push(*status);
            }
        }
        Ok(JobFilter {
            job_type: self.job_type.clone(),
            statuses,
            tile_id: self.tile.as_deref().map(normalize_tile),
            changed_after: self.since,
            campaign_id: self.campaign,
            ..JobFilter::default()
        })
    }
}

/// A tile as the jobs hold it: without its leading `T`, in capitals.
fn normalize_tile(tile: &str) -> String {
    tile.trim_start_matches(['T', 't']).to_ascii_uppercase()
}

/// Runs a jobs command.
pub async fn run(pool: &PgPool, settings: &Settings, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::Cancel {
            id: Some(id),
            reason,
            ..
        } => return cancel(pool, settings, id, reason).await,
        JobsCommand::Cancel {
            id: None,
            reason,
            filter,
        } => {
            let Some(ids) = bulk_ids(pool, settings, &filter).await? else {
                return Ok(ExitCode::SUCCESS);
            };
            return cancel_many(pool, settings, &ids, reason).await;
        }
        JobsCommand::Retry { ids, filter } if ids.is_empty() => {
            let Some(ids) = bulk_ids(pool, settings, &filter).await? else {
                return Ok(ExitCode::SUCCESS);
            };
            return retry(pool, settings, &ids).await;
        }
        JobsCommand::Retry { ids, .. } => return retry(pool, settings, &ids).await,
        JobsCommand::List {
            job_type,
            status,
            tile,
            limit,
            json,
        } => {
            let tile = tile.as_deref().map(normalize_tile);
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

/// The jobs a bulk command acts on, newest first; `None` when there is nothing more to do (a dry
/// run, printed; or more jobs match than the cap, refused). Matching jobs are counted up to the cap
/// and one more, as the API does.
async fn bulk_ids(
    pool: &PgPool,
    settings: &Settings,
    bulk: &BulkFilter,
) -> anyhow::Result<Option<Vec<i64>>> {
    let mut filter = bulk.to_filter(settings)?;
    let cap = i64::from(settings.bulk_max_jobs);
    let count = count_jobs(pool, &filter, cap + 1)
        .await
        .context("counting the matching jobs")?;
    if bulk.dry_run {
        filter.limit = dry_run_ids(settings.bulk_max_jobs);
        let ids = job_ids(pool, &filter)
            .await
            .context("listing the matching jobs")?;
        if count > cap {
            println!(
                "more than {cap} job(s) match (at most {cap} per call: setting bulk_max_jobs)"
            );
        } else {
            println!("{count} job(s) match");
        }
        if !ids.is_empty() {
            let shown: Vec<String> = ids.iter().map(i64::to_string).collect();
            println!("first ids (newest first): {}", shown.join(" "));
        }
        return Ok(None);
    }
    if count > cap {
        anyhow::bail!("{}", too_many_message(settings.bulk_max_jobs));
    }
    filter.limit = cap;
    let ids = job_ids(pool, &filter)
        .await
        .context("listing the matching jobs")?;
    if ids.is_empty() {
        println!("no job matches");
    }
    Ok(Some(ids))
}

/// The executor that stops a cancelled job's attempt: Nomad's (which any process can reach); a
/// local attempt belongs to the `swath serve` that started it.
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

/// The reason recorded in a cancelled job's history.
fn cancel_reason(reason: Option<String>) -> anyhow::Result<String> {
    Ok(match reason {
        Some(r) if r.contains('\0') => anyhow::bail!("the reason may not contain NUL characters"),
        Some(r) => format!("cancelled from the command line: {r}"),
        None => "cancelled from the command line".to_string(),
    })
}

/// What happened to a cancelled job's attempt, in words.
fn describe_stop(attempt: AttemptStop) -> String {
    match attempt {
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
    }
}

/// `swath jobs cancel ID`: the attempt in flight is stopped through Nomad (which any process can
/// reach); a local attempt belongs to the `swath serve` that started it, and its worker ends at its
/// next report, which is refused.
async fn cancel(
    pool: &PgPool,
    settings: &Settings,
    id: i64,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let executor = operator_executor(settings)?;
    let reason = cancel_reason(reason)?;
    match cancel_job(pool, executor.as_deref(), id, &reason).await {
        Ok(cancelled) => {
            println!("job {id} cancelled; {}", describe_stop(cancelled.attempt));
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (CancelError::NotFound(_) | CancelError::NotCancellable { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(CancelError::Db(e)) => Err(anyhow::Error::new(e).context("cancelling the job")),
    }
}

/// `swath jobs cancel` by filter: each job on its own, one line each, like `retry`.
async fn cancel_many(
    pool: &PgPool,
    settings: &Settings,
    ids: &[i64],
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let executor = operator_executor(settings)?;
    let reason = cancel_reason(reason)?;
    let mut failed = 0;
    for &id in ids {
        match cancel_job(pool, executor.as_deref(), id, &reason).await {
            Ok(cancelled) => println!("{id}: cancelled; {}", describe_stop(cancelled.attempt)),
            Err(CancelError::Db(e)) => {
                return Err(anyhow::Error::new(e).context(format!("cancelling job {id}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        jobs: JobsCommand,
    }

    fn parse(args: &[&str]) -> Result<JobsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("jobs").chain(args.iter().copied())).map(|c| c.jobs)
    }

    #[test]
    fn since_takes_a_duration_back_from_now_or_a_date() {
        let now: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let at = |s: &str| since_at(s, now).map(|t| t.to_rfc3339());
        assert_eq!(at("2d").unwrap(), "2026-12-05T12:00:00+00:00");
        assert_eq!(at("12h").unwrap(), "2026-12-07T00:00:00+00:00");
        assert_eq!(at("30m").unwrap(), "2026-12-07T11:30:00+00:00");
        assert_eq!(at("45s").unwrap(), "2026-12-07T11:59:15+00:00");
        assert_eq!(at("1w").unwrap(), "2026-11-30T12:00:00+00:00");
        assert_eq!(at("0h").unwrap(), "2026-12-07T12:00:00+00:00");
        assert_eq!(at("2026-12-01").unwrap(), "2026-12-01T00:00:00+00:00");
        assert_eq!(
            at("2026-12-01T10:00:00+02:00").unwrap(),
            "2026-12-01T08:00:00+00:00"
        );
        for wrong in ["", "d", "2x", "-2d", "2 days", "yesterday", "1.5h"] {
            let err = at(wrong).unwrap_err();
            assert!(err.contains("such as 2d"), "{wrong:?}: {err}");
        }
        assert!(at("99999999999999999w")
            .unwrap_err()
            .contains("too long ago"));
    }

    #[test]
    fn retry_and_cancel_take_ids_or_filters_not_both() {
        match parse(&["retry", "1", "2", "3"]).unwrap() {
            JobsCommand::Retry { ids, filter } => {
                assert_eq!(ids, [1, 2, 3]);
                assert!(filter.status.is_empty() && !filter.dry_run);
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "retry",
            "--status",
            "internal_error",
            "--type",
            "fsc_rlie",
            "--since",
            "2d",
            "--tile",
            "T32TLR",
            "--campaign",
            "4",
            "--dry-run",
        ])
        .unwrap()
        {
            JobsCommand::Retry { ids, filter } => {
                assert!(ids.is_empty());
                assert_eq!(filter.status, [JobStatus::InternalError]);
                assert_eq!(filter.job_type.as_deref(), Some("fsc_rlie"));
                assert!(filter.since.is_some());
                assert_eq!(filter.campaign, Some(4));
                assert!(filter.dry_run);
                let settings = Settings::default();
                let db = filter.to_filter(&settings).unwrap();
                assert_eq!(db.tile_id.as_deref(), Some("32TLR"));
                assert_eq!(db.changed_after, filter.since);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["cancel", "5"]).unwrap() {
            JobsCommand::Cancel { id, .. } => assert_eq!(id, Some(5)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["cancel", "--campaign", "2", "--reason", "wrong window"]).unwrap(),
            JobsCommand::Cancel { id: None, .. }
        ));
        for refused in [
            &["retry"][..],
            &["retry", "--dry-run"],
            &["retry", "1", "--status", "internal_error"],
            &["retry", "1", "--dry-run"],
            &["cancel"],
            &["cancel", "5", "--type", "fsc_rlie"],
            &["cancel", "--campaign", "0"],
            &["retry", "--since", "soon"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?} was accepted");
        }
        let unknown = BulkFilter {
            job_type: Some("snow".into()),
            ..BulkFilter::default()
        };
        let err = unknown.to_filter(&Settings::default()).unwrap_err();
        assert!(
            err.to_string().contains("unknown job type \"snow\""),
            "{err}"
        );
    }
}

//! `swath campaigns create|list|show|pause|resume|cancel`, on the database directly. A request is
//! checked by the same rules as the API's (`CampaignRequest::check`); the window is listed by a
//! running `swath serve`, not by this command.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sqlx::PgPool;

use super::table;
use swath_engine::campaigns::{
    format_duration, load_report, load_reports, progress_line, CampaignReport, CampaignRequest,
    Requester,
};
use swath_engine::config::Settings;
use swath_engine::db::campaigns::{
    create_campaign, get_campaign, list_campaigns, pause_campaign, resume_campaign, CampaignError,
};
use swath_engine::pipeline::campaign::cancel_campaign_and_jobs;

/// `swath campaigns ...`
#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a reprocessing campaign: a running `swath serve` lists its window into jobs.
    Create(CreateArgs),
    /// List campaigns, newest first, with their progress.
    List {
        /// At most this many campaigns.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one campaign with its progress and skip reasons.
    Show {
        /// The campaign id.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pause a campaign: none of its jobs is dispatched any more (jobs already claimed are).
    Pause {
        /// The campaign id.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused campaign.
    Resume {
        /// The campaign id.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a campaign and its jobs not yet started (running ones finish).
    Cancel {
        /// The campaign id.
        id: i64,
        /// Why, recorded on the campaign and in its jobs' history.
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `swath campaigns create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The job type (one that lists catalogues, e.g. fsc_rlie).
    #[arg(long = "type", value_name = "TYPE")]
    job_type: String,
    /// Start of the publication window: a date (2021-04-01, midnight UTC) or an RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    from: String,
    /// End of the window (exclusive), written like --from.
    #[arg(long, value_name = "DATE")]
    to: String,
    /// Only these tiles (comma-separated, e.g. 32TLR,32TLS); every tile of the job type's area
    /// otherwise.
    #[arg(long, value_delimiter = ',', value_name = "TILES")]
    tiles: Option<Vec<String>>,
    /// Process again the products that already have a job.
    #[arg(long)]
    reprocess: bool,
    /// The processor image the jobs run (the job type's otherwise).
    #[arg(long)]
    image: Option<String>,
    /// Most jobs dispatched at once (1 to 10000; default 10).
    #[arg(long, value_name = "N")]
    max_in_flight: Option<i32>,
    /// A unique name (default: <type>-<from date>-<to date>).
    #[arg(long)]
    name: Option<String>,
    /// The catalogue to list (default: the `catalogue` setting).
    #[arg(long, value_name = "URL")]
    source: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Prints a refusal and answers exit code 1.
fn refused(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

/// A campaign error the operator can act on is printed; a database failure is an error.
fn answer<T>(result: Result<T, CampaignError>, what: &str) -> anyhow::Result<Result<T, ExitCode>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(CampaignError::Db(e)) => Err(anyhow::Error::new(e).context(what.to_string())),
        Err(e) => Ok(Err(refused(e))),
    }
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a campaigns command.
pub async fn run(
    pool: &PgPool,
    settings: &Settings,
    cmd: CampaignsCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        CampaignsCommand::Create(args) => {
            let request = CampaignRequest {
                name: args.name,
                job_type: args.job_type,
                from: args.from,
                to: args.to,
                tiles: args.tiles,
                reprocess: args.reprocess,
                image: args.image,
                max_in_flight: args.max_in_flight,
                source: args.source,
            };
            let registry = settings.registry()?;
            let new = match request.check(&registry, &settings.catalogue, Requester::CommandLine) {
                Ok(new) => new,
                Err(e) => return Ok(refused(e)),
            };
            let campaign = match answer(create_campaign(pool, &new).await, "creating the campaign")?
            {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let report = load_report(pool, campaign).await?;
            if args.json {
                print_json(&report)?;
            } else {
                println!(
                    "campaign {} {} created: a running `swath serve` lists its window ({} to {}) from {}",
                    report.campaign.id,
                    report.campaign.name,
                    report.campaign.from.to_rfc3339(),
                    report.campaign.to.to_rfc3339(),
                    report.campaign.source
                );
            }
        }
        CampaignsCommand::List { limit, json } => {
            let campaigns = list_campaigns(pool, limit)
                .await
                .context("listing campaigns")?;
            let reports = load_reports(pool, campaigns)
                .await
                .context("counting the campaigns' jobs")?;
            if json {
                for report in &reports {
                    println!("{}", serde_json::to_string(report)?);
                }
            } else {
                print!("{}", render_list(&reports));
            }
        }
        CampaignsCommand::Show { id, json } => {
            let campaign = match answer(get_campaign(pool, id).await, "reading the campaign")? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let report = load_report(pool, campaign).await?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", render_show(&report, std::io::stdout().is_terminal()));
            }
        }
        CampaignsCommand::Pause { id, json } => {
            let paused = match answer(pause_campaign(pool, id).await, "pausing the campaign")? {
                Ok(p) => p,
                Err(code) => return Ok(code),
            };
            let report = load_report(pool, paused.campaign).await?;
            if json {
                print_json(&serde_json::json!({"campaign": report, "claimed": paused.claimed}))?;
            } else {
                println!(
                    "campaign {id} paused; {} job(s) claimed before the pause are still dispatched",
                    paused.claimed
                );
            }
        }
        CampaignsCommand::Resume { id, json } => {
            let campaign = match answer(resume_campaign(pool, id).await, "resuming the campaign")? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let report = load_report(pool, campaign).await?;
            if json {
                print_json(&report)?;
            } else {
                println!("campaign {id} resumed: {}", report.campaign.state);
            }
        }
        CampaignsCommand::Cancel { id, reason, json } => {
            let reason = match reason {
                Some(r) if r.contains('\0') => {
                    return Ok(refused("the reason may not contain NUL characters"))
                }
                Some(r) => format!("cancelled from the command line: {r}"),
                None => "cancelled from the command line".to_string(),
            };
            let executor = super::jobs::operator_executor(settings)?;
            let (campaign, cancelled) = match answer(
                cancel_campaign_and_jobs(pool, executor.as_deref(), id, &reason).await,
                "cancelling the campaign",
            )? {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let report = load_report(pool, campaign).await?;
            if json {
                print_json(&serde_json::json!({"campaign": report, "cancelled_jobs": cancelled}))?;
            } else {
                println!("campaign {id} cancelled; {cancelled} job(s) not yet started cancelled");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn eta(report: &CampaignReport) -> String {
    report
        .progress
        .eta_seconds
        .map_or_else(|| "-".to_string(), format_duration)
}

/// The `campaigns list` table.
pub fn render_list(reports: &[CampaignReport]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let p = &r.progress;
            vec![
                r.campaign.id.to_string(),
                r.campaign.job_type.clone(),
                r.campaign.state.to_string(),
                format!("{}/{}", p.stages.ended(), p.stages.jobs),
                p.stages.done.to_string(),
                p.stages.failed.to_string(),
                p.stages.in_flight.to_string(),
                p.stages.waiting.to_string(),
                p.skipped_total.to_string(),
                eta(r),
                r.campaign.name.clone(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "ID",
            "TYPE",
            "STATE",
            "ENDED",
            "DONE",
            "FAILED",
            "IN FLIGHT",
            "WAITING",
            "SKIPPED",
            "ETA",
            "NAME",
        ],
        &rows,
    );
    out.push_str(&format!("{} campaign(s)\n", reports.len()));
    out
}

/// The `campaigns show` text: the fields, the progress and skip reasons, and on a terminal a
/// progress bar.
pub fn render_show(report: &CampaignReport, terminal: bool) -> String {
    let c = &report.campaign;
    let p = &report.progress;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let fields: Vec<(&str, String)> = vec![
        ("type", c.job_type.clone()),
        (
            "state",
            format!("{} since {}", c.state, time(c.state_changed_at)),
        ),
        ("state message", opt(c.state_message.clone())),
        ("source", c.source.clone()),
        ("window", format!("{} to {}", time(c.from), time(c.to))),
        ("tiles", opt(c.tiles.as_ref().map(|t| t.join(",")))),
        ("reprocess", c.reprocess.to_string()),
        ("image", opt(c.image.clone())),
        ("max in flight", c.max_in_flight.to_string()),
        ("created", time(c.created_at)),
        ("listing finished", opt(c.listing_finished_at.map(time))),
        ("listing error", opt(c.listing_error.clone())),
        ("finished", opt(c.finished_at.map(time))),
        ("pages listed", c.pages.to_string()),
        ("products listed", p.products_listed.to_string()),
        ("jobs created", p.jobs_created.to_string()),
        ("jobs", p.stages.jobs.to_string()),
        ("waiting", p.stages.waiting.to_string()),
        ("in flight", p.stages.in_flight.to_string()),
        ("publishing", p.stages.publishing.to_string()),
        ("done", p.stages.done.to_string()),
        ("failed", p.stages.failed.to_string()),
        ("cancelled", p.stages.cancelled.to_string()),
        ("ended last hour", p.stages.ended_last_hour.to_string()),
        ("per hour", format!("{:.1}", p.per_hour)),
        ("eta", eta(report)),
        ("skipped", p.skipped_total.to_string()),
    ];
    let mut out = format!("campaign {} {}\n", c.id, c.name);
    for (key, value) in fields {
        out.push_str(&format!("  {key:<18}{value}\n"));
    }
    for (reason, count) in &p.skipped {
        out.push_str(&format!("    {count:>8}  {reason}\n"));
    }
    if terminal {
        out.push_str(&format!("{}\n", progress_line(report, 20)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_engine::campaigns::report;
    use swath_engine::db::campaigns::{Campaign, CampaignProgress, CampaignState};

    #[test]
    fn show_draws_a_bar_only_on_a_terminal() {
        let now: chrono::DateTime<chrono::Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let campaign = Campaign {
            id: 7,
            name: "spring".into(),
            job_type: "fsc_rlie".into(),
            source: "file:///catalogue".into(),
            from: "2021-04-01T00:00:00Z".parse().unwrap(),
            to: "2021-05-01T00:00:00Z".parse().unwrap(),
            tiles: Some(vec!["32TLR".into()]),
            reprocess: false,
            image: None,
            max_in_flight: 10,
            state: CampaignState::Running,
            state_changed_at: now,
            state_message: None,
            listing_cursor: None,
            pages: 3,
            products_listed: 1200,
            jobs_created: 1000,
            skipped: [("already has a job".to_string(), 200)].into(),
            listing_finished_at: Some(now),
            listing_error: None,
            created_at: now - chrono::TimeDelta::hours(10),
            finished_at: None,
        };
        let progress = CampaignProgress {
            jobs: 1000,
            waiting: 500,
            in_flight: 50,
            done: 440,
            failed: 10,
            ended_last_hour: 45,
            ..Default::default()
        };
        let r = report(campaign, &progress, now);
        let plain = render_show(&r, false);
        assert!(plain.starts_with("campaign 7 spring\n"), "{plain}");
        assert!(plain.contains("  skipped           200\n"), "{plain}");
        assert!(
            plain.contains("         200  already has a job\n"),
            "{plain}"
        );
        assert!(!plain.contains('['), "{plain}");
        let terminal = render_show(&r, true);
        assert!(
            terminal
                .ends_with("[#########-----------] 45% 450/1000 jobs, 45.0 jobs/h, ETA 12h13m\n"),
            "{terminal}"
        );
    }
}

//! `swath db refresh`: recompute the summaries of `jobs` that the dashboard and `/metrics` read.

use anyhow::Context;
use clap::Subcommand;
use sqlx::PgPool;

use swath_engine::db::summaries::{self, RefreshReport};

/// `swath db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Recompute the job summaries (jobs by type and status, manual retries, newest input
    /// publication, timeliness histograms) from the jobs table, fold their stripes, and print what
    /// was wrong. Writers to `jobs` wait while it runs. Needed after loading jobs with triggers off;
    /// otherwise it only checks: it prints "summaries unchanged".
    Refresh {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a db command.
pub async fn run(pool: &PgPool, cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Refresh { json } => {
            let report = summaries::refresh(pool)
                .await
                .context("recomputing the job summaries")?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).context("formatting the report")?
                );
            } else {
                print!("{}", describe(&report));
            }
        }
    }
    Ok(())
}

/// The report as text: one line per corrected value, then the row counts.
fn describe(report: &RefreshReport) -> String {
    let mut text = String::new();
    if report.unchanged() {
        text.push_str("summaries unchanged\n");
    } else {
        text.push_str(&format!(
            "{} summary value(s) corrected:\n",
            report.changes.len()
        ));
        for change in &report.changes {
            text.push_str(&format!("  {change}\n"));
        }
    }
    text.push_str(&format!(
        "summary rows: {} before, {} after (stripes folded)\n",
        report.rows_before, report.rows_after
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_engine::db::summaries::SummaryChange;

    #[test]
    fn the_report_lists_each_corrected_value() {
        let report = RefreshReport {
            changes: vec![SummaryChange {
                summary: "job_counts".into(),
                key: "fsc_rlie ready".into(),
                before: "3".into(),
                after: "5".into(),
            }],
            rows_before: 7,
            rows_after: 4,
        };
        assert_eq!(
            describe(&report),
            "1 summary value(s) corrected:\n  job_counts fsc_rlie ready: 3 -> 5\n\
             summary rows: 7 before, 4 after (stripes folded)\n"
        );
        let unchanged = RefreshReport::default();
        assert!(describe(&unchanged).starts_with("summaries unchanged\n"));
    }
}

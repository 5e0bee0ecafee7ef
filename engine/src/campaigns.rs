//! What operators see of reprocessing campaigns, shared by the API, the command line and the
//! dashboard: a campaign request checked into a [`NewCampaign`] (one set of rules and messages for
//! every front end), and a campaign's report (its progress with throughput and ETA, computed here
//! only).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use swath_domain::registry::JobTypeRegistry;

use crate::db::campaigns::{
    campaign_progress, campaigns_progress, Campaign, CampaignProgress, CampaignState, NewCampaign,
};
use crate::db::DbError;

/// Longest campaign name, in bytes (the table's limit).
pub const MAX_NAME: usize = 128;
/// Bounds of `max_in_flight`.
pub const MAX_IN_FLIGHT: std::ops::RangeInclusive<i32> = 1..=10_000;
/// `max_in_flight` when not given.
pub const DEFAULT_MAX_IN_FLIGHT: i32 = 10;
/// Most tiles a campaign may name.
pub const MAX_TILES: usize = 1000;

/// A campaign as an operator asks for it (the API's body, the command line's options).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    /// A unique name; `<type>-<from date>-<to date>` when not given.
    #[serde(default)]
    pub name: Option<String>,
    /// The job type (one that ingests).
    #[serde(rename = "type")]
    pub job_type: String,
    /// Start of the publication window: a date (`2021-04-01`, midnight UTC) or an RFC 3339 time.
    pub from: String,
    /// End of the window (exclusive), written like `from`.
    pub to: String,
    /// The tiles kept (`T32TLR` or `32TLR`); every tile of the job type's area when not given.
    #[serde(default)]
    pub tiles: Option<Vec<String>>,
    /// Whether products that already have a job are processed again.
    #[serde(default)]
    pub reprocess: bool,
    /// The processor image the jobs run (the job type's when not given).
    #[serde(default)]
    pub image: Option<String>,
    /// Most jobs dispatched at once (1 to 10000, default 10).
    #[serde(default)]
    pub max_in_flight: Option<i32>,
    /// The catalogue to list (the `catalogue` setting when not given).
    #[serde(default)]
    pub source: Option<String>,
}

/// A date (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 time given as `field`.
pub fn parse_instant(field: &str, value: &str) -> Result<DateTime<Utc>, String> {
    let at = if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    } else {
        DateTime::parse_from_rfc3339(value)
            .map_err(|_| {
                format!("{field}: {value:?} is neither a date such as 2021-04-01 nor an RFC 3339 time such as 2021-04-01T00:00:00Z")
            })?
            .with_timezone(&Utc)
    };
    if !(1..=9999).contains(&at.year()) {
        return Err(format!("{field}: the year must be between 1 and 9999"));
    }
    Ok(at)
}

/// Refuses NUL characters and text longer than `max` bytes.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{field}: NUL characters are not allowed"));
    }
    if value.len() > max {
        return Err(format!("{field}: at most {max} bytes are allowed"));
    }
    Ok(())
}

/// A tile id such as `32TLR` (a leading `T` is dropped, letters are made upper case).
pub fn normalize_tile(field: &str, tile: &str) -> Result<String, String> {
    let normalized = tile.trim_start_matches(['T', 't']).to_ascii_uppercase();
    if normalized.is_empty()
        || normalized.len() > 16
        || !normalized.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        check_text(field, tile, 64)?;
        return Err(format!("{field}: {tile:?} is not a tile id such as 32TLR"));
    }
    Ok(normalized)
}

/// Who asks for a campaign, which decides what it may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The command line, with the database's credentials: any image, any catalogue.
    CommandLine,
    /// An API caller with the write token, which allows operating campaigns, not choosing what
    /// runs or what the orchestrator fetches: another version of the job type's own image only (any
    /// other image would run with the workers' storage credentials), and the configured catalogue
    /// only (any other URL would be fetched from inside the network).
    WriteToken,
}

/// An image reference without its tag or digest: `registry:5000/team/fsc:1.2@sha256:...` ->
/// `registry:5000/team/fsc`.
pub fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].find(':') {
        Some(colon) => &image[..name_start + colon],
        None => image,
    }
}

impl CampaignRequest {
    /// Checks the request of `requester` against the job types of `registry`, naming the field and
    /// what is wrong; `catalogue` is the configured catalogue, listed when the request names none.
    pub fn check(
        &self,
        registry: &JobTypeRegistry,
        catalogue: &str,
        requester: Requester,
    ) -> Result<NewCampaign, String> {
        check_text("type", &self.job_type, 128)?;
        let job_type = registry.get(&self.job_type).ok_or_else(|| {
            format!(
                "type: unknown job type {:?} (known: {})",
                self.job_type,
                registry.names().join(", ")
            )
        })?;
        if !job_type.ingests() {
            let ingesting: Vec<String> = registry
                .iter()
                .filter(|t| t.ingests())
                .map(|t| t.spec().name.clone())
                .collect();
            return Err(format!(
                "type: job type {:?} does not list catalogues (its jobs are created by other jobs); campaigns are for {}",
                self.job_type,
                ingesting.join(", ")
            ));
        }
        let from = parse_instant("from", &self.from)?;
        let to = parse_instant("to", &self.to)?;
        if from >= to {
            return Err(format!(
                "to: the window's end ({}) must be after its start ({})",
                to.to_rfc3339(),
                from.to_rfc3339()
            ));
        }
        let tiles = match &self.tiles {
            None => None,
            Some(tiles) if tiles.is_empty() => {
                return Err("tiles: give at least one tile, or leave tiles out for every tile of the job type's area".into())
            }
            Some(tiles) if tiles.len() > MAX_TILES => {
                return Err(format!("tiles: at most {MAX_TILES} tiles are allowed"))
            }
            Some(tiles) => {
                let mut kept: Vec<String> = Vec::with_capacity(tiles.len());
                for tile in tiles {
                    let tile = normalize_tile("tiles", tile)?;
                    if !kept.contains(&tile) {
                        kept.push(tile);
                    }
                }
                Some(kept)
            }
        };
        let max_in_flight = self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !MAX_IN_FLIGHT.contains(&max_in_flight) {
            return Err(format!(
                "max_in_flight: must be between {} and {}, not {max_in_flight}",
                MAX_IN_FLIGHT.start(),
                MAX_IN_FLIGHT.end()
            ));
        }
        let name = match &self.name {
            Some(name) => {
                check_text("name", name, MAX_NAME)?;
                if name.trim().is_empty() {
                    return Err("name: an empty name is not allowed".into());
                }
                if name.chars().any(char::is_control) {
                    return Err("name: control characters are not allowed".into());
                }
                name.clone()
            }
            None => format!(
                "{}-{}-{}",
                self.job_type,
                from.format("%Y-%m-%d"),
                to.format("%Y-%m-%d")
            ),
        };
        let image = match &self.image {
            Some(image) => {
                check_text("image", image, 512)?;
                if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!(
                        "image: {image:?} is not an image reference (empty, or with white space or control characters)"
                    ));
                }
                let own = image_repository(&job_type.spec().image);
                if requester == Requester::WriteToken && image_repository(image) != own {
                    return Err(format!(
                        "image: {image:?} is not a version of the job type's image ({own}): through the API a campaign may pin another tag or digest of it, not another image (use `swath campaigns create --image` for that)"
                    ));
                }
                Some(image.clone())
            }
            None => None,
        };
        let source = match &self.source {
            Some(source) => {
                check_text("source", source, 4096)?;
                if source.trim().is_empty() || source.chars().any(char::is_control) {
                    return Err(format!(
                        "source: {source:?} is not a catalogue (empty, or with control characters)"
                    ));
                }
                if requester == Requester::WriteToken && source != catalogue {
                    return Err(
                        "source: through the API a campaign lists the configured catalogue only (leave source out); use `swath campaigns create --source` for another one".into(),
                    );
                }
                source.clone()
            }
            None => catalogue.to_string(),
        };
        Ok(NewCampaign {
            name,
            job_type: self.job_type.clone(),
            source,
            from,
            to,
            tiles,
            reprocess: self.reprocess,
            image,
            max_in_flight,
        })
    }
}

/// A campaign's progress as operators see it: the listing's counts, its jobs by stage, throughput
/// and ETA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressReport {
    /// Products listed.
    pub products_listed: i64,
    /// Jobs created.
    pub jobs_created: i64,
    /// Products skipped.
    pub skipped_total: i64,
    /// Products skipped, by reason.
    pub skipped: BTreeMap<String, i64>,
    /// The jobs by stage.
    #[serde(flatten)]
    pub stages: CampaignProgress,
    /// Jobs that ended (done or failed) per hour since the campaign was created (until it finished).
    pub per_hour: f64,
    /// Seconds until every job ended, at the recent throughput (the last hour's, else the average);
    /// `None` while listing, paused or unknown (nothing ended yet).
    pub eta_seconds: Option<i64>,
}

/// A campaign with its progress: what the API answers, the command line prints and the dashboard
/// draws.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    /// The campaign.
    #[serde(flatten)]
    pub campaign: Campaign,
    /// Its progress.
    pub progress: ProgressReport,
}

/// The report of `campaign` whose jobs count `progress`, at `now`: the one place where throughput
/// and ETA are computed.
pub fn report(
    campaign: Campaign,
    progress: &CampaignProgress,
    now: DateTime<Utc>,
) -> CampaignReport {
    let ended_by_processing = progress.done + progress.failed;
    let until = campaign.finished_at.unwrap_or(now);
    // At least a minute, so that a campaign just created shows no absurd rate.
    let hours =
        ((until - campaign.created_at).num_milliseconds() as f64 / 3_600_000.0).max(1.0 / 60.0);
    let per_hour = ended_by_processing as f64 / hours;
    let remaining = progress.remaining();
    let rate = if progress.ended_last_hour > 0 {
        progress.ended_last_hour as f64
    } else {
        per_hour
    };
    let eta_seconds = match campaign.state {
        CampaignState::Completed => Some(0),
        CampaignState::Running if remaining == 0 => Some(0),
        CampaignState::Running if rate > 0.0 => {
            Some((remaining as f64 / rate * 3600.0).ceil() as i64)
        }
        _ => None,
    };
    CampaignReport {
        progress: ProgressReport {
            products_listed: campaign.products_listed,
            jobs_created: campaign.jobs_created,
            skipped_total: campaign.skipped.values().sum(),
            skipped: campaign.skipped.clone(),
            stages: progress.clone(),
            per_hour: (per_hour * 100.0).round() / 100.0,
            eta_seconds,
        },
        campaign,
    }
}

/// The report of `campaign`, its jobs counted now.
pub async fn load_report<'e>(
    db: impl PgExecutor<'e>,
    campaign: Campaign,
) -> Result<CampaignReport, DbError> {
    let progress = campaign_progress(db, campaign.id).await?;
    Ok(report(campaign, &progress, Utc::now()))
}

/// The reports of `campaigns`, their jobs counted now in one statement.
pub async fn load_reports<'e>(
    db: impl PgExecutor<'e>,
    campaigns: Vec<Campaign>,
) -> Result<Vec<CampaignReport>, DbError> {
    let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
    let mut progress = campaigns_progress(db, &ids).await?;
    let now = Utc::now();
    Ok(campaigns
        .into_iter()
        .map(|c| {
            let p = progress.remove(&c.id).unwrap_or_default();
            report(c, &p, now)
        })
        .collect())
}

/// A duration as `3h12m`, `5m`, `2d4h`.
pub fn format_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match (d, h) {
        (0, 0) if m == 0 => format!("{s}s"),
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// One line: a bar of `width` cells of the ended jobs, the percentage, the counts, throughput and
/// ETA, e.g. `[#########-----------] 45% 450/1000 jobs, 12.3 jobs/h, ETA 3h12m`.
pub fn progress_line(report: &CampaignReport, width: usize) -> String {
    let p = &report.progress;
    let ended = p.stages.ended();
    let fraction = if p.stages.jobs > 0 {
        (ended as f64 / p.stages.jobs as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (fraction * width as f64).round() as usize;
    let eta = match p.eta_seconds {
        Some(s) => format!("ETA {}", format_duration(s)),
        None => "ETA unknown".to_string(),
    };
    format!(
        "[{}{}] {:.0}% {ended}/{} jobs, {:.1} jobs/h, {eta}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        fraction * 100.0,
        p.stages.jobs,
        p.per_hour
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeDelta;

    fn campaign(state: CampaignState, created: DateTime<Utc>) -> Campaign {
        Campaign {
            id: 1,
            name: "c".into(),
            job_type: "fsc_rlie".into(),
            source: "file:///x".into(),
            from: created,
            to: created + TimeDelta::days(1),
            tiles: None,
            reprocess: false,
            image: None,
            max_in_flight: 10,
            state,
            state_changed_at: created,
            state_message: None,
            listing_cursor: None,
            pages: 1,
            products_listed: 12,
            jobs_created: 10,
            skipped: [("a".to_string(), 1), ("b".to_string(), 1)].into(),
            listing_finished_at: None,
            listing_error: None,
            created_at: created,
            finished_at: None,
        }
    }

    #[test]
    fn throughput_and_eta_come_from_the_ended_jobs() {
        let now: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let progress = CampaignProgress {
            jobs: 10,
            waiting: 4,
            in_flight: 2,
            done: 3,
            failed: 1,
            ended_last_hour: 2,
            ..Default::default()
        };
        let r = report(
            campaign(CampaignState::Running, now - TimeDelta::hours(2)),
            &progress,
            now,
        );
        assert_eq!(r.progress.per_hour, 2.0);
        assert_eq!(r.progress.skipped_total, 2);
        // 6 remaining at 2 per hour.
        assert_eq!(r.progress.eta_seconds, Some(3 * 3600));
        assert_eq!(
            progress_line(&r, 10),
            "[####------] 40% 4/10 jobs, 2.0 jobs/h, ETA 3h00m"
        );
        let listing = report(
            campaign(CampaignState::Listing, now - TimeDelta::hours(2)),
            &progress,
            now,
        );
        assert_eq!(listing.progress.eta_seconds, None);
        let idle = report(
            campaign(CampaignState::Running, now - TimeDelta::hours(2)),
            &CampaignProgress {
                jobs: 1,
                waiting: 1,
                ..Default::default()
            },
            now,
        );
        assert_eq!(idle.progress.eta_seconds, None);
        assert_eq!(format_duration(59), "59s");
        assert_eq!(format_duration(3 * 86_400 + 7200), "3d2h");
    }

    #[test]
    fn dates_and_times_are_read() {
        assert_eq!(
            parse_instant("from", "2021-04-01").unwrap(),
            "2021-04-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_instant("from", "2021-04-01T02:00:00+02:00").unwrap(),
            "2021-04-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_instant("from", "April")
            .unwrap_err()
            .starts_with("from: \"April\""));
        assert_eq!(normalize_tile("tiles", "t32tlr").unwrap(), "32TLR");
        assert!(normalize_tile("tiles", "32 TLR").is_err());
    }

    #[test]
    fn an_image_repository_is_its_reference_without_tag_or_digest() {
        assert_eq!(image_repository("swath-standin:latest"), "swath-standin");
        assert_eq!(
            image_repository("registry:5000/team/fsc:1.2@sha256:ab"),
            "registry:5000/team/fsc"
        );
        assert_eq!(
            image_repository("registry:5000/team/fsc"),
            "registry:5000/team/fsc"
        );
        assert_eq!(image_repository("fsc@sha256:ab"), "fsc");
    }
}

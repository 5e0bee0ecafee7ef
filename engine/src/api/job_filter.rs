//! The job filters of the operator API, checked once for every place that takes them: the query
//! parameters of `GET /jobs` and the bodies of the bulk operations (`POST /jobs/retry`,
//! `POST /jobs/cancel`). Each parameter is checked by [`filter_parameter`] from its text, so that a
//! value is refused with the same message wherever it is given, and [`check_ranges`] checks the
//! filters together.

use swath_domain::JobStatus;

use super::input::{check_text, parse_time};
use super::{ApiContext, ApiError};
use crate::db::jobs::JobFilter;

/// The filter parameters, by the name the API gives them.
pub const FILTER_PARAMETERS: &[&str] = &[
    "type",
    "status",
    "tile",
    "parent",
    "measured_after",
    "measured_before",
    "created_after",
    "created_before",
    "changed_after",
    "campaign",
    "withdrawn",
];

/// Longest text of one parameter.
const MAX_VALUE_LEN: usize = 256;

/// A `name: problem` client error.
fn bad(name: &str, problem: String) -> ApiError {
    ApiError::BadRequest(format!("{name}: {problem}"))
}

/// Sets filter parameter `name` (one of [`FILTER_PARAMETERS`]) of `filter` from its text `value`,
/// or says what is wrong with it, naming the parameter. `status` takes one status name or several
/// separated by commas, and adds them to those already given.
pub fn filter_parameter(
    ctx: &ApiContext,
    filter: &mut JobFilter,
    name: &str,
    value: &str,
) -> Result<(), ApiError> {
    check_text(name, value, MAX_VALUE_LEN)?;
    match name {
        "type" => {
            if ctx.state.registry.get(value).is_none() {
                return Err(bad(
                    name,
                    format!(
                        "unknown job type {value:?} (known: {})",
                        ctx.state.registry.names().join(", ")
                    ),
                ));
            }
            filter.job_type = Some(value.to_string());
        }
        "status" => {
            for status in value.split(',').map(str::trim) {
                add_status(filter, status)?;
            }
        }
        "tile" => {
            let tile = value.trim_start_matches(['T', 't']).to_ascii_uppercase();
            if tile.is_empty()
                || tile.len() > 16
                || !tile.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(bad(
                    name,
                    format!("{value:?} is not a tile id such as 32TLR"),
                ));
            }
            filter.tile_id = Some(tile);
        }
        "parent" => filter.parent_id = Some(positive_id(name, value, "a job id")?),
        "campaign" => filter.campaign_id = Some(positive_id(name, value, "a campaign id")?),
        "measured_after" => filter.measured_after = Some(parse_time(name, value)?),
        "measured_before" => filter.measured_before = Some(parse_time(name, value)?),
        "created_after" => filter.created_after = Some(parse_time(name, value)?),
        "created_before" => filter.created_before = Some(parse_time(name, value)?),
        "changed_after" => filter.changed_after = Some(parse_time(name, value)?),
        "withdrawn" => {
            filter.withdrawn = Some(match value {
                "true" => true,
                "false" => false,
                _ => return Err(bad(name, format!("{value:?} is not true or false"))),
            })
        }
        other => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "{other:?} is not a filter parameter"
            )))
        }
    }
    Ok(())
}

/// Adds the status called `name` to the statuses of `filter` (once), or refuses an unknown name.
pub fn add_status(filter: &mut JobFilter, name: &str) -> Result<(), ApiError> {
    check_text("status", name, MAX_VALUE_LEN)?;
    let status = status_by_name(name).ok_or_else(|| {
        bad(
            "status",
            format!(
                "unknown status {name:?} (known: {})",
                swath_domain::status::ALL_STATUSES
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    if !filter.statuses.contains(&status) {
        filter.statuses.push(status);
    }
    Ok(())
}

/// A positive id given as `name`, or a refusal saying it is not `what`.
fn positive_id(name: &str, value: &str, what: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad(name, format!("{value:?} is not {what}")))
}

/// Checks the filters together: each `_after` must come before its `_before`.
pub fn check_ranges(filter: &JobFilter) -> Result<(), ApiError> {
    for (after, before, name) in [
        (filter.measured_after, filter.measured_before, "measured"),
        (filter.created_after, filter.created_before, "created"),
    ] {
        if let (Some(a), Some(b)) = (after, before) {
            if a >= b {
                return Err(ApiError::BadRequest(format!(
                    "{name}_after must be before {name}_before"
                )));
            }
        }
    }
    Ok(())
}

/// A status by its name only (the API does not take ids).
pub fn status_by_name(name: &str) -> Option<JobStatus> {
    swath_domain::status::ALL_STATUSES
        .iter()
        .copied()
        .find(|s| s.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_ids_and_ranges_are_checked_with_the_parameter_named() {
        let mut filter = JobFilter::default();
        add_status(&mut filter, "internal_error").unwrap();
        add_status(&mut filter, "internal_error").unwrap();
        add_status(&mut filter, "cancelled").unwrap();
        assert_eq!(
            filter.statuses,
            [JobStatus::InternalError, JobStatus::Cancelled]
        );
        let err = add_status(&mut filter, "12").unwrap_err().to_string();
        assert!(err.starts_with("status: unknown status \"12\""), "{err}");
        assert_eq!(positive_id("campaign", "7", "a campaign id").unwrap(), 7);
        let err = positive_id("campaign", "0", "a campaign id")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "campaign: \"0\" is not a campaign id");
        filter.created_after = Some("2022-01-02T00:00:00Z".parse().unwrap());
        filter.created_before = Some("2022-01-01T00:00:00Z".parse().unwrap());
        let err = check_ranges(&filter).unwrap_err().to_string();
        assert_eq!(err, "created_after must be before created_before");
        filter.created_before = None;
        filter.changed_after = filter.created_after;
        assert!(check_ranges(&filter).is_ok());
    }
}

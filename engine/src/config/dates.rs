//! Dates as settings and command-line arguments write them: RFC 3339 times or `YYYY-MM-DD` days.

use chrono::{DateTime, NaiveDate, Utc};

/// An RFC 3339 time, or a `YYYY-MM-DD` date (its midnight UTC).
pub fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

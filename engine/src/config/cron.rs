//! Cron patterns with seconds (`sec min hour day month weekday`, as in `0 0 0 * * *`), in UTC, with
//! the POSIX (Vixie) meaning of every field: weekdays 0-7 with Sunday as 0 or 7, names (`MON`,
//! `JAN`), ranges, lists and steps, `L`, `#` and `W`, and the `@daily`-style nicknames.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The pattern does not parse.
    #[error(
        "{pattern:?} is not a cron pattern with seconds (sec min hour day month weekday): {reason}"
    )]
    Invalid {
        /// The pattern.
        pattern: String,
        /// What the parser said.
        reason: String,
    },
    /// The pattern parses but never matches a time (e.g. the 30th of February).
    #[error("{pattern:?} never fires")]
    Never {
        /// The pattern.
        pattern: String,
    },
}

/// A parsed cron pattern.
#[derive(Clone)]
pub struct CronSchedule {
    pattern: String,
    cron: Cron,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.pattern)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl CronSchedule {
    /// Parses `pattern`, which must have six fields (seconds first), and checks that it fires.
    pub fn parse(pattern: &str) -> Result<CronSchedule, CronError> {
        let pattern = pattern.trim().to_string();
        let invalid = |reason: String| CronError::Invalid {
            pattern: pattern.clone(),
            reason,
        };
        // croner accepts a missing weekday field; swath wants the seed's six fields, always.
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && fields != 6 {
            return Err(invalid(format!("it has {fields} field(s), not 6")));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern)
            .map_err(|e| invalid(e.to_string()))?;
        let schedule = CronSchedule { pattern, cron };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(CronError::Never {
                pattern: schedule.pattern,
            });
        }
        Ok(schedule)
    }

    /// The pattern as given (trimmed).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first tick strictly after `time`, if the pattern ever fires again.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&time, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_seeds_daily_pattern_fires_at_midnight() {
        let daily = CronSchedule::parse("0 0 0 * * *").unwrap();
        assert_eq!(
            daily.next_after(at("2024-03-01T10:00:00Z")),
            Some(at("2024-03-02T00:00:00Z"))
        );
        // Strictly after: a tick is never its own successor.
        assert_eq!(
            daily.next_after(at("2024-03-02T00:00:00Z")),
            Some(at("2024-03-03T00:00:00Z"))
        );
    }

    #[test]
    fn seconds_steps_and_weekdays_have_their_posix_meaning() {
        let every_5s = CronSchedule::parse("*/5 * * * * *").unwrap();
        assert_eq!(
            every_5s.next_after(at("2024-03-01T10:00:03.500Z")),
            Some(at("2024-03-01T10:00:05Z"))
        );
        // 6 is Saturday (2024-03-02 was a Saturday), 0 and 7 are Sunday.
        let saturday = CronSchedule::parse("0 0 0 * * 6").unwrap();
        assert_eq!(
            saturday.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-02T00:00:00Z"))
        );
        let sunday = CronSchedule::parse("0 30 2 * * 7").unwrap();
        assert_eq!(
            sunday.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-03T02:30:00Z"))
        );
        let named = CronSchedule::parse("0 0 12 * JAN MON").unwrap();
        assert_eq!(
            named.next_after(at("2024-01-01T13:00:00Z")),
            Some(at("2024-01-08T12:00:00Z"))
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for bad in [
            "",
            "0 0 * * *",
            "0 0 0 * * * 2030",
            "61 * * * * *",
            "a b c d e f",
        ] {
            let err = CronSchedule::parse(bad).unwrap_err();
            assert!(matches!(err, CronError::Invalid { .. }), "{bad:?}: {err:?}");
            assert!(err.to_string().contains("not a cron pattern"), "{err}");
        }
        let never = CronSchedule::parse("0 0 0 30 2 *").unwrap_err();
        assert_eq!(
            never,
            CronError::Never {
                pattern: "0 0 0 30 2 *".into()
            }
        );
    }

    #[test]
    fn nicknames_are_daily_weekly_and_so_on() {
        let daily = CronSchedule::parse("@daily").unwrap();
        assert_eq!(
            daily.next_after(at("2024-03-01T10:00:00Z")),
            Some(at("2024-03-02T00:00:00Z"))
        );
    }
}

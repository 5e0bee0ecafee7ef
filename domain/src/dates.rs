//! Dates as settings and command-line arguments write them: RFC 3339 times, or `YYYY-MM-DD` days
//! (their midnight UTC).
//!
//! [`parse_date`] reads one; [`optional_date`] is the serde form of an optional setting, used with
//! `#[serde(with = "crate::dates::optional_date")]`. It reads a string in either form, and also a
//! TOML date or date-time written without quotes (`processing_start_date = 2015-01-01`), which the
//! TOML reader hands over as a one-entry map holding its text.

use chrono::{DateTime, NaiveDate, Utc};

/// The forms a date setting accepts, as error messages name them.
pub const DATE_FORMS: &str = "an RFC 3339 time or a YYYY-MM-DD date \
     (e.g. 2015-01-01T00:00:00Z, or 2015-01-01 for its midnight UTC)";

/// An RFC 3339 time, or a `YYYY-MM-DD` date (its midnight UTC). The error names the value and the
/// accepted forms.
pub fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!(
                "{text:?} is neither an RFC 3339 time nor a YYYY-MM-DD date \
                 (e.g. 2015-01-01T00:00:00Z, or 2015-01-01 for its midnight UTC)"
            )
        })
}

/// Serde form of an `Option<DateTime<Utc>>` setting: written as RFC 3339, read with
/// [`parse_date`] (see the module's documentation).
pub mod optional_date {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::de::{self, MapAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    /// The key under which the `toml` crate hands over a date or date-time written without quotes.
    const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

    /// Writes the time as RFC 3339 (as `chrono` does), or nothing.
    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(serializer)
    }

    /// Reads nothing, or a date in one of the accepted forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserializer.deserialize_option(OptionalDate)
    }

    struct OptionalDate;

    impl<'de> Visitor<'de> for OptionalDate {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", super::DATE_FORMS)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Date).map(Some)
        }
    }

    /// One date: a string, or the TOML reader's one-entry map.
    struct Date;

    impl<'de> Visitor<'de> for Date {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", super::DATE_FORMS)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            super::parse_date(text.trim()).map_err(E::custom)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let table =
                || de::Error::custom(format!("expected {}, found a table", super::DATE_FORMS));
            if map.next_key::<String>()?.as_deref() != Some(TOML_DATETIME_KEY) {
                return Err(table());
            }
            let text: String = map.next_value()?;
            if map.next_key::<de::IgnoredAny>()?.is_some() {
                return Err(table());
            }
            super::parse_date(&text).map_err(de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct Setting {
        #[serde(default, with = "optional_date")]
        at: Option<DateTime<Utc>>,
    }

    fn midnight(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_day_is_its_midnight_utc_and_a_time_keeps_its_offset() {
        assert_eq!(
            parse_date("2015-01-01").unwrap(),
            midnight("2015-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_date("2015-01-01T10:30:00+02:00").unwrap(),
            midnight("2015-01-01T08:30:00Z")
        );
    }

    #[test]
    fn a_bad_date_names_the_value_and_the_accepted_forms() {
        for bad in ["2015-13-01", "01/01/2015", "2015-01-01T10:00", ""] {
            let err = parse_date(bad).unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}"))
                    && err.contains("RFC 3339")
                    && err.contains("YYYY-MM-DD"),
                "{err}"
            );
        }
    }

    #[test]
    fn settings_read_both_forms_and_write_rfc_3339() {
        let day: Setting = serde_json::from_str(r#"{"at": "2015-01-01"}"#).unwrap();
        assert_eq!(day.at, Some(midnight("2015-01-01T00:00:00Z")));
        let time: Setting = serde_json::from_str(r#"{"at": "2015-01-01T06:00:00Z"}"#).unwrap();
        assert_eq!(time.at, Some(midnight("2015-01-01T06:00:00Z")));
        let none: Setting = serde_json::from_str(r#"{"at": null}"#).unwrap();
        assert_eq!(none.at, None);
        let absent: Setting = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.at, None);
        // What is written reads back.
        let written = serde_json::to_string(&day).unwrap();
        assert_eq!(written, r#"{"at":"2015-01-01T00:00:00Z"}"#);
        assert_eq!(serde_json::from_str::<Setting>(&written).unwrap(), day);
        // The TOML reader's form of an unquoted date.
        let toml: Setting =
            serde_json::from_str(r#"{"at": {"$__toml_private_datetime": "2015-01-01"}}"#).unwrap();
        assert_eq!(toml, day);
    }

    #[test]
    fn a_bad_setting_names_the_value_and_the_accepted_forms() {
        let err = serde_json::from_str::<Setting>(r#"{"at": "1st of January"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"1st of January\"") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
        let err = serde_json::from_str::<Setting>(r#"{"at": 2015}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        let err = serde_json::from_str::<Setting>(r#"{"at": {"year": 2015}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("found a table"), "{err}");
    }
}

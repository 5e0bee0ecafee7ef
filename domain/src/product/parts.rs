//! Field parsers shared by the Sentinel-1 and Sentinel-2 name parsers: the mission code, the
//! `YYYYMMDDTHHMMSS` timestamps, fixed-width decimal and hexadecimal numbers.
//!
//! Every parser gets one `_`-separated field of an upper-cased, ASCII-only name (the caller checks
//! this first), so byte slicing is safe here. Errors are [`PartError`]s; `super::parse` adds the
//! whole name to turn them into a [`super::ProductNameError`].

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use super::NamePart;

/// An error in one part of a name, before the whole name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartError {
    pub(crate) part: NamePart,
    pub(crate) value: String,
    pub(crate) reason: String,
    /// The name is a well-formed one of another kind (see [`super::ProductNameError::other_product`]).
    pub(crate) other_product: bool,
}

impl PartError {
    /// An error about `part`, whose text in the name is `value`.
    pub(crate) fn new(part: NamePart, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            part,
            value: value.into(),
            reason: reason.into(),
            other_product: false,
        }
    }

    /// Like [`PartError::new`], for a name of a known kind that swath does not read (auxiliary
    /// data, ground-segment files, other product types and missions): not a malformed name.
    pub(crate) fn other(
        part: NamePart,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            other_product: true,
            ..Self::new(part, value, reason)
        }
    }
}

/// Implements `Serialize` as the value's `Display` text (`"S2A"`, `"N0500"`, `"54PXA"`, ...).
macro_rules! serialize_as_display {
    ($($ty:ty),+ $(,)?) => {
        $(impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        })+
    };
}
pub(crate) use serialize_as_display;

/// The satellite family: Sentinel-1 (SAR) or Sentinel-2 (MSI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MissionFamily {
    /// Sentinel-1 (C-band SAR).
    S1,
    /// Sentinel-2 (multispectral imager).
    S2,
}

/// The unit of a family: the letter after `S1`/`S2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MissionUnit {
    /// Unit A.
    A,
    /// Unit B.
    B,
    /// Unit C.
    C,
    /// Unit D.
    D,
}

/// A satellite, such as `S2A` or `S1C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mission {
    /// Sentinel-1 or Sentinel-2.
    pub family: MissionFamily,
    /// A, B, C or D.
    pub unit: MissionUnit,
}

impl fmt::Display for MissionFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::S1 => "S1",
            Self::S2 => "S2",
        })
    }
}

impl fmt::Display for MissionUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::D => "D",
        })
    }
}

impl fmt::Display for Mission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.family, self.unit)
    }
}

serialize_as_display!(MissionFamily, MissionUnit, Mission);

/// Parses the first field of a name (`S1A`..`S1D`, `S2A`..`S2D`).
///
/// A field that starts with a valid mission but goes on (`S2A-MSIL1C-...`) means that the name
/// does not use `_` as its separator, which is reported as a structure error.
pub(crate) fn parse_mission(field: &str) -> Result<Mission, PartError> {
    const EXPECTED: &str = "expected S1A-S1D or S2A-S2D";
    let bytes = field.as_bytes();
    if bytes.len() < 3 {
        return Err(PartError::new(NamePart::Mission, field, EXPECTED));
    }
    let family = match &bytes[..2] {
        b"S1" => Some(MissionFamily::S1),
        b"S2" => Some(MissionFamily::S2),
        _ => None,
    };
    let unit = match bytes[2] {
        b'A' => Some(MissionUnit::A),
        b'B' => Some(MissionUnit::B),
        b'C' => Some(MissionUnit::C),
        b'D' => Some(MissionUnit::D),
        _ => None,
    };
    match (family, unit) {
        (Some(family), Some(unit)) if bytes.len() == 3 => Ok(Mission { family, unit }),
        (Some(_), Some(_)) => Err(PartError::new(
            NamePart::Structure,
            field,
            format!(
                "expected '_' after the mission \"{}\", found '{}' (fields are separated by '_')",
                &field[..3],
                char::from(bytes[3])
            ),
        )),
        _ => Err(PartError::new(NamePart::Mission, field, EXPECTED)),
    }
}

/// Checks that `field` is exactly `width` ASCII decimal digits and returns its value.
///
/// `str::parse` is not used on its own because it accepts a leading `+`.
pub(crate) fn parse_decimal(
    part: NamePart,
    field: &str,
    digits: &str,
    width: usize,
) -> Result<u32, PartError> {
    if digits.len() != width {
        return Err(PartError::new(
            part,
            field,
            format!("expected {width} digits, found {} characters", digits.len()),
        ));
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(PartError::new(
            part,
            field,
            format!("'{bad}' is not a digit"),
        ));
    }
    digits
        .parse()
        .map_err(|_| PartError::new(part, field, "the number is too large"))
}

/// Checks that `field` is exactly `width` hexadecimal digits and returns its value.
pub(crate) fn parse_hex(part: NamePart, field: &str, width: usize) -> Result<u32, PartError> {
    if field.len() != width {
        return Err(PartError::new(
            part,
            field,
            format!(
                "expected {width} hexadecimal digits, found {} characters",
                field.len()
            ),
        ));
    }
    if let Some(bad) = field.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(PartError::new(
            part,
            field,
            format!("'{bad}' is not a hexadecimal digit (0-9, A-F)"),
        ));
    }
    u32::from_str_radix(field, 16)
        .map_err(|_| PartError::new(part, field, "the number is too large"))
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn days_in_month(year: u32, month: u32) -> u32 {
    (28..=31)
        .rev()
        .find(|&day| NaiveDate::from_ymd_opt(year as i32, month, day).is_some())
        .unwrap_or(28)
}

/// Parses a `YYYYMMDDTHHMMSS` UTC timestamp field and says precisely what is wrong with it.
pub(crate) fn parse_timestamp(part: NamePart, field: &str) -> Result<DateTime<Utc>, PartError> {
    let err = |reason: String| PartError::new(part, field, reason);
    let bytes = field.as_bytes();
    if bytes.len() != 15 {
        return Err(err(format!(
            "expected a UTC timestamp YYYYMMDDTHHMMSS (15 characters), found {} characters",
            bytes.len()
        )));
    }
    for (i, &b) in bytes.iter().enumerate() {
        if i == 8 {
            if b != b'T' {
                return Err(err(format!(
                    "expected 'T' between the date and the time (YYYYMMDDTHHMMSS), found '{}'",
                    char::from(b)
                )));
            }
        } else if !b.is_ascii_digit() {
            return Err(err(format!(
                "'{}' at position {} is not a digit (expected YYYYMMDDTHHMMSS)",
                char::from(b),
                i + 1
            )));
        }
    }
    let num = |range: std::ops::Range<usize>| {
        bytes[range]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = (num(9..11), num(11..13), num(13..15));
    if !(1..=12).contains(&month) {
        return Err(err(format!("month {month:02} is out of range (01-12)")));
    }
    let month_days = days_in_month(year, month);
    if day == 0 {
        return Err(err("day 00 is out of range (01-31)".to_owned()));
    }
    if day > month_days {
        return Err(err(format!(
            "day {day} does not exist in {} {year:04} ({month_days} days)",
            MONTH_NAMES[(month - 1) as usize]
        )));
    }
    if hour > 23 {
        return Err(err(format!("hour {hour:02} is out of range (00-23)")));
    }
    if minute > 59 {
        return Err(err(format!("minute {minute:02} is out of range (00-59)")));
    }
    if second > 59 {
        return Err(err(format!("second {second:02} is out of range (00-59)")));
    }
    NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|date| date.and_hms_opt(hour, minute, second))
        .map(|naive| naive.and_utc())
        .ok_or_else(|| err("not a valid date and time".to_owned()))
}

/// Formats a timestamp as it appears in names: `YYYYMMDDTHHMMSS`.
pub(crate) fn format_timestamp(time: &DateTime<Utc>) -> impl fmt::Display {
    time.format("%Y%m%dT%H%M%S")
}

/// Formats a timestamp for JSON: RFC 3339 in UTC with a `Z` and whole seconds.
pub(crate) fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

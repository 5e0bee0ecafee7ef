//! Sentinel-2 L1C/L2A compact product names (catalogues.md §2.1):
//! `MMM_MSIXXX_YYYYMMDDTHHMMSS_Nxxyy_ROOO_Txxxxx_<discriminator>`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;

use super::parts::{
    format_timestamp, parse_decimal, parse_timestamp, rfc3339, serialize_as_display, Mission,
    PartError,
};
use super::tile::TileId;
use super::NamePart;

/// The processing level of a Sentinel-2 product (`MSIL1C` / `MSIL2A` in the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S2Level {
    /// Level-1C: top-of-atmosphere reflectance.
    L1C,
    /// Level-2A: bottom-of-atmosphere reflectance.
    L2A,
}

impl fmt::Display for S2Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::L1C => "L1C",
            Self::L2A => "L2A",
        })
    }
}

/// A processing baseline such as `N0500` (version 05.00). Ordered by version, so `N0500 > N0301`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Baseline {
    /// Major version (`05` in `N0510`).
    pub major: u8,
    /// Minor version (`10` in `N0510`).
    pub minor: u8,
}

impl Baseline {
    /// The name form, `N0500` (allocates; the same as `to_string()`).
    pub fn as_str(&self) -> String {
        self.to_string()
    }

    /// The form used by catalogue attributes (`processorVersion`), `05.00`.
    pub fn processor_version(&self) -> String {
        format!("{:02}.{:02}", self.major, self.minor)
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "N{:02}{:02}", self.major, self.minor)
    }
}

serialize_as_display!(S2Level, Baseline);

/// A parsed Sentinel-2 L1C/L2A product name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S2ProductName {
    /// `S2A`..`S2D`.
    pub mission: Mission,
    /// L1C or L2A.
    pub level: S2Level,
    /// The datatake sensing start (UTC), the first timestamp of the name.
    pub sensing_start: DateTime<Utc>,
    /// The processing baseline.
    pub baseline: Baseline,
    /// The relative orbit, 1-143.
    pub relative_orbit: u16,
    /// The MGRS tile.
    pub tile: TileId,
    /// The product discriminator, usually the generation time. It can be earlier than the sensing
    /// start, and it is not a publication time.
    pub discriminator: DateTime<Utc>,
    /// `_COG` suffix present.
    pub cog: bool,
}

/// What identifies one acquisition of one tile, whatever its processing: mission, sensing start,
/// relative orbit and tile (catalogues.md §2.5).
///
/// Caution: when a datatake is split, two complementary *partial* products of one tile share this
/// key (they differ in footprint and discriminator), so the key alone cannot tell a reprocessed
/// version from a second partial product; the ingestion step must also compare footprints or
/// datastrips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct S2AcquisitionKey {
    /// The mission.
    pub mission: Mission,
    /// The datatake sensing start.
    pub sensing_start: DateTime<Utc>,
    /// The relative orbit.
    pub relative_orbit: u16,
    /// The tile.
    pub tile: TileId,
}

/// Orders the versions of one acquisition: higher baseline first, then later discriminator, so the
/// greatest key is the newest version. Ties (same name) are broken by the catalogue's publication
/// date, which is not part of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct S2VersionKey {
    /// The processing baseline (compared first).
    pub baseline: Baseline,
    /// The discriminator (compared second).
    pub discriminator: DateTime<Utc>,
}

impl S2ProductName {
    /// See [`S2AcquisitionKey`].
    pub fn acquisition_key(&self) -> S2AcquisitionKey {
        S2AcquisitionKey {
            mission: self.mission,
            sensing_start: self.sensing_start,
            relative_orbit: self.relative_orbit,
            tile: self.tile,
        }
    }

    /// See [`S2VersionKey`].
    pub fn version_key(&self) -> S2VersionKey {
        S2VersionKey {
            baseline: self.baseline,
            discriminator: self.discriminator,
        }
    }
}

impl fmt::Display for S2ProductName {
    /// The canonical name, without `.SAFE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_MSI{}_{}_{}_R{:03}_T{}_{}{}",
            self.mission,
            self.level,
            format_timestamp(&self.sensing_start),
            self.baseline,
            self.relative_orbit,
            self.tile,
            format_timestamp(&self.discriminator),
            if self.cog { "_COG" } else { "" }
        )
    }
}

impl serde::Serialize for S2ProductName {
    /// A flat object: `family`, `name` (canonical) and every field, dates in RFC 3339.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(10))?;
        map.serialize_entry("family", "S2")?;
        map.serialize_entry("name", &self.to_string())?;
        map.serialize_entry("mission", &self.mission)?;
        map.serialize_entry("level", &self.level)?;
        map.serialize_entry("sensing_start", &rfc3339(&self.sensing_start))?;
        map.serialize_entry("baseline", &self.baseline)?;
        map.serialize_entry("relative_orbit", &self.relative_orbit)?;
        map.serialize_entry("tile", &self.tile)?;
        map.serialize_entry("discriminator", &rfc3339(&self.discriminator))?;
        map.serialize_entry("cog", &self.cog)?;
        map.end()
    }
}

/// Number of `_`-separated fields of a Sentinel-2 name (without `_COG`).
pub(crate) const FIELDS: usize = 7;

/// Parses the fields of an upper-case name whose mission is a Sentinel-2 one.
pub(crate) fn parse_fields(
    mission: Mission,
    fields: &[&str],
    cog: bool,
) -> Result<S2ProductName, PartError> {
    let [_, level, sensing, baseline, orbit, tile, discriminator] = fields else {
        return Err(super::field_count_error("Sentinel-2", FIELDS, fields));
    };
    Ok(S2ProductName {
        mission,
        level: parse_level(level)?,
        sensing_start: parse_timestamp(NamePart::SensingStart, sensing)?,
        baseline: parse_baseline(baseline)?,
        relative_orbit: parse_relative_orbit(orbit)?,
        tile: parse_tile(tile)?,
        discriminator: parse_timestamp(NamePart::Discriminator, discriminator)?,
        cog,
    })
}

fn parse_level(field: &str) -> Result<S2Level, PartError> {
    match field {
        "MSIL1C" => Ok(S2Level::L1C),
        "MSIL2A" => Ok(S2Level::L2A),
        _ if field.starts_with("MSI") => Err(PartError::new(
            NamePart::Level,
            field,
            format!(
                "level \"{}\" is not supported: expected MSIL1C or MSIL2A",
                &field[3..]
            ),
        )),
        _ => Err(PartError::new(
            NamePart::Level,
            field,
            "expected MSIL1C or MSIL2A (instrument MSI followed by the level)",
        )),
    }
}

fn parse_baseline(field: &str) -> Result<Baseline, PartError> {
    let Some(digits) = field.strip_prefix('N') else {
        return Err(PartError::new(
            NamePart::Baseline,
            field,
            "expected 'N' followed by 4 digits (e.g. N0500)",
        ));
    };
    let value = parse_decimal(NamePart::Baseline, field, digits, 4)?;
    // Four decimal digits: both halves are below 100.
    Ok(Baseline {
        major: (value / 100) as u8,
        minor: (value % 100) as u8,
    })
}

fn parse_relative_orbit(field: &str) -> Result<u16, PartError> {
    let Some(digits) = field.strip_prefix('R') else {
        return Err(PartError::new(
            NamePart::RelativeOrbit,
            field,
            "expected 'R' followed by 3 digits (001-143)",
        ));
    };
    let orbit = parse_decimal(NamePart::RelativeOrbit, field, digits, 3)?;
    if !(1..=143).contains(&orbit) {
        return Err(PartError::new(
            NamePart::RelativeOrbit,
            field,
            format!("relative orbit {orbit} is out of range (001-143)"),
        ));
    }
    Ok(orbit as u16)
}

fn parse_tile(field: &str) -> Result<TileId, PartError> {
    let Some(id) = field.strip_prefix('T') else {
        return Err(PartError::new(
            NamePart::Tile,
            field,
            "expected 'T' followed by a 5-character MGRS tile id (e.g. T54PXA)",
        ));
    };
    TileId::parse_upper(id).map_err(|reason| PartError::new(NamePart::Tile, id, reason))
}

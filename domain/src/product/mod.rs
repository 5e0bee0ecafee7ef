//! Sentinel product names: a parser for Sentinel-2 L1C/L2A compact names and Sentinel-1 GRD names
//! (catalogues.md §2), typed fields, canonical formatting, dedup keys and a flat JSON form.
//!
//! ```
//! use swath_domain::product::ProductName;
//!
//! let name = ProductName::parse(
//!     "/eodata/Sentinel-2/MSI/L1C_N0500/2020/08/08/S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE",
//! )
//! .unwrap();
//! assert_eq!(name.to_string(), "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505");
//! assert_eq!(name.mission().to_string(), "S2A");
//! ```
//!
//! Input is case-insensitive and may carry a leading path, a trailing `/`, a `.SAFE` extension and
//! a `_COG` suffix; the canonical form ([`ProductName::canonical`], also `Display`) is upper case,
//! without `.SAFE`, with `_COG` when present, and parses back to the same value. The parser splits
//! on `_` and checks each field on its own, so that an error names the wrong part
//! ([`ProductNameError`]). Legacy long Sentinel-2 names and auxiliary files are rejected with
//! specific messages.

mod parts;
mod s1;
mod s2;
mod tile;

#[cfg(test)]
mod malformed_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

pub use parts::{Mission, MissionFamily, MissionUnit};
pub use s1::{
    relative_orbit, Polarisation, ProductClass, Resolution, S1AcquisitionKey, S1Mode,
    S1ProductName, S1ProductType,
};
pub use s2::{Baseline, S2AcquisitionKey, S2Level, S2ProductName, S2VersionKey};
pub use tile::{InvalidTileId, TileId};

use parts::PartError;

/// The part of a name that an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamePart {
    /// The overall shape: empty name, character set, separators, number of fields, legacy naming.
    Structure,
    /// What follows the name: only `.SAFE` (and `_COG`) is accepted.
    Suffix,
    /// The mission (`S2A`, `S1C`, ...).
    Mission,
    /// The product level (`MSIL1C` for Sentinel-2, the `1` of `1SDV` for Sentinel-1).
    Level,
    /// The product type (`GRDH`; AUX and unsupported Sentinel-1 types).
    ProductType,
    /// The Sentinel-1 resolution class (`H` of `GRDH`).
    Resolution,
    /// The Sentinel-1 product class (`S` of `1SDV`).
    ProductClass,
    /// The Sentinel-1 polarisation (`DV` of `1SDV`).
    Polarisation,
    /// The Sentinel-1 acquisition mode.
    Mode,
    /// The sensing start timestamp.
    SensingStart,
    /// The Sentinel-1 sensing stop timestamp.
    SensingStop,
    /// The Sentinel-2 processing baseline.
    Baseline,
    /// The Sentinel-2 relative orbit.
    RelativeOrbit,
    /// The Sentinel-2 MGRS tile.
    Tile,
    /// The Sentinel-2 product discriminator.
    Discriminator,
    /// The Sentinel-1 absolute orbit.
    AbsoluteOrbit,
    /// The Sentinel-1 datatake id.
    Datatake,
    /// The Sentinel-1 product unique id (CRC).
    Crc,
}

impl fmt::Display for NamePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Structure => "structure",
            Self::Suffix => "suffix",
            Self::Mission => "mission",
            Self::Level => "level",
            Self::ProductType => "product type",
            Self::Resolution => "resolution",
            Self::ProductClass => "product class",
            Self::Polarisation => "polarisation",
            Self::Mode => "mode",
            Self::SensingStart => "sensing start",
            Self::SensingStop => "sensing stop",
            Self::Baseline => "baseline",
            Self::RelativeOrbit => "relative orbit",
            Self::Tile => "tile",
            Self::Discriminator => "discriminator",
            Self::AbsoluteOrbit => "absolute orbit",
            Self::Datatake => "datatake",
            Self::Crc => "crc",
        })
    }
}

/// Why a text is not a supported Sentinel product name.
///
/// Displayed as `invalid product name "<name>": <part> "<value>": <reason>` (structure errors
/// omit the part and value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid product name \"{name}\": {}", detail(*.part, .value, .reason))]
pub struct ProductNameError {
    /// The input, as given.
    pub name: String,
    /// The part that is wrong.
    pub part: NamePart,
    /// The text of that part, upper-cased (may be empty).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
    /// The name is not malformed: it follows the documented naming of a kind of file swath does not
    /// read (Sentinel-1/2 auxiliary data such as `S1A_AUX_INS_...` or `S1A_OPER_AUX_POEORB_...`,
    /// ground-segment files such as `S2A_OPER_MSI_L1C_DS_...`, Sentinel-1 SLC, OCN, RAW and ETA
    /// products, Sentinel-3 products) or of a product of the other family. Ingestion counts such a
    /// product as not an input of the job type rather than quarantining it.
    pub other_product: bool,
}

fn detail(part: NamePart, value: &str, reason: &str) -> String {
    match part {
        NamePart::Structure => reason.to_owned(),
        _ if value.is_empty() => format!("{part}: {reason}"),
        _ => format!("{part} \"{value}\": {reason}"),
    }
}

/// A parsed Sentinel-1 GRD or Sentinel-2 L1C/L2A product name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProductName {
    /// A Sentinel-1 GRD name.
    S1(S1ProductName),
    /// A Sentinel-2 L1C/L2A name.
    S2(S2ProductName),
}

/// The acquisition key of either family (see [`S1AcquisitionKey`] and [`S2AcquisitionKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(untagged)]
pub enum AcquisitionKey {
    /// A Sentinel-1 key.
    S1(S1AcquisitionKey),
    /// A Sentinel-2 key.
    S2(S2AcquisitionKey),
}

impl ProductName {
    /// Parses a product name, a `.SAFE` directory name or a path ending in one (case-insensitive).
    pub fn parse(input: &str) -> Result<Self, ProductNameError> {
        parse_name(input).map_err(|e| ProductNameError {
            name: input.to_owned(),
            part: e.part,
            value: e.value,
            reason: e.reason,
            other_product: e.other_product,
        })
    }

    /// The mission.
    pub fn mission(&self) -> Mission {
        match self {
            Self::S1(name) => name.mission,
            Self::S2(name) => name.mission,
        }
    }

    /// Sentinel-1 or Sentinel-2.
    pub fn family(&self) -> MissionFamily {
        self.mission().family
    }

    /// The sensing start: the datatake start for Sentinel-2, the slice start for Sentinel-1.
    pub fn sensing_start(&self) -> DateTime<Utc> {
        match self {
            Self::S1(name) => name.sensing_start,
            Self::S2(name) => name.sensing_start,
        }
    }

    /// Whether the name has the `_COG` suffix.
    pub fn is_cog(&self) -> bool {
        match self {
            Self::S1(name) => name.cog,
            Self::S2(name) => name.cog,
        }
    }

    /// The canonical name: upper case, without `.SAFE`, with `_COG` when present.
    pub fn canonical(&self) -> String {
        self.to_string()
    }

    /// The canonical name followed by `.SAFE`.
    pub fn safe_name(&self) -> String {
        format!("{self}.SAFE")
    }

    /// The family's acquisition key.
    pub fn acquisition_key(&self) -> AcquisitionKey {
        match self {
            Self::S1(name) => AcquisitionKey::S1(name.acquisition_key()),
            Self::S2(name) => AcquisitionKey::S2(name.acquisition_key()),
        }
    }

    /// The version key of a Sentinel-2 name; `None` for Sentinel-1 (whose versions are ordered by
    /// catalogue publication date only).
    pub fn version_key(&self) -> Option<S2VersionKey> {
        match self {
            Self::S1(_) => None,
            Self::S2(name) => Some(name.version_key()),
        }
    }
}

impl fmt::Display for ProductName {
    /// The canonical name (see [`ProductName::canonical`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S1(name) => name.fmt(f),
            Self::S2(name) => name.fmt(f),
        }
    }
}

impl FromStr for ProductName {
    type Err = ProductNameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl serde::Serialize for ProductName {
    /// The family's flat object, which starts with `"family": "S1"|"S2"` and `"name"`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::S1(name) => name.serialize(serializer),
            Self::S2(name) => name.serialize(serializer),
        }
    }
}

impl FromStr for S2ProductName {
    type Err = ProductNameError;

    /// Parses a name that must be a Sentinel-2 one.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match ProductName::parse(input)? {
            ProductName::S2(name) => Ok(name),
            ProductName::S1(name) => Err(wrong_family(input, name.mission, "Sentinel-2")),
        }
    }
}

impl FromStr for S1ProductName {
    type Err = ProductNameError;

    /// Parses a name that must be a Sentinel-1 one.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match ProductName::parse(input)? {
            ProductName::S1(name) => Ok(name),
            ProductName::S2(name) => Err(wrong_family(input, name.mission, "Sentinel-1")),
        }
    }
}

fn wrong_family(input: &str, mission: Mission, expected: &str) -> ProductNameError {
    ProductNameError {
        name: input.to_owned(),
        part: NamePart::Mission,
        value: mission.to_string(),
        reason: format!("expected a {expected} product"),
        other_product: true,
    }
}

/// The parser behind [`ProductName::parse`]; errors lack the name, which the caller adds.
fn parse_name(input: &str) -> Result<ProductName, PartError> {
    let structure = |reason: String| PartError::new(NamePart::Structure, "", reason);
    let trimmed = input.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().unwrap_or_default();
    if base.is_empty() {
        let reason = if input.is_empty() {
            "the name is empty"
        } else {
            "the path has no file name"
        };
        return Err(structure(reason.to_owned()));
    }
    if let Some((pos, c)) = base.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        let what = if c.is_ascii() {
            "whitespace or control character"
        } else {
            "non-ASCII character"
        };
        return Err(structure(format!(
            "unexpected {what} {c:?} at byte {pos} (Sentinel names are printable ASCII)"
        )));
    }
    // Only ASCII from here on, so byte offsets are character boundaries.
    let upper = base.to_ascii_uppercase();
    let upper = upper.strip_suffix(".SAFE").unwrap_or(&upper);
    // Before the extension check: auxiliary files end in `.EOF`, datastrip ids in `_N05.00`.
    reject_non_products(&upper.split('_').collect::<Vec<_>>())?;
    if let Some(dot) = upper.find('.') {
        return Err(PartError::new(
            NamePart::Suffix,
            &upper[dot..],
            "unexpected extension: only \".SAFE\" is accepted",
        ));
    }
    let (upper, cog) = match upper.strip_suffix("_COG") {
        Some(rest) => (rest, true),
        None => (upper, false),
    };
    let fields: Vec<&str> = upper.split('_').collect();
    let mission = parts::parse_mission(fields[0])?;
    reject_other_family(mission, &fields)?;
    match mission.family {
        MissionFamily::S1 => s1::parse_fields(mission, &fields, cog).map(ProductName::S1),
        MissionFamily::S2 => s2::parse_fields(mission, &fields, cog).map(ProductName::S2),
    }
}

/// Data sources of Sentinel-3 names (`S3A_OL_1_EFR____...`): OLCI, SLSTR, SRAL, DORIS, MWR, GNSS,
/// synergy, telemetry and auxiliary data.
const S3_SOURCES: [&str; 9] = ["OL", "SL", "SR", "DO", "MW", "GN", "SY", "TM", "AX"];

/// Rejects, with a specific message, names that follow another convention: auxiliary files
/// (`S1A_OPER_AUX_POEORB_...`, `S1A_AUX_INS_...`, `S1__AUX_SCS_...`, `S2A_OPER_AUX_...`), legacy
/// long Sentinel-2 names (`S2A_OPER_PRD_MSIL1C_PDMC_...`), other ground-segment files
/// (`S2A_OPER_MSI_L1C_DS_...`) and Sentinel-3 names (`S3A_SL_1_RBT____...`). All but the legacy
/// names are marked as other products (not malformed): legacy names are Sentinel-2 products swath
/// would process but cannot read.
fn reject_non_products(fields: &[&str]) -> Result<(), PartError> {
    let family = match fields[0].get(..2) {
        Some("S1") => "Sentinel-1",
        Some("S2") => "Sentinel-2",
        Some("S3") => return reject_sentinel_3(fields),
        _ => return Ok(()),
    };
    if fields[0].len() > 3 {
        return Ok(());
    }
    // The file class (OPER, TEST, ...) is optional before AUX: `S1A_AUX_INS_...`.
    if let Some(aux) = fields.iter().take(4).skip(1).position(|f| *f == "AUX") {
        let kind = fields
            .get(aux + 2)
            .map_or(String::from("AUX"), |t| format!("AUX_{t}"));
        return Err(PartError::other(
            NamePart::ProductType,
            kind.as_str(),
            format!(
                "this is a {family} auxiliary data file ({kind}), not a product: \
                 auxiliary files must be filtered out by product type"
            ),
        ));
    }
    if matches!(fields.get(1), Some(&("OPER" | "USER" | "TEST"))) {
        if fields.get(2) == Some(&"PRD") {
            return Err(PartError::new(
                NamePart::Structure,
                "",
                format!(
                    "this is a legacy long {family} product name ({}_{}_PRD_..., used before December 2016), \
                     which is not supported: catalogues list these products under compact names (S2A_MSIL1C_...)",
                    fields[0], fields[1]
                ),
            ));
        }
        let kind = fields[1..fields.len().min(4)].join("_");
        return Err(PartError::other(
            NamePart::ProductType,
            kind.as_str(),
            format!("this is a {family} ground-segment file ({kind}_...), not a user product"),
        ));
    }
    Ok(())
}

/// A Sentinel-3 name (`S3A_`, `S3B_`, ..., or `S3__` for both units, then a data source such as
/// `OL` or `AX`) is another mission's product; anything else starting with `S3` is left to the
/// mission check, which calls it malformed.
fn reject_sentinel_3(fields: &[&str]) -> Result<(), PartError> {
    let (unit, source) = match fields {
        ["S3", "", source, ..] => ("S3_", *source),
        [unit, source, ..] if unit.len() == 3 => (*unit, *source),
        _ => return Ok(()),
    };
    let known_unit = unit == "S3_" || matches!(unit.as_bytes()[2], b'A'..=b'D');
    if !known_unit || !S3_SOURCES.contains(&source) {
        return Ok(());
    }
    let what = if source == "AX" {
        "a Sentinel-3 auxiliary data file"
    } else {
        "a Sentinel-3 product"
    };
    Err(PartError::other(
        NamePart::Mission,
        unit,
        format!("this is {what} ({unit}_{source}_...): swath reads Sentinel-1 and Sentinel-2 products only"),
    ))
}

/// Catches a mission of one family with the product type of the other (`S1A_MSIL1C_...`).
fn reject_other_family(mission: Mission, fields: &[&str]) -> Result<(), PartError> {
    let second = fields.get(1).copied().unwrap_or_default();
    let looks_s2 = second.starts_with("MSI");
    let looks_s1 =
        fields.get(2).is_some_and(|t| t.starts_with("GRD")) || second == "IW" || second == "EW";
    let other = match mission.family {
        MissionFamily::S1 if looks_s2 => "a Sentinel-2",
        MissionFamily::S2 if looks_s1 => "a Sentinel-1",
        _ => return Ok(()),
    };
    Err(PartError::new(
        NamePart::Mission,
        mission.to_string(),
        format!("the rest of the name is {other} name, which does not match this mission"),
    ))
}

/// The error for a name with the wrong number of fields, with a hint for a doubled `_` or another
/// separator.
pub(crate) fn field_count_error(family: &str, expected: usize, fields: &[&str]) -> PartError {
    let mut reason = format!(
        "expected {expected} fields separated by '_' for a {family} name, found {}",
        fields.len()
    );
    if let Some(empty) = fields.iter().position(|f| f.is_empty()) {
        reason.push_str(&format!(
            " (field {} is empty: doubled or trailing '_'?)",
            empty + 1
        ));
    } else if let Some(sep) = fields
        .iter()
        .find_map(|f| f.chars().find(|c| matches!(c, '-' | '+' | ',')))
    {
        reason.push_str(&format!(" ('{sep}' is not a field separator)"));
    }
    PartError::new(NamePart::Structure, "", reason)
}

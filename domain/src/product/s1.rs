//! Sentinel-1 GRD product names (catalogues.md §2.2):
//! `MMM_BB_GRDR_1CPP_<start>_<stop>_OOOOOO_DDDDDD_CCCC[_COG]`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;

use super::parts::{
    format_timestamp, parse_decimal, parse_hex, parse_timestamp, rfc3339, serialize_as_display,
    Mission, MissionUnit, PartError,
};
use super::NamePart;

/// The acquisition mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S1Mode {
    /// Interferometric Wide swath.
    IW,
    /// Extra Wide swath.
    EW,
    /// Wave mode.
    WV,
    /// Stripmap, beam S1.
    S1,
    /// Stripmap, beam S2.
    S2,
    /// Stripmap, beam S3.
    S3,
    /// Stripmap, beam S4.
    S4,
    /// Stripmap, beam S5.
    S5,
    /// Stripmap, beam S6.
    S6,
}

/// The product type. Only Ground Range Detected products are supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S1ProductType {
    /// Ground Range Detected.
    Grd,
}

/// The resolution class of a GRD product (the letter after `GRD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// `F`: full resolution.
    Full,
    /// `H`: high resolution.
    High,
    /// `M`: medium resolution.
    Medium,
}

/// The product class (the letter after the level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProductClass {
    /// `S`: standard product.
    Standard,
    /// `A`: annotation product.
    Annotation,
}

/// The polarisation code of the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Polarisation {
    /// Single HH.
    SH,
    /// Single VV.
    SV,
    /// Dual HH+HV.
    DH,
    /// Dual VV+VH.
    DV,
    /// Partial dual, HH only.
    HH,
    /// Partial dual, HV only.
    HV,
    /// Partial dual, VV only.
    VV,
    /// Partial dual, VH only.
    VH,
}

/// Generates `code()`, `from_code()` and `Display` (the code) for a field enum.
macro_rules! coded_enum {
    ($ty:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The code used in product names.
            pub fn code(&self) -> &'static str {
                match self { $($ty::$variant => $code),+ }
            }

            fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        serialize_as_display!($ty);
    };
}

coded_enum!(S1Mode { IW => "IW", EW => "EW", WV => "WV", S1 => "S1", S2 => "S2", S3 => "S3", S4 => "S4", S5 => "S5", S6 => "S6" });
coded_enum!(S1ProductType { Grd => "GRD" });
coded_enum!(Resolution { Full => "F", High => "H", Medium => "M" });
coded_enum!(ProductClass { Standard => "S", Annotation => "A" });
coded_enum!(Polarisation { SH => "SH", SV => "SV", DH => "DH", DV => "DV", HH => "HH", HV => "HV", VV => "VV", VH => "VH" });

/// A parsed Sentinel-1 GRD product name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S1ProductName {
    /// `S1A`..`S1D`.
    pub mission: Mission,
    /// The acquisition mode.
    pub mode: S1Mode,
    /// Always GRD.
    pub product_type: S1ProductType,
    /// The resolution class.
    pub resolution: Resolution,
    /// The processing level (always 1 for GRD).
    pub level: u8,
    /// Standard or annotation.
    pub product_class: ProductClass,
    /// The polarisation code.
    pub polarisation: Polarisation,
    /// Slice sensing start (UTC).
    pub sensing_start: DateTime<Utc>,
    /// Slice sensing stop (UTC), never before the start.
    pub sensing_stop: DateTime<Utc>,
    /// The absolute orbit (6 digits in the name).
    pub absolute_orbit: u32,
    /// The relative orbit (1-175), derived from the absolute orbit for S1A and S1B only; `None`
    /// for S1C/S1D, whose formula is not confirmed by the reference documents.
    pub relative_orbit: Option<u16>,
    /// The mission datatake id: the 6 hex digits of the name, as catalogues give it in decimal.
    pub datatake_id: u32,
    /// The product unique id: a CRC-16 of the manifest (4 hex digits). Regenerated duplicates
    /// differ only in this field.
    pub crc: u16,
    /// `_COG` suffix present (CDSE's cloud-optimised GeoTIFF conversion).
    pub cog: bool,
}

/// What identifies one slice of one acquisition: every field of the name except the CRC and the
/// `_COG` flag, so that regenerated duplicates and COG twins share it (catalogues.md §2.5).
///
/// NRT-3h and Fast-24h products of one datatake are sliced differently (start and stop a few
/// seconds apart), so they get different keys; matching them needs `(mission, datatake_id,
/// absolute_orbit)` plus an overlap test on the sensing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct S1AcquisitionKey {
    /// The mission.
    pub mission: Mission,
    /// The acquisition mode.
    pub mode: S1Mode,
    /// The product type.
    pub product_type: S1ProductType,
    /// The resolution class.
    pub resolution: Resolution,
    /// The processing level.
    pub level: u8,
    /// The product class.
    pub product_class: ProductClass,
    /// The polarisation code.
    pub polarisation: Polarisation,
    /// Slice sensing start.
    pub sensing_start: DateTime<Utc>,
    /// Slice sensing stop.
    pub sensing_stop: DateTime<Utc>,
    /// The absolute orbit.
    pub absolute_orbit: u32,
    /// The relative orbit, when known (derived from the mission and the absolute orbit).
    pub relative_orbit: Option<u16>,
    /// The datatake id.
    pub datatake_id: u32,
}

impl S1ProductName {
    /// See [`S1AcquisitionKey`].
    pub fn acquisition_key(&self) -> S1AcquisitionKey {
        S1AcquisitionKey {
            mission: self.mission,
            mode: self.mode,
            product_type: self.product_type,
            resolution: self.resolution,
            level: self.level,
            product_class: self.product_class,
            polarisation: self.polarisation,
            sensing_start: self.sensing_start,
            sensing_stop: self.sensing_stop,
            absolute_orbit: self.absolute_orbit,
            relative_orbit: self.relative_orbit,
            datatake_id: self.datatake_id,
        }
    }

    /// The datatake id as it appears in the name: 6 upper-case hex digits.
    pub fn datatake_hex(&self) -> String {
        format!("{:06X}", self.datatake_id)
    }

    /// The CRC as it appears in the name: 4 upper-case hex digits.
    pub fn crc_hex(&self) -> String {
        format!("{:04X}", self.crc)
    }
}

/// The relative orbit of an absolute orbit, for the missions whose orbit phase is known:
/// S1A `((abs - 73) mod 175) + 1`, S1B `((abs - 27) mod 175) + 1`; `None` otherwise.
pub fn relative_orbit(mission: Mission, absolute_orbit: u32) -> Option<u16> {
    let offset = match mission.unit {
        MissionUnit::A => 73,
        MissionUnit::B => 27,
        MissionUnit::C | MissionUnit::D => return None,
    };
    let relative = (i64::from(absolute_orbit) - offset).rem_euclid(175) + 1;
    u16::try_from(relative).ok()
}

impl fmt::Display for S1ProductName {
    /// The canonical name, without `.SAFE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}{}_{}{}{}_{}_{}_{:06}_{:06X}_{:04X}{}",
            self.mission,
            self.mode,
            self.product_type,
            self.resolution,
            self.level,
            self.product_class,
            self.polarisation,
            format_timestamp(&self.sensing_start),
            format_timestamp(&self.sensing_stop),
            self.absolute_orbit,
            self.datatake_id,
            self.crc,
            if self.cog { "_COG" } else { "" }
        )
    }
}

impl serde::Serialize for S1ProductName {
    /// A flat object: `family`, `name` (canonical) and every field. The datatake appears twice:
    /// `datatake` (the 6 hex digits of the name) and `datatake_id` (decimal, as catalogues give it).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(18))?;
        map.serialize_entry("family", "S1")?;
        map.serialize_entry("name", &self.to_string())?;
        map.serialize_entry("mission", &self.mission)?;
        map.serialize_entry("mode", &self.mode)?;
        map.serialize_entry("product_type", &self.product_type)?;
        map.serialize_entry("resolution", &self.resolution)?;
        map.serialize_entry("level", &self.level)?;
        map.serialize_entry("product_class", &self.product_class)?;
        map.serialize_entry("polarisation", &self.polarisation)?;
        map.serialize_entry("sensing_start", &rfc3339(&self.sensing_start))?;
        map.serialize_entry("sensing_stop", &rfc3339(&self.sensing_stop))?;
        map.serialize_entry("absolute_orbit", &self.absolute_orbit)?;
        map.serialize_entry("relative_orbit", &self.relative_orbit)?;
        map.serialize_entry("datatake", &self.datatake_hex())?;
        map.serialize_entry("datatake_id", &self.datatake_id)?;
        map.serialize_entry("crc", &self.crc_hex())?;
        map.serialize_entry("cog", &self.cog)?;
        map.end()
    }
}

/// Number of `_`-separated fields of a Sentinel-1 name (without `_COG`).
pub(crate) const FIELDS: usize = 9;

/// Product types of the Sentinel-1 family that are recognised but not supported.
const UNSUPPORTED_TYPES: [&str; 4] = ["SLC", "OCN", "RAW", "ETA"];

/// Parses the fields of an upper-case name whose mission is a Sentinel-1 one.
pub(crate) fn parse_fields(
    mission: Mission,
    fields: &[&str],
    cog: bool,
) -> Result<S1ProductName, PartError> {
    // `S1A_IW_SLC__1SDV_...` has a doubled '_', so look at the type before counting fields.
    if let Some(kind) = fields.get(2).and_then(|t| t.get(..3)) {
        if UNSUPPORTED_TYPES.contains(&kind) {
            return Err(PartError::other(
                NamePart::ProductType,
                kind,
                format!("Sentinel-1 {kind} products are not supported (only GRD)"),
            ));
        }
    }
    let [_, mode, kind, class, start, stop, orbit, datatake, crc] = fields else {
        return Err(super::field_count_error("Sentinel-1", FIELDS, fields));
    };
    let mode = S1Mode::from_code(mode)
        .ok_or_else(|| PartError::new(NamePart::Mode, *mode, "expected IW, EW, WV or S1-S6"))?;
    let (product_type, resolution) = parse_type(kind)?;
    let (level, product_class, polarisation) = parse_class(class)?;
    let sensing_start = parse_timestamp(NamePart::SensingStart, start)?;
    let sensing_stop = parse_timestamp(NamePart::SensingStop, stop)?;
    if sensing_stop < sensing_start {
        return Err(PartError::new(
            NamePart::SensingStop,
            *stop,
            format!("the sensing stop is before the sensing start {start}"),
        ));
    }
    let absolute_orbit = parse_decimal(NamePart::AbsoluteOrbit, orbit, orbit, 6)?;
    if absolute_orbit == 0 {
        return Err(PartError::new(
            NamePart::AbsoluteOrbit,
            *orbit,
            "absolute orbit 0 does not exist",
        ));
    }
    let datatake_id = parse_hex(NamePart::Datatake, datatake, 6)?;
    // Four hex digits always fit in a u16.
    let crc = parse_hex(NamePart::Crc, crc, 4)? as u16;
    Ok(S1ProductName {
        mission,
        mode,
        product_type,
        resolution,
        level,
        product_class,
        polarisation,
        sensing_start,
        sensing_stop,
        absolute_orbit,
        relative_orbit: relative_orbit(mission, absolute_orbit),
        datatake_id,
        crc,
        cog,
    })
}

/// `GRDH` -> (GRD, High).
fn parse_type(field: &str) -> Result<(S1ProductType, Resolution), PartError> {
    let (Some(product_type), Some(res)) = (
        field.get(..3).and_then(S1ProductType::from_code),
        field.get(3..),
    ) else {
        return Err(PartError::new(
            NamePart::ProductType,
            field,
            "expected GRD followed by the resolution class F, H or M (e.g. GRDH)",
        ));
    };
    let resolution = Resolution::from_code(res).ok_or_else(|| {
        PartError::new(
            NamePart::Resolution,
            field,
            format!(
                "\"{res}\" is not a resolution class: expected F (full), H (high) or M (medium)"
            ),
        )
    })?;
    Ok((product_type, resolution))
}

/// `1SDV` -> (1, Standard, DV).
fn parse_class(field: &str) -> Result<(u8, ProductClass, Polarisation), PartError> {
    if field.len() != 4 {
        return Err(PartError::new(
            NamePart::Level,
            field,
            format!(
                "expected 4 characters: level, class and polarisation (e.g. 1SDV), found {}",
                field.len()
            ),
        ));
    }
    // The caller guarantees ASCII, so these byte ranges are character boundaries.
    let (level, class, pol) = (&field[..1], &field[1..2], &field[2..]);
    if level != "1" {
        return Err(PartError::new(
            NamePart::Level,
            field,
            format!("level \"{level}\" is not supported: GRD products are level 1"),
        ));
    }
    let product_class = ProductClass::from_code(class).ok_or_else(|| {
        PartError::new(
            NamePart::ProductClass,
            field,
            format!("\"{class}\" is not a product class: expected S (standard) or A (annotation)"),
        )
    })?;
    let polarisation = Polarisation::from_code(pol).ok_or_else(|| {
        PartError::new(
            NamePart::Polarisation,
            field,
            format!("\"{pol}\" is not a polarisation: expected SH, SV, DH, DV, HH, HV, VV or VH"),
        )
    })?;
    Ok((1, product_class, polarisation))
}

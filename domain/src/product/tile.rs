//! MGRS tile identifiers as used by Sentinel-2 (`54PXA`, shown as `T54PXA` in product names).
//!
//! Validation follows catalogues.md §2.1: UTM zone 01-60, latitude band C-X without I and O,
//! 100 km square column A-Z without I and O and row A-V without I and O. The stricter MGRS rule
//! that ties the column letter set to the zone number is deliberately not applied.

use std::fmt;
use std::str::FromStr;

use super::parts::serialize_as_display;

/// A validated MGRS tile id such as `54PXA` (zone 54, band P, square XA). Displayed without the
/// `T` that product names put in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    zone: u8,
    band: u8,
    column: u8,
    row: u8,
}

/// Why a text is not a valid MGRS tile id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MGRS tile \"{value}\": {reason}")]
pub struct InvalidTileId {
    /// The rejected text.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TileId {
    /// Parses `54PXA` (or `T54PXA`), in any case.
    pub fn parse(text: &str) -> Result<Self, InvalidTileId> {
        let upper = text.to_ascii_uppercase();
        let id = upper.strip_prefix('T').unwrap_or(&upper);
        Self::parse_upper(id).map_err(|reason| InvalidTileId {
            value: text.to_owned(),
            reason,
        })
    }

    /// Validates an upper-case tile id without the `T` prefix; the error is the reason only.
    pub(crate) fn parse_upper(id: &str) -> Result<Self, String> {
        let chars: Vec<char> = id.chars().collect();
        let [z1, z2, band, column, row] = chars[..] else {
            return Err(format!(
                "expected 5 characters (2-digit UTM zone, latitude band, 2-letter 100 km square), found {}",
                chars.len()
            ));
        };
        let (Some(d1), Some(d2)) = (z1.to_digit(10), z2.to_digit(10)) else {
            return Err(format!(
                "UTM zone \"{z1}{z2}\" is not a 2-digit number (01-60)"
            ));
        };
        let zone = d1 * 10 + d2;
        if !(1..=60).contains(&zone) {
            return Err(format!("UTM zone {zone:02} is out of range (01-60)"));
        }
        let letter =
            |c: char, last: char| c.is_ascii_uppercase() && c <= last && c != 'I' && c != 'O';
        if !letter(band, 'X') || band < 'C' {
            return Err(format!(
                "latitude band '{band}' is not a valid MGRS band (C-X without I and O)"
            ));
        }
        if !letter(column, 'Z') {
            return Err(format!(
                "100 km square column '{column}' is not valid (A-Z without I and O)"
            ));
        }
        if !letter(row, 'V') {
            return Err(format!(
                "100 km square row '{row}' is not valid (A-V without I and O)"
            ));
        }
        // Every character was checked to be ASCII above, so the casts are lossless.
        Ok(Self {
            zone: zone as u8,
            band: band as u8,
            column: column as u8,
            row: row as u8,
        })
    }

    /// The UTM zone, 1-60.
    pub fn zone(&self) -> u8 {
        self.zone
    }

    /// The latitude band letter (C-X without I and O).
    pub fn band(&self) -> char {
        char::from(self.band)
    }

    /// The 100 km square column letter.
    pub fn column(&self) -> char {
        char::from(self.column)
    }

    /// The 100 km square row letter.
    pub fn row(&self) -> char {
        char::from(self.row)
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}{}{}{}",
            self.zone,
            self.band(),
            self.column(),
            self.row()
        )
    }
}

impl FromStr for TileId {
    type Err = InvalidTileId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

serialize_as_display!(TileId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let tile = TileId::parse("t32tlr").unwrap();
        assert_eq!(tile.to_string(), "32TLR");
        assert_eq!(
            (tile.zone(), tile.band(), tile.column(), tile.row()),
            (32, 'T', 'L', 'R')
        );
        assert_eq!("01CAA".parse::<TileId>().unwrap().to_string(), "01CAA");
        assert_eq!("60XZV".parse::<TileId>().unwrap().to_string(), "60XZV");
    }

    #[test]
    fn rejects_invalid_tiles() {
        for (text, reason) in [
            ("00CAA", "UTM zone 00 is out of range (01-60)"),
            ("61CAA", "UTM zone 61 is out of range (01-60)"),
            ("5PXA", "expected 5 characters (2-digit UTM zone, latitude band, 2-letter 100 km square), found 4"),
            ("A4PXA", "UTM zone \"A4\" is not a 2-digit number (01-60)"),
            ("54BXA", "latitude band 'B' is not a valid MGRS band (C-X without I and O)"),
            ("54YXA", "latitude band 'Y' is not a valid MGRS band (C-X without I and O)"),
            ("54OXA", "latitude band 'O' is not a valid MGRS band (C-X without I and O)"),
            ("54PIA", "100 km square column 'I' is not valid (A-Z without I and O)"),
            ("54PXW", "100 km square row 'W' is not valid (A-V without I and O)"),
            ("54PXO", "100 km square row 'O' is not valid (A-V without I and O)"),
            ("54PXé", "100 km square row 'é' is not valid (A-V without I and O)"),
        ] {
            let err = TileId::parse(text).unwrap_err();
            assert_eq!(err.reason, reason, "{text}");
            assert_eq!(err.value, text);
        }
    }
}

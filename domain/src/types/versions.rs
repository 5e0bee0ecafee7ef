//! Versions of one Sentinel-2 acquisition: which listed products are the same product in another
//! version (a newer processing baseline or discriminator), and which are different products.
//!
//! Two products share an acquisition when mission, sensing start, relative orbit and tile agree.
//! That is not enough to call them versions of each other: a datatake split in two gives two
//! partial-tile products with different footprints, and both must be processed (catalogue notes
//! §2.4-2.5). So two products of one acquisition are versions of one product when their footprints
//! match (similarity at least [`SAME_FOOTPRINT_SIMILARITY`]). When a footprint is unknown, only a
//! different processing baseline marks a new version; the same baseline with another discriminator
//! could be either case, and is treated as a different product so that nothing is lost.
//!
//! Products of one acquisition and baseline that are not versions of each other are partial-tile
//! products of one datatake: they make one output product, so `fsc_rlie` processes them in one job
//! (its `inputs`).

use chrono::TimeDelta;

use crate::aoi::Footprint;
use crate::product::S2ProductName;

/// Footprints at least this similar (intersection over union) belong to the same product.
pub const SAME_FOOTPRINT_SIMILARITY: f64 = 0.9;

/// A newer version of a product that is already being processed or was processed is processed
/// again only when it reached the catalogue within this delay after sensing (the original's
/// `DUPLICATE_INPUT_PRODUCT_VALID_TIME`); later ones belong to reprocessing campaigns.
pub const SUPERSEDE_GRACE: TimeDelta = TimeDelta::hours(24);

/// A product name with its footprint, if known.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    /// The parsed name.
    pub name: &'a S2ProductName,
    /// The footprint.
    pub footprint: Option<&'a Footprint>,
}

/// Whether `a` and `b` are versions of one product (see the module documentation).
pub fn same_product(a: Listed<'_>, b: Listed<'_>) -> bool {
    if a.name.acquisition_key() != b.name.acquisition_key() {
        return false;
    }
    match (a.footprint, b.footprint) {
        (Some(fa), Some(fb)) => fa.similarity(fb) >= SAME_FOOTPRINT_SIMILARITY,
        _ => a.name.baseline != b.name.baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn name(text: &str) -> S2ProductName {
        text.parse().unwrap()
    }

    fn band(south: f64, north: f64) -> Footprint {
        Footprint::from_geojson(&json!({"type": "Polygon", "coordinates": [[[-8.0, south], [-6.4, south], [-6.4, north], [-8.0, north], [-8.0, south]]]})).unwrap()
    }

    /// The four products of one datatake and tile of catalogue notes §2.4 (tile 29UNV, 2021-10-02):
    /// two partial-tile products (N0301 `_141024` and `_160521`, different footprints) and their
    /// N0500 reprocessings (`_20230102T203816` and `_20230103T031448`, same footprints).
    #[test]
    fn split_datatake_products_are_different_and_reprocessings_are_versions() {
        let a301 = name("S2B_MSIL2A_20211002T113319_N0301_R080_T29UNV_20211002T141024");
        let b301 = name("S2B_MSIL2A_20211002T113319_N0301_R080_T29UNV_20211002T160521");
        let a500 = name("S2B_MSIL2A_20211002T113319_N0500_R080_T29UNV_20230102T203816");
        let b500 = name("S2B_MSIL2A_20211002T113319_N0500_R080_T29UNV_20230103T031448");
        let (north, south) = (band(53.52, 54.15), band(53.15, 53.96));
        let l = |n, f| Listed {
            name: n,
            footprint: Some(f),
        };
        assert!(
            !same_product(l(&a301, &north), l(&b301, &south)),
            "two partial-tile products"
        );
        assert!(
            same_product(l(&a301, &north), l(&a500, &north)),
            "a reprocessing of the northern part"
        );
        assert!(same_product(l(&b301, &south), l(&b500, &south)));
        assert!(!same_product(l(&a301, &north), l(&b500, &south)));
        assert!(a500.version_key() > a301.version_key());

        // Without footprints: another baseline is a version, the same baseline is not.
        let bare = |n| Listed {
            name: n,
            footprint: None,
        };
        assert!(same_product(bare(&a301), bare(&a500)));
        assert!(!same_product(bare(&a301), bare(&b301)));
        // Other acquisitions never match.
        let other_tile = name("S2B_MSIL2A_20211002T113319_N0500_R080_T29UNA_20230102T203816");
        assert!(!same_product(bare(&a301), bare(&other_tile)));
    }
}

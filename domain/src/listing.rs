//! One entry of a catalogue listing, whatever the catalogue (OData, STAC, local directory).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A product as a catalogue lists it, before any parsing or filtering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogueProduct {
    /// The catalogue's own id for the product (OData `Id`, STAC `id`), if it has one.
    pub catalogue_id: Option<String>,
    /// The product name as listed (with or without `.SAFE`).
    pub name: String,
    /// Where the product lives, exactly as the catalogue says (`S3Path`, asset href, directory path).
    pub input_path: String,
    /// When the product appeared in the catalogue (`PublicationDate`, `published`).
    pub published_at: DateTime<Utc>,
    /// Sensing start, if the catalogue gives it.
    pub sensing_start: Option<DateTime<Utc>>,
    /// Sensing end, if the catalogue gives it.
    pub sensing_end: Option<DateTime<Utc>>,
    /// Footprint as a GeoJSON geometry, if the catalogue gives it.
    pub footprint: Option<serde_json::Value>,
    /// Cloud cover in percent, if the catalogue gives it.
    pub cloud_cover: Option<f64>,
    /// Size in bytes, if the catalogue gives it (0 is treated as unknown).
    pub size_bytes: Option<u64>,
}

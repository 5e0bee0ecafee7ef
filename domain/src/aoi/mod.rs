//! Area of interest: which Sentinel-2 tiles a product footprint covers.
//!
//! The area of interest is a [`TileGrid`]: Sentinel-2 MGRS tiles (ids such as `32TLR`, without the `T`
//! that product names put in front) with their WGS84 footprints. [`TileGrid::eea39`] is the grid of the
//! original system, the 1054 tiles covering the EEA39 countries, embedded from `data/eea39_tiles.tsv`
//! (see `data/SOURCES.md`); [`eea39_mountain_tiles`] and [`eea39_no_rlie_tiles`] are the original's
//! tile subsets.
//!
//! A product's [`Footprint`] comes from the catalogue, as GeoJSON (OData `GeoFootprint`, STAC
//! `geometry`) or WKT (OData `Footprint`). [`TileGrid::tiles_intersecting`] lists the tiles it overlaps
//! with a non-zero area, and [`Footprint::similarity`] tells two versions of one product (same footprint)
//! from two partial products of one datatake (different footprints).
//!
//! # Input rules
//!
//! Footprints are polygons or multipolygons (with holes) in WGS84 longitude/latitude degrees. Every
//! coordinate must be finite with the longitude in [-180, 180] and the latitude in [-90, 90]. Every ring
//! needs at least 4 points and must be closed (last point equal to the first): unclosed rings are
//! **rejected**, not closed silently, since both WKT and GeoJSON require closed rings and an open one
//! usually means a truncated or garbled geometry. Errors name the polygon, ring and point.
//!
//! A polygon with an edge spanning more than 180 degrees of longitude is taken to cross the
//! antimeridian: its negative longitudes are shifted by +360 so that the polygon stays compact (it then
//! lies around longitude 180 and so never overlaps the EEA39 tiles, as it should).
//!
//! # Geometry
//!
//! Areas are computed in square degrees on the lon/lat plane, which is good enough to decide overlap and
//! to compare two footprints of the same place. Polygon intersections and unions use `geo`'s
//! `BooleanOps` (backed by `i_overlay`, which snaps to an integer grid and does not panic on degenerate
//! input); as a last resort a panic in it is caught and the bounding boxes are used instead.

mod geojson;
mod wkt;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use geo::{Area, BooleanOps, BoundingRect, Coord, LineString, MultiPolygon, Polygon, Rect};

use crate::product::TileId;

/// One ring as read: `[lon, lat]` points, not yet validated.
type RawRing = Vec<[f64; 2]>;
/// One polygon as read: exterior ring first, then holes.
type RawPolygon = Vec<RawRing>;

/// The EEA39 tile grid: `<tile>\t<WKT polygon>` lines.
const EEA39_TILES_TSV: &str = include_str!("../../data/eea39_tiles.tsv");
/// The EEA39 mountain tiles, one per line.
const EEA39_MOUNTAIN_TILES: &str = include_str!("../../data/eea39_tiles_mountains.txt");
/// The EEA39 tiles outside the original's RLIE zone, one per line.
const EEA39_NO_RLIE_TILES: &str = include_str!("../../data/eea39_no_rlie_tiles.txt");

/// Overlaps smaller than this many square degrees (about 100 m² at European latitudes) count as
/// touching, not overlapping: they are numerical noise along shared edges, not data.
pub const MIN_OVERLAP_AREA: f64 = 1e-8;

/// Why a footprint, a tile grid or a tile selection was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AoiError {
    /// The WKT text is malformed.
    #[error("invalid WKT at character {position}: {reason}")]
    Wkt {
        /// 0-based character offset in the text as given.
        position: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The GeoJSON value is malformed.
    #[error("invalid GeoJSON geometry: {reason}")]
    GeoJson {
        /// What is wrong, starting with the JSON path (`coordinates[0][3]`) where there is one.
        reason: String,
    },
    /// A well-formed geometry of a type other than polygon or multipolygon.
    #[error(
        "unsupported geometry type \"{kind}\": a footprint must be a Polygon or a MultiPolygon"
    )]
    UnsupportedGeometry {
        /// The geometry type as given (`POINT`, `LineString`, ...).
        kind: String,
    },
    /// A coordinate is not a finite WGS84 longitude/latitude.
    #[error("invalid coordinate at {location}: {reason}")]
    Coordinate {
        /// Where: `polygon 1, ring 1 (exterior), point 3` (1-based).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A ring is too short or not closed.
    #[error("invalid ring at {location}: {reason}")]
    Ring {
        /// Where: `polygon 1, ring 2 (hole 1)` (1-based).
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of a tile grid file is wrong.
    #[error("tile grid line {line}: {reason}")]
    TsvLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// Tile ids that are not in the grid.
    #[error("unknown tile id(s), not in the tile grid: {}", .tiles.join(", "))]
    UnknownTiles {
        /// The unknown ids, sorted and without duplicates.
        tiles: Vec<String>,
    },
}

/// A product footprint in WGS84 lon/lat degrees: one or more polygons, possibly with holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    shape: MultiPolygon<f64>,
    /// Bounding box of `shape`, for cheap pre-filters.
    bbox: Rect<f64>,
}

impl Footprint {
    /// From a GeoJSON geometry object (Polygon or MultiPolygon), as OData `GeoFootprint` and STAC
    /// `geometry` give it. A `Feature` is accepted and its `geometry` used; altitudes are dropped.
    pub fn from_geojson(value: &serde_json::Value) -> Result<Footprint, AoiError> {
        Self::from_raw(geojson::parse(value)?)
    }

    /// From WKT (`POLYGON`, `MULTIPOLYGON`, optionally `Z`/`M`/`ZM`, whose extra ordinates are dropped),
    /// also accepting EWKT (`SRID=4326;POLYGON (...)`) and the OData `Footprint` form
    /// `geography'SRID=4326;POLYGON ((...))'`. Keywords are case-insensitive; an SRID other than 4326
    /// is rejected.
    pub fn from_wkt(text: &str) -> Result<Footprint, AoiError> {
        Self::from_raw(wkt::parse(text)?)
    }

    /// The polygons, in lon/lat degrees (antimeridian-crossing polygons shifted as the module doc says).
    pub fn multi_polygon(&self) -> &MultiPolygon<f64> {
        &self.shape
    }

    /// The bounding box in lon/lat degrees.
    pub fn bounding_rect(&self) -> Rect<f64> {
        self.bbox
    }

    /// Area-based similarity in [0, 1]: the area of the intersection over the area of the union
    /// (computed in square degrees). Identical footprints give 1.0 (even degenerate ones), footprints
    /// that are disjoint or only touch give 0.0. Used to tell two versions of one product (same
    /// footprint, similarity close to 1) from two partial-tile products of one datatake (different
    /// footprints). Never panics.
    pub fn similarity(&self, other: &Footprint) -> f64 {
        if self.shape == other.shape {
            return 1.0;
        }
        if !boxes_overlap(&self.bbox, &other.bbox) {
            return 0.0;
        }
        let exact = guarded(|| {
            let intersection = self.shape.intersection(&other.shape).unsigned_area();
            let union = self.shape.union(&other.shape).unsigned_area();
            (intersection, union)
        });
        let (intersection, union) = match exact {
            Some((i, u)) if i.is_finite() && u.is_finite() => (i, u),
            // The overlay failed: fall back on the bounding boxes, the best cheap estimate.
            _ => {
                let i = box_overlap_area(&self.bbox, &other.bbox);
                (i, box_area(&self.bbox) + box_area(&other.bbox) - i)
            }
        };
        if union > 0.0 {
            (intersection / union).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Overlap area with `other` in square degrees; `None` if the overlay failed.
    fn overlap_area(&self, other: &Footprint) -> Option<f64> {
        if !boxes_overlap(&self.bbox, &other.bbox) {
            return Some(0.0);
        }
        guarded(|| self.shape.intersection(&other.shape).unsigned_area()).filter(|a| a.is_finite())
    }

    /// Validates raw polygons and builds the footprint.
    fn from_raw(polygons: Vec<RawPolygon>) -> Result<Footprint, AoiError> {
        if polygons.is_empty() {
            return Err(AoiError::Ring {
                location: "the geometry".into(),
                reason: "it has no polygon".into(),
            });
        }
        let mut shape = Vec::with_capacity(polygons.len());
        for (p, mut rings) in polygons.into_iter().enumerate() {
            for (r, ring) in rings.iter().enumerate() {
                validate_ring(ring, p, r)?;
            }
            let crosses_antimeridian = rings
                .iter()
                .any(|ring| ring.windows(2).any(|w| (w[1][0] - w[0][0]).abs() > 180.0));
            if crosses_antimeridian {
                for point in rings.iter_mut().flatten() {
                    if point[0] < 0.0 {
                        point[0] += 360.0;
                    }
                }
            }
            let mut rings = rings
                .into_iter()
                .map(|ring| LineString(ring.into_iter().map(|[x, y]| Coord { x, y }).collect()));
            // `validate_ring` ran on every ring and `from_raw` callers never give a polygon without
            // rings, but stay total: a polygon without rings is simply empty.
            let exterior = rings.next().unwrap_or_else(|| LineString(Vec::new()));
            shape.push(Polygon::new(exterior, rings.collect()));
        }
        let shape = MultiPolygon(shape);
        let Some(bbox) = shape.bounding_rect() else {
            return Err(AoiError::Ring {
                location: "the geometry".into(),
                reason: "it has no point".into(),
            });
        };
        Ok(Footprint { shape, bbox })
    }
}

/// Checks the coordinates, length and closure of ring `r` of polygon `p` (0-based).
fn validate_ring(ring: &[[f64; 2]], p: usize, r: usize) -> Result<(), AoiError> {
    let ring_name = if r == 0 {
        format!("polygon {}, ring 1 (exterior)", p + 1)
    } else {
        format!("polygon {}, ring {} (hole {r})", p + 1, r + 1)
    };
    for (i, &[lon, lat]) in ring.iter().enumerate() {
        let reason = if !lon.is_finite() {
            Some(format!("longitude {lon} is not a finite number"))
        } else if !lat.is_finite() {
            Some(format!("latitude {lat} is not a finite number"))
        } else if !(-180.0..=180.0).contains(&lon) {
            Some(format!(
                "longitude {lon} is outside [-180, 180] (is it lon/lat in degrees?)"
            ))
        } else if !(-90.0..=90.0).contains(&lat) {
            Some(format!(
                "latitude {lat} is outside [-90, 90] (are lon and lat swapped?)"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(AoiError::Coordinate {
                location: format!("{ring_name}, point {}", i + 1),
                reason,
            });
        }
    }
    if ring.len() < 4 {
        return Err(AoiError::Ring {
            location: ring_name,
            reason: format!(
                "it has {} point(s); a closed ring needs at least 4 (the last repeating the first)",
                ring.len()
            ),
        });
    }
    let (first, last) = (ring[0], ring[ring.len() - 1]);
    if first != last {
        return Err(AoiError::Ring {
            location: ring_name,
            reason: format!(
                "it is not closed: the first point ({} {}) differs from the last ({} {})",
                first[0], first[1], last[0], last[1]
            ),
        });
    }
    Ok(())
}

/// Runs a polygon overlay, turning a panic in it into `None`.
fn guarded<T>(overlay: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(overlay)).ok()
}

/// The boxes overlap with a non-zero area (touching edges do not count).
fn boxes_overlap(a: &Rect<f64>, b: &Rect<f64>) -> bool {
    a.min().x < b.max().x && b.min().x < a.max().x && a.min().y < b.max().y && b.min().y < a.max().y
}

fn box_area(a: &Rect<f64>) -> f64 {
    a.width() * a.height()
}

fn box_overlap_area(a: &Rect<f64>, b: &Rect<f64>) -> f64 {
    let width = a.max().x.min(b.max().x) - a.min().x.max(b.min().x);
    let height = a.max().y.min(b.max().y) - a.min().y.max(b.min().y);
    width.max(0.0) * height.max(0.0)
}

/// One tile of a [`TileGrid`].
#[derive(Debug, Clone)]
struct Tile {
    id: String,
    footprint: Footprint,
}

/// Sentinel-2 tiles: tile id (`32TLR`, upper case, without the `T` prefix) -> WGS84 footprint polygon,
/// with its bounding box as a fast pre-filter. Tiles are kept sorted by id.
#[derive(Debug, Clone)]
pub struct TileGrid {
    tiles: Vec<Tile>,
}

impl TileGrid {
    /// The 1054 EEA39 tiles of the original system, parsed once from the embedded
    /// `data/eea39_tiles.tsv` (std::sync::OnceLock).
    pub fn eea39() -> &'static TileGrid {
        static GRID: OnceLock<TileGrid> = OnceLock::new();
        GRID.get_or_init(|| {
            TileGrid::from_tsv(EEA39_TILES_TSV)
                .expect("the embedded EEA39 tile grid is valid (checked by the aoi tests)")
        })
    }

    /// Parses `<tile>\t<WKT>` lines (blank lines and lines starting with `#` ignored). The tile id must
    /// be a valid upper-case MGRS id without the `T` prefix, the WKT a polygon or multipolygon (see
    /// [`Footprint::from_wkt`]); a tile listed twice is an error. Errors name the line number and what
    /// is wrong.
    pub fn from_tsv(text: &str) -> Result<TileGrid, AoiError> {
        let mut tiles: BTreeMap<String, (usize, Footprint)> = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line_error = |reason: String| AoiError::TsvLine {
                line: number,
                reason,
            };
            let Some((id, wkt)) = trimmed.split_once('\t') else {
                return Err(line_error(format!(
                    "expected \"<tile>\\t<WKT polygon>\", found no tab in \"{}\"",
                    shorten(trimmed)
                )));
            };
            let id = id.trim();
            TileId::parse_upper(id).map_err(|reason| {
                line_error(format!("tile id \"{}\" is invalid: {reason}", shorten(id)))
            })?;
            let footprint = Footprint::from_wkt(wkt)
                .map_err(|error| line_error(format!("tile {id}: {error}")))?;
            if let Some((first, _)) = tiles.get(id) {
                return Err(line_error(format!(
                    "tile {id} is listed twice (first on line {first})"
                )));
            }
            tiles.insert(id.to_owned(), (number, footprint));
        }
        Ok(TileGrid {
            tiles: tiles
                .into_iter()
                .map(|(id, (_, footprint))| Tile { id, footprint })
                .collect(),
        })
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// The grid has no tile.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The grid holds `tile` (an upper-case id without the `T` prefix: `32TLR`).
    pub fn contains(&self, tile: &str) -> bool {
        self.find(tile).is_some()
    }

    /// The tile ids, sorted.
    pub fn tile_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.tiles.iter().map(|tile| tile.id.as_str())
    }

    /// The footprint of `tile`, if the grid holds it.
    pub fn tile_footprint(&self, tile: &str) -> Option<&Footprint> {
        self.find(tile).map(|tile| &tile.footprint)
    }

    /// A grid limited to `tiles` (duplicates allowed); unknown tile ids are an
    /// [`AoiError::UnknownTiles`] error listing them all (never silently dropped).
    pub fn restrict<'a>(
        &self,
        tiles: impl IntoIterator<Item = &'a str>,
    ) -> Result<TileGrid, AoiError> {
        let wanted: BTreeSet<&str> = tiles.into_iter().collect();
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|id| !self.contains(id))
            .map(|id| (*id).to_owned())
            .collect();
        if !unknown.is_empty() {
            return Err(AoiError::UnknownTiles { tiles: unknown });
        }
        Ok(TileGrid {
            tiles: self
                .tiles
                .iter()
                .filter(|tile| wanted.contains(tile.id.as_str()))
                .cloned()
                .collect(),
        })
    }

    /// Tiles whose footprint overlaps `footprint` with a non-zero area (more than
    /// [`MIN_OVERLAP_AREA`]; touching edges or corners only does NOT count), sorted. Only tiles whose
    /// bounding box overlaps the footprint's get the polygon test. Never panics: should the polygon
    /// overlay fail, a tile whose bounding box overlaps is kept (a spare tile is better than a gap).
    pub fn tiles_intersecting(&self, footprint: &Footprint) -> Vec<String> {
        self.tiles
            .iter()
            .filter(|tile| boxes_overlap(&tile.footprint.bbox, &footprint.bbox))
            .filter(|tile| {
                tile.footprint
                    .overlap_area(footprint)
                    .is_none_or(|area| area > MIN_OVERLAP_AREA)
            })
            .map(|tile| tile.id.clone())
            .collect()
    }

    /// `[west, south, east, north]` around every tile of the grid (to narrow catalogue queries);
    /// `None` for an empty grid.
    pub fn bounding_box(&self) -> Option<[f64; 4]> {
        self.tiles
            .iter()
            .map(|tile| tile.footprint.bounding_rect())
            .fold(None, |acc, r| {
                let (min, max) = (r.min(), r.max());
                Some(match acc {
                    None => [min.x, min.y, max.x, max.y],
                    Some([w, s, e, n]) => [w.min(min.x), s.min(min.y), e.max(max.x), n.max(max.y)],
                })
            })
    }

    fn find(&self, tile: &str) -> Option<&Tile> {
        self.tiles
            .binary_search_by(|candidate| candidate.id.as_str().cmp(tile))
            .ok()
            .map(|index| &self.tiles[index])
    }
}

/// The 165 mountain tiles of the original system (its SWS product), sorted.
pub fn eea39_mountain_tiles() -> &'static BTreeSet<String> {
    static TILES: OnceLock<BTreeSet<String>> = OnceLock::new();
    TILES.get_or_init(|| tile_list(EEA39_MOUNTAIN_TILES))
}

/// The 54 EEA39 tiles the original system excluded from its RLIE zone, sorted.
pub fn eea39_no_rlie_tiles() -> &'static BTreeSet<String> {
    static TILES: OnceLock<BTreeSet<String>> = OnceLock::new();
    TILES.get_or_init(|| tile_list(EEA39_NO_RLIE_TILES))
}

fn tile_list(text: &str) -> BTreeSet<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// At most about 60 characters of `text`, for error messages.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_owned()
    } else {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    }
}

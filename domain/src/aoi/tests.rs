use serde_json::{json, Value};

use super::*;

// Real catalogue footprints, copied from the project's sample responses (see samples/README.md).
/// OData `Footprint` of S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505 (CDSE sample page,
/// CS-SI/eodag `tests/resources/provider_responses/cop_dataspace_search.json`).
const T54PXA_FOOTPRINT: &str = r#"geography'SRID=4326;POLYGON ((142.352793016856 13.4758743606673, 142.93808729126 13.4725397858819, 142.943807935726 14.1549924740072, 142.868144796226 14.1681783641449, 142.748216577451 14.188872888287, 142.747832497916 14.1871587710285, 142.747263756579 14.1872557868336, 142.746945783679 14.1858362954077, 142.746355084435 14.1859379262979, 142.746229959765 14.1853795743214, 142.743302417962 14.185887221018, 142.743235368927 14.1855879174864, 142.742939602724 14.1856392590067, 142.742844657888 14.1852153557067, 142.519895810811 14.2240507608538, 142.486817597097 14.0760775401013, 142.453627237633 13.9276087855627, 142.420466382592 13.7791902992501, 142.387323732134 13.6307694478443, 142.354223889733 13.4822991873978, 142.352793016856 13.4758743606673))'"#;
/// OData `GeoFootprint` of the same product.
const T54PXA_GEOFOOTPRINT: &str = r#"{"type":"Polygon","coordinates":[[[142.352793016856,13.4758743606673],[142.93808729126,13.4725397858819],[142.943807935726,14.1549924740072],[142.868144796226,14.1681783641449],[142.748216577451,14.188872888287],[142.747832497916,14.1871587710285],[142.747263756579,14.1872557868336],[142.746945783679,14.1858362954077],[142.746355084435,14.1859379262979],[142.746229959765,14.1853795743214],[142.743302417962,14.185887221018],[142.743235368927,14.1855879174864],[142.742939602724,14.1856392590067],[142.742844657888,14.1852153557067],[142.519895810811,14.2240507608538],[142.486817597097,14.0760775401013],[142.453627237633,13.9276087855627],[142.420466382592,13.7791902992501],[142.387323732134,13.6307694478443],[142.354223889733,13.4822991873978],[142.352793016856,13.4758743606673]]]}"#;
/// OData `GeoFootprint` of the second product of the page, S2A_MSIL1C_20200808T010311_N0500_R045_T55PBR_20230413T212505.
const T55PBR_GEOFOOTPRINT: &str = r#"{"type":"Polygon","coordinates":[[[144.930135027789,13.708571807013],[144.721464947477,13.7620465257683],[144.721770328083,13.7633598823054],[144.721590241206,13.7634063648603],[144.721638382522,13.7636134276059],[144.721526233854,13.763642426742],[144.721645879668,13.7641568928793],[144.721378395336,13.7642262794845],[144.721472161336,13.7646295566953],[144.721319838378,13.7646691418839],[144.721377520474,13.7649172485119],[144.721205852596,13.7649619442394],[144.721478478993,13.7661344141856],[144.492905227908,13.8243789838542],[144.492231421816,13.821469866976],[144.490350421544,13.8219205434263],[144.490288861289,13.8216546303405],[144.49014766755,13.8216883990298],[144.490143521408,13.8216704931033],[144.411961490095,13.8403878453248],[144.286504281097,13.8703928976035],[144.286510909326,13.8704216352794],[144.286425298897,13.8704421310447],[144.286936309029,13.8726572074124],[144.286923627107,13.8726602683451],[144.286954486422,13.8727940542476],[144.286869635101,13.8728145561844],[144.287180779271,13.8741632677061],[144.223982014847,13.8889562682375],[144.229065165606,13.4647335417524],[145.127285079199,13.4728293440184],[145.133169854513,13.4979458722985],[145.167825841731,13.6458169040473],[144.932647547987,13.7107719881209],[144.932074608622,13.7083385739848],[144.930476782899,13.7087487608477],[144.930449761553,13.7086339433529],[144.930166698537,13.7087063508662],[144.930135027789,13.708571807013]]]}"#;
/// STAC `geometry` of S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505 (eu-cdse/eometadatatool example).
const T51CVP_GEOMETRY: &str = r#"{"type":"Polygon","coordinates":[[[121.04339849225111,-77.46022156584964],[120.80432288890044,-77.53173336589107],[120.39393144038942,-77.65189642694001],[119.9760851172192,-77.77155646066261],[119.55030029830104,-77.89069851837468],[119.11682887892472,-78.0093638613966],[118.67512320639769,-78.12734991268908],[118.63013704849264,-78.1390609167403],[118.87405955616737,-77.44526810077394],[121.04339849225111,-77.46022156584964]]]}"#;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn wkt(text: &str) -> Footprint {
    Footprint::from_wkt(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// A quadrilateral footprint from 4 corners.
fn quad(corners: [(f64, f64); 4]) -> Footprint {
    let points: Vec<String> = corners
        .iter()
        .chain(std::iter::once(&corners[0]))
        .map(|(x, y)| format!("{x} {y}"))
        .collect();
    wkt(&format!("POLYGON (({}))", points.join(", ")))
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Exterior ring of a single-polygon footprint, without the closing point.
fn corners(footprint: &Footprint) -> Vec<(f64, f64)> {
    let ring = &footprint.multi_polygon().0[0].exterior().0;
    ring[..ring.len() - 1].iter().map(|c| (c.x, c.y)).collect()
}

// --- An independent oracle: Sutherland-Hodgman clipping, exact for convex polygons. ---

fn signed_area(points: &[(f64, f64)]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum::<f64>()
        / 2.0
}

fn convex_overlap_area(subject: &[(f64, f64)], clip: &[(f64, f64)]) -> f64 {
    let mut clip = clip.to_vec();
    if signed_area(&clip) < 0.0 {
        clip.reverse();
    }
    let mut output = subject.to_vec();
    for i in 0..clip.len() {
        let (a, b) = (clip[i], clip[(i + 1) % clip.len()]);
        let side = |p: (f64, f64)| (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
        let cross = |p: (f64, f64), q: (f64, f64)| {
            let t = side(p) / (side(p) - side(q));
            (p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1))
        };
        let input = std::mem::take(&mut output);
        for j in 0..input.len() {
            let (p, q) = (input[j], input[(j + 1) % input.len()]);
            match (side(p) >= 0.0, side(q) >= 0.0) {
                (true, true) => output.push(q),
                (true, false) => output.push(cross(p, q)),
                (false, true) => {
                    output.push(cross(p, q));
                    output.push(q);
                }
                (false, false) => {}
            }
        }
        if output.is_empty() {
            return 0.0;
        }
    }
    signed_area(&output).abs()
}

/// The EEA39 tiles that the oracle says overlap a convex footprint.
fn oracle_tiles(footprint: &Footprint) -> Vec<String> {
    let subject = corners(footprint);
    let grid = TileGrid::eea39();
    grid.tile_ids()
        .filter(|id| {
            let tile = corners(grid.tile_footprint(id).unwrap());
            convex_overlap_area(&subject, &tile) > MIN_OVERLAP_AREA
        })
        .map(str::to_owned)
        .collect()
}

// --- The embedded data. ---

#[test]
fn embedded_grid_has_the_original_tiles() {
    let grid = TileGrid::eea39();
    assert_eq!(grid.len(), 1054);
    assert!(!grid.is_empty());
    let ids: Vec<&str> = grid.tile_ids().collect();
    assert_eq!(ids.first(), Some(&"25SFD"));
    assert_eq!(ids.last(), Some(&"38TMK"));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    assert!(grid.contains("32TLR"));
    assert!(!grid.contains("54PXA"));
    assert!(!grid.contains("T32TLR"), "ids have no T prefix");
    assert!(!grid.contains("32tlr"), "ids are upper case");
    assert!(grid.tile_footprint("32TLR").is_some());
    assert!(grid.tile_footprint("54PXA").is_none());
    // From the Azores to the Caucasus, from the Canaries to the North Cape.
    let [w, s, e, n] = grid.bounding_box().unwrap();
    assert!(
        w < -31.0 && e > 44.0 && s < 28.5 && n > 71.0,
        "{:?}",
        [w, s, e, n]
    );
    assert!(grid.restrict(["32TLR"]).unwrap().bounding_box().unwrap()[0] > 6.0);
    assert!(grid
        .restrict(Vec::<&str>::new())
        .unwrap()
        .bounding_box()
        .is_none());
    // Every tile is a quadrilateral of roughly 110 km x 110 km.
    for id in grid.tile_ids() {
        let footprint = grid.tile_footprint(id).unwrap();
        assert_eq!(corners(footprint).len(), 4, "{id}");
        let bbox = footprint.bounding_rect();
        assert!(bbox.height() > 0.9 && bbox.height() < 1.1, "{id}: {bbox:?}");
    }
}

#[test]
fn embedded_tile_lists() {
    let grid = TileGrid::eea39();
    let mountains = eea39_mountain_tiles();
    let no_rlie = eea39_no_rlie_tiles();
    assert_eq!(mountains.len(), 165);
    assert_eq!(no_rlie.len(), 54);
    for tile in mountains.iter().chain(no_rlie) {
        assert!(grid.contains(tile), "{tile} is not in the EEA39 grid");
    }
    assert!(mountains.contains("32TLR"));
    assert!(no_rlie.contains("26SLJ") && no_rlie.contains("38SMF"));
    // The original data files have one id per line, no blank or stray lines.
    assert_eq!(EEA39_MOUNTAIN_TILES.lines().count(), 165);
    assert_eq!(EEA39_NO_RLIE_TILES.lines().count(), 54);
    assert_eq!(EEA39_TILES_TSV.lines().count(), 1054);
}

// --- tiles_intersecting ---

#[test]
fn a_tile_intersects_itself_and_its_overlapping_neighbours() {
    let grid = TileGrid::eea39();
    let tile = grid.tile_footprint("32TLR").unwrap().clone();
    let found = grid.tiles_intersecting(&tile);
    assert_eq!(
        found,
        strings(&["31TGK", "31TGL", "31TGM", "32TLQ", "32TLR", "32TLS", "32TMQ", "32TMR", "32TMS"])
    );
    assert_eq!(found, oracle_tiles(&tile));
}

#[test]
fn a_footprint_in_the_pacific_intersects_nothing() {
    let footprint = Footprint::from_geojson(&json(T54PXA_GEOFOOTPRINT)).unwrap();
    assert!(TileGrid::eea39().tiles_intersecting(&footprint).is_empty());
    let footprint = Footprint::from_wkt(T54PXA_FOOTPRINT).unwrap();
    assert!(TileGrid::eea39().tiles_intersecting(&footprint).is_empty());
}

#[test]
fn a_sentinel1_swath_over_the_alps() {
    // An IW GRD-like swath: ~250 km across, ~170 km along track, tilted like an ascending pass.
    let swath = quad([(6.25, 45.25), (9.45, 44.9), (9.9, 46.45), (6.6, 46.8)]);
    let grid = TileGrid::eea39();
    let found = grid.tiles_intersecting(&swath);
    assert_eq!(
        found,
        strings(&[
            "31TGL", "31TGM", "32TLQ", "32TLR", "32TLS", "32TMQ", "32TMR", "32TMS", "32TNQ",
            "32TNR", "32TNS"
        ])
    );
    assert_eq!(found, oracle_tiles(&swath));
    // Just outside: their bounding boxes overlap the swath's, their polygons do not.
    for outside in ["31TGK", "31TGN"] {
        let tile = grid.tile_footprint(outside).unwrap();
        assert!(boxes_overlap(&tile.bounding_rect(), &swath.bounding_rect()));
        assert!(!found.contains(&outside.to_owned()));
    }
}

#[test]
fn more_footprints_agree_with_the_oracle() {
    let footprints = [
        // Small, inside one tile's interior but in the overlap of several tiles.
        quad([(7.75, 45.95), (7.8, 45.95), (7.8, 46.0), (7.75, 46.0)]),
        // A long thin strip across Scandinavia.
        quad([(5.0, 60.0), (30.0, 60.5), (30.0, 60.6), (5.0, 60.1)]),
        // Iberia to the Azores.
        quad([(-31.0, 38.0), (-5.0, 37.0), (-4.0, 40.0), (-30.0, 41.0)]),
    ];
    for footprint in &footprints {
        let found = TileGrid::eea39().tiles_intersecting(footprint);
        assert!(!found.is_empty());
        assert_eq!(found, oracle_tiles(footprint), "{footprint:?}");
    }
}

#[test]
fn touching_an_edge_or_a_corner_does_not_count() {
    // Synthetic: the triangles share the diagonal, so their bounding boxes overlap fully.
    let grid = TileGrid::from_tsv(
        "31UAA\tPOLYGON ((0 0, 2 0, 0 2, 0 0))\n32UAA\tPOLYGON ((10 10, 11 10, 11 11, 10 11, 10 10))\n",
    )
    .unwrap();
    let other_half = wkt("POLYGON ((2 0, 2 2, 0 2, 2 0))");
    assert!(grid.tiles_intersecting(&other_half).is_empty());
    let corner = wkt("POLYGON ((11 11, 12 11, 12 12, 11 12, 11 11))");
    assert!(grid.tiles_intersecting(&corner).is_empty());
    let overlapping = wkt("POLYGON ((1.9 0, 2 2, 0 2, 1.9 0))");
    assert_eq!(grid.tiles_intersecting(&overlapping), strings(&["31UAA"]));

    // Real: a footprint built outward from the east edge of 32TLR, in the middle of its neighbours.
    let eea39 = TileGrid::eea39();
    let tile = corners(eea39.tile_footprint("32TLR").unwrap());
    // Corners of 32TLR in WKT order: NW, SW, SE, NE.
    let (south_east, north_east) = (tile[2], tile[3]);
    let beyond = |p: (f64, f64)| (p.0 + 0.5, p.1);
    let east = quad([
        south_east,
        beyond(south_east),
        beyond(north_east),
        north_east,
    ]);
    let found = eea39.tiles_intersecting(&east);
    assert!(!found.contains(&"32TLR".to_owned()), "{found:?}");
    assert!(found.contains(&"32TMR".to_owned()), "{found:?}");
    // The same footprint moved 0.01 degree west overlaps 32TLR.
    let shift = |p: (f64, f64)| (p.0 - 0.01, p.1);
    let west = quad([
        shift(south_east),
        shift(beyond(south_east)),
        shift(beyond(north_east)),
        shift(north_east),
    ]);
    assert!(eea39
        .tiles_intersecting(&west)
        .contains(&"32TLR".to_owned()));
}

#[test]
fn antimeridian_crossing_footprints_stay_compact() {
    // Around the antimeridian at Iceland's latitude: read naively, it would span all longitudes.
    let footprint = wkt("POLYGON ((170 64, -170 64, -170 66, 170 66, 170 64))");
    let bbox = footprint.bounding_rect();
    assert_eq!((bbox.min().x, bbox.max().x), (170.0, 190.0));
    assert!(TileGrid::eea39().tiles_intersecting(&footprint).is_empty());
}

#[test]
fn degenerate_footprints_do_not_panic() {
    let grid = TileGrid::eea39();
    let line = wkt("POLYGON ((7 45.5, 8 45.5, 9 45.5, 7 45.5))");
    assert!(grid.tiles_intersecting(&line).is_empty());
    let point = wkt("POLYGON ((7 45.5, 7 45.5, 7 45.5, 7 45.5))");
    assert!(grid.tiles_intersecting(&point).is_empty());
    assert_eq!(line.similarity(&point), 0.0);
    assert_eq!(line.similarity(&line.clone()), 1.0);
    // Zero area, but a bounding box that overlaps tiles: it goes through the polygon overlay.
    let diagonal = wkt("POLYGON ((7 45.2, 8 45.8, 7.5 45.5, 7 45.2))");
    assert!(grid.tiles_intersecting(&diagonal).is_empty());
    let other_diagonal = wkt("POLYGON ((7 45.2, 8 45.8, 7.6 45.56, 7 45.2))");
    assert_eq!(diagonal.similarity(&other_diagonal), 0.0);
    let square = quad([(7.0, 45.0), (8.0, 45.0), (8.0, 46.0), (7.0, 46.0)]);
    assert_eq!(diagonal.similarity(&square), 0.0);
    // A self-intersecting bow tie and a hole touching its exterior.
    let bow_tie = wkt("POLYGON ((7 45, 8 46, 8 45, 7 46, 7 45))");
    let found = grid.tiles_intersecting(&bow_tie);
    assert!(found.contains(&"32TLR".to_owned()), "{found:?}");
    let similarity =
        bow_tie.similarity(&quad([(7.0, 45.0), (8.0, 45.0), (8.0, 46.0), (7.0, 46.0)]));
    assert!((0.0..=1.0).contains(&similarity));
    let odd_hole = wkt("POLYGON ((7 45, 8 45, 8 46, 7 46, 7 45), (7 45, 7.5 45.5, 7.5 45, 7 45))");
    assert!(grid
        .tiles_intersecting(&odd_hole)
        .contains(&"32TLR".to_owned()));
}

// --- Parsing and similarity ---

#[test]
fn odata_footprint_and_geofootprint_agree() {
    let text = T54PXA_FOOTPRINT;
    assert!(text.starts_with("geography'SRID=4326;POLYGON (("));
    let from_wkt = Footprint::from_wkt(text).unwrap();
    let from_geojson = Footprint::from_geojson(&json(T54PXA_GEOFOOTPRINT)).unwrap();
    assert_eq!(from_wkt, from_geojson);
    assert_eq!(from_wkt.similarity(&from_geojson), 1.0);
    assert_eq!(from_wkt.multi_polygon().0.len(), 1);
    assert_eq!(from_wkt.multi_polygon().0[0].exterior().0.len(), 21);
    let bbox = from_wkt.bounding_rect();
    assert!((bbox.min().x - 142.352793016856).abs() < 1e-12);
    assert!((bbox.max().y - 14.2240507608538).abs() < 1e-12);

    // The same footprint slightly moved (a reprocessed version) is still very similar.
    let mut moved = json(T54PXA_GEOFOOTPRINT);
    for point in moved["coordinates"][0].as_array_mut().unwrap() {
        let lon = point[0].as_f64().unwrap();
        point[0] = json!(lon + 0.002);
    }
    let moved = Footprint::from_geojson(&moved).unwrap();
    let similarity = from_wkt.similarity(&moved);
    assert!(similarity > 0.99 && similarity < 1.0, "{similarity}");
    assert!((similarity - moved.similarity(&from_wkt)).abs() < 1e-9);
}

#[test]
fn stac_geometry_and_a_feature() {
    let geometry = json(T51CVP_GEOMETRY);
    let from_geometry = Footprint::from_geojson(&geometry).unwrap();
    let item = json!({"type": "Feature", "id": "x", "properties": {}, "geometry": geometry});
    let from_feature = Footprint::from_geojson(&item).unwrap();
    assert_eq!(from_geometry, from_feature);
    assert!(TileGrid::eea39()
        .tiles_intersecting(&from_geometry)
        .is_empty());
}

#[test]
fn similarity_of_different_footprints() {
    let square = quad([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]);
    assert_eq!(square.similarity(&square.clone()), 1.0);
    // Two partial products of one datatake: overlapping a little.
    let shifted = quad([(0.6, 0.0), (1.6, 0.0), (1.6, 1.0), (0.6, 1.0)]);
    let similarity = square.similarity(&shifted);
    assert!((similarity - 0.25).abs() < 1e-6, "{similarity}");
    assert!(similarity < 0.5);
    // Disjoint, and touching along an edge.
    let far = quad([(5.0, 5.0), (6.0, 5.0), (6.0, 6.0), (5.0, 6.0)]);
    assert_eq!(square.similarity(&far), 0.0);
    let neighbour = quad([(1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (1.0, 1.0)]);
    assert!(square.similarity(&neighbour) < 1e-9);
    // The two products of the OData sample are far apart.
    let a = Footprint::from_geojson(&json(T54PXA_GEOFOOTPRINT)).unwrap();
    let b = Footprint::from_geojson(&json(T55PBR_GEOFOOTPRINT)).unwrap();
    assert_eq!(a.similarity(&b), 0.0);
    // A hole counts: the square without its central quarter.
    let holed = wkt(
        "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0), (0.25 0.25, 0.25 0.75, 0.75 0.75, 0.75 0.25, 0.25 0.25))",
    );
    let similarity = square.similarity(&holed);
    assert!((similarity - 0.75).abs() < 1e-6, "{similarity}");
}

#[test]
fn wkt_forms() {
    let plain = wkt("POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))");
    for text in [
        "polygon((0 0,1 0,1 1,0 1,0 0))",
        "  SRID=4326;POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))  ",
        "geography'SRID=4326;POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))'",
        "POLYGON Z ((0 0 5, 1 0 5, 1 1 5, 0 1 5, 0 0 5))",
        "POLYGON ((0e0 0.0, 1 -0, +1 1, .0 1, 0 0))",
        "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 1, 0 0)))",
    ] {
        assert_eq!(wkt(text), plain, "{text}");
    }
    let multi = wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 1, 0 0)), ((2 2, 3 2, 3 3, 2 3, 2 2), (2.2 2.2, 2.8 2.2, 2.8 2.8, 2.2 2.2)))");
    assert_eq!(multi.multi_polygon().0.len(), 2);
    assert_eq!(multi.multi_polygon().0[1].interiors().len(), 1);
    let from_geojson = Footprint::from_geojson(&json!({
        "type": "MultiPolygon",
        "coordinates": [
            [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
            [[[2, 2], [3, 2], [3, 3], [2, 3], [2, 2]], [[2.2, 2.2], [2.8, 2.2], [2.8, 2.8], [2.2, 2.2]]]
        ]
    }))
    .unwrap();
    assert_eq!(from_geojson, multi);
}

fn wkt_error(text: &str) -> String {
    match Footprint::from_wkt(text) {
        Ok(footprint) => panic!("{text} was accepted: {footprint:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn bad_wkt_is_rejected_with_what_and_where() {
    let cases = [
        ("", "invalid WKT at character 0: the text is empty"),
        (
            "POINT (1 2)",
            "unsupported geometry type \"POINT\": a footprint must be a Polygon or a MultiPolygon",
        ),
        ("LINESTRING (0 0, 1 1)", "unsupported geometry type \"LINESTRING\""),
        ("POLYGON EMPTY", "invalid WKT at character 8: POLYGON EMPTY: an empty footprint is not accepted"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0)", "invalid WKT at character 34: expected ',' or ')' in the list of rings, found the end of the text"),
        ("POLYGON ((0 0, 1 0, 1 x, 0 1, 0 0))", "invalid WKT at character 22: expected a number, found \"x\""),
        ("POLYGON ((0 0, 1 0, 1 1.2.3, 0 1, 0 0))", "invalid WKT at character 22: \"1.2.3\" is not a valid number"),
        ("POLYGON ((0 0, 1 0, 1 NaN, 0 1, 0 0))", "expected a number, found \"NaN\""),
        ("POLYGON ((0 0, 1, 1 1, 0 1, 0 0))", "invalid WKT at character 16: a point needs a longitude and a latitude, found 1 number(s)"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0)) extra", "invalid WKT at character 36: unexpected \"extra\" after the end of the geometry"),
        ("POLYGON ((0 0; 1 0))", "invalid WKT at character 13: unexpected character ';'"),
        ("POLYGON (0 0, 1 0, 1 1, 0 1, 0 0)", "invalid WKT at character 9: expected '(' to open a ring, found the number 0"),
        ("SRID=3857;POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))", "invalid WKT at character 5: SRID 3857 is not supported"),
        ("geography'SRID=4326;POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))", "the geography'...' literal is not closed by a quote"),
        ("POLYGON ((0 0, 1 0, 1 1e999, 0 1, 0 0))", "invalid coordinate at polygon 1, ring 1 (exterior), point 3: latitude inf is not a finite number"),
        ("POLYGON ((0 0, 1 0, 1 91, 0 1, 0 0))", "invalid coordinate at polygon 1, ring 1 (exterior), point 3: latitude 91 is outside [-90, 90]"),
        ("POLYGON ((0 0, 1 0, 181 1, 0 1, 0 0))", "invalid coordinate at polygon 1, ring 1 (exterior), point 3: longitude 181 is outside [-180, 180]"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 1))", "invalid ring at polygon 1, ring 1 (exterior): it is not closed: the first point (0 0) differs from the last (0 1)"),
        ("POLYGON ((0 0, 1 0, 0 0))", "invalid ring at polygon 1, ring 1 (exterior): it has 3 point(s); a closed ring needs at least 4"),
        ("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((0 0, 1 0, 1 1, 0 0), (0.1 0.1, 0.2 0.1, 0.1 0.1)))", "invalid ring at polygon 2, ring 2 (hole 1): it has 3 point(s)"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0 1 2 3))", "a point has more than 4 ordinates"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0é))", "character 28: expected a number, found \"é\""),
        ("aéééééé'x'", "unsupported geometry type \"Aéééééé\""),
        ("géography'SRID=4326;POLYGON EMPTY'", "unsupported geometry type \"GéOGRAPHY\""),
    ];
    for (text, expected) in cases {
        let message = wkt_error(text);
        assert!(
            message.starts_with(expected) || message.contains(expected),
            "{text}:\n  got      {message}\n  expected {expected}"
        );
    }
}

#[test]
fn bad_geojson_is_rejected_with_what_and_where() {
    let cases = [
        (json!([1, 2]), "invalid GeoJSON geometry: expected a geometry object, found [1,2]"),
        (json!({"coordinates": []}), "the object has no \"type\" member"),
        (json!({"type": 3}), "\"type\" must be a string, found 3"),
        (json!({"type": "Point", "coordinates": [1, 2]}), "unsupported geometry type \"Point\""),
        (json!({"type": "GeometryCollection", "geometries": []}), "unsupported geometry type \"GeometryCollection\""),
        (json!({"type": "Feature", "geometry": null}), "the Feature has no geometry"),
        (json!({"type": "Polygon"}), "the Polygon has no \"coordinates\" member"),
        (json!({"type": "Polygon", "coordinates": []}), "coordinates: the polygon has no ring"),
        (json!({"type": "MultiPolygon", "coordinates": []}), "the MultiPolygon has no polygon"),
        (json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, "1"], [0, 0]]]}), "coordinates[0][2][1]: expected a number, found \"1\""),
        (json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 0]]]}), "coordinates[0][2]: a position needs 2 to 4 numbers"),
        (json!({"type": "Polygon", "coordinates": [[0, 0]]}), "coordinates[0][0]: expected an array, found 0"),
        (json!({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[0, 0], [1, 0], [1, -95], [0, 0]]]]}), "invalid coordinate at polygon 2, ring 1 (exterior), point 3: latitude -95 is outside [-90, 90]"),
        (json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}), "it is not closed"),
    ];
    for (value, expected) in cases {
        let message = match Footprint::from_geojson(&value) {
            Ok(footprint) => panic!("{value} was accepted: {footprint:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            message.contains(expected),
            "{value}:\n  got      {message}\n  expected {expected}"
        );
    }
}

// --- Grids from text, restrict ---

#[test]
fn from_tsv_and_restrict() {
    let text = "# a comment\n\n31UAA\tPOLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))\n  \n30UAA\tPOLYGON ((-1 0, 0 0, 0 1, -1 1, -1 0))\n";
    let grid = TileGrid::from_tsv(text).unwrap();
    assert_eq!(grid.tile_ids().collect::<Vec<_>>(), ["30UAA", "31UAA"]);
    let both = wkt("POLYGON ((-0.5 0, 0.5 0, 0.5 1, -0.5 1, -0.5 0))");
    assert_eq!(grid.tiles_intersecting(&both), strings(&["30UAA", "31UAA"]));

    let restricted = grid.restrict(["31UAA", "31UAA"]).unwrap();
    assert_eq!(restricted.tile_ids().collect::<Vec<_>>(), ["31UAA"]);
    assert_eq!(restricted.tiles_intersecting(&both), strings(&["31UAA"]));
    assert!(grid.restrict([]).unwrap().is_empty());

    let eea39 = TileGrid::eea39();
    let alps = eea39.restrict(["32TMS", "32TLR"]).unwrap();
    assert_eq!(alps.len(), 2);
    let error = eea39
        .restrict(["32TLR", "54PXA", "T32TMS", "54PXA"])
        .unwrap_err();
    assert_eq!(
        error,
        AoiError::UnknownTiles {
            tiles: strings(&["54PXA", "T32TMS"])
        }
    );
    assert_eq!(
        error.to_string(),
        "unknown tile id(s), not in the tile grid: 54PXA, T32TMS"
    );
}

#[test]
fn bad_tsv_lines_name_the_line() {
    let good = "31UAA\tPOLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))\n";
    let cases = [
        (
            format!("{good}31UAB POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))\n"),
            "tile grid line 2: expected \"<tile>\\t<WKT polygon>\", found no tab in \"31UAB POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))\"",
        ),
        (
            format!("{good}\n31uab\tPOLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))\n"),
            "tile grid line 3: tile id \"31uab\" is invalid: latitude band 'u' is not a valid MGRS band",
        ),
        (
            format!("# header\n{good}31UAB\tPOLYGON ((0 0, 1 0, 1 1, 0 1, 0 0)\n"),
            "tile grid line 3: tile 31UAB: invalid WKT at character 34: expected ',' or ')'",
        ),
        (
            format!("{good}31UAB\tPOLYGON ((0 0, 1 0, 1 95, 0 1, 0 0))\n"),
            "tile grid line 2: tile 31UAB: invalid coordinate at polygon 1, ring 1 (exterior), point 3: latitude 95",
        ),
        (
            format!("{good}{good}"),
            "tile grid line 2: tile 31UAA is listed twice (first on line 1)",
        ),
    ];
    for (text, expected) in cases {
        let message = match TileGrid::from_tsv(&text) {
            Ok(grid) => panic!("{text} was accepted: {grid:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            message.starts_with(expected),
            "{text}:\n  got      {message}\n  expected {expected}"
        );
    }
}

//! A small GeoJSON geometry reader: `Polygon` and `MultiPolygon` (with holes), as OData `GeoFootprint`
//! and STAC `geometry` give them. A `Feature` is unwrapped to its `geometry`. Positions may carry an
//! altitude (a third number), which is dropped.

use serde_json::Value;

use super::{AoiError, RawPolygon};

/// Parses a GeoJSON geometry into raw polygons (rings of `[lon, lat]` points), not yet validated.
pub(super) fn parse(value: &Value) -> Result<Vec<RawPolygon>, AoiError> {
    let Value::Object(object) = value else {
        return Err(error(format!(
            "expected a geometry object, found {}",
            describe(value)
        )));
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(error(format!(
                "\"type\" must be a string, found {}",
                describe(other)
            )))
        }
        None => return Err(error("the object has no \"type\" member".into())),
    };
    if kind == "Feature" {
        return match object.get("geometry") {
            Some(Value::Null) | None => Err(error("the Feature has no geometry".into())),
            Some(geometry) => parse(geometry),
        };
    }
    if kind != "Polygon" && kind != "MultiPolygon" {
        return Err(AoiError::UnsupportedGeometry { kind: kind.into() });
    }
    let Some(coordinates) = object.get("coordinates") else {
        return Err(error(format!("the {kind} has no \"coordinates\" member")));
    };
    if kind == "Polygon" {
        return Ok(vec![polygon(coordinates, "coordinates")?]);
    }
    let polygons = array(coordinates, "coordinates")?;
    if polygons.is_empty() {
        return Err(error(
            "coordinates: the MultiPolygon has no polygon (an empty footprint is not accepted)"
                .into(),
        ));
    }
    polygons
        .iter()
        .enumerate()
        .map(|(i, value)| polygon(value, &format!("coordinates[{i}]")))
        .collect()
}

fn polygon(value: &Value, path: &str) -> Result<RawPolygon, AoiError> {
    let rings = array(value, path)?;
    if rings.is_empty() {
        return Err(error(format!("{path}: the polygon has no ring")));
    }
    rings
        .iter()
        .enumerate()
        .map(|(r, ring)| {
            let ring_path = format!("{path}[{r}]");
            array(ring, &ring_path)?
                .iter()
                .enumerate()
                .map(|(p, position)| point(position, &format!("{ring_path}[{p}]")))
                .collect()
        })
        .collect()
}

fn point(value: &Value, path: &str) -> Result<[f64; 2], AoiError> {
    let numbers = array(value, path)?;
    let ordinate = |i: usize| {
        numbers[i].as_f64().ok_or_else(|| {
            error(format!(
                "{path}[{i}]: expected a number, found {}",
                describe(&numbers[i])
            ))
        })
    };
    match numbers.len() {
        2..=4 => Ok([ordinate(0)?, ordinate(1)?]),
        n => Err(error(format!(
            "{path}: a position needs 2 to 4 numbers ([lon, lat] or [lon, lat, alt]), found {n}"
        ))),
    }
}

fn array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, AoiError> {
    value.as_array().ok_or_else(|| {
        error(format!(
            "{path}: expected an array, found {}",
            describe(value)
        ))
    })
}

fn error(reason: String) -> AoiError {
    AoiError::GeoJson { reason }
}

/// A short description of a JSON value for error messages (at most about 60 characters).
fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    }
}

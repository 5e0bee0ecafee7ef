//! The checks a publication message must pass before it is sent, written from what the original's
//! consumer reads (`reference/original-system.md` §3.6): every field present, with its type. A
//! message that fails is never sent: its job is reported with the problems.

use serde_json::Value;

/// What a field must be.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Number,
    Date,
}

/// The properties of `resto.properties`, in the reference message's order.
const PROPERTIES: [(&str, Kind); 13] = [
    ("productIdentifier", Kind::Text),
    ("title", Kind::Text),
    ("resourceSize", Kind::Number),
    ("organisationName", Kind::Text),
    ("startDate", Kind::Date),
    ("completionDate", Kind::Date),
    ("productType", Kind::Text),
    ("resolution", Kind::Number),
    ("mission", Kind::Text),
    ("processingBaseline", Kind::Text),
    ("host_base", Kind::Text),
    ("s3_bucket", Kind::Text),
    ("thumbnail", Kind::Text),
];

fn check(value: Option<&Value>, path: &str, kind: Kind, problems: &mut Vec<String>) {
    let ok = match (value, kind) {
        (None, _) => {
            problems.push(format!("{path} is missing"));
            return;
        }
        (Some(Value::String(s)), Kind::Text) => !s.trim().is_empty(),
        (Some(Value::Number(_)), Kind::Number) => true,
        (Some(Value::String(s)), Kind::Date) => {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        }
        _ => false,
    };
    if !ok {
        problems.push(format!("{path} is not a valid {kind:?}"));
    }
}

/// Checks a resto feature message; `needs_cloud_cover` for optical products (FSC, RLIE).
pub fn check_resto_feature(message: &Value, needs_cloud_cover: bool) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    check(
        message.get("collection_name"),
        "collection_name",
        Kind::Text,
        &mut problems,
    );
    let resto = message.get("resto");
    if resto.and_then(|r| r.get("type")).and_then(Value::as_str) != Some("Feature") {
        problems.push("resto.type is not \"Feature\"".into());
    }
    let wkt = resto
        .and_then(|r| r.get("geometry"))
        .and_then(|g| g.get("wkt"));
    check(wkt, "resto.geometry.wkt", Kind::Text, &mut problems);
    if !wkt.and_then(Value::as_str).is_some_and(|w| {
        ["POLYGON", "MULTIPOLYGON"]
            .iter()
            .any(|p| w.trim_start().starts_with(p))
    }) {
        problems.push("resto.geometry.wkt is not a WKT polygon".into());
    }
    let properties = resto.and_then(|r| r.get("properties"));
    for (name, kind) in PROPERTIES {
        let path = format!("resto.properties.{name}");
        check(
            properties.and_then(|p| p.get(name)),
            &path,
            kind,
            &mut problems,
        );
    }
    if needs_cloud_cover {
        let cover = properties.and_then(|p| p.get("cloudCover"));
        check(
            cover,
            "resto.properties.cloudCover",
            Kind::Text,
            &mut problems,
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original's reference message (§3.6), WKT shortened.
    fn reference() -> Value {
        serde_json::json!({
          "collection_name": "HR-S&I",
          "resto": {
            "type": "Feature",
            "geometry": { "wkt": "POLYGON ((20.99 59.45, 22.0 59.45, 22.0 60.0, 20.99 59.45))" },
            "properties": {
              "productIdentifier": "/eodata/HRSI/CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1",
              "title": "FSC_20210413T101347_S2A_T34VEM_V100_1",
              "resourceSize": 2134016,
              "organisationName": "EEA",
              "startDate": "2021-04-13T10:13:47.668204",
              "completionDate": "2021-04-13T14:53:50.579313",
              "productType": "FSC",
              "resolution": 20,
              "mission": "S2",
              "cloudCover": "86.0",
              "processingBaseline": "V100",
              "host_base": "s3.waw2-1.cloudferro.com",
              "s3_bucket": "HRSI",
              "thumbnail": "Preview/CLMS/Pan-European/High_Resolution_Layers/Snow/FSC/2021/04/13/FSC_20210413T101347_S2A_T34VEM_V100_1/thumbnail.png"
            }
          }
        })
    }

    #[test]
    fn the_reference_message_passes() {
        check_resto_feature(&reference(), true).unwrap();
    }

    #[test]
    fn a_message_missing_any_field_fails_naming_it() {
        let mut fields: Vec<String> = PROPERTIES
            .iter()
            .map(|(n, _)| format!("/resto/properties/{n}"))
            .collect();
        fields.push("/resto/properties/cloudCover".into());
        fields.push("/resto/geometry/wkt".into());
        fields.push("/collection_name".into());
        for pointer in fields {
            let mut message = reference();
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            message
                .pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(name);
            let problems = check_resto_feature(&message, true).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(name)),
                "{pointer}: {problems:?}"
            );
        }
    }

    #[test]
    fn wrong_types_fail_too() {
        let mut message = reference();
        message["resto"]["properties"]["resourceSize"] = "big".into();
        message["resto"]["properties"]["startDate"] = "yesterday".into();
        message["resto"]["type"] = "Collection".into();
        let problems = check_resto_feature(&message, false).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}

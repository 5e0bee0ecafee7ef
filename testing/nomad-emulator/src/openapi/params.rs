//! Query strings: each parameter sent must be declared for the operation and parse as its type.

use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::{formats, overrides::HEADER_PARAMS_READ_FROM_QUERY, resolve};

/// The values Go's `strconv.ParseBool` accepts, which Nomad uses for boolean parameters.
const GO_BOOLEANS: &[&str] = &[
    "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
];

/// Checks the raw `query` (without `?`) against the parameters declared on the path item and the
/// operation `op` of `template`, appending problems.
pub(super) fn check_query(
    doc: &Value,
    item: &Value,
    op: &Value,
    template: &str,
    query: &str,
    problems: &mut Vec<String>,
) {
    let declared = query_parameters(doc, item, op, problems);
    let mut sent = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        match (decode(raw_name), decode(raw_value)) {
            (Some(name), Some(value)) => sent.push((name, value)),
            _ => problems.push(format!(
                "query parameter {pair} is not valid percent-encoded UTF-8"
            )),
        }
    }
    for (name, value) in &sent {
        match declared
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        {
            Some(parameter) => check_value(doc, parameter, name, value, problems),
            None => problems.push(format!(
                "query parameter {name} is not declared for {template}"
            )),
        }
    }
    for parameter in &declared {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
        let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
        if required && !sent.iter().any(|(sent_name, _)| sent_name == name) {
            problems.push(format!("required query parameter {name} is missing"));
        }
    }
}

/// The query parameters of the path item and the operation (the operation's win on a name clash),
/// with `$ref`s resolved and the header parameters Nomad reads from the query string included.
fn query_parameters<'a>(
    doc: &'a Value,
    item: &'a Value,
    op: &'a Value,
    problems: &mut Vec<String>,
) -> Vec<&'a Value> {
    let mut parameters: Vec<&Value> = Vec::new();
    let listed = [item, op]
        .into_iter()
        .filter_map(|level| level.get("parameters").and_then(Value::as_array))
        .flatten();
    for parameter in listed {
        let parameter = match resolve(doc, parameter) {
            Ok((parameter, _)) => parameter,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
        let location = parameter.get("in").and_then(Value::as_str);
        let in_query = location == Some("query")
            || (location == Some("header")
                && HEADER_PARAMS_READ_FROM_QUERY
                    .iter()
                    .any(|(n, _)| *n == name));
        if in_query {
            parameters.retain(|p| p.get("name").and_then(Value::as_str) != Some(name));
            parameters.push(parameter);
        }
    }
    parameters
}

fn check_value(
    doc: &Value,
    parameter: &Value,
    name: &str,
    value: &str,
    problems: &mut Vec<String>,
) {
    let schema = parameter
        .get("schema")
        .map(|schema| resolve(doc, schema).map(|(schema, _)| schema));
    let kind = match schema {
        Some(Ok(schema)) => schema.get("type").and_then(Value::as_str),
        Some(Err(problem)) => {
            problems.push(problem);
            return;
        }
        None => None,
    };
    let expected = match kind {
        Some("integer") if value.parse::<i64>().is_err() && value.parse::<u64>().is_err() => {
            Some("an integer")
        }
        Some("number") if value.parse::<f64>().is_err() => Some("a number"),
        Some("boolean") if !GO_BOOLEANS.contains(&value) => Some("a boolean"),
        // `wait` is declared a plain string; Nomad parses it as a Go duration (nomad-api.md §4).
        Some("string") if name == "wait" && !formats::is_go_duration(value) => {
            Some("a Go duration such as 60s")
        }
        _ => None,
    };
    if let Some(expected) = expected {
        problems.push(format!(
            "query parameter {name}={value:?} is not {expected}"
        ));
    }
}

/// Decodes one `application/x-www-form-urlencoded` component as Go's `url.ParseQuery` does.
fn decode(raw: &str) -> Option<String> {
    percent_decode(&raw.replace('+', " "))
}

/// Percent-decodes `raw` into UTF-8, or `None` for a malformed escape (which Go rejects) or
/// invalid UTF-8.
pub(super) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let escapes_valid = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !escapes_valid {
        return None;
    }
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

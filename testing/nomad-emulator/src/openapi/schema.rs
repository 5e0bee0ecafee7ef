//! Validation of JSON values against the schemas of the description (the subset of OpenAPI 3.0
//! schema objects it uses).

use serde_json::{Map, Number, Value};

use super::{formats, resolve};

/// Where a value sits, which decides whether `null` is acceptable there (see the module doc of
/// [`super`]).
#[derive(Clone, Copy)]
enum Slot {
    Root,
    Property { required: bool },
    Element,
}

/// Validates `value` against `schema` (possibly a `$ref`), appending one problem per violation,
/// each starting with the JSON path of the value from `$`.
pub(super) fn validate(doc: &Value, schema: &Value, value: &Value, problems: &mut Vec<String>) {
    Validator { doc, problems }.check(schema, value, "$", Slot::Root, "(inline)");
}

struct Validator<'a> {
    doc: &'a Value,
    problems: &'a mut Vec<String>,
}

impl Validator<'_> {
    /// `owner` names the nearest enclosing named schema, for messages about inline schemas.
    fn check(&mut self, schema: &Value, value: &Value, at: &str, slot: Slot, owner: &str) {
        let (schema, name) = match resolve(self.doc, schema) {
            Ok((schema, name)) => (schema, name.unwrap_or(owner)),
            Err(problem) => {
                self.problems.push(format!("{at}: {problem}"));
                return;
            }
        };
        let kind = kind_of(schema);
        if value.is_null() {
            // OpenAPI 3.0's `nullable: true` (swath's own description uses it) allows `null`.
            if schema.get("nullable") != Some(&Value::Bool(true)) {
                self.check_null(kind, at, slot);
            }
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                self.problems.push(format!(
                    "{at}: {} is not one of {}",
                    describe(value),
                    allowed.join(", ")
                ));
            }
        }
        match (kind, value) {
            (None, _) => {}
            (Some("object"), Value::Object(members)) => {
                self.check_object(schema, members, at, name)
            }
            (Some("array"), Value::Array(items)) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(
                            item_schema,
                            item,
                            &format!("{at}[{i}]"),
                            Slot::Element,
                            name,
                        );
                    }
                }
            }
            (Some("string"), Value::String(text)) => self.check_string_format(schema, text, at),
            (Some("integer"), Value::Number(n)) => self.check_integer(schema, n, at),
            (Some("number"), Value::Number(n)) => self.check_bounds(schema, n, at),
            (Some("boolean"), Value::Bool(_)) => {}
            (Some(expected), _) => self.problems.push(format!(
                "{at}: expected {}, got {}",
                expected_type(schema, expected),
                describe(value)
            )),
        }
    }

    fn check_null(&mut self, kind: Option<&str>, at: &str, slot: Slot) {
        let container = matches!(kind, Some("object" | "array"));
        let accepted = match slot {
            Slot::Root => kind.is_none(),
            Slot::Property { required } => !required || container || kind.is_none(),
            Slot::Element => container || kind.is_none(),
        };
        if !accepted {
            let expected = kind.unwrap_or("a value");
            self.problems
                .push(format!("{at}: expected {expected}, got null"));
        }
    }

    fn check_object(&mut self, schema: &Value, members: &Map<String, Value>, at: &str, name: &str) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (key, member) in members {
            let member_at = child_path(at, key);
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                let slot = Slot::Property {
                    required: required.contains(&key.as_str()),
                };
                self.check(property, member, &member_at, slot, name);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => self.problems.push(format!(
                    "{member_at}: property not allowed by schema {name}"
                )),
                Some(values) => self.check(values, member, &member_at, Slot::Element, name),
                None if properties.is_some() => {
                    let hint = properties
                        .and_then(|p| p.keys().find(|k| k.eq_ignore_ascii_case(key)))
                        .map(|k| format!(" (did you mean {k}?)"))
                        .unwrap_or_default();
                    self.problems
                        .push(format!("{member_at}: property not in schema {name}{hint}"));
                }
                None => {}
            }
        }
        for missing in required.iter().filter(|r| !members.contains_key(**r)) {
            self.problems.push(format!(
                "{at}: required property {missing} of schema {name} is missing"
            ));
        }
    }

    fn check_string_format(&mut self, schema: &Value, text: &str, at: &str) {
        let (valid, expected) = match schema.get("format").and_then(Value::as_str) {
            Some("byte") => (
                formats::is_padded_base64(text),
                "standard base64 with padding",
            ),
            Some("date-time") => (formats::is_rfc3339(text), "an RFC 3339 date-time"),
            _ => (true, ""),
        };
        if !valid {
            self.problems.push(format!(
                "{at}: expected {expected}, got {}",
                describe(&Value::String(text.to_string()))
            ));
        }
    }

    fn check_integer(&mut self, schema: &Value, n: &Number, at: &str) {
        if !(n.is_i64() || n.is_u64()) {
            self.problems.push(format!(
                "{at}: expected {}, got number {n}",
                expected_type(schema, "integer")
            ));
            return;
        }
        let in_format = match schema.get("format").and_then(Value::as_str) {
            Some("int32") => n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
            Some("int64") => n.is_i64(),
            _ => true,
        };
        if !in_format {
            self.problems.push(format!(
                "{at}: {n} is out of range for {}",
                expected_type(schema, "integer")
            ));
            return;
        }
        self.check_bounds(schema, n, at);
    }

    fn check_bounds(&mut self, schema: &Value, n: &Number, at: &str) {
        let value = n.as_f64().unwrap_or(f64::NAN);
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
            if value < minimum {
                self.problems
                    .push(format!("{at}: {n} is below the minimum {minimum}"));
            }
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
            if value > maximum {
                self.problems
                    .push(format!("{at}: {n} is above the maximum {maximum}"));
            }
        }
    }
}

/// The JSON type a schema expects: its `type`, `object` when it only lists properties, `None` when
/// it accepts anything (e.g. `{}`).
fn kind_of(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str).or_else(|| {
        (schema.get("properties").is_some() || schema.get("additionalProperties").is_some())
            .then_some("object")
    })
}

fn expected_type(schema: &Value, kind: &str) -> String {
    match schema.get("format").and_then(Value::as_str) {
        Some(format) => format!("{kind} ({format})"),
        None => kind.to_string(),
    }
}

/// `$.a.b` for identifier-like keys, `$.a["b c"]` otherwise.
fn child_path(at: &str, key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("{at}.{key}")
    } else {
        format!("{at}[{}]", Value::String(key.to_string()))
    }
}

/// A short description of `value` for messages, e.g. `string "30s"`.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head: String = s.chars().take(MAX_CHARS).collect();
            format!("string {}…", Value::String(head))
        }
        Value::String(_) => format!("string {value}"),
        Value::Array(_) => "array".to_string(),
        Value::Object(_) => "object".to_string(),
    }
}

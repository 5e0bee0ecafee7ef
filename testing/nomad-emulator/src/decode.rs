//! Request bodies decoded as Go's `encoding/json` decodes them into Nomad's structs: field names
//! matched case-insensitively and rewritten to their Go spelling, unknown fields dropped, `null`
//! meaning "absent", type mismatches and bad base64 reported with Go's error text.
//!
//! The struct shapes come from Nomad's OpenAPI description, plus the fields it lacks
//! ([`MISSING_FIELDS`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::wire::base64_decode;

/// Fields of Nomad's Go structs that the OpenAPI description does not list: (struct, field, type).
const MISSING_FIELDS: &[(&str, &str, &str)] = &[
    ("Job", "NodePool", "string"),
    ("Job", "UI", "any"),
    ("Job", "VersionTag", "any"),
    ("TaskGroup", "Disconnect", "any"),
    ("TaskGroup", "PreventRescheduleOnLost", "boolean"),
    ("Task", "Consul", "any"),
    ("Task", "Identity", "any"),
    ("Task", "Identities", "any"),
    ("Task", "Actions", "any"),
    ("Task", "Schedule", "any"),
    ("RestartPolicy", "RenderTemplates", "boolean"),
    ("Resources", "SecretsMB", "integer"),
    ("Resources", "NUMA", "any"),
    ("LogConfig", "Disabled", "boolean"),
    ("LogConfig", "Enabled", "boolean"),
    ("JobRegisterRequest", "Submission", "any"),
    ("JobRegisterRequest", "PreserveResources", "boolean"),
    ("JobRegisterRequest", "IdempotencyToken", "string"),
    ("JobDispatchRequest", "IdPrefixTemplate", "string"),
    ("JobDispatchRequest", "Priority", "integer"),
    ("JobDispatchRequest", "Region", "string"),
    ("JobDispatchRequest", "Namespace", "string"),
    ("JobDispatchRequest", "AuthToken", "string"),
    ("JobDispatchRequest", "IdempotencyToken", "string"),
];

/// Decodes a request body into the Go struct described by `schema` (a schema name of the OpenAPI
/// description); `go_package` prefixes type names in error texts (`api`, `structs`). An empty body is
/// `Request body is empty`; a JSON `null` decodes to an empty object.
pub(crate) fn decode_body(
    body: &[u8],
    schema: &str,
    go_package: &str,
) -> Result<Map<String, Value>, String> {
    if body.is_empty() {
        return Err("Request body is empty".into());
    }
    // Like Go's json.Decoder, read the first JSON value and ignore what follows it.
    let value = match serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next()
    {
        None => return Err("EOF".into()),
        Some(Ok(value)) => value,
        Some(Err(e)) => return Err(go_syntax_error(body, &e)),
    };
    let mut ctx = Context {
        package: go_package,
        root: schema,
        struct_name: schema,
        fields: Vec::new(),
    };
    match decode(&value, &json!({ "$ref": schema }), &mut ctx)? {
        Some(Value::Object(map)) => Ok(map),
        _ => Ok(Map::new()),
    }
}

fn go_syntax_error(body: &[u8], error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected EOF".into();
    }
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .nth(error.line().saturating_sub(1))
        .unwrap_or("");
    match line.chars().nth(error.column().saturating_sub(1)) {
        Some(c) => format!("invalid character '{c}' looking for beginning of value"),
        None => format!("invalid JSON: {error}"),
    }
}

struct Context<'a> {
    package: &'a str,
    root: &'a str,
    struct_name: &'a str,
    fields: Vec<String>,
}

impl Context<'_> {
    fn type_error(&self, value: &Value, go_type: &str) -> String {
        let what = match value {
            Value::Bool(_) => "bool".to_string(),
            Value::String(_) => "string".to_string(),
            Value::Array(_) => "array".to_string(),
            Value::Object(_) => "object".to_string(),
            Value::Number(n) if go_type.contains("int") => format!("number {n}"),
            _ => "number".to_string(),
        };
        if self.fields.is_empty() {
            return format!(
                "json: cannot unmarshal {what} into Go value of type {}.{}",
                self.package, self.root
            );
        }
        format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {go_type}",
            self.struct_name,
            self.fields.join(".")
        )
    }
}

fn decode<'s>(
    value: &Value,
    schema: &'s Value,
    ctx: &mut Context<'s>,
) -> Result<Option<Value>, String> {
    if value.is_null() {
        return Ok(None);
    }
    if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
        let name = name.rsplit('/').next().unwrap_or(name);
        let Some(target) = schemas().get(name) else {
            return Ok(Some(value.clone()));
        };
        return decode_struct(value, name, target, ctx);
    }
    let go_type = go_type(schema, ctx.package);
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    let decoded = match kind {
        "string" => {
            let Value::String(text) = value else {
                return Err(ctx.type_error(value, &go_type));
            };
            if schema.get("format").and_then(Value::as_str) == Some("byte") {
                base64_decode(text)?;
            }
            value.clone()
        }
        "integer" => {
            let whole = value.as_i64().is_some() || value.as_u64().is_some();
            let unsigned = schema.get("minimum").and_then(Value::as_f64) == Some(0.0);
            if !whole || (unsigned && value.as_u64().is_none()) {
                return Err(ctx.type_error(value, &go_type));
            }
            value.clone()
        }
        "number" if value.is_number() => value.clone(),
        "boolean" if value.is_boolean() => value.clone(),
        "array" => {
            let Value::Array(items) = value else {
                return Err(ctx.type_error(value, &go_type));
            };
            let item_schema = schema.get("items").unwrap_or(&Value::Null);
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(decode(item, item_schema, ctx)?.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        "object" => {
            let Value::Object(entries) = value else {
                return Err(ctx.type_error(value, &go_type));
            };
            match schema.get("additionalProperties") {
                Some(values) if values.get("type").is_some() || values.get("$ref").is_some() => {
                    let mut out = Map::new();
                    for (key, item) in entries {
                        let decoded = decode(item, values, ctx)?;
                        out.insert(key.clone(), decoded.unwrap_or_else(|| zero_of(values)));
                    }
                    Value::Object(out)
                }
                _ => value.clone(),
            }
        }
        "any" => value.clone(),
        _ => return Err(ctx.type_error(value, &go_type)),
    };
    Ok(Some(decoded))
}

fn decode_struct<'s>(
    value: &Value,
    name: &'s str,
    schema: &'s Value,
    ctx: &mut Context<'s>,
) -> Result<Option<Value>, String> {
    let Value::Object(entries) = value else {
        return Err(ctx.type_error(value, &format!("{}.{name}", ctx.package)));
    };
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(Some(Value::Object(Map::new())));
    };
    let outer = std::mem::replace(&mut ctx.struct_name, name);
    let mut out = Map::new();
    for (key, item) in entries {
        let Some((field, field_schema)) = properties.get_key_value(key).or_else(|| {
            properties
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(key))
        }) else {
            continue;
        };
        ctx.fields.push(field.clone());
        let decoded = decode(item, field_schema, ctx);
        ctx.fields.pop();
        ctx.struct_name = name;
        if let Some(decoded) = decoded? {
            out.insert(field.clone(), decoded);
        }
    }
    ctx.struct_name = outer;
    Ok(Some(Value::Object(out)))
}

/// The Go zero value a `null` map entry decodes to.
fn zero_of(schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => json!(""),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

fn go_type(schema: &Value, package: &str) -> String {
    if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
        return format!("{package}.{}", name.rsplit('/').next().unwrap_or(name));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") if schema.get("format").and_then(Value::as_str) == Some("byte") => {
            "[]uint8".into()
        }
        Some("string") => "string".into(),
        Some("boolean") => "bool".into(),
        Some("number") => "float64".into(),
        Some("integer") if schema.get("minimum").and_then(Value::as_f64) == Some(0.0) => {
            "uint64".into()
        }
        Some("integer") if schema.get("format").and_then(Value::as_str) == Some("int64") => {
            "int64".into()
        }
        Some("integer") => "int".into(),
        Some("array") => format!(
            "[]{}",
            go_type(schema.get("items").unwrap_or(&Value::Null), package)
        ),
        Some("object") => match schema.get("additionalProperties") {
            Some(values) => format!("map[string]{}", go_type(values, package)),
            None => "map[string]interface {}".into(),
        },
        _ => "interface {}".into(),
    }
}

/// The component schemas of Nomad's OpenAPI description, with [`MISSING_FIELDS`] added.
fn schemas() -> &'static HashMap<String, Value> {
    static SCHEMAS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let text = include_str!("../data/nomad-openapi.yaml");
        let document: Value =
            serde_yaml::from_str(text).expect("the OpenAPI description is valid YAML");
        let mut schemas: HashMap<String, Value> = document["components"]["schemas"]
            .as_object()
            .expect("the OpenAPI description has component schemas")
            .iter()
            .map(|(name, schema)| (name.clone(), schema.clone()))
            .collect();
        for (name, field, kind) in MISSING_FIELDS {
            let entry = schemas
                .entry((*name).to_string())
                .or_insert_with(|| json!({ "type": "object", "properties": {} }));
            let field_schema = match *kind {
                "any" => json!({}),
                kind => json!({ "type": kind }),
            };
            entry["properties"][*field] = field_schema;
        }
        schemas
    })
}

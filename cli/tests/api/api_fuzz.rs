//! A fuzz test of the API's inputs, driven by its own OpenAPI description: for every operation it
//! describes, requests with path ids, query strings, bodies and tokens generated from the
//! description (valid, nearly valid and garbage) go to a running API over a database with jobs in
//! every kind of state. No answer may be a 5xx, and every answer must be JSON matching the
//! description. Afterwards the chaining invariant still holds in the database.
//!
//! The generator is seeded: `FUZZ_SEED` replays a run (the seed is printed), `FUZZ_CASES` sets the
//! requests per operation (default 40).

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::Method;
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use swath_domain::JobStatus;
use swath_engine::config::{Secret, Settings};

use support::operator::{move_to, settings, test_job, Body, Operator, READ, WRITE};

/// Strings that have broken parsers and databases before.
const STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "test_job",
    "fsc_rlie",
    "fsc_rlie_check",
    "done",
    "internal_error",
    "Ready",
    "32TLR",
    "T32TLR",
    "2021-04-13T10:10:21Z",
    "2021-13-45T99:99:99Z",
    "0000-01-01T00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "9999-12-31T23:59:59.999999999+14:00",
    "-1",
    "0",
    "9223372036854775808",
    "1e999",
    "NaN",
    "null",
    "a\u{0}b",
    "\u{0}",
    "é漢字🛰",
    "\u{2003}em",
    "\u{180e}",
    "\u{200b}",
    "../../etc/passwd",
    "%00",
    "%ZZ",
    "a,b,,c",
    "'; DROP TABLE jobs; --",
    "j1:5",
    "ajE6NQ",
    "ajE6LTE",
];

/// Integers around the edges.
const INTEGERS: &[i64] = &[
    0,
    1,
    2,
    3,
    5,
    -1,
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    i64::MAX,
    i64::MIN,
];

struct Fuzzer<'a> {
    doc: &'a Value,
    rng: fastrand::Rng,
    ids: Vec<i64>,
}

impl Fuzzer<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        let mut current = schema;
        while let Some(reference) = current.get("$ref").and_then(Value::as_str) {
            current = self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .expect("references resolve");
        }
        current
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.f64() < p
    }

    fn string(&mut self) -> String {
        match self.rng.u8(0..10) {
            0 => "x".repeat(self.rng.usize(200..5000)),
            1 => (0..self.rng.usize(1..20))
                .map(|_| self.rng.char(..))
                .collect(),
            _ => STRINGS[self.rng.usize(..STRINGS.len())].to_string(),
        }
    }

    fn integer(&mut self) -> i64 {
        if self.chance(0.5) && !self.ids.is_empty() {
            self.ids[self.rng.usize(..self.ids.len())]
        } else {
            INTEGERS[self.rng.usize(..INTEGERS.len())]
        }
    }

    /// Any JSON value.
    fn garbage(&mut self, depth: u32) -> Value {
        match self.rng.u8(0..if depth > 2 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.bool()),
            2 => json!(self.integer()),
            3 => json!(self.rng.f64() * 1e300),
            4 => Value::String(self.string()),
            5 => Value::Array(
                (0..self.rng.usize(0..4))
                    .map(|_| self.garbage(depth + 1))
                    .collect(),
            ),
            _ => {
                let mut object = Map::new();
                for _ in 0..self.rng.usize(0..4) {
                    let key = self.string();
                    object.insert(key, self.garbage(depth + 1));
                }
                Value::Object(object)
            }
        }
    }

    /// A value for `schema`: mostly what it describes, sometimes something else.
    fn value(&mut self, schema: &Value, depth: u32) -> Value {
        if depth > 4 || self.chance(0.08) {
            return self.garbage(depth);
        }
        let schema = self.resolve(schema).clone();
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            if self.chance(0.85) {
                return choices[self.rng.usize(..choices.len())].clone();
            }
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => {
                let mut object = Map::new();
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, property) in properties {
                        let p = if required.contains(&name.as_str()) {
                            0.95
                        } else {
                            0.4
                        };
                        if self.chance(p) {
                            let v = self.value(property, depth + 1);
                            object.insert(name.clone(), v);
                        }
                    }
                }
                if self.chance(0.1) {
                    let key = self.string();
                    object.insert(key, self.garbage(depth + 1));
                }
                Value::Object(object)
            }
            Some("array") => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    (0..self.rng.usize(0..4))
                        .map(|_| self.value(&items, depth + 1))
                        .collect(),
                )
            }
            Some("integer") => json!(self.integer()),
            Some("boolean") => json!(self.rng.bool()),
            Some("string") => Value::String(self.string()),
            _ => self.garbage(depth),
        }
    }

    /// A path segment for a parameter of `schema`, percent-encoded.
    fn segment(&mut self, schema: &Value) -> String {
        let raw = if self.chance(0.7) {
            match self.value(schema, 3) {
                Value::String(s) => s,
                other => other.to_string(),
            }
        } else {
            self.string()
        };
        utf8_percent_encode(&raw, NON_ALPHANUMERIC).to_string()
    }

    /// A query string for the declared `parameters`, with unknown and repeated ones at times.
    fn query(&mut self, parameters: &[Value]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for parameter in parameters.iter().filter(|p| p["in"] == "query") {
            if !self.chance(0.35) {
                continue;
            }
            let name = parameter["name"].as_str().unwrap();
            for _ in 0..if self.chance(0.1) { 2 } else { 1 } {
                let value = match self.value(&parameter["schema"], 3) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                query.append_pair(name, &value);
            }
        }
        if self.chance(0.1) {
            let (name, value) = (self.string(), self.string());
            query.append_pair(&name, &value);
        }
        query.finish()
    }
}

/// Jobs in every kind of state, chained, retried and published, so that ids hit real rows.
async fn seed(pool: &PgPool) -> Vec<i64> {
    use JobStatus::*;
    let mut ids = Vec::new();
    let parent = test_job(pool, "parent", None, None).await;
    let child = test_job(pool, "child", Some(parent.id), None).await;
    let spawned = test_job(pool, "spawned", None, Some(parent.id)).await;
    ids.extend([parent.id, child.id, spawned.id]);
    move_to(pool, parent, Published).await;
    move_to(pool, child, InternalError).await;
    for (name, status) in [
        ("ready", Ready),
        ("running", Processing),
        ("done", Done),
        ("failed", InternalError),
        ("cancelled", Cancelled),
        ("processed", Processed),
    ] {
        let job = test_job(pool, name, None, None).await;
        ids.push(job.id);
        move_to(pool, job, status).await;
    }
    ids
}

#[sqlx::test(migrations = "../sql")]
async fn no_input_makes_the_api_fail(pool: PgPool) {
    let seed_value: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    println!("FUZZ_SEED={seed_value} FUZZ_CASES={cases}");
    let ids = seed(&pool).await;
    let op = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    let doc = support::openapi::swath().document();
    let mut fuzz = Fuzzer {
        doc,
        rng: fastrand::Rng::with_seed(seed_value),
        ids,
    };
    let tokens = [
        None,
        Some(WRITE),
        Some(WRITE),
        Some(READ),
        Some("not-a-token"),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        // Routes served outside the API prefix (`/metrics`, plain text) are checked on their own
        // (`every_route_is_documented` in `api_jobs`).
        if item.get("servers").is_some() {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let parameters: Vec<Value> = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| fuzz.resolve(p).clone())
                .collect();
            let body_schema = operation
                .pointer("/requestBody/content/application~1json/schema")
                .cloned();
            for case in 0..cases {
                let mut path = template.clone();
                for parameter in parameters.iter().filter(|p| p["in"] == "path") {
                    let name = parameter["name"].as_str().unwrap();
                    let segment = fuzz.segment(&parameter["schema"]);
                    path = path.replace(&format!("{{{name}}}"), &segment);
                }
                let query = fuzz.query(&parameters);
                if !query.is_empty() {
                    path = format!("{path}?{query}");
                }
                let token = tokens[fuzz.rng.usize(..tokens.len())];
                let json_body;
                let raw;
                let body = match (&body_schema, fuzz.rng.u8(0..20)) {
                    (_, 0) => Body::Empty,
                    (_, 1) => {
                        raw = fuzz.string();
                        Body::Raw("application/json", raw.as_bytes())
                    }
                    (_, 2) => {
                        raw = fuzz.string();
                        Body::Raw("text/plain", raw.as_bytes())
                    }
                    (Some(schema), _) => {
                        json_body = fuzz.value(schema, 0);
                        Body::Json(&json_body)
                    }
                    (None, _) => Body::Empty,
                };
                let shown = match &body {
                    Body::Empty => "(none)".to_string(),
                    Body::Json(v) => v.to_string(),
                    Body::Raw(t, b) => format!("{t}: {:?}", String::from_utf8_lossy(b)),
                };
                println!("case {case}: {method} {path} token={token:?} body={shown}");
                // `call` checks that the answer is JSON and matches the description.
                let answer = op.call(method.clone(), &path, token, body).await;
                assert!(
                    answer.status < 500,
                    "FUZZ_SEED={seed_value}: {method} {path} answered {}: {}",
                    answer.status,
                    answer.body
                );
                *statuses.entry(answer.status).or_insert(0usize) += 1;
            }
        }
    }
    println!("statuses: {statuses:?}");
    // The fuzz reached past the front door: successes and refusals of every kind.
    for expected in [200, 400, 401, 404] {
        assert!(
            statuses.contains_key(&expected),
            "no {expected} answer: {statuses:?}"
        );
    }
    // Whatever was cancelled, retried or attached, no parent is done beside a child that is not.
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs p WHERE p.status = 12 AND EXISTS (SELECT 1 FROM swath_blocking_child(p.id))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(broken, 0);
}

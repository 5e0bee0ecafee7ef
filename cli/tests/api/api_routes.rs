//! The router against its OpenAPI description: every route it serves (read from the `.route(...)`
//! calls of `engine/src/api`, then located by asking the running API) is documented with the
//! methods it serves, at the place it is served (`/api/v1`, or the root for `/metrics`), and every
//! documented route is served; the root-level `/metrics` answers as documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use swath_engine::config::{Secret, Settings};

use support::operator::{settings, Operator, READ};

/// Routes at the root that are not API: the dashboard page, its assets and the redirect to it.
const PAGES: [&str; 4] = [
    "/",
    "/dashboard",
    "/dashboard/app.js",
    "/dashboard/style.css",
];

/// The methods probed on every route (HEAD is served with GET by the framework).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The path of every `.route("...")` in the `.rs` files under `dir`.
fn routed_paths(dir: &Path, paths: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            routed_paths(&path, paths);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let rest = text[at + ".route(".len()..].trim_start();
            let literal = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(literal, _)| literal)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a .route( whose path is not a string literal: this test cannot read it ({:?})",
                        path.display(),
                        &rest[..rest.len().min(60)]
                    )
                });
            paths.insert(literal.to_string());
        }
    }
}

/// `template` with each `{parameter}` replaced by `1`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods the router serves at `url`: those answered by something other than the router's
/// fallbacks (404 "no route for", 405). Requests carry no token, so that no
/// write is made.
async fn served_methods(client: &reqwest::Client, url: &str) -> BTreeSet<String> {
    let mut served = BTreeSet::new();
    for method in METHODS {
        let response = client.request(method.clone(), url).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = body["error"].as_str().unwrap_or_default();
        // No handler answers 405 itself; a handler's 404 names what is missing.
        let fallback = status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND
                && (body.is_null() || error.starts_with("no route for")));
        if !fallback {
            served.insert(method.as_str().to_ascii_lowercase());
        }
    }
    served
}

#[sqlx::test(migrations = "../sql")]
async fn every_route_is_documented_and_every_documented_route_is_served(pool: PgPool) {
    let op = Operator::with_write_token(&pool).await;
    let api_base = op.api.base.clone();
    let root = api_base.strip_suffix("/api/v1").unwrap().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let doc = support::openapi::swath().document();
    let documented = doc["paths"].as_object().unwrap();

    let mut templates = BTreeSet::new();
    routed_paths(
        &support::workspace_root().join("engine/src/api"),
        &mut templates,
    );
    // Documented routes are probed too, so that one the sources no longer route is caught.
    templates.extend(documented.keys().cloned());

    // (place, template) -> methods, where the place is "/api/v1" or "/".
    let mut served: BTreeMap<(&str, String), BTreeSet<String>> = BTreeMap::new();
    for template in &templates {
        for (place, base) in [("/api/v1", &api_base), ("/", &root)] {
            let methods = served_methods(&client, &format!("{base}{}", concrete(template))).await;
            if !methods.is_empty() {
                served.insert((place, template.clone()), methods);
            }
        }
    }

    let mut problems = Vec::new();
    for template in &templates {
        if !served.keys().any(|(_, t)| t == template) {
            problems.push(format!(
                "{template} is routed or documented, but not served"
            ));
        }
    }
    for ((place, template), methods) in &served {
        if *place == "/" && PAGES.contains(&template.as_str()) {
            continue;
        }
        let Some(item) = documented.get(template) else {
            problems.push(format!(
                "{template} is served under {place} but not documented"
            ));
            continue;
        };
        let servers: Vec<&str> = item["servers"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["url"].as_str()).collect())
            .unwrap_or_default();
        let documented_place = servers.first().copied().unwrap_or("/api/v1");
        if documented_place != *place {
            problems.push(format!(
                "{template} is served under {place}, documented under {documented_place}"
            ));
        }
        let documented_methods: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| METHODS.iter().any(|m| m.as_str().eq_ignore_ascii_case(k)))
            .cloned()
            .collect();
        if &documented_methods != methods {
            problems.push(format!(
                "{template} under {place}: served {methods:?}, documented {documented_methods:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The scan found the routes (an empty scan would prove nothing).
    assert!(served.len() > PAGES.len() + 10, "{served:?}");
}

#[sqlx::test(migrations = "../sql")]
async fn metrics_answer_as_documented(pool: PgPool) {
    let doc = support::openapi::swath();
    let item = &doc.document()["paths"]["/metrics"];
    let content_types: Vec<&String> = item["get"]["responses"]["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let client = reqwest::Client::new();

    let op = Operator::start(
        &pool,
        &Settings {
            api_read_token: Some(Secret::new(READ)),
            ..settings()
        },
        None,
    )
    .await;
    let url = op.api.base.replace("/api/v1", "/metrics");
    let refused = client.get(&url).send().await.unwrap();
    let status = refused.status().as_u16();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        doc.check_response("GET", "/metrics", status, Some(&body)),
        Ok(())
    );

    let answer = client.get(&url).bearer_auth(READ).send().await.unwrap();
    let status = answer.status().as_u16();
    let content_type = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let text = answer.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_types, [&content_type]);
    assert_eq!(doc.check_response("GET", "/metrics", status, None), Ok(()));
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Not under the API prefix.
    assert!(doc
        .check_response("GET", "/api/v1/metrics", 200, None)
        .unwrap_err()[0]
        .contains("no path of the description matches"));
}

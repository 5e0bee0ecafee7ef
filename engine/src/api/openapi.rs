//! The API's OpenAPI 3 description, served at `GET /openapi.json` (open, like the probes). The
//! document is written by hand (`openapi.json` beside this file); the integration tests check every
//! answer of every route against it, so that it cannot drift from the routes.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::ApiContext;

/// The description, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The description's route, relative to the API prefix.
pub fn routes() -> Router<ApiContext> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_openapi_3_json_with_every_operation_described() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for (path, item) in doc["paths"].as_object().unwrap() {
            // Besides its operations, a path item may name the servers it is served on
            // (`/metrics`, at the root).
            let operations = item
                .as_object()
                .unwrap()
                .iter()
                .filter(|(key, _)| !matches!(key.as_str(), "servers" | "parameters"));
            for (method, op) in operations {
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} has no responses"
                );
            }
        }
    }
}

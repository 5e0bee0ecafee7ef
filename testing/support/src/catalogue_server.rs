//! A local HTTP server that plays a catalogue for the tests: a small OData engine and a STAC pager
//! over entries in the real response formats, with scripted failures (429, 500, truncated bodies).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path, e.g. `/odata/v1/Products`.
    pub path: String,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// JSON body of a POST.
    pub body: Option<Value>,
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// This status with a text body.
    Status(u16, String),
    /// 429 with an optional `Retry-After` header.
    TooManyRequests(Option<String>),
    /// 200 with the first half of this JSON's text: a page cut short.
    Truncated(Value),
    /// This reply, after a delay (a catalogue slower than the client's timeout).
    Slow(std::time::Duration, Box<Reply>),
    /// 200 with this JSON sent in chunks, without a `Content-Length`.
    Streamed(Value),
    /// 200 with a body that never ends (chunks of spaces, no `Content-Length`).
    Endless,
}

type Handler = dyn Fn(&Seen, usize, &str) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    base: String,
}

/// A running catalogue server.
pub struct CatalogueServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CatalogueServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CatalogueServer {
    /// Starts a server on a random loopback port. `handler` gets each request, its index (from 0)
    /// and the server's base URL.
    pub async fn start(
        handler: impl Fn(&Seen, usize, &str) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on([127, 0, 0, 1], handler).await
    }

    /// Starts a server on a random port of the loopback address `ip` (any of 127.0.0.0/8).
    pub async fn start_on(
        ip: [u8; 4],
        handler: impl Fn(&Seen, usize, &str) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            handler: Arc::new(handler),
            seen: seen.clone(),
            base: base.clone(),
        };
        let app = axum::Router::new().fallback(answer).with_state(shared);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CatalogueServer { base, seen, task }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(State(shared): State<Shared>, request: Request) -> Response {
    let uri = request.uri().clone();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).ok();
    let seen = Seen {
        path: uri.path().to_string(),
        query,
        body,
    };
    let index = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let mut reply = (shared.handler)(&seen, index, &shared.base);
    while let Reply::Slow(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    let json_response = |status: StatusCode, text: String| {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        r
    };
    match reply {
        Reply::Json(v) => json_response(StatusCode::OK, v.to_string()),
        Reply::Truncated(v) => {
            let text = v.to_string();
            let cut = text.len() / 2;
            json_response(StatusCode::OK, text[..cut].to_string())
        }
        Reply::Status(code, text) => {
            let mut r = Response::new(Body::from(text));
            *r.status_mut() = StatusCode::from_u16(code).unwrap();
            r
        }
        Reply::Slow(..) => unreachable!("unwrapped above"),
        Reply::Streamed(v) => {
            let text = v.to_string().into_bytes();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                text.chunks(4096).map(|c| Ok(c.to_vec())).collect();
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
        Reply::Endless => {
            let chunk = vec![b' '; 64 * 1024];
            let endless =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::new(Body::from_stream(endless))
        }
        Reply::TooManyRequests(after) => {
            let mut r = Response::new(Body::from("slow down"));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Some(after) = after {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_str(&after).unwrap());
            }
            r
        }
    }
}

/// A catalogue of OData `Products` entries, answering like CDSE: `PublicationDate ge/lt` window from
/// `$filter`, `PublicationDate asc` order, `$top`, `$skip`, and `@odata.nextLink` while the next skip
/// stays within `skip_limit`.
pub struct ODataEngine {
    /// Entries in the real format.
    pub entries: Vec<Value>,
    /// Largest `$skip` the catalogue gives a next link for (10 000 at CDSE).
    pub skip_limit: usize,
}

fn filter_time(filter: &str, op: &str) -> Option<DateTime<Utc>> {
    let marker = format!("PublicationDate {op} ");
    let start = filter.find(&marker)? + marker.len();
    let text: String = filter[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')')
        .collect();
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ODataEngine {
    /// The page answering `request` (an OData `Products` query).
    pub fn page(&self, request: &Seen, base: &str) -> Value {
        let filter = request.query.get("$filter").cloned().unwrap_or_default();
        let from = filter_time(&filter, "ge").unwrap_or(DateTime::<Utc>::MIN_UTC);
        let to = filter_time(&filter, "lt").unwrap_or(DateTime::<Utc>::MAX_UTC);
        let top: usize = request
            .query
            .get("$top")
            .and_then(|t| t.parse().ok())
            .unwrap_or(20);
        let skip: usize = request
            .query
            .get("$skip")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let published = |e: &Value| {
            DateTime::parse_from_rfc3339(e["PublicationDate"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        let mut matching: Vec<&Value> = self
            .entries
            .iter()
            .filter(|e| published(e) >= from && published(e) < to)
            .collect();
        matching.sort_by_key(|e| (published(e), e["Id"].as_str().unwrap_or("").to_string()));
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(top)
            .map(|e| (*e).clone())
            .collect();
        let mut body = json!({"@odata.context": "$metadata#Products(Attributes())", "value": page});
        let next_skip = skip + top;
        if next_skip < matching.len() && next_skip <= self.skip_limit {
            let mut url = url::Url::parse(&format!("{base}{}", request.path)).unwrap();
            {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in &request.query {
                    if k != "$skip" {
                        pairs.append_pair(k, v);
                    }
                }
                pairs.append_pair("$skip", &next_skip.to_string());
            }
            body["@odata.nextLink"] = Value::String(url.to_string());
        }
        body
    }
}

/// An OData entry in the format of the real sample page, for product `name` published at `published`,
/// with `footprint` as a GeoJSON polygon.
pub fn odata_entry(name: &str, published: &str, footprint: Value) -> Value {
    let sample: Value =
        serde_json::from_str(include_str!("../../data/odata/s2_l1c_sample_page.json")).unwrap();
    let mut entry = sample["value"][0].clone();
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
    let safe = if name.ends_with(".SAFE") {
        name.to_string()
    } else {
        format!("{name}.SAFE")
    };
    entry["Id"] = Value::String(id);
    entry["Name"] = Value::String(safe.clone());
    entry["PublicationDate"] = Value::String(published.to_string());
    entry["S3Path"] = Value::String(format!("/eodata/test/{safe}"));
    entry["GeoFootprint"] = footprint;
    entry.as_object_mut().unwrap().remove("Footprint");
    entry
}

/// A lon/lat box as a GeoJSON polygon.
pub fn box_polygon(west: f64, south: f64, east: f64, north: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]})
}

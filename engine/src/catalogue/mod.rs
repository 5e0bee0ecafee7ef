//! Catalogues: where product listings come from, behind one paging trait.
//!
//! - [`odata`]: CDSE OData, filtered and ordered by publication date (the primary source);
//! - [`stac`]: a STAC API `/search`, paged by `rel=next` links;
//! - [`local`]: a local directory, one product per entry (the embedded default).
//!
//! Every catalogue [`open`]ed is screened by [`input_roots`]: products whose storage path lies
//! outside the configured stores become invalid entries. HTTP catalogues follow next links only on
//! their own origin and read bodies up to a cap ([`http`]).
//!
//! Adapters turn each listed entry into a [`CatalogueProduct`], or into an [`InvalidEntry`] when the
//! entry itself is unusable (missing name or date): such entries are quarantined by the poller, and
//! never fail the page. Whole-page failures are [`CatalogueError`]s, retried by [`http`] first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use swath_domain::listing::CatalogueProduct;

pub mod http;
pub mod input_roots;
pub mod local;
pub mod odata;
pub mod stac;

/// What to list: one collection and product type, an area, and a publication window.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueQuery {
    /// Collection, as the catalogue names it (`SENTINEL-2` for OData, `sentinel-2-l1c` for STAC).
    pub collection: String,
    /// Product type filter (`S2MSI1C`, `IW_GRDH_1S`), if the catalogue supports one.
    pub product_type: Option<String>,
    /// Longitude/latitude box `[west, south, east, north]` the products must intersect.
    pub bbox: Option<[f64; 4]>,
    /// Products published at or after this time.
    pub published_from: DateTime<Utc>,
    /// Products published before this time.
    pub published_to: DateTime<Utc>,
}

/// Where the next page starts: adapter-specific, opaque to the poller.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PageCursor {
    /// The request for the next page (a URL, possibly with a POST body).
    pub url: String,
    /// JSON body to POST instead of a GET (STAC `rel=next` links with `method: POST`).
    pub body: Option<serde_json::Value>,
    /// Start of the publication window the next request covers (OData window splitting).
    pub window_start: DateTime<Utc>,
}

/// A listed entry that cannot become a product (no name, no date, no storage path...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidEntry {
    /// The entry's name or id, if it has one.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
    /// The entry as listed.
    pub raw: serde_json::Value,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CataloguePage {
    /// Usable products, in catalogue order.
    pub products: Vec<CatalogueProduct>,
    /// Unusable entries, to be quarantined.
    pub invalid: Vec<InvalidEntry>,
    /// Where the next page starts; `None` at the end of the listing.
    pub next: Option<PageCursor>,
}

/// A page that could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The catalogue did not answer usefully after every retry (timeouts, 429, 5xx, truncated bodies).
    #[error("{url}: catalogue unavailable after {attempts} attempt(s): {last_error}")]
    Unavailable {
        /// The request.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last_error: String,
    },
    /// The catalogue refused the request (a 4xx other than 429): retrying will not help.
    #[error("{url}: catalogue refused the request with HTTP {status}: {body}")]
    Refused {
        /// The request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response is valid JSON but not a page of this catalogue's format.
    #[error("{url}: not a listing page: {problem}")]
    BadPage {
        /// The request.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The response body is larger than the cap: retrying will not help.
    #[error("{url}: the response body ({size}) is over the limit of {limit} bytes (set by {setting})", setting = http::MAX_BODY_SETTING)]
    BodyTooLarge {
        /// The request.
        url: String,
        /// How large it is, or how much was read before stopping.
        size: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// A page links to its next page on another origin than the catalogue's: the link is not
    /// followed (a catalogue's answers must not send the orchestrator to other hosts).
    #[error(
        "{url}: the next link {link} is not on the catalogue's origin {expected}: not followed"
    )]
    ForeignLink {
        /// The page that carried the link.
        url: String,
        /// The link.
        link: String,
        /// The catalogue's origin (scheme, host and port of its configured URL).
        expected: String,
    },
    /// A local listing failed.
    #[error(transparent)]
    Local(#[from] local::LocalCatalogueError),
    /// The adapter is misconfigured (bad base URL...).
    #[error("catalogue configuration: {0}")]
    Config(String),
    /// The catalogue cannot answer this question (e.g. withdrawals, from a STAC API).
    #[error("{0}")]
    Unsupported(String),
}

/// Which withdrawals to list: those withdrawn in `[since, until)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WithdrawalQuery {
    /// Withdrawn at or after this time.
    pub since: DateTime<Utc>,
    /// Withdrawn before this time.
    pub until: DateTime<Utc>,
}

/// A product the catalogue withdrew.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Withdrawal {
    /// The product's canonical name (upper case, without `.SAFE`), as jobs key their product.
    pub name: String,
    /// When the catalogue withdrew it (OData `DeletionDate`).
    pub deleted_at: DateTime<Utc>,
    /// Why (OData `DeletionCause`, e.g. `Duplicated product`).
    pub cause: String,
}

/// One page of withdrawals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WithdrawnPage {
    /// Usable withdrawals, in catalogue order.
    pub withdrawals: Vec<Withdrawal>,
    /// Unusable entries (no name, a name that is not a product name, no date): skipped.
    pub invalid: Vec<InvalidEntry>,
    /// Where the next page starts; `None` at the end of the listing.
    pub next: Option<PageCursor>,
}

/// A source of product listings.
#[async_trait]
pub trait Catalogue: Send + Sync {
    /// A stable identifier of the source (kind and base URL), used to key the ingestion cursor.
    fn source(&self) -> String;

    /// The page at `cursor`, or the first page of `query` when `cursor` is `None`.
    async fn page(
        &self,
        query: &CatalogueQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError>;

    /// The page of products withdrawn in `query`'s window at `cursor`, or its first page when
    /// `cursor` is `None`. Catalogues that do not list withdrawals answer
    /// [`CatalogueError::Unsupported`] (the default).
    async fn withdrawn(
        &self,
        query: &WithdrawalQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<WithdrawnPage, CatalogueError> {
        let _ = (query, cursor);
        Err(CatalogueError::Unsupported(format!(
            "the catalogue {} does not list withdrawn products",
            self.source()
        )))
    }
}

/// Parses an RFC 3339 timestamp with any number of fractional digits.
pub(crate) fn parse_time(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The next page's URL from `link` as found on the page at `page_url` (relative links are resolved
/// against that page), if it lies on the origin (scheme, host and port) of the catalogue at `base`.
pub(crate) fn next_link(
    base: &url::Url,
    page_url: &str,
    link: &str,
) -> Result<url::Url, CatalogueError> {
    let resolved = url::Url::parse(page_url)
        .and_then(|page| page.join(link))
        .map_err(|e| CatalogueError::BadPage {
            url: page_url.to_string(),
            problem: format!("next link {link:?}: {e}"),
        })?;
    // Opaque origins (schemes without a host) are never equal, not even to themselves.
    if resolved.origin() != base.origin() {
        return Err(CatalogueError::ForeignLink {
            url: page_url.to_string(),
            link: resolved.to_string(),
            expected: base.origin().ascii_serialization(),
        });
    }
    Ok(resolved)
}

/// An `InvalidEntry` for `entry`, named by the first of `name_fields` it has.
pub(crate) fn invalid_entry(
    entry: &serde_json::Value,
    name_fields: &[&str],
    reason: impl Into<String>,
) -> InvalidEntry {
    let name = name_fields
        .iter()
        .find_map(|f| entry.pointer(f).and_then(|v| v.as_str()))
        .unwrap_or("(unnamed entry)")
        .to_string();
    InvalidEntry {
        name,
        reason: reason.into(),
        raw: entry.clone(),
    }
}

/// How adapters reach their catalogue.
#[derive(Debug, Clone)]
pub struct CatalogueOptions {
    /// Timeout of one HTTP request.
    pub timeout: std::time::Duration,
    /// Retries of one request.
    pub retry: http::RetryPolicy,
    /// Products per page (OData caps it at 1000).
    pub page_size: u32,
    /// How far before the publication window a STAC sensing window starts.
    pub stac_sensing_lookback: std::time::Duration,
    /// Largest response body read, in bytes.
    pub max_body_bytes: u64,
    /// Where listed inputs may be read from (a local catalogue adds its own directory).
    pub input_roots: input_roots::InputRoots,
}

/// Opens the catalogue named by `spec`, screened by `options.input_roots` (plus the catalogue's own
/// directory when it is local):
/// - `odata+https://host/odata/v1` (or any `http(s)` URL whose path contains `/odata`): CDSE OData;
/// - `stac+https://host/v1` (or any other `http(s)` URL): a STAC API;
/// - `dir:PATH`, `file://PATH` or a plain path: a local directory.
pub fn open(
    spec: &str,
    options: &CatalogueOptions,
) -> Result<std::sync::Arc<dyn Catalogue>, CatalogueError> {
    let mut roots = options.input_roots.clone();
    let catalogue = open_unscreened(spec, options, &mut roots)?;
    Ok(std::sync::Arc::new(input_roots::InputScreen::new(
        catalogue, roots,
    )))
}

fn open_unscreened(
    spec: &str,
    options: &CatalogueOptions,
    roots: &mut input_roots::InputRoots,
) -> Result<std::sync::Arc<dyn Catalogue>, CatalogueError> {
    use std::sync::Arc;
    let http = || {
        http::HttpFetcher::new(options.timeout, options.retry.clone())
            .map(|h| h.with_max_body(options.max_body_bytes))
    };
    if let Some(url) = spec.strip_prefix("odata+") {
        return Ok(Arc::new(odata::ODataCatalogue::new(
            url,
            http()?,
            options.page_size.min(odata::MAX_PAGE_SIZE),
        )?));
    }
    if let Some(url) = spec.strip_prefix("stac+") {
        return Ok(Arc::new(stac::StacCatalogue::new(
            url,
            http()?,
            options.page_size,
            options.stac_sensing_lookback,
        )?));
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        let is_odata = url::Url::parse(spec).is_ok_and(|u| u.path().contains("/odata"));
        return open_unscreened(
            &format!("{}+{spec}", if is_odata { "odata" } else { "stac" }),
            options,
            roots,
        );
    }
    let path = local_directory(spec).ok_or_else(|| {
        CatalogueError::Config(format!(
            "catalogue {spec:?} is neither an OData or STAC URL nor a directory"
        ))
    })?;
    // The entries of a local catalogue are its own inputs: `file://` URLs under its directory.
    roots
        .allow_directory(std::path::Path::new(path))
        .map_err(|e| CatalogueError::Config(format!("catalogue {spec:?}: {e}")))?;
    Ok(Arc::new(local::LocalDirectoryCatalogue::new(path)))
}

/// The directory of a local catalogue `spec` (`dir:PATH`, `file://PATH` or a plain path), or `None`
/// when `spec` names an HTTP catalogue or nothing.
pub fn local_directory(spec: &str) -> Option<&str> {
    let http = spec.starts_with("odata+") || spec.starts_with("stac+");
    if http || (spec.contains("://") && !spec.starts_with("file://")) {
        return None;
    }
    let path = spec
        .strip_prefix("dir:")
        .or_else(|| spec.strip_prefix("file://"))
        .unwrap_or(spec);
    (!path.is_empty() && !path.contains("://")).then_some(path)
}

/// The collection and product type that list inputs of `input` in a catalogue of `source` kind
/// (the prefix of [`Catalogue::source`]).
pub fn collection_for(
    source: &str,
    input: swath_domain::template::InputProductType,
) -> (String, Option<String>) {
    use swath_domain::template::InputProductType::{Any, S1, S2};
    let stac = source.starts_with("stac:");
    let (collection, product_type) = match (input, stac) {
        (S2, false) | (Any, false) => ("SENTINEL-2", (input == S2).then_some("S2MSI1C")),
        (S1, false) => ("SENTINEL-1", Some("IW_GRDH_1S")),
        (S2, true) | (Any, true) => ("sentinel-2-l1c", None),
        (S1, true) => ("sentinel-1-grd", None),
    };
    (collection.to_string(), product_type.map(String::from))
}

//! CDSE OData: `Products` filtered by collection, product type, area and a `PublicationDate` window,
//! ordered by `PublicationDate asc`, paged with `@odata.nextLink`.
//!
//! The catalogue stops giving next links past `$skip=10000`. When a full page comes back without one,
//! the adapter restarts the window at the last publication time it saw (products at that exact time
//! are listed again; ingestion is idempotent, so that costs nothing but a few rows).
//!
//! Next links are followed only on the service's own origin (see [`super::CatalogueError::ForeignLink`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use swath_domain::listing::CatalogueProduct;
use url::Url;

use super::http::HttpFetcher;
use super::{
    invalid_entry, next_link, parse_time, Catalogue, CatalogueError, CataloguePage, CatalogueQuery,
    InvalidEntry, PageCursor, Withdrawal, WithdrawalQuery, WithdrawnPage,
};

/// Largest `$top` the catalogue accepts.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Largest `$skip` the catalogue gives a next link for.
pub const SKIP_LIMIT: usize = 10_000;

/// A CDSE OData catalogue.
#[derive(Debug, Clone)]
pub struct ODataCatalogue {
    base: Url,
    http: HttpFetcher,
    page_size: u32,
    skip_limit: usize,
}

impl ODataCatalogue {
    /// An adapter for the OData service at `base` (e.g. `https://catalogue.dataspace.copernicus.eu/odata/v1`).
    pub fn new(base: &str, http: HttpFetcher, page_size: u32) -> Result<Self, CatalogueError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| CatalogueError::Config(format!("OData base URL {base:?}: {e}")))?;
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(CatalogueError::Config(format!(
                "OData page size {page_size} must be 1 to {MAX_PAGE_SIZE}"
            )));
        }
        Ok(ODataCatalogue {
            base,
            http,
            page_size,
            skip_limit: SKIP_LIMIT,
        })
    }

    /// The same adapter for a service whose `$skip` limit is `limit` instead of [`SKIP_LIMIT`].
    pub fn with_skip_limit(mut self, limit: usize) -> Self {
        self.skip_limit = limit;
        self
    }

    /// The first request of a window starting at `from`.
    pub fn request_url(&self, query: &CatalogueQuery, from: DateTime<Utc>) -> String {
        let mut filter = vec![format!(
            "Collection/Name eq '{}'",
            query.collection.replace('\'', "''")
        )];
        if let Some(product_type) = &query.product_type {
            filter.push(format!(
                "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq '{}')",
                product_type.replace('\'', "''")
            ));
        }
        filter.push(format!(
            "PublicationDate ge {} and PublicationDate lt {}",
            odata_time(from),
            odata_time(query.published_to)
        ));
        if let Some([w, s, e, n]) = query.bbox {
            filter.push(format!(
                "OData.CSC.Intersects(area=geography'SRID=4326;POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))')"
            ));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL has path segments")
            .push("Products");
        url.query_pairs_mut()
            .append_pair("$filter", &filter.join(" and "))
            .append_pair("$orderby", "PublicationDate asc")
            .append_pair("$top", &self.page_size.to_string())
            .append_pair("$expand", "Attributes");
        url.to_string()
    }
}

impl ODataCatalogue {
    /// The first request of the withdrawals of `query` from `from`: `DeletedProducts` filtered and
    /// ordered by `DeletionDate`.
    pub fn withdrawal_url(&self, query: &WithdrawalQuery, from: DateTime<Utc>) -> String {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .push("DeletedProducts");
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!(
                    "DeletionDate ge {} and DeletionDate lt {}",
                    odata_time(from),
                    odata_time(query.until)
                ),
            )
            .append_pair("$orderby", "DeletionDate asc")
            .append_pair("$top", &self.page_size.to_string());
        url.to_string()
    }
}

/// Longest withdrawal cause kept (longer ones are cut): it ends up in job messages.
const MAX_CAUSE_CHARS: usize = 200;

/// One `DeletedProducts` entry, or why it is unusable. The name is hostile input: it must be a
/// Sentinel product name, and becomes its canonical form; the cause is cut and stripped of control
/// characters.
pub fn withdrawal_from_entry(entry: &Value) -> Result<Withdrawal, InvalidEntry> {
    let invalid = |reason: &str| invalid_entry(entry, &["/Name", "/Id"], reason);
    let raw_name = entry
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid("no Name"))?;
    // A bare name only: no path (which the name parser would accept), no control character, no
    // novel.
    if raw_name.len() > 256
        || raw_name.contains(['/', '\\'])
        || raw_name.chars().any(char::is_control)
    {
        return Err(invalid(
            "Name is not a product name: a path, a control character or over 256 bytes",
        ));
    }
    let name = swath_domain::product::ProductName::parse(raw_name)
        .map_err(|e| invalid(&format!("Name is not a product name: {e}")))?
        .canonical();
    let deleted_at = entry
        .get("DeletionDate")
        .map(|v| {
            parse_time(v)
                .ok_or_else(|| invalid(&format!("DeletionDate {v} is not an RFC 3339 time")))
        })
        .unwrap_or_else(|| Err(invalid("no DeletionDate")))?;
    let cause: String = entry
        .get("DeletionCause")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_CAUSE_CHARS)
        .collect();
    let cause = match cause.trim() {
        "" => "no cause given".to_string(),
        c => c.to_string(),
    };
    Ok(Withdrawal {
        name,
        deleted_at,
        cause,
    })
}

/// The `$skip` of a request URL (0 when absent).
fn skip_of(url: &str) -> usize {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "$skip")
                .and_then(|(_, v)| v.parse().ok())
        })
        .unwrap_or(0)
}

fn odata_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One OData product entry, or why it is unusable.
pub fn product_from_entry(entry: &Value) -> Result<CatalogueProduct, InvalidEntry> {
    let invalid = |reason: &str| invalid_entry(entry, &["/Name", "/Id"], reason);
    let name = entry
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid("no Name"))?;
    let published_at = entry
        .get("PublicationDate")
        .map(|v| {
            parse_time(v)
                .ok_or_else(|| invalid(&format!("PublicationDate {v} is not an RFC 3339 time")))
        })
        .unwrap_or_else(|| Err(invalid("no PublicationDate")))?;
    let input_path = entry
        .get("S3Path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("no S3Path"))?;
    let attribute = |name: &str| {
        entry
            .get("Attributes")
            .and_then(Value::as_array)
            .and_then(|attrs| {
                attrs
                    .iter()
                    .find(|a| a.get("Name").and_then(Value::as_str) == Some(name))
                    .and_then(|a| a.get("Value"))
            })
    };
    Ok(CatalogueProduct {
        catalogue_id: entry.get("Id").and_then(Value::as_str).map(String::from),
        name: name.to_string(),
        input_path: input_path.to_string(),
        published_at,
        sensing_start: entry.pointer("/ContentDate/Start").and_then(parse_time),
        sensing_end: entry.pointer("/ContentDate/End").and_then(parse_time),
        footprint: entry.get("GeoFootprint").filter(|g| g.is_object()).cloned(),
        cloud_cover: attribute("cloudCover").and_then(Value::as_f64),
        size_bytes: entry
            .get("ContentLength")
            .and_then(Value::as_u64)
            .filter(|&n| n > 0),
    })
}

#[async_trait]
impl Catalogue for ODataCatalogue {
    fn source(&self) -> String {
        format!("odata:{}", self.base)
    }

    async fn page(
        &self,
        query: &CatalogueQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError> {
        let window_start = cursor.map_or(query.published_from, |c| c.window_start);
        let url = cursor.map_or_else(|| self.request_url(query, window_start), |c| c.url.clone());
        let json = self.http.json(&url, None).await?;
        let entries =
            json.get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| CatalogueError::BadPage {
                    url: url.clone(),
                    problem: "no \"value\" array".into(),
                })?;
        let mut page = CataloguePage::default();
        for entry in entries {
            match product_from_entry(entry) {
                Ok(product) => page.products.push(product),
                Err(invalid) => page.invalid.push(invalid),
            }
        }
        let read = ReadPage {
            url: &url,
            count: entries.len(),
            window_start,
            last: page.products.iter().map(|p| p.published_at).max(),
        };
        page.next = self.next_page(&json, read, "publication", |from| {
            self.request_url(query, from)
        })?;
        Ok(page)
    }

    async fn withdrawn(
        &self,
        query: &WithdrawalQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<WithdrawnPage, CatalogueError> {
        self.withdrawn_page(query, cursor).await
    }
}

/// A page just read, as [`ODataCatalogue::next_page`] needs it.
struct ReadPage<'a> {
    /// Its request.
    url: &'a str,
    /// How many entries it held.
    count: usize,
    /// Where the window it lists starts.
    window_start: DateTime<Utc>,
    /// The latest publication (or deletion) time of its usable entries.
    last: Option<DateTime<Utc>>,
}

impl ODataCatalogue {
    /// Where the page after the one `read` starts: its next link, on the service's origin only; or, when a full page has
    /// no next link because the next one would need a `$skip` past the limit (where the catalogue
    /// stops giving links), the window restarted at `last`, the page's latest `what` time
    /// (`restart` builds that request); or `None` at the end of the listing.
    fn next_page(
        &self,
        json: &Value,
        read: ReadPage<'_>,
        what: &str,
        restart: impl Fn(DateTime<Utc>) -> String,
    ) -> Result<Option<PageCursor>, CatalogueError> {
        let ReadPage {
            url,
            count,
            window_start,
            last,
        } = read;
        if let Some(link) = json.get("@odata.nextLink").and_then(Value::as_str) {
            return Ok(Some(PageCursor {
                url: next_link(&self.base, url, link)?.to_string(),
                body: None,
                window_start,
            }));
        }
        if count < self.page_size as usize || skip_of(url) + count <= self.skip_limit {
            return Ok(None);
        }
        let last = last
            .filter(|&t| t > window_start)
            .ok_or_else(|| CatalogueError::BadPage {
                url: url.to_string(),
                problem: format!(
                    "a full page without a next link, and no later {what} time to restart the window from than {window_start}"
                ),
            })?;
        tracing::info!(restart_from = %last, "OData paging limit reached: splitting the {what} window");
        Ok(Some(PageCursor {
            url: restart(last),
            body: None,
            window_start: last,
        }))
    }

    /// The withdrawals page at `cursor` (see [`Catalogue::withdrawn`]), with the same paging as
    /// products: next links on the service's origin only, and the window restarted at the last
    /// deletion time seen past the `$skip` limit.
    async fn withdrawn_page(
        &self,
        query: &WithdrawalQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<WithdrawnPage, CatalogueError> {
        let window_start = cursor.map_or(query.since, |c| c.window_start);
        let url = cursor.map_or_else(
            || self.withdrawal_url(query, window_start),
            |c| c.url.clone(),
        );
        let json = self.http.json(&url, None).await?;
        let entries =
            json.get("value")
                .and_then(Value::as_array)
                .ok_or_else(|| CatalogueError::BadPage {
                    url: url.clone(),
                    problem: "no \"value\" array".into(),
                })?;
        let mut page = WithdrawnPage::default();
        for entry in entries {
            match withdrawal_from_entry(entry) {
                Ok(w) => page.withdrawals.push(w),
                Err(invalid) => {
                    tracing::warn!(name = ?invalid.name, reason = ?invalid.reason, "unusable withdrawn-product entry skipped");
                    page.invalid.push(invalid);
                }
            }
        }
        let read = ReadPage {
            url: &url,
            count: entries.len(),
            window_start,
            last: page.withdrawals.iter().map(|w| w.deleted_at).max(),
        };
        page.next = self.next_page(&json, read, "deletion", |from| {
            self.withdrawal_url(query, from)
        })?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::from_str(include_str!(
            "../../../testing/data/odata/s2_l1c_sample_page.json"
        ))
        .unwrap()
    }

    #[test]
    fn reads_the_real_sample_page() {
        let page = sample();
        let products: Vec<_> = page["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| product_from_entry(e).unwrap())
            .collect();
        assert_eq!(products.len(), 2);
        let p = &products[0];
        assert_eq!(
            p.name,
            "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE"
        );
        assert_eq!(
            p.catalogue_id.as_deref(),
            Some("05edf2bb-d103-49f1-a677-9e474138d84f")
        );
        assert_eq!(p.input_path, "/eodata/Sentinel-2/MSI/L1C_N0500/2020/08/08/S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE");
        assert_eq!(
            p.published_at.to_rfc3339(),
            "2023-08-23T09:26:23.105134+00:00"
        );
        assert_eq!(p.size_bytes, Some(224_105_657));
        assert!((p.cloud_cover.unwrap() - 95.136736479015).abs() < 1e-9);
        assert_eq!(p.footprint.as_ref().unwrap()["type"], "Polygon");
    }

    /// The `DeletedProducts` format: see `testing/data/README.md` for where it comes from.
    fn deleted_page() -> Value {
        serde_json::from_str(include_str!(
            "../../../testing/data/odata/deleted_products_page_1.json"
        ))
        .unwrap()
    }

    #[test]
    fn reads_withdrawn_entries_and_skips_unusable_ones() {
        let page = deleted_page();
        let entries = page["value"].as_array().unwrap();
        let w = withdrawal_from_entry(&entries[0]).unwrap();
        assert_eq!(
            w.name,
            "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305"
        );
        assert_eq!(w.cause, "Duplicated product");
        assert_eq!(w.deleted_at.to_rfc3339(), "2023-10-02T08:15:12.345+00:00");
        let bad = withdrawal_from_entry(&entries[2]).unwrap_err();
        assert!(bad.reason.contains("DeletionDate"), "{}", bad.reason);
        assert!(bad.name.starts_with("S2A_MSIL1C_20220301T104021"));

        // Names are hostile input: anything but a product name is refused.
        for hostile in [
            "../../etc/passwd",
            "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305.SAFE/../x",
            "x' or 1 eq 1",
            "/eodata/S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305.SAFE",
            "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305\u{0}",
            "",
        ] {
            let mut entry = entries[0].clone();
            entry["Name"] = hostile.into();
            let err = withdrawal_from_entry(&entry).unwrap_err();
            assert!(err.reason.contains("Name"), "{hostile:?}: {}", err.reason);
        }
        // Lower case and no `.SAFE` are the same product; the cause is cut and cleaned.
        let mut entry = entries[0].clone();
        entry["Name"] = "s2a_msil1c_20210404t112111_n0500_r037_t31veg_20230209t101305".into();
        entry["DeletionCause"] = format!("bad\n{}", "x".repeat(1000)).into();
        match withdrawal_from_entry(&entry) {
            Ok(w) => {
                assert_eq!(
                    w.name,
                    "S2A_MSIL1C_20210404T112111_N0500_R037_T31VEG_20230209T101305"
                );
                assert!(!w.cause.contains('\n') && w.cause.chars().count() <= MAX_CAUSE_CHARS);
            }
            Err(e) => assert!(e.reason.contains("Name"), "{}", e.reason),
        }
        entry["DeletionCause"] = Value::Null;
        entry["Name"] = entries[0]["Name"].clone();
        assert_eq!(
            withdrawal_from_entry(&entry).unwrap().cause,
            "no cause given"
        );
        entry.as_object_mut().unwrap().remove("DeletionDate");
        assert_eq!(
            withdrawal_from_entry(&entry).unwrap_err().reason,
            "no DeletionDate"
        );
    }

    #[test]
    fn the_withdrawal_request_filters_and_orders_by_deletion_date() {
        let http = HttpFetcher::new(std::time::Duration::from_secs(5), Default::default()).unwrap();
        let odata = ODataCatalogue::new("https://catalogue.example/odata/v1", http, 500).unwrap();
        let query = WithdrawalQuery {
            since: "2026-05-01T06:00:00Z".parse().unwrap(),
            until: "2026-05-01T07:00:00Z".parse().unwrap(),
        };
        let url = Url::parse(&odata.withdrawal_url(&query, query.since)).unwrap();
        assert_eq!(url.path(), "/odata/v1/DeletedProducts");
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs["$filter"],
            "DeletionDate ge 2026-05-01T06:00:00.000000Z and DeletionDate lt 2026-05-01T07:00:00.000000Z"
        );
        assert_eq!(pairs["$orderby"], "DeletionDate asc");
        assert_eq!(pairs["$top"], "500");
    }

    #[test]
    fn unusable_entries_say_why() {
        let mut entry = sample()["value"][0].clone();
        entry["PublicationDate"] = "yesterday".into();
        let err = product_from_entry(&entry).unwrap_err();
        assert!(
            err.reason.contains("not an RFC 3339 time"),
            "{}",
            err.reason
        );
        assert!(err.name.starts_with("S2A_MSIL1C_20200808T010311"));
        entry.as_object_mut().unwrap().remove("Name");
        assert_eq!(
            product_from_entry(&entry).unwrap_err().name,
            "05edf2bb-d103-49f1-a677-9e474138d84f"
        );
        let err = product_from_entry(
            &serde_json::json!({"Name": "X.SAFE", "PublicationDate": "2024-01-01T00:00:00Z"}),
        )
        .unwrap_err();
        assert_eq!(err.reason, "no S3Path");
    }

    #[test]
    fn the_request_filters_collection_type_window_and_area() {
        let http = HttpFetcher::new(std::time::Duration::from_secs(5), Default::default()).unwrap();
        let odata = ODataCatalogue::new("https://catalogue.example/odata/v1/", http, 1000).unwrap();
        let query = CatalogueQuery {
            collection: "SENTINEL-2".into(),
            product_type: Some("S2MSI1C".into()),
            bbox: Some([-31.9, 27.6, 45.0, 71.3]),
            published_from: "2026-05-01T06:00:00Z".parse().unwrap(),
            published_to: "2026-05-01T07:00:00Z".parse().unwrap(),
        };
        let url = Url::parse(&odata.request_url(&query, query.published_from)).unwrap();
        assert_eq!(url.path(), "/odata/v1/Products");
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        let filter = &pairs["$filter"];
        assert!(filter.starts_with("Collection/Name eq 'SENTINEL-2' and Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and att/OData.CSC.StringAttribute/Value eq 'S2MSI1C')"), "{filter}");
        assert!(filter.contains("PublicationDate ge 2026-05-01T06:00:00.000000Z and PublicationDate lt 2026-05-01T07:00:00.000000Z"), "{filter}");
        assert!(filter.ends_with("OData.CSC.Intersects(area=geography'SRID=4326;POLYGON((-31.9 27.6,45 27.6,45 71.3,-31.9 71.3,-31.9 27.6))')"), "{filter}");
        assert_eq!(pairs["$orderby"], "PublicationDate asc");
        assert_eq!(pairs["$top"], "1000");
        assert!(ODataCatalogue::new(
            "not a url",
            HttpFetcher::new(std::time::Duration::from_secs(1), Default::default()).unwrap(),
            10
        )
        .is_err());
        let http = HttpFetcher::new(std::time::Duration::from_secs(1), Default::default()).unwrap();
        assert!(ODataCatalogue::new("http://x/odata/v1", http, 1001).is_err());
    }
}

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
    InvalidEntry, PageCursor,
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
        page.next = match json.get("@odata.nextLink").and_then(Value::as_str) {
            Some(link) => Some(PageCursor {
                url: next_link(&self.base, &url, link)?.to_string(),
                body: None,
                window_start,
            }),
            // No next link: the end of the listing, unless the next page would have needed a $skip
            // beyond the limit, where the catalogue stops giving links.
            None if entries.len() >= self.page_size as usize
                && skip_of(&url) + entries.len() > self.skip_limit =>
            {
                let last = page.products.iter().map(|p| p.published_at).max().filter(|&t| t > window_start).ok_or_else(|| {
                    CatalogueError::BadPage {
                        url: url.clone(),
                        problem: format!(
                            "a full page without a next link, and no later publication time to restart the window from than {window_start}"
                        ),
                    }
                })?;
                tracing::info!(restart_from = %last, "OData paging limit reached: splitting the publication window");
                Some(PageCursor {
                    url: self.request_url(query, last),
                    body: None,
                    window_start: last,
                })
            }
            None => None,
        };
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

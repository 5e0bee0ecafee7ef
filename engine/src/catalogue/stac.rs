//! A STAC API: `GET /search` with `collections`, `datetime` and `bbox`, paged by the `rel=next` link
//! of each page, whatever form it takes (a token in the URL, `next=` keys, or a POST body).
//!
//! STAC filters on sensing time (`datetime`), not on publication time. The adapter therefore lists a
//! sensing window that starts `sensing_lookback` before the publication window, and the ingestion's
//! dedup drops what it has seen before.
//!
//! Next links are followed only on the API's own origin (see [`super::CatalogueError::ForeignLink`]).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use swath_domain::listing::CatalogueProduct;
use url::Url;

use super::http::HttpFetcher;
use super::{
    invalid_entry, next_link, parse_time, Catalogue, CatalogueError, CataloguePage, CatalogueQuery,
    InvalidEntry, PageCursor,
};

/// A STAC API catalogue.
#[derive(Debug, Clone)]
pub struct StacCatalogue {
    base: Url,
    http: HttpFetcher,
    page_size: u32,
    sensing_lookback: Duration,
}

impl StacCatalogue {
    /// An adapter for the STAC API at `base` (e.g. `https://stac.dataspace.copernicus.eu/v1`).
    pub fn new(
        base: &str,
        http: HttpFetcher,
        page_size: u32,
        sensing_lookback: Duration,
    ) -> Result<Self, CatalogueError> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| CatalogueError::Config(format!("STAC base URL {base:?}: {e}")))?;
        if page_size == 0 {
            return Err(CatalogueError::Config(
                "STAC page size must be at least 1".into(),
            ));
        }
        Ok(StacCatalogue {
            base,
            http,
            page_size,
            sensing_lookback,
        })
    }

    /// The first `/search` request of `query`.
    pub fn request_url(&self, query: &CatalogueQuery) -> String {
        let lookback = chrono::TimeDelta::from_std(self.sensing_lookback)
            .unwrap_or(chrono::TimeDelta::days(7));
        let from = query.published_from - lookback;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL has path segments")
            .push("search");
        {
            let mut pairs = url.query_pairs_mut();
            pairs
                .append_pair("collections", &query.collection)
                .append_pair(
                    "datetime",
                    &format!(
                        "{}/{}",
                        from.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                        query.published_to.format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    ),
                )
                .append_pair("limit", &self.page_size.to_string())
                .append_pair("sortby", "+properties.datetime");
            if let Some([w, s, e, n]) = query.bbox {
                pairs.append_pair("bbox", &format!("{w},{s},{e},{n}"));
            }
        }
        url.to_string()
    }
}

/// One STAC item, or why it is unusable. The product name is `s2:product_uri` when the provider
/// gives it (Earth Search), else the item id; the storage path is the `enclosure` link, else the
/// directory of the `safe_manifest` asset.
pub fn product_from_item(item: &Value) -> Result<CatalogueProduct, InvalidEntry> {
    let invalid =
        |reason: &str| invalid_entry(item, &["/properties/s2:product_uri", "/id"], reason);
    let props = item
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| invalid("no properties"))?;
    let name = props
        .get("s2:product_uri")
        .or_else(|| item.get("id"))
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid("no id"))?;
    let published_at = match props.get("published") {
        Some(v) => parse_time(v)
            .ok_or_else(|| invalid(&format!("published {v} is not an RFC 3339 time")))?,
        None => return Err(invalid("no published time")),
    };
    let enclosure = item
        .get("links")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("rel").and_then(Value::as_str) == Some("enclosure"))
                .and_then(|l| l.get("href"))
                .and_then(Value::as_str)
        });
    let manifest_dir = item
        .pointer("/assets/safe_manifest/href")
        .and_then(Value::as_str)
        .and_then(|h| h.rsplit_once('/').map(|(dir, _)| dir));
    let input_path = enclosure.or(manifest_dir).ok_or_else(|| {
        invalid("no enclosure link nor safe_manifest asset: storage path unknown")
    })?;
    Ok(CatalogueProduct {
        catalogue_id: item.get("id").and_then(Value::as_str).map(String::from),
        name: name.to_string(),
        input_path: input_path.trim_end_matches('/').to_string(),
        published_at,
        sensing_start: props
            .get("start_datetime")
            .or_else(|| props.get("datetime"))
            .and_then(parse_time),
        sensing_end: props
            .get("end_datetime")
            .or_else(|| props.get("datetime"))
            .and_then(parse_time),
        footprint: item.get("geometry").filter(|g| g.is_object()).cloned(),
        cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
        size_bytes: None,
    })
}

#[async_trait]
impl Catalogue for StacCatalogue {
    fn source(&self) -> String {
        format!("stac:{}", self.base)
    }

    async fn page(
        &self,
        query: &CatalogueQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError> {
        let url = cursor.map_or_else(|| self.request_url(query), |c| c.url.clone());
        let json = self
            .http
            .json(&url, cursor.and_then(|c| c.body.as_ref()))
            .await?;
        let features = json
            .get("features")
            .and_then(Value::as_array)
            .ok_or_else(|| CatalogueError::BadPage {
                url: url.clone(),
                problem: "no \"features\" array".into(),
            })?;
        let mut page = CataloguePage::default();
        for item in features {
            match product_from_item(item) {
                Ok(product) => page.products.push(product),
                Err(invalid) => page.invalid.push(invalid),
            }
        }
        let next = json
            .get("links")
            .and_then(Value::as_array)
            .and_then(|links| {
                links
                    .iter()
                    .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            });
        page.next = match next {
            None => None,
            Some(link) => {
                let href = link.get("href").and_then(Value::as_str).ok_or_else(|| {
                    CatalogueError::BadPage {
                        url: url.clone(),
                        problem: "a next link without href".into(),
                    }
                })?;
                // Relative links are resolved against the page that carried them; links to
                // another origin than the API's are not followed.
                let href = next_link(&self.base, &url, href)?;
                let post = link
                    .get("method")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.eq_ignore_ascii_case("POST"));
                let body = if post {
                    Some(
                        link.get("body")
                            .cloned()
                            .unwrap_or(Value::Object(Default::default())),
                    )
                } else {
                    None
                };
                if features.is_empty()
                    && cursor.is_some_and(|c| c.url == href.as_str() && c.body == body)
                {
                    return Err(CatalogueError::BadPage {
                        url,
                        problem: "an empty page links to itself".into(),
                    });
                }
                Some(PageCursor {
                    url: href.to_string(),
                    body,
                    window_start: query.published_from,
                })
            }
        };
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Value {
        serde_json::from_str(include_str!("../../../testing/data/stac/s2_l1c_item.json")).unwrap()
    }

    #[test]
    fn reads_the_real_cdse_item() {
        let p = product_from_item(&item()).unwrap();
        assert_eq!(
            p.name,
            "S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505"
        );
        assert_eq!(p.input_path, "s3://eodata/Sentinel-2/MSI/L1C/2024/01/16/S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505.SAFE");
        assert_eq!(
            p.published_at.to_rfc3339(),
            "2024-01-16T01:56:53.447035+00:00"
        );
        assert_eq!(
            p.sensing_start.unwrap().to_rfc3339(),
            "2024-01-16T00:07:41.024+00:00"
        );
        assert_eq!(p.cloud_cover, Some(0.0));
        assert_eq!(p.footprint.as_ref().unwrap()["type"], "Polygon");
    }

    #[test]
    fn unusable_items_say_why() {
        let mut it = item();
        it["properties"]
            .as_object_mut()
            .unwrap()
            .remove("published");
        assert_eq!(
            product_from_item(&it).unwrap_err().reason,
            "no published time"
        );
        let mut it = item();
        it["links"] = serde_json::json!([]);
        it["assets"]
            .as_object_mut()
            .unwrap()
            .remove("safe_manifest");
        let err = product_from_item(&it).unwrap_err();
        assert!(
            err.reason.contains("storage path unknown"),
            "{}",
            err.reason
        );
        assert_eq!(
            err.name,
            "S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505"
        );
    }

    #[test]
    fn the_request_lists_a_sensing_window_before_the_publication_window() {
        let http = HttpFetcher::new(Duration::from_secs(5), Default::default()).unwrap();
        let stac = StacCatalogue::new(
            "https://stac.example/v1",
            http,
            100,
            Duration::from_secs(2 * 86400),
        )
        .unwrap();
        let query = CatalogueQuery {
            collection: "sentinel-2-l1c".into(),
            product_type: None,
            bbox: Some([1.0, 2.0, 3.0, 4.0]),
            published_from: "2026-05-10T00:00:00Z".parse().unwrap(),
            published_to: "2026-05-11T00:00:00Z".parse().unwrap(),
        };
        let url = Url::parse(&stac.request_url(&query)).unwrap();
        assert_eq!(url.path(), "/v1/search");
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["collections"], "sentinel-2-l1c");
        assert_eq!(
            pairs["datetime"],
            "2026-05-08T00:00:00.000000Z/2026-05-11T00:00:00.000000Z"
        );
        assert_eq!(pairs["bbox"], "1,2,3,4");
        assert_eq!(pairs["limit"], "100");
    }
}

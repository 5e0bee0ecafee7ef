//! Publication messages: the resto feature that announces one output product to the catalogues.
//!
//! The shape is the original's (`reference/original-system.md` §3.6) so that its consumer keeps working;
//! how the message is serialized and sent is the publisher's business, not the job type's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::job::{Job, OutputProduct};

/// Where published products live and who publishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicationTarget {
    /// `collection_name` of the message.
    pub collection_name: String,
    /// `organisationName` of the message.
    pub organisation_name: String,
    /// S3 endpoint host (`host_base`).
    pub host_base: String,
    /// Output bucket (`s3_bucket`).
    pub bucket: String,
    /// Root that `productIdentifier` starts with.
    pub eodata_root: String,
}

impl Default for PublicationTarget {
    fn default() -> Self {
        PublicationTarget {
            collection_name: "HR-S&I".into(),
            organisation_name: "EEA".into(),
            host_base: "s3.waw2-1.cloudferro.com".into(),
            bucket: "HRSI".into(),
            eodata_root: "/eodata".into(),
        }
    }
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductPublication {
    /// Product kind (e.g. `fsc`).
    pub kind: String,
    /// The product's title, stable across republications (used as the message id).
    pub product_id: String,
    /// The message body.
    pub message: Value,
}

/// Why a publication message could not be built. The job is reported, never silently skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicationError {
    /// The job has no product of that kind.
    #[error("job {job_id} has no output product {product:?}")]
    UnknownProduct {
        /// The job.
        job_id: i64,
        /// The product kind asked for.
        product: String,
    },
    /// A field the message needs is missing from the worker's results.
    #[error("job {job_id}, product {product:?}: {field} is missing from the worker's results")]
    MissingField {
        /// The job.
        job_id: i64,
        /// The product kind.
        product: String,
        /// The missing field.
        field: &'static str,
    },
}

/// Product-type data that the job type knows and the worker's metadata does not.
#[derive(Debug, Clone, Copy)]
pub struct RestoProductInfo<'a> {
    /// `productType`, e.g. `FSC`.
    pub product_type: &'a str,
    /// `mission`, e.g. `S2`.
    pub mission: &'a str,
    /// Whether `cloudCover` must be present (optical products).
    pub needs_cloud_cover: bool,
}

/// The original's date format: UTC without an offset, microseconds.
fn resto_date(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// The `V<3 digits>` processing baseline found in a product title, if any.
fn processing_baseline(title: &str) -> Option<&str> {
    title.split('_').find(|part| {
        part.len() == 4 && part.starts_with('V') && part[1..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// Builds the resto feature message for one output product of `job`.
pub fn resto_feature(
    job: &Job,
    product: &OutputProduct,
    info: RestoProductInfo<'_>,
    target: &PublicationTarget,
) -> Result<ProductPublication, PublicationError> {
    let missing = |field| PublicationError::MissingField {
        job_id: job.id,
        product: product.kind.clone(),
        field,
    };
    let path = product.path.trim_matches('/');
    let title = path
        .rsplit('/')
        .next()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| missing("path"))?;
    let wkt = product
        .infos
        .get("wkt")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("wkt"))?;
    let resolution = product
        .infos
        .get("resolution")
        .filter(|v| v.is_number())
        .ok_or_else(|| missing("resolution"))?;
    let size = product.size_bytes.ok_or_else(|| missing("resourceSize"))?;
    let completed = product
        .completed_at
        .ok_or_else(|| missing("completionDate"))?;
    let start = product
        .infos
        .get("startDate")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<DateTime<Utc>>().ok())
        .or(job.measured_at)
        .ok_or_else(|| missing("startDate"))?;
    let baseline = processing_baseline(title).ok_or_else(|| missing("processingBaseline"))?;
    let mut properties = json!({
        "productIdentifier": format!("{}/{}/{}", target.eodata_root.trim_end_matches('/'), target.bucket, path),
        "title": title,
        "resourceSize": size,
        "organisationName": target.organisation_name,
        "startDate": resto_date(start),
        "completionDate": resto_date(completed),
        "productType": info.product_type,
        "resolution": resolution,
        "mission": info.mission,
        "processingBaseline": baseline,
        "host_base": target.host_base,
        "s3_bucket": target.bucket,
        "thumbnail": format!("Preview/{path}/thumbnail.png"),
    });
    match product.infos.get("cloudCover") {
        Some(Value::String(s)) => properties["cloudCover"] = Value::String(s.clone()),
        Some(Value::Number(n)) => {
            properties["cloudCover"] =
                Value::String(format!("{:.1}", n.as_f64().unwrap_or_default()))
        }
        _ if info.needs_cloud_cover => return Err(missing("cloudCover")),
        _ => {}
    }
    Ok(ProductPublication {
        kind: product.kind.clone(),
        product_id: title.to_string(),
        message: json!({
            "collection_name": target.collection_name,
            "resto": {
                "type": "Feature",
                "geometry": { "wkt": wkt },
                "properties": properties,
            }
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_is_found_in_titles() {
        assert_eq!(
            processing_baseline("FSC_20210413T101347_S2A_T34VEM_V100_1"),
            Some("V100")
        );
        assert_eq!(
            processing_baseline("FSC_20210413T101347_S2A_T34VEM_1"),
            None
        );
        assert_eq!(processing_baseline("VXYZ_V1"), None);
    }

    #[test]
    fn dates_use_the_original_format() {
        let at: DateTime<Utc> = "2021-04-13T10:13:47.668204Z".parse().unwrap();
        assert_eq!(resto_date(at), "2021-04-13T10:13:47.668204");
    }
}

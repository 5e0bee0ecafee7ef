//! The ingestion benchmark.
//!
//! `ingest`: N realistic Sentinel-2 L1C listings (EEA39 tiles, footprints, cloud cover) go through
//! the whole ingestion path (names parsed, area of interest, dedup and version rules, batched insert
//! with the state-machine triggers and history, quarantine and cursor, one transaction per page).
//! The baseline is a raw `COPY` of the very rows that ingestion wrote into an identical table
//! (`LIKE jobs INCLUDING ALL`: same columns, defaults, constraints and indexes), in the same database.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, TimeZone, Utc};
use sqlx::PgPool;
use swath_domain::aoi::TileGrid;
use swath_domain::listing::CatalogueProduct;
use swath_domain::JobTemplate;

use async_trait::async_trait;

use swath_engine::catalogue::{
    Catalogue, CatalogueError, CataloguePage, CatalogueQuery, PageCursor,
};
use swath_engine::db;
use swath_engine::pipeline::poller::{poll, PollWindow};

/// `n` distinct L1C products over the EEA39 tiles, one per tile and day, published two hours after
/// sensing, in publication order.
pub fn generate_products(n: usize) -> Vec<CatalogueProduct> {
    let grid = TileGrid::eea39();
    let tiles: Vec<&str> = grid.tile_ids().collect();
    let start = Utc
        .with_ymd_and_hms(2024, 1, 1, 10, 0, 0)
        .single()
        .expect("a valid date");
    let missions = ["S2A", "S2B", "S2C"];
    (0..n)
        .map(|i| {
            let tile = tiles[i % tiles.len()];
            let day = (i / tiles.len()) as i64;
            let sensing =
                start + TimeDelta::days(day) + TimeDelta::seconds((i % tiles.len()) as i64 * 3);
            let discriminator = sensing + TimeDelta::hours(2);
            let name = format!(
                "{}_MSIL1C_{}_N0511_R{:03}_T{tile}_{}.SAFE",
                missions[i % 3],
                sensing.format("%Y%m%dT%H%M%S"),
                1 + (i % 143),
                discriminator.format("%Y%m%dT%H%M%S"),
            );
            let bbox = grid
                .tile_footprint(tile)
                .expect("a grid tile")
                .bounding_rect();
            let (lo, hi) = (bbox.min(), bbox.max());
            CatalogueProduct {
                catalogue_id: Some(uuid::Uuid::new_v4().to_string()),
                input_path: format!(
                    "/eodata/Sentinel-2/MSI/L1C/{}/{name}",
                    sensing.format("%Y/%m/%d")
                ),
                name,
                published_at: discriminator + TimeDelta::minutes(10),
                sensing_start: Some(sensing),
                sensing_end: Some(sensing),
                footprint: Some(serde_json::json!({"type": "Polygon", "coordinates": [[
                    [lo.x, lo.y], [hi.x, lo.y], [hi.x, hi.y], [lo.x, hi.y], [lo.x, lo.y]
                ]]})),
                cloud_cover: Some((i % 100) as f64),
                size_bytes: Some(700_000_000),
            }
        })
        .collect()
}

/// Flushes dirty pages before a timed phase, so that a checkpoint caused by the previous phase
/// does not land in this one (untimed; skipped with a warning without the privilege).
async fn checkpoint(pool: &PgPool) {
    if let Err(e) = db::bench::checkpoint(pool).await {
        tracing::warn!(error = %e, "CHECKPOINT failed: figures may include a checkpoint");
    }
}

/// Pages held in memory, served like a catalogue (no network in the measurement).
struct MemoryCatalogue {
    pages: Vec<Vec<CatalogueProduct>>,
}

#[async_trait]
impl Catalogue for MemoryCatalogue {
    fn source(&self) -> String {
        "bench:memory".into()
    }

    async fn page(
        &self,
        _query: &CatalogueQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<CataloguePage, CatalogueError> {
        let index: usize = cursor
            .map_or(Ok(0), |c| c.url.parse())
            .map_err(|e| CatalogueError::Config(format!("bench cursor: {e}")))?;
        let products = self.pages.get(index).cloned().unwrap_or_default();
        let next = (index + 1 < self.pages.len()).then(|| PageCursor {
            url: (index + 1).to_string(),
            body: None,
            window_start: Utc::now(),
        });
        Ok(CataloguePage {
            products,
            invalid: Vec::new(),
            next,
        })
    }
}

/// What one ingestion benchmark measured.
#[derive(Debug, Clone)]
pub struct IngestBench {
    /// Products listed.
    pub products: usize,
    /// Jobs the ingestion created.
    pub jobs: usize,
    /// Time of the ingestion.
    pub ingest: Duration,
    /// Time of the raw COPY of the same rows.
    pub copy: Duration,
}

impl IngestBench {
    /// Ingested products per second.
    pub fn ingest_rate(&self) -> f64 {
        self.products as f64 / self.ingest.as_secs_f64()
    }

    /// Copied rows per second.
    pub fn copy_rate(&self) -> f64 {
        self.jobs as f64 / self.copy.as_secs_f64()
    }
}

/// Ingests `products` page by page, then COPYs the same rows into an identical table, timing both.
pub async fn bench_ingest(
    pool: &PgPool,
    job_type: &std::sync::Arc<dyn JobTemplate>,
    products: Vec<CatalogueProduct>,
    page_size: usize,
) -> anyhow::Result<IngestBench> {
    let count = products.len();
    let window = PollWindow::Explicit {
        from: products
            .iter()
            .map(|p| p.published_at)
            .min()
            .unwrap_or_else(Utc::now),
        to: products
            .iter()
            .map(|p| p.published_at)
            .max()
            .unwrap_or_else(Utc::now)
            + TimeDelta::seconds(1),
    };
    let catalogue = MemoryCatalogue {
        pages: products
            .chunks(page_size.max(1))
            .map(<[_]>::to_vec)
            .collect(),
    };
    checkpoint(pool).await;
    let started = Instant::now();
    let report = poll(pool, job_type, &catalogue, window, &mut |_| {})
        .await
        .context("ingesting")?;
    let ingest = started.elapsed();
    anyhow::ensure!(
        report.ingest.created == count,
        "ingestion created {} jobs for {count} products",
        report.ingest.created
    );
    let jobs = db::bench::count_jobs(pool).await?;

    // The same rows, exported (not timed), then loaded with COPY into a table shaped like `jobs`.
    db::bench::create_copy_table(pool).await?;
    let mut conn = pool.acquire().await?;
    let rows = db::bench::export_jobs(&mut conn).await?;
    checkpoint(pool).await;
    let started = Instant::now();
    let copied = db::bench::load_copy_table(&mut conn, rows).await?;
    let copy = started.elapsed();
    anyhow::ensure!(
        copied as i64 == jobs,
        "COPY loaded {copied} rows, ingestion wrote {jobs}"
    );
    Ok(IngestBench {
        products: count,
        jobs: jobs as usize,
        ingest,
        copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swath_domain::product::ProductName;

    #[test]
    fn generated_products_are_valid_distinct_and_in_publication_order() {
        let products = generate_products(2500);
        let mut names = std::collections::HashSet::new();
        for p in &products {
            ProductName::parse(&p.name).unwrap();
            assert!(names.insert(p.name.clone()), "{}", p.name);
        }
        assert!(products
            .windows(2)
            .all(|w| w[0].published_at <= w[1].published_at));
    }
}

//! Summaries of `jobs` for operator reads (`sql/20261207000017_job_summaries.sql`): jobs by type
//! and status, manual retries, the newest input publication per type, and timeliness histograms per
//! type and day of input publication. Triggers on `jobs` keep them in the transaction of each
//! change, so reading them costs the size of the summaries, never the size of the archive, and
//! gives the same answer as counting the table at the same snapshot. [`refresh`] recomputes them
//! from `jobs` (after a bulk load with triggers off, or to check them) and says what it changed.
//!
//! Counter rows are split into stripes (one per concurrently writing transaction): every read sums
//! over the stripes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Row};
use swath_domain::JobStatus;

use super::DbError;

/// Microseconds in an hour.
const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

/// Number of jobs per (job type, status), by type then status; pairs with no job are left out.
pub async fn job_counts<'e>(
    db: impl PgExecutor<'e>,
) -> Result<Vec<(String, JobStatus, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT job_type, status, sum(jobs)::int8 AS n FROM job_counts
         GROUP BY 1, 2 HAVING sum(jobs) <> 0 ORDER BY 1, 2",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let status: i16 = row.try_get("status")?;
            Ok((
                row.try_get("job_type")?,
                JobStatus::from_id(status).map_err(|e| DbError::Corrupt {
                    job_id: 0,
                    problem: format!("job_counts: {e}"),
                })?,
                row.try_get("n")?,
            ))
        })
        .collect()
}

/// How many jobs are manual retries (`retry_of` set).
pub async fn manual_retries<'e>(db: impl PgExecutor<'e>) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(sum(jobs), 0)::int8 FROM job_retry_counts")
            .fetch_one(db)
            .await?,
    )
}

/// The newest input publication date ever ingested, per job type (it never goes back: deleting
/// old jobs leaves it).
pub async fn newest_inputs<'e>(
    db: impl PgExecutor<'e>,
) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
    let rows = sqlx::query(
        "SELECT job_type, max(newest) AS newest FROM job_input_newest GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("job_type")?, row.try_get("newest")?)))
        .collect()
}

/// Seconds from the newest input publication ingested to now, per job type (negative when the
/// catalogue's clock is ahead).
pub async fn catalogue_lag<'e>(db: impl PgExecutor<'e>) -> Result<Vec<(String, f64)>, DbError> {
    let rows = sqlx::query(
        "SELECT job_type, extract(epoch FROM now() - max(newest))::float8 AS lag
         FROM job_input_newest GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("job_type")?, row.try_get("lag")?)))
        .collect()
}

/// What a timeliness histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Measure {
    /// From sensing to the input's publication in the catalogue.
    SensingToInput,
    /// From the input's publication to the outputs' publication (published jobs).
    InputToOutput,
}

impl Measure {
    fn from_id(id: i16) -> Result<Measure, DbError> {
        match id {
            1 => Ok(Measure::SensingToInput),
            2 => Ok(Measure::InputToOutput),
            other => Err(DbError::Corrupt {
                job_id: 0,
                problem: format!("job_timeliness: unknown measure {other}"),
            }),
        }
    }
}

/// One bucket of a timeliness histogram: the jobs whose duration falls in it and the sum of their
/// durations. Buckets are a quarter of an hour wide up to 72 hours, 6 hours wide up to 30 days,
/// then one bucket for longer (`swath_timeliness_bucket` in `sql/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's number; numbers are ordered like the durations they hold.
    pub bucket: i16,
    /// Jobs in it.
    pub jobs: i64,
    /// The sum of their durations, in microseconds.
    pub micros: i64,
}

/// The timeliness histograms of one job type and day of input publication.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DayHistograms {
    /// Sensing to input publication, buckets in order.
    pub sensing_to_input: Vec<Bucket>,
    /// Input publication to output publication, buckets in order.
    pub input_to_output: Vec<Bucket>,
}

/// The timeliness histograms of the `days` UTC days up to the day of the newest input publication
/// (of any type), by (day, job type).
pub async fn timeliness_histograms<'e>(
    db: impl PgExecutor<'e>,
    days: i32,
) -> Result<BTreeMap<(NaiveDate, String), DayHistograms>, DbError> {
    let rows = sqlx::query(
        "WITH newest AS (SELECT (max(newest) AT TIME ZONE 'UTC')::date AS day FROM job_input_newest)
         SELECT t.job_type, t.day, t.measure, t.bucket,
                sum(t.jobs)::int8 AS jobs, sum(t.micros)::int8 AS micros
         FROM job_timeliness t, newest
         WHERE t.day > newest.day - $1
         GROUP BY 1, 2, 3, 4 HAVING sum(t.jobs) <> 0
         ORDER BY 2, 1, 3, 4",
    )
    .bind(days)
    .fetch_all(db)
    .await?;
    let mut histograms: BTreeMap<(NaiveDate, String), DayHistograms> = BTreeMap::new();
    for row in &rows {
        let day: NaiveDate = row.try_get("day")?;
        let job_type: String = row.try_get("job_type")?;
        let bucket = Bucket {
            bucket: row.try_get("bucket")?,
            jobs: row.try_get("jobs")?,
            micros: row.try_get("micros")?,
        };
        let entry = histograms.entry((day, job_type)).or_default();
        match Measure::from_id(row.try_get("measure")?)? {
            Measure::SensingToInput => entry.sensing_to_input.push(bucket),
            Measure::InputToOutput => entry.input_to_output.push(bucket),
        }
    }
    Ok(histograms)
}

/// The `p` quantile (0 to 1) in hours of a histogram whose buckets are in order, as
/// `percentile_cont` computes it over the jobs with each job placed at its bucket's mean: exact when
/// the durations within each bucket are equal, otherwise off by less than a bucket's width. `None`
/// for an empty histogram.
pub fn quantile_hours(buckets: &[Bucket], p: f64) -> Option<f64> {
    let total: i64 = buckets.iter().map(|b| b.jobs).sum();
    if total <= 0 {
        return None;
    }
    let position = p.clamp(0.0, 1.0) * (total - 1) as f64;
    let (low, high) = (position.floor() as i64, position.ceil() as i64);
    // The mean of the bucket holding the `index`-th job (0-based, in duration order).
    let at = |index: i64| -> f64 {
        let mut seen = 0;
        for b in buckets.iter().filter(|b| b.jobs > 0) {
            seen += b.jobs;
            if index < seen {
                return b.micros as f64 / b.jobs as f64;
            }
        }
        let last = buckets
            .iter()
            .rev()
            .find(|b| b.jobs > 0)
            .expect("total > 0");
        last.micros as f64 / last.jobs as f64
    };
    let (v_low, v_high) = (at(low), at(high));
    Some((v_low + (position - low as f64) * (v_high - v_low)) / MICROS_PER_HOUR)
}

/// One summary value that [`refresh`] found different from what `jobs` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryChange {
    /// The summary: `job_counts`, `job_retry_counts`, `job_input_newest` or `job_timeliness`.
    pub summary: String,
    /// Which value: the job type, then the status, or the day, measure and bucket.
    pub key: String,
    /// What the summary said (`-` for nothing).
    pub before: String,
    /// What `jobs` says (`-` for nothing).
    pub after: String,
}

impl fmt::Display for SummaryChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} -> {}",
            self.summary, self.key, self.before, self.after
        )
    }
}

/// What [`refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RefreshReport {
    /// The values that differed from `jobs`, now corrected (empty when the summaries were right).
    pub changes: Vec<SummaryChange>,
    /// Summary rows before (stripes and zero counts included).
    pub rows_before: i64,
    /// Summary rows after (one per value: stripes folded, zero counts dropped).
    pub rows_after: i64,
}

impl RefreshReport {
    /// Whether every summary already agreed with `jobs`.
    pub fn unchanged(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Each summary's recomputation from `jobs` into a temporary table, then its comparison with the
/// live summary (stripes summed; a missing value and zero are the same), as
/// `(summary, key, before, after)`.
const RECOMPUTE: [(&str, &str, &str); 4] = [
    (
        "job_counts",
        "CREATE TEMP TABLE fresh_job_counts ON COMMIT DROP AS
         SELECT job_type, status, count(*)::int8 AS jobs FROM jobs GROUP BY 1, 2",
        "WITH live AS (SELECT job_type, status, sum(jobs)::int8 AS jobs FROM job_counts GROUP BY 1, 2)
         SELECT 'job_counts' AS summary,
                job_type || ' ' || coalesce((SELECT name FROM job_status WHERE id = status), status::text) AS key,
                coalesce(l.jobs, 0)::text AS before, coalesce(f.jobs, 0)::text AS after
         FROM live l FULL JOIN fresh_job_counts f USING (job_type, status)
         WHERE coalesce(l.jobs, 0) <> coalesce(f.jobs, 0)
         ORDER BY job_type, status",
    ),
    (
        "job_retry_counts",
        "CREATE TEMP TABLE fresh_job_retry_counts ON COMMIT DROP AS
         SELECT job_type, count(*)::int8 AS jobs FROM jobs WHERE retry_of IS NOT NULL GROUP BY 1",
        "WITH live AS (SELECT job_type, sum(jobs)::int8 AS jobs FROM job_retry_counts GROUP BY 1)
         SELECT 'job_retry_counts' AS summary, job_type AS key,
                coalesce(l.jobs, 0)::text AS before, coalesce(f.jobs, 0)::text AS after
         FROM live l FULL JOIN fresh_job_retry_counts f USING (job_type)
         WHERE coalesce(l.jobs, 0) <> coalesce(f.jobs, 0)
         ORDER BY job_type",
    ),
    (
        // The newest input publication only grows: the greater of the live value and the table's.
        "job_input_newest",
        "CREATE TEMP TABLE fresh_job_input_newest ON COMMIT DROP AS
         WITH live AS (SELECT job_type, max(newest) AS newest FROM job_input_newest GROUP BY 1),
              stored AS (SELECT job_type, max(input_published_at) AS newest FROM jobs
                         WHERE input_published_at IS NOT NULL GROUP BY 1)
         SELECT job_type, greatest(l.newest, s.newest) AS newest
         FROM live l FULL JOIN stored s USING (job_type)",
        "WITH live AS (SELECT job_type, max(newest) AS newest FROM job_input_newest GROUP BY 1)
         SELECT 'job_input_newest' AS summary, job_type AS key,
                coalesce(l.newest::text, '-') AS before, coalesce(f.newest::text, '-') AS after
         FROM live l FULL JOIN fresh_job_input_newest f USING (job_type)
         WHERE l.newest IS DISTINCT FROM f.newest
         ORDER BY job_type",
    ),
    (
        "job_timeliness",
        "CREATE TEMP TABLE fresh_job_timeliness ON COMMIT DROP AS
         SELECT x.job_type, x.day, x.measure, x.bucket, count(*)::int8 AS jobs, sum(x.micros)::int8 AS micros
         FROM jobs j,
              LATERAL swath_timeliness_of(j.job_type, j.measured_at, j.input_published_at,
                                          j.output_published_at) x
         GROUP BY 1, 2, 3, 4",
        "WITH live AS (SELECT job_type, day, measure, bucket,
                              sum(jobs)::int8 AS jobs, sum(micros)::int8 AS micros
                       FROM job_timeliness GROUP BY 1, 2, 3, 4)
         SELECT 'job_timeliness' AS summary,
                job_type || ' ' || day || ' measure ' || measure || ' bucket ' || bucket AS key,
                coalesce(l.jobs, 0) || ' jobs, ' || coalesce(l.micros, 0) || ' us' AS before,
                coalesce(f.jobs, 0) || ' jobs, ' || coalesce(f.micros, 0) || ' us' AS after
         FROM live l FULL JOIN fresh_job_timeliness f USING (job_type, day, measure, bucket)
         WHERE (coalesce(l.jobs, 0), coalesce(l.micros, 0)) <> (coalesce(f.jobs, 0), coalesce(f.micros, 0))
         ORDER BY job_type, day, measure, bucket",
    ),
];

/// Each summary's replacement by its recomputation, in stripe 0.
const REPLACE: [&str; 8] = [
    "DELETE FROM job_counts",
    "INSERT INTO job_counts (job_type, status, stripe, jobs)
     SELECT job_type, status, 0, jobs FROM fresh_job_counts",
    "DELETE FROM job_retry_counts",
    "INSERT INTO job_retry_counts (job_type, stripe, jobs)
     SELECT job_type, 0, jobs FROM fresh_job_retry_counts",
    "DELETE FROM job_input_newest",
    "INSERT INTO job_input_newest (job_type, stripe, newest)
     SELECT job_type, 0, newest FROM fresh_job_input_newest",
    "DELETE FROM job_timeliness",
    "INSERT INTO job_timeliness (job_type, day, measure, bucket, stripe, jobs, micros)
     SELECT job_type, day, measure, bucket, 0, jobs, micros FROM fresh_job_timeliness",
];

const SUMMARY_ROWS: &str =
    "SELECT (SELECT count(*) FROM job_counts) + (SELECT count(*) FROM job_retry_counts)
     + (SELECT count(*) FROM job_input_newest) + (SELECT count(*) FROM job_timeliness)";

/// Recomputes every summary from `jobs` in one transaction, folds the stripes, and reports the
/// values that were wrong. Takes `jobs` in SHARE ROW EXCLUSIVE mode: readers go on, writers wait
/// until it commits (so that no change lands between the recomputation and the replacement), and
/// it waits for the writers in progress. Reads the whole table: an operator's command, not a
/// per-request read. The newest input publication per type is never lowered (see
/// [`newest_inputs`]).
pub async fn refresh(pool: &PgPool) -> Result<RefreshReport, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    // Only the jobs triggers write the summaries, and they wait for the lock above; this also keeps
    // out anything writing the summaries directly.
    sqlx::query(
        "LOCK TABLE job_counts, job_retry_counts, job_input_newest, job_timeliness IN EXCLUSIVE MODE",
    )
    .execute(&mut *tx)
    .await?;
    let rows_before: i64 = sqlx::query_scalar(SUMMARY_ROWS).fetch_one(&mut *tx).await?;
    let mut changes = Vec::new();
    // The statements on temporary tables are not kept prepared: the tables are new each time.
    for (_, create, compare) in RECOMPUTE {
        sqlx::query(create)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(compare)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            changes.push(SummaryChange {
                summary: row.try_get("summary")?,
                key: row.try_get("key")?,
                before: row.try_get("before")?,
                after: row.try_get("after")?,
            });
        }
    }
    for statement in REPLACE {
        sqlx::query(statement)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
    }
    let rows_after: i64 = sqlx::query_scalar(SUMMARY_ROWS).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(RefreshReport {
        changes,
        rows_before,
        rows_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(bucket: i16, hours: &[f64]) -> Bucket {
        Bucket {
            bucket,
            jobs: hours.len() as i64,
            micros: hours.iter().map(|h| (h * MICROS_PER_HOUR) as i64).sum(),
        }
    }

    #[test]
    fn quantiles_are_those_of_percentile_cont_when_buckets_hold_equal_durations() {
        // 1 h and 2 h: median 1.5, p90 1.9 (as percentile_cont over the exact values).
        let buckets = [bucket(4, &[1.0]), bucket(8, &[2.0])];
        assert!((quantile_hours(&buckets, 0.5).unwrap() - 1.5).abs() < 1e-9);
        assert!((quantile_hours(&buckets, 0.9).unwrap() - 1.9).abs() < 1e-9);
        // Several jobs in one bucket.
        let buckets = [bucket(2, &[0.5, 0.5, 0.5]), bucket(12, &[3.0])];
        assert!((quantile_hours(&buckets, 0.5).unwrap() - 0.5).abs() < 1e-9);
        assert!((quantile_hours(&buckets, 0.9).unwrap() - 2.25).abs() < 1e-9);
        assert_eq!(quantile_hours(&[], 0.5), None);
    }

    #[test]
    fn quantiles_within_a_bucket_are_off_by_less_than_its_width() {
        // 1.0, 1.1, 1.2 h share the quarter hour [1, 1.25): the exact median 1.1 is read as the
        // bucket's mean, 1.1.
        let buckets = [bucket(4, &[1.0, 1.1, 1.2])];
        let median = quantile_hours(&buckets, 0.5).unwrap();
        assert!((median - 1.1).abs() < 0.25, "{median}");
        let buckets = [bucket(4, &[1.0, 1.0, 1.2])];
        let median = quantile_hours(&buckets, 0.5).unwrap();
        assert!((median - 1.0).abs() < 0.25, "{median}");
    }
}

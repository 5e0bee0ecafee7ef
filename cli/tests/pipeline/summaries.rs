//! The job summaries the dashboard and `/metrics` read (jobs by type and status, manual retries,
//! newest input publication, timeliness histograms): after a random concurrent workload through
//! the real state machine, with rolled-back transactions and deleted jobs, they equal direct counts
//! of `jobs` and what `refresh` recomputes; rollbacks leave them as they were; concurrent
//! transitions of one type and status do not wait for each other on one counter row; `swath db
//! refresh` repairs them after a load with triggers off.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::{Acquire, PgPool, Row};
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::db::dashboard;
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::retention::{maintain_history, prune_history};
use swath_engine::db::retries::retry_job;
use swath_engine::db::status::{change_status, change_status_on, StatusChange, StatusTransaction};
use swath_engine::db::summaries::{self, DayHistograms};

use support::operator::move_to;

/// A small deterministic generator (xorshift64*), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TYPES: [&str; 3] = ["summary_a", "summary_b", "summary_c"];

/// The allowed targets from each status, read from the state machine's table.
async fn transitions(pool: &PgPool) -> HashMap<i16, Vec<JobStatus>> {
    let rows: Vec<(i16, i16)> = sqlx::query_as(
        "SELECT from_status, to_status FROM job_status_transitions
         WHERE from_status IS NOT NULL ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut map: HashMap<i16, Vec<JobStatus>> = HashMap::new();
    for (from, to) in rows {
        map.entry(from)
            .or_default()
            .push(JobStatus::from_id(to).unwrap());
    }
    map
}

/// A random allowed change of `job`, as the state machine's triggers accept it.
fn random_change(
    rng: &mut Rng,
    job: &Job,
    transitions: &HashMap<i16, Vec<JobStatus>>,
) -> StatusChange {
    let targets = &transitions[&job.status.id()];
    let to = targets[rng.below(targets.len())];
    let change = StatusChange::of(job, to);
    if matches!(to, JobStatus::InternalError | JobStatus::ExternalError) {
        change.error("test", format!("random workload: {} -> {to}", job.status))
    } else if to == JobStatus::Ready
        && matches!(
            job.status,
            JobStatus::ExternalError | JobStatus::ErrorChecked
        )
    {
        change.next_attempt(None)
    } else {
        change
    }
}

/// A new job of a random type, with random sensing and publication times (durations below 72 h,
/// at second precision) or none.
fn random_job(rng: &mut Rng, name: String) -> NewJob {
    let mut new = NewJob::new(TYPES[rng.below(TYPES.len())], name, 3);
    if rng.below(10) > 0 {
        let base: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
        let sensed = base + TimeDelta::seconds(rng.below(4 * 86_400) as i64);
        new.measured_at = Some(sensed);
        new.input_published_at =
            Some(sensed + TimeDelta::seconds(rng.below(6 * 3600) as i64 - 600));
    }
    new
}

/// Inserts `new` and reads the jobs back.
async fn insert(conn: &mut sqlx::PgConnection, new: &[NewJob]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for inserted in insert_jobs(&mut *conn, new).await.unwrap() {
        jobs.push(get_job(&mut *conn, inserted.id).await.unwrap());
    }
    jobs
}

/// One task's share of the workload: `steps` random actions on its own jobs (so that no two tasks
/// race for one job). Returns its jobs as they are at the end.
async fn workload(
    pool: PgPool,
    task: usize,
    seed: u64,
    mut jobs: Vec<Job>,
    transitions: Arc<HashMap<i16, Vec<JobStatus>>>,
    steps: usize,
) -> Vec<Job> {
    let mut rng = Rng::new(seed);
    let mut named = 0;
    let mut name = |prefix: &str| {
        named += 1;
        format!("{prefix}-{task}-{seed}-{named}")
    };
    for _ in 0..steps {
        let roll = rng.below(100);
        if roll < 55 && !jobs.is_empty() {
            // One change, committed alone.
            let i = rng.below(jobs.len());
            let change = random_change(&mut rng, &jobs[i], &transitions);
            jobs[i] = change_status_on(&pool, &change)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", change.transition().to));
        } else if roll < 75 && !jobs.is_empty() {
            // Several changes, a new job and a publication date in one transaction, committed or
            // rolled back.
            let mut tx = StatusTransaction::begin(&pool).await.unwrap();
            let mut changed: Vec<(usize, Job)> = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(jobs.len());
                if changed.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                let change = random_change(&mut rng, &jobs[i], &transitions);
                changed.push((i, tx.change(&change).await.unwrap()));
            }
            let new = random_job(&mut rng, name("tx"));
            let added = insert(tx.conn(), &[new]).await;
            let i = rng.below(jobs.len());
            sqlx::query(
                "UPDATE jobs SET output_published_at = input_published_at + interval '95 minutes'
                 WHERE id = $1 AND input_published_at IS NOT NULL",
            )
            .bind(jobs[i].id)
            .execute(tx.conn())
            .await
            .unwrap();
            if rng.below(2) == 0 {
                tx.commit().await.unwrap();
                for (i, job) in changed {
                    jobs[i] = job;
                }
                for job in added {
                    jobs.push(get_job(&pool, job.id).await.unwrap());
                }
                jobs[i] = get_job(&pool, jobs[i].id).await.unwrap();
            } else {
                drop(tx);
            }
        } else if roll < 85 || jobs.is_empty() {
            // New jobs, in one statement.
            let new: Vec<NewJob> = (0..1 + rng.below(5))
                .map(|_| random_job(&mut rng, name("new")))
                .collect();
            let mut conn = pool.acquire().await.unwrap();
            jobs.extend(insert(&mut conn, &new).await);
        } else if roll < 92 {
            // A manual retry of a failed or cancelled job.
            let retriable: Vec<usize> = (0..jobs.len())
                .filter(|&i| {
                    matches!(
                        jobs[i].status,
                        JobStatus::InternalError | JobStatus::Cancelled
                    )
                })
                .collect();
            if let Some(&i) = retriable.get(rng.below(retriable.len().max(1))) {
                if let Ok(retried) = retry_job(&pool, jobs[i].id, 100).await {
                    jobs.push(retried.job);
                }
            }
        } else {
            // A publication date, set as the publisher sets it.
            let i = rng.below(jobs.len());
            let seconds = rng.below(48 * 3600) as f64;
            sqlx::query(
                "UPDATE jobs SET output_published_at = input_published_at + make_interval(secs => $2)
                 WHERE id = $1 AND input_published_at IS NOT NULL",
            )
            .bind(jobs[i].id)
            .bind(seconds)
            .execute(&pool)
            .await
            .unwrap();
            jobs[i] = get_job(&pool, jobs[i].id).await.unwrap();
        }
    }
    jobs
}

/// Runs `tasks` concurrent workloads over `jobs` (dealt out round robin); returns the jobs after.
async fn run_workloads(
    pool: &PgPool,
    jobs: Vec<Job>,
    tasks: usize,
    seed: u64,
    steps: usize,
) -> Vec<Job> {
    let transitions = Arc::new(transitions(pool).await);
    let mut shares: Vec<Vec<Job>> = vec![Vec::new(); tasks];
    for (i, job) in jobs.into_iter().enumerate() {
        shares[i % tasks].push(job);
    }
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(task, share)| {
            tokio::spawn(workload(
                pool.clone(),
                task,
                seed * 100 + task as u64,
                share,
                transitions.clone(),
                steps,
            ))
        })
        .collect();
    let mut after = Vec::new();
    for handle in handles {
        after.extend(handle.await.expect("a workload task panicked"));
    }
    after
}

/// Everything the summaries answer, read through the public reads.
#[derive(Debug, PartialEq)]
struct Snapshot {
    counts: Vec<(String, JobStatus, i64)>,
    retries: i64,
    newest: Vec<(String, DateTime<Utc>)>,
    timeliness: BTreeMap<(NaiveDate, String), DayHistograms>,
}

async fn snapshot(pool: &PgPool) -> Snapshot {
    Snapshot {
        counts: summaries::job_counts(pool).await.unwrap(),
        retries: summaries::manual_retries(pool).await.unwrap(),
        newest: summaries::newest_inputs(pool).await.unwrap(),
        timeliness: summaries::timeliness_histograms(pool, 100_000)
            .await
            .unwrap(),
    }
}

/// The summaries equal direct queries of `jobs` (the newest input publication equals `newest`,
/// which the caller knows, since deleted jobs may have held it).
async fn assert_exact(pool: &PgPool, newest: &BTreeMap<String, DateTime<Utc>>) {
    let live = snapshot(pool).await;
    let counted: Vec<(String, i16, i64)> =
        sqlx::query_as("SELECT job_type, status, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .unwrap();
    let counted: Vec<(String, JobStatus, i64)> = counted
        .into_iter()
        .map(|(t, s, n)| (t, JobStatus::from_id(s).unwrap(), n))
        .collect();
    assert_eq!(live.counts, counted, "jobs by type and status");
    let retries: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE retry_of IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(live.retries, retries, "manual retries");
    let newest: Vec<(String, DateTime<Utc>)> =
        newest.iter().map(|(t, at)| (t.clone(), *at)).collect();
    assert_eq!(live.newest, newest, "newest input publication");
    // The histograms, bucket by bucket, from each job's contribution.
    let rows = sqlx::query(
        "SELECT x.job_type, x.day, x.measure, x.bucket, count(*)::int8 AS jobs,
                sum(x.micros)::int8 AS micros
         FROM jobs j, LATERAL swath_timeliness_of(j.job_type, j.measured_at,
                                                  j.input_published_at, j.output_published_at) x
         GROUP BY 1, 2, 3, 4 ORDER BY 2, 1, 3, 4",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut histograms: BTreeMap<(NaiveDate, String), DayHistograms> = BTreeMap::new();
    for row in rows {
        let entry = histograms
            .entry((row.get("day"), row.get("job_type")))
            .or_default();
        let bucket = summaries::Bucket {
            bucket: row.get("bucket"),
            jobs: row.get("jobs"),
            micros: row.get("micros"),
        };
        match row.get::<i16, _>("measure") {
            1 => entry.sensing_to_input.push(bucket),
            _ => entry.input_to_output.push(bucket),
        }
    }
    assert_eq!(live.timeliness, histograms, "timeliness histograms");
}

/// The newest input publication per type, counted now.
async fn newest_now(pool: &PgPool) -> BTreeMap<String, DateTime<Utc>> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT job_type, max(input_published_at) FROM jobs
         WHERE input_published_at IS NOT NULL GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// The dashboard's timeliness against `percentile_cont` over the exact durations: the same jobs per
/// day, percentiles within a bucket's width (a quarter of an hour: every duration is below 72 h).
async fn assert_timeliness_close(pool: &PgPool) {
    let shown = dashboard::timeliness(pool, 100_000).await.unwrap();
    let rows = sqlx::query(
        "WITH m AS (
             SELECT job_type, (input_published_at AT TIME ZONE 'UTC')::date AS day,
                    (extract(epoch FROM input_published_at - measured_at) / 3600)::float8 AS to_input,
                    (extract(epoch FROM output_published_at - input_published_at) / 3600)::float8 AS to_output
             FROM jobs WHERE input_published_at IS NOT NULL AND measured_at IS NOT NULL)
         SELECT job_type, day, count(*) AS jobs,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY to_input) AS a,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY to_input) AS b,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY to_output) AS c,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY to_output) AS d
         FROM m GROUP BY 1, 2 ORDER BY 2, 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(shown.len(), rows.len(), "one line per type and day");
    for (line, row) in shown.iter().zip(&rows) {
        assert_eq!(line.day, row.get::<NaiveDate, _>("day"));
        assert_eq!(line.job_type, row.get::<String, _>("job_type"));
        assert_eq!(line.jobs, row.get::<i64, _>("jobs"));
        for (figure, exact) in [
            (line.sensing_to_input_h, row.get::<Option<f64>, _>("a")),
            (line.sensing_to_input_p90_h, row.get("b")),
            (line.input_to_output_h, row.get("c")),
            (line.input_to_output_p90_h, row.get("d")),
        ] {
            match (figure, exact) {
                (Some(figure), Some(exact)) => assert!(
                    (figure - exact).abs() <= 0.25,
                    "{} {}: {figure} h shown, {exact} h exact",
                    line.job_type,
                    line.day
                ),
                (figure, exact) => assert_eq!(figure, exact, "{} {}", line.job_type, line.day),
            }
        }
    }
}

#[sqlx::test(migrations = "../sql")]
async fn summaries_equal_the_table_after_a_random_concurrent_workload(pool: PgPool) {
    let mut rng = Rng::new(7);
    let new: Vec<NewJob> = (0..60)
        .map(|i| random_job(&mut rng, format!("first-{i}")))
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    let jobs = insert(&mut conn, &new).await;
    drop(conn);

    let jobs = run_workloads(&pool, jobs, 4, 1, 120).await;
    let newest_before = newest_now(&pool).await;
    assert_exact(&pool, &newest_before).await;
    assert_timeliness_close(&pool).await;

    // Retention: the history of finished jobs, then half the finished jobs nothing refers to.
    prune_history(&pool, Duration::ZERO, 100_000).await.unwrap();
    // and the retention the leader runs (partitions ahead, whole months retired, archive pruned).
    maintain_history(&pool, Some(Duration::ZERO), 100_000, 10)
        .await
        .unwrap();
    let deleted = sqlx::query(
        "DELETE FROM jobs j WHERE j.status IN (12, 13, 16) AND j.id % 2 = 0
           AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.retry_of = j.id OR r.parent_id = j.id)",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(deleted > 0, "the workload finished some jobs");
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    let jobs: Vec<Job> = jobs.into_iter().filter(|j| left.contains(&j.id)).collect();

    // A second round on what is left.
    run_workloads(&pool, jobs, 3, 2, 80).await;
    let mut newest = newest_now(&pool).await;
    for (job_type, at) in newest_before {
        let entry = newest.entry(job_type).or_insert(at);
        *entry = (*entry).max(at);
    }
    assert_exact(&pool, &newest).await;
    assert_timeliness_close(&pool).await;

    // `refresh` finds nothing to correct and keeps every answer, with the stripes folded.
    let before = snapshot(&pool).await;
    let report = summaries::refresh(&pool).await.unwrap();
    assert!(report.unchanged(), "{:?}", report.changes);
    assert!(report.rows_after <= report.rows_before, "{report:?}");
    assert_eq!(snapshot(&pool).await, before);
    assert_exact(&pool, &newest).await;
}

#[sqlx::test(migrations = "../sql")]
async fn rollbacks_leave_the_summaries_as_they_were(pool: PgPool) {
    let mut rng = Rng::new(11);
    let new: Vec<NewJob> = (0..12)
        .map(|i| random_job(&mut rng, format!("job-{i}")))
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    let jobs = insert(&mut conn, &new).await;
    drop(conn);
    let failed = move_to(&pool, jobs[0].clone(), JobStatus::InternalError).await;
    let ready = move_to(&pool, jobs[1].clone(), JobStatus::Ready).await;
    let before = snapshot(&pool).await;

    // A transaction that changes statuses, inserts, retries, publishes and deletes, rolled back.
    let mut tx = StatusTransaction::begin(&pool).await.unwrap();
    tx.change(&StatusChange::of(&ready, JobStatus::Queued))
        .await
        .unwrap();
    let mut extra = random_job(&mut rng, "rolled-back".into());
    extra.retry_of = Some(failed.id);
    insert_jobs(tx.conn(), &[extra]).await.unwrap();
    sqlx::query(
        "UPDATE jobs SET output_published_at = input_published_at + interval '1 hour'
         WHERE input_published_at IS NOT NULL",
    )
    .execute(tx.conn())
    .await
    .unwrap();
    sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(jobs[2].id)
        .execute(tx.conn())
        .await
        .unwrap();
    drop(tx);
    assert_eq!(snapshot(&pool).await, before);

    // Savepoints: what a rolled-back savepoint counted goes, the rest of the transaction stays.
    let mut tx = pool.begin().await.unwrap();
    let queued = change_status(&mut tx, &StatusChange::of(&ready, JobStatus::Queued))
        .await
        .unwrap();
    {
        let mut savepoint = tx.begin().await.unwrap();
        change_status(
            &mut savepoint,
            &StatusChange::of(&queued, JobStatus::Started),
        )
        .await
        .unwrap();
        insert_jobs(
            &mut *savepoint,
            &[random_job(&mut rng, "in-savepoint".into())],
        )
        .await
        .unwrap();
        savepoint.rollback().await.unwrap();
    }
    {
        let mut savepoint = tx.begin().await.unwrap();
        change_status(
            &mut savepoint,
            &StatusChange::of(&jobs[3], JobStatus::Cancelled),
        )
        .await
        .unwrap();
        savepoint.commit().await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_exact(&pool, &newest_now(&pool).await).await;
    let report = summaries::refresh(&pool).await.unwrap();
    assert!(report.unchanged(), "{:?}", report.changes);
}

#[sqlx::test(migrations = "../sql")]
async fn concurrent_transitions_of_one_type_and_status_do_not_wait_for_each_other(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    let new: Vec<NewJob> = ["first", "second"]
        .iter()
        .map(|name| NewJob::new("summary_a", *name, 3))
        .collect();
    let jobs = insert(&mut conn, &new).await;
    drop(conn);
    let (first, second) = (jobs[0].clone(), jobs[1].clone());

    // The first transaction moves a job from initialized to configured and stays open.
    let mut held = pool.begin().await.unwrap();
    change_status(&mut held, &StatusChange::of(&first, JobStatus::Configured))
        .await
        .unwrap();
    let held_stripe: String = sqlx::query_scalar("SELECT current_setting('swath.summary_stripe')")
        .fetch_one(&mut *held)
        .await
        .unwrap();

    // The second makes the same move on another job and commits, on its own connection.
    let mut other = pool.acquire().await.unwrap();
    let other_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    let moving = tokio::spawn(async move {
        let mut tx = other.begin().await.unwrap();
        change_status(&mut tx, &StatusChange::of(&second, JobStatus::Configured))
            .await
            .unwrap();
        let stripe: String = sqlx::query_scalar("SELECT current_setting('swath.summary_stripe')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        stripe
    });
    // It either finishes or shows up waiting for a lock (which the open transaction would hold
    // until it ends): poll until one of the two.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !moving.is_finished() {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')",
        )
        .bind(other_pid)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            !waiting,
            "the second transition waits for the first transaction's lock"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second transition neither finished nor waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other_stripe = moving.await.unwrap();
    assert_ne!(held_stripe, other_stripe, "each transaction has its stripe");
    held.commit().await.unwrap();

    let counts = summaries::job_counts(&pool).await.unwrap();
    assert_eq!(
        counts,
        vec![("summary_a".to_string(), JobStatus::Configured, 2)]
    );
    assert_exact(&pool, &newest_now(&pool).await).await;
}

#[sqlx::test(migrations = "../sql")]
async fn db_refresh_repairs_the_summaries_after_a_load_with_triggers_off(pool: PgPool) {
    // A bulk load as a benchmark does it: triggers off for the session.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO jobs (job_type, name, status, measured_at, input_published_at, retry_of)
         SELECT 'summary_a', 'loaded-' || g, CASE WHEN g % 2 = 0 THEN 1 ELSE 12 END,
                timestamptz '2026-11-01' + g * interval '1 minute',
                timestamptz '2026-11-01' + g * interval '1 minute' + interval '2 hours', NULL
         FROM generate_series(1, 50) g",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("RESET session_replication_role")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert!(summaries::job_counts(&pool).await.unwrap().is_empty());

    let url = support::database_url(&pool);
    let out = support::swath(&["db", "refresh"], Some(&url));
    let stdout = support::stdout(&out);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        stdout.contains("job_counts summary_a initialized: 0 -> 25")
            && stdout.contains("job_counts summary_a done: 0 -> 25")
            && stdout.contains("job_input_newest summary_a: - -> "),
        "{stdout}"
    );
    assert_exact(&pool, &newest_now(&pool).await).await;
    assert_eq!(
        dashboard::timeliness(&pool, 30).await.unwrap()[0].sensing_to_input_h,
        Some(2.0)
    );

    let out = support::swath(&["db", "refresh"], Some(&url));
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).starts_with("summaries unchanged\n"),
        "{}",
        support::stdout(&out)
    );
}

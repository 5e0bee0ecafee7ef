//! The Prometheus alerting rules of `deploy/prometheus/`: promtool checks them and runs their unit
//! tests (tier Prometheus), every series they name is on a real `/metrics` answer (so a rule cannot
//! watch a series swath does not export), and the series added for them have the database's values.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use sqlx::PgPool;
use swath_domain::JobStatus;
use swath_engine::config::Settings;
use swath_test_tiers::{enabled, Tier};

use support::api::spawn_api;
use support::{drive, new_test_job, path_to};

/// `deploy/prometheus/` of the repository.
fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// Runs `promtool ARGS` in `deploy/prometheus/`; fails with its output unless it succeeds.
fn promtool(args: &[&str]) {
    let output = Command::new("/usr/bin/promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("running /usr/bin/promtool (scripts/tools-prometheus.sh installs it)");
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    if !enabled(Tier::Prometheus) {
        return;
    }
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);
}

/// The `expr` of every rule of `alerts.yml`.
fn rule_expressions() -> Vec<String> {
    let text = std::fs::read_to_string(rules_dir().join("alerts.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// The `swath_...` names in a PromQL expression.
fn swath_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("swath_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not a part of a longer identifier.
        let before = rest[..start].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn names_are_found_in_expressions() {
    assert_eq!(
        swath_names("max by (x) (swath_a{y=\"z\"}) / sum(rate(swath_b_total[5m])) + notswath_c"),
        ["swath_a", "swath_b_total"].map(String::from).into()
    );
}

/// `/metrics` of the API at `base` (`.../api/v1`), as text.
async fn metrics_text(base: &str) -> String {
    let response = reqwest::get(base.replace("/api/v1", "/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The series names of the samples of an OpenMetrics text, and the counter families declared
/// (a counter `c` has samples `c_total` once it counted something).
fn exported_names(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut counters = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            if let Some(family) = declared.strip_suffix(" counter") {
                counters.insert(format!("{family}_total"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (samples, counters)
}

#[sqlx::test(migrations = "../sql")]
async fn every_series_the_alerts_name_is_on_metrics(pool: PgPool) {
    let api = spawn_api(&pool).await;
    // A few jobs: two ready, one cancelled.
    for name in ["ready-1", "ready-2"] {
        let job = new_test_job(&pool, name).await;
        drive(&pool, job, &path_to(JobStatus::Ready)[1..]).await;
    }
    let job = new_test_job(&pool, "cancelled").await;
    drive(&pool, job, &[JobStatus::Cancelled]).await;
    // Their inputs were published (catalogue lag), one output too (timeliness).
    sqlx::raw_sql(
        "UPDATE jobs SET measured_at = now() - interval '3 hours',
                         input_published_at = now() - interval '2 hours';
         UPDATE jobs SET output_published_at = now() - interval '1 hour' WHERE name = 'cancelled'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let text = metrics_text(&api.base).await;
    let (samples, counters) = exported_names(&text);
    let mut named = BTreeSet::new();
    for expr in rule_expressions() {
        named.extend(swath_names(&expr));
    }
    assert!(named.len() >= 8, "{named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|n| !samples.contains(*n) && !counters.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "alerts.yml names series that /metrics does not export: {missing:?}\n{text}"
    );
}

/// The value of the sample `series` (name and labels exactly as written in the text).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[sqlx::test(migrations = "../sql")]
async fn the_series_of_the_alerts_have_the_database_values(pool: PgPool) {
    let api = spawn_api(&pool).await;
    let registry = Settings::default().registry().unwrap();
    let flavor = registry
        .get("test_job")
        .unwrap()
        .spec()
        .worker_flavor
        .clone();
    let oldest_ready = format!("swath_ready_oldest_age_seconds{{flavor=\"{flavor}\"}}");

    // Nothing yet: no leader, empty queue and outbox, no timeliness, the default target (3 h).
    let text = metrics_text(&api.base).await;
    assert_eq!(value(&text, "swath_leaders"), Some(0.0), "{text}");
    assert_eq!(value(&text, &oldest_ready), Some(0.0), "{text}");
    assert_eq!(value(&text, "swath_publication_backlog"), Some(0.0));
    assert_eq!(
        value(&text, "swath_publication_backlog_oldest_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "swath_timeliness_target_seconds"),
        Some(10800.0)
    );
    assert!(!text.contains("swath_timeliness_published_jobs{"), "{text}");

    // A leader; two ready jobs, one 10 minutes in ready (one of a campaign-free queue, both
    // indexes are read: the older is the own queue's); an outbox with two unconfirmed messages,
    // the older written 5 minutes ago, and a confirmed one written a day ago.
    let leader = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO services (id, host, name, heartbeat_at) VALUES ($1, 'node-1', 'swath serve', now())",
    )
    .bind(leader)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE cluster_leader SET service_id = $1, acquired_at = now(),
                expires_at = now() + interval '1 minute' WHERE id = 1",
    )
    .bind(leader)
    .execute(&pool)
    .await
    .unwrap();
    let mut ready = Vec::new();
    for name in ["ready-old", "ready-new"] {
        let job = new_test_job(&pool, name).await;
        ready.push(drive(&pool, job, &path_to(JobStatus::Ready)[1..]).await);
    }
    // Back-dated with the status triggers off (they take a new `status_changed_at` for a change).
    sqlx::raw_sql(&format!(
        "BEGIN; SET LOCAL session_replication_role = replica;
         UPDATE jobs SET status_changed_at = now() - interval '10 minutes' WHERE id = {};
         COMMIT",
        ready[0].id
    ))
    .execute(&pool)
    .await
    .unwrap();
    for (product, age, confirmed) in [
        ("p-1", "5 minutes", false),
        ("p-2", "1 minute", false),
        ("p-3", "1 day", true),
    ] {
        sqlx::query(
            "INSERT INTO publications (job_id, kind, product_id, message, created_at, confirmed_at,
                                       identity, revision, message_id)
             VALUES ($1, 'test', $2, '{}', now() - $3::interval, CASE WHEN $4 THEN now() END,
                     $2, 1, 'message-' || $2)",
        )
        .bind(ready[1].id)
        .bind(product)
        .bind(age)
        .bind(confirmed)
        .execute(&pool)
        .await
        .unwrap();
    }
    // Timeliness (input to output publication) of test_job: today 3 jobs at 1 h, 1 at exactly 3 h
    // (late: the target is not met), 1 beyond 72 h (late); yesterday 2 at 2.75 h (on time); 7 late
    // jobs five days ago (too old to count), and sensing-to-input durations (another measure).
    sqlx::raw_sql(
        "INSERT INTO job_timeliness (job_type, day, measure, bucket, stripe, jobs, micros) VALUES
           ('test_job', (now() AT TIME ZONE 'UTC')::date, 2, 4, 0, 3, 3 * 3600000000::int8),
           ('test_job', (now() AT TIME ZONE 'UTC')::date, 2, 12, 1, 1, 10800000000),
           ('test_job', (now() AT TIME ZONE 'UTC')::date, 2, 300, 0, 1, 600000000000),
           ('test_job', (now() AT TIME ZONE 'UTC')::date - 1, 2, 11, 0, 2, 2 * 9900000000::int8),
           ('test_job', (now() AT TIME ZONE 'UTC')::date - 5, 2, 20, 0, 7, 7 * 18000000000::int8),
           ('test_job', (now() AT TIME ZONE 'UTC')::date, 1, 40, 0, 9, 9 * 36000000000::int8)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let text = metrics_text(&api.base).await;
    assert_eq!(value(&text, "swath_leaders"), Some(1.0), "{text}");
    let age = value(&text, &oldest_ready).unwrap();
    assert!((600.0..700.0).contains(&age), "oldest ready {age}");
    assert_eq!(value(&text, "swath_publication_backlog"), Some(2.0));
    let age = value(&text, "swath_publication_backlog_oldest_age_seconds").unwrap();
    assert!((300.0..400.0).contains(&age), "oldest unconfirmed {age}");
    assert_eq!(
        value(
            &text,
            "swath_timeliness_published_jobs{job_type=\"test_job\"}"
        ),
        Some(7.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "swath_timeliness_late_jobs{job_type=\"test_job\"}"),
        Some(2.0)
    );

    // The lease expired: nobody leads. The old ready job left ready: the newer one is the oldest.
    sqlx::query("UPDATE cluster_leader SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    drive(&pool, ready[0].clone(), &[JobStatus::Cancelled]).await;
    let text = metrics_text(&api.base).await;
    assert_eq!(value(&text, "swath_leaders"), Some(0.0));
    let age = value(&text, &oldest_ready).unwrap();
    assert!((0.0..60.0).contains(&age), "oldest ready {age}");
}

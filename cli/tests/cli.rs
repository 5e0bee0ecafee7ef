//! The `swath` command line, run as a real process: products inspect, jobs list/show, migrate, demo.

use serde_json::Value;
use sqlx::PgPool;
use swath_domain::JobStatus;

use support::{
    database_url, drive, new_test_job, scratch_database_url, stderr, stdout, swath, swath_env,
    swath_program, swath_with_stdin,
};

/// Real names of every family the parser supports (samples and the catalogue notes).
const REAL_NAMES: [&str; 8] = [
    "S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505.SAFE",
    "S2A_MSIL1C_20240116T000741_N0510_R130_T51CVP_20240116T010505",
    "S2C_MSIL1C_20260101T000441_N0511_R073_T57NUF_20260101T013646",
    "/eodata/Sentinel-2/MSI/L2A_N0500/2023/03/01/S2B_MSIL2A_20230301T104859_N0510_R051_T31UDT_20240824T133550.SAFE",
    "S2A_MSIL1C_20151223T105452_N0201_R051_T31UFS_20151223T105449",
    "S1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_046917_218A.SAFE",
    "S1C_IW_GRDH_1SDV_20250327T154419_20250327T154453_001628_002981_53D2_COG",
    "S1A_EW_GRDM_1SDH_20240101T061203_20240101T061303_051909_06455C_1B2E",
];

#[test]
fn products_inspect_prints_every_field_of_real_names() {
    let out = swath(
        &["products", "inspect"]
            .into_iter()
            .chain(REAL_NAMES)
            .collect::<Vec<_>>(),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), REAL_NAMES.len());
    let first = &lines[0];
    assert_eq!(first["family"], "S2");
    assert_eq!(first["mission"], "S2A");
    assert_eq!(first["level"], "L1C");
    assert_eq!(first["baseline"], "N0500");
    assert_eq!(first["relative_orbit"], 45);
    assert_eq!(first["tile"], "54PXA");
    assert_eq!(first["sensing_start"], "2020-08-08T01:03:11Z");
    assert_eq!(first["discriminator"], "2023-04-13T21:25:05Z");
    assert_eq!(lines[2]["mission"], "S2C");
    assert_eq!(lines[3]["level"], "L2A");
    assert_eq!(lines[3]["baseline"], "N0510");
    let s1 = &lines[5];
    assert_eq!(s1["family"], "S1");
    assert_eq!(s1["mode"], "IW");
    assert_eq!(s1["absolute_orbit"], 37419);
    assert_eq!(s1["datatake"], "046917");
    assert_eq!(s1["crc"], "218A");
    assert_eq!(s1["sensing_stop"], "2021-04-12T15:11:36Z");
    assert_eq!(lines[6]["mission"], "S1C");
    assert_eq!(lines[6]["cog"], true);
    assert_eq!(lines[7]["mode"], "EW");
    assert_eq!(lines[7]["polarisation"], "DH");
}

#[test]
fn products_inspect_rejects_bad_names_precisely_and_keeps_going() {
    let input = format!(
        "{}\nS2A_MSIL1C_20201308T010311_N0500_R045_T32TLR_20230413T212505\n\nS3A_SL_1_RBT____20200101T000000\nS2A_OPER_PRD_MSIL1C_PDMC_20160905T104813_R002_V20160905T005712_20160905T010424.SAFE\nS1A_IW_GRDH_1SDV_20210412T151111_20210412T151136_037419_04691G_218A\n{}\n",
        REAL_NAMES[0], REAL_NAMES[5]
    );
    let out = swath_with_stdin(&["products", "inspect", "-"], None, Some(&input));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad name makes the exit code non-zero"
    );
    assert_eq!(
        stdout(&out).lines().count(),
        2,
        "good names are still printed: {}",
        stdout(&out)
    );
    let errors: Vec<String> = stderr(&out).lines().map(String::from).collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(
        errors[0].contains("sensing start \"20201308T010311\"") && errors[0].contains("month 13"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("mission"), "{}", errors[1]);
    assert!(errors[2].to_lowercase().contains("legacy"), "{}", errors[2]);
    assert!(errors[3].contains("datatake \"04691G\""), "{}", errors[3]);
}

#[test]
fn products_inspect_needs_a_name() {
    let out = swath(&["products", "inspect"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NAME"), "{}", stderr(&out));
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_show_prints_the_full_history_of_a_complete_life(pool: PgPool) {
    use JobStatus::*;
    let job = new_test_job(&pool, "life").await;
    let life = [
        Configured,
        Ready,
        Queued,
        Started,
        ExternalError,
        Ready,
        Queued,
        Started,
        PreProcessing,
        Processing,
        PostProcessing,
        Processed,
        StartPublication,
        Published,
        Done,
    ];
    let job = drive(&pool, job, &life).await;
    assert_eq!((job.status, job.attempt), (Done, 2));

    let url = database_url(&pool);
    let out = swath(&["jobs", "show", &job.id.to_string()], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("job {} life\n", job.id)),
        "{text}"
    );
    assert!(text.contains("attempt          2 of 3"), "{text}");
    assert!(text.contains("history (16 change(s))"), "{text}");
    let history: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("history"))
        .skip(2)
        .collect();
    assert_eq!(history.len(), 16);
    let mut expected_from = "-".to_string();
    for (line, to) in history.iter().zip(std::iter::once(Initialized).chain(life)) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // TIME is two words (date and time): FROM is the 3rd column, TO the 4th.
        assert_eq!(
            (cols[2], cols[3]),
            (expected_from.as_str(), to.name()),
            "{line}"
        );
        expected_from = to.name().to_string();
    }
    assert!(text.contains("test: started -> external_error"), "{text}");

    let out = swath(&["jobs", "show", &job.id.to_string(), "--json"], Some(&url));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["job"]["status"], "done");
    assert_eq!(json["history"].as_array().unwrap().len(), 16);
    assert_eq!(json["history"][6]["attempt"], 2);

    let out = swath(&["jobs", "show", "987654"], Some(&url));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("job 987654 not found"));
}

#[sqlx::test(migrations = "../sql")]
async fn jobs_list_filters_by_type_status_and_tile(pool: PgPool) {
    let a = new_test_job(&pool, "list-a").await;
    let b = drive(
        &pool,
        new_test_job(&pool, "list-b").await,
        &[JobStatus::Cancelled],
    )
    .await;
    let url = database_url(&pool);

    let out = swath(&["jobs", "list"], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("list-a") && text.contains("list-b") && text.contains("2 job(s)"),
        "{text}"
    );

    let out = swath(
        &[
            "jobs",
            "list",
            "--status",
            "cancelled",
            "--type",
            "test_job",
            "--tile",
            "T32TLR",
            "--json",
        ],
        Some(&url),
    );
    let ids: Vec<i64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, vec![b.id]);
    let out = swath(
        &[
            "jobs",
            "list",
            "--status",
            "initialized",
            "--limit",
            "1",
            "--json",
        ],
        Some(&url),
    );
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(stdout(&out).contains(&format!("\"id\":{}", a.id)));

    let out = swath(&["jobs", "list", "--status", "finished"], Some(&url));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown job status \"finished\""),
        "{}",
        stderr(&out)
    );
    let out = swath(&["jobs", "list", "--limit", "0"], Some(&url));
    assert_eq!(out.status.code(), Some(2));
}

#[sqlx::test]
async fn migrate_creates_the_database_and_jobs_commands_ask_for_it(pool: PgPool) {
    // A database of our own, created by `swath migrate` and dropped at the end.
    let (url, name) = scratch_database_url("swath_cli");
    let out = swath(&["migrate"], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is up to date"));
    let out = swath(&["migrate"], Some(&url));
    assert!(
        out.status.success(),
        "migrating twice is fine: {}",
        stderr(&out)
    );
    let out = swath(&["jobs", "list"], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("0 job(s)"));
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();

    // Without migrations, jobs commands say what to do instead of failing on a missing table.
    let out = swath(&["jobs", "list"], Some(&database_url(&pool)));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("run `swath migrate` first"),
        "{}",
        stderr(&out)
    );

    let out = swath(&["jobs", "list"], Some("mysql://root@127.0.0.1/x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("SWATH_DATABASE_URL: scheme \"mysql\""),
        "{}",
        stderr(&out)
    );
}

#[sqlx::test]
async fn demo_runs_the_whole_flow_on_the_samples_with_docker_then_without(pool: PgPool) {
    if !swath_test_tiers::enabled(swath_test_tiers::Tier::Docker) {
        return;
    }
    let (url, name) = scratch_database_url("swath_demo_test");
    let demo_db = format!("{name}_demo");
    let tmp = tempfile::tempdir().unwrap();
    // The process runtime runs the code as `nobody`, which must reach the demo's files.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    // Run 1 is a fresh machine's `cargo run -p swath -- demo`: the `swath` program alone (its own `worker`
    // subcommand runs the attempts) and no Docker engine.
    let alone = tmp.path().join("bin").join("swath");
    std::fs::create_dir_all(alone.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_swath"), &alone).unwrap();
    // Run 0 finds the Docker engine and the stand-in image, and `swath-worker` beside `swath`.
    for (run, docker_host, runtime) in [
        (0, None, "docker"),
        (1, Some("unix:///nonexistent/docker.sock"), "process"),
    ] {
        let mut env = vec![("TMPDIR", tmpdir)];
        env.extend(docker_host.map(|host| ("DOCKER_HOST", host)));
        let out = match run {
            0 => swath_env(&["demo"], Some(&url), &env),
            _ => swath_program(&alone, &["demo"], Some(&url), &env),
        };
        assert!(
            out.status.success(),
            "run {run}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(text.contains(&format!("/{demo_db} (recreated)")), "{text}");
        assert!(text.contains("catalogue: dir:"), "{text}");
        assert!(
            text.contains(&format!("worker runtime: {runtime}")),
            "run {run}: {text}"
        );
        let row = |name: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(name)
                        && l.split_whitespace()
                            .nth(1)
                            .is_some_and(|c| c.parse::<u32>().is_ok())
                })
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
        };
        // Every job ended: the samples built to fail (see samples/README.md) where expected.
        let statuses: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .filter(|c: &Vec<&str>| c.len() == 3 && c[2].parse::<u32>().is_ok())
            .collect();
        let expected = [
            // The two partial-tile products of 29UNV are one job (the N0301 pair one cancelled job).
            ["fsc_rlie", "done", "4"],
            ["fsc_rlie", "cancelled", "2"],
            // The three fsc_rlie jobs with products spawned a quicklook and an attached check.
            ["fsc_rlie_check", "done", "3"],
            ["fsc_rlie_quicklook", "done", "3"],
            ["rlie_s1", "done", "1"],
            ["rlie_s1", "internal_error", "1"],
            ["rlie_s1", "cancelled", "1"],
        ];
        let shown: Vec<&Vec<&str>> = statuses
            .iter()
            .filter(|c| c[0].starts_with("fsc_rlie") || c[0] == "rlie_s1")
            .collect();
        assert_eq!(shown.len(), expected.len(), "run {run}: {text}");
        for expected in expected {
            assert!(
                shown.iter().any(|c| c[..] == expected[..]),
                "run {run}: {expected:?} in {text}"
            );
        }
        // JOB TYPE, PAGES, LISTED, CREATED, CANCELLED, SUPERSEDED, KNOWN, NOT FOR TYPE, QUARANTINED
        assert_eq!(
            row("fsc_rlie").unwrap(),
            // The southern partials are known as inputs of the northern ones' jobs.
            vec!["fsc_rlie", "1", "18", "4", "2", "0", "2", "9", "1"],
            "{text}"
        );
        assert_eq!(
            row("rlie_s1").unwrap(),
            vec!["rlie_s1", "1", "18", "2", "1", "0", "0", "14", "1"],
            "{text}"
        );
        assert!(
            stderr(&out).contains("month 13 is out of range"),
            "{}",
            stderr(&out)
        );

        // What the summary claims is what is on disk and in the database.
        let demo = std::path::Path::new(tmpdir).join("swath-demo");
        let published = std::fs::read_to_string(demo.join("publications.jsonl")).unwrap();
        let messages: Vec<Value> = published
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let demo_pool = PgPool::connect(&url.replace(&name, &demo_db))
            .await
            .unwrap();
        let confirmed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM publications WHERE confirmed_at IS NOT NULL")
                .fetch_one(&demo_pool)
                .await
                .unwrap();
        let unconfirmed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM publications WHERE confirmed_at IS NULL")
                .fetch_one(&demo_pool)
                .await
                .unwrap();
        // The split datatake is one job, which staged both partial products for the science.
        let split: Vec<Value> = sqlx::query_scalar(
            "SELECT results FROM jobs WHERE job_type = 'fsc_rlie' AND tile_id = '29UNV' AND status = 12",
        )
        .fetch_all(&demo_pool)
        .await
        .unwrap();
        assert_eq!(split.len(), 1, "run {run}: {split:?}");
        let staged: Vec<&str> = split[0]["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == "fsc")
            .unwrap()["infos"]["inputProducts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(
            staged,
            [
                "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230102T203816",
                "S2B_MSIL1C_20211002T113319_N0500_R080_T29UNV_20230103T031448"
            ],
            "run {run}"
        );
        demo_pool.close().await;
        // Three fsc_rlie jobs with a product, each announcing its FSC and its RLIE.
        assert_eq!(confirmed, 6, "run {run}: {confirmed} confirmed");
        assert_eq!(unconfirmed, 0);
        assert_eq!(messages.len() as i64, confirmed, "run {run}: {published}");
        for message in &messages {
            swath_domain::publication_schema::check_resto_feature(&message["body"], false).unwrap();
        }
        // One announcement per product: distinct message ids, each `<identity>#1` of a distinct
        // title (nothing was published twice).
        let ids: std::collections::BTreeSet<&str> = messages
            .iter()
            .map(|m| m["message_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), messages.len(), "run {run}: {published}");
        let titles: std::collections::BTreeSet<&str> = messages
            .iter()
            .map(|m| m["body"]["resto"]["properties"]["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles.len(), messages.len(), "run {run}: {published}");
        for m in &messages {
            assert_eq!(m["body"]["announcement"]["operation"], "create", "{m}");
        }
        // The split datatake of tile 29UNV: one FSC and one RLIE, from one job with both partial
        // products as inputs.
        let split: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("_T29UNV_V100_"))
            .collect();
        assert_eq!(split.len(), 2, "run {run}: {text}");
        for line in split {
            for partial in [
                "N0500_R080_T29UNV_20230102T203816",
                "N0500_R080_T29UNV_20230103T031448",
            ] {
                assert!(line.contains(partial), "run {run}: {line}");
            }
        }
        assert!(
            text.contains(&format!("{confirmed} confirmed ({confirmed} lines)")),
            "run {run}: {text}"
        );
        let outputs = text
            .lines()
            .find(|l| l.starts_with("outputs written"))
            .unwrap();
        assert!(!outputs.contains(" 0 files"), "run {run}: {outputs}");
        assert!(text.contains("time taken"), "{text}");
        // Each attempt's worker wrote to its own log file, not to the demo's output.
        let logs: Vec<_> = std::fs::read_dir(demo.join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // Eleven jobs ran once, the one built to fail three times.
        assert_eq!(logs.len(), 14, "run {run}: {logs:?}");
        assert!(logs
            .iter()
            .all(|l| l.starts_with("job-") && l.ends_with(".log")));
        assert!(
            !stderr(&out).contains("attempt finished"),
            "{}",
            stderr(&out)
        );
    }
    let long = format!("{name}_{}", "x".repeat(60 - name.len()));
    let out = swath(&["demo"], Some(&url.replace(&name, &long)));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("must have 1 to 63 bytes"),
        "{}",
        stderr(&out)
    );
    sqlx::query(&format!("DROP DATABASE \"{demo_db}\" WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
}

#[test]
fn demo_without_a_reachable_postgresql_names_the_url_the_error_and_the_command() {
    // A loopback port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:hunter2@127.0.0.1:{port}/swath");
    let out = swath(&["demo"], Some(&url));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot reach PostgreSQL at postgres://postgres:***@127.0.0.1:{port}/swath"
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(err.contains("scripts/services.sh"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        stdout(&out).is_empty(),
        "nothing was started: {}",
        stdout(&out)
    );
}

#[test]
fn config_show_accepts_a_processing_start_date_written_as_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swath.toml");
    std::fs::write(
        &file,
        "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"2015-01-01\"\n",
    )
    .unwrap();
    let out = swath(
        &["--config", file.to_str().unwrap(), "config", "show"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        parsed["job_type_settings"]["fsc_rlie"]["processing_start_date"].as_str(),
        Some("2015-01-01T00:00:00Z"),
        "{text}"
    );

    std::fs::write(
        &file,
        "[job_type_settings.fsc_rlie]\nprocessing_start_date = \"2015-1-1st\"\n",
    )
    .unwrap();
    let bad = swath(
        &["--config", file.to_str().unwrap(), "config", "show"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains("processing_start_date")
            && err.contains("\"2015-1-1st\"")
            && err.contains("YYYY-MM-DD"),
        "{err}"
    );
}

#[test]
fn config_show_prints_valid_toml_without_the_password() {
    let out = swath(
        &["config", "show"],
        Some("postgres://swath:hunter2@db.example:5432/swath"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("hunter2"), "{text}");
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        parsed["database_url"].as_str(),
        Some("postgres://swath:***@db.example:5432/swath")
    );
    assert_eq!(parsed["flavors"].as_array().unwrap().len(), 5);

    // What it prints is a configuration file swath reads back.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swath.toml");
    std::fs::write(&file, &text).unwrap();
    let again = swath(
        &["--config", file.to_str().unwrap(), "config", "show"],
        None,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again), text);

    std::fs::write(&file, "database_max_connections = \"ten\"\n").unwrap();
    let bad = swath(
        &["--config", file.to_str().unwrap(), "config", "show"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("database_max_connections"),
        "{}",
        stderr(&bad)
    );
}

#[sqlx::test(migrations = "../sql")]
async fn campaigns_create_show_pause_resume_and_refuse_bad_requests(pool: PgPool) {
    let url = database_url(&pool);
    let out = swath(
        &[
            "campaigns",
            "create",
            "--type",
            "test_job",
            "--from",
            "2021-04-01",
            "--to",
            "2021-05-01",
            "--tiles",
            "T32TLR,32tls",
            "--max-in-flight",
            "4",
            "--json",
        ],
        Some(&url),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "test_job-2021-04-01-2021-05-01");
    assert_eq!(created["tiles"], serde_json::json!(["32TLR", "32TLS"]));
    assert_eq!(created["max_in_flight"], 4);
    assert_eq!(created["state"], "listing");

    let out = swath(
        &["campaigns", "show", &id.to_string(), "--json"],
        Some(&url),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["id"], id);
    assert_eq!(shown["progress"]["jobs"], 0);
    assert_eq!(shown["progress"]["eta_seconds"], Value::Null);

    // Not a terminal: plain text, no bar.
    let out = swath(&["campaigns", "show", &id.to_string()], Some(&url));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("campaign {id} test_job-2021-04-01-2021-05-01\n")),
        "{text}"
    );
    assert!(text.contains("  state             listing since"), "{text}");
    assert!(text.contains("  tiles             32TLR,32TLS"), "{text}");
    assert!(!text.contains('['), "{text}");

    // The human answer of create says who lists the window.
    let out = swath(
        &[
            "campaigns",
            "create",
            "--type",
            "test_job",
            "--from",
            "2021-06-01",
            "--to",
            "2021-07-01",
            "--name",
            "june",
        ],
        Some(&url),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a running `swath serve` lists its window"),
        "{}",
        stdout(&out)
    );

    // Refusals: the API's messages.
    for (args, message) in [
        (
            vec![
                "--type",
                "nope",
                "--from",
                "2021-04-01",
                "--to",
                "2021-05-01",
            ],
            "error: type: unknown job type \"nope\" (known: ",
        ),
        (
            vec![
                "--type",
                "test_job",
                "--from",
                "2021-05-01",
                "--to",
                "2021-04-01",
            ],
            "error: to: the window's end",
        ),
        (
            vec![
                "--type",
                "test_job",
                "--from",
                "2021-04-01",
                "--to",
                "2021-05-01",
                "--max-in-flight",
                "0",
            ],
            "error: max_in_flight: must be between 1 and 10000, not 0",
        ),
        (
            vec![
                "--type",
                "test_job",
                "--from",
                "2021-06-01",
                "--to",
                "2021-07-01",
                "--name",
                "june",
            ],
            "error: a campaign named \"june\" exists already",
        ),
    ] {
        let out = swath(
            &[&["campaigns", "create"][..], &args[..]].concat(),
            Some(&url),
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }

    let out = swath(
        &["campaigns", "pause", &id.to_string(), "--json"],
        Some(&url),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let paused: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(paused["campaign"]["state"], "paused");
    assert_eq!(paused["claimed"], 0);
    let state: String = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "paused");
    let out = swath(&["campaigns", "pause", &id.to_string()], Some(&url));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("campaign {id} is paused: it cannot be paused")),
        "{}",
        stderr(&out)
    );
    let out = swath(&["campaigns", "resume", &id.to_string()], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("campaign {id} resumed: listing\n"));

    let out = swath(&["campaigns", "list"], Some(&url));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("2 campaign(s)\n"),
        "{}",
        stdout(&out)
    );

    let out = swath(
        &["campaigns", "cancel", &id.to_string(), "--reason", "test"],
        Some(&url),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("campaign {id} cancelled; 0 job(s) not yet started cancelled\n")
    );
    let out = swath(&["campaigns", "show", "987654"], Some(&url));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("campaign 987654 not found"));
}

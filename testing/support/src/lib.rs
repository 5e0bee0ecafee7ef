//! Shared support for the integration tests: the `swath` binary, database URLs of `#[sqlx::test]`
//! databases, and jobs driven along the state machine.

pub use swath_nomad_emulator as nomad_emulator;

/// OpenAPI descriptions the tests check requests and answers against.
pub mod openapi {
    use std::sync::OnceLock;

    pub use swath_nomad_emulator::openapi::*;

    /// swath's own description (`src/api/openapi.json`), served under `/api/v1` (parsed once).
    pub fn swath() -> &'static OpenApi {
        static SWATH: OnceLock<OpenApi> = OnceLock::new();
        SWATH.get_or_init(|| {
            OpenApi::from_json(swath_engine::api::openapi::DOCUMENT, "/api/v1")
                .unwrap_or_else(|e| panic!("parsing src/api/openapi.json: {e}"))
        })
    }
}

pub mod api;
pub mod catalogue_server;
pub mod conformance;
pub mod fleet;
pub mod jobspec;
pub mod operator;
pub mod private_pg;
pub mod webdriver;
pub mod worker_http;
pub mod worker_world;

use std::process::{Command, Output};

use sqlx::PgPool;
use swath_domain::{Job, JobStatus, NewJob};
use swath_engine::db::jobs::{get_job, insert_jobs};
use swath_engine::db::status::StatusChange;
use swath_engine::pipeline::transitions::change_status_on;

/// The workspace's root directory (where `samples/`, `nomad/` and `worker/` are).
pub fn workspace_root() -> std::path::PathBuf {
    // This crate sits at `testing/support` in the workspace.
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The binary `name` of package `package` that cargo built beside the test program
/// (`target/<profile>/<name>`; test programs live in `target/<profile>/deps/`).
pub fn built_binary(name: &str, package: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test program knows its path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test programs live in target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {package}` (the test command builds the workspace)",
        path.display()
    );
    path
}

/// The `swath` binary cargo built beside the test program.
pub fn swath_binary() -> std::path::PathBuf {
    built_binary("swath", "swath")
}

/// A one-slot flavor of one CPU and 64 MB, with no disk, for the executor tests.
pub fn tiny_flavor() -> swath_domain::flavor::WorkerFlavor {
    swath_domain::flavor::WorkerFlavor {
        name: "tiny".into(),
        cpus: 1,
        memory_mb: 64,
        disk_gb: 0,
        // Sized and pinned for the emulator's smallest VM.
        cpu_mhz: Some(50),
        placement_value: Some("eo1.xsmall".into()),
        local_slots: 1,
        ..swath_domain::flavor::WorkerFlavor::default()
    }
}

/// The URL of the database behind `pool` (a fresh one per `#[sqlx::test]`).
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let name = pool
        .connect_options()
        .get_database()
        .expect("the test pool names its database")
        .to_string();
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A URL on the test server for a new database with a short unique name (`<prefix>_<random>`).
pub fn scratch_database_url(prefix: &str) -> (String, String) {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let name = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}

/// Runs the `swath` binary with `args`, against `database_url` when given, with no other `SWATH_*`
/// setting and no standard input.
pub fn swath(args: &[&str], database_url: Option<&str>) -> Output {
    swath_with_stdin(args, database_url, None)
}

/// Like [`swath`], writing `stdin` to the process.
pub fn swath_with_stdin(args: &[&str], database_url: Option<&str>, stdin: Option<&str>) -> Output {
    swath_full(args, database_url, stdin, &[])
}

/// Like [`swath`], with extra environment variables.
pub fn swath_env(args: &[&str], database_url: Option<&str>, env: &[(&str, &str)]) -> Output {
    swath_full(args, database_url, None, env)
}

/// Like [`swath_env`], running the `swath` program at `program` (e.g. a copy of it elsewhere).
pub fn swath_program(
    program: &std::path::Path,
    args: &[&str],
    database_url: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    run_swath(program, args, database_url, None, env)
}

fn swath_full(
    args: &[&str],
    database_url: Option<&str>,
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    run_swath(&swath_binary(), args, database_url, stdin, env)
}

fn run_swath(
    program: &std::path::Path,
    args: &[&str],
    database_url: Option<&str>,
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("SWATH_") {
            cmd.env_remove(key);
        }
    }
    if let Some(url) = database_url {
        cmd.env("SWATH_DATABASE_URL", url);
    }
    cmd.envs(env.iter().copied());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("the swath binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("stdin is writable");
    }
    drop(pipe);
    child.wait_with_output().expect("the swath binary runs")
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Inserts a `test_job` called `name` and returns it.
pub async fn new_test_job(pool: &PgPool, name: &str) -> Job {
    let mut job = NewJob::new("test_job", name, 3);
    job.product_id = Some(name.to_string());
    job.tile_id = Some("32TLR".into());
    job.measured_at = Some("2021-04-13T10:13:47Z".parse().unwrap());
    let inserted = insert_jobs(pool, &[job]).await.expect("insert");
    get_job(pool, inserted[0].id).await.expect("read back")
}

/// The shortest allowed path of statuses from a new job to `target` (the first element is the first
/// status of the job).
pub fn path_to(target: JobStatus) -> Vec<JobStatus> {
    use std::collections::{HashMap, VecDeque};
    use swath_domain::status::ALL_STATUSES;
    let mut previous: HashMap<JobStatus, Option<JobStatus>> = HashMap::new();
    let mut queue = VecDeque::new();
    for s in ALL_STATUSES {
        if JobStatus::can_transition(None, s) {
            previous.insert(s, None);
            queue.push_back(s);
        }
    }
    while let Some(s) = queue.pop_front() {
        for next in ALL_STATUSES {
            if JobStatus::can_transition(Some(s), next) && !previous.contains_key(&next) {
                previous.insert(next, Some(s));
                queue.push_back(next);
            }
        }
    }
    let mut path = vec![target];
    while let Some(Some(p)) = previous.get(path.last().unwrap()) {
        path.push(*p);
    }
    path.reverse();
    path
}

/// A worker's attempt token for `job`, which is `ready`: the job is claimed by a new owner first, as
/// the dispatcher does, a bootstrap secret is issued for the attempt and exchanged for the token, as
/// the worker does.
pub async fn token_for_ready(pool: &PgPool, job: &Job) -> String {
    let bootstrap = bootstrap_for_ready(pool, job).await;
    let token = swath_engine::db::tokens::new_token();
    let exchanged = swath_engine::db::tokens::exchange_bootstrap_token(
        pool,
        job.id,
        job.attempt,
        &bootstrap,
        &token,
    )
    .await
    .expect("exchange");
    assert_eq!(exchanged, swath_engine::db::tokens::Exchange::Exchanged);
    token
}

/// The bootstrap secret a dispatch of `job` (which is `ready`) hands to its worker: the job is
/// claimed by a new owner first, as the dispatcher does.
pub async fn bootstrap_for_ready(pool: &PgPool, job: &Job) -> String {
    let owner = uuid::Uuid::new_v4();
    sqlx::query("UPDATE jobs SET service_id = $2, lease_expires_at = now() + interval '10 minutes' WHERE id = $1")
        .bind(job.id)
        .bind(owner)
        .execute(pool)
        .await
        .expect("claim");
    swath_engine::db::tokens::issue_bootstrap_token(
        pool,
        job.id,
        job.attempt,
        owner,
        std::time::Duration::from_secs(600),
    )
    .await
    .expect("token")
    .expect("the job is ready and claimed")
}

/// Drives `job` along `statuses` with compare-and-set changes, starting new attempts where the state
/// machine requires it.
pub async fn drive(pool: &PgPool, mut job: Job, statuses: &[JobStatus]) -> Job {
    for &to in statuses {
        let mut change =
            StatusChange::of(&job, to).message(format!("test: {} -> {to}", job.status));
        if to == JobStatus::Ready
            && matches!(
                job.status,
                JobStatus::ExternalError | JobStatus::ErrorChecked
            )
        {
            change = change.next_attempt(None);
        }
        job = change_status_on(pool, &change)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    job
}

/// The last external error recorded in the history of job `id`.
pub async fn last_external_error(
    pool: &PgPool,
    id: i64,
) -> swath_engine::db::history::StatusChangeRecord {
    swath_engine::db::history::job_history(pool, id)
        .await
        .expect("history")
        .into_iter()
        .rev()
        .find(|h| h.status == JobStatus::ExternalError)
        .expect("an external error in the history")
}

/// A `test_job` named `name` taken to `processed` with one `test_product` per title (sizes 1024,
/// 1025...).
pub async fn processed(pool: &PgPool, name: &str, titles: &[String]) -> Job {
    let mut new = NewJob::new("test_job", name, 3);
    new.measured_at = Some("2021-04-13T10:10:21Z".parse().unwrap());
    new.params = serde_json::json!({"product": name, "mission": "S2"});
    let inserted = insert_jobs(pool, &[new]).await.unwrap();
    let job = get_job(pool, inserted[0].id).await.unwrap();
    use JobStatus::*;
    let path = [
        Configured,
        Ready,
        Queued,
        Started,
        PreProcessing,
        Processing,
        PostProcessing,
    ];
    let job = drive(pool, job, &path).await;
    let products: Vec<swath_domain::job::OutputProduct> = titles
        .iter()
        .enumerate()
        .map(|(i, title)| swath_domain::job::OutputProduct {
            kind: "test_product".into(),
            path: format!("TEST/2021/04/13/{title}"),
            size_bytes: Some(1024 + i as u64),
            completed_at: Some("2021-04-13T12:00:00Z".parse().unwrap()),
            infos: serde_json::json!({"wkt": "POLYGON((0 0,1 0,1 1,0 0))", "resolution": 20}),
            published_at: None,
        })
        .collect();
    let results = swath_domain::job::JobResults {
        return_code: Some(0),
        outcome: None,
        products,
    };
    change_status_on(
        pool,
        &StatusChange::of(&job, JobStatus::Processed)
            .results(serde_json::to_value(results).unwrap(), None),
    )
    .await
    .unwrap()
}

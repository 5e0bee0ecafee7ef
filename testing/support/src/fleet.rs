//! Several real `swath serve` processes for the chaos tests, each on its own port with its own log,
//! killed (SIGKILL) and restarted at will; and a stand-in for the worker that the Nomad emulator
//! runs for each dispatched attempt: it reports the attempt's statuses and result through the
//! worker API of any instance that answers, as a worker behind a load balancer would.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::nomad_emulator::{Dispatched, WorkerRunner};

/// A set of `swath serve` processes sharing one environment.
pub struct Fleet {
    members: Vec<Member>,
    env: Vec<(String, String)>,
    dir: PathBuf,
}

struct Member {
    port: u16,
    child: Option<Child>,
    starts: usize,
}

impl Fleet {
    /// Starts one instance per port of `ports` with `env`, plus their own `SWATH_LISTEN`,
    /// `SWATH_SERVICE_NAME` and `SWATH_PUBLICATION_FILE` (`publications-<i>.jsonl` under `dir`),
    /// logging to `swath-<i>.log` under `dir`.
    pub fn start(ports: &[u16], env: &[(String, String)], dir: &Path) -> Fleet {
        let n = ports.len();
        let mut fleet = Fleet {
            members: ports
                .iter()
                .map(|&port| Member {
                    port,
                    child: None,
                    starts: 0,
                })
                .collect(),
            env: env.to_vec(),
            dir: dir.to_path_buf(),
        };
        for i in 0..n {
            fleet.spawn(i);
        }
        fleet
    }

    /// The instances' API ports.
    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.port).collect()
    }

    /// The log file of instance `i`.
    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("swath-{i}.log"))
    }

    /// The publication file of instance `i`.
    pub fn publication_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("publications-{i}.jsonl"))
    }

    /// How many instances.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the fleet has no instance.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many processes were started in all.
    pub fn starts(&self) -> usize {
        self.members.iter().map(|m| m.starts).sum()
    }

    fn spawn(&mut self, i: usize) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .expect("a log file");
        let mut cmd = Command::new(super::swath_binary());
        cmd.arg("serve");
        for (key, _) in std::env::vars() {
            if key.starts_with("SWATH_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "SWATH_LISTEN",
                format!("127.0.0.1:{}", self.members[i].port),
            )
            .env("SWATH_SERVICE_NAME", format!("chaos-{i}"))
            .env("SWATH_PUBLICATION_FILE", self.publication_file(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().expect("swath serve starts");
        let member = &mut self.members[i];
        member.child = Some(child);
        member.starts += 1;
    }

    /// Kills instance `i` with SIGKILL (no goodbye) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts instance `i` again on its port.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Starts again every instance whose process ended by itself (e.g. it could not start while the
    /// database was down); returns how many.
    pub fn revive(&mut self) -> usize {
        let ended: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                self.members[i]
                    .child
                    .as_mut()
                    .is_none_or(|c| c.try_wait().ok().flatten().is_some())
            })
            .collect();
        for &i in &ended {
            self.members[i].child = None;
            self.spawn(i);
        }
        ended.len()
    }

    /// Waits until every instance's API answers.
    pub async fn wait_ready(&self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        for port in self.ports() {
            loop {
                let up = client
                    .get(format!("http://127.0.0.1:{port}/api/v1/dump-jobs?limit=1"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if up {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "instance on port {port} never answered; see {}",
                    self.dir.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Stops every instance with SIGTERM (a graceful stop), SIGKILL after `within`; returns the
    /// instances that had to be killed.
    pub fn terminate(&mut self, within: Duration) -> Vec<usize> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        for member in &mut self.members {
            if let Some(child) = &member.child {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + within;
        let mut killed = Vec::new();
        for (i, member) in self.members.iter_mut().enumerate() {
            let Some(mut child) = member.child.take() else {
                continue;
            };
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    killed.push(i);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        killed
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// What went wrong in the stand-in workers (a correct run has nothing here).
pub type Problems = Arc<Mutex<Vec<String>>>;

/// The worker stand-in: for each attempt, the exchange of the bootstrap secret (the payload) for an
/// attempt token, the task, then `started`, `pre_processing`, `processing`, `post_processing` and a
/// successful result with one `test_product` named `CHAOS_<job id>_V100_1` under the task's output
/// prefix, each sent to a random instance of `ports` and sent again elsewhere on a connection error
/// or a 5xx; then exit code 0. A request refused otherwise is noted in `problems`.
pub fn stand_in(ports: Vec<u16>, problems: Problems) -> WorkerRunner {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let ports = Arc::new(ports);
    WorkerRunner(Arc::new(move |d: Dispatched| {
        let (client, ports, problems) = (client.clone(), Arc::clone(&ports), Arc::clone(&problems));
        Box::pin(async move { report(&client, &ports, &problems, d).await })
    }))
}

/// What one request of the stand-in got.
enum Sent {
    /// A success, with its body.
    Done(serde_json::Value),
    /// A refusal, with its status and text.
    Refused(reqwest::StatusCode, String),
    /// Nothing got through before the deadline.
    Never,
}

/// Sends a request to random instances of `ports` until one answers other than with a connection
/// error or a 5xx, or `deadline` passes.
async fn send(
    client: &reqwest::Client,
    ports: &[u16],
    path: &str,
    bearer: &str,
    body: Option<&serde_json::Value>,
    deadline: Instant,
) -> Sent {
    loop {
        let port = ports[fastrand::usize(..ports.len())];
        let url = format!("http://127.0.0.1:{port}/api/v1/worker/jobs/{path}");
        let request = match body {
            Some(body) => client.post(&url).json(body),
            None => client.get(&url),
        };
        match request.bearer_auth(bearer).send().await {
            Ok(r) if r.status().is_success() => {
                return Sent::Done(r.json().await.unwrap_or(serde_json::Value::Null))
            }
            Ok(r) if r.status().is_server_error() => {}
            Ok(r) => {
                let status = r.status();
                return Sent::Refused(status, r.text().await.unwrap_or_default());
            }
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return Sent::Never;
        }
        tokio::time::sleep(Duration::from_millis(20 + fastrand::u64(..80))).await;
    }
}

async fn report(
    client: &reqwest::Client,
    ports: &[u16],
    problems: &Problems,
    d: Dispatched,
) -> i32 {
    let job_id = d.meta["job_id"].clone();
    let attempt = d.meta["attempt"].clone();
    let bootstrap = String::from_utf8_lossy(&d.payload).into_owned();
    let deadline = Instant::now() + Duration::from_secs(180);
    let attempt_path = format!("{job_id}/attempts/{attempt}");
    let problem = |what: String| {
        problems
            .lock()
            .unwrap()
            .push(format!("job {job_id} attempt {attempt} {what}"));
        0
    };
    // The exchange is sent again with the same attempt token after a lost answer.
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let exchange = serde_json::json!({ "token": token });
    match send(
        client,
        ports,
        &format!("{attempt_path}/token"),
        &bootstrap,
        Some(&exchange),
        deadline,
    )
    .await
    {
        Sent::Done(_) => {}
        Sent::Refused(status, text) => return problem(format!("token: {status} {text}")),
        Sent::Never => return problem("token: never got through".into()),
    }
    let task = match send(
        client,
        ports,
        &format!("{attempt_path}/task"),
        &token,
        None,
        deadline,
    )
    .await
    {
        Sent::Done(task) => task,
        Sent::Refused(status, text) => return problem(format!("task: {status} {text}")),
        Sent::Never => return problem("task: never got through".into()),
    };
    // The product's path in the store: the task's output prefix without the store's scheme and
    // root (the tests' output store is a directory).
    let prefix = task["outputs"][0]["destination_prefix"]
        .as_str()
        .unwrap_or_default()
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .trim_matches('/')
        .to_string();
    let title = format!("CHAOS_{job_id}_V100_1");
    let result = serde_json::json!({
        "outcome": "success", "return_code": 0, "software_version": "stand-in",
        "products": [{"kind": "test_product", "path": format!("{prefix}/{title}"), "size_bytes": 1024,
                      "completed_at": "2024-03-01T13:00:00Z",
                      "infos": {"wkt": "POLYGON ((0 0, 1 0, 1 1, 0 0))", "resolution": 20,
                                "startDate": "2024-03-01T10:00:00Z"},
                      "published_at": null}]
    });
    let steps = [
        ("status", serde_json::json!({"status": "started"})),
        ("status", serde_json::json!({"status": "pre_processing"})),
        ("status", serde_json::json!({"status": "processing"})),
        ("status", serde_json::json!({"status": "post_processing"})),
        (
            "products",
            serde_json::json!({"products": [{"kind": "test_product", "path": format!("{prefix}/{title}")}]}),
        ),
        ("result", result),
    ];
    for (endpoint, body) in steps {
        match send(
            client,
            ports,
            &format!("{attempt_path}/{endpoint}"),
            &token,
            Some(&body),
            deadline,
        )
        .await
        {
            Sent::Done(_) => {}
            // A result whose answer was lost and is sent again finds the job past it.
            Sent::Refused(status, text)
                if endpoint == "result"
                    && status == reqwest::StatusCode::CONFLICT
                    && text.contains("a result is reported from post_processing") =>
            {
                return 0
            }
            Sent::Refused(status, text) => {
                return problem(format!("{endpoint} {body}: {status} {text}"))
            }
            Sent::Never => return problem(format!("{endpoint}: never got through")),
        }
    }
    0
}

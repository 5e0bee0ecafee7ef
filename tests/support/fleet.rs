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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swath"));
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

/// The worker stand-in: for each attempt, `started`, `pre_processing`, `processing`,
/// `post_processing` and a successful result with one `test_product` named `CHAOS_V100_<job id>`, each
/// sent to a random instance of `ports` and sent again elsewhere on a connection error or a 5xx;
/// then exit code 0. A report refused as stale or out of order is noted in `problems`.
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

async fn report(
    client: &reqwest::Client,
    ports: &[u16],
    problems: &Problems,
    d: Dispatched,
) -> i32 {
    let job_id = d.meta["job_id"].clone();
    let attempt = d.meta["attempt"].clone();
    let token = String::from_utf8_lossy(&d.payload).into_owned();
    let title = format!("CHAOS_V100_{job_id}");
    let result = serde_json::json!({
        "outcome": "success", "return_code": 0, "software_version": "stand-in",
        "products": [{"kind": "test_product", "path": format!("CHAOS/{job_id}/{title}"), "size_bytes": 1024,
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
        ("result", result),
    ];
    let deadline = Instant::now() + Duration::from_secs(180);
    for (endpoint, body) in steps {
        loop {
            let port = ports[fastrand::usize(..ports.len())];
            let url = format!(
                "http://127.0.0.1:{port}/api/v1/worker/jobs/{job_id}/attempts/{attempt}/{endpoint}"
            );
            match client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_server_error() => {}
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    // A result whose answer was lost and is sent again finds the job past it.
                    if endpoint == "result"
                        && status == reqwest::StatusCode::CONFLICT
                        && text.contains("a result is reported from post_processing")
                    {
                        return 0;
                    }
                    problems.lock().unwrap().push(format!(
                        "job {job_id} attempt {attempt} {endpoint} {body}: {status} {text}"
                    ));
                    return 0;
                }
                Err(_) => {}
            }
            if Instant::now() > deadline {
                problems.lock().unwrap().push(format!(
                    "job {job_id} attempt {attempt}: {endpoint} never got through"
                ));
                return 0;
            }
            tokio::time::sleep(Duration::from_millis(20 + fastrand::u64(..80))).await;
        }
    }
    0
}

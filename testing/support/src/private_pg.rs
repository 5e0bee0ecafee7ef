//! A private PostgreSQL server for the tests that restart or break the database: `initdb` in a
//! temporary directory, its own port and socket directory, started and restarted with `pg_ctl`
//! (as the `postgres` user when the tests run as root, since PostgreSQL refuses to run as root),
//! stopped when dropped. Other tests, on the shared server, are never disturbed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running private server.
pub struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server's programs as this user (when the tests run as root).
    user: Option<String>,
}

impl PrivatePg {
    /// Creates a cluster in a new temporary directory and starts it on a free port. Panics with
    /// the reason if PostgreSQL's programs are missing or fail.
    pub fn start() -> PrivatePg {
        let bin =
            server_binaries().expect("PostgreSQL's server programs (/usr/lib/postgresql/*/bin)");
        let dir = tempfile::Builder::new()
            .prefix("swath-private-pg-")
            .tempdir()
            .expect("a temporary directory");
        let root = run_text("id", &["-u"]).trim() == "0";
        let user = root.then(|| "postgres".to_string());
        if root {
            let uid: u32 = run_text("id", &["-u", "postgres"])
                .trim()
                .parse()
                .expect("a postgres user");
            let gid: u32 = run_text("id", &["-g", "postgres"])
                .trim()
                .parse()
                .expect("its group");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let pg = PrivatePg {
            bin,
            port: free_port(),
            dir,
            user,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.pg_ctl(&["start", "-w", "-t", "60"]);
        pg
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Restarts it (fast shutdown: every connection is cut), waiting until it accepts connections.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"]);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl(&self, action: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let mut args = vec![
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-o",
            options.as_str(),
        ];
        args.extend_from_slice(action);
        self.run("pg_ctl", &args);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let output = match &self.user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .current_dir(self.dir.path())
                .output(),
            None => Command::new(&program).args(args).output(),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        check(&program, &output, self);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "stop", "-m", "immediate", "-w"];
        let _ = match &self.user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}

fn check(program: &Path, output: &Output, pg: &PrivatePg) {
    if !output.status.success() {
        panic!(
            "{} failed: {}\n{}\n{}\nserver log:\n{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            pg.log()
        );
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn run_text(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

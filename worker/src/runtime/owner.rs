//! Which worker process owns a container, and whether that process still lives.
//!
//! A worker removes its container on every path it survives; the only way a container outlives its
//! worker is the worker being killed outright (Nomad SIGKILLs a task still running at its kill
//! timeout, the OOM killer, a crash). The Docker runtime labels each container with its owner's
//! [`ProcessIdentity`], and before starting a container removes those whose owner is gone.
//!
//! A process is named by the host's boot id (`/proc/sys/kernel/random/boot_id`), its pid namespace
//! (the inode of `/proc/self/ns/pid`), its pid and its start time in clock ticks since boot (field
//! 22 of `/proc/<pid>/stat`): a pid alone may be reused by another process after the owner died,
//! the start time tells them apart (a reused pid starts later); and a pid means something only in
//! its namespace, so a worker judges only owners of its own boot and pid namespace (two workers in
//! two containers sharing one engine never judge each other's). A zombie (state `Z`: dead, not yet
//! reaped by its parent) is dead.

use std::fmt;
use std::path::Path;

/// Where Linux keeps the id of the current boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// A process on one boot of one host: `<boot id>/<pid namespace>/<pid>/<start ticks>` as a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The host's boot id.
    pub boot_id: String,
    /// The inode of the pid namespace the pid belongs to.
    pub pid_namespace: u64,
    /// The process id (in the host's pid namespace, where the worker runs under raw_exec).
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// The state letter and start time of `/proc/<pid>/stat`, if the process exists.
fn stat_of(proc_root: &Path, pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); starttime is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((state, start))
}

fn boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string(BOOT_ID_PATH)?.trim().to_string())
}

/// The inode of this process's pid namespace (`/proc/self/ns/pid` links to `pid:[<inode>]`).
fn pid_namespace() -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/self/ns/pid")?.ino())
}

impl ProcessIdentity {
    /// The identity of this process.
    pub fn current() -> std::io::Result<Self> {
        Self::of(std::process::id())?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "/proc/self/stat is unreadable",
            )
        })
    }

    /// The identity of the live process `pid`, `None` when there is none (or a zombie).
    pub fn of(pid: u32) -> std::io::Result<Option<Self>> {
        let boot_id = boot_id()?;
        let pid_namespace = pid_namespace()?;
        Ok(match stat_of(Path::new("/proc"), pid) {
            Some((state, start_ticks)) if state != 'Z' => Some(ProcessIdentity {
                boot_id,
                pid_namespace,
                pid,
                start_ticks,
            }),
            _ => None,
        })
    }

    /// Parses a label written by [`fmt::Display`]; `None` for anything else.
    pub fn parse(label: &str) -> Option<Self> {
        let mut parts = label.split('/');
        let identity = ProcessIdentity {
            boot_id: parts.next().filter(|b| !b.is_empty())?.to_string(),
            pid_namespace: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            start_ticks: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(identity)
    }

    /// Whether this process is known dead: it ran on this boot of this host, in this pid
    /// namespace, and no live process has its pid and start time. A process of another boot,
    /// another host sharing the engine or another pid namespace cannot be judged from here, and is
    /// not known dead.
    pub fn is_known_dead(&self) -> std::io::Result<bool> {
        if self.boot_id != boot_id()? || self.pid_namespace != pid_namespace()? {
            return Ok(false);
        }
        Ok(Self::of(self.pid)?.is_none_or(|live| live.start_ticks != self.start_ticks))
    }
}

impl fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.boot_id, self.pid_namespace, self.pid, self.start_ticks
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_round_trips_through_its_label() {
        let me = ProcessIdentity::current().unwrap();
        assert_eq!(ProcessIdentity::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.is_known_dead().unwrap());
        let reused = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(reused.is_known_dead().unwrap(), "same pid, other start");
        let other_boot = ProcessIdentity {
            boot_id: "another-boot".into(),
            start_ticks: 0,
            ..me.clone()
        };
        assert!(!other_boot.is_known_dead().unwrap());
        let other_namespace = ProcessIdentity {
            pid_namespace: me.pid_namespace + 1,
            start_ticks: 0,
            ..me
        };
        assert!(!other_namespace.is_known_dead().unwrap());
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let identity = ProcessIdentity::of(child.id()).unwrap().expect("alive");
        assert!(!identity.is_known_dead().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(identity.is_known_dead().unwrap());
    }

    #[test]
    fn malformed_labels_are_refused() {
        for label in ["", "b/1/2", "b/1/x/2", "/1/2/3", "b/1/2/3/4", "b/n/2/3"] {
            assert_eq!(ProcessIdentity::parse(label), None, "{label:?}");
        }
    }
}

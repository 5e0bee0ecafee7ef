//! Who the code runs as, and the work directory made ready for that user.
//!
//! The code never runs as root. By default it runs with the worker's own ids; a worker running as
//! root runs it as `nobody` (65534:65534) and hands it the work directory and `outputs/` (not
//! `inputs/`, which stays the worker's and read-only for the code, nor `logs/`).
//!
//! A code that runs as another user must also be able to reach the work directory: every directory
//! above it must be searchable by that user. [`check_can_enter`] says which one is not, before
//! anything is started.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::RuntimeError;

/// `nobody:nogroup`, for a worker that runs as root.
const NOBODY: RunUser = RunUser {
    uid: 65534,
    gid: 65534,
};

/// The numeric ids the code runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl RunUser {
    /// The user asked for (`"uid:gid"`), or the default; refuses root.
    pub(crate) fn resolve(asked: Option<&str>) -> Result<RunUser, RuntimeError> {
        let user = match asked {
            Some(text) => parse(text)?,
            None => {
                let own = RunUser::current();
                if own.uid == 0 {
                    NOBODY
                } else {
                    own
                }
            }
        };
        if user.uid == 0 {
            return Err(RuntimeError::InvalidSpec(
                "the scientific code never runs as root (uid 0)".into(),
            ));
        }
        Ok(user)
    }

    /// The worker's own effective ids.
    pub(crate) fn current() -> RunUser {
        RunUser {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    /// `uid:gid`, as Docker takes it.
    pub(crate) fn docker_user(self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

fn parse(text: &str) -> Result<RunUser, RuntimeError> {
    let invalid = || RuntimeError::InvalidSpec(format!("user {text:?} is not numeric uid:gid"));
    let (uid, gid) = text.split_once(':').ok_or_else(invalid)?;
    Ok(RunUser {
        uid: uid.parse().map_err(|_| invalid())?,
        gid: gid.parse().map_err(|_| invalid())?,
    })
}

/// Checks that `user` can search every directory from `/` down to `work_dir` (those that exist:
/// the rest are created by the worker, for the code). For the worker's own user, the kernel is
/// asked (a `stat` of `dir/.`, which needs search permission, supplementary groups included); for
/// another user, the permission bits are read as the kernel applies them to the code, which runs
/// with no supplementary group: the owner's bits if it owns the directory, else the group's if its
/// gid is the directory's, else the others'. POSIX ACLs are not read: an ACL that refuses more than
/// the bits shows as the spawn's own error, which names the user and the directory too.
pub(crate) fn check_can_enter(work_dir: &Path, user: RunUser) -> Result<(), RuntimeError> {
    let absolute = std::path::absolute(work_dir).map_err(|source| RuntimeError::WorkDir {
        path: work_dir.to_path_buf(),
        source,
    })?;
    let refuse = |reason: String| RuntimeError::WorkDirAccess {
        path: work_dir.to_path_buf(),
        user: user.docker_user(),
        reason,
    };
    let own = user == RunUser::current();
    let mut dir = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                dir.pop();
                continue;
            }
            Component::CurDir => continue,
            other => dir.push(other),
        }
        let meta = match std::fs::metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(refuse(format!("{}: {e}", dir.display()))),
        };
        if !meta.is_dir() {
            return Err(refuse(format!("{} is not a directory", dir.display())));
        }
        let searchable = if own {
            std::fs::metadata(dir.join(".")).is_ok()
        } else {
            searchable_by(&meta, user)
        };
        if !searchable {
            return Err(refuse(format!(
                "{} (mode {:04o}, owner {}:{}) is not searchable by it",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            )));
        }
    }
    Ok(())
}

/// Whether the permission bits of a directory let `user` (with no supplementary group) search it.
fn searchable_by(meta: &std::fs::Metadata, user: RunUser) -> bool {
    let mode = meta.mode();
    let bit = if meta.uid() == user.uid {
        0o100
    } else if meta.gid() == user.gid {
        0o010
    } else {
        0o001
    };
    mode & bit != 0
}

/// Creates `inputs/`, `outputs/` and `logs/` under `work_dir` if missing and, when the worker is
/// root and the code is someone else, gives the code the work directory and `outputs/`.
pub(crate) fn prepare_work_dir(work_dir: &Path, user: RunUser) -> Result<(), RuntimeError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::WorkDir { path, source }
    };
    for sub in ["inputs", "outputs", "logs"] {
        let dir = work_dir.join(sub);
        std::fs::create_dir_all(&dir).map_err(fail(&dir))?;
    }
    let own = RunUser::current();
    if own.uid == 0 && user != own {
        for dir in [work_dir.to_path_buf(), work_dir.join("outputs")] {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(fail(&dir))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numeric_ids_and_refuses_root() {
        assert_eq!(
            RunUser::resolve(Some("1000:100")).unwrap(),
            RunUser {
                uid: 1000,
                gid: 100
            }
        );
        assert!(RunUser::resolve(Some("0:0")).is_err());
        assert!(RunUser::resolve(Some("alice")).is_err());
        assert!(RunUser::resolve(Some("1000:x")).is_err());
    }

    #[test]
    fn the_bits_of_the_users_class_decide() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let meta = |mode: u32| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::metadata(dir.path()).unwrap()
        };
        let owner = RunUser::current();
        let group = RunUser {
            uid: owner.uid + 1,
            gid: owner.gid,
        };
        let other = RunUser {
            uid: owner.uid + 1,
            gid: owner.gid + 1,
        };
        // The owner's class is the owner's, even when the others may search.
        assert!(!searchable_by(&meta(0o071), owner));
        assert!(searchable_by(&meta(0o100), owner));
        assert!(searchable_by(&meta(0o010), group));
        assert!(!searchable_by(&meta(0o101), group));
        assert!(searchable_by(&meta(0o001), other));
        assert!(!searchable_by(&meta(0o770), other));
    }

    #[test]
    fn the_default_is_never_root() {
        let user = RunUser::resolve(None).unwrap();
        assert_ne!(user.uid, 0);
        if RunUser::current().uid == 0 {
            assert_eq!(user, NOBODY);
        } else {
            assert_eq!(user, RunUser::current());
        }
    }
}

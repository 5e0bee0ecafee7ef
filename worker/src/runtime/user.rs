//! Who the code runs as, and the work directory made ready for that user.
//!
//! The code never runs as root. By default it runs with the worker's own ids; a worker running as
//! root runs it as `nobody` (65534:65534) and hands it the work directory and `outputs/` (not
//! `inputs/`, which stays the worker's and read-only for the code, nor `logs/`).

use std::path::Path;

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

//! Worker flavors: the sizes of machine a job can run on, as data.
//!
//! A job type names its flavor; the executor turns it into Nomad resources and a node-class
//! constraint, or into a concurrency slot on the local machine. The defaults are the original's
//! OpenStack flavors; deployments override the table in configuration.

use serde::{Deserialize, Serialize};

/// One worker size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerFlavor {
    /// Flavor name, e.g. `hm.medium`.
    pub name: String,
    /// CPU cores given to one job.
    pub cpus: u32,
    /// Memory given to one job, in MiB.
    pub memory_mb: u64,
    /// Scratch disk needed by one job, in GiB.
    #[serde(default)]
    pub disk_gb: u64,
    /// Nomad node class the job must be placed on.
    pub node_class: String,
    /// How many jobs of this flavor the local executor runs at once.
    #[serde(default = "default_local_slots")]
    pub local_slots: u32,
}

fn default_local_slots() -> u32 {
    1
}

/// A flavor table that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlavorError {
    /// The table is empty.
    #[error("the worker flavor table is empty")]
    Empty,
    /// Two flavors share a name.
    #[error("worker flavor {0:?} is defined twice")]
    Duplicate(String),
    /// A flavor has an impossible value.
    #[error("worker flavor {name:?}: {problem}")]
    Invalid {
        /// The flavor.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// The original system's flavors (`worker_flavors.py`), with memory as its Nomad jobs asked for.
pub fn default_flavors() -> Vec<WorkerFlavor> {
    let flavor = |name: &str, cpus, memory_mb, disk_gb| WorkerFlavor {
        name: name.to_string(),
        cpus,
        memory_mb,
        disk_gb,
        node_class: "worker".to_string(),
        local_slots: 1,
    };
    vec![
        flavor("eo1.xsmall", 1, 1024, 8),
        flavor("eo2.medium", 1, 4096, 16),
        flavor("hm.medium", 2, 16384, 64),
        flavor("hm.large", 4, 32768, 128),
        flavor("hm.xlarge", 8, 65536, 256),
    ]
}

/// Checks a flavor table: not empty, unique names, positive sizes, a node class.
pub fn validate_flavors(flavors: &[WorkerFlavor]) -> Result<(), FlavorError> {
    if flavors.is_empty() {
        return Err(FlavorError::Empty);
    }
    let mut seen = std::collections::HashSet::new();
    for f in flavors {
        if !seen.insert(f.name.as_str()) {
            return Err(FlavorError::Duplicate(f.name.clone()));
        }
        let problem = if f.name.trim().is_empty() {
            Some("the name is empty")
        } else if f.cpus == 0 {
            Some("cpus must be at least 1")
        } else if f.memory_mb == 0 {
            Some("memory_mb must be at least 1")
        } else if f.node_class.trim().is_empty() {
            Some("node_class is empty")
        } else if f.local_slots == 0 {
            Some("local_slots must be at least 1")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(FlavorError::Invalid {
                name: f.name.clone(),
                problem: problem.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        validate_flavors(&default_flavors()).unwrap();
    }

    #[test]
    fn bad_tables_are_rejected_with_the_reason() {
        assert_eq!(validate_flavors(&[]), Err(FlavorError::Empty));
        let mut dup = default_flavors();
        dup.push(dup[0].clone());
        assert_eq!(
            validate_flavors(&dup),
            Err(FlavorError::Duplicate("eo1.xsmall".into()))
        );
        let mut zero = default_flavors();
        zero[1].cpus = 0;
        let err = validate_flavors(&zero).unwrap_err().to_string();
        assert_eq!(err, "worker flavor \"eo2.medium\": cpus must be at least 1");
    }

    #[test]
    fn flavors_parse_from_json_and_reject_unknown_fields() {
        let f: WorkerFlavor = serde_json::from_str(
            r#"{"name":"big","cpus":16,"memory_mb":128000,"node_class":"gpu"}"#,
        )
        .unwrap();
        assert_eq!(f.local_slots, 1);
        assert_eq!(f.disk_gb, 0);
        let err = serde_json::from_str::<WorkerFlavor>(
            r#"{"name":"big","cpus":16,"memory":1,"node_class":"gpu"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `memory`"));
    }
}

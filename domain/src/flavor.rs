//! Worker flavors: what one job asks for, and which kind of machine it must run on, as data.
//!
//! A flavor separates two things the original system kept apart too: the **request** (memory, CPU,
//! scratch disk) that the scheduler reserves for one job and the worker enforces on its container,
//! and the **placement** that pins the job to one kind of VM. A job type names its flavor; the
//! Nomad executor turns the request into task resources and the placement into a constraint, the
//! local executor into a concurrency slot and container limits.
//!
//! The request must stay below what a VM of that kind offers to Nomad, with headroom: Nomad places
//! on the node's `MemTotal` (less than the nominal RAM: the kernel and its page tables take their
//! share, `client/fingerprint/memory.go`) minus the client's `reserved` block, and on the size of the
//! allocation directory's file system (`client/fingerprint/storage_unix.go`: `df`'s size, less than
//! the nominal disk). A request equal to the nominal size never places. The defaults are the
//! original system's Nomad jobs (`cpu = 50`, memory 500 / 3000 / 10000 / 25000 / 60000 MB, each
//! pinned with `${attr.platform.aws.instance-type}` to its flavor's VM kind).
//!
//! A job type that needs another request on the same kind of VM gets a flavor of its own (another
//! name, the same `placement_value`) and names it in its `worker_flavor` setting.

use serde::{Deserialize, Serialize};

/// The node attribute the default placement reads: the instance type Nomad's AWS fingerprinter
/// takes from the EC2-compatible metadata service (OpenStack serves the flavor name there).
pub const DEFAULT_PLACEMENT_ATTRIBUTE: &str = "${attr.platform.aws.instance-type}";

/// One worker flavor: a request and a placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerFlavor {
    /// Flavor name, e.g. `hm.medium`; by default also the VM kind the jobs are pinned to.
    pub name: String,
    /// CPU cores one job's container may use (the worker's CPU limit, the local executor's share).
    /// In Nomad, reserved as whole `cores` unless [`Self::cpu_mhz`] is set.
    pub cpus: u32,
    /// CPU asked of Nomad in MHz (`resources.cpu`). When set, Nomad gets `cpu` and no `cores`
    /// (Nomad rejects a task asking for both, `nomad/structs/structs.go` `Resources.Validate`).
    #[serde(default)]
    pub cpu_mhz: Option<u32>,
    /// Memory asked for one job and the container's memory limit, in MiB.
    pub memory_mb: u64,
    /// Scratch disk asked for one job (Nomad `ephemeral_disk`, the worker's work-directory limit),
    /// in GiB.
    #[serde(default)]
    pub disk_gb: u64,
    /// The node attribute the placement constraint reads (Nomad interpolation syntax).
    #[serde(default = "default_placement_attribute")]
    pub placement_attribute: String,
    /// The value the attribute must have; unset means the flavor's name.
    #[serde(default)]
    pub placement_value: Option<String>,
    /// How many jobs of this flavor the local executor runs at once.
    #[serde(default = "default_local_slots")]
    pub local_slots: u32,
}

impl Default for WorkerFlavor {
    /// A one-CPU, 64 MiB flavor without disk, pinned to a VM kind named like it (name it).
    fn default() -> Self {
        WorkerFlavor {
            name: String::new(),
            cpus: 1,
            cpu_mhz: None,
            memory_mb: 64,
            disk_gb: 0,
            placement_attribute: default_placement_attribute(),
            placement_value: None,
            local_slots: default_local_slots(),
        }
    }
}

impl WorkerFlavor {
    /// The VM kind (the value of [`Self::placement_attribute`]) this flavor's jobs must run on.
    pub fn placement_value(&self) -> &str {
        self.placement_value.as_deref().unwrap_or(&self.name)
    }
}

fn default_local_slots() -> u32 {
    1
}

fn default_placement_attribute() -> String {
    DEFAULT_PLACEMENT_ATTRIBUTE.to_string()
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

/// The original system's request for one job, pinned to the VM kind of the same name.
///
/// | Flavor (VM kind) | VM: vCPU / RAM / disk | Request: CPU / memory / disk | Memory headroom |
/// |---|---|---|---|
/// | `eo1.xsmall` | 1 / 1 GiB / 8 GB | 50 MHz / 500 MiB / 4 GiB | ~440 MiB |
/// | `eo2.medium` | 1 / 4 GiB / 16 GB | 50 MHz / 3000 MiB / 10 GiB | ~960 MiB |
/// | `hm.medium` | 2 / 16 GiB / 64 GB | 50 MHz / 10000 MiB / 40 GiB | ~6 GiB |
/// | `hm.large` | 4 / 32 GiB / 128 GB | 50 MHz / 25000 MiB / 100 GiB | ~7 GiB |
/// | `hm.xlarge` | 8 / 64 GiB / 256 GB | 50 MHz / 60000 MiB / 200 GiB | ~4 GiB |
///
/// Headroom is against the VM's `MemTotal` (about 1.6 % and 64 MiB below nominal) and leaves
/// room for the OS, the Nomad client, Docker and the worker itself; the disk headroom holds the
/// OS and the Docker images. `cpu = 50` is the original's token value: packing is driven by
/// memory, the worker's container may still use `cpus` cores.
pub fn default_flavors() -> Vec<WorkerFlavor> {
    let flavor = |name: &str, cpus, memory_mb, disk_gb| WorkerFlavor {
        name: name.to_string(),
        cpus,
        cpu_mhz: Some(50),
        memory_mb,
        disk_gb,
        ..WorkerFlavor::default()
    };
    vec![
        flavor("eo1.xsmall", 1, 500, 4),
        flavor("eo2.medium", 1, 3000, 10),
        flavor("hm.medium", 2, 10000, 40),
        flavor("hm.large", 4, 25000, 100),
        flavor("hm.xlarge", 8, 60000, 200),
    ]
}

/// Checks a flavor table: not empty, unique names, positive sizes, a placement.
pub fn validate_flavors(flavors: &[WorkerFlavor]) -> Result<(), FlavorError> {
    if flavors.is_empty() {
        return Err(FlavorError::Empty);
    }
    let mut seen = std::collections::HashSet::new();
    for f in flavors {
        if !seen.insert(f.name.as_str()) {
            return Err(FlavorError::Duplicate(f.name.clone()));
        }
        let attribute = &f.placement_attribute;
        // `${` + a node attribute's name + `}`: written into job files as is, so nothing else.
        let attribute_name = attribute
            .strip_prefix("${")
            .and_then(|a| a.strip_suffix('}'))
            .filter(|a| {
                !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            });
        let problem = if f.name.trim().is_empty() {
            Some("the name is empty".to_string())
        } else if f.cpus == 0 {
            Some("cpus must be at least 1".to_string())
        } else if f.cpu_mhz == Some(0) {
            Some("cpu_mhz must be at least 1 (or unset to reserve `cpus` whole cores)".to_string())
        } else if f.memory_mb < 10 {
            // Nomad's minimum (`MeetsMinResources`).
            Some(format!(
                "memory_mb must be at least 10, not {}",
                f.memory_mb
            ))
        } else if attribute_name.is_none() {
            Some(format!(
                "placement_attribute {:?} is not a Nomad node attribute like \"${{attr.platform.aws.instance-type}}\"",
                f.placement_attribute
            ))
        } else if f.placement_value().trim().is_empty() {
            Some("placement_value is empty".to_string())
        } else if f.local_slots == 0 {
            Some("local_slots must be at least 1".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(FlavorError::Invalid {
                name: f.name.clone(),
                problem,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_are_the_original_requests_pinned_to_their_vm_kind() {
        let flavors = default_flavors();
        validate_flavors(&flavors).unwrap();
        let requests: Vec<_> = flavors
            .iter()
            .map(|f| (f.name.as_str(), f.cpu_mhz, f.memory_mb, f.placement_value()))
            .collect();
        assert_eq!(
            requests,
            [
                ("eo1.xsmall", Some(50), 500, "eo1.xsmall"),
                ("eo2.medium", Some(50), 3000, "eo2.medium"),
                ("hm.medium", Some(50), 10000, "hm.medium"),
                ("hm.large", Some(50), 25000, "hm.large"),
                ("hm.xlarge", Some(50), 60000, "hm.xlarge"),
            ]
        );
        assert!(flavors
            .iter()
            .all(|f| f.placement_attribute == "${attr.platform.aws.instance-type}"));
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
        let mut literal = default_flavors();
        literal[0].placement_attribute = "instance-type".into();
        let err = validate_flavors(&literal).unwrap_err().to_string();
        assert!(
            err.contains("\"eo1.xsmall\": placement_attribute \"instance-type\""),
            "{err}"
        );
        let mut tiny = default_flavors();
        tiny[2].memory_mb = 5;
        let err = validate_flavors(&tiny).unwrap_err().to_string();
        assert!(
            err.contains("memory_mb must be at least 10, not 5"),
            "{err}"
        );
    }

    #[test]
    fn flavors_parse_from_json_and_reject_unknown_fields() {
        let f: WorkerFlavor =
            serde_json::from_str(r#"{"name":"big","cpus":16,"memory_mb":128000}"#).unwrap();
        assert_eq!(f.local_slots, 1);
        assert_eq!(f.disk_gb, 0);
        assert_eq!(f.cpu_mhz, None);
        assert_eq!(f.placement_value(), "big");
        assert_eq!(f.placement_attribute, DEFAULT_PLACEMENT_ATTRIBUTE);
        let f: WorkerFlavor = serde_json::from_str(
            r#"{"name":"big-sws","cpus":8,"cpu_mhz":200,"memory_mb":50000,"placement_value":"hm.xlarge"}"#,
        )
        .unwrap();
        assert_eq!(f.placement_value(), "hm.xlarge");
        let err = serde_json::from_str::<WorkerFlavor>(
            r#"{"name":"big","cpus":16,"memory":1,"node_class":"gpu"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `memory`"));
    }
}

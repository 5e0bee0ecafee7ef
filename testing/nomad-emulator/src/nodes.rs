//! The emulated client nodes: what each one's fingerprinters report and its client configuration
//! reserves, which is all Nomad's scheduler looks at to decide where an allocation fits.
//!
//! The default pool is the original system's worker VMs, two of each kind. Each node has what a
//! Nomad client on such a VM reports, not the flavor's nominal size:
//!
//! * memory: the kernel's `MemTotal` (`client/fingerprint/memory.go` reads it through gopsutil).
//!   Linux keeps a 64-byte `struct page` per 4 KiB page (1/64 of RAM) and its own image and the
//!   firmware's reservations (about 64 MiB here) out of `MemTotal`, so a node of N MiB offers
//!   about `N - N/64 - 64` MiB. These are estimates for KVM guests; `nomad node status -verbose`
//!   shows a real VM's `memory.totalbytes`.
//! * disk: the size `df -kP` reports for the file system of the allocation directory
//!   (`client/fingerprint/storage_unix.go`): ext4's inode tables (1/64 of the disk at the default
//!   16 KiB per inode) and about 128 MiB of journal and boot partition are not in it.
//! * CPU: `cores × MHz` (`client/fingerprint/cpu.go`), at an assumed 2400 MHz per vCPU.
//! * the client's `reserved` block: nothing by default, as in Nomad.
//!
//! Nominal sizes: the original's `worker_flavors.py` (`eo1.xsmall` 1 vCPU / 1 GB / 8 GB,
//! `eo2.medium` 1 / 4 / 16, `hm.medium` 2 / 16 / 64, `hm.large` 4 / 32 / 128, `hm.xlarge` 8 / 64
//! (documented as 65) / 256), read as GiB. Each VM's `attr.platform.aws.instance-type` is its
//! flavor name (Nomad's AWS fingerprinter reads it from OpenStack's EC2-compatible metadata) and its
//! node class is `worker`, as in the original's client configuration.

use std::collections::BTreeMap;

/// What the client's `reserved` block keeps from the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    /// `reserved.cpu`, in MHz.
    pub cpu_mhz: i64,
    /// `reserved.memory`, in MiB.
    pub memory_mb: i64,
    /// `reserved.disk`, in MiB.
    pub disk_mb: i64,
}

/// One emulated client node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedNode {
    /// `Name`.
    pub name: String,
    /// `NodeClass`.
    pub class: String,
    /// `Datacenter`.
    pub datacenter: String,
    /// `NodePool`.
    pub pool: String,
    /// `Attributes` (`${attr.<name>}` in constraints).
    pub attributes: BTreeMap<String, String>,
    /// CPU cores.
    pub cores: i64,
    /// MHz per core.
    pub mhz_per_core: i64,
    /// Memory the node reports, in MiB (`MemTotal`).
    pub memory_mb: i64,
    /// Disk the node reports for its allocation directory, in MiB.
    pub disk_mb: i64,
    /// The client's reservations.
    pub reserved: Reserved,
}

impl EmulatedNode {
    /// A VM of `nominal` size as a Nomad client reports it (see the module documentation).
    pub fn vm(name: &str, instance_type: &str, cores: i64, ram_gib: i64, disk_gib: i64) -> Self {
        let ram = ram_gib * 1024;
        let disk = disk_gib * 1024;
        EmulatedNode {
            name: name.to_string(),
            class: "worker".into(),
            datacenter: "dc1".into(),
            pool: "default".into(),
            attributes: BTreeMap::from([
                (
                    "platform.aws.instance-type".to_string(),
                    instance_type.to_string(),
                ),
                ("kernel.name".to_string(), "linux".to_string()),
                ("cpu.numcores".to_string(), cores.to_string()),
            ]),
            cores,
            mhz_per_core: 2400,
            memory_mb: ram - ram / 64 - 64,
            disk_mb: disk - disk / 64 - 128,
            reserved: Reserved::default(),
        }
    }
}

/// The original system's worker VMs, two of each kind (so that a lost node's allocation has a
/// node of its kind to move to).
pub fn original_vms() -> Vec<EmulatedNode> {
    let kinds = [
        ("eo1.xsmall", 1, 1, 8),
        ("eo2.medium", 1, 4, 16),
        ("hm.medium", 2, 16, 64),
        ("hm.large", 4, 32, 128),
        ("hm.xlarge", 8, 64, 256),
    ];
    (1..=2)
        .flat_map(|n| {
            kinds.map(|(kind, cores, ram, disk)| {
                EmulatedNode::vm(&format!("worker-{kind}-{n}"), kind, cores, ram, disk)
            })
        })
        .collect()
}

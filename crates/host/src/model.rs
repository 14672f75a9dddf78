//! The host model: plain data, no I/O. Serialized as the `kvmtune host --json` document
//! (see `docs/json.md`); [`HOST_SCHEMA_VERSION`] changes when a field changes meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cpuset::CpuSet;
use crate::source::Probe;

/// Version of the host JSON document.
pub const HOST_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Always `kvmtune.host`.
    pub kind: String,
    pub version: u32,
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub cpu: Cpu,
    pub cmdline: KernelCmdline,
    pub numa: Numa,
    pub memory: Memory,
    pub kvm: Kvm,
    /// Fields that could not be read, each with the path and the reason.
    pub unknown: Vec<Unknown>,
    /// Set when the facts were read through libvirt over this connection (a remote host):
    /// only what libvirt reports is known; THP, numa_balancing, the kernel command line,
    /// kvm module parameters, cgroups, IOMMU groups and device nodes are unknown (listed in
    /// `unknown`), never this machine's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// A field whose value is unknown because its file was missing, unreadable or garbled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    pub field: String,
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cpu {
    pub vendor: Option<String>,
    pub model_name: Option<String>,
    /// `vmx` (Intel VT-x) or `svm` (AMD-V) when the CPU flags show one.
    pub hw_virt: Option<String>,
    /// The virtualization-relevant flags present, in a fixed order (see [`crate::cpu::VIRT_FLAGS`]).
    pub virt_flags: Vec<String>,
    pub possible: Option<CpuSet>,
    pub present: Option<CpuSet>,
    pub online: Option<CpuSet>,
    pub offline: Option<CpuSet>,
    /// Distinct physical packages among online CPUs.
    pub sockets: Option<u32>,
    /// Distinct physical cores among online CPUs.
    pub cores: Option<u32>,
    /// Online logical CPUs (hardware threads).
    pub threads: Option<u32>,
    pub threads_per_core: Option<u32>,
    /// `/sys/devices/system/cpu/smt/active`.
    pub smt_active: Option<bool>,
    /// Each distinct SMT sibling group among online CPUs.
    pub sibling_groups: Vec<CpuSet>,
    /// `/sys/devices/system/cpu/isolated` (CPUs isolated by `isolcpus=`).
    pub isolated: Option<CpuSet>,
    /// `/sys/devices/system/cpu/nohz_full`.
    pub nohz_full: Option<CpuSet>,
    /// Frequency governor → CPUs using it. Empty when there is no cpufreq (common in VMs).
    pub governors: BTreeMap<String, CpuSet>,
    /// Every present CPU.
    pub cpus: Vec<LogicalCpu>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalCpu {
    pub id: u32,
    pub online: bool,
    pub socket: Option<i64>,
    pub die: Option<i64>,
    pub core: Option<i64>,
    pub node: Option<u32>,
    pub siblings: Option<CpuSet>,
}

/// What `/proc/cmdline` says about CPUs, hugepages and the IOMMU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KernelCmdline {
    pub raw: Option<String>,
    /// The `isolcpus=` value as written (it may carry flags such as `domain,managed_irq,`).
    pub isolcpus: Option<String>,
    /// The CPUs named by `isolcpus=`.
    pub isolcpus_cpus: Option<CpuSet>,
    pub nohz_full: Option<String>,
    pub rcu_nocbs: Option<String>,
    pub default_hugepagesz: Option<String>,
    /// Every `hugepagesz=` in order.
    pub hugepagesz: Vec<String>,
    /// Every `hugepages=` in order (each follows its `hugepagesz=`).
    pub hugepages: Vec<String>,
    /// `intel_iommu=`, `amd_iommu=`, `iommu=` switches as written.
    pub iommu: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Numa {
    /// False when the kernel has no NUMA sysfs (then `nodes` is empty).
    pub available: bool,
    pub online: Option<CpuSet>,
    pub nodes: Vec<Node>,
    /// `kernel.numa_balancing` (0 off, 1 normal, 2 memory tiering, 3 both).
    pub balancing: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: u32,
    pub cpus: CpuSet,
    pub memory_total_kib: Option<u64>,
    pub memory_free_kib: Option<u64>,
    pub hugepages: Vec<HugePool>,
    /// `numastat` counters of the node (numa_hit, numa_miss, ...).
    pub numastat: BTreeMap<String, u64>,
    /// Distance to each node in `Numa::nodes` order.
    pub distances: Vec<u32>,
}

/// One hugepage pool (global, or of one node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugePool {
    pub size_kib: u64,
    pub total: u64,
    pub free: u64,
    pub surplus: u64,
    /// Reserved but not yet faulted in (global pools only).
    pub reserved: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Memory {
    pub total_kib: Option<u64>,
    pub free_kib: Option<u64>,
    pub available_kib: Option<u64>,
    pub anon_huge_kib: Option<u64>,
    /// The default hugepage size (`Hugepagesize:` in /proc/meminfo).
    pub default_hugepage_kib: Option<u64>,
    pub hugepages: Vec<HugePool>,
    pub hugetlbfs: Vec<Mount>,
    pub swap_total_kib: Option<u64>,
    pub swap_free_kib: Option<u64>,
    pub swaps: Vec<Swap>,
    pub ksm: Option<Ksm>,
    pub thp: Option<Thp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub source: String,
    pub path: String,
    pub options: String,
    /// The `pagesize=` option in KiB, when given.
    pub pagesize_kib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    pub device: String,
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    pub priority: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ksm {
    /// `run`: 0 stopped, 1 running, 2 stopped and unmerged.
    pub run: Option<u32>,
    pub merge_across_nodes: Option<u32>,
    pub pages_shared: Option<u64>,
    pub pages_sharing: Option<u64>,
    /// Memory KSM saves: pages_sharing × the page size.
    pub saved_bytes: Option<u64>,
    /// Every file under /sys/kernel/mm/ksm, as read.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thp {
    /// The selected value of `enabled` (always, madvise, never).
    pub enabled: Option<String>,
    pub defrag: Option<String>,
    pub shmem_enabled: Option<String>,
    /// Files under `khugepaged/`, as read.
    pub khugepaged: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Kvm {
    pub dev_kvm: Probe,
    pub dev_vhost_net: Probe,
    pub dev_tun: Probe,
    /// Loaded modules among kvm, kvm_intel, kvm_amd, vhost_net, with their parameters.
    pub modules: BTreeMap<String, BTreeMap<String, String>>,
    /// IOMMU groups with their devices; empty when the IOMMU is off.
    pub iommu_groups: Vec<IommuGroup>,
    /// ACPI tables announcing an IOMMU: DMAR (Intel), IVRS (AMD), IORT (Arm).
    pub iommu_acpi_tables: Vec<String>,
    pub cgroup: Cgroup,
    /// AMD SEV: `/dev/sev` present.
    pub dev_sev: Probe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IommuGroup {
    pub id: u32,
    pub devices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cgroup {
    /// `v1`, `v2` or `hybrid` (v1 controllers plus an empty unified hierarchy).
    pub mode: Option<String>,
    /// Controllers usable by libvirt (v1 mounted and enabled, or v2 available).
    pub controllers: Vec<String>,
}

impl Host {
    /// Online CPUs, or every present CPU when `online` is unknown.
    pub fn online_cpus(&self) -> CpuSet {
        match &self.cpu.online {
            Some(s) => s.clone(),
            None => self
                .cpu
                .cpus
                .iter()
                .filter(|c| c.online)
                .map(|c| c.id)
                .collect(),
        }
    }
}

//! Host checks of `kvmtune host --check`: every QEMU/KVM check `virt-host-validate qemu`
//! makes (same titles, same verdicts), plus the host rules of RULES.md that need no domain.
//!
//! Every check has one stable id, defined once in [`rules`] with its title, why, fix and
//! source; one run of [`check_host`] reports each id at most once.

use serde::{Deserialize, Serialize};

use kvmtune_host::{Host, Probe};
use kvmtune_profile::Severity;

use kvmtune_profile::{Profile, Want};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Info,
    Warn,
    Fail,
    /// Could not judge: the facts are not known (a host read over a remote connection).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Info => "INFO",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// The verdict in the shared severity vocabulary: PASS is no finding, INFO is `info`,
    /// WARN is `warn`, FAIL is `error`.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Verdict::Pass => None,
            Verdict::Info => Some(Severity::Info),
            Verdict::Warn => Some(Severity::Warn),
            Verdict::Fail => Some(Severity::Error),
            Verdict::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable rule id, e.g. `host-virt-ext`: one of [`rules`], at most once per run.
    pub id: String,
    /// What is checked, phrased like virt-host-validate ("for hardware virtualization").
    pub title: String,
    /// virt-host-validate's verdict (PASS/INFO/WARN/FAIL).
    pub verdict: Verdict,
    /// The verdict as a finding severity ([`Verdict::severity`]): null for PASS.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// What was found.
    pub detail: String,
    /// How to fix it, when the verdict is not PASS.
    pub hint: Option<String>,
    /// Where the check comes from.
    pub source: String,
    /// True when virt-host-validate makes the same check (same title, same verdict).
    pub virt_host_validate: bool,
}

/// One host check as a rule: what every [`Check`] with this id means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostRule {
    /// Stable id, e.g. `host-kvm-device`.
    pub id: &'static str,
    /// What is checked (the title of every check with this id; virt-host-validate's own
    /// title for its checks).
    pub title: &'static str,
    /// Why it matters for KVM performance or function.
    pub why: &'static str,
    /// The generic fix (each check adds a hint for the host at hand).
    pub fix: &'static str,
    /// Public sources.
    pub source: &'static str,
    /// True when virt-host-validate makes the same check.
    pub virt_host_validate: bool,
}

const VHV: &str = "virt-host-validate";

const VIRT_EXT: HostRule = HostRule {
    id: "host-virt-ext",
    title: "for hardware virtualization",
    why: "Without VT-x/AMD-V (the vmx/svm CPU flag) KVM cannot run guests: QEMU falls back to TCG emulation, many times slower.",
    fix: "Enable VT-x/AMD-V in the firmware setup; on a nested host expose vmx/svm to this VM.",
    source: VHV,
    virt_host_validate: true,
};

const KVM_DEVICE: HostRule = HostRule {
    id: "host-kvm-device",
    title: "if device /dev/kvm exists",
    why: "QEMU reaches KVM through /dev/kvm: without it every guest is emulated (TCG).",
    fix: "Load kvm and kvm_intel or kvm_amd (modprobe kvm_intel / modprobe kvm_amd) and enable virtualization in the firmware.",
    source: VHV,
    virt_host_validate: true,
};

const KVM_ACCESS: HostRule = HostRule {
    id: "host-kvm-access",
    title: "if device /dev/kvm is accessible",
    why: "QEMU must open /dev/kvm read-write: if the user it runs as cannot, KVM guests do not start (or run emulated).",
    fix: "Give /dev/kvm to the kvm group with mode 0660 (the usual udev rule) and run QEMU as a member of that group.",
    source: VHV,
    virt_host_validate: true,
};

const VHOST_NET: HostRule = HostRule {
    id: "host-vhost-net",
    title: "if device /dev/vhost-net exists",
    why: "vhost-net moves virtio-net packet processing into the host kernel; without it QEMU handles every packet in user space, with more exits, host CPU and latency.",
    fix: "modprobe vhost_net, and list it in /etc/modules-load.d/ to load it at boot.",
    source: VHV,
    virt_host_validate: true,
};

const TUN: HostRule = HostRule {
    id: "host-tun",
    title: "if device /dev/net/tun exists",
    why: "The tap interfaces of bridged and NAT guest networks are created through /dev/net/tun: without it guests get no such network.",
    fix: "modprobe tun, and list it in /etc/modules-load.d/ to load it at boot.",
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_FIX: &str = "Enable the controller in the kernel configuration and mount it (cgroup v1) or enable it in cgroup.subtree_control (cgroup v2).";

const CGROUP_CPU: HostRule = HostRule {
    id: "host-cgroup-cpu",
    title: "for cgroup 'cpu' controller support",
    why: "libvirt applies <cputune> shares, period and quota to vCPU and emulator threads through the cpu controller.",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_CPUACCT: HostRule = HostRule {
    id: "host-cgroup-cpuacct",
    title: "for cgroup 'cpuacct' controller support",
    why: "libvirt reads each domain's CPU time (virsh cpu-stats) from the cpuacct controller (part of cpu on cgroup v2).",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_CPUSET: HostRule = HostRule {
    id: "host-cgroup-cpuset",
    title: "for cgroup 'cpuset' controller support",
    why: "libvirt confines vCPUs, emulator threads and guest memory to host CPUs and NUMA nodes (<vcpupin>, <emulatorpin>, <numatune>) with the cpuset controller.",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_MEMORY: HostRule = HostRule {
    id: "host-cgroup-memory",
    title: "for cgroup 'memory' controller support",
    why: "libvirt enforces <memtune> limits (hard_limit, soft_limit, swap_hard_limit) with the memory controller.",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_DEVICES: HostRule = HostRule {
    id: "host-cgroup-devices",
    title: "for cgroup 'devices' controller support",
    why: "libvirt limits the host devices a QEMU process may open with the devices controller (an eBPF program on cgroup v2).",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

const CGROUP_BLKIO: HostRule = HostRule {
    id: "host-cgroup-blkio",
    title: "for cgroup 'blkio' controller support",
    why: "libvirt applies <blkiotune> weights and disk I/O throttling with the blkio controller (io on cgroup v2).",
    fix: CGROUP_FIX,
    source: VHV,
    virt_host_validate: true,
};

/// The cgroup controller checks, by controller name, in virt-host-validate's order
/// ([`kvmtune_host::kvm::LIBVIRT_CONTROLLERS`]).
const CGROUP_RULES: &[(&str, HostRule)] = &[
    ("cpu", CGROUP_CPU),
    ("cpuacct", CGROUP_CPUACCT),
    ("cpuset", CGROUP_CPUSET),
    ("memory", CGROUP_MEMORY),
    ("devices", CGROUP_DEVICES),
    ("blkio", CGROUP_BLKIO),
];

const IOMMU_ACPI: HostRule = HostRule {
    id: "host-iommu-acpi",
    title: "for device assignment IOMMU support",
    why: "PCI passthrough (<hostdev>) needs an IOMMU (Intel VT-d, AMD-Vi) announced by the firmware in an ACPI DMAR or IVRS table to isolate the device's DMA; guests without assigned devices do not need it.",
    fix: "Enable VT-d/AMD-Vi (IOMMU) in the firmware setup; only matters for PCI passthrough.",
    source: VHV,
    virt_host_validate: true,
};

const IOMMU: HostRule = HostRule {
    id: "host-iommu",
    title: "if IOMMU is enabled by kernel",
    why: "The firmware announces an IOMMU but the kernel made no IOMMU groups: VFIO cannot assign devices to guests.",
    fix: "Add intel_iommu=on (Intel) or iommu=pt iommu=1 (AMD) to the kernel command line and reboot.",
    source: VHV,
    virt_host_validate: true,
};

const SECURE_GUEST: HostRule = HostRule {
    id: "host-secure-guest",
    title: "for secure guest support",
    why: "Confidential guests (AMD SEV, IBM Secure Execution) need support in the CPU, the firmware and the kvm module; ordinary guests do not.",
    fix: "Enable SEV in the firmware and kvm_amd.sev=1 on the kernel command line; only matters for confidential guests.",
    source: VHV,
    virt_host_validate: true,
};

const NESTED: HostRule = HostRule {
    id: "host-nested",
    title: "if nested virtualization is enabled",
    why: "Guests that run a hypervisor themselves (KVM in a VM, Hyper-V, WSL2 or VBS in Windows) need the nested parameter of kvm_intel/kvm_amd; other guests do not.",
    fix: "'options kvm_intel nested=1' (or kvm_amd) in /etc/modprobe.d/, then reload the module with no guest running.",
    source: "Linux kernel docs: Running nested guests with KVM (virt/kvm/x86/running-nested-guests)",
    virt_host_validate: false,
};

const KSM_SOURCE: &str = "Linux kernel docs: Kernel Samepage Merging (admin-guide/mm/ksm); Red Hat Virtualization Tuning and Optimization Guide (KSM)";

const KSM: HostRule = HostRule {
    id: "host-ksm",
    title: "KSM state for the profile",
    why: "KSM merges identical guest pages to save memory, at the cost of ksmd CPU time and copy-on-write faults when a merged page is written: dense and desktop hosts gain from it, servers and latency hosts usually do not.",
    fix: "echo 0 > /sys/kernel/mm/ksm/run (or stop ksmtuned) where the profile advises KSM off; echo 1 > /sys/kernel/mm/ksm/run (or start ksmtuned) where it advises it on.",
    source: KSM_SOURCE,
    virt_host_validate: false,
};

const KSM_MERGE_NODES: HostRule = HostRule {
    id: "host-ksm-merge-nodes",
    title: "KSM merge_across_nodes on a NUMA host",
    why: "With merge_across_nodes=1 KSM merges identical pages of different NUMA nodes into one page: VMs bound to a node then read remote memory.",
    fix: "echo 2 > /sys/kernel/mm/ksm/run (unmerge), echo 0 > /sys/kernel/mm/ksm/merge_across_nodes, then echo 1 > /sys/kernel/mm/ksm/run.",
    source: KSM_SOURCE,
    virt_host_validate: false,
};

const THP: HostRule = HostRule {
    id: "host-thp",
    title: "transparent hugepages",
    why: "QEMU madvises guest RAM for transparent hugepages: with 'never' guests lose 2 MiB pages (more TLB misses and longer two-dimensional page walks); 'madvise' and 'always' both serve.",
    fix: "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (transparent_hugepage=madvise on the kernel command line to keep it).",
    source: concat!(
        "Linux kernel docs: Transparent Hugepage Support (admin-guide/mm/transhuge); ",
        "Red Hat Virtualization Tuning and Optimization Guide (huge pages and transparent huge pages)"
    ),
    virt_host_validate: false,
};

const HUGEPAGES_POOL: HostRule = HostRule {
    id: "host-hugepages-pool",
    title: "static hugepage pools",
    why: "Domains with <hugepages/> take guest memory from the static hugepage pools through a hugetlbfs mount: without a pool of their page size, or without the mount, they do not start. Latency hosts want guest memory on static hugepages.",
    fix: "Reserve pages per node (echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-2048kB/nr_hugepages, or hugepagesz=/hugepages= on the kernel command line) and mount hugetlbfs (mount -t hugetlbfs hugetlbfs /dev/hugepages).",
    source: concat!(
        "Linux kernel docs: HugeTLB Pages (admin-guide/mm/hugetlbpage); ",
        "Red Hat Virtualization Tuning and Optimization Guide (huge pages and transparent huge pages)"
    ),
    virt_host_validate: false,
};

const NUMA_BALANCING: HostRule = HostRule {
    id: "host-numa-balancing",
    title: "automatic NUMA balancing",
    why: "Automatic NUMA balancing moves tasks and memory towards each other: it helps unpinned VMs on multi-node hosts, but costs page faults and fights strict pinning.",
    fix: "sysctl -w kernel.numa_balancing=0 when every VM is strictly pinned (latency profile); keep it 1 for unpinned VMs.",
    source: "Linux kernel docs: kernel.numa_balancing (admin-guide/sysctl/kernel); Red Hat Virtualization Tuning and Optimization Guide (automatic NUMA balancing)",
    virt_host_validate: false,
};

const ISOLCPUS: HostRule = HostRule {
    id: "host-isolcpus",
    title: "CPU isolation for the profile",
    why: "Dedicated vCPUs get low, steady latency only on CPUs the host scheduler keeps free of other tasks; isolated CPUs get no load balancing, so only pinned, dedicated vCPUs belong there.",
    fix: "isolcpus= and nohz_full= on the kernel command line (or a cpuset partition) for the CPUs of dedicated vCPUs, and pin those vCPUs there.",
    source: "Linux kernel docs: kernel-parameters (isolcpus=, nohz_full=); Red Hat Enterprise Linux for Real Time Tuning Guide",
    virt_host_validate: false,
};

const GOVERNOR: HostRule = HostRule {
    id: "host-governor",
    title: "CPU frequency governor",
    why: "Power-saving governors lower the clock of idle CPUs: a vCPU that wakes up runs slowly until the frequency rises again, which adds latency.",
    fix: "cpupower frequency-set -g performance, or the tuned profile virtual-host (realtime-virtual-host for latency hosts).",
    source: "tuned virtual-host profile; Linux kernel docs: CPU Performance Scaling (admin-guide/pm/cpufreq)",
    virt_host_validate: false,
};

const HALT_POLL: HostRule = HostRule {
    id: "host-halt-poll",
    title: "KVM halt polling",
    why: "KVM polls for a while before it puts an idle vCPU to sleep: wake-ups get faster, but the host burns CPU for idle guests.",
    fix: "Tune kvm.halt_poll_ns (/sys/module/kvm/parameters/halt_poll_ns) from the measured halt-poll cost (kvmtune diagnose).",
    source: "Linux kernel docs: The KVM halt polling system (virt/kvm/halt-polling)",
    virt_host_validate: false,
};

const RULES: &[HostRule] = &[
    VIRT_EXT,
    KVM_DEVICE,
    KVM_ACCESS,
    VHOST_NET,
    TUN,
    CGROUP_CPU,
    CGROUP_CPUACCT,
    CGROUP_CPUSET,
    CGROUP_MEMORY,
    CGROUP_DEVICES,
    CGROUP_BLKIO,
    IOMMU_ACPI,
    IOMMU,
    SECURE_GUEST,
    NESTED,
    KSM,
    KSM_MERGE_NODES,
    THP,
    HUGEPAGES_POOL,
    NUMA_BALANCING,
    ISOLCPUS,
    GOVERNOR,
    HALT_POLL,
];

/// Every host check [`check_host`] can report, in report order: one entry per id.
pub fn rules() -> &'static [HostRule] {
    RULES
}

/// The host check with this id.
pub fn rule(id: &str) -> Option<&'static HostRule> {
    RULES.iter().find(|r| r.id == id)
}

struct Out {
    checks: Vec<Check>,
}

impl Out {
    fn push(
        &mut self,
        rule: &HostRule,
        verdict: Verdict,
        detail: impl Into<String>,
        hint: Option<String>,
    ) {
        self.checks.push(Check {
            id: rule.id.to_string(),
            title: rule.title.to_string(),
            verdict,
            severity: verdict.severity(),
            detail: detail.into(),
            hint: if verdict == Verdict::Pass { None } else { hint },
            source: rule.source.to_string(),
            virt_host_validate: rule.virt_host_validate,
        });
    }
}

/// Run every host check for `profile`.
pub fn check_host(host: &Host, profile: &Profile) -> Vec<Check> {
    if host.remote.is_some() {
        return check_remote(host);
    }
    let mut out = Out { checks: Vec::new() };
    virt_ext(host, &mut out);
    devices(host, &mut out);
    cgroups(host, &mut out);
    iommu(host, &mut out);
    secure_guest(host, &mut out);
    nested(host, &mut out);
    ksm(host, profile, &mut out);
    thp(host, profile, &mut out);
    hugepages(host, profile, &mut out);
    numa_balancing(host, profile, &mut out);
    isolcpus(host, profile, &mut out);
    governor(host, profile, &mut out);
    halt_poll(host, &mut out);
    out.checks
}

/// A host read over a remote connection: what libvirt tells is judged (KVM from the
/// capabilities' guest domain types), every other check is UNKNOWN: its facts (device
/// nodes, cgroups, IOMMU, module parameters, sysctls, THP, the kernel command line,
/// hugetlbfs mounts, KSM's run state) are not reported by libvirt, and this machine's values
/// are never used instead.
fn check_remote(host: &Host) -> Vec<Check> {
    let mut out = Out { checks: Vec::new() };
    let kvm = host.kvm.dev_kvm.exists;
    out.push(
        &VIRT_EXT,
        if kvm { Verdict::Pass } else { Verdict::Fail },
        if kvm {
            "libvirt offers KVM domains (its capabilities list domain type kvm)".to_string()
        } else {
            "libvirt offers no KVM domain type: hardware virtualization is off there, or /dev/kvm is unusable; guests are emulated (TCG)".to_string()
        },
        Some(VIRT_EXT.fix.to_string()),
    );
    for rule in RULES.iter().filter(|r| r.id != VIRT_EXT.id) {
        out.push(
            rule,
            Verdict::Unknown,
            "could not judge: not known over a remote connection (libvirt does not report it)",
            None,
        );
    }
    out.checks
}

fn flags(host: &Host) -> &[String] {
    &host.cpu.virt_flags
}

fn has_flag(host: &Host, f: &str) -> bool {
    flags(host).iter().any(|x| x == f)
}

fn virt_ext(host: &Host, out: &mut Out) {
    let known = !host.cpu.virt_flags.is_empty() || host.cpu.vendor.is_some();
    let (verdict, detail) = match (&host.cpu.hw_virt, known) {
        (Some(f), _) => (Verdict::Pass, format!("CPU flag {f} present")),
        (None, true) => (
            Verdict::Fail,
            "no vmx or svm CPU flag: only emulated CPUs are available, performance will be significantly limited"
                .to_string(),
        ),
        (None, false) => (Verdict::Warn, "CPU flags unknown (/proc/cpuinfo unreadable)".to_string()),
    };
    out.push(
        &VIRT_EXT,
        verdict,
        detail,
        Some(
            "Enable VT-x/AMD-V in the firmware, or on a nested host expose vmx/svm to this VM"
                .into(),
        ),
    );
    // /dev/kvm is checked whatever the flags say: a paravirtual or nested KVM can work
    // without vmx/svm in /proc/cpuinfo (virt-host-validate skips these two then).
    let kvm = host.kvm.dev_kvm;
    let kvm_hint = "Check that the 'kvm-intel' or 'kvm-amd' modules are loaded & the BIOS has enabled virtualization";
    out.push(
        &KVM_DEVICE,
        if kvm.exists {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        if kvm.exists {
            "/dev/kvm present"
        } else {
            "/dev/kvm missing: QEMU can only emulate (TCG)"
        },
        Some(kvm_hint.into()),
    );
    if kvm.exists {
        out.push(
            &KVM_ACCESS,
            if kvm.openable { Verdict::Pass } else { Verdict::Fail },
            if kvm.openable {
                "/dev/kvm opens read-write: KVM acceleration is usable"
            } else {
                "/dev/kvm does not open read-write for this user"
            },
            Some("Check /dev/kvm is world writable or you are in a group that is allowed to access it".into()),
        );
    }
}

fn device_check(
    out: &mut Out,
    rule: &HostRule,
    path: &str,
    p: Probe,
    missing: Verdict,
    hint: &str,
) {
    out.push(
        rule,
        if p.exists { Verdict::Pass } else { missing },
        if p.exists {
            format!("{path} present")
        } else {
            format!("{path} missing")
        },
        Some(hint.to_string()),
    );
}

fn devices(host: &Host, out: &mut Out) {
    device_check(
        out,
        &VHOST_NET,
        "/dev/vhost-net",
        host.kvm.dev_vhost_net,
        Verdict::Warn,
        "Load the 'vhost_net' module to improve performance of virtio networking (modprobe vhost_net)",
    );
    device_check(
        out,
        &TUN,
        "/dev/net/tun",
        host.kvm.dev_tun,
        Verdict::Fail,
        "Load the 'tun' module to enable networking for QEMU guests",
    );
}

fn cgroups(host: &Host, out: &mut Out) {
    let cg = &host.kvm.cgroup;
    let mode = cg.mode.as_deref().unwrap_or("no cgroup mounts");
    for (c, rule) in CGROUP_RULES {
        let ok = cg.controllers.iter().any(|x| x == c);
        out.push(
            rule,
            if ok { Verdict::Pass } else { Verdict::Warn },
            if ok {
                format!("'{c}' available ({mode})")
            } else {
                format!("'{c}' not available ({mode})")
            },
            Some(format!(
                "Enable '{c}' in kernel Kconfig file or mount/enable cgroup controller in your system"
            )),
        );
    }
}

fn iommu(host: &Host, out: &mut Out) {
    // Like virt-host-validate: the vendor is told by the vmx/svm flag.
    let tables = &host.kvm.iommu_acpi_tables;
    let (table, bootarg) = if has_flag(host, "vmx") {
        ("DMAR", "intel_iommu=on")
    } else if has_flag(host, "svm") {
        ("IVRS", "iommu=pt iommu=1")
    } else {
        out.push(
            &IOMMU_ACPI,
            Verdict::Warn,
            "Unknown if this platform has IOMMU support (no vmx/svm flag to tell Intel from AMD)",
            Some("Only matters for PCI passthrough (<hostdev>)".into()),
        );
        return;
    };
    let found = tables.iter().any(|t| t == table);
    out.push(
        &IOMMU_ACPI,
        if found { Verdict::Pass } else { Verdict::Warn },
        if found {
            format!("ACPI {table} table present")
        } else {
            format!("No ACPI {table} table found, IOMMU either disabled in BIOS or not supported by this hardware platform")
        },
        Some("Enable VT-d/AMD-Vi in the firmware; only matters for PCI passthrough".into()),
    );
    if !found {
        return;
    }
    let groups = host.kvm.iommu_groups.len();
    out.push(
        &IOMMU,
        if groups > 0 {
            Verdict::Pass
        } else {
            Verdict::Warn
        },
        format!("{groups} IOMMU groups"),
        Some(format!(
            "IOMMU appears to be disabled in kernel. Add {bootarg} to kernel cmdline arguments"
        )),
    );
}

fn secure_guest(host: &Host, out: &mut Out) {
    if has_flag(host, "sev") {
        let param = host
            .kvm
            .modules
            .get("kvm_amd")
            .and_then(|p| p.get("sev"))
            .cloned();
        let (verdict, detail) = match param {
            None => (Verdict::Warn, "AMD Secure Encrypted Virtualization not supported by the currently used kernel".to_string()),
            Some(v) if !v.starts_with(['1', 'Y', 'y']) => (
                Verdict::Warn,
                "AMD Secure Encrypted Virtualization appears to be disabled in kernel. Add kvm_amd.sev=1 to the kernel cmdline arguments".to_string(),
            ),
            Some(_) if !host.kvm.dev_sev.exists => (
                Verdict::Warn,
                "AMD Secure Encrypted Virtualization appears to be disabled in firmware.".to_string(),
            ),
            Some(_) => (Verdict::Pass, "AMD SEV enabled".to_string()),
        };
        out.push(&SECURE_GUEST, verdict, detail, None);
    } else {
        out.push(
            &SECURE_GUEST,
            Verdict::Warn,
            "Unknown if this platform has Secure Guest support (no sev CPU flag)",
            Some("Only matters for confidential guests (AMD SEV, IBM Secure Execution)".into()),
        );
    }
}

/// One check for the nested parameter of whichever of kvm_intel/kvm_amd is loaded (both,
/// on an odd host, in one check).
fn nested(host: &Host, out: &mut Out) {
    let params: Vec<(&str, &String)> = ["kvm_intel", "kvm_amd"]
        .into_iter()
        .filter_map(|m| {
            host.kvm
                .modules
                .get(m)
                .and_then(|p| p.get("nested"))
                .map(|v| (m, v))
        })
        .collect();
    if params.is_empty() {
        return;
    }
    let detail = params
        .iter()
        .map(|(m, v)| {
            let on = v.starts_with(['1', 'Y', 'y']);
            format!(
                "{m}.nested={v} ({})",
                if on {
                    "guests may run their own KVM"
                } else {
                    "guests cannot run KVM themselves"
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let options = params
        .iter()
        .map(|(m, _)| format!("'options {m} nested=1'"))
        .collect::<Vec<_>>()
        .join(" or ");
    out.push(
        &NESTED,
        Verdict::Info,
        detail,
        Some(format!(
            "Set {options} in /etc/modprobe.d/ for guests that need vmx/svm"
        )),
    );
}

fn ksm(host: &Host, profile: &Profile, out: &mut Out) {
    let Some(ksm) = &host.memory.ksm else {
        out.push(
            &KSM,
            Verdict::Info,
            "no /sys/kernel/mm/ksm: KSM not built into this kernel",
            None,
        );
        return;
    };
    let Some(run) = ksm.run else {
        out.push(&KSM, Verdict::Warn, "KSM run state unknown", None);
        return;
    };
    let running = run == 1;
    let saved = ksm.saved_bytes.unwrap_or(0) / (1024 * 1024);
    let state = format!(
        "ksm run={run} ({}), saving {saved} MiB",
        if running { "merging" } else { "stopped" }
    );
    let (verdict, hint) = match (profile.host.ksm, running) {
        (Want::Off, true) => (
            Verdict::Warn,
            Some(format!(
                "Profile {} advises KSM off: it costs CPU and adds latency (echo 0 > /sys/kernel/mm/ksm/run), or keep it and set <nosharepages/> on latency-critical VMs",
                profile.name
            )),
        ),
        (Want::On, false) => (
            Verdict::Warn,
            Some(format!(
                "Profile {} advises KSM on to share identical guest pages (echo 1 > /sys/kernel/mm/ksm/run, or start ksmtuned)",
                profile.name
            )),
        ),
        _ => (Verdict::Pass, None),
    };
    out.push(&KSM, verdict, state, hint);

    let memory_nodes = host
        .numa
        .nodes
        .iter()
        .filter(|n| n.memory_total_kib.unwrap_or(0) > 0)
        .count();
    if running
        && memory_nodes > 1
        && let Some(m) = ksm.merge_across_nodes
    {
        out.push(
            &KSM_MERGE_NODES,
            if m == 0 { Verdict::Pass } else { Verdict::Info },
            format!("merge_across_nodes={m} on {memory_nodes} memory nodes"),
            Some("With VMs bound to nodes, set merge_across_nodes=0 so KSM does not merge pages across nodes (requires KSM run=2 first to unmerge)".into()),
        );
    }
}

fn thp(host: &Host, profile: &Profile, out: &mut Out) {
    let Some(thp) = &host.memory.thp else {
        return;
    };
    let Some(enabled) = &thp.enabled else {
        return;
    };
    let ok = profile.host.thp_ok.iter().any(|x| x == enabled);
    out.push(
        &THP,
        if ok { Verdict::Pass } else { Verdict::Warn },
        format!("enabled={enabled}, defrag={}", thp.defrag.as_deref().unwrap_or("unknown")),
        Some("QEMU madvises guest RAM: set 'madvise' (or 'always') in /sys/kernel/mm/transparent_hugepage/enabled so guests get 2M pages without static reservations".into()),
    );
}

/// One check, two exclusive outcomes: reserved pages without a hugetlbfs mount, or the
/// pools against the profile.
fn hugepages(host: &Host, profile: &Profile, out: &mut Out) {
    let reserved: Vec<String> = host
        .memory
        .hugepages
        .iter()
        .filter(|p| p.total > 0)
        .map(|p| {
            format!(
                "{} x {} (free {})",
                p.total,
                kvmtune_host::page_size(p.size_kib),
                p.free
            )
        })
        .collect();
    let mounted = !host.memory.hugetlbfs.is_empty();
    if !reserved.is_empty() && !mounted {
        out.push(
            &HUGEPAGES_POOL,
            Verdict::Warn,
            format!("reserved {} but no hugetlbfs mount", reserved.join(", ")),
            Some("libvirt backs <hugepages/> through hugetlbfs: mount -t hugetlbfs hugetlbfs /dev/hugepages".into()),
        );
        return;
    }
    let (verdict, hint) = if reserved.is_empty() && profile.host.hugepages == Want::Want {
        (
            Verdict::Warn,
            Some(format!(
                "Profile {} wants static hugepages for VM memory: reserve them per node (echo N > /sys/devices/system/node/nodeX/hugepages/hugepages-2048kB/nr_hugepages) or with hugepagesz=/hugepages= on the kernel command line",
                profile.name
            )),
        )
    } else {
        (Verdict::Pass, None)
    };
    let detail = if reserved.is_empty() {
        "no static hugepages reserved".to_string()
    } else {
        format!("reserved {}", reserved.join(", "))
    };
    out.push(&HUGEPAGES_POOL, verdict, detail, hint);
}

fn numa_balancing(host: &Host, profile: &Profile, out: &mut Out) {
    let nodes = host
        .numa
        .nodes
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .count();
    let Some(b) = host.numa.balancing else {
        return;
    };
    let detail = format!("kernel.numa_balancing={b} on {nodes} node(s) with CPUs");
    let wants_off = profile.host.numa_balancing == Want::Off;
    let (verdict, hint) = if nodes <= 1 || wants_off && b == 0 {
        (Verdict::Pass, None)
    } else if wants_off {
        (
            Verdict::Warn,
            Some(format!(
                "Profile {} places VMs strictly: automatic balancing would fight the pins (sysctl -w kernel.numa_balancing=0)",
                profile.name
            )),
        )
    } else {
        (Verdict::Info, Some("Keep it on for unpinned VMs; turn it off when every VM is strictly pinned (kvmtune audit judges this per domain)".into()))
    };
    out.push(&NUMA_BALANCING, verdict, detail, hint);
}

fn isolcpus(host: &Host, profile: &Profile, out: &mut Out) {
    let isolated = host
        .cpu
        .isolated
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| host.cmdline.isolcpus_cpus.clone().filter(|s| !s.is_empty()));
    let detail = match &isolated {
        Some(s) => format!("isolated CPUs {s}"),
        None => "no isolated CPUs".to_string(),
    };
    let (verdict, hint) = match (profile.host.isolcpus, &isolated) {
        (Want::Want, None) => (Verdict::Warn, Some(format!(
            "Profile {} gives VMs dedicated CPUs: isolate them from the host scheduler (isolcpus=/nohz_full= on the kernel command line, or a cpuset partition)",
            profile.name))),
        (Want::Avoid, Some(_)) => (Verdict::Info, Some(
            "Isolated CPUs get no load balancing: only pinned, dedicated vCPUs should run there".into())),
        _ => (Verdict::Pass, None),
    };
    out.push(&ISOLCPUS, verdict, detail, hint);
}

fn governor(host: &Host, profile: &Profile, out: &mut Out) {
    let g = &host.cpu.governors;
    if g.is_empty() {
        out.push(
            &GOVERNOR,
            Verdict::Pass,
            "no cpufreq driver (frequency is run by the firmware or the hypervisor below)",
            None,
        );
        return;
    }
    let detail = g
        .iter()
        .map(|(k, v)| format!("{k} on {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let all_perf = g.keys().all(|k| k == "performance");
    let want = profile.host.governor.as_str();
    let (verdict, hint) = if want == "performance" && !all_perf {
        (Verdict::Warn, Some("Latency hosts should run the performance governor (cpupower frequency-set -g performance, or tuned's virtual-host profile)".into()))
    } else {
        (Verdict::Pass, None)
    };
    out.push(&GOVERNOR, verdict, detail, hint);
}

fn halt_poll(host: &Host, out: &mut Out) {
    if let Some(v) = host
        .kvm
        .modules
        .get("kvm")
        .and_then(|p| p.get("halt_poll_ns"))
    {
        out.push(
            &HALT_POLL,
            Verdict::Info,
            format!("kvm.halt_poll_ns={v}"),
            Some("Halt polling trades host CPU for wake-up latency; `kvmtune diagnose` judges it from HLT exit rates".into()),
        );
    }
}

#[cfg(test)]
pub(crate) mod table {
    use std::collections::BTreeSet;

    use super::Verdict::{Fail, Info, Pass, Warn};
    use super::{check_host, rule, rules};
    use crate::audit::testkit::*;
    use kvmtune_host::{Host, Mount, Thp};
    use kvmtune_profile::Profile;
    use kvmtune_profile::Severity;

    fn with(mut h: Host, f: impl FnOnce(&mut Host)) -> Host {
        f(&mut h);
        h
    }

    fn kvm_module(h: &mut Host, module: &str, param: &str, v: &str) {
        h.kvm
            .modules
            .entry(module.into())
            .or_default()
            .insert(param.into(), v.into());
    }

    fn thp(enabled: &str) -> Host {
        with(host16(), |h| {
            h.memory.thp = Some(Thp {
                enabled: Some(enabled.into()),
                defrag: Some("madvise".into()),
                shmem_enabled: None,
                khugepaged: Default::default(),
            })
        })
    }

    fn hugetlbfs() -> Mount {
        Mount {
            source: "hugetlbfs".into(),
            path: "/dev/hugepages".into(),
            options: "rw,relatime,pagesize=2M".into(),
            pagesize_kib: Some(2048),
        }
    }

    fn sev(param: Option<&str>, dev: bool) -> Host {
        with(host16(), |h| {
            h.cpu.virt_flags = vec!["svm".into(), "sev".into()];
            h.cpu.hw_virt = Some("svm".into());
            if let Some(v) = param {
                kvm_module(h, "kvm_amd", "sev", v);
            }
            h.kvm.dev_sev.exists = dev;
        })
    }

    pub(crate) fn cases() -> Vec<HostCase> {
        let ksm_run = |mut h: Host, run: u32, merge: u32| {
            let mut k = ksm(run);
            k.merge_across_nodes = Some(merge);
            h.memory.ksm = Some(k);
            h
        };
        let balancing = |h: Host, b: u32| with(h, |h| h.numa.balancing = Some(b));
        let governors = |g: &[&str]| {
            with(host16(), |h| {
                for name in g {
                    h.cpu.governors.insert(name.to_string(), set("0-15"));
                }
            })
        };
        let mut v = vec![
            // host-virt-ext, host-kvm-device, host-kvm-access
            host_case(
                "vmx present",
                "host-virt-ext",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            host_case(
                "no vmx/svm on a known CPU",
                "host-virt-ext",
                "",
                "server",
                with(host16(), |h| {
                    h.cpu.hw_virt = None;
                    h.cpu.virt_flags.clear()
                }),
                Some(Fail),
            ),
            host_case(
                "CPU flags unknown",
                "host-virt-ext",
                "",
                "server",
                blank_host(),
                Some(Warn),
            ),
            host_case(
                "/dev/kvm present",
                "host-kvm-device",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            host_case(
                "/dev/kvm missing",
                "host-kvm-device",
                "",
                "server",
                blank_host(),
                Some(Fail),
            ),
            host_case(
                "/dev/kvm opens",
                "host-kvm-access",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            host_case(
                "/dev/kvm does not open",
                "host-kvm-access",
                "",
                "server",
                with(host16(), |h| h.kvm.dev_kvm.openable = false),
                Some(Fail),
            ),
            // host-vhost-net, host-tun
            host_case(
                "/dev/vhost-net present",
                "host-vhost-net",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            host_case(
                "/dev/vhost-net missing",
                "host-vhost-net",
                "",
                "server",
                with(host16(), |h| h.kvm.dev_vhost_net.exists = false),
                Some(Warn),
            ),
            host_case(
                "/dev/net/tun present",
                "host-tun",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            host_case(
                "/dev/net/tun missing",
                "host-tun",
                "",
                "server",
                with(host16(), |h| h.kvm.dev_tun.exists = false),
                Some(Fail),
            ),
            // host-iommu-acpi, host-iommu
            host_case(
                "intel without DMAR",
                "host-iommu-acpi",
                "",
                "server",
                host16(),
                Some(Warn),
            ),
            host_case(
                "intel with DMAR",
                "host-iommu-acpi",
                "",
                "server",
                with(host16(), |h| h.kvm.iommu_acpi_tables = vec!["DMAR".into()]),
                Some(Pass),
            ),
            host_case(
                "vendor unknown",
                "host-iommu-acpi",
                "",
                "server",
                blank_host(),
                Some(Warn),
            ),
            host_case(
                "DMAR but no groups",
                "host-iommu",
                "",
                "server",
                with(host16(), |h| h.kvm.iommu_acpi_tables = vec!["DMAR".into()]),
                Some(Warn),
            ),
            host_case(
                "DMAR and groups",
                "host-iommu",
                "",
                "server",
                with(host16(), |h| {
                    h.kvm.iommu_acpi_tables = vec!["DMAR".into()];
                    h.kvm.iommu_groups = vec![kvmtune_host::IommuGroup {
                        id: 0,
                        devices: vec!["0000:00:00.0".into()],
                    }];
                }),
                Some(Pass),
            ),
            // host-secure-guest
            host_case(
                "no sev flag",
                "host-secure-guest",
                "",
                "server",
                host16(),
                Some(Warn),
            ),
            host_case(
                "sev off in kernel",
                "host-secure-guest",
                "",
                "server",
                sev(Some("0"), true),
                Some(Warn),
            ),
            host_case(
                "sev off in firmware",
                "host-secure-guest",
                "",
                "server",
                sev(Some("1"), false),
                Some(Warn),
            ),
            host_case(
                "sev enabled",
                "host-secure-guest",
                "",
                "server",
                sev(Some("1"), true),
                Some(Pass),
            ),
            // host-nested
            host_case(
                "nested=0",
                "host-nested",
                "",
                "server",
                with(host16(), |h| kvm_module(h, "kvm_intel", "nested", "0")),
                Some(Info),
            ),
            host_case(
                "nested=Y",
                "host-nested",
                "",
                "server",
                with(host16(), |h| kvm_module(h, "kvm_intel", "nested", "Y")),
                Some(Info),
            ),
            host_case(
                "kvm_intel and kvm_amd both loaded: one check",
                "host-nested",
                "",
                "server",
                with(host16(), |h| {
                    kvm_module(h, "kvm_intel", "nested", "Y");
                    kvm_module(h, "kvm_amd", "nested", "0");
                }),
                Some(Info),
            ),
            host_case(
                "no nested parameter",
                "host-nested",
                "",
                "server",
                host16(),
                None,
            ),
            // host-ksm, host-ksm-merge-nodes
            host_case(
                "server, KSM runs",
                "host-ksm",
                "",
                "server",
                ksm_run(host16(), 1, 0),
                Some(Warn),
            ),
            host_case(
                "server, KSM stopped",
                "host-ksm",
                "",
                "server",
                ksm_run(host16(), 0, 0),
                Some(Pass),
            ),
            host_case(
                "dense, KSM stopped",
                "host-ksm",
                "",
                "dense",
                ksm_run(host16(), 0, 0),
                Some(Warn),
            ),
            host_case(
                "dense, KSM runs",
                "host-ksm",
                "",
                "dense",
                ksm_run(host16(), 1, 0),
                Some(Pass),
            ),
            host_case(
                "no KSM in the kernel",
                "host-ksm",
                "",
                "server",
                with(host16(), |h| h.memory.ksm = None),
                Some(Info),
            ),
            host_case(
                "merging across 2 nodes",
                "host-ksm-merge-nodes",
                "",
                "dense",
                ksm_run(host2n(), 1, 1),
                Some(Info),
            ),
            host_case(
                "not merging across 2 nodes",
                "host-ksm-merge-nodes",
                "",
                "dense",
                ksm_run(host2n(), 1, 0),
                Some(Pass),
            ),
            host_case(
                "merge_across_nodes on 1 node",
                "host-ksm-merge-nodes",
                "",
                "dense",
                ksm_run(host16(), 1, 1),
                None,
            ),
            // host-thp
            host_case(
                "thp never",
                "host-thp",
                "",
                "server",
                thp("never"),
                Some(Warn),
            ),
            host_case(
                "thp madvise",
                "host-thp",
                "",
                "server",
                thp("madvise"),
                Some(Pass),
            ),
            // host-hugepages-pool
            host_case(
                "pool without hugetlbfs",
                "host-hugepages-pool",
                "",
                "server",
                with(host16(), |h| h.memory.hugepages = vec![pool(2048, 512)]),
                Some(Warn),
            ),
            host_case(
                "pool with hugetlbfs",
                "host-hugepages-pool",
                "",
                "server",
                with(host16(), |h| {
                    h.memory.hugepages = vec![pool(2048, 512)];
                    h.memory.hugetlbfs = vec![hugetlbfs()];
                }),
                Some(Pass),
            ),
            host_case(
                "latency, no pool",
                "host-hugepages-pool",
                "",
                "latency",
                host16(),
                Some(Warn),
            ),
            host_case(
                "server, no pool",
                "host-hugepages-pool",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            // host-numa-balancing
            host_case(
                "latency, balancing on 2 nodes",
                "host-numa-balancing",
                "",
                "latency",
                balancing(host2n(), 1),
                Some(Warn),
            ),
            host_case(
                "server, balancing on 2 nodes",
                "host-numa-balancing",
                "",
                "server",
                balancing(host2n(), 1),
                Some(Info),
            ),
            host_case(
                "latency, balancing off on 2 nodes",
                "host-numa-balancing",
                "",
                "latency",
                balancing(host2n(), 0),
                Some(Pass),
            ),
            host_case(
                "latency, balancing on 1 node",
                "host-numa-balancing",
                "",
                "latency",
                balancing(host16(), 1),
                Some(Pass),
            ),
            // host-isolcpus
            host_case(
                "latency, nothing isolated",
                "host-isolcpus",
                "",
                "latency",
                host16(),
                Some(Warn),
            ),
            host_case(
                "latency, CPUs isolated",
                "host-isolcpus",
                "",
                "latency",
                with(host16(), |h| h.cpu.isolated = Some(set("8-15"))),
                Some(Pass),
            ),
            host_case(
                "latency, isolcpus= on the command line",
                "host-isolcpus",
                "",
                "latency",
                with(host16(), |h| h.cmdline.isolcpus_cpus = Some(set("8-15"))),
                Some(Pass),
            ),
            host_case(
                "server, CPUs isolated",
                "host-isolcpus",
                "",
                "server",
                with(host16(), |h| h.cpu.isolated = Some(set("8-15"))),
                Some(Info),
            ),
            host_case(
                "server, nothing isolated",
                "host-isolcpus",
                "",
                "server",
                host16(),
                Some(Pass),
            ),
            // host-governor
            host_case(
                "latency, powersave",
                "host-governor",
                "",
                "latency",
                governors(&["powersave"]),
                Some(Warn),
            ),
            host_case(
                "latency, performance",
                "host-governor",
                "",
                "latency",
                governors(&["performance"]),
                Some(Pass),
            ),
            host_case(
                "latency, no cpufreq",
                "host-governor",
                "",
                "latency",
                host16(),
                Some(Pass),
            ),
            host_case(
                "server, powersave",
                "host-governor",
                "",
                "server",
                governors(&["powersave"]),
                Some(Pass),
            ),
            // host-halt-poll
            host_case(
                "halt_poll_ns known",
                "host-halt-poll",
                "",
                "server",
                with(host16(), |h| kvm_module(h, "kvm", "halt_poll_ns", "200000")),
                Some(Info),
            ),
            host_case(
                "kvm parameters unknown",
                "host-halt-poll",
                "",
                "server",
                host16(),
                None,
            ),
        ];
        // host-cgroup-<controller>: each controller missing, and all there
        let all = |h: &mut Host| {
            h.kvm.cgroup.mode = Some("v2".into());
            h.kvm.cgroup.controllers = kvmtune_host::kvm::LIBVIRT_CONTROLLERS
                .iter()
                .map(|c| c.to_string())
                .collect();
        };
        for (c, rule) in super::CGROUP_RULES {
            v.push(host_case(
                "all controllers",
                rule.id,
                "",
                "server",
                with(host16(), all),
                Some(Pass),
            ));
            v.push(host_case(
                "one controller missing",
                rule.id,
                "",
                "server",
                with(host16(), |h| {
                    all(h);
                    h.kvm.cgroup.controllers.retain(|x| x != c);
                }),
                Some(Warn),
            ));
        }
        v
    }

    #[test]
    fn host_checks() {
        run_host_cases(&cases());
    }

    /// Was a false positive: the latency profile wants kernel.numa_balancing=0, and it is 0.
    #[test]
    fn numa_balancing_off_as_the_profile_wants() {
        run_host_cases(&[host_case(
            "latency, balancing off on 2 nodes",
            "host-numa-balancing",
            "",
            "latency",
            with(host2n(), |h| h.numa.balancing = Some(0)),
            Some(Pass),
        )]);
    }

    /// Every host a test knows: the table's hosts and the fixture hosts.
    fn every_test_host() -> Vec<(String, Host)> {
        let mut v: Vec<(String, Host)> = cases()
            .into_iter()
            .map(|c| (format!("case {:?}", c.name), c.host))
            .collect();
        v.extend(
            fixture_hosts()
                .into_iter()
                .map(|(p, h)| (p.display().to_string(), h)),
        );
        v
    }

    #[test]
    fn no_run_reports_an_id_twice_and_every_id_is_in_the_table() {
        let known: BTreeSet<&str> = rules().iter().map(|r| r.id).collect();
        let mut seen = BTreeSet::new();
        for (name, host) in every_test_host() {
            for (p, _) in kvmtune_profile::BUILTIN {
                let profile = Profile::load(p).expect("profile");
                let checks = check_host(&host, &profile);
                let mut ids = BTreeSet::new();
                for c in &checks {
                    assert!(ids.insert(c.id.as_str()), "{name} ({p}): {} twice", c.id);
                    assert!(
                        known.contains(c.id.as_str()),
                        "{name}: {} not in rules()",
                        c.id
                    );
                    seen.insert(c.id.clone());
                }
            }
        }
        let never: Vec<&&str> = known.iter().filter(|id| !seen.contains(**id)).collect();
        assert!(never.is_empty(), "rules no test host reports: {never:?}");
    }

    #[test]
    fn the_rule_table_is_complete_and_has_no_duplicates() {
        let ids: Vec<&str> = rules().iter().map(|r| r.id).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate ids in rules(): {ids:?}");
        // every "host-..." literal of the code is a rule of the table, and back
        let literals = host_check_ids();
        let table: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        assert_eq!(literals, table, "host_checks.rs ids vs rules()");
        for r in rules() {
            for (what, text) in [
                ("title", r.title),
                ("why", r.why),
                ("fix", r.fix),
                ("source", r.source),
            ] {
                assert!(!text.trim().is_empty(), "{}: empty {what}", r.id);
            }
            assert!(
                !r.source.to_lowercase().contains("seed"),
                "{}: internal source {:?}",
                r.id,
                r.source
            );
            assert_eq!(
                r.virt_host_validate,
                r.source == "virt-host-validate",
                "{}",
                r.id
            );
            assert_eq!(rule(r.id), Some(r));
        }
        // the cgroup checks are virt-host-validate's controllers, in its order
        let controllers: Vec<&str> = super::CGROUP_RULES.iter().map(|(c, _)| *c).collect();
        assert_eq!(controllers, kvmtune_host::kvm::LIBVIRT_CONTROLLERS);
        for (c, r) in super::CGROUP_RULES {
            assert_eq!(r.id, format!("host-cgroup-{c}"));
            assert_eq!(r.title, format!("for cgroup '{c}' controller support"));
        }
    }

    #[test]
    fn checks_take_title_source_and_severity_from_the_table() {
        for (name, host) in every_test_host() {
            for (p, _) in kvmtune_profile::BUILTIN {
                let profile = Profile::load(p).expect("profile");
                for c in check_host(&host, &profile) {
                    let r = rule(&c.id).expect("known id");
                    assert_eq!(c.title, r.title, "{name}: {}", c.id);
                    assert_eq!(c.source, r.source, "{name}: {}", c.id);
                    assert_eq!(c.virt_host_validate, r.virt_host_validate);
                    assert_eq!(c.severity, c.verdict.severity(), "{name}: {}", c.id);
                }
            }
        }
    }

    #[test]
    fn verdicts_map_onto_the_shared_severities() {
        assert_eq!(Pass.severity(), None);
        assert_eq!(Info.severity(), Some(Severity::Info));
        assert_eq!(Warn.severity(), Some(Severity::Warn));
        assert_eq!(Fail.severity(), Some(Severity::Error));
        let profile = Profile::load("server").expect("profile");
        let checks = check_host(&blank_host(), &profile);
        let json = serde_json::to_value(&checks).expect("json");
        let by_verdict = |v: &str| {
            json.as_array()
                .expect("array")
                .iter()
                .find(|c| c["verdict"] == v)
                .map(|c| c["severity"].clone())
        };
        assert_eq!(by_verdict("FAIL"), Some(serde_json::json!("error")));
        assert_eq!(by_verdict("WARN"), Some(serde_json::json!("warn")));
        assert_eq!(by_verdict("INFO"), Some(serde_json::json!("info")));
        let pass = check_host(&host16(), &profile);
        let pass = serde_json::to_value(&pass[0]).expect("json");
        assert_eq!(pass["verdict"], "PASS");
        assert_eq!(pass["severity"], serde_json::Value::Null);
    }
}

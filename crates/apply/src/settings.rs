//! The settings of a domain that libvirt can change while it runs, read from domain XML,
//! and the live operations that take a running domain from one set of them to another.
//!
//! Everything else in a definition takes effect only when the domain is next started; the
//! engine changes it through the persistent definition.

use std::collections::BTreeMap;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::CpuSet;
use kvmtune_libvirt::{MEMTUNE_UNLIMITED_KIB, MemTuneSet};
use serde::{Deserialize, Serialize};

/// The live-changeable settings of a domain definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// vCPUs online (`<vcpu current=...>`, or the enabled entries of `<vcpus>`).
    pub vcpus: u32,
    /// The maximum number of vCPUs.
    pub max_vcpus: u32,
    /// `<vcpu cpuset=...>`: where unpinned vCPUs and the emulator may run.
    pub vcpu_cpuset: Option<String>,
    /// `<cputune><vcpupin>` by vCPU.
    pub vcpupin: BTreeMap<u32, String>,
    pub emulatorpin: Option<String>,
    pub numa_mode: Option<String>,
    pub numa_nodeset: Option<String>,
    pub hard_limit_kib: Option<u64>,
    pub soft_limit_kib: Option<u64>,
    pub swap_hard_limit_kib: Option<u64>,
    pub memory_kib: Option<u64>,
    pub current_memory_kib: Option<u64>,
}

fn norm(cpuset: &str) -> String {
    CpuSet::parse(cpuset)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| cpuset.trim().to_string())
}

/// Read the settings from a parsed definition.
pub fn read(doc: &Document, d: &Domain) -> Settings {
    let root = doc.root();
    let vcpus = match doc.child(root, "vcpus") {
        Some(list) => doc
            .children(list, "vcpu")
            .filter(|&v| doc.attr(v, "enabled") == Some("yes"))
            .count() as u32,
        None => d.vcpu.current.unwrap_or(d.vcpu.max),
    };
    let mut s = Settings {
        vcpus,
        max_vcpus: d.vcpu.max,
        vcpu_cpuset: d.vcpu.cpuset.as_deref().map(norm),
        memory_kib: d.memory_kib,
        current_memory_kib: d.current_memory_kib,
        ..Settings::default()
    };
    if let Some(ct) = &d.cputune {
        for p in &ct.vcpupin {
            if let Some(id) = p.id {
                s.vcpupin.insert(id, norm(&p.cpuset));
            }
        }
        s.emulatorpin = ct.emulatorpin.as_ref().map(|p| norm(&p.cpuset));
    }
    if let Some(m) = d.numatune.as_ref().and_then(|n| n.memory.as_ref()) {
        s.numa_mode = m.mode.clone().or(Some("strict".into()));
        s.numa_nodeset = m.nodeset.as_deref().map(norm);
    }
    if let Some(mt) = &d.memtune {
        s.hard_limit_kib = mt.hard_limit_kib;
        s.soft_limit_kib = mt.soft_limit_kib;
        s.swap_hard_limit_kib = mt.swap_hard_limit_kib;
    }
    s
}

/// Read the settings from XML text.
pub fn read_xml(xml: &str) -> Result<Settings, kvmtune_domain::DomainError> {
    let (doc, d) = Domain::parse(xml)?;
    Ok(read(&doc, &d))
}

impl Settings {
    /// Where vCPU `v` may run: its pin, else `<vcpu cpuset>`, else every host CPU.
    pub fn vcpu_affinity(&self, v: u32, all: &str) -> String {
        self.vcpupin
            .get(&v)
            .or(self.vcpu_cpuset.as_ref())
            .cloned()
            .unwrap_or_else(|| norm(all))
    }
    /// Where the emulator threads may run.
    pub fn emulator_affinity(&self, all: &str) -> String {
        self.emulatorpin
            .as_ref()
            .or(self.vcpu_cpuset.as_ref())
            .cloned()
            .unwrap_or_else(|| norm(all))
    }
}

/// One change to a running domain (libvirt's `--live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum LiveOp {
    SetVcpus { count: u32 },
    PinVcpu { vcpu: u32, cpus: String },
    PinEmulator { cpus: String },
    NumaNodeset { nodeset: String },
    Memtune(MemTuneSet),
    Balloon { kib: u64 },
}

impl LiveOp {
    /// What an admin would type for it.
    pub fn command(&self, dom: &str) -> String {
        match self {
            LiveOp::SetVcpus { count } => format!("virsh setvcpus {dom} {count} --live"),
            LiveOp::PinVcpu { vcpu, cpus } => format!("virsh vcpupin {dom} {vcpu} {cpus} --live"),
            LiveOp::PinEmulator { cpus } => format!("virsh emulatorpin {dom} {cpus} --live"),
            LiveOp::NumaNodeset { nodeset } => {
                format!("virsh numatune {dom} --nodeset {nodeset} --live")
            }
            LiveOp::Memtune(m) => {
                let mut s = format!("virsh memtune {dom}");
                for (flag, v) in [
                    ("--hard-limit", m.hard_limit_kib),
                    ("--soft-limit", m.soft_limit_kib),
                    ("--swap-hard-limit", m.swap_hard_limit_kib),
                ] {
                    match v {
                        Some(MEMTUNE_UNLIMITED_KIB) => s.push_str(&format!(" {flag} -1")),
                        Some(k) => s.push_str(&format!(" {flag} {k}")),
                        None => {}
                    }
                }
                s + " --live"
            }
            LiveOp::Balloon { kib } => format!("virsh setmem {dom} {kib}KiB --live"),
        }
    }

    /// Carry the operation out.
    pub fn run(
        &self,
        virt: &dyn kvmtune_libvirt::Virt,
        dom: &str,
    ) -> Result<(), kvmtune_libvirt::LibvirtError> {
        let cpus_of = |s: &str| -> Result<Vec<u32>, kvmtune_libvirt::LibvirtError> {
            CpuSet::parse(s).map(|c| c.iter().collect()).map_err(|e| {
                kvmtune_libvirt::LibvirtError {
                    op: format!("cpuset {s}"),
                    message: e.to_string(),
                }
            })
        };
        match self {
            LiveOp::SetVcpus { count } => virt.set_vcpus(dom, *count),
            LiveOp::PinVcpu { vcpu, cpus } => virt.pin_vcpu(dom, *vcpu, &cpus_of(cpus)?),
            LiveOp::PinEmulator { cpus } => virt.pin_emulator(dom, &cpus_of(cpus)?),
            LiveOp::NumaNodeset { nodeset } => virt.set_numa_nodeset(dom, nodeset),
            LiveOp::Memtune(m) => virt.set_memtune(dom, *m),
            LiveOp::Balloon { kib } => virt.set_memory(dom, *kib),
        }
    }
}

/// The live operations that take a running domain from `cur` to `want`, and the changes
/// that cannot be made live (they wait for the domain's next start).
///
/// `cur_affinity`, when known, is where each vCPU thread (by index) and the emulator
/// actually run now (from /proc); `all` is every host CPU. A vCPU or the emulator is
/// re-pinned only when where it may run changes.
pub fn live_ops(
    cur: &Settings,
    want: &Settings,
    all: &str,
    cur_affinity: Option<&crate::procfs::Affinity>,
) -> (Vec<LiveOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut later = Vec::new();
    if want.max_vcpus != cur.max_vcpus {
        later.push(format!(
            "maximum vCPUs {} -> {}: at the next start",
            cur.max_vcpus, want.max_vcpus
        ));
    }
    let target = want.vcpus.min(cur.max_vcpus);
    // grow before pinning (the new vCPUs get pinned), shrink after
    if target > cur.vcpus {
        ops.push(LiveOp::SetVcpus { count: target });
    }
    for v in 0..target {
        let now = cur_affinity
            .and_then(|a| a.vcpus.get(&v).cloned())
            .unwrap_or_else(|| cur.vcpu_affinity(v, all));
        let to = want.vcpu_affinity(v, all);
        if now != to || (v < cur.vcpus && cur.vcpu_affinity(v, all) != to) {
            ops.push(LiveOp::PinVcpu { vcpu: v, cpus: to });
        }
    }
    let now = cur_affinity
        .map(|a| a.emulator.clone())
        .unwrap_or_else(|| cur.emulator_affinity(all));
    let to = want.emulator_affinity(all);
    if now != to || cur.emulator_affinity(all) != to {
        ops.push(LiveOp::PinEmulator { cpus: to });
    }
    if target < cur.vcpus {
        ops.push(LiveOp::SetVcpus { count: target });
    }
    match (&cur.numa_mode, &want.numa_mode) {
        (a, b) if a == b => {
            if let (Some(n), true) = (&want.numa_nodeset, cur.numa_nodeset != want.numa_nodeset) {
                if matches!(want.numa_mode.as_deref(), Some("strict" | "restrictive")) {
                    ops.push(LiveOp::NumaNodeset { nodeset: n.clone() });
                } else {
                    later.push(format!(
                        "NUMA nodeset -> {n}: at the next start (libvirt changes a running \
                         domain's nodeset only in strict or restrictive mode)"
                    ));
                }
            }
        }
        (a, b) => later.push(format!(
            "numatune mode {} -> {}: at the next start",
            a.as_deref().unwrap_or("(none)"),
            b.as_deref().unwrap_or("(none)")
        )),
    }
    let lim = |v: Option<u64>| v.unwrap_or(MEMTUNE_UNLIMITED_KIB);
    let mut m = MemTuneSet::default();
    if lim(cur.hard_limit_kib) != lim(want.hard_limit_kib) {
        m.hard_limit_kib = Some(lim(want.hard_limit_kib));
    }
    if lim(cur.soft_limit_kib) != lim(want.soft_limit_kib) {
        m.soft_limit_kib = Some(lim(want.soft_limit_kib));
    }
    if lim(cur.swap_hard_limit_kib) != lim(want.swap_hard_limit_kib) {
        m.swap_hard_limit_kib = Some(lim(want.swap_hard_limit_kib));
    }
    if m != MemTuneSet::default() {
        ops.push(LiveOp::Memtune(m));
    }
    if want.memory_kib != cur.memory_kib {
        later.push("maximum memory: at the next start".into());
    }
    if let (Some(w), Some(c)) = (want.current_memory_kib, cur.current_memory_kib)
        && w != c
    {
        if w <= cur.memory_kib.unwrap_or(u64::MAX) {
            ops.push(LiveOp::Balloon { kib: w });
        } else {
            later.push(format!(
                "current memory {w} KiB is above the running maximum: at the next start"
            ));
        }
    }
    (ops, later)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "<domain type='qemu'><name>t</name><memory unit='KiB'>262144</memory>\
        <currentMemory unit='KiB'>262144</currentMemory>\
        <vcpu placement='static' current='1'>2</vcpu></domain>";

    #[test]
    fn reads_settings_from_xml() {
        let s = read_xml(
            "<domain><name>t</name><memory unit='MiB'>256</memory>\
             <vcpu cpuset='0-1'>2</vcpu><cputune><vcpupin vcpu='1' cpuset='1,0'/>\
             <emulatorpin cpuset='0'/></cputune><numatune><memory nodeset='0'/></numatune>\
             <memtune><hard_limit unit='MiB'>512</hard_limit></memtune></domain>",
        )
        .unwrap();
        assert_eq!(s.vcpus, 2);
        assert_eq!(s.vcpupin.get(&1).unwrap(), "0-1");
        assert_eq!(s.emulatorpin.as_deref(), Some("0"));
        assert_eq!(s.numa_mode.as_deref(), Some("strict"));
        assert_eq!(s.hard_limit_kib, Some(512 * 1024));
        assert_eq!(s.memory_kib, Some(256 * 1024));
        assert_eq!(s.vcpu_affinity(0, "0-3"), "0-1");
    }

    #[test]
    fn hotpluggable_vcpus_count_the_enabled_ones() {
        let s = read_xml(
            "<domain><name>t</name><vcpu>2</vcpu><vcpus><vcpu id='0' enabled='yes'/>\
             <vcpu id='1' enabled='no'/></vcpus></domain>",
        )
        .unwrap();
        assert_eq!((s.vcpus, s.max_vcpus), (1, 2));
    }

    #[test]
    fn grows_then_pins_and_removes_a_limit() {
        let cur = read_xml(BASE).unwrap();
        let mut want = cur.clone();
        want.vcpus = 2;
        want.vcpupin.insert(0, "0".into());
        want.vcpupin.insert(1, "1".into());
        want.emulatorpin = Some("0-1".into());
        let (ops, later) = live_ops(&cur, &want, "0-1", None);
        assert_eq!(
            ops,
            vec![
                LiveOp::SetVcpus { count: 2 },
                LiveOp::PinVcpu {
                    vcpu: 0,
                    cpus: "0".into()
                },
                LiveOp::PinVcpu {
                    vcpu: 1,
                    cpus: "1".into()
                },
            ]
        );
        assert!(later.is_empty());
        // the reverse: pins go back to every CPU, then the count shrinks
        let (back, _) = live_ops(&want, &cur, "0-1", None);
        assert_eq!(back.last(), Some(&LiveOp::SetVcpus { count: 1 }));
        assert!(back.contains(&LiveOp::PinVcpu {
            vcpu: 0,
            cpus: "0-1".into()
        }));
        let mut limited = cur.clone();
        limited.hard_limit_kib = Some(1024);
        let (ops, _) = live_ops(&limited, &cur, "0-1", None);
        assert_eq!(
            ops,
            vec![LiveOp::Memtune(MemTuneSet {
                hard_limit_kib: Some(MEMTUNE_UNLIMITED_KIB),
                ..MemTuneSet::default()
            })]
        );
        assert!(ops[0].command("t").contains("--hard-limit -1"));
    }

    #[test]
    fn what_cannot_change_live_waits_for_the_next_start() {
        let cur = read_xml(BASE).unwrap();
        let mut want = cur.clone();
        want.max_vcpus = 4;
        want.numa_mode = Some("interleave".into());
        want.memory_kib = Some(1 << 20);
        let (ops, later) = live_ops(&cur, &want, "0-1", None);
        assert!(ops.is_empty(), "{ops:?}");
        assert_eq!(later.len(), 3, "{later:?}");
    }

    #[test]
    fn nothing_to_do_when_equal() {
        let cur = read_xml(BASE).unwrap();
        assert_eq!(live_ops(&cur, &cur, "0-1", None), (vec![], vec![]));
    }
}

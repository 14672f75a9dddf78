//! The settings of a domain that libvirt can change while it runs, read from domain XML,
//! and the live operations that take a running domain from one set of them to another.
//!
//! Everything else in a definition takes effect only when the domain is next started; the
//! engine changes it through the persistent definition.
//!
//! One module per resource holds how it is read, compared, changed live, verified and
//! restored: `cpu` (vCPU count and pins), `numa` (numatune), `memory` (memtune and
//! balloon). Host settings are in [`crate::hostset`].

use std::collections::BTreeMap;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::CpuSet;
use kvmtune_libvirt::MemTuneSet;
use serde::{Deserialize, Serialize};

use kvmtune_host::process::Affinity;

pub(crate) mod cpu;
pub(crate) mod memory;
pub(crate) mod numa;

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
    let mut s = Settings::default();
    cpu::read(doc, d, &mut s);
    numa::read(d, &mut s);
    memory::read(d, &mut s);
    s
}

/// Read the settings from XML text.
pub fn read_xml(xml: &str) -> Result<Settings, kvmtune_domain::DomainError> {
    let (doc, d) = Domain::parse(xml)?;
    Ok(read(&doc, &d))
}

/// The settings where `got` differs from `want`, one line, by field name: `emulatorpin
/// none (not 0), vcpus 2 (not 4)` (for errors: never a Rust struct).
pub fn differences(got: &Settings, want: &Settings) -> String {
    let (Ok(serde_json::Value::Object(g)), Ok(serde_json::Value::Object(w))) =
        (serde_json::to_value(got), serde_json::to_value(want))
    else {
        return "different settings".into();
    };
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "none".to_string(),
        Some(serde_json::Value::String(s)) => s.escape_debug().to_string(),
        Some(other) => other.to_string(),
    };
    let out: Vec<String> = w
        .iter()
        .filter(|(k, v)| g.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} {} (not {})", show(g.get(k)), show(Some(v))))
        .collect();
    if out.is_empty() {
        "different settings".into()
    } else {
        out.join(", ")
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
        let dom = kvmtune_domain::shell_quote(dom);
        match self {
            LiveOp::SetVcpus { count } => format!("virsh setvcpus {dom} {count} --live"),
            LiveOp::PinVcpu { vcpu, cpus } => format!("virsh vcpupin {dom} {vcpu} {cpus} --live"),
            LiveOp::PinEmulator { cpus } => format!("virsh emulatorpin {dom} {cpus} --live"),
            LiveOp::NumaNodeset { nodeset } => {
                format!("virsh numatune {dom} --nodeset {nodeset} --live")
            }
            LiveOp::Memtune(m) => memory::memtune_command(&dom, m),
            LiveOp::Balloon { kib } => format!("virsh setmem {dom} {kib}KiB --live"),
        }
    }

    /// Carry the operation out.
    pub fn run(
        &self,
        virt: &dyn kvmtune_libvirt::Virt,
        dom: &str,
    ) -> Result<(), kvmtune_libvirt::LibvirtError> {
        match self {
            LiveOp::SetVcpus { count } => virt.set_vcpus(dom, *count),
            LiveOp::PinVcpu { vcpu, cpus } => virt.pin_vcpu(dom, *vcpu, &cpu::cpus_of(cpus)?),
            LiveOp::PinEmulator { cpus } => virt.pin_emulator(dom, &cpu::cpus_of(cpus)?),
            LiveOp::NumaNodeset { nodeset } => virt.set_numa_nodeset(dom, nodeset),
            LiveOp::Memtune(m) => virt.set_memtune(dom, *m),
            LiveOp::Balloon { kib } => virt.set_memory(dom, *kib),
        }
    }

    /// Why the running domain does not hold the operation's result: `live` is its live
    /// settings now, `aff` where its threads run now (when known), `all` every host CPU.
    pub fn verify(&self, live: &Settings, aff: Option<&Affinity>, all: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let p = &mut problems;
        match self {
            LiveOp::SetVcpus { count } => cpu::verify_count(live, aff, *count, p),
            LiveOp::PinVcpu { vcpu, cpus } => cpu::verify_vcpu_pin(live, aff, all, *vcpu, cpus, p),
            LiveOp::PinEmulator { cpus } => cpu::verify_emulator_pin(live, aff, all, cpus, p),
            LiveOp::NumaNodeset { nodeset } => numa::verify_nodeset(live, nodeset, p),
            LiveOp::Memtune(m) => memory::verify_memtune(live, m, p),
            LiveOp::Balloon { kib } => memory::verify_balloon(live, *kib, p),
        }
        problems
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
    cur_affinity: Option<&Affinity>,
) -> (Vec<LiveOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut later = Vec::new();
    cpu::diff(cur, want, all, cur_affinity, &mut ops, &mut later);
    numa::diff(cur, want, &mut ops, &mut later);
    memory::diff(cur, want, &mut ops, &mut later);
    (ops, later)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmtune_libvirt::MEMTUNE_UNLIMITED_KIB;

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
    fn differences_are_one_line_of_fields() {
        let a = read_xml(BASE).unwrap();
        let mut b = a.clone();
        b.vcpus = 2;
        b.emulatorpin = Some("0".into());
        b.vcpupin.insert(1, "1".into());
        let d = differences(&a, &b);
        assert_eq!(
            d,
            "emulatorpin none (not 0), vcpupin {} (not {\"1\":\"1\"}), vcpus 1 (not 2)"
        );
    }

    #[test]
    fn nothing_to_do_when_equal() {
        let cur = read_xml(BASE).unwrap();
        assert_eq!(live_ops(&cur, &cur, "0-1", None), (vec![], vec![]));
    }
}

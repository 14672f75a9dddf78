//! Exit reasons by kind, whatever named them: `perf kvm stat` (VMX names such as
//! `IO_INSTRUCTION`, SVM names such as `io`), `kvm_stat` (`kvm_exit(IOIO)`, debugfs counters
//! such as `io_exits`) and the kernel's binary statistics that libvirt and QMP return.
//! An [`ExitProfile`] is the common input of the diagnosis rules.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::perf::{KvmStatBlock, PerfTable, Recorded, TableKind};

/// What an exit reason means for diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// Port I/O (`IO_INSTRUCTION`, `io`, `IOIO`, `io_exits`).
    Io,
    /// MMIO of an emulated device (`EPT_MISCONFIG`, `mmio_exits`, SEV-ES `vmgexit_mmio_*`).
    Mmio,
    /// MSR reads and writes (`MSR_READ`, `MSR_WRITE`, `msr`, `MSR`).
    Msr,
    /// Local APIC accesses not accelerated (`APIC_ACCESS`, `APIC_WRITE`, `EOI_INDUCED`,
    /// `avic_*`): like MSR exits, mostly timer and IPI traffic.
    Apic,
    /// The guest halted (`HLT`, `hlt`, `halt_exits`).
    Halt,
    /// Guest memory faulted in by KVM (`EPT_VIOLATION`, `npf`, `pf_fixed`).
    PageFault,
    /// Spinning vCPUs (`PAUSE_INSTRUCTION`, `pause`; live: directed-yield attempts).
    Pause,
    /// A host interrupt arrived while the vCPU ran (`EXTERNAL_INTERRUPT`, `intr`, `irq_exits`).
    ExternalInterrupt,
    /// Waiting to inject an interrupt (`INTERRUPT_WINDOW`, `PENDING_INTERRUPT`, `vintr`).
    InterruptWindow,
    /// Instructions KVM emulated (`insn_emulation`).
    Emulation,
    /// Hypercalls (`VMCALL`, `hypercall`, `VMMCALL`).
    Hypercall,
    Other,
}

impl ExitKind {
    pub fn label(self) -> &'static str {
        match self {
            ExitKind::Io => "port I/O",
            ExitKind::Mmio => "MMIO",
            ExitKind::Msr => "MSR access",
            ExitKind::Apic => "APIC access",
            ExitKind::Halt => "HLT",
            ExitKind::PageFault => "EPT/NPF fault",
            ExitKind::Pause => "PAUSE spin",
            ExitKind::ExternalInterrupt => "external interrupt",
            ExitKind::InterruptWindow => "interrupt window",
            ExitKind::Emulation => "instruction emulation",
            ExitKind::Hypercall => "hypercall",
            ExitKind::Other => "other",
        }
    }
}

/// The kind of an exit reason as perf or kvm_stat names it (VMX or SVM).
pub fn classify(reason: &str) -> ExitKind {
    match reason {
        "IO_INSTRUCTION" | "io" | "IOIO" => ExitKind::Io,
        "EPT_MISCONFIG" | "vmgexit_mmio_read" | "vmgexit_mmio_write" => ExitKind::Mmio,
        "MSR_READ" | "MSR_WRITE" | "msr" | "MSR" | "write_efer_trap" => ExitKind::Msr,
        "APIC_ACCESS"
        | "APIC_WRITE"
        | "EOI_INDUCED"
        | "TPR_BELOW_THRESHOLD"
        | "avic_incomplete_ipi"
        | "avic_unaccelerated_access"
        | "write_cr8_trap" => ExitKind::Apic,
        "HLT" | "hlt" => ExitKind::Halt,
        "EPT_VIOLATION" | "npf" | "NPF" => ExitKind::PageFault,
        "PAUSE_INSTRUCTION" | "pause" | "PAUSE" => ExitKind::Pause,
        "EXTERNAL_INTERRUPT" | "intr" | "interrupt" | "INTR" => ExitKind::ExternalInterrupt,
        "INTERRUPT_WINDOW" | "PENDING_INTERRUPT" | "NMI_WINDOW" | "vintr" | "VINTR" => {
            ExitKind::InterruptWindow
        }
        "VMCALL" | "hypercall" | "VMMCALL" => ExitKind::Hypercall,
        _ => ExitKind::Other,
    }
}

/// What a kvm_stat counter or a binary statistic counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Every exit (`kvm_exit`, `exits`).
    Total,
    Kind(ExitKind),
}

/// A kvm_stat counter name, or a KVM binary statistic name (`io_exits`, as libvirt's
/// `vcpu.N.io_exits.sum` and `virsh domstats --vm` show them).
pub fn counter(name: &str) -> Option<Counter> {
    if let Some(reason) = name
        .strip_prefix("kvm_exit(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Some(Counter::Kind(classify(reason)));
    }
    Some(match name {
        "kvm_exit" | "exits" => Counter::Total,
        "io_exits" | "kvm_pio" => Counter::Kind(ExitKind::Io),
        "mmio_exits" | "kvm_mmio" => Counter::Kind(ExitKind::Mmio),
        "kvm_msr" => Counter::Kind(ExitKind::Msr),
        "kvm_apic" => Counter::Kind(ExitKind::Apic),
        "halt_exits" => Counter::Kind(ExitKind::Halt),
        "irq_exits" => Counter::Kind(ExitKind::ExternalInterrupt),
        "irq_window_exits" | "nmi_window_exits" => Counter::Kind(ExitKind::InterruptWindow),
        "insn_emulation" | "kvm_emulate_insn" => Counter::Kind(ExitKind::Emulation),
        "pf_fixed" => Counter::Kind(ExitKind::PageFault),
        "hypercalls" | "kvm_hypercall" | "kvm_hv_hypercall" => Counter::Kind(ExitKind::Hypercall),
        "directed_yield_attempted" => Counter::Kind(ExitKind::Pause),
        _ => return None,
    })
}

/// CPU figures of a VM over a window, in % of one host CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuFigures {
    pub host_pct: f64,
    pub guest_pct: f64,
    pub emulator_pct: Option<f64>,
    pub vcpus: u32,
}

/// What the diagnosis rules judge: one VM's (or one report's) exits, with whatever else is
/// known about the same window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExitProfile {
    /// Where the numbers come from (a file and line, a domain and window).
    pub source: String,
    /// The counts are per second (live statistics, kvm_stat rates); otherwise they are
    /// sample counts of unknown duration (a perf report).
    pub per_sec: bool,
    pub total: f64,
    /// Exits of each kind. Kinds may overlap when the source counts events, not exits
    /// (kvm_stat's `kvm_msr` and `kvm_apic` count the same x2APIC write).
    pub kinds: BTreeMap<ExitKind, f64>,
    /// The largest exit reasons as the source named them.
    pub top: Vec<(String, f64)>,
    /// Port, MMIO address and MSR keys by count (`0x70:POUT`), from perf's other tables.
    pub io_ports: Vec<(String, f64)>,
    pub mmio: Vec<(String, f64)>,
    pub msrs: Vec<(String, f64)>,
    pub cpu: Option<CpuFigures>,
    /// CPU spent halt polling, in % of one host CPU (live statistics only).
    pub halt_poll_pct: Option<f64>,
    /// Share (0..1) of the VM's memory on nodes where its vCPUs do not run.
    pub remote_share: Option<f64>,
    pub memory_kib: Option<u64>,
    /// vCPU run delay (time runnable but not running), % of one CPU summed over vCPUs.
    pub delay_pct: Option<f64>,
}

impl ExitProfile {
    pub fn kind(&self, k: ExitKind) -> f64 {
        self.kinds.get(&k).copied().unwrap_or(0.0)
    }
    pub fn share(&self, k: ExitKind) -> f64 {
        if self.total > 0.0 {
            self.kind(k) / self.total
        } else {
            0.0
        }
    }
}

fn keys_of(tables: &[PerfTable], kind: TableKind) -> Vec<(String, f64)> {
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    for t in tables.iter().filter(|t| t.kind == kind) {
        for r in &t.rows {
            *m.entry(r.key.clone()).or_default() += r.samples as f64;
        }
    }
    sorted(m)
}

fn sorted(m: BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn from_table(t: &PerfTable, what: &str) -> ExitProfile {
    let mut p = ExitProfile {
        source: format!(
            "{what}: perf kvm stat table at line {}{}{}",
            t.line,
            t.scope
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            t.timestamp
                .as_ref()
                .map(|s| format!(" at {s}"))
                .unwrap_or_default(),
        ),
        ..ExitProfile::default()
    };
    let mut top = BTreeMap::new();
    for r in &t.rows {
        let n = r.samples as f64;
        *p.kinds.entry(classify(&r.key)).or_default() += n;
        *top.entry(r.key.clone()).or_default() += n;
    }
    p.total = t
        .total_samples
        .map(|n| n as f64)
        .unwrap_or_else(|| t.rows.iter().map(|r| r.samples as f64).sum());
    p.top = sorted(top);
    p
}

fn from_kvm_stat(b: &KvmStatBlock, what: &str) -> ExitProfile {
    let mut p = ExitProfile {
        source: format!("{what}: kvm_stat output at line {}", b.line),
        per_sec: b.rows.iter().all(|r| r.per_sec.is_some()),
        ..ExitProfile::default()
    };
    let value = |r: &crate::perf::KvmStatRow| {
        if p.per_sec {
            r.per_sec.unwrap_or(0.0)
        } else {
            r.total as f64
        }
    };
    let mut top = BTreeMap::new();
    let mut by_reason = BTreeMap::new();
    let mut events = BTreeMap::new();
    for r in &b.rows {
        let v = value(r);
        match counter(&r.name) {
            Some(Counter::Total) => p.total = p.total.max(v),
            Some(Counter::Kind(k)) if r.name.starts_with("kvm_exit(") => {
                *by_reason.entry(k).or_default() += v;
                top.insert(r.name.clone(), v);
            }
            Some(Counter::Kind(k)) => {
                let e: &mut f64 = events.entry(k).or_default();
                *e = e.max(v);
            }
            None => {}
        }
    }
    // exit reasons (kvm_exit(X) rows) are exact; other events fill in kinds they lack
    p.kinds = by_reason;
    for (k, v) in events {
        p.kinds.entry(k).or_insert(v);
    }
    if top.is_empty() {
        for (k, v) in &p.kinds {
            top.insert(k.label().to_string(), *v);
        }
    }
    p.top = sorted(top);
    p
}

/// One profile per vmexit table and per kvm_stat block of a recorded report. The ioport,
/// mmio and msr tables of the same recording give every profile its keys.
pub fn profiles(rec: &Recorded, what: &str) -> Vec<ExitProfile> {
    let io = keys_of(&rec.perf, TableKind::Ioport);
    let mmio = keys_of(&rec.perf, TableKind::Mmio);
    let msr = keys_of(&rec.perf, TableKind::Msr);
    let mut out: Vec<ExitProfile> = rec
        .perf
        .iter()
        .filter(|t| t.kind == TableKind::Vmexit)
        .map(|t| from_table(t, what))
        .chain(rec.kvm_stat.iter().map(|b| from_kvm_stat(b, what)))
        .collect();
    if out.is_empty() && !(io.is_empty() && mmio.is_empty() && msr.is_empty()) {
        // only access tables: judge their keys without exit shares
        out.push(ExitProfile {
            source: format!("{what}: perf kvm stat access tables"),
            ..ExitProfile::default()
        });
    }
    for p in &mut out {
        p.io_ports = io.clone();
        p.mmio = mmio.clone();
        p.msrs = msr.clone();
    }
    out
}

/// What a port key points at (`0x70:POUT` -> the RTC).
pub fn port_hint(key: &str) -> Option<&'static str> {
    let port = key.split(':').next()?.trim_start_matches("0x");
    let port = u32::from_str_radix(port, 16).ok()?;
    Some(match port {
        0x40..=0x43 => "PIT (i8254 timer)",
        0x61 => "PC speaker / PIT gate",
        0x70 | 0x71 => "RTC (CMOS clock)",
        0x608 | 0xb008 => "ACPI PM timer",
        0xcf8..=0xcff => "PCI configuration space",
        0x1f0..=0x1f7 | 0x170..=0x177 | 0x3f6 | 0x376 => "IDE disk controller",
        0x3f8..=0x3ff | 0x2f8..=0x2ff => "serial port",
        0x1ce..=0x1d0 | 0x3c0..=0x3df => "VGA",
        0x60 | 0x64 => "PS/2 keyboard controller",
        0x510 | 0x511 => "QEMU fw_cfg",
        _ if port >= 0xc000 => "a PCI device's I/O BAR (an emulated NIC, disk or USB controller)",
        _ => return None,
    })
}

/// Whether a port belongs to a timer (the clock rules' business).
pub fn is_timer_port(key: &str) -> bool {
    matches!(
        port_hint(key),
        Some("PIT (i8254 timer)" | "RTC (CMOS clock)" | "ACPI PM timer" | "PC speaker / PIT gate")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_svm_and_kvm_stat_names_agree() {
        for (a, b, c) in [
            ("IO_INSTRUCTION", "io", "IOIO"),
            ("MSR_WRITE", "msr", "MSR"),
            ("HLT", "hlt", "HLT"),
            ("EPT_VIOLATION", "npf", "NPF"),
            ("PAUSE_INSTRUCTION", "pause", "PAUSE"),
            ("EXTERNAL_INTERRUPT", "intr", "INTR"),
        ] {
            assert_eq!(classify(a), classify(b), "{a} {b}");
            assert_eq!(classify(b), classify(c), "{b} {c}");
            assert_ne!(classify(a), ExitKind::Other);
        }
        assert_eq!(counter("kvm_exit(IOIO)"), Some(Counter::Kind(ExitKind::Io)));
        assert_eq!(counter("exits"), Some(Counter::Total));
        assert_eq!(counter("halt_poll_fail_ns"), None);
    }

    #[test]
    fn ports_are_named() {
        assert!(is_timer_port("0x70:POUT"));
        assert!(is_timer_port("0x608:PIN"));
        assert!(!is_timer_port("0xc090:POUT"));
        assert!(port_hint("0xc090:POUT").is_some_and(|h| h.contains("BAR")));
        assert_eq!(port_hint("nonsense"), None);
    }
}

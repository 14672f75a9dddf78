//! Exit reasons by kind, whatever named them: `perf kvm stat` (VMX names such as
//! `IO_INSTRUCTION`, SVM names such as `io`, arm64 exception classes such as `DABT_LOW`,
//! RISC-V `EXC_*`/`IRQ_*` causes, s390 intercept codes, powerpc book3s interrupt vectors,
//! LoongArch exception names), `kvm_stat` (`kvm_exit(IOIO)`, tracepoints such as
//! `kvm_userspace_exit`, debugfs counters such as `io_exits`) and the kernel's binary
//! statistics that libvirt and QMP return. The tables and their sources: docs/exit-kinds.md.
//! An [`ExitProfile`] is the common input of the diagnosis rules.
//!
//! MSR indexes, I/O ports and MMIO addresses of perf's msr, ioport and mmio tables are named
//! by [`msr_name`], [`port_hint`] and [`mmio_hint`].

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
    /// Hypercalls (`VMCALL`, `hypercall`, `VMMCALL`, arm64 `HVC64`, RISC-V SBI calls).
    Hypercall,
    /// Exits KVM hands to the VMM in user space (`kvm_userspace_exit`): device emulation in
    /// QEMU, each a round trip through the ioctl.
    Userspace,
    /// Guest exceptions intercepted (`EXCEPTION_NMI`, SVM `excp` rows, `TRIPLE_FAULT`,
    /// `pf_guest`): with EPT/NPT they are rare; many of them mean shadow paging or a guest
    /// faulting in a loop.
    Exception,
    /// Guest TLB and paging-control operations KVM must shadow (`INVLPG`, `CR_ACCESS`, SVM
    /// `read_cr3`/`write_cr3`, `invlpg`): shadow paging (EPT/NPT off, or a nested guest).
    ShadowMmu,
    /// arm64 and RISC-V guest aborts and guest page faults taken to the hypervisor
    /// (`DABT_LOW`, `IABT_LOW`, `EXC_LOAD_GUEST_PAGE_FAULT`, powerpc `H_DATA_STORAGE`,
    /// LoongArch `Mem Read`): MMIO emulation or stage-2 faults.
    DataAbort,
    /// arm64 `WFx` (WFI: the vCPU idles; WFE: it spins on a lock).
    Wfx,
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
            ExitKind::Userspace => "exit to user space (QEMU)",
            ExitKind::Exception => "guest exception",
            ExitKind::ShadowMmu => "shadow paging (INVLPG, CR access)",
            ExitKind::DataAbort => "data/instruction abort (MMIO or stage-2 fault)",
            ExitKind::Wfx => "WFI/WFE",
            ExitKind::Other => "other",
        }
    }
}

/// The kind of an exit reason as perf or kvm_stat names it, on any architecture perf kvm
/// stat supports (docs/exit-kinds.md lists the names and where they come from).
pub fn classify(reason: &str) -> ExitKind {
    x86(reason)
        .or_else(|| arm64(reason))
        .or_else(|| riscv(reason))
        .or_else(|| s390(reason))
        .or_else(|| powerpc(reason))
        .or_else(|| loongarch(reason))
        .unwrap_or(ExitKind::Other)
}

/// VMX names (perf and kvm_stat) and SVM names (perf prints `io`, kvm_stat `IOIO`).
fn x86(reason: &str) -> Option<ExitKind> {
    Some(match reason {
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
        "EXCEPTION_NMI" | "TRIPLE_FAULT" | "EXCP_BASE" | "shutdown" | "SHUTDOWN" => {
            ExitKind::Exception
        }
        "INVLPG" | "invlpg" | "INVLPGA" | "invlpga" | "CR_ACCESS" | "INVPCID" | "invpcid"
        | "read_cr0" | "read_cr3" | "read_cr4" | "write_cr0" | "write_cr3" | "write_cr4"
        | "READ_CR0" | "READ_CR3" | "READ_CR4" | "WRITE_CR0" | "WRITE_CR3" | "WRITE_CR4"
        | "cr0_sel_write" | "CR0_SEL_WRITE" | "write_cr0_trap" | "write_cr4_trap" => {
            ExitKind::ShadowMmu
        }
        // perf's SVM exception rows: `DE excp`, `PF excp`, ...
        r if r.ends_with(" excp") => ExitKind::Exception,
        _ => return None,
    })
}

/// arm64: the `kvm_exit` exception types (`IRQ`, `TRAP`, ...) and the ESR exception classes
/// of perf's trap table (`DABT_LOW`, `WFx`, `HVC64`, `SYS64`, ...).
fn arm64(reason: &str) -> Option<ExitKind> {
    Some(match reason {
        // old kvm_stat spellings of the same classes: `DABT`, `IABT`, `WFI`, `HVC`, `SYS`
        "DABT_LOW" | "IABT_LOW" | "DABT" | "IABT" => ExitKind::DataAbort,
        "WFx" | "WFI" | "WFE" => ExitKind::Wfx,
        "HVC64" | "HVC32" | "SMC64" | "SMC32" | "HVC" | "SMC" => ExitKind::Hypercall,
        "IRQ" | "EL2_IRQ" => ExitKind::ExternalInterrupt,
        // system-register and coprocessor traps: emulated by KVM one by one
        "SYS64" | "SYS" | "CP15_32" | "CP15_64" | "CP14_MR" | "CP14_LS" | "CP14_64" | "CP10_ID" => {
            ExitKind::Emulation
        }
        "SERROR" | "EL1_SERROR" | "DABT_CUR" | "IABT_CUR" | "DABT_HYP" | "IABT_HYP" | "ILL_ISS"
        | "PC_ALIGN" | "SP_ALIGN" => ExitKind::Exception,
        _ => return None,
    })
}

/// RISC-V: `scause` names, exceptions `EXC_*` and interrupts `IRQ_*`; perf prints the
/// exceptions without the `EXC_` prefix (`STORE_GUEST_PAGE_FAULT`).
fn riscv(reason: &str) -> Option<ExitKind> {
    let prefixed = reason.starts_with("EXC_");
    let name = reason.strip_prefix("EXC_").unwrap_or(reason);
    Some(match name {
        "LOAD_GUEST_PAGE_FAULT" | "STORE_GUEST_PAGE_FAULT" | "INST_GUEST_PAGE_FAULT" => {
            ExitKind::DataAbort
        }
        "SUPERVISOR_SYSCALL" | "VIRTUAL_SUPERVISOR_SYSCALL" | "HYPERVISOR_SYSCALL" => {
            ExitKind::Hypercall
        }
        // WFI, CSR accesses and other instructions the hypervisor emulates
        "VIRTUAL_INST_FAULT" | "INST_ILLEGAL" => ExitKind::Emulation,
        "INST_MISALIGNED" | "INST_ACCESS" | "BREAKPOINT" | "LOAD_MISALIGNED" | "LOAD_ACCESS"
        | "STORE_MISALIGNED" | "STORE_ACCESS" | "USER_ECALL" | "INST_PAGE_FAULT"
        | "LOAD_PAGE_FAULT" | "STORE_PAGE_FAULT" => ExitKind::Exception,
        _ if prefixed => ExitKind::Exception,
        r if r.starts_with("IRQ_") => ExitKind::ExternalInterrupt,
        _ => return None,
    })
}

/// s390: SIE intercept codes as perf names them.
fn s390(reason: &str) -> Option<ExitKind> {
    Some(match reason {
        "Host interruption" | "External interruption" | "External request" => {
            ExitKind::ExternalInterrupt
        }
        "I/O request" | "I/O interruption" => ExitKind::Io,
        "Wait state" => ExitKind::Halt,
        "Instruction" | "Partial-execution" | "Instruction and program interruption" => {
            ExitKind::Emulation
        }
        "Program interruption" => ExitKind::Exception,
        "DIAG" | "DIAGNOSE" => ExitKind::Hypercall,
        _ => return None,
    })
}

/// powerpc book3s HV: interrupt vectors as perf names them.
fn powerpc(reason: &str) -> Option<ExitKind> {
    Some(match reason {
        "H_DATA_STORAGE" | "H_INST_STORAGE" | "DATA_STORAGE" | "INST_STORAGE" => {
            ExitKind::DataAbort
        }
        "EXTERNAL" | "HV_DECREMENTER" | "DECREMENTER" | "H_DOORBELL" | "DOORBELL" | "H_VIRT" => {
            ExitKind::ExternalInterrupt
        }
        "SYSCALL" => ExitKind::Hypercall,
        "H_EMUL_ASSIST" | "H_FAC_UNAVAIL" => ExitKind::Emulation,
        "H_CEDE" => ExitKind::Halt,
        _ => return None,
    })
}

/// LoongArch: exception names as perf names them.
fn loongarch(reason: &str) -> Option<ExitKind> {
    Some(match reason {
        "Interrupt" => ExitKind::ExternalInterrupt,
        "Mem Read" | "Mem Store" | "Inst Fetch" | "Mem Modify" => ExitKind::DataAbort,
        "Hypercall" => ExitKind::Hypercall,
        "Idle" => ExitKind::Halt,
        "IOCSR" | "CSR" | "CPUCFG" => ExitKind::Emulation,
        _ => return None,
    })
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
    // `kvm_userspace_exit(MMIO)`: the reason a tracepoint row is broken down by
    if let Some(base) = name.split_once('(').map(|(b, _)| b)
        && base == "kvm_userspace_exit"
    {
        return Some(Counter::Kind(ExitKind::Userspace));
    }
    Some(match name {
        // every exit is followed by an entry: `kvm_entry` stands in when `kvm_exit` is
        // filtered out
        "kvm_exit" | "exits" | "kvm_entry" => Counter::Total,
        "kvm_userspace_exit" => Counter::Kind(ExitKind::Userspace),
        "io_exits" | "kvm_pio" => Counter::Kind(ExitKind::Io),
        "mmio_exits" | "kvm_mmio" => Counter::Kind(ExitKind::Mmio),
        "kvm_msr" => Counter::Kind(ExitKind::Msr),
        "kvm_apic" => Counter::Kind(ExitKind::Apic),
        "halt_exits" => Counter::Kind(ExitKind::Halt),
        "irq_exits" => Counter::Kind(ExitKind::ExternalInterrupt),
        "irq_window_exits" | "nmi_window_exits" => Counter::Kind(ExitKind::InterruptWindow),
        "insn_emulation" | "kvm_emulate_insn" => Counter::Kind(ExitKind::Emulation),
        "pf_fixed" | "kvm_page_fault" => Counter::Kind(ExitKind::PageFault),
        "pf_guest" => Counter::Kind(ExitKind::Exception),
        "invlpg" | "kvm_invlpga" => Counter::Kind(ExitKind::ShadowMmu),
        "kvm_cr" => Counter::Kind(ExitKind::ShadowMmu),
        "hypercalls" | "kvm_hypercall" | "kvm_hv_hypercall" => Counter::Kind(ExitKind::Hypercall),
        "directed_yield_attempted" => Counter::Kind(ExitKind::Pause),
        "kvm_wfx_arm64" => Counter::Kind(ExitKind::Wfx),
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
    /// kvm_stat tracepoints that are not exits but tell what the exits do
    /// (`kvm_hv_timer_state`, `kvm_apic_ipi`, `kvm_vcpu_wakeup`, `kvm_inj_virq`, ...).
    pub events: BTreeMap<String, f64>,
    /// The domain's virtualization type when known (`kvm`, or `qemu` for TCG), live only.
    pub virt_type: Option<String>,
    /// Kinds counted from kvm_stat tracepoints other than `kvm_exit(X)` (`kvm_msr`,
    /// `kvm_apic`, `kvm_mmio`, `kvm_userspace_exit`): they may count one exit twice.
    #[serde(skip)]
    pub event_kinds: std::collections::BTreeSet<ExitKind>,
}

impl ExitProfile {
    pub fn kind(&self, k: ExitKind) -> f64 {
        self.kinds.get(&k).copied().unwrap_or(0.0)
    }
    pub fn event(&self, name: &str) -> f64 {
        self.events.get(name).copied().unwrap_or(0.0)
    }
    /// Exits of several kinds together. Where kvm_stat events count one exit twice
    /// (`kvm_msr` and `kvm_apic` both trace an x2APIC write; `kvm_mmio` or `kvm_pio` and
    /// `kvm_userspace_exit` one access that goes on to QEMU), the larger of the overlapping
    /// counts stands for them, not their sum.
    pub fn kinds_sum(&self, kinds: &[ExitKind]) -> f64 {
        use ExitKind::*;
        let has = |k: ExitKind| kinds.contains(&k);
        let ev = |k: ExitKind| has(k) && self.event_kinds.contains(&k);
        let mut done: Vec<ExitKind> = Vec::new();
        let mut total = 0.0;
        if has(Msr) && has(Apic) && (ev(Msr) || ev(Apic)) {
            total += self.kind(Msr).max(self.kind(Apic));
            done.extend([Msr, Apic]);
        }
        if ev(Userspace) && ((ev(Io) && has(Io)) || (ev(Mmio) && has(Mmio))) {
            let inner: f64 = [Io, Mmio]
                .into_iter()
                .filter(|k| ev(*k))
                .map(|k| self.kind(k))
                .sum();
            total += inner.max(self.kind(Userspace));
            done.push(Userspace);
            done.extend([Io, Mmio].into_iter().filter(|k| ev(*k)));
        }
        total
            + kinds
                .iter()
                .filter(|k| !done.contains(k))
                .map(|k| self.kind(*k))
                .sum::<f64>()
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
    let mut entries: f64 = 0.0;
    for r in &b.rows {
        let v = value(r);
        match counter(&r.name) {
            Some(Counter::Total) if r.name == "kvm_entry" => entries = entries.max(v),
            Some(Counter::Total) => p.total = p.total.max(v),
            Some(Counter::Kind(k)) if r.name.starts_with("kvm_exit(") => {
                *by_reason.entry(k).or_default() += v;
                top.insert(r.name.clone(), v);
            }
            Some(Counter::Kind(k)) => {
                let e: &mut f64 = events.entry(k).or_default();
                if r.name.contains('(') {
                    // `kvm_userspace_exit(MMIO)`: a breakdown of its parent row
                    p.events.insert(r.name.clone(), v);
                } else {
                    *e = e.max(v);
                }
            }
            None => {
                if r.name.starts_with("kvm_") && !r.name.contains('(') {
                    p.events.insert(r.name.clone(), v);
                }
            }
        }
    }
    if p.total == 0.0 {
        p.total = entries;
    }
    // exit reasons (kvm_exit(X) rows) are exact; other events fill in kinds they lack
    p.kinds = by_reason;
    for (k, v) in events {
        if let std::collections::btree_map::Entry::Vacant(e) = p.kinds.entry(k) {
            e.insert(v);
            p.event_kinds.insert(k);
        }
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

/// What a port key points at (`0x70:POUT` -> the RTC). ACPI PM is board-specific: only the
/// PM blocks of QEMU's Q35 (0x600) and i440fx/PIIX4 (0xb000) defaults are named.
// specific registers first, then the block they belong to
#[allow(clippy::match_overlapping_arm)]
pub fn port_hint(key: &str) -> Option<&'static str> {
    let port = key.split(':').next()?.trim_start_matches("0x");
    let port = u32::from_str_radix(port, 16).ok()?;
    Some(match port {
        0x20 | 0x21 | 0xa0 | 0xa1 => "PIC (i8259 interrupt controller)",
        0x40..=0x43 => "PIT (i8254 timer)",
        0x61 => "PC speaker / PIT gate",
        0x60 | 0x64 => "PS/2 keyboard controller (i8042)",
        0x70 | 0x71 => "RTC (CMOS clock)",
        0x80 => "POST diagnostic port (Linux io_delay)",
        0x92 => "system control port A (A20)",
        0x402 => "ISA debug console",
        0x510 | 0x511 => "QEMU fw_cfg",
        0x608 => "ACPI PM timer (board-specific: the Q35 default block 0x600)",
        0x600..=0x67f => "ACPI PM (board-specific: the Q35 default block 0x600)",
        0xb008 => "ACPI PM timer (board-specific: the i440fx default block 0xb000)",
        0xb000..=0xb03f => "ACPI PM (board-specific: the i440fx default block 0xb000)",
        0xcf9 => "reset control register",
        0xcf8..=0xcff => "PCI configuration space",
        0x1f0..=0x1f7 | 0x170..=0x177 | 0x3f6 | 0x376 => "IDE disk controller",
        0x3f8..=0x3ff | 0x2f8..=0x2ff => "serial port",
        0x1ce..=0x1d0 | 0x3c0..=0x3df => "VGA",
        0x5658 => "VMware backdoor (vmport)",
        _ if port >= 0xc000 => "a PCI device's I/O BAR (an emulated NIC, disk or USB controller)",
        _ => return None,
    })
}

/// Whether a port belongs to a timer (the clock rules' business).
pub fn is_timer_port(key: &str) -> bool {
    port_hint(key).is_some_and(|h| {
        h.starts_with("PIT")
            || h.starts_with("RTC")
            || h.starts_with("ACPI PM timer")
            || h.starts_with("PC speaker")
    })
}

/// What an MSR access does, for the timer and IPI rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MsrRole {
    /// Programs a timer (TSC deadline, the x2APIC timer, Hyper-V synthetic timers).
    Timer,
    /// Reads a clock (Hyper-V TIME_REF_COUNT, the APIC timer's current count, the HPET main
    /// counter): not timer programming.
    ClockRead,
    /// Sends an IPI (x2APIC ICR and self-IPI, Hyper-V ICR).
    Ipi,
    /// Ends an interrupt (x2APIC EOI, Hyper-V EOI and EOM).
    Eoi,
    /// Performance counters (Intel and AMD PMU).
    Pmu,
    Other,
}

/// The name and role of an MSR index (Intel SDM Vol. 4, AMD APM Vol. 2, Hyper-V TLFS,
/// Linux arch/x86/include/asm/msr-index.h and uapi/asm/kvm_para.h).
// specific registers first, then the block they belong to
#[allow(clippy::match_overlapping_arm)]
pub fn msr_name(index: u64) -> Option<(&'static str, MsrRole)> {
    use MsrRole::*;
    Some(match index {
        0x10 => ("IA32_TIME_STAMP_COUNTER", Other),
        0x11 => ("KVM wall clock (old)", Other),
        0x12 => ("KVM system time (old kvmclock)", Other),
        0x1b => ("IA32_APIC_BASE", Other),
        0x3a => ("IA32_FEATURE_CONTROL", Other),
        0x3b => ("IA32_TSC_ADJUST", Other),
        0x48 => ("IA32_SPEC_CTRL", Other),
        0x49 => ("IA32_PRED_CMD", Other),
        0xc1..=0xc8 => ("IA32_PMCx (PMU counter)", Pmu),
        0xe7 => ("IA32_MPERF", Other),
        0xe8 => ("IA32_APERF", Other),
        0x174..=0x176 => ("IA32_SYSENTER_*", Other),
        0x186..=0x18d => ("IA32_PERFEVTSELx (PMU event select)", Pmu),
        0x1a0 => ("IA32_MISC_ENABLE", Other),
        0x1d9 => ("IA32_DEBUGCTL", Other),
        0x277 => ("IA32_PAT", Other),
        0x309..=0x30b => ("IA32_FIXED_CTRx (PMU fixed counter)", Pmu),
        0x345 => ("IA32_PERF_CAPABILITIES", Pmu),
        0x38d => ("IA32_FIXED_CTR_CTRL (PMU)", Pmu),
        0x38e => ("IA32_PERF_GLOBAL_STATUS (PMU)", Pmu),
        0x38f => ("IA32_PERF_GLOBAL_CTRL (PMU)", Pmu),
        0x390 => ("IA32_PERF_GLOBAL_OVF_CTRL (PMU)", Pmu),
        0x6e0 => ("IA32_TSC_DEADLINE (LAPIC timer)", Timer),
        0x802 => ("x2APIC ID", Other),
        0x803 => ("x2APIC version", Other),
        0x808 => ("x2APIC TPR", Other),
        0x80b => ("x2APIC EOI", Eoi),
        0x80d => ("x2APIC LDR", Other),
        0x80f => ("x2APIC SVR", Other),
        0x828 => ("x2APIC ESR", Other),
        0x830 => ("x2APIC ICR (sends an IPI)", Ipi),
        0x832 => ("x2APIC LVT timer", Timer),
        0x838 => ("x2APIC timer initial count", Timer),
        0x839 => ("x2APIC timer current count", ClockRead),
        0x83e => ("x2APIC timer divide configuration", Timer),
        0x83f => ("x2APIC self IPI", Ipi),
        0x800..=0x8ff => ("an x2APIC register", Other),
        0x4000_0000 => ("Hyper-V GUEST_OS_ID", Other),
        0x4000_0001 => ("Hyper-V HYPERCALL", Other),
        0x4000_0002 => ("Hyper-V VP_INDEX", Other),
        0x4000_0003 => ("Hyper-V RESET", Other),
        0x4000_0010 => ("Hyper-V VP_RUNTIME", Other),
        0x4000_0020 => ("Hyper-V TIME_REF_COUNT (reference counter)", ClockRead),
        0x4000_0021 => ("Hyper-V REFERENCE_TSC", Other),
        0x4000_0022 => ("Hyper-V TSC_FREQUENCY", Other),
        0x4000_0023 => ("Hyper-V APIC_FREQUENCY", Other),
        0x4000_0070 => ("Hyper-V EOI (vapic)", Eoi),
        0x4000_0071 => ("Hyper-V ICR (vapic, sends an IPI)", Ipi),
        0x4000_0072 => ("Hyper-V TPR (vapic)", Other),
        0x4000_0073 => ("Hyper-V VP_ASSIST_PAGE", Other),
        0x4000_0080 => ("Hyper-V SCONTROL (synic)", Other),
        0x4000_0081 => ("Hyper-V SVERSION (synic)", Other),
        0x4000_0082 => ("Hyper-V SIEFP (synic)", Other),
        0x4000_0083 => ("Hyper-V SIMP (synic)", Other),
        0x4000_0084 => ("Hyper-V EOM (synic end of message)", Eoi),
        0x4000_0090..=0x4000_009f => ("Hyper-V SINTx (synic interrupt source)", Other),
        0x4000_00b0 | 0x4000_00b2 | 0x4000_00b4 | 0x4000_00b6 => {
            ("Hyper-V STIMERx_CONFIG (synthetic timer)", Timer)
        }
        0x4000_00b1 | 0x4000_00b3 | 0x4000_00b5 | 0x4000_00b7 => {
            ("Hyper-V STIMERx_COUNT (synthetic timer)", Timer)
        }
        0x4000_0100..=0x4000_0105 => ("Hyper-V CRASH_Px/CRASH_CTL", Other),
        0x4000_0106 => ("Hyper-V REENLIGHTENMENT_CONTROL", Other),
        0x4000_0107 => ("Hyper-V TSC_EMULATION_CONTROL", Other),
        0x4000_0108 => ("Hyper-V TSC_EMULATION_STATUS", Other),
        0x4000_0000..=0x4000_0fff => ("a Hyper-V synthetic MSR", Other),
        0x4b56_4d00 => ("KVM wall clock", Other),
        0x4b56_4d01 => ("KVM system time (kvmclock)", Other),
        0x4b56_4d02 => ("KVM async page fault", Other),
        0x4b56_4d03 => ("KVM steal time", Other),
        0x4b56_4d04 => ("KVM PV EOI", Eoi),
        0x4b56_4d05 => ("KVM poll control", Other),
        0x4b56_4d06 => ("KVM async PF interrupt", Other),
        0x4b56_4d07 => ("KVM async PF ack", Other),
        0xc000_0080 => ("EFER", Other),
        0xc000_0081..=0xc000_0084 => ("STAR/LSTAR/CSTAR/SFMASK (syscall)", Other),
        0xc000_0100 => ("FS_BASE", Other),
        0xc000_0101 => ("GS_BASE", Other),
        0xc000_0102 => ("KERNEL_GS_BASE", Other),
        0xc000_0103 => ("TSC_AUX", Other),
        0xc001_0000..=0xc001_0007 => ("AMD PERF_CTL/PERF_CTR (PMU)", Pmu),
        0xc001_0200..=0xc001_020b => ("AMD PERF_CTL/PERF_CTR (PMU)", Pmu),
        0xc001_0300..=0xc001_0302 => ("AMD PERF_CNTR_GLOBAL (PMU)", Pmu),
        _ => return None,
    })
}

/// The role of an msr-table key (`0x6e0:W`).
pub fn msr_role(key: &str) -> MsrRole {
    crate::perf::split_key(key)
        .and_then(|(i, a)| msr_name(i).map(|(_, r)| access_role(r, a)))
        .unwrap_or(MsrRole::Other)
}

/// A register's role for one access: only writes program a timer, only reads read a clock
/// (`R`/`W` as perf's msr and mmio tables print them; other access names keep the role).
pub fn access_role(role: MsrRole, access: &str) -> MsrRole {
    let read = access.eq_ignore_ascii_case("r") || access.eq_ignore_ascii_case("rd");
    let write = access.eq_ignore_ascii_case("w") || access.eq_ignore_ascii_case("wr");
    match role {
        MsrRole::Timer if read => MsrRole::Other,
        MsrRole::ClockRead if write => MsrRole::Other,
        r => r,
    }
}

/// The role of an mmio-table key (`0xfee00380:W`).
pub fn mmio_role(key: &str) -> MsrRole {
    match (mmio_hint(key), crate::perf::split_key(key)) {
        (Some((_, r)), Some((_, a))) => access_role(r, a),
        _ => MsrRole::Other,
    }
}

/// What an MMIO key points at (`0xfee00380:W` -> the xAPIC timer initial count), and its
/// role for the timer and IPI rules.
// specific registers first, then the block they belong to
#[allow(clippy::match_overlapping_arm)]
pub fn mmio_hint(key: &str) -> Option<(&'static str, MsrRole)> {
    let (addr, _) = crate::perf::split_key(key)?;
    use MsrRole::*;
    Some(match addr {
        0xfee0_0080 => ("xAPIC TPR", Other),
        0xfee0_00b0 => ("xAPIC EOI", Eoi),
        0xfee0_0300 | 0xfee0_0310 => ("xAPIC ICR (sends an IPI)", Ipi),
        0xfee0_0320 => ("xAPIC LVT timer", Timer),
        0xfee0_0380 => ("xAPIC timer initial count", Timer),
        0xfee0_0390 => ("xAPIC timer current count", ClockRead),
        0xfee0_03e0 => ("xAPIC timer divide configuration", Timer),
        0xfee0_0000..=0xfee0_0fff => ("the local APIC (xAPIC)", Other),
        0xfec0_0000..=0xfec0_0fff => ("the IOAPIC", Other),
        0xfed0_00f0..=0xfed0_00f7 => ("the HPET main counter", ClockRead),
        0xfed0_0000..=0xfed0_03ff => ("the HPET", Timer),
        0xa_0000..=0xb_ffff => ("the VGA window", Other),
        _ => (
            "an emulated device's MMIO region (a PCI BAR or a platform device)",
            Other,
        ),
    })
}

/// The name of a key of perf's ioport, mmio or msr table.
pub fn key_hint(table: TableKind, key: &str) -> Option<String> {
    match table {
        TableKind::Ioport => port_hint(key).map(str::to_string),
        TableKind::Mmio => mmio_hint(key).map(|(n, _)| n.to_string()),
        TableKind::Msr => crate::perf::split_key(key)
            .and_then(|(i, _)| msr_name(i))
            .map(|(n, _)| n.to_string()),
        TableKind::Vmexit => None,
    }
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
    fn only_writes_program_timers_and_reads_of_clocks_are_clock_reads() {
        assert_eq!(msr_role("0x6e0:W"), MsrRole::Timer);
        assert_eq!(msr_role("0x6e0:R"), MsrRole::Other);
        assert_eq!(msr_role("0x40000020:R"), MsrRole::ClockRead);
        assert_eq!(msr_role("0x839:R"), MsrRole::ClockRead);
        assert_eq!(mmio_role("0xfee00390:R"), MsrRole::ClockRead);
        assert_eq!(mmio_role("0xfee00380:W"), MsrRole::Timer);
        assert_eq!(mmio_role("0xfee00380:R"), MsrRole::Other);
        assert_eq!(mmio_role("0xfed000f0:R"), MsrRole::ClockRead);
        assert_eq!(mmio_role("0xfed00100:W"), MsrRole::Timer);
    }

    #[test]
    fn riscv_names_without_prefix_and_old_arm64_spellings_have_kinds() {
        for (name, kind) in [
            ("STORE_GUEST_PAGE_FAULT", ExitKind::DataAbort),
            ("LOAD_GUEST_PAGE_FAULT", ExitKind::DataAbort),
            ("INST_GUEST_PAGE_FAULT", ExitKind::DataAbort),
            ("VIRTUAL_INST_FAULT", ExitKind::Emulation),
            ("SUPERVISOR_SYSCALL", ExitKind::Hypercall),
            ("HYPERVISOR_SYSCALL", ExitKind::Hypercall),
            ("LOAD_ACCESS", ExitKind::Exception),
            ("EXC_STORE_GUEST_PAGE_FAULT", ExitKind::DataAbort),
            ("WFI", ExitKind::Wfx),
            ("IABT", ExitKind::DataAbort),
            ("DABT", ExitKind::DataAbort),
            ("DABT_HYP", ExitKind::Exception),
            ("ILL_ISS", ExitKind::Exception),
            ("HVC", ExitKind::Hypercall),
            ("SYS", ExitKind::Emulation),
        ] {
            assert_eq!(classify(name), kind, "{name}");
        }
        // near misses: unknown names stay Other, not guessed
        assert_eq!(classify("GUEST_PAGE_FAULT"), ExitKind::Other);
        assert_eq!(classify("DABTX"), ExitKind::Other);
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

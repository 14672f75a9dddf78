//! The diagnosis rules of RULES.md ("Diagnosis"): from an [`ExitProfile`] to named causes,
//! each with the numbers behind it, the fix and the audit rules that check the fix.
//!
//! [`RULES`] defines each diagnosis once (title, severity, cause, fix, public sources, audit
//! rules); [`diagnose`] decides which apply and adds what was seen.
//!
//! Thresholds are in [`Limits`]. A rule on exit shares needs both a share of all exits and
//! an absolute level: a rate when the source gives one (live statistics, kvm_stat), or a
//! sample count when it does not (a perf report covers an unknown time).

use serde::Serialize;

use crate::exits::{ExitKind, ExitProfile, MsrRole, is_timer_port, key_hint, mmio_role, msr_role};
use crate::perf::TableKind;

pub use kvmtune_profile::Severity;

/// One diagnosis: what it is called, why it happens, the generic fix, where that is
/// documented and the audit rules that check the fix in the domain XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiagnosisRule {
    /// The RULES.md diagnosis id (`exit-io-storm`, ...).
    pub id: &'static str,
    pub title: &'static str,
    /// The severity of a diagnosis of this rule.
    pub severity: Severity,
    /// The likely cause.
    pub why: &'static str,
    pub fix: &'static str,
    /// Public sources: documentation, books, bug reports.
    pub source: &'static str,
    /// Audit rules that check the fix in the domain XML (`kvmtune explain ID`).
    pub audit_rules: &'static [&'static str],
}

const EXIT_IO_STORM: DiagnosisRule = DiagnosisRule {
    id: "exit-io-storm",
    title: "I/O exit storm",
    severity: Severity::Warn,
    why: "the guest programs a legacy timer (PIT, RTC, ACPI PM timer) or polls a \
          legacy or emulated device through port I/O, each access a full exit to QEMU",
    fix: "without the ioport table the cause is one of two: a legacy timer (for Windows, \
          <timer name='hypervclock' present='yes'/> with the synic and stimer \
          enlightenments, rtc tickpolicy='catchup', pit tickpolicy='delay'; in one field \
          report hpet present='yes' cut a 130% idle CPU to 7% on an old QEMU) or an emulated \
          device with an I/O BAR (virtio disks and NICs instead, remove idle USB tablets and \
          legacy devices); record `perf kvm stat record` and report --event=ioport to tell \
          them apart before changing the domain",
    source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst); \
             virt-manager#205; OpenNebula addon-storpool#79 (30-40% idle CPU to 1-3%); kcli#489 \
             (13% to 1%); libvirt domain format (disk target bus, interface model)",
    audit_rules: &[
        "clock-windows",
        "hyperv-enlightenments",
        "disk-bus",
        "net-model",
        "dev-usb-idle",
        "dev-legacy",
    ],
};

/// exit-io-storm when timer ports are most of the named port exits.
const IO_CLOCK_FIX: &str = "give the guest a paravirtual clock: for Windows, <timer \
     name='hypervclock' present='yes'/> with the synic and stimer enlightenments, rtc \
     tickpolicy='catchup', pit tickpolicy='delay' (in one field report hpet present='yes' cut \
     a 130% idle CPU to 7% on an old QEMU); remove idle USB tablets and legacy devices; \
     `kvmtune apply DOMAIN --rule clock-windows` makes the change";
const IO_CLOCK_RULES: &[&str] = &[
    "clock-windows",
    "hyperv-enlightenments",
    "dev-usb-idle",
    "dev-legacy",
];
/// exit-io-storm when devices (PCI I/O BARs, IDE, serial, ...) take most named port exits.
const IO_DEVICE_FIX: &str = "the busiest ports belong to an emulated device, not a clock: \
     use virtio devices (virtio-blk or virtio-scsi disks, virtio-net; modern virtio-pci, \
     which notifies through MMIO with ioeventfd instead of an I/O BAR), remove idle USB \
     controllers and tablets and legacy devices; the audit rules disk-bus and net-model name \
     the emulated disks and NICs";
const IO_DEVICE_RULES: &[&str] = &[
    "disk-bus",
    "net-model",
    "dev-usb-idle",
    "dev-legacy",
    "dev-tablet",
];

const EXIT_MSR_STORM: DiagnosisRule = DiagnosisRule {
    id: "exit-msr-storm",
    title: "MSR/APIC exit storm",
    severity: Severity::Warn,
    why: "timer programming (TSC deadline MSR 0x6e0, APIC timer 0xfee00380/x2APIC \
          0x838) or IPIs (x2APIC ICR 0x830) trapping on every access; a Windows guest \
          without synthetic timers, or a guest clock source looping",
    fix: "Windows: enable the Hyper-V enlightenments synic, stimer (with direct mode), \
          vapic, ipi and tlbflush as the host supports them; Linux: keep kvmclock and \
          check the guest's clocksource",
    source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst); Intel SDM \
             Vol. 3, APIC chapter (x2APIC MSRs, IA32_TSC_DEADLINE); virt-manager#205",
    audit_rules: &["hyperv-enlightenments", "clock-windows", "clock-linux"],
};

const EXIT_HLT_POLL: DiagnosisRule = DiagnosisRule {
    id: "exit-hlt-poll",
    title: "halt polling burns host CPU",
    severity: Severity::Warn,
    why: "the guest wakes and halts many times a second and KVM polls before \
          sleeping each time (halt_poll_ns), or the guest idles with idle=poll",
    fix: "lower kvm's halt_poll_ns (module parameter) or the per-VM \
          halt-poll limit on hosts that are not latency-critical; on Windows guests \
          give the timer enlightenments so the guest wakes less",
    source: "Linux kernel documentation, Documentation/virt/kvm/halt-polling.rst",
    audit_rules: &["host-halt-poll", "hyperv-enlightenments"],
};

const EXIT_EPT: DiagnosisRule = DiagnosisRule {
    id: "exit-ept",
    title: "many EPT/NPF faults",
    severity: Severity::Warn,
    why: "guest memory backed by 4 KiB pages, or memory that keeps being faulted in \
          (ballooning, KSM, THP splitting, a guest touching fresh memory)",
    fix: "back the guest with hugepages (<memoryBacking><hugepages/>) or make sure THP \
          covers it; lock memory for latency-critical guests",
    source: "Linux kernel documentation, Documentation/admin-guide/mm/hugetlbpage.rst and \
             Documentation/admin-guide/mm/transhuge.rst; libvirt domain format (memoryBacking)",
    audit_rules: &["mem-hugepages", "host-thp", "host-hugepages-pool"],
};

const EXIT_PAUSE: DiagnosisRule = DiagnosisRule {
    id: "exit-pause",
    title: "vCPUs spin on locks",
    severity: Severity::Warn,
    why: "a vCPU spins on a lock whose holder's vCPU is not running: vCPU \
          overcommit or vCPUs sharing host CPUs",
    fix: "reduce vCPU overcommit, pin vCPUs to dedicated host CPUs (`kvmtune plan`)",
    source: "Intel SDM Vol. 3, PAUSE-loop exiting; libvirt domain format (cputune vcpupin)",
    audit_rules: &["host-overcommit", "numa-unbound"],
};

const EXIT_EXTINT: DiagnosisRule = DiagnosisRule {
    id: "exit-extint",
    title: "host interrupts hit vCPU CPUs",
    severity: Severity::Warn,
    why: "host device interrupts, timers or IPIs are delivered to the CPUs the vCPUs \
          run on",
    fix: "isolate the vCPUs' CPUs (isolcpus/nohz_full), move IRQ affinity away from \
          them, pin vCPUs (`kvmtune plan`)",
    source: "Linux kernel documentation, Documentation/admin-guide/kernel-parameters.txt \
             (isolcpus, nohz_full) and Documentation/core-api/irq/irq-affinity.rst",
    audit_rules: &["host-isolcpus", "host-isolcpus-pinning"],
};

const EXIT_MMIO_EMUL: DiagnosisRule = DiagnosisRule {
    id: "exit-mmio-emul",
    title: "emulated device or instruction emulation",
    severity: Severity::Warn,
    why: "an emulated (non-virtio) disk or NIC, VGA, or guest code KVM must emulate \
          instruction by instruction (real mode, no unrestricted guest)",
    fix: "use virtio disks (bus='virtio' or virtio-scsi) and virtio-net; check the \
          guest's mode and the host's CPU virtualization features",
    source: "libvirt domain format (disk target bus, interface model); OASIS Virtual I/O Device \
             (VIRTIO) specification",
    audit_rules: &["disk-bus", "net-model", "dev-legacy"],
};

const EXIT_USERSPACE: DiagnosisRule = DiagnosisRule {
    id: "exit-userspace-storm",
    title: "exits to QEMU (device emulation in user space)",
    severity: Severity::Warn,
    why: "every access of the guest to an emulated device's MMIO or I/O port leaves the \
          kernel for QEMU and back: an emulated disk, NIC, USB controller, VGA or a device \
          the guest polls",
    fix: "use virtio devices (virtio-blk/virtio-scsi disks, virtio-net with vhost), remove \
          idle USB tablets and legacy devices; the MMIO and ioport tables of `perf kvm stat \
          report --event=mmio|ioport` name the device",
    source: "QEMU documentation, \"Device emulation\" (docs/system/device-emulation.rst); \
             Linux kernel documentation, Documentation/virt/kvm/api.rst (KVM_RUN exit reasons \
             KVM_EXIT_MMIO, KVM_EXIT_IO); OASIS VIRTIO specification",
    audit_rules: &[
        "disk-bus",
        "net-model",
        "dev-legacy",
        "dev-usb-idle",
        "dev-tablet",
    ],
};

const EXIT_SHADOW: DiagnosisRule = DiagnosisRule {
    id: "exit-shadow-paging",
    title: "shadow paging (INVLPG, CR accesses)",
    severity: Severity::Warn,
    why: "KVM traps the guest's TLB flushes and page-table switches because it keeps shadow \
          page tables: EPT/NPT is off (kvm_intel ept=0, kvm_amd npt=0, or a CPU without it), \
          the guest is nested under another hypervisor without nested EPT, or the vCPU model \
          hides the feature",
    fix: "check /sys/module/kvm_intel/parameters/ept (or kvm_amd/parameters/npt) is Y and \
          the host is not itself a guest without nested EPT/NPT; give the guest host-model or \
          host-passthrough CPU; back it with hugepages to cut the faults that remain",
    source: "Linux kernel documentation, Documentation/virt/kvm/x86/mmu.rst (shadow paging, \
             TDP) and Documentation/virt/kvm/x86/running-nested-guests.rst",
    audit_rules: &[
        "host-virt-ext",
        "host-nested",
        "cpu-nested",
        "cpu-mode",
        "mem-hugepages",
    ],
};

const EXIT_GUEST_LOOP: DiagnosisRule = DiagnosisRule {
    id: "exit-guest-loop",
    title: "guest looping on a fault (no progress)",
    severity: Severity::Warn,
    why: "nearly every exit is an intercepted guest exception or page fault and the guest \
          does nothing else (no HLT, no I/O): it faults on the same access again and again \
          (a fault KVM cannot resolve under shadow paging, no unrestricted guest in real \
          mode, a broken guest kernel) and is hung while burning its CPUs",
    fix: "look at the guest's console and `virsh dumpxml`/`virsh qemu-monitor-command \
          --hmp 'info registers'`; make sure EPT/NPT and unrestricted guest are on \
          (kvm_intel ept=Y unrestricted_guest=Y); update or reinstall the guest kernel; \
          restart the domain",
    source: "Linux kernel documentation, Documentation/virt/kvm/x86/mmu.rst; \
             \"qemu-kvm loops after kernel update\" (LKML, 2012: EXCEPTION_NMI and \
             kvm_page_fault at 330k/s each)",
    audit_rules: &["host-virt-ext", "cpu-mode"],
};

const EXIT_TIMER: DiagnosisRule = DiagnosisRule {
    id: "exit-timer-storm",
    title: "timer programming storm",
    severity: Severity::Warn,
    why: "the guest reprograms its local APIC timer (TSC deadline MSR 0x6e0, x2APIC timer \
          0x838, xAPIC 0xfee00380) or Hyper-V synthetic timers many thousand times a \
          second, each write an exit: a high guest HZ without nohz, a busy timer wheel, or \
          a Windows guest without synthetic timers",
    fix: "Linux guests: nohz (the default) and a lower HZ; keep APICv/posted interrupts on \
          (kvm_intel enable_apicv=Y) so the timer is handled without a full exit; Windows: \
          the Hyper-V enlightenments synic and stimer with direct mode (<stimer \
          state='on'><direct state='on'/></stimer>)",
    source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst: \
             hv-stimer, hv-stimer-direct); Intel SDM Vol. 3, APIC timer and TSC-deadline \
             mode; Linux kernel documentation, Documentation/timers/no_hz.rst",
    audit_rules: &["hyperv-enlightenments", "clock-windows", "clock-linux"],
};

const EXIT_IPI: DiagnosisRule = DiagnosisRule {
    id: "exit-ipi-storm",
    title: "IPI storm",
    severity: Severity::Warn,
    why: "the guest sends inter-processor interrupts (writes to the x2APIC ICR MSR 0x830 or \
          the xAPIC ICR 0xfee00300) at a high rate, each an exit: TLB shootdowns, \
          rescheduling, a guest without paravirtual IPIs",
    fix: "Windows: the Hyper-V enlightenments ipi and tlbflush (with vapic and vpindex); \
          Linux: keep the KVM paravirtual features (PV IPI, PV TLB flush) visible with \
          host-model CPU and x2APIC; keep APICv on; fewer vCPUs than host CPUs",
    source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst: hv-ipi, \
             hv-tlbflush); Linux kernel documentation, Documentation/virt/kvm/x86/cpuid.rst \
             (KVM_FEATURE_PV_SEND_IPI, KVM_FEATURE_PV_TLB_FLUSH)",
    audit_rules: &["hyperv-enlightenments", "cpu-mode", "host-overcommit"],
};

const EXIT_CLOCK_READ: DiagnosisRule = DiagnosisRule {
    id: "exit-clock-read",
    title: "clock read storm",
    severity: Severity::Warn,
    why: "the guest reads a clock that traps on every read: the Hyper-V reference counter \
          (MSR 0x40000020, a Windows guest without the reference TSC page, or a host whose \
          clocksource is not tsc so KVM cannot offer a valid page), the APIC timer's current \
          count (x2APIC 0x839, xAPIC 0xfee00390) or the HPET main counter (a guest clocksource \
          that is not kvmclock or the TSC)",
    fix: "Windows: give the guest the reference TSC page, <timer name='hypervclock' \
          present='yes'/> (QEMU hv-time) with an invariant TSC and the host on the tsc \
          clocksource, so it reads the clock without an exit (the audit rule clock-windows \
          checks it); Linux: keep kvmclock or tsc as the guest clocksource, not hpet or \
          acpi_pm",
    source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst: hv-time); \
             Microsoft Hypervisor Top Level Functional Specification (reference TSC page); \
             Linux kernel documentation, Documentation/virt/kvm/x86/msr.rst (kvmclock)",
    audit_rules: &["clock-windows", "hyperv-enlightenments", "clock-linux"],
};

const EXIT_DATA_ABORT: DiagnosisRule = DiagnosisRule {
    id: "exit-data-abort",
    title: "guest aborts to the hypervisor (MMIO or stage-2 faults)",
    severity: Severity::Warn,
    why: "arm64 DABT_LOW/IABT_LOW (RISC-V guest page faults, powerpc H_DATA_STORAGE, \
          LoongArch memory exceptions) are taken for two reasons: an access to an emulated \
          device's MMIO (virtio-mmio notifications, a PL011 or GICv2 distributor emulated in \
          QEMU), or guest memory KVM has not mapped yet at stage 2 (4 KiB pages, memory \
          being faulted in)",
    fix: "use virtio-pci devices with ioeventfd (virtio-blk, virtio-net with vhost) and the \
          in-kernel GICv3; back guest memory with hugepages",
    source: "Arm Architecture Reference Manual, ESR_EL2 exception classes (EC 0x24 Data Abort \
             from a lower EL); Linux kernel documentation, Documentation/virt/kvm/arm/; \
             libvirt domain format (memoryBacking)",
    audit_rules: &["mem-hugepages", "host-thp", "disk-bus", "net-model"],
};

const EXIT_WFX: DiagnosisRule = DiagnosisRule {
    id: "exit-wfx",
    title: "WFI/WFE exits (arm64 idle or spinning vCPUs)",
    // like HLT on x86, many WFI exits are what an idle guest does: WARN only with the CPU
    // they cost (halt polling or overhead), as exit-hlt-poll judges HLT
    severity: Severity::Info,
    why: "WFI traps when a vCPU idles (the arm64 HLT: many wakeups a second cost an exit \
          and a reschedule each), WFE when it spins on a lock whose holder is not running \
          (vCPU overcommit)",
    fix: "reduce vCPU overcommit and pin vCPUs; on hosts with dedicated CPUs the arm64 KVM \
          parameters kvm-arm.wfi_trap_policy=notrap and kvm-arm.wfe_trap_policy=notrap \
          (Linux 6.x) stop the traps; lower the guest's timer rate",
    source: "Linux kernel documentation, Documentation/admin-guide/kernel-parameters.txt \
             (kvm-arm.wfi_trap_policy, kvm-arm.wfe_trap_policy); Arm Architecture \
             Reference Manual, HCR_EL2.TWI/TWE",
    audit_rules: &["host-overcommit", "host-halt-poll", "numa-unbound"],
};

const TCG_EMULATED: DiagnosisRule = DiagnosisRule {
    id: "tcg-emulated",
    title: "no KVM: every instruction emulated",
    severity: Severity::Warn,
    why: "the domain runs with type='qemu': QEMU's TCG translates and emulates every guest \
          instruction, one to two orders of magnitude slower than KVM, and there are no \
          KVM exits to judge",
    fix: "run it with <domain type='kvm'> on a host with working KVM (the audit rule \
          virt-type checks the host and makes the change)",
    source: "libvirt domain format (domain type); QEMU documentation, \"Accelerators\" \
             (docs/system/introduction.rst)",
    audit_rules: &["virt-type", "host-kvm-device", "host-virt-ext"],
};

const OVERHEAD_HIGH: DiagnosisRule = DiagnosisRule {
    id: "overhead-high",
    title: "QEMU uses much more CPU than the guest",
    severity: Severity::Warn,
    why: "device or timer emulation: every exit to QEMU and every emulated \
          device costs host CPU the guest never sees",
    fix: "see the exit rules above; the usual causes are the guest clock \
          (clock-windows), emulated devices and idle USB tablets",
    source: "kcli#489 (13% to 1%); OpenNebula addon-storpool#79 (30-40% to 1-3%)",
    audit_rules: &[
        "clock-windows",
        "disk-bus",
        "net-model",
        "dev-usb-idle",
        "dev-tablet",
    ],
};

const NUMA_REMOTE: DiagnosisRule = DiagnosisRule {
    id: "numa-remote",
    title: "guest memory on remote NUMA nodes",
    severity: Severity::Warn,
    why: "vCPUs and memory placed independently (no numatune, or vCPUs moved)",
    fix: "bind memory to the vCPUs' node with <numatune> or let `kvmtune plan` place \
          the VM",
    source: "libvirt domain format (numatune); proc(5), /proc/PID/numa_maps; numastat(8)",
    audit_rules: &["numa-unbound", "numa-inconsistent"],
};

const EXIT_RATE_HIGH: DiagnosisRule = DiagnosisRule {
    id: "exit-rate-high",
    title: "very high exit rate",
    severity: Severity::Info,
    why: "no specific rule matches the dominant exit reason; a guest looping on one \
          event (a fault it cannot resolve, a clock read) shows like this",
    fix: "look at the dominant reason: EXCEPTION_NMI means intercepted guest \
          exceptions (often page faults under shadow paging), INVLPG and CR_ACCESS \
          point at shadow paging too (is EPT/NPT on?)",
    source: "Linux kernel documentation, Documentation/virt/kvm/x86/mmu.rst (shadow paging); \
             perf-kvm(1)",
    audit_rules: &[],
};

/// Every diagnosis, in the order [`diagnose`] judges them.
pub const RULES: &[DiagnosisRule] = &[
    EXIT_IO_STORM,
    EXIT_MSR_STORM,
    EXIT_HLT_POLL,
    EXIT_EPT,
    EXIT_PAUSE,
    EXIT_EXTINT,
    EXIT_MMIO_EMUL,
    EXIT_USERSPACE,
    EXIT_SHADOW,
    EXIT_GUEST_LOOP,
    EXIT_TIMER,
    EXIT_IPI,
    EXIT_CLOCK_READ,
    EXIT_DATA_ABORT,
    EXIT_WFX,
    OVERHEAD_HIGH,
    NUMA_REMOTE,
    TCG_EMULATED,
    EXIT_RATE_HIGH,
];

/// The rule of a diagnosis id.
pub fn rule(id: &str) -> Option<&'static DiagnosisRule> {
    RULES.iter().find(|r| r.id == id)
}

/// A number behind a diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

fn fig(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
    Figure {
        name: name.into(),
        value,
        unit,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The RULES.md diagnosis id (`exit-io-storm`, ...).
    pub rule: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    /// What was seen, with the numbers.
    pub message: String,
    pub figures: Vec<Figure>,
    pub cause: &'static str,
    pub fix: String,
    /// Audit rules that check the fix in the domain XML (`kvmtune explain ID`).
    pub audit_rules: Vec<&'static str>,
}

impl Diagnosis {
    /// A diagnosis of `rule` with its title, severity, cause, fix and audit rules, and no
    /// message or figures yet.
    fn of(rule: &'static DiagnosisRule) -> Diagnosis {
        Diagnosis {
            rule: rule.id,
            severity: rule.severity,
            title: rule.title,
            message: String::new(),
            figures: Vec::new(),
            cause: rule.why,
            fix: rule.fix.to_string(),
            audit_rules: rule.audit_rules.to_vec(),
        }
    }
}

/// Thresholds of the rules.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// exit-io-storm: share of exits, and exits/s or samples.
    pub io_share: f64,
    pub io_rate: f64,
    pub io_count: f64,
    /// exit-msr-storm (MSR and APIC exits together).
    pub msr_share: f64,
    pub msr_rate: f64,
    pub msr_count: f64,
    /// exit-hlt-poll: HLT exits/s, with CPU spent polling or overhead.
    pub halt_rate: f64,
    pub halt_poll_pct: f64,
    /// exit-ept.
    pub pf_share: f64,
    pub pf_rate: f64,
    pub pf_count: f64,
    /// exit-pause.
    pub pause_share: f64,
    pub pause_rate: f64,
    pub pause_count: f64,
    /// exit-extint.
    pub extint_share: f64,
    pub extint_rate: f64,
    pub extint_count: f64,
    /// exit-extint, live with the vCPU count known: exits/s per vCPU (twice a 1000 Hz host
    /// tick), instead of `extint_rate` for the whole VM.
    pub extint_rate_per_vcpu: f64,
    /// exit-mmio-emul: MMIO share and level, or instructions emulated per second.
    pub mmio_share: f64,
    pub mmio_rate: f64,
    pub mmio_count: f64,
    pub emulation_rate: f64,
    /// overhead-high: host minus guest CPU, in % of one CPU, and host over guest.
    pub overhead_pct: f64,
    pub overhead_ratio: f64,
    /// numa-remote: remote share of memory, for VMs of at least this much memory.
    pub remote_share: f64,
    pub remote_min_kib: u64,
    /// exit-rate-high: exits/s (or samples) with no other rule explaining them.
    pub total_rate: f64,
    pub total_count: f64,
    /// exit-userspace-storm: exits to user space (QEMU).
    pub userspace_share: f64,
    pub userspace_rate: f64,
    pub userspace_count: f64,
    /// exit-shadow-paging: INVLPG and CR-access exits.
    pub shadow_share: f64,
    pub shadow_rate: f64,
    pub shadow_count: f64,
    /// exit-guest-loop: exception exits, with progress exits (HLT, I/O, MMIO, user space)
    /// under `loop_progress_share` of all exits.
    pub loop_share: f64,
    pub loop_rate: f64,
    pub loop_count: f64,
    pub loop_progress_share: f64,
    /// exit-timer-storm / exit-ipi-storm: among the accesses of an MSR/APIC storm whose
    /// keys (or kvm_stat events) are known, the share that programs timers or sends IPIs.
    pub role_share: f64,
    /// exit-data-abort.
    pub abort_share: f64,
    pub abort_rate: f64,
    pub abort_count: f64,
    /// exit-wfx.
    pub wfx_share: f64,
    pub wfx_rate: f64,
    pub wfx_count: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            io_share: 0.30,
            io_rate: 2_000.0,
            io_count: 10_000.0,
            msr_share: 0.30,
            msr_rate: 20_000.0,
            msr_count: 100_000.0,
            halt_rate: 1_000.0,
            halt_poll_pct: 10.0,
            pf_share: 0.20,
            pf_rate: 5_000.0,
            pf_count: 10_000.0,
            pause_share: 0.10,
            pause_rate: 1_000.0,
            pause_count: 5_000.0,
            extint_share: 0.30,
            extint_rate: 5_000.0,
            extint_count: 20_000.0,
            extint_rate_per_vcpu: 2_000.0,
            mmio_share: 0.30,
            mmio_rate: 5_000.0,
            mmio_count: 10_000.0,
            emulation_rate: 10_000.0,
            overhead_pct: 30.0,
            overhead_ratio: 2.0,
            remote_share: 0.25,
            remote_min_kib: 512 * 1024,
            total_rate: 100_000.0,
            total_count: 1_000_000.0,
            userspace_share: 0.20,
            userspace_rate: 5_000.0,
            userspace_count: 10_000.0,
            shadow_share: 0.20,
            shadow_rate: 5_000.0,
            shadow_count: 10_000.0,
            loop_share: 0.50,
            loop_rate: 20_000.0,
            loop_count: 100_000.0,
            loop_progress_share: 0.05,
            role_share: 0.50,
            abort_share: 0.30,
            abort_rate: 5_000.0,
            abort_count: 10_000.0,
            wfx_share: 0.30,
            wfx_rate: 10_000.0,
            wfx_count: 50_000.0,
        }
    }
}

fn level_ok(p: &ExitProfile, v: f64, rate: f64, count: f64) -> bool {
    if p.per_sec { v >= rate } else { v >= count }
}

fn unit(p: &ExitProfile) -> &'static str {
    if p.per_sec { "exits/s" } else { "samples" }
}

fn shown(p: &ExitProfile, v: f64) -> String {
    if p.per_sec {
        format!("{v:.0}/s")
    } else {
        format!("{v:.0}")
    }
}

/// An exit-share rule's test and figures.
fn share_rule(
    p: &ExitProfile,
    kinds: &[ExitKind],
    share: f64,
    rate: f64,
    count: f64,
) -> Option<(f64, f64)> {
    let v = p.kinds_sum(kinds);
    let s = if p.total > 0.0 { v / p.total } else { 0.0 };
    (s >= share && level_ok(p, v, rate, count)).then_some((v, s))
}

fn top_keys(keys: &[(String, f64)], n: usize, table: TableKind) -> String {
    keys.iter()
        .take(n)
        .map(|(k, v)| match key_hint(table, k) {
            Some(h) => format!("{k} {v:.0} ({h})"),
            None => format!("{k} {v:.0}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `kvm_exit(INVLPG)` -> `INVLPG`.
fn reason_of(k: &str) -> &str {
    k.strip_prefix("kvm_exit(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(k)
}

/// Timer, IPI and clock-read accesses among an MSR/APIC storm's `v` exits, and the basis
/// they are a share of: the msr and mmio tables' keys when the report has them, else
/// kvm_stat's `kvm_hv_timer_state` and `kvm_apic_ipi` events against the exits themselves.
fn roles(p: &ExitProfile, v: f64) -> (f64, f64, f64, f64) {
    let mut timer = 0.0;
    let mut ipi = 0.0;
    let mut clock = 0.0;
    let mut basis = 0.0;
    let keyed = p
        .msrs
        .iter()
        .map(|(k, n)| (msr_role(k), n))
        .chain(p.mmio.iter().map(|(k, n)| (mmio_role(k), n)));
    for (role, n) in keyed {
        basis += n;
        match role {
            MsrRole::Timer => timer += n,
            MsrRole::Ipi => ipi += n,
            MsrRole::ClockRead => clock += n,
            _ => {}
        }
    }
    if basis == 0.0 {
        let t = p.event("kvm_hv_timer_state");
        let i = p.event("kvm_apic_ipi");
        // kvm_stat counts events, not exits: kvm_msr and kvm_apic both count one x2APIC
        // write, so the basis is the larger of the two
        let events = p.kind(ExitKind::Msr).max(p.kind(ExitKind::Apic)).min(v);
        if (t > 0.0 || i > 0.0) && events > 0.0 {
            return (t.min(events), i.min(events), 0.0, events);
        }
    }
    (timer, ipi, clock, basis)
}

/// SVM's `npf` exits (`kvm_exit(NPF)`): nested page faults, which on AMD are both the
/// guest's page faults and its MMIO (there is no separate EPT_MISCONFIG exit).
fn svm_npf(p: &ExitProfile) -> f64 {
    p.top
        .iter()
        .filter(|(k, _)| matches!(reason_of(k), "npf" | "NPF"))
        .map(|(_, v)| v)
        .sum()
}

/// MMIO known from other sources than the exit reasons: the mmio table, kvm_stat's
/// `kvm_mmio` and `kvm_userspace_exit(MMIO)`.
fn mmio_seen(p: &ExitProfile) -> f64 {
    let table: f64 = p.mmio.iter().map(|(_, v)| v).sum();
    table
        .max(p.event("kvm_mmio"))
        .max(p.event("kvm_userspace_exit(MMIO)"))
        .max(p.kind(ExitKind::Mmio))
}

/// When MMIO accounts for most of the SVM `npf` exits, those exits are MMIO, not page
/// faults: a profile with them moved.
fn npf_as_mmio(p: &ExitProfile) -> Option<ExitProfile> {
    let npf = svm_npf(p);
    let mmio = mmio_seen(p);
    if npf <= 0.0 || mmio * 2.0 <= npf {
        return None;
    }
    let moved = mmio.min(npf).min(p.kind(ExitKind::PageFault));
    let mut q = p.clone();
    q.kinds
        .insert(ExitKind::PageFault, p.kind(ExitKind::PageFault) - moved);
    q.kinds
        .insert(ExitKind::Mmio, p.kind(ExitKind::Mmio).max(moved));
    Some(q)
}

/// Judge one profile.
pub fn diagnose(p: &ExitProfile, lim: &Limits) -> Vec<Diagnosis> {
    let adjusted;
    let p = match npf_as_mmio(p) {
        Some(q) => {
            adjusted = q;
            &adjusted
        }
        None => p,
    };
    let mut out = Vec::new();
    let u = unit(p);

    if p.virt_type.as_deref() == Some("qemu") {
        out.push(Diagnosis {
            message: "domain type='qemu': no KVM, QEMU's TCG emulates every instruction \
                      (no KVM exit counters to judge)"
                .to_string(),
            figures: p
                .cpu
                .as_ref()
                .map(|c| {
                    vec![fig(
                        "host CPU of the QEMU process",
                        c.host_pct,
                        "% of a CPU",
                    )]
                })
                .unwrap_or_else(|| vec![fig("KVM exits", 0.0, "exits/s")]),
            ..Diagnosis::of(&TCG_EMULATED)
        });
    }

    if let Some((v, s)) = share_rule(p, &[ExitKind::Io], lim.io_share, lim.io_rate, lim.io_count) {
        let mut figures = vec![
            fig("io exits", v, u),
            fig("io share of exits", s * 100.0, "%"),
            fig("all exits", p.total, u),
        ];
        let timer_io: f64 = p
            .io_ports
            .iter()
            .filter(|(k, _)| is_timer_port(k))
            .map(|(_, v)| v)
            .sum();
        let mut message = format!(
            "port I/O exits are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        let mut d = Diagnosis::of(&EXIT_IO_STORM);
        if !p.io_ports.is_empty() {
            let named: f64 = p.io_ports.iter().map(|(_, v)| v).sum();
            message.push_str(&format!(
                "; busiest ports: {}",
                top_keys(&p.io_ports, 4, TableKind::Ioport)
            ));
            figures.push(fig("timer port accesses", timer_io, "samples"));
            if named > 0.0 && timer_io * 2.0 > named {
                message.push_str(&format!(
                    "; timer ports take {:.0}% of the named port exits",
                    100.0 * timer_io / named
                ));
                d.fix = IO_CLOCK_FIX.to_string();
                d.audit_rules = IO_CLOCK_RULES.to_vec();
            } else {
                message.push_str(&format!(
                    "; timer ports take only {:.0}% of the named port exits: a device, not \
                     the clock",
                    if named > 0.0 {
                        100.0 * timer_io / named
                    } else {
                        0.0
                    }
                ));
                d.fix = IO_DEVICE_FIX.to_string();
                d.audit_rules = IO_DEVICE_RULES.to_vec();
            }
        }
        out.push(Diagnosis {
            message,
            figures,
            ..d
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::Msr, ExitKind::Apic],
        lim.msr_share,
        lim.msr_rate,
        lim.msr_count,
    ) {
        let (timer, ipi, clock, basis) = roles(p, v);
        let rule = if basis > 0.0 && timer / basis >= lim.role_share {
            &EXIT_TIMER
        } else if basis > 0.0 && ipi / basis >= lim.role_share {
            &EXIT_IPI
        } else if basis > 0.0 && clock / basis >= lim.role_share {
            &EXIT_CLOCK_READ
        } else {
            &EXIT_MSR_STORM
        };
        let mut message = format!(
            "MSR and APIC exits are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        if basis > 0.0 && rule.id != EXIT_MSR_STORM.id {
            let (what, n) = if rule.id == EXIT_TIMER.id {
                ("program a timer", timer)
            } else if rule.id == EXIT_IPI.id {
                ("send an IPI", ipi)
            } else {
                ("read a clock", clock)
            };
            message.push_str(&format!(
                "; {:.0}% of the accesses named {what}",
                100.0 * n / basis
            ));
        }
        if !p.msrs.is_empty() {
            message.push_str(&format!(
                "; busiest MSRs: {}",
                top_keys(&p.msrs, 4, TableKind::Msr)
            ));
        }
        if !p.mmio.is_empty() {
            message.push_str(&format!(
                "; busiest MMIO: {}",
                top_keys(&p.mmio, 3, TableKind::Mmio)
            ));
        }
        for e in ["kvm_hv_timer_state", "kvm_apic_ipi"] {
            if p.event(e) > 0.0 {
                message.push_str(&format!("; {e} {}", shown(p, p.event(e))));
            }
        }
        let mut figures = vec![
            fig("msr+apic exits", v, u),
            fig("msr+apic share of exits", s * 100.0, "%"),
            fig("all exits", p.total, u),
        ];
        if basis > 0.0 {
            figures.push(fig("timer accesses", timer, u));
            figures.push(fig("IPI accesses", ipi, u));
            figures.push(fig("clock reads", clock, u));
        }
        out.push(Diagnosis {
            message,
            figures,
            ..Diagnosis::of(rule)
        });
    }

    if p.per_sec {
        let halts = p.kind(ExitKind::Halt);
        let polling = p.halt_poll_pct.unwrap_or(0.0);
        let overhead = p.cpu.as_ref().map(|c| c.host_pct - c.guest_pct);
        if halts >= lim.halt_rate
            && (polling >= lim.halt_poll_pct || overhead.is_some_and(|o| o >= lim.overhead_pct))
        {
            let mut figures = vec![
                fig("halt exits", halts, "exits/s"),
                fig("CPU spent halt polling", polling, "% of a CPU"),
            ];
            if let Some(o) = overhead {
                figures.push(fig("overhead (host - guest CPU)", o, "% of a CPU"));
            }
            out.push(Diagnosis {
                message: format!(
                    "{halts:.0} HLT exits/s with {polling:.1}% of a CPU spent polling{}",
                    overhead
                        .map(|o| format!(" and {o:.0}% of a CPU of overhead"))
                        .unwrap_or_default()
                ),
                figures,
                ..Diagnosis::of(&EXIT_HLT_POLL)
            });
        }
    }

    let progress = p.kinds_sum(&[
        ExitKind::Halt,
        ExitKind::Io,
        ExitKind::Mmio,
        ExitKind::Userspace,
        ExitKind::Wfx,
    ]);
    let progress_share = if p.total > 0.0 {
        progress / p.total
    } else {
        0.0
    };
    let looping = share_rule(
        p,
        &[ExitKind::Exception],
        lim.loop_share,
        lim.loop_rate,
        lim.loop_count,
    )
    .filter(|_| progress_share < lim.loop_progress_share);
    if let Some((v, s)) = looping {
        let pf = p.kind(ExitKind::PageFault);
        out.push(Diagnosis {
            message: format!(
                "guest exceptions are {:.1}% of all exits ({}){}, and HLT, I/O and MMIO only \
                 {:.2}%: the guest makes no progress",
                s * 100.0,
                shown(p, v),
                if pf > 0.0 {
                    format!(" with {} page faults", shown(p, pf))
                } else {
                    String::new()
                },
                progress_share * 100.0
            ),
            figures: vec![
                fig("exception exits", v, u),
                fig("share of exits", s * 100.0, "%"),
                fig("HLT, I/O, MMIO share", progress_share * 100.0, "%"),
            ],
            ..Diagnosis::of(&EXIT_GUEST_LOOP)
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::ShadowMmu],
        lim.shadow_share,
        lim.shadow_rate,
        lim.shadow_count,
    ) {
        let named: Vec<String> = p
            .top
            .iter()
            .filter(|(k, _)| crate::exits::classify(reason_of(k)) == ExitKind::ShadowMmu)
            .take(3)
            .map(|(k, n)| format!("{k} {}", shown(p, *n)))
            .collect();
        out.push(Diagnosis {
            message: format!(
                "INVLPG and CR-access exits are {:.1}% of all exits ({}{})",
                s * 100.0,
                shown(p, v),
                if named.is_empty() {
                    String::new()
                } else {
                    format!(": {}", named.join(", "))
                }
            ),
            figures: vec![
                fig("shadow-paging exits", v, u),
                fig("share of exits", s * 100.0, "%"),
            ],
            ..Diagnosis::of(&EXIT_SHADOW)
        });
    }

    let userspace = share_rule(
        p,
        &[ExitKind::Userspace],
        lim.userspace_share,
        lim.userspace_rate,
        lim.userspace_count,
    );
    // port I/O exits that go on to QEMU are exit-io-storm's already: judge only the rest
    let userspace = userspace.filter(|(v, _)| {
        let io = p.event("kvm_userspace_exit(IO)");
        if io <= 0.0 || !out.iter().any(|d| d.rule == EXIT_IO_STORM.id) {
            return true;
        }
        let rest = (v - io).max(0.0);
        let s = if p.total > 0.0 { rest / p.total } else { 0.0 };
        s >= lim.userspace_share && level_ok(p, rest, lim.userspace_rate, lim.userspace_count)
    });
    if let Some((v, s)) = userspace {
        let mut message = format!(
            "exits to user space (QEMU) are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        let reasons: Vec<String> = p
            .events
            .iter()
            .filter(|(k, n)| k.starts_with("kvm_userspace_exit(") && **n > 0.0)
            .map(|(k, n)| {
                let r = k
                    .trim_start_matches("kvm_userspace_exit(")
                    .trim_end_matches(')');
                format!("{r} {}", shown(p, *n))
            })
            .collect();
        if !reasons.is_empty() {
            message.push_str(&format!("; by reason: {}", reasons.join(", ")));
        }
        if !p.mmio.is_empty() {
            message.push_str(&format!(
                "; busiest MMIO: {}",
                top_keys(&p.mmio, 3, TableKind::Mmio)
            ));
        }
        if !p.io_ports.is_empty() {
            message.push_str(&format!(
                "; busiest ports: {}",
                top_keys(&p.io_ports, 3, TableKind::Ioport)
            ));
        }
        if p.mmio.is_empty() && p.io_ports.is_empty() {
            message.push_str(
                "; record `perf kvm stat record` and report --event=mmio and --event=ioport \
                 to name the device",
            );
        }
        out.push(Diagnosis {
            message,
            figures: vec![
                fig("exits to user space", v, u),
                fig("share of exits", s * 100.0, "%"),
            ],
            ..Diagnosis::of(&EXIT_USERSPACE)
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::DataAbort],
        lim.abort_share,
        lim.abort_rate,
        lim.abort_count,
    ) {
        let mut message = format!(
            "aborts and guest page faults taken to the hypervisor are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        if let Some((k, _)) = p.top.first() {
            message.push_str(&format!("; the largest is {k}"));
        }
        out.push(Diagnosis {
            message,
            figures: vec![
                fig("abort exits", v, u),
                fig("share of exits", s * 100.0, "%"),
            ],
            ..Diagnosis::of(&EXIT_DATA_ABORT)
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::Wfx],
        lim.wfx_share,
        lim.wfx_rate,
        lim.wfx_count,
    ) {
        let polling = p.halt_poll_pct.unwrap_or(0.0);
        let overhead = p.cpu.as_ref().map(|c| c.host_pct - c.guest_pct);
        let costly = p.per_sec
            && (polling >= lim.halt_poll_pct || overhead.is_some_and(|o| o >= lim.overhead_pct));
        let mut d = Diagnosis::of(&EXIT_WFX);
        let mut message = format!(
            "WFI/WFE exits are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        let mut figures = vec![
            fig("WFx exits", v, u),
            fig("share of exits", s * 100.0, "%"),
        ];
        if costly {
            d.severity = Severity::Warn;
            message.push_str(&format!(
                " with {polling:.1}% of a CPU spent polling{}",
                overhead
                    .map(|o| format!(" and {o:.0}% of a CPU of overhead"))
                    .unwrap_or_default()
            ));
            figures.push(fig("CPU spent halt polling", polling, "% of a CPU"));
        } else {
            message.push_str(
                "; an idle guest's WFI exits look like this (the arm64 HLT): nothing shows \
                 they cost host CPU",
            );
        }
        out.push(Diagnosis {
            message,
            figures,
            ..d
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::PageFault],
        lim.pf_share,
        lim.pf_rate,
        lim.pf_count,
    )
    .filter(|_| looping.is_none())
    {
        let mut d = Diagnosis::of(&EXIT_EPT);
        let mut message = format!(
            "EPT/NPF page faults are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        if svm_npf(p) * 2.0 > v {
            message.push_str(
                "; on AMD an npf exit is a nested page fault OR an MMIO access of an emulated \
                 device, and nothing here tells them apart",
            );
            d.cause = "SVM npf exits are taken both for guest memory KVM has not mapped yet \
                       (4 KiB pages, memory being faulted in) and for every MMIO access of an \
                       emulated device (AMD has no separate MMIO exit)";
            d.fix = format!(
                "record `perf kvm stat record` and report --event=mmio (or kvm_stat's kvm_mmio \
                 and kvm_userspace_exit(MMIO)) first: if MMIO takes most of the npf exits, use \
                 virtio disks and NICs; if not, {}",
                EXIT_EPT.fix
            );
            d.audit_rules = vec![
                "mem-hugepages",
                "host-thp",
                "host-hugepages-pool",
                "disk-bus",
                "net-model",
            ];
        }
        out.push(Diagnosis {
            message,
            figures: vec![
                fig("page-fault exits", v, u),
                fig("share of exits", s * 100.0, "%"),
            ],
            ..d
        });
    }

    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::Pause],
        lim.pause_share,
        lim.pause_rate,
        lim.pause_count,
    ) {
        out.push(Diagnosis {
            message: format!(
                "PAUSE exits (pause-loop spinning) are {:.1}% of all exits ({})",
                s * 100.0,
                shown(p, v)
            ),
            figures: vec![
                fig("pause exits", v, u),
                fig("share of exits", s * 100.0, "%"),
            ],
            ..Diagnosis::of(&EXIT_PAUSE)
        });
    }

    // every vCPU takes its host CPU's timer tick (up to 1000/s): judge the rate per vCPU
    let vcpus = p.cpu.as_ref().map(|c| c.vcpus).filter(|n| *n > 0);
    let extint_rate = match vcpus {
        Some(n) if p.per_sec => lim.extint_rate_per_vcpu * f64::from(n),
        _ => lim.extint_rate,
    };
    if let Some((v, s)) = share_rule(
        p,
        &[ExitKind::ExternalInterrupt],
        lim.extint_share,
        extint_rate,
        lim.extint_count,
    ) {
        let mut d = Diagnosis::of(&EXIT_EXTINT);
        let mut message = format!(
            "external-interrupt exits are {:.1}% of all exits ({})",
            s * 100.0,
            shown(p, v)
        );
        let mut figures = vec![
            fig("external-interrupt exits", v, u),
            fig("share of exits", s * 100.0, "%"),
        ];
        match vcpus {
            Some(n) if p.per_sec => {
                message.push_str(&format!(
                    ", {:.0}/s per vCPU for {n} vCPUs",
                    v / f64::from(n)
                ));
                figures.push(fig("per vCPU", v / f64::from(n), "exits/s"));
            }
            _ if p.per_sec => {
                // a VM of many busy vCPUs takes a host tick on each: without the vCPU
                // count this may be normal
                d.severity = Severity::Info;
                message.push_str(&format!(
                    "; the vCPU count is not known: up to {:.0}/s per vCPU is normal (each \
                     vCPU's host CPU ticks), so this is a storm only for a VM of at most {:.0} \
                     vCPUs",
                    lim.extint_rate_per_vcpu,
                    (v / lim.extint_rate_per_vcpu).floor()
                ));
            }
            _ => {}
        }
        out.push(Diagnosis {
            message,
            figures,
            ..d
        });
    }

    let mmio = share_rule(
        p,
        &[ExitKind::Mmio],
        lim.mmio_share,
        lim.mmio_rate,
        lim.mmio_count,
    );
    // MMIO exits that go on to QEMU are exit-userspace-storm's already
    let mmio = mmio.filter(|_| !out.iter().any(|d| d.rule == EXIT_USERSPACE.id));
    let emul = p.kind(ExitKind::Emulation);
    let emul_hit = p.per_sec && emul >= lim.emulation_rate;
    if mmio.is_some() || emul_hit {
        let (v, s) = mmio.unwrap_or((p.kind(ExitKind::Mmio), p.share(ExitKind::Mmio)));
        let mut figures = vec![
            fig("mmio exits", v, u),
            fig("mmio share of exits", s * 100.0, "%"),
        ];
        let mut message = if mmio.is_some() || !emul_hit {
            format!(
                "MMIO exits are {:.1}% of all exits ({})",
                s * 100.0,
                shown(p, v)
            )
        } else {
            format!("KVM emulates {emul:.0} instructions/s")
        };
        if emul_hit {
            figures.push(fig("instructions emulated", emul, "per s"));
            if mmio.is_some() {
                message.push_str(&format!("; KVM emulates {emul:.0} instructions/s"));
            }
        }
        if !p.mmio.is_empty() {
            message.push_str(&format!(
                "; busiest MMIO: {}",
                top_keys(&p.mmio, 3, TableKind::Mmio)
            ));
        }
        out.push(Diagnosis {
            message,
            figures,
            ..Diagnosis::of(&EXIT_MMIO_EMUL)
        });
    }

    if let Some(c) = &p.cpu {
        let overhead = c.host_pct - c.guest_pct;
        if overhead >= lim.overhead_pct && c.host_pct >= lim.overhead_ratio * c.guest_pct {
            let mut figures = vec![
                fig("host CPU of the QEMU process", c.host_pct, "% of a CPU"),
                fig("guest CPU", c.guest_pct, "% of a CPU"),
                fig("overhead", overhead, "% of a CPU"),
            ];
            if let Some(e) = c.emulator_pct {
                figures.push(fig("emulator threads", e, "% of a CPU"));
            }
            out.push(Diagnosis {
                message: format!(
                    "the QEMU process uses {:.0}% of a CPU while the guest runs {:.0}%: {:.0}% \
                     overhead{}",
                    c.host_pct,
                    c.guest_pct,
                    overhead,
                    match c.emulator_pct {
                        Some(e) if e * 2.0 < overhead => format!(
                            ", {e:.0}% in emulator threads: the rest is in the vCPU threads \
                             (exits handled by KVM in the kernel)"
                        ),
                        Some(e) => format!(", {e:.0}% in emulator threads"),
                        None => String::new(),
                    }
                ),
                figures,
                ..Diagnosis::of(&OVERHEAD_HIGH)
            });
        }
    }

    if let Some(r) = p.remote_share
        && r >= lim.remote_share
        && p.memory_kib.is_some_and(|m| m >= lim.remote_min_kib)
    {
        out.push(Diagnosis {
            message: format!(
                "{:.0}% of the VM's memory is on NUMA nodes its vCPUs do not run on",
                r * 100.0
            ),
            figures: vec![
                fig("remote share", r * 100.0, "%"),
                fig("memory", p.memory_kib.unwrap_or(0) as f64 / 1024.0, "MiB"),
            ],
            ..Diagnosis::of(&NUMA_REMOTE)
        });
    }

    let explained = out.iter().any(|d| d.rule.starts_with("exit-"));
    if !explained && level_ok(p, p.total, lim.total_rate, lim.total_count) {
        let dominant = p
            .top
            .first()
            .map(|(k, v)| format!("; the largest is {k} ({})", shown(p, *v)))
            .unwrap_or_default();
        out.push(Diagnosis {
            message: format!("{} exits{dominant}", shown(p, p.total)),
            figures: vec![fig("all exits", p.total, u)],
            ..Diagnosis::of(&EXIT_RATE_HIGH)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::CpuFigures;

    fn profile(per_sec: bool, total: f64, kinds: &[(ExitKind, f64)]) -> ExitProfile {
        ExitProfile {
            per_sec,
            total,
            kinds: kinds.iter().copied().collect(),
            ..ExitProfile::default()
        }
    }

    fn rules(p: &ExitProfile) -> Vec<&'static str> {
        diagnose(p, &Limits::default())
            .iter()
            .map(|d| d.rule)
            .collect()
    }

    #[test]
    fn io_storm_needs_share_and_level() {
        assert_eq!(
            rules(&profile(true, 10_000.0, &[(ExitKind::Io, 8_000.0)])),
            ["exit-io-storm"]
        );
        // a large share of a small number is no storm
        assert!(rules(&profile(true, 1_000.0, &[(ExitKind::Io, 800.0)])).is_empty());
        // many I/O exits among many more others is no storm either
        assert!(rules(&profile(true, 90_000.0, &[(ExitKind::Io, 5_000.0)])).is_empty());
    }

    #[test]
    fn io_storm_fix_follows_the_timer_share_of_the_ports() {
        let storm = |ports: &[(&str, f64)]| {
            let mut p = profile(false, 100_000.0, &[(ExitKind::Io, 60_000.0)]);
            p.io_ports = ports.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            diagnose(&p, &Limits::default()).remove(0)
        };
        // fires: the RTC takes most of the named port exits
        let d = storm(&[
            ("0x70:POUT", 40_000.0),
            ("0x71:PIN", 10_000.0),
            ("0xc050:POUT", 9_000.0),
        ]);
        assert_eq!(d.rule, "exit-io-storm");
        assert!(d.fix.contains("--rule clock-windows"), "{}", d.fix);
        assert!(d.audit_rules.contains(&"clock-windows"));
        // near miss: a PCI I/O BAR takes 98%: the device fix, no clock change
        let d = storm(&[("0xc050:POUT", 59_000.0), ("0x70:POUT", 1_000.0)]);
        assert!(
            !d.fix.contains("hypervclock") && !d.fix.contains("kvmtune apply"),
            "{}",
            d.fix
        );
        assert!(d.fix.contains("virtio"), "{}", d.fix);
        assert!(!d.audit_rules.contains(&"clock-windows"));
        assert!(d.audit_rules.contains(&"disk-bus") && d.audit_rules.contains(&"net-model"));
        // exactly half is no majority
        let d = storm(&[("0xc050:POUT", 500.0), ("0x70:POUT", 500.0)]);
        assert!(!d.fix.contains("hypervclock"), "{}", d.fix);
        // no port table: both causes named, no apply recommended
        let d = storm(&[]);
        assert!(
            d.fix.contains("hypervclock") && d.fix.contains("virtio"),
            "{}",
            d.fix
        );
        assert!(!d.fix.contains("kvmtune apply"), "{}", d.fix);
    }

    #[test]
    fn port_io_going_on_to_qemu_is_one_diagnosis() {
        let with_io = |io: f64, mmio: f64| {
            let mut p = profile(
                true,
                50_000.0,
                &[(ExitKind::Io, 40_000.0), (ExitKind::Userspace, io + mmio)],
            );
            p.events.insert("kvm_userspace_exit(IO)".into(), io);
            p.events.insert("kvm_userspace_exit(MMIO)".into(), mmio);
            rules(&p)
        };
        // fires once: all exits to QEMU are the port I/O of the storm
        assert_eq!(with_io(40_000.0, 0.0), ["exit-io-storm"]);
        // near miss: 15,000 MMIO exits/s to QEMU on top are a second cause
        assert_eq!(
            with_io(40_000.0, 15_000.0),
            ["exit-io-storm", "exit-userspace-storm"]
        );
    }

    #[test]
    fn svm_npf_is_mmio_when_the_mmio_table_says_so() {
        let npf = |mmio: f64| {
            let mut p = profile(
                false,
                100_000.0,
                &[(ExitKind::PageFault, 80_000.0), (ExitKind::Halt, 20_000.0)],
            );
            p.top = vec![("npf".into(), 80_000.0), ("hlt".into(), 20_000.0)];
            if mmio > 0.0 {
                p.mmio = vec![("0xfebd1000:W".into(), mmio)];
            }
            diagnose(&p, &Limits::default())
        };
        // fires: the mmio table accounts for most npf exits: MMIO, no hugepages
        let d = npf(79_000.0);
        assert_eq!(
            d.iter().map(|d| d.rule).collect::<Vec<_>>(),
            ["exit-mmio-emul"]
        );
        // near miss: MMIO is under half of the npf exits: still page faults, but the fix
        // names both causes and asks for the mmio table first
        let d = npf(30_000.0);
        assert_eq!(d.iter().map(|d| d.rule).collect::<Vec<_>>(), ["exit-ept"]);
        assert!(d[0].fix.contains("--event=mmio") && d[0].fix.contains("virtio"));
        let d = npf(0.0);
        assert_eq!(d[0].rule, "exit-ept");
        assert!(d[0].message.contains("OR an MMIO"), "{}", d[0].message);
        // VMX EPT violations are page faults only: the plain hugepage advice
        let mut p = profile(false, 100_000.0, &[(ExitKind::PageFault, 80_000.0)]);
        p.top = vec![("EPT_VIOLATION".into(), 80_000.0)];
        let d = diagnose(&p, &Limits::default());
        assert_eq!(d[0].fix, EXIT_EPT.fix);
    }

    #[test]
    fn idle_wfx_is_info_and_warns_only_with_its_cpu_cost() {
        let wfx = |poll: Option<f64>| {
            let mut p = profile(
                true,
                15_000.0,
                &[
                    (ExitKind::Wfx, 12_000.0),
                    (ExitKind::ExternalInterrupt, 2_500.0),
                ],
            );
            p.halt_poll_pct = poll;
            diagnose(&p, &Limits::default())
        };
        // fires as a WARN: the wakeups cost host CPU in halt polling
        let d = wfx(Some(10.0));
        assert_eq!((d[0].rule, d[0].severity), ("exit-wfx", Severity::Warn));
        // near miss: the idle shape alone (as an idle x86 guest's HLT) is no warning
        let d = wfx(Some(9.9));
        assert_eq!((d[0].rule, d[0].severity), ("exit-wfx", Severity::Info));
        let d = wfx(None);
        assert!(d.iter().all(|d| d.severity < Severity::Warn), "{d:?}");
    }

    #[test]
    fn kvm_stat_events_counting_one_exit_twice_are_not_added() {
        let msr_apic = |msr: f64, apic: f64| {
            let mut p = profile(
                true,
                90_000.0,
                &[(ExitKind::Msr, msr), (ExitKind::Apic, apic)],
            );
            p.event_kinds = [ExitKind::Msr, ExitKind::Apic].into_iter().collect();
            rules(&p)
        };
        // fires: 30k of 90k is over 30% on its own
        assert_eq!(msr_apic(30_000.0, 30_000.0), ["exit-msr-storm"]);
        // near miss: 25k kvm_msr and 25k kvm_apic are the same 25k writes, 28%, not 56%
        assert!(msr_apic(25_000.0, 25_000.0).is_empty());
        // exit reasons are exact and add up
        let p = profile(
            true,
            90_000.0,
            &[(ExitKind::Msr, 25_000.0), (ExitKind::Apic, 25_000.0)],
        );
        assert_eq!(rules(&p), ["exit-msr-storm"]);
        let mut p = profile(
            true,
            100.0,
            &[(ExitKind::Mmio, 40.0), (ExitKind::Userspace, 30.0)],
        );
        p.event_kinds = [ExitKind::Mmio, ExitKind::Userspace].into_iter().collect();
        assert_eq!(p.kinds_sum(&[ExitKind::Mmio, ExitKind::Userspace]), 40.0);
    }

    #[test]
    fn external_interrupts_are_judged_per_vcpu() {
        let extint = |vcpus: Option<u32>, rate: f64| {
            let mut p = profile(
                true,
                20_000.0,
                &[
                    (ExitKind::ExternalInterrupt, rate),
                    (ExitKind::Halt, 1_000.0),
                ],
            );
            if let Some(n) = vcpus {
                p.cpu = Some(CpuFigures {
                    host_pct: 100.0,
                    guest_pct: 95.0,
                    emulator_pct: None,
                    vcpus: n,
                });
            }
            diagnose(&p, &Limits::default())
        };
        // fires: 2 vCPUs, 4,000/s each
        let d = extint(Some(2), 8_000.0);
        assert_eq!((d[0].rule, d[0].severity), ("exit-extint", Severity::Warn));
        // near miss: 8 busy vCPUs, 1,000/s each: a host tick, nothing alarming
        assert!(extint(Some(8), 8_000.0).is_empty());
        // the vCPU count unknown (kvm_stat): INFO, not a warning
        let d = extint(None, 8_000.0);
        assert_eq!((d[0].rule, d[0].severity), ("exit-extint", Severity::Info));
        assert!(d[0].message.contains("at most 4 vCPUs"), "{}", d[0].message);
    }

    #[test]
    fn halt_polling_needs_cpu_figures() {
        let mut p = profile(true, 5_000.0, &[(ExitKind::Halt, 4_000.0)]);
        assert!(rules(&p).is_empty());
        p.halt_poll_pct = Some(35.0);
        assert_eq!(rules(&p), ["exit-hlt-poll"]);
        // a perf report has no CPU figures: the rule does not judge it
        let q = profile(false, 500_000.0, &[(ExitKind::Halt, 400_000.0)]);
        assert!(!rules(&q).contains(&"exit-hlt-poll"));
    }

    #[test]
    fn overhead_and_numa() {
        let mut p = profile(true, 10.0, &[]);
        p.cpu = Some(CpuFigures {
            host_pct: 130.0,
            guest_pct: 5.0,
            emulator_pct: Some(60.0),
            vcpus: 2,
        });
        p.remote_share = Some(0.6);
        p.memory_kib = Some(4 << 20);
        assert_eq!(rules(&p), ["overhead-high", "numa-remote"]);
        p.cpu = Some(CpuFigures {
            host_pct: 180.0,
            guest_pct: 170.0,
            emulator_pct: None,
            vcpus: 2,
        });
        p.memory_kib = Some(64 << 10);
        assert!(rules(&p).is_empty());
    }

    #[test]
    fn an_unexplained_flood_is_named() {
        let mut p = profile(true, 600_000.0, &[(ExitKind::Other, 590_000.0)]);
        p.top = vec![("kvm_exit(EXCEPTION_NMI)".into(), 590_000.0)];
        let d = diagnose(&p, &Limits::default());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rule, "exit-rate-high");
        assert!(d[0].message.contains("EXCEPTION_NMI"));
    }

    fn cpu(host: f64, guest: f64) -> Option<CpuFigures> {
        Some(CpuFigures {
            host_pct: host,
            guest_pct: guest,
            emulator_pct: None,
            vcpus: 2,
        })
    }

    /// For every diagnosis: a profile that fires it (and nothing else), and a close one
    /// that must not fire it.
    fn cases() -> Vec<(&'static str, ExitProfile, ExitProfile)> {
        use ExitKind::*;
        let with = |mut p: ExitProfile, f: &dyn Fn(&mut ExitProfile)| {
            f(&mut p);
            p
        };
        vec![
            (
                "exit-io-storm",
                profile(true, 10_000.0, &[(Io, 3_000.0)]),
                // the share is there, the rate just under the limit
                profile(true, 2_500.0, &[(Io, 1_999.0)]),
            ),
            (
                "exit-msr-storm",
                profile(true, 50_000.0, &[(Msr, 15_000.0), (Apic, 5_000.0)]),
                // MSR and APIC together just under the share
                profile(true, 70_000.0, &[(Msr, 15_000.0), (Apic, 5_999.0)]),
            ),
            (
                "exit-hlt-poll",
                with(profile(true, 5_000.0, &[(Halt, 1_000.0)]), &|p| {
                    p.halt_poll_pct = Some(10.0)
                }),
                // polling just under the limit and no CPU figures
                with(profile(true, 5_000.0, &[(Halt, 4_000.0)]), &|p| {
                    p.halt_poll_pct = Some(9.9)
                }),
            ),
            (
                "exit-ept",
                profile(true, 25_000.0, &[(PageFault, 5_000.0)]),
                profile(true, 25_000.0, &[(PageFault, 4_999.0)]),
            ),
            (
                "exit-pause",
                profile(true, 10_000.0, &[(Pause, 1_000.0)]),
                // the rate, but under a tenth of the exits
                profile(true, 10_001.0, &[(Pause, 1_000.0)]),
            ),
            (
                "exit-extint",
                profile(false, 60_000.0, &[(ExternalInterrupt, 20_000.0)]),
                // samples, not a rate: a perf report needs more of them
                profile(false, 60_000.0, &[(ExternalInterrupt, 19_999.0)]),
            ),
            (
                "exit-mmio-emul",
                profile(true, 1_000.0, &[(Emulation, 10_000.0)]),
                profile(true, 20_000.0, &[(Mmio, 5_900.0), (Emulation, 9_999.0)]),
            ),
            (
                "exit-userspace-storm",
                profile(true, 100_000.0, &[(Userspace, 20_000.0), (Halt, 10_000.0)]),
                // the share, but 4,999/s
                profile(true, 20_000.0, &[(Userspace, 4_999.0), (Halt, 10_000.0)]),
            ),
            (
                "exit-shadow-paging",
                profile(false, 27_549.0, &[(ShadowMmu, 18_940.0), (Halt, 5_000.0)]),
                // 9,999 samples: under the level for a report
                profile(false, 27_549.0, &[(ShadowMmu, 9_999.0), (Halt, 5_000.0)]),
            ),
            (
                "exit-guest-loop",
                profile(true, 330_708.0, &[(Exception, 330_604.0), (Halt, 100.0)]),
                // the same exceptions, but the guest also halts 5% of the time: progress
                profile(true, 330_708.0, &[(Exception, 300_000.0), (Halt, 16_536.0)]),
            ),
            (
                "exit-timer-storm",
                with(profile(true, 50_000.0, &[(Msr, 20_000.0)]), &|p| {
                    p.msrs = vec![("0x6e0:W".into(), 500.0), ("0x10:R".into(), 500.0)]
                }),
                // timer writes just under half of the keyed accesses: an MSR storm
                with(profile(true, 50_000.0, &[(Msr, 20_000.0)]), &|p| {
                    p.msrs = vec![("0x6e0:W".into(), 499.0), ("0x10:R".into(), 501.0)]
                }),
            ),
            (
                "exit-ipi-storm",
                with(profile(true, 50_000.0, &[(Apic, 20_000.0)]), &|p| {
                    p.events.insert("kvm_apic_ipi".into(), 15_000.0);
                }),
                with(profile(true, 50_000.0, &[(Apic, 20_000.0)]), &|p| {
                    p.events.insert("kvm_apic_ipi".into(), 9_999.0);
                }),
            ),
            (
                "exit-clock-read",
                with(profile(false, 400_000.0, &[(Msr, 300_000.0)]), &|p| {
                    p.msrs = vec![("0x40000020:R".into(), 500.0), ("0x10:R".into(), 500.0)]
                }),
                // clock reads just under half of the keyed accesses: an MSR storm
                with(profile(false, 400_000.0, &[(Msr, 300_000.0)]), &|p| {
                    p.msrs = vec![("0x40000020:R".into(), 499.0), ("0x10:R".into(), 501.0)]
                }),
            ),
            (
                "exit-data-abort",
                profile(false, 669_000.0, &[(DataAbort, 662_310.0)]),
                // many aborts, but under 30% of the exits
                profile(
                    false,
                    669_000.0,
                    &[(DataAbort, 200_000.0), (Halt, 469_000.0)],
                ),
            ),
            (
                "exit-wfx",
                profile(true, 30_000.0, &[(Wfx, 10_000.0)]),
                profile(true, 30_000.0, &[(Wfx, 9_999.0)]),
            ),
            (
                "overhead-high",
                with(profile(true, 10.0, &[]), &|p| p.cpu = cpu(60.0, 30.0)),
                // 30 points of overhead, but less than twice the guest
                with(profile(true, 10.0, &[]), &|p| p.cpu = cpu(70.0, 40.0)),
            ),
            (
                "numa-remote",
                with(profile(true, 10.0, &[]), &|p| {
                    p.remote_share = Some(0.25);
                    p.memory_kib = Some(512 * 1024);
                }),
                with(profile(true, 10.0, &[]), &|p| {
                    p.remote_share = Some(0.25);
                    p.memory_kib = Some(512 * 1024 - 1);
                }),
            ),
            (
                "tcg-emulated",
                with(profile(true, 0.0, &[]), &|p| {
                    p.virt_type = Some("qemu".into())
                }),
                // a KVM domain with no exits is not emulated
                with(profile(true, 0.0, &[]), &|p| {
                    p.virt_type = Some("kvm".into())
                }),
            ),
            (
                "exit-rate-high",
                profile(true, 100_000.0, &[(Other, 100_000.0)]),
                // the same flood explained by a specific rule
                profile(true, 100_000.0, &[(Io, 40_000.0)]),
            ),
        ]
    }

    #[test]
    fn every_rule_fires_and_its_close_case_does_not() {
        for (id, fires, close) in cases() {
            assert_eq!(rules(&fires), [id], "{id} fires alone");
            assert!(!rules(&close).contains(&id), "{id}: {:?}", rules(&close));
            let d = &diagnose(&fires, &Limits::default())[0];
            let r = rule(id).unwrap();
            assert_eq!(
                (d.title, d.severity, d.cause, d.fix.as_str()),
                (r.title, r.severity, r.why, r.fix),
                "{id}"
            );
            assert_eq!(d.audit_rules, r.audit_rules, "{id}");
            assert!(!d.message.is_empty() && !d.figures.is_empty(), "{id}");
        }
    }

    #[test]
    fn the_table_has_every_rule_once() {
        let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
        // every id emitted is in the table, and every rule of the table is emitted
        let mut emitted: Vec<&str> = cases().iter().flat_map(|(_, f, _)| rules(f)).collect();
        emitted.sort();
        emitted.dedup();
        assert_eq!(emitted, unique);
        let covered: Vec<&str> = cases().iter().map(|(id, _, _)| *id).collect();
        assert_eq!(covered, ids, "one case per rule, in table order");
        for r in RULES {
            assert!(!r.title.is_empty() && !r.why.is_empty() && !r.fix.is_empty());
            assert!(!r.source.is_empty(), "{}", r.id);
            for text in [r.title, r.why, r.fix, r.source] {
                assert!(!text.to_lowercase().contains("seed"), "{}: {text}", r.id);
            }
            assert!(r.severity <= Severity::Warn, "{}", r.id);
        }
        assert!(rule("no-such-rule").is_none());
    }
}

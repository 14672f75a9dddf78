//! Domain rules: guest clock, timers, Hyper-V enlightenments, and whether the guest can see its hypervisor at all (cpu-hypervisor-hidden).

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, virsh_edit};
use kvmtune_domain::GuestOs;

/// The enlightenments advised for Windows guests, with extra attributes.
const HYPERV: &[Enlightenment] = &[
    ("relaxed", &[]),
    ("vapic", &[]),
    ("spinlocks", &[("retries", "8191")]),
    ("vpindex", &[]),
    ("runtime", &[]),
    ("synic", &[]),
    ("stimer", &[]),
    ("frequencies", &[]),
    ("tlbflush", &[]),
    ("ipi", &[]),
];

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "clock-windows",
                title: "Windows guest clock not tuned",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Windows reads its clock and programs timers through emulated hardware unless told otherwise: without the Hyper-V clock (hypervclock) every time read exits to QEMU; with hpet off and no synthetic timers (stimer) Windows 10 falls back to the RTC and ACPI PM timer, an I/O exit storm at idle (a field report: IO_INSTRUCTION 78% of exits, fixed by turning hpet on; OpenNebula: 30-40% idle CPU → 1-3%). rtc catchup and pit delay keep time after a vCPU is descheduled.",
                fix: "<clock offset='localtime'> with <timer name='rtc' tickpolicy='catchup'/>, <timer name='pit' tickpolicy='delay'/>, <timer name='hypervclock' present='yes'/>; with hpet off, the Hyper-V synthetic timers (stimer, with synic and vpindex) where Windows uses them, else hpet present='yes' (with stimer, hpet stays off: this fix and hyperv-enlightenments' make one clock). With the CPUID hypervisor bit disabled the finding is info and points at cpu-hypervisor-hidden: no hypervclock, and hpet present='yes' unless cpu-hypervisor-hidden's fix unhides Hyper-V and brings stimer (then hpet stays off).",
                risk: "Timer changes take effect at the next cold boot; Windows may re-detect the HPET device.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format (time keeping: clock, timer); QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst); \"KVM: High host CPU load after upgrading VM to windows 10 1803\" (hpet fix); virt-manager#205; OpenNebula addon-storpool#79",
                needs_host: false,
            },
            check: clock_windows,
        },
        Rule {
            meta: Meta {
                id: "hyperv-enlightenments",
                title: "Windows guest without Hyper-V enlightenments",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Windows uses Hyper-V paravirtual interfaces when offered: relaxed timing, virtual APIC, spinlock hints, synthetic interrupt controller and timers, TLB flush and IPI hypercalls. Without them it spins on locks, exits on every APIC access and polls timers (MSR and I/O exit storms at idle: 60% of a core in one report).",
                fix: "<features><hyperv mode='custom'> with relaxed, vapic, spinlocks retries='8191', vpindex, runtime, synic, stimer, frequencies, tlbflush, ipi (with 2 or more vCPUs), as the host's QEMU supports them, plus the hypervclock timer. Windows before Vista/2008 (XP, 2003) does not use them and is left alone. When Windows cannot see them there is no fix here: the finding names what hides them. With the CPUID hypervisor bit disabled it is info (cpu-hypervisor-hidden reports the cause, and its fix, where it has one, brings these enlightenments and hypervclock in one apply); with a qemu:commandline -cpu that replaces libvirt's it keeps the rule's level.",
                risk: "Needs a cold boot; Windows re-detects the hypervisor. Very old QEMU lacks some (checked against domain capabilities when available).",
                class: FixClass::GuestVisible,
                source: "QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst); virt-manager#205; OpenNebula addon-storpool#79; chaos-reins blog (wild-domains/08)",
                needs_host: false,
            },
            check: hyperv,
        },
        Rule {
            meta: Meta {
                id: "clock-linux",
                title: "Linux guest without kvmclock",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "kvmclock is the paravirtual clock Linux guests read without exiting; with it disabled the guest falls back to the TSC (unstable across migration) or the HPET/ACPI PM timer (an exit per read).",
                fix: "Remove <timer name='kvmclock' present='no'/> (or set present='yes').",
                risk: "None.",
                class: FixClass::GuestVisible,
                source: "general (Linux paravirtual clock)",
                needs_host: false,
            },
            check: clock_linux,
        },
        Rule {
            meta: Meta {
                id: "cpu-hypervisor-hidden",
                title: "Hypervisor hidden from the guest",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Guests look for paravirtual interfaces only when CPUID leaf 1 sets the hypervisor bit: with it disabled Windows ignores every Hyper-V enlightenment (hypervclock, synthetic timers, APIC and spinlock hints: timer and MSR exit storms at idle) and Linux loses kvmclock, steal time, PV EOI, PV TLB flush and PV spinlocks. <kvm><hidden state='on'/> hides less: only the KVM signature leaves (kvmclock, steal time, PV EOI and the other KVM features are lost to Linux; Hyper-V leaves stay visible to Windows). kvm hidden was the workaround for NVIDIA's GeForce driver refusing to run in a VM (error 43) before driver 465.",
                fix: "Remove <feature policy='disable' name='hypervisor'/> from <cpu> (for a Windows guest, with the Hyper-V enlightenments hyperv-enlightenments advises and the hypervclock timer, in the same fix: while the bit is hidden those rules only point here); set <kvm><hidden state='off'/>. Not when a PCI device is passed through: there hiding is usually deliberate (GPU drivers, anti-cheat).",
                risk: "The guest sees it runs in a VM: software that refuses VMs (some anti-cheat, old NVIDIA drivers) may stop working.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format, CPU model and topology (feature policy) and Hypervisor features (kvm hidden); QEMU documentation, Hyper-V Enlightenments (docs/system/i386/hyperv.rst); Microsoft Hypervisor Top Level Functional Specification (hypervisor discovery: CPUID.1:ECX bit 31); Linux Documentation/virt/kvm/x86/cpuid.rst",
                needs_host: false,
            },
            check: hypervisor_hidden,
        },
    ]
}

fn windows(cx: &Cx) -> Option<(bool, String)> {
    match cx.d.guest_os() {
        GuestOs::Windows(why) => {
            // the libosinfo id is proof; configuration only suggests Windows
            Some((cx.d.os_id.is_none(), why))
        }
        _ => None,
    }
}

/// libosinfo ids (after `microsoft.com/`) of Windows versions older than Vista/2008: they
/// know nothing of Hyper-V (XP, 2003, 2000, 9x/ME, 3.1; NT below).
const PRE_VISTA: &[&str] = &[
    "win/xp",
    "win/2k3",
    "win/2k3r2",
    "win/2k",
    "win/me",
    "win/98",
    "win/95",
    "win/3.1",
];

/// Whether the guest is a Windows version that uses Hyper-V enlightenments: Vista/2008 and
/// later, or a Windows whose version the XML does not tell.
fn uses_hyperv(cx: &Cx) -> bool {
    let Some(id) = cx.d.os_id.as_deref() else {
        return true;
    };
    let Some((_, tail)) = id.split_once("microsoft.com/") else {
        return true;
    };
    let tail = tail.trim_end_matches('/');
    !(PRE_VISTA.contains(&tail) || tail.starts_with("win/nt") || tail.starts_with("msdos"))
}

fn clock_windows(cx: &Cx, out: &mut Out) {
    let Some((suspect, because)) = windows(cx) else {
        return;
    };
    if !cx.d.is_hvm() {
        return;
    }
    let root = cx.d.node;
    let timer = |name: &str| cx.d.clock.as_ref().and_then(|c| c.timer(name));
    let seg = |name: &str| vec![Seg::new("clock"), Seg::keyed("timer", "name", name)];
    let mut problems = Vec::new();
    let mut edits = Vec::new();
    let mut evidence = Vec::new();
    // Hyper-V hidden from Windows (hyperv-enlightenments says by what): the Hyper-V clock
    // and synthetic timers of the XML do not reach it
    let blind = super::rules_qemu::windows_blind(cx);
    // the hypervisor bit itself hidden: cpu-hypervisor-hidden reports the cause (and its
    // fix, where it has one, brings the Hyper-V clock and timers); this rule drops to info
    let hidden = blind.as_ref().is_some_and(|b| b.hv_flags.is_none());
    let unhide_brings_stimer =
        super::rules_qemu::unhide_offered(cx) && unhide_edits(cx).1.contains(&"stimer");
    // Windows before Vista/2008 does not read the Hyper-V clock
    if uses_hyperv(cx)
        && blind.is_none()
        && timer("hypervclock").is_none_or(|t| t.present == Some(false))
    {
        problems.push("no hypervclock");
        edits.push(Edit::set_at(
            cx.doc,
            root,
            seg("hypervclock"),
            "present",
            "yes",
        ));
    }
    if timer("rtc").is_none_or(|t| t.tickpolicy.as_deref() != Some("catchup")) {
        problems.push("rtc without tickpolicy='catchup'");
        edits.push(Edit::set_at(
            cx.doc,
            root,
            seg("rtc"),
            "tickpolicy",
            "catchup",
        ));
    }
    if timer("pit").is_none_or(|t| t.tickpolicy.as_deref() != Some("delay")) {
        problems.push("pit without tickpolicy='delay'");
        edits.push(Edit::set_at(
            cx.doc,
            root,
            seg("pit"),
            "tickpolicy",
            "delay",
        ));
    }
    let stimer = match &blind {
        None => cx.d.features.hyperv_on("stimer"),
        Some(b) => b
            .hv_flags
            .as_ref()
            .is_some_and(|f| f.iter().any(|n| n == "stimer" || n == "passthrough")),
    };
    if let Some(h) = timer("hpet")
        && h.present == Some(false)
        && !stimer
    {
        problems.push(if blind.is_some() {
            "hpet off and the Hyper-V synthetic timers hidden from Windows (the Windows 10 I/O exit storm)"
        } else {
            "hpet off without Hyper-V synthetic timers (the Windows 10 I/O exit storm)"
        });
        evidence.push(cx.ev(h.node));
        if let Some(b) = &blind {
            evidence.extend(b.hider.evidence.iter().cloned());
        }
        if stimer_possible(cx) {
            // the synthetic timers (with what they need: synic, vpindex and the
            // hypervclock above), as hyperv-enlightenments would add them: hpet stays
            // off, and the two fixes make one clock in any order
            for n in ["vpindex", "synic", "stimer"] {
                edits.push(Edit::set_at(
                    cx.doc,
                    root,
                    vec![Seg::new("features"), Seg::new("hyperv"), Seg::new(n)],
                    "state",
                    "on",
                ));
            }
        } else if hidden && unhide_brings_stimer {
            // cpu-hypervisor-hidden's fix unhides Hyper-V and brings stimer: hpet stays off
        } else {
            edits.push(Edit::set(cx.doc, h.node, "present", "yes"));
        }
    }
    if problems.is_empty() {
        return;
    }
    match &cx.d.clock {
        Some(c) => evidence.insert(0, cx.ev(c.node)),
        None => evidence.insert(0, cx.ev_absent(root, "clock")),
    }
    let (sev, tail) = if hidden {
        (
            Severity::Info,
            if unhide_brings_stimer {
                "; the Hyper-V clock and timers wait for the hypervisor bit (cpu-hypervisor-hidden's fix brings them)"
            } else {
                "; the Hyper-V clock and timers wait for the hypervisor bit (see cpu-hypervisor-hidden)"
            },
        )
    } else {
        (out.level, "")
    };
    let f = out.at(
        sev,
        format!("Windows guest clock: {}{tail}", problems.join("; ")),
        evidence,
    );
    if !edits.is_empty() {
        let command = virsh_edit(&cx.shell_name(), &super::edits_as_xml(&edits));
        f.fix(
            "Tune the Windows clock timers",
            edits,
            command,
            Applies::NextBoot,
        );
    }
    if suspect {
        f.suspect()
            .assumed(format!("the guest is Windows because {because}"));
    }
}

type Enlightenment = (&'static str, &'static [(&'static str, &'static str)]);

/// The enlightenments hyperv-enlightenments adds to a Windows guest (none when it does not
/// apply), whichever profile runs.
fn missing_enlightenments(cx: &Cx) -> Vec<&'static Enlightenment> {
    if windows(cx).is_none()
        || !uses_hyperv(cx)
        || !cx.d.is_hvm()
        || cx.d.features.hyperv_mode.as_deref() == Some("passthrough")
        || cx.caps.is_some_and(|c| c.hyperv == Some(false))
    {
        return Vec::new();
    }
    let complete = cx.caps.filter(|c| c.hyperv_lists_all());
    let supported = |n: &str| complete.is_none_or(|c| c.hyperv_features.iter().any(|f| f == n));
    HYPERV
        .iter()
        .filter(|(n, _)| supported(n) && !cx.d.features.hyperv_on(n))
        // IPI hypercalls send interrupts to other vCPUs: a one-vCPU guest has none
        .filter(|(n, _)| *n != "ipi" || cx.d.vcpus() > 1)
        .collect()
}

/// Whether this Windows can have the Hyper-V synthetic timers (a version that uses them,
/// a QEMU that offers them).
fn stimer_possible(cx: &Cx) -> bool {
    super::rules_qemu::windows_blind(cx).is_none()
        && missing_enlightenments(cx)
            .iter()
            .any(|(n, _)| *n == "stimer")
}

fn hyperv(cx: &Cx, out: &mut Out) {
    let Some((suspect, because)) = windows(cx) else {
        return;
    };
    let missing = missing_enlightenments(cx);
    if let Some(b) = super::rules_qemu::windows_blind(cx) {
        hyperv_hidden(cx, out, &missing, b, suspect, &because);
        return;
    }
    if missing.is_empty() {
        return;
    }
    let complete = cx.caps.filter(|c| c.hyperv_lists_all());
    let root = cx.d.node;
    let edits = enlightenment_edits(cx, &missing);
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    let ev = match cx.d.features.hyperv_node {
        Some(h) => cx.ev(h),
        None => cx.ev_absent(cx.d.features.node.unwrap_or(root), "hyperv"),
    };
    let f = out.finding(
        format!("Windows guest without Hyper-V {}", names.join(", ")),
        vec![ev],
    );
    let command = virsh_edit(&cx.shell_name(), &super::edits_as_xml(&edits));
    f.fix(
        format!("Enable Hyper-V {}", names.join(", ")),
        edits,
        command,
        Applies::NextBoot,
    );
    let mut assumed = Vec::new();
    if suspect {
        f.suspect();
        assumed.push(format!("the guest is Windows because {because}"));
    }
    if complete.is_none() {
        assumed.push(if cx.caps.is_some() {
            "this libvirt's domain capabilities do not list Hyper-V features: assumed QEMU 5.1 or later (all of them)".to_string()
        } else {
            "no domain capabilities: assumed QEMU 5.1 or later (all of them)".to_string()
        });
    }
    if !assumed.is_empty() {
        f.assumed(assumed.join("; "));
    }
}

/// The edits that turn on `missing` enlightenments, plus the hypervclock timer stimer
/// needs: hyperv-enlightenments' fix, and part of cpu-hypervisor-hidden's.
fn enlightenment_edits(cx: &Cx, missing: &[&'static Enlightenment]) -> Vec<Edit> {
    let root = cx.d.node;
    let mut edits = Vec::new();
    for (name, extra) in missing {
        let at = vec![Seg::new("features"), Seg::new("hyperv"), Seg::new(name)];
        edits.push(Edit::set_at(cx.doc, root, at.clone(), "state", "on"));
        for (a, v) in extra.iter() {
            edits.push(Edit::set_at(cx.doc, root, at.clone(), a, v));
        }
    }
    // stimer needs the Hyper-V clock
    if missing.iter().any(|(n, _)| *n == "stimer") {
        edits.push(hypervclock_on(cx));
    }
    edits
}

fn hypervclock_on(cx: &Cx) -> Edit {
    Edit::set_at(
        cx.doc,
        cx.d.node,
        vec![
            Seg::new("clock"),
            Seg::keyed("timer", "name", "hypervclock"),
        ],
        "present",
        "yes",
    )
}

/// What cpu-hypervisor-hidden's fix adds once the hypervisor bit is visible, so one apply
/// finishes the job: the enlightenments hyperv-enlightenments would add (when it is on),
/// and the hypervclock timer (when clock-windows or stimer wants it). Empty for a guest
/// that is not a Windows using Hyper-V.
pub(super) fn unhide_edits(cx: &Cx) -> (Vec<Edit>, Vec<&'static str>) {
    if windows(cx).is_none() || !uses_hyperv(cx) || !cx.d.is_hvm() {
        return (Vec::new(), Vec::new());
    }
    let missing = if super::enabled("hyperv-enlightenments", cx.profile) {
        missing_enlightenments(cx)
    } else {
        Vec::new()
    };
    let mut names: Vec<&'static str> = missing.iter().map(|(n, _)| *n).collect();
    let mut edits = enlightenment_edits(cx, &missing);
    let clock_off =
        cx.d.clock
            .as_ref()
            .and_then(|c| c.timer("hypervclock"))
            .is_none_or(|t| t.present == Some(false));
    let stimer = names.contains(&"stimer");
    if clock_off && (stimer || super::enabled("clock-windows", cx.profile)) {
        if !stimer {
            edits.push(hypervclock_on(cx));
        }
        names.push("hypervclock");
    }
    (edits, names)
}

/// hyperv-enlightenments when Windows cannot see what the XML gives it (the hypervisor
/// CPUID bit disabled, or a qemu:commandline -cpu replacing libvirt's): one finding that
/// says so, with no fix (adding enlightenments would change nothing).
fn hyperv_hidden(
    cx: &Cx,
    out: &mut Out,
    missing: &[&'static Enlightenment],
    blind: &super::rules_qemu::Blind,
    suspect: bool,
    because: &str,
) {
    if !uses_hyperv(cx) || !cx.d.is_hvm() {
        return;
    }
    let present: Vec<&str> = if cx.d.features.hyperv_mode.as_deref() == Some("passthrough") {
        vec!["all (mode='passthrough')"]
    } else {
        cx.d.features
            .hyperv
            .iter()
            .filter(|f| f.state != Some(false))
            .map(|f| f.name.as_str())
            .collect()
    };
    let advised: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    let mut what = Vec::new();
    if !present.is_empty() {
        what.push(format!("present: {}", present.join(", ")));
    }
    if !advised.is_empty() {
        what.push(format!("advised: {}", advised.join(", ")));
    }
    let msg = match &blind.hv_flags {
        // the hypervisor bit is off: nothing Hyper-V reaches Windows
        None => {
            if what.is_empty() {
                return;
            }
            let fix = if super::rules_qemu::unhide_offered(cx) {
                "cpu-hypervisor-hidden's fix unhides it and brings the advised enlightenments and hypervclock"
            } else {
                "see cpu-hypervisor-hidden"
            };
            format!(
                "Hyper-V enlightenments ({}) are hidden from Windows by {}: Windows does not look for Hyper-V without the CPUID hypervisor bit, so adding enlightenments changes nothing until the bit is visible ({fix})",
                what.join("; "),
                blind.hider.what
            )
        }
        // a -cpu of its own: Windows gets its hv flags, not the XML's
        Some(flags) => {
            let given = |n: &str| flags.iter().any(|f| f == n || f == "passthrough");
            let lacking: Vec<&str> = HYPERV
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| *n != "ipi" || cx.d.vcpus() > 1)
                .filter(|n| !given(n))
                .collect();
            if lacking.is_empty() {
                return;
            }
            let gets = if flags.is_empty() {
                "no Hyper-V enlightenment".to_string()
            } else {
                format!("only hv-{}", flags.join(", hv-"))
            };
            let xml = if what.is_empty() {
                String::new()
            } else {
                format!(" ({})", what.join("; "))
            };
            format!(
                "the XML's Hyper-V enlightenments{xml} are hidden from Windows by {}: Windows gets {gets} (lacking {}), so the <hyperv> element changes nothing; set them in libvirt's <cpu> and <features><hyperv> instead of the -cpu override",
                blind.hider.what,
                lacking.join(", ")
            )
        }
    };
    // the hypervisor bit hidden: cpu-hypervisor-hidden reports the cause, this is info
    let sev = if blind.hv_flags.is_none() {
        Severity::Info
    } else {
        out.level
    };
    let f = out.at(sev, msg, blind.hider.evidence.clone());
    if suspect {
        f.suspect()
            .assumed(format!("the guest is Windows because {because}"));
    }
}

fn clock_linux(cx: &Cx, out: &mut Out) {
    if !matches!(cx.d.guest_os(), GuestOs::Linux(_)) {
        return;
    }
    let Some(t) = cx.d.clock.as_ref().and_then(|c| c.timer("kvmclock")) else {
        return;
    };
    if t.present == Some(false) {
        out.finding("Linux guest with kvmclock disabled", vec![cx.ev(t.node)])
            .fix(
                "Enable kvmclock",
                vec![Edit::set(cx.doc, t.node, "present", "yes")],
                virsh_edit(&cx.shell_name(), "<timer name='kvmclock' present='yes'/>"),
                Applies::NextBoot,
            );
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
fn hypervisor_hidden(cx: &Cx, out: &mut Out) {
    if !cx.d.is_hvm() {
        return;
    }
    let gpu = super::rules_qemu::pci_passthrough(cx);
    let os = cx.d.guest_os();
    if let Some(h) = super::rules_qemu::hypervisor_hider(cx) {
        let lost = match os {
            GuestOs::Windows(_) => {
                "Windows ignores every Hyper-V enlightenment (hypervclock, synthetic timers, APIC and spinlock hints)"
            }
            GuestOs::Linux(_) => {
                "Linux loses kvmclock, steal time, PV EOI, PV TLB flush and PV spinlocks"
            }
            GuestOs::Unknown => {
                "Windows ignores every Hyper-V enlightenment, Linux loses kvmclock, steal time and the other KVM paravirtual features"
            }
        };
        let mut msg = format!(
            "CPUID hypervisor bit disabled by {}: the guest cannot see that it runs under a hypervisor, so {lost}",
            h.what
        );
        if gpu {
            msg.push_str("; a PCI device is passed through, so this is probably deliberate (GPU drivers or anti-cheat that refuse to run in a VM): no fix offered, but the paravirtual features above are the price");
        }
        let f = out.finding(msg, h.evidence.clone());
        if !gpu && let Some(n) = h.node {
            // with the bit visible, Windows wants the enlightenments and the Hyper-V clock
            // hyperv-enlightenments and clock-windows hold back while it is hidden
            let (extra, names) = unhide_edits(cx);
            let mut what =
                "remove <feature policy='disable' name='hypervisor'/> from <cpu>".to_string();
            let summary = if names.is_empty() {
                "Let the guest see the hypervisor bit".to_string()
            } else {
                what.push_str(&format!("; {}", super::edits_as_xml(&extra)));
                format!(
                    "Let the guest see the hypervisor bit and enable Hyper-V {}",
                    names.join(", ")
                )
            };
            let mut edits = vec![Edit::remove(cx.doc, n)];
            edits.extend(extra);
            f.fix(
                summary,
                edits,
                virsh_edit(&cx.shell_name(), &what),
                Applies::NextBoot,
            );
        }
    }
    if let Some(h) = super::rules_qemu::kvm_hider(cx) {
        let windows = matches!(os, GuestOs::Windows(_));
        let mut msg = format!(
            "KVM signature hidden by {}: the guest does not see the KVM leaves (Linux loses kvmclock, steal time, PV EOI and the other KVM paravirtual features; Hyper-V enlightenments stay visible to Windows)",
            h.what
        );
        let sev = if gpu {
            msg.push_str("; a PCI device is passed through, so this is probably deliberate: kvm hidden is the usual workaround for NVIDIA GeForce drivers refusing to run in a VM (error 43), which drivers 465 and later no longer need");
            Severity::Info
        } else if windows {
            msg.push_str(
                "; a Windows guest uses the Hyper-V leaves, not the KVM ones, and loses little",
            );
            Severity::Info
        } else {
            Severity::Warn
        };
        let f = out.at(sev, msg, h.evidence);
        if !gpu && let Some(n) = h.node {
            f.fix(
                "Let the guest see the KVM leaves",
                vec![Edit::set(cx.doc, n, "state", "off")],
                virsh_edit(&cx.shell_name(), "<features><kvm><hidden state='off'/>"),
                Applies::NextBoot,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// net-model-string

#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    fn osinfo(id: &str) -> String {
        format!(
            "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='{id}'/></libosinfo:libosinfo></metadata>"
        )
    }

    fn win(extra: &str) -> String {
        dom(&format!("{}{extra}", osinfo("http://microsoft.com/win/10")))
    }

    /// Windows of a given libosinfo version (`xp`, `2k8`, ...).
    fn winv(version: &str, extra: &str) -> String {
        dom(&format!(
            "{}{extra}",
            osinfo(&format!("http://microsoft.com/win/{version}"))
        ))
    }

    const NO_HV: &str =
        "<cpu mode='host-passthrough'><feature policy='disable' name='hypervisor'/></cpu>";

    /// Windows 10 with a qemu:commandline `-cpu` override.
    fn qwin(extra: &str, cpu: &str) -> String {
        win(&format!(
            "{extra}<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
<qemu:arg value='-cpu'/><qemu:arg value='{cpu}'/></qemu:commandline>"
        ))
    }

    fn linux(extra: &str) -> String {
        dom(&format!(
            "{}{extra}",
            osinfo("http://fedoraproject.org/fedora/40")
        ))
    }

    pub(crate) fn cases() -> Vec<Case> {
        let good_clock = "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
<timer name='pit' tickpolicy='delay'/><timer name='hypervclock' present='yes'/></clock>";
        let hpet_off = "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
<timer name='pit' tickpolicy='delay'/><timer name='hypervclock' present='yes'/><timer name='hpet' present='no'/></clock>";
        let all_hyperv = "<features><hyperv mode='custom'><relaxed state='on'/><vapic state='on'/>\
<spinlocks state='on' retries='8191'/><vpindex state='on'/><runtime state='on'/><synic state='on'/>\
<stimer state='on'/><frequencies state='on'/><tlbflush state='on'/><ipi state='on'/></hyperv></features>";
        let no_ipi = all_hyperv.replace("<ipi state='on'/>", "");
        vec![
            // clock-windows
            case(
                "windows, no clock",
                "clock-windows",
                "server",
                None,
                vec![win("")],
                WARN,
            ),
            case(
                "windows, tuned clock",
                "clock-windows",
                "server",
                None,
                vec![win(good_clock)],
                NONE,
            ),
            case(
                "windows, hpet off, no stimer",
                "clock-windows",
                "server",
                None,
                vec![win(hpet_off)],
                WARN,
            ),
            case(
                "windows xp, hpet off (no stimer to come)",
                "clock-windows",
                "server",
                None,
                vec![winv(
                    "xp",
                    "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
<timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/></clock>",
                )],
                WARN,
            ),
            case(
                "windows, hpet off with stimer",
                "clock-windows",
                "server",
                None,
                vec![win(&format!("{hpet_off}{all_hyperv}"))],
                NONE,
            ),
            case(
                "linux, no clock",
                "clock-windows",
                "server",
                None,
                vec![linux("")],
                NONE,
            ),
            // hyperv-enlightenments
            case(
                "windows, no hyperv",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win("")],
                WARN,
            ),
            case(
                "windows, relaxed only",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(
                    "<features><hyperv mode='custom'><relaxed state='on'/></hyperv></features>",
                )],
                WARN,
            ),
            case(
                "windows, all enlightenments",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(&format!("{all_hyperv}{good_clock}"))],
                NONE,
            ),
            case(
                "windows, hyperv passthrough",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win("<features><hyperv mode='passthrough'/></features>")],
                NONE,
            ),
            case(
                "linux, no hyperv",
                "hyperv-enlightenments",
                "server",
                None,
                vec![linux("")],
                NONE,
            ),
            case(
                "windows xp, no hyperv",
                "hyperv-enlightenments",
                "server",
                None,
                vec![winv("xp", "")],
                NONE,
            ),
            case(
                "windows 2003 r2, no hyperv",
                "hyperv-enlightenments",
                "server",
                None,
                vec![winv("2k3r2", "")],
                NONE,
            ),
            case(
                "windows 2008, no hyperv",
                "hyperv-enlightenments",
                "server",
                None,
                vec![winv("2k8", "")],
                WARN,
            ),
            case(
                "windows 1 vCPU, all but ipi",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(&format!("<vcpu>1</vcpu>{no_ipi}{good_clock}"))],
                NONE,
            ),
            case(
                "windows 2 vCPUs, all but ipi",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(&format!("<vcpu>2</vcpu>{no_ipi}{good_clock}"))],
                WARN,
            ),
            case(
                "windows xp, tuned clock without hypervclock",
                "clock-windows",
                "server",
                None,
                vec![winv(
                    "xp",
                    "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/></clock>",
                )],
                NONE,
            ),
            case(
                "unknown OS, localtime clock only",
                "clock-windows",
                "server",
                None,
                vec![dom("<clock offset='localtime'/>")],
                NONE,
            ),
            case(
                "unknown OS, hyperv all off",
                "hyperv-enlightenments",
                "server",
                None,
                vec![dom(
                    "<features><hyperv mode='custom'><relaxed state='off'/><vapic state='off'/></hyperv></features>",
                )],
                NONE,
            ),
            case(
                "unknown OS, hyperv relaxed on",
                "hyperv-enlightenments",
                "server",
                None,
                vec![dom(
                    "<features><hyperv mode='custom'><relaxed state='on'/></hyperv></features>",
                )],
                WARN,
            ),
            // Hyper-V hidden from Windows: one finding, no advice to add enlightenments
            case(
                "windows, all enlightenments, hypervisor bit disabled (cpu-hypervisor-hidden's)",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(&format!("{all_hyperv}{good_clock}{NO_HV}"))],
                INFO,
            ),
            case(
                "windows, all enlightenments, kvm hidden (Hyper-V stays visible)",
                "hyperv-enlightenments",
                "server",
                None,
                vec![win(&format!(
                    "{}{good_clock}",
                    all_hyperv.replace("</features>", "<kvm><hidden state='on'/></kvm></features>")
                ))],
                NONE,
            ),
            case(
                "windows xp, hypervisor bit disabled",
                "hyperv-enlightenments",
                "server",
                None,
                vec![winv("xp", NO_HV)],
                NONE,
            ),
            case(
                "windows, -cpu override without hv flags",
                "hyperv-enlightenments",
                "server",
                None,
                vec![qwin(&format!("{all_hyperv}{good_clock}"), "host,kvm=off")],
                WARN,
            ),
            case(
                "windows, -cpu override with hv-passthrough",
                "hyperv-enlightenments",
                "server",
                None,
                vec![qwin(good_clock, "host,hv-passthrough")],
                NONE,
            ),
            case(
                "windows, hpet off with stimer, hypervisor bit disabled",
                "clock-windows",
                "server",
                None,
                vec![win(&format!("{hpet_off}{all_hyperv}{NO_HV}"))],
                INFO,
            ),
            case(
                "windows, no hypervclock, hypervisor bit disabled",
                "clock-windows",
                "server",
                None,
                vec![win(&format!(
                    "{NO_HV}<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/><timer name='pit' tickpolicy='delay'/></clock>"
                ))],
                NONE,
            ),
            // clock-linux
            case(
                "linux, kvmclock off",
                "clock-linux",
                "server",
                None,
                vec![linux(
                    "<clock offset='utc'><timer name='kvmclock' present='no'/></clock>",
                )],
                WARN,
            ),
            case(
                "linux, kvmclock on",
                "clock-linux",
                "server",
                None,
                vec![linux(
                    "<clock offset='utc'><timer name='kvmclock' present='yes'/></clock>",
                )],
                NONE,
            ),
            case(
                "unknown OS, kvmclock off",
                "clock-linux",
                "server",
                None,
                vec![dom(
                    "<clock offset='utc'><timer name='kvmclock' present='no'/></clock>",
                )],
                NONE,
            ),
        ]
    }

    #[test]
    fn clock_rules() {
        run_cases(&cases());
    }

    #[test]
    fn hidden_hyperv_is_one_finding_with_its_cause_and_no_fix() {
        let v = findings(&[win(NO_HV)], "server", None);
        let h: Vec<_> = v
            .iter()
            .filter(|f| f.rule == "hyperv-enlightenments")
            .collect();
        assert_eq!(h.len(), 1, "{v:#?}");
        assert!(h[0].fix.is_none(), "{:#?}", h[0]);
        assert!(
            h[0].message.contains("advised: relaxed"),
            "{}",
            h[0].message
        );
        assert!(
            h[0].message.contains("hidden from Windows by <feature"),
            "{}",
            h[0].message
        );
        assert!(
            h[0].evidence[0].path.ends_with("/cpu/feature"),
            "{:#?}",
            h[0].evidence
        );
        // clock-windows does not advise the Hyper-V clock Windows cannot see
        let c = v.iter().find(|f| f.rule == "clock-windows").unwrap();
        assert!(!c.message.contains("hypervclock"), "{}", c.message);

        let v = findings(
            &[qwin(
                "<features><hyperv mode='custom'><relaxed state='on'/></hyperv></features>",
                "host,hv_vapic",
            )],
            "server",
            None,
        );
        let h: Vec<_> = v
            .iter()
            .filter(|f| f.rule == "hyperv-enlightenments")
            .collect();
        assert_eq!(h.len(), 1, "{v:#?}");
        assert!(h[0].fix.is_none());
        for s in ["present: relaxed", "only hv-vapic", "-cpu 'host,hv_vapic'"] {
            assert!(h[0].message.contains(s), "{s}: {}", h[0].message);
        }
        assert_eq!(h[0].evidence[1].value, "host,hv_vapic");
    }

    const GPU: &str = "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>\
<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev></devices>";

    #[test]
    fn hpet_off_with_hidden_stimer_turns_hpet_on() {
        let hpet_off = "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
<timer name='pit' tickpolicy='delay'/><timer name='hypervclock' present='yes'/><timer name='hpet' present='no'/></clock>";
        // an assigned GPU: the bit stays hidden (no unhide fix), so hpet comes on
        let v = findings(&[win(&format!("{hpet_off}{NO_HV}{GPU}"))], "server", None);
        let c = v.iter().find(|f| f.rule == "clock-windows").unwrap();
        let edits: Vec<String> = c
            .fix
            .as_ref()
            .unwrap()
            .edits
            .iter()
            .map(|e| e.describe())
            .collect();
        assert_eq!(edits.len(), 1, "{edits:?}");
        assert!(edits[0].contains("present = 'yes'"), "{edits:?}");
        assert!(!edits[0].contains("stimer"), "{edits:?}");
    }

    #[test]
    fn hidden_hypervisor_is_reported_once_and_unhiding_finishes_the_job() {
        // /tmp/rv/x/win-hidden.xml: used to be 3 WARNs, and three audits to finish
        let clock = "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/>\
<timer name='pit' tickpolicy='delay'/><timer name='hpet' present='no'/></clock>";
        let src = win(&format!("<vcpu>4</vcpu>{NO_HV}{clock}"));
        let v = findings(std::slice::from_ref(&src), "server", None);
        let warn: Vec<_> = v
            .iter()
            .filter(|f| {
                [
                    "cpu-hypervisor-hidden",
                    "hyperv-enlightenments",
                    "clock-windows",
                ]
                .contains(&f.rule)
                    && f.severity >= crate::audit::Severity::Warn
            })
            .map(|f| f.rule)
            .collect();
        assert_eq!(warn, ["cpu-hypervisor-hidden"], "{v:#?}");
        let h = v
            .iter()
            .find(|f| f.rule == "hyperv-enlightenments")
            .unwrap();
        assert!(
            h.message.contains("cpu-hypervisor-hidden's fix"),
            "{}",
            h.message
        );
        let c = v.iter().find(|f| f.rule == "clock-windows").unwrap();
        assert!(c.message.contains("cpu-hypervisor-hidden"), "{}", c.message);
        assert!(
            c.fix.is_none(),
            "hpet stays off: stimer comes with the unhide fix"
        );
        let x = v
            .iter()
            .find(|f| f.rule == "cpu-hypervisor-hidden")
            .and_then(|f| f.fix.as_ref())
            .unwrap();
        for s in ["stimer", "relaxed", "hypervclock"] {
            assert!(x.summary.contains(s), "{s}: {}", x.summary);
        }
        // one apply of that fix alone: the three rules have nothing left to fix
        let (mut doc, _) = kvmtune_domain::Domain::parse(&src).unwrap();
        crate::audit::apply(&mut doc, &x.edits);
        let fixed = doc.serialize();
        let v = findings(&[fixed], "server", None);
        let left: Vec<_> = v
            .iter()
            .filter(|f| {
                [
                    "cpu-hypervisor-hidden",
                    "hyperv-enlightenments",
                    "clock-windows",
                ]
                .contains(&f.rule)
            })
            .collect();
        assert!(left.is_empty(), "{left:#?}");
    }
}

//! Domain rules: CPU model, topology and size.

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, virsh_edit};

/// Named CPU models that hide most of a current host's features (AVX, AES-NI, ...).
pub(super) const OLD_MODELS: &[&str] = &[
    "qemu64",
    "qemu32",
    "kvm64",
    "kvm32",
    "486",
    "pentium",
    "pentium2",
    "pentium3",
    "coreduo",
    "core2duo",
    "n270",
    "athlon",
    "phenom",
    "Conroe",
    "Penryn",
    "Nehalem",
    "Nehalem-IBRS",
    "Westmere",
    "Westmere-IBRS",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
];

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "domain-values",
                title: "Sizes or counts that cannot be understood",
                severity: Severity::Error,
                profiles: &["*"],
                why: "A vCPU count or memory size that is not a number, negative, zero, overflowing or in an unknown unit is refused by libvirt or means something else than it seems; kvmtune cannot judge or plan such a domain and says so instead of guessing 1 vCPU or 0 MiB.",
                fix: "Write the value as libvirt expects: <vcpu> a whole number from 1 to the host's limit, <memory unit='KiB|MiB|GiB|...'> a positive whole number.",
                risk: "None: the domain cannot be defined as written.",
                class: FixClass::Safe,
                source: "libvirt domain format (CPU allocation, memory allocation)",
                needs_host: false,
            },
            check: domain_values,
        },
        Rule {
            meta: Meta {
                id: "virt-type",
                title: "Domain runs under TCG emulation on a KVM host",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "type='qemu' makes QEMU emulate every instruction (TCG), one to two orders of magnitude slower than type='kvm', although this host has a usable /dev/kvm.",
                fix: "Set <domain type='kvm'>.",
                risk: "None on a host with working KVM; the guest sees a different CPU after the change, like any CPU model change.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format (domain type); KVM 技术详解与实践 (KVM in Depth and Practice), ch. 2.1",
                needs_host: true,
            },
            check: virt_type,
        },
        Rule {
            meta: Meta {
                id: "cpu-mode",
                title: "CPU model hides host features",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Without <cpu>, or with an old named model (qemu64, Nehalem, ...), the guest lacks instructions such as AVX, AES-NI and PCID: crypto, compression and context switches cost more, and in digoal's 2015 example an idle guest used 9% host CPU until its CPU model was changed. host-model gives the guest the host's features and still migrates between like hosts; host-passthrough gives everything but ties the guest to identical CPUs.",
                fix: "<cpu mode='host-model'/> (host-passthrough on the latency profile); a migratable profile keeps host-model, and leaves a named model (even an old one such as Nehalem) alone: it is the pool's chosen baseline. Where cpu-invtsc is on and the host's TSC is invariant, the fix also requires invtsc, so cpu-invtsc has nothing left to add.",
                risk: "The guest sees a new CPU: some licensed software re-activates; live migration needs destination hosts with at least the same features (host-passthrough: identical CPUs).",
                class: FixClass::GuestVisible,
                source: "digoal, \"KVM VM CPU overhead: an optimisation example (CPU flags)\", blog, 2015; KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.3; libvirt domain format (CPU model and topology)",
                needs_host: false,
            },
            check: cpu_mode,
        },
        Rule {
            meta: Meta {
                id: "cpu-topology",
                title: "vCPUs presented as separate sockets",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "N sockets × 1 core (QEMU's old -smp default) misleads the guest scheduler and licensing: Windows client editions use at most 2 sockets, so vCPUs beyond them sit idle; per-socket licensed software charges more.",
                fix: "<topology sockets='1' cores='N' threads='1'/> (threads='2' only when vCPU pairs are pinned on SMT siblings).",
                risk: "The guest sees a new topology at next boot; harmless for Linux, Windows may re-detect hardware.",
                class: FixClass::GuestVisible,
                source: "digoal, \"KVM VM CPU overhead: an optimisation example (CPU flags)\", blog, 2015 (-smp 4,sockets=4); libvirt domain format (CPU model and topology)",
                needs_host: false,
            },
            check: cpu_topology,
        },
        Rule {
            meta: Meta {
                id: "cpu-exceeds-host",
                title: "More vCPUs than host CPUs",
                severity: Severity::Error,
                profiles: &["*"],
                why: "A guest with more vCPUs than the host (or the node it is pinned into) has threads runs vCPUs in turns: spinlocks and IPIs wait on descheduled vCPUs (lock-holder preemption) and the guest is slower than with fewer vCPUs.",
                fix: "Lower <vcpu> to at most the host's threads (or the node's, when pinned into one node).",
                risk: "The guest has fewer vCPUs at next boot.",
                class: FixClass::GuestVisible,
                source: "Red Hat Enterprise Linux 7 Virtualization Deployment and Administration Guide, \"Overcommitting with KVM\"",
                needs_host: true,
            },
            check: cpu_exceeds,
        },
        Rule {
            meta: Meta {
                id: "cpu-hotplug",
                title: "Hot-pluggable vCPU maximum above host CPUs",
                severity: Severity::Info,
                profiles: &["*"],
                why: "current < max is fine for hot-plug, but a maximum above the host's threads can never be used well and makes QEMU reserve per-vCPU state.",
                fix: "Lower the <vcpu> maximum to the host's threads.",
                risk: "None for the running guest; fewer vCPUs can be hot-plugged later.",
                class: FixClass::GuestVisible,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.2",
                needs_host: true,
            },
            check: cpu_hotplug,
        },
        Rule {
            meta: Meta {
                id: "cpu-nested",
                title: "Guest needs nested virtualization the host does not offer",
                severity: Severity::Error,
                profiles: &["*"],
                why: "The domain requires vmx/svm in the guest, but the host's kvm_intel/kvm_amd module has nested=0: the guest cannot run its own KVM (or the domain fails to start with a required feature).",
                fix: "Enable nesting on the host: 'options kvm_intel nested=1' (or kvm_amd) in /etc/modprobe.d/, reload the module with no guests running.",
                risk: "Reloading the KVM module needs every guest stopped; nesting widens the guest's attack surface.",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.4",
                needs_host: true,
            },
            check: cpu_nested,
        },
    ]
}

pub(super) fn x86(cx: &Cx) -> bool {
    cx.d.is_hvm()
        && cx
            .d
            .os
            .arch
            .as_deref()
            .is_none_or(|a| a == "x86_64" || a == "i686")
}

/// TCG domain on a host whose KVM works: virt-type will move it to KVM.
pub(super) fn tcg_on_kvm_host(cx: &Cx) -> bool {
    cx.d.virt_type == "qemu" && cx.host.is_some_and(|h| h.kvm.dev_kvm.openable) && x86(cx)
}

fn domain_values(cx: &Cx, out: &mut Out) {
    for bad in &cx.d.invalid {
        out.finding(
            format!("{} is {:?}: {}", bad.path, bad.value.trim(), bad.why),
            vec![super::Evidence {
                path: bad.path.clone(),
                line: None,
                value: bad.value.clone(),
            }],
        );
    }
}

fn virt_type(cx: &Cx, out: &mut Out) {
    if !tcg_on_kvm_host(cx) {
        return;
    }
    out.finding(
        "type='qemu': every instruction is emulated although /dev/kvm works here",
        vec![cx.ev_attr(cx.d.node, "type")],
    )
    .fix(
        "Run the domain under KVM",
        vec![Edit::set(cx.doc, cx.d.node, "type", "kvm")],
        virsh_edit(&cx.shell_name(), "<domain type='kvm'>"),
        Applies::NextBoot,
    );
}

const INVTSC_RISK: &str = "With invtsc, QEMU blocks live migration unless the TSC frequency is set (<clock><timer name='tsc' frequency=...>).";

const PASSTHROUGH_RISK: &str = "The guest sees the host's own CPU (some licensed software re-activates); it can then live-migrate only to hosts with identical CPUs.";

/// A profile that keeps domains live-migratable (it avoids pinning): a named CPU model is
/// its pool's chosen baseline.
fn migratable(cx: &Cx) -> bool {
    cx.profile.domain.pinning == kvmtune_profile::Want::Avoid
}

/// Whether cpu-mode's fix writes a new CPU mode in place of a missing, model-less, old or
/// unusable CPU model (and so brings invtsc along, see cpu-invtsc).
pub(super) fn cpu_mode_rewrites(cx: &Cx) -> bool {
    if !super::enabled("cpu-mode", cx.profile)
        || !x86(cx)
        || (cx.d.virt_type != "kvm" && !tcg_on_kvm_host(cx))
    {
        return false;
    }
    match &cx.d.cpu {
        None => true,
        Some(c) if c.mode() == "custom" => match &c.model {
            None => true,
            Some(m) => {
                cx.caps.and_then(|c| c.model_usable(m)) == Some(false)
                    || (OLD_MODELS.contains(&m.as_str()) && !migratable(cx))
            }
        },
        // latency: host-model becomes host-passthrough
        Some(c) => {
            c.mode() == "host-model"
                && cx.profile.domain.cpu_mode == "host-passthrough"
                && cx.caps.is_none_or(|k| k.host_passthrough != Some(false))
        }
    }
}

fn cpu_mode(cx: &Cx, out: &mut Out) {
    if !x86(cx) || (cx.d.virt_type != "kvm" && !tcg_on_kvm_host(cx)) {
        return; // TCG guests: host-model/passthrough do not apply (see virt-type)
    }
    let want = cx.profile.domain.cpu_mode.as_str();
    let want = match (want, cx.caps) {
        ("host-passthrough", Some(c)) if c.host_passthrough == Some(false) => "host-model",
        (w, _) => w,
    };
    let root = cx.d.node;
    let fix_edits = |cx: &Cx| {
        let mut v = vec![Edit::set_at(
            cx.doc,
            root,
            vec![Seg::new("cpu")],
            "mode",
            want,
        )];
        if let Some(c) = &cx.d.cpu {
            if c.match_.is_some() {
                v.push(Edit::unset(cx.doc, c.node, "match"));
            }
            if let Some(m) = c.model_node {
                v.push(Edit::remove(cx.doc, m));
            }
        }
        v
    };
    let (message, evidence) = match &cx.d.cpu {
        None => (
            "no <cpu>: the guest gets QEMU's generic qemu64 CPU".to_string(),
            vec![cx.ev_absent(root, "cpu")],
        ),
        Some(c) if c.mode() == "custom" => match &c.model {
            None => (
                "<cpu> without a model: the guest gets QEMU's generic qemu64 CPU".to_string(),
                vec![cx.ev(c.node)],
            ),
            Some(m) if cx.caps.and_then(|c| c.model_usable(m)) == Some(false) => (
                format!(
                    "CPU model {m} is not usable on this host (domain capabilities): the domain fails to start or loses features"
                ),
                vec![cx.ev(c.model_node.unwrap_or(c.node))],
            ),
            // a migratable pool picks a named baseline on purpose: no host-model advice
            Some(m) if OLD_MODELS.contains(&m.as_str()) && !migratable(cx) => (
                format!("CPU model {m} hides the host's newer features"),
                vec![cx.ev(c.model_node.unwrap_or(c.node))],
            ),
            Some(_) => return,
        },
        Some(c)
            if c.mode() == "host-passthrough"
                && cx.profile.domain.pinning == kvmtune_profile::Want::Avoid =>
        {
            let f = out.finding(
                "host-passthrough ties the guest to hosts with identical CPUs (migratable profile)",
                vec![cx.ev_attr(c.node, "mode")],
            );
            f.fix(
                "Use host-model",
                vec![Edit::set(cx.doc, c.node, "mode", "host-model")],
                virsh_edit(&cx.shell_name(), "<cpu mode='host-model'/>"),
                Applies::NextBoot,
            );
            return;
        }
        Some(c) if c.mode() == "host-model" && want == "host-passthrough" => {
            let invtsc = invtsc_wanted(cx) && !c.features.iter().any(|f| f.name == "invtsc");
            let mut edits = vec![Edit::set(cx.doc, c.node, "mode", "host-passthrough")];
            let (summary, xml, risk) = if invtsc {
                edits.push(Edit::set_at(
                    cx.doc,
                    root,
                    vec![Seg::new("cpu"), Seg::keyed("feature", "name", "invtsc")],
                    "policy",
                    "require",
                ));
                (
                    "Use host-passthrough and require invtsc (cpu-invtsc)",
                    "<cpu mode='host-passthrough'><feature policy='require' name='invtsc'/></cpu>",
                    format!("{PASSTHROUGH_RISK} {INVTSC_RISK}"),
                )
            } else {
                (
                    "Use host-passthrough",
                    "<cpu mode='host-passthrough'/>",
                    PASSTHROUGH_RISK.to_string(),
                )
            };
            out.at(
                Severity::Info,
                "host-model on the latency profile: host-passthrough exposes every host feature and cache detail",
                vec![cx.ev_attr(c.node, "mode")],
            )
            .fix(
                summary,
                edits,
                virsh_edit(&cx.shell_name(), xml),
                Applies::NextBoot,
            )
            .class(FixClass::Migration, risk);
            return;
        }
        Some(_) => return,
    };
    // cpu-invtsc stays quiet while this rule rewrites the CPU: the invtsc it would add
    // comes with this fix, so one apply finishes the job
    let invtsc = invtsc_wanted(cx)
        && !cx
            .d
            .cpu
            .as_ref()
            .is_some_and(|c| c.features.iter().any(|f| f.name == "invtsc"));
    let mut edits = fix_edits(cx);
    if invtsc {
        edits.push(Edit::set_at(
            cx.doc,
            root,
            vec![Seg::new("cpu"), Seg::keyed("feature", "name", "invtsc")],
            "policy",
            "require",
        ));
    }
    let f = out.finding(message, evidence);
    if invtsc {
        f.fix(
            format!("Use <cpu mode='{want}'> and require invtsc (cpu-invtsc)"),
            edits,
            virsh_edit(
                &cx.shell_name(),
                &format!("<cpu mode='{want}'><feature policy='require' name='invtsc'/></cpu>"),
            ),
            Applies::NextBoot,
        );
        let base = if want == "host-passthrough" {
            PASSTHROUGH_RISK
        } else {
            "The guest sees a new CPU (some licensed software re-activates)."
        };
        f.class(FixClass::Migration, format!("{base} {INVTSC_RISK}"));
    } else {
        f.fix(
            format!("Use <cpu mode='{want}'>"),
            edits,
            virsh_edit(&cx.shell_name(), &format!("<cpu mode='{want}'/>")),
            Applies::NextBoot,
        );
        if want == "host-passthrough" {
            f.class(FixClass::Migration, PASSTHROUGH_RISK);
        }
    }
    if cx.caps.is_none() {
        f.assumed(format!(
            "{want} is supported by the host's QEMU (no domain capabilities to check)"
        ));
    }
}

/// QEMU machine types from 6.2 on prefer cores to sockets when only a count is given.
fn machine_prefers_cores(machine: Option<&str>) -> Option<bool> {
    let m = machine?;
    if let Some(r) = m.strip_prefix("rhel") {
        // RHEL machine types: rhel9 is QEMU 6.2 and later
        return r
            .split('.')
            .next()?
            .parse::<u32>()
            .ok()
            .map(|major| major >= 9);
    }
    let v = m.rsplit('-').next()?;
    let mut it = v.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    Some((major, minor) >= (6, 2))
}

fn windows_client(cx: &Cx) -> bool {
    cx.d.os_id.as_deref().is_some_and(|id| {
        ["win/7", "win/8", "win/10", "win/11", "win/xp", "win/vista"]
            .iter()
            .any(|w| id.contains(w))
    })
}

fn cpu_topology(cx: &Cx, out: &mut Out) {
    let n = cx.d.vcpu.max;
    if n <= 1 || !x86(cx) {
        return;
    }
    let cells = cx.d.cpu.as_ref().is_some_and(|c| !c.cells.is_empty());
    let topo = cx.d.cpu.as_ref().and_then(|c| c.topology.as_ref());
    let fix = |f: &mut super::Finding, cx: &Cx| {
        if cells {
            return; // cores per cell must match the guest NUMA layout: left to the admin
        }
        let root = cx.d.node;
        let at = || vec![Seg::new("cpu"), Seg::new("topology")];
        let mut edits = vec![
            Edit::set_at(cx.doc, root, at(), "sockets", "1"),
            Edit::set_at(cx.doc, root, at(), "cores", &n.to_string()),
            Edit::set_at(cx.doc, root, at(), "threads", "1"),
        ];
        if topo.is_some_and(|t| t.dies.is_some()) {
            edits.push(Edit::set_at(cx.doc, root, at(), "dies", "1"));
        }
        if topo.is_some_and(|t| t.clusters.is_some()) {
            edits.push(Edit::set_at(cx.doc, root, at(), "clusters", "1"));
        }
        f.fix(
            format!("Present one socket with {n} cores"),
            edits,
            virsh_edit(
                &cx.shell_name(),
                &format!("<cpu><topology sockets='1' cores='{n}' threads='1'/></cpu>"),
            ),
            Applies::NextBoot,
        );
    };
    match topo {
        Some(t) => {
            let sockets = t.sockets.unwrap_or(1);
            if sockets > 1 && t.cores.unwrap_or(1) == 1 && t.threads.unwrap_or(1) == 1 {
                let win = windows_client(cx) && sockets > 2;
                let sev = if win { Severity::Error } else { out.level };
                let msg = if win {
                    format!(
                        "{sockets} sockets × 1 core on a Windows client edition: it uses only 2 sockets, so {} of {n} vCPUs stay idle",
                        n.saturating_sub(2)
                    )
                } else {
                    format!("{sockets} sockets × 1 core: the guest sees {sockets} single-core CPUs")
                };
                let f = out.at(sev, msg, vec![cx.ev(t.node)]);
                fix(f, cx);
            }
        }
        None => {
            if machine_prefers_cores(cx.d.os.machine.as_deref()) != Some(false) {
                return; // unversioned or >= 6.2 machine types default to cores
            }
            let win = windows_client(cx) && n > 2;
            let msg = format!(
                "no <topology> on machine type {}: QEMU before 6.2 presents {n} sockets × 1 core",
                cx.d.os.machine.as_deref().unwrap_or("?")
            );
            let sev = if win { Severity::Error } else { Severity::Info };
            let f = out.at(
                sev,
                if win {
                    format!("{msg}; a Windows client edition uses only 2 of them")
                } else {
                    msg
                },
                vec![
                    cx.d.vcpu
                        .node
                        .map(|v| cx.ev(v))
                        .unwrap_or_else(|| cx.ev_absent(cx.d.node, "vcpu")),
                ],
            );
            f.suspect();
            fix(f, cx);
        }
    }
}

fn host_threads(cx: &Cx) -> Option<u32> {
    cx.host_cpus().map(|s| s.len() as u32)
}

/// The host CPUs the domain's vCPUs may run on, from `<vcpu cpuset>` or the pins.
pub(super) fn vcpu_cpus(cx: &Cx) -> Option<kvmtune_host::CpuSet> {
    let pins = cx.d.cputune.as_ref().map(|t| &t.vcpupin);
    match pins {
        Some(p) if !p.is_empty() => {
            let mut all = kvmtune_host::CpuSet::new();
            for pin in p {
                super::cpuset(&pin.cpuset)?
                    .iter()
                    .for_each(|c| all.insert(c));
            }
            Some(all)
        }
        _ => super::cpuset(cx.d.vcpu.cpuset.as_deref()?),
    }
}

fn cpu_exceeds(cx: &Cx, out: &mut Out) {
    let Some(t) = host_threads(cx) else { return };
    let n = cx.d.vcpus();
    let ev = vec![
        cx.d.vcpu
            .node
            .map(|v| cx.ev(v))
            .unwrap_or_else(|| cx.ev_absent(cx.d.node, "vcpu")),
    ];
    if n > t {
        out.finding(format!("{n} vCPUs on a host with {t} CPU threads"), ev);
        return;
    }
    if let Some(cpus) = vcpu_cpus(cx) {
        let nodes: std::collections::BTreeSet<u32> =
            cpus.iter().filter_map(|c| cx.node_of(c)).collect();
        if nodes.len() == 1 && (cpus.len() as u32) < n {
            out.at(
                Severity::Warn,
                format!("{n} vCPUs share {} host CPUs ({})", cpus.len(), cpus),
                ev,
            );
        }
    }
}

fn cpu_hotplug(cx: &Cx, out: &mut Out) {
    let Some(t) = host_threads(cx) else { return };
    let v = &cx.d.vcpu;
    if v.current.is_some_and(|c| c < v.max && c <= t) && v.max > t {
        out.finding(
            format!(
                "maximum {} vCPUs ({} at boot) on a host with {t} threads",
                v.max,
                v.online()
            ),
            vec![
                v.node
                    .map(|n| cx.ev(n))
                    .unwrap_or_else(|| cx.ev_absent(cx.d.node, "vcpu")),
            ],
        );
    }
}

fn cpu_nested(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    let Some(cpu) = &cx.d.cpu else { return };
    let Some(f) = cpu.features.iter().find(|f| {
        (f.name == "vmx" || f.name == "svm")
            && matches!(
                f.policy.as_deref().unwrap_or("require"),
                "require" | "force" | "optional"
            )
    }) else {
        return;
    };
    for m in ["kvm_intel", "kvm_amd"] {
        if let Some(v) = h.kvm.modules.get(m).and_then(|p| p.get("nested"))
            && !v.starts_with(['1', 'Y', 'y'])
        {
            out.finding(
                format!("the guest requires {} but {m}.nested={v}", f.name),
                vec![
                    cx.ev(f.node),
                    super::Evidence {
                        path: format!("/sys/module/{m}/parameters/nested"),
                        line: None,
                        value: v.clone(),
                    },
                ],
            );
        }
    }
}

/// Whether a guest on this host should be told its TSC is invariant: cpu-invtsc is on in
/// the profile, the host's TSC is invariant, the guest is an x86 non-Windows one. cpu-mode
/// adds invtsc to the CPU mode it writes when this holds, so one apply finishes the job.
pub(super) fn invtsc_wanted(cx: &Cx) -> bool {
    let Some(h) = cx.host else { return false };
    let flag = |f: &str| h.cpu.virt_flags.iter().any(|x| x == f);
    x86(cx)
        && super::enabled("cpu-invtsc", cx.profile)
        // Windows reads time through the Hyper-V reference TSC page (hypervclock, see
        // clock-windows and hyperv-enlightenments); the clocksource switch is Linux's
        && !matches!(cx.d.guest_os(), kvmtune_domain::GuestOs::Windows(_))
        && flag("constant_tsc")
        && flag("nonstop_tsc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Cx, DomainCaps, Peer, audit};
    use kvmtune_domain::Domain;

    #[test]
    fn domain_capabilities_decide_model_usability_and_assumptions_are_stated() {
        let xml = "<domain type='kvm'><name>a</name><memory>1048576</memory><os><type arch='x86_64'>hvm</type></os>\
<cpu mode='custom'><model>Icelake-Server</model></cpu></domain>";
        let (doc, d) = Domain::parse(xml).unwrap();
        let profile = kvmtune_profile::Profile::load("server").unwrap();
        let peers = [Peer {
            domain: &d,
            active: false,
        }];
        let caps = DomainCaps::parse(
            "<domainCapabilities><domain>kvm</domain><cpu><mode name='custom' supported='yes'>\
<model usable='no'>Icelake-Server</model></mode></cpu></domainCapabilities>",
        )
        .unwrap();
        let with = audit(&Cx {
            doc: &doc,
            d: &d,
            profile: &profile,
            host: None,
            caps: Some(&caps),
            peers: &peers,
            memo: Default::default(),
        });
        let f = with.iter().find(|f| f.rule == "cpu-mode").unwrap();
        assert!(f.message.contains("not usable"), "{}", f.message);
        assert!(f.assumed.is_none());
        // a modern named model with no capabilities to check is left alone
        let without = audit(&Cx {
            doc: &doc,
            d: &d,
            profile: &profile,
            host: None,
            caps: None,
            peers: &peers,
            memo: Default::default(),
        });
        assert!(!without.iter().any(|f| f.rule == "cpu-mode"));
        // no <cpu> without capabilities: the fix says what it assumed
        let (doc2, d2) =
            Domain::parse("<domain type='kvm'><name>b</name><os><type>hvm</type></os></domain>")
                .unwrap();
        let peers2 = [Peer {
            domain: &d2,
            active: false,
        }];
        let f = audit(&Cx {
            doc: &doc2,
            d: &d2,
            profile: &profile,
            host: None,
            caps: None,
            peers: &peers2,
            memo: Default::default(),
        });
        let f = f.iter().find(|f| f.rule == "cpu-mode").unwrap();
        assert!(
            f.assumed
                .as_deref()
                .unwrap()
                .contains("host-model is supported"),
            "{:?}",
            f.assumed
        );
    }

    #[test]
    fn machine_type_versions() {
        assert_eq!(machine_prefers_cores(Some("pc-q35-7.0")), Some(true));
        assert_eq!(machine_prefers_cores(Some("pc-i440fx-6.2")), Some(true));
        assert_eq!(machine_prefers_cores(Some("pc-i440fx-2.12")), Some(false));
        assert_eq!(machine_prefers_cores(Some("rhel6.6.0")), Some(false));
        assert_eq!(machine_prefers_cores(Some("q35")), None);
        assert_eq!(machine_prefers_cores(None), None);
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    const WIN10: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata>";

    fn tcg(extra: &str) -> String {
        dom(extra).replace("<domain type='kvm'>", "<domain type='qemu'>")
    }

    fn old_machine(extra: &str) -> String {
        dom(extra).replace("machine='q35'", "machine='pc-i440fx-2.12'")
    }

    fn nested(v: &str) -> Option<kvmtune_host::Host> {
        let mut h = host16();
        h.kvm
            .modules
            .entry("kvm_intel".into())
            .or_default()
            .insert("nested".into(), v.into());
        Some(h)
    }

    pub(crate) fn cases() -> Vec<Case> {
        let hm = "<cpu mode='host-model'/>";
        let vmx = "<cpu mode='host-model'><feature policy='require' name='vmx'/></cpu>";
        vec![
            // domain-values
            case(
                "negative vCPU count",
                "domain-values",
                "server",
                None,
                vec![dom("<vcpu>-4</vcpu>")],
                ERROR,
            ),
            case(
                "vCPUs overflowing 64 bits",
                "domain-values",
                "server",
                None,
                vec![dom("<vcpu>18446744073709551616</vcpu>")],
                ERROR,
            ),
            case(
                "four vCPUs",
                "domain-values",
                "server",
                None,
                vec![dom("<vcpu>4</vcpu>")],
                NONE,
            ),
            // virt-type
            case(
                "tcg on a kvm host",
                "virt-type",
                "server",
                Some(host16()),
                vec![tcg(hm)],
                WARN,
            ),
            case(
                "kvm domain",
                "virt-type",
                "server",
                Some(host16()),
                vec![dom(hm)],
                NONE,
            ),
            case(
                "tcg, /dev/kvm unusable",
                "virt-type",
                "server",
                Some(blank_host()),
                vec![tcg(hm)],
                NONE,
            ),
            // cpu-mode
            case("no <cpu>", "cpu-mode", "server", None, vec![dom("")], WARN),
            case(
                "host-model",
                "cpu-mode",
                "server",
                None,
                vec![dom(hm)],
                NONE,
            ),
            case(
                "old named model",
                "cpu-mode",
                "server",
                None,
                vec![dom("<cpu mode='custom'><model>Nehalem</model></cpu>")],
                WARN,
            ),
            case(
                "current named model",
                "cpu-mode",
                "server",
                None,
                vec![dom(
                    "<cpu mode='custom'><model>Icelake-Server</model></cpu>",
                )],
                NONE,
            ),
            case(
                "latency: host-model",
                "cpu-mode",
                "latency",
                None,
                vec![dom(hm)],
                INFO,
            ),
            case(
                "latency: host-passthrough",
                "cpu-mode",
                "latency",
                None,
                vec![dom("<cpu mode='host-passthrough'/>")],
                NONE,
            ),
            case(
                "migratable: host-passthrough",
                "cpu-mode",
                "migratable",
                None,
                vec![dom("<cpu mode='host-passthrough'/>")],
                WARN,
            ),
            // cpu-topology
            case(
                "4 sockets x 1 core",
                "cpu-topology",
                "server",
                None,
                vec![dom(
                    "<vcpu>4</vcpu><cpu mode='host-model'><topology sockets='4' cores='1' threads='1'/></cpu>",
                )],
                WARN,
            ),
            case(
                "1 socket x 4 cores",
                "cpu-topology",
                "server",
                None,
                vec![dom(
                    "<vcpu>4</vcpu><cpu mode='host-model'><topology sockets='1' cores='4' threads='1'/></cpu>",
                )],
                NONE,
            ),
            case(
                "windows 10, 4 sockets",
                "cpu-topology",
                "server",
                None,
                vec![dom(&format!(
                    "{WIN10}<vcpu>4</vcpu><cpu mode='host-model'><topology sockets='4' cores='1' threads='1'/></cpu>"
                ))],
                ERROR,
            ),
            case(
                "no topology, machine 2.12",
                "cpu-topology",
                "server",
                None,
                vec![old_machine("<vcpu>4</vcpu><cpu mode='host-model'/>")],
                INFO,
            ),
            case(
                "no topology, unversioned machine",
                "cpu-topology",
                "server",
                None,
                vec![dom("<vcpu>4</vcpu><cpu mode='host-model'/>")],
                NONE,
            ),
            // cpu-exceeds-host
            case(
                "32 vCPUs on 16 threads",
                "cpu-exceeds-host",
                "server",
                Some(host16()),
                vec![dom("<vcpu>32</vcpu>")],
                ERROR,
            ),
            case(
                "16 vCPUs on 16 threads",
                "cpu-exceeds-host",
                "server",
                Some(host16()),
                vec![dom("<vcpu>16</vcpu>")],
                NONE,
            ),
            case(
                "4 vCPUs on 2 CPUs of one node",
                "cpu-exceeds-host",
                "server",
                Some(host2n()),
                vec![dom("<vcpu cpuset='0-1'>4</vcpu>")],
                WARN,
            ),
            case(
                "4 vCPUs on 4 CPUs of one node",
                "cpu-exceeds-host",
                "server",
                Some(host2n()),
                vec![dom("<vcpu cpuset='0-3'>4</vcpu>")],
                NONE,
            ),
            // cpu-hotplug
            case(
                "max 32 over 16 threads",
                "cpu-hotplug",
                "server",
                Some(host16()),
                vec![dom("<vcpu current='4'>32</vcpu>")],
                INFO,
            ),
            case(
                "max 16 on 16 threads",
                "cpu-hotplug",
                "server",
                Some(host16()),
                vec![dom("<vcpu current='4'>16</vcpu>")],
                NONE,
            ),
            // cpu-nested
            case(
                "vmx required, nested=0",
                "cpu-nested",
                "server",
                nested("0"),
                vec![dom(vmx)],
                ERROR,
            ),
            case(
                "vmx required, nested=Y",
                "cpu-nested",
                "server",
                nested("Y"),
                vec![dom(vmx)],
                NONE,
            ),
            case(
                "vmx disabled, nested=0",
                "cpu-nested",
                "server",
                nested("0"),
                vec![dom(
                    "<cpu mode='host-model'><feature policy='disable' name='vmx'/></cpu>",
                )],
                NONE,
            ),
        ]
    }

    #[test]
    fn cpu_rules() {
        run_cases(&cases());
    }
}

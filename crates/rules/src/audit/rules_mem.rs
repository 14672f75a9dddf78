//! Domain rules: memory backing, limits and the balloon.

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, human_kib, virsh_edit};
use kvmtune_domain::NodeId;
use kvmtune_profile::Want;

/// Headroom QEMU needs above guest RAM (libvirt uses guest RAM + 1 GiB for locked memory).
const OVERHEAD_KIB: u64 = 1024 * 1024;
/// Below guest RAM + this, a hard limit is almost certain to OOM-kill QEMU.
const MIN_OVERHEAD_KIB: u64 = 256 * 1024;

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "mem-hugepages",
                title: "Large or latency-sensitive domain without hugepages",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Guest RAM on 4 KiB pages needs many more TLB entries and page-table walks (two-dimensional with EPT/NPT): memory-heavy guests lose several percent, and transparent hugepages are not guaranteed (fragmentation, khugepaged). Static hugepages are also never swapped or merged.",
                fix: "<memoryBacking><hugepages/></memoryBacking>, with a pool of that page size reserved on the host (per node). A domain with both <hugepages/> and <allocation mode='ondemand'>, which libvirt refuses, is an error: drop the ondemand allocation.",
                risk: "The domain will not start unless the host's hugepage pool can hold its memory; hugepage memory cannot be ballooned or overcommitted.",
                class: FixClass::Capacity,
                source: "\"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012; KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.8",
                needs_host: false,
            },
            check: hugepages,
        },
        Rule {
            meta: Meta {
                id: "mem-nosharepages",
                title: "Latency domain open to KSM merging",
                severity: Severity::Warn,
                profiles: &["latency"],
                why: "KSM scans and merges identical pages: a merged page that the guest writes must be copied first (copy-on-write fault), and ksmd costs host CPU. Latency-critical guests should be kept out of it; guest memory on static hugepages is never merged and needs no <nosharepages/>.",
                fix: "<memoryBacking><nosharepages/></memoryBacking>.",
                risk: "The guest uses its full memory on the host (no savings from sharing).",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1, 3.5",
                needs_host: false,
            },
            check: nosharepages,
        },
        Rule {
            meta: Meta {
                id: "mem-locked-needs-limit",
                title: "Locked memory without a hard limit",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "<locked/> pins guest memory in host RAM; libvirt then needs <memtune><hard_limit> to size QEMU's locked-memory limit. Without it the limit is unbounded: a runaway QEMU can lock all host memory.",
                fix: "<memtune><hard_limit> of guest memory plus 1 GiB for QEMU itself.",
                risk: "Too low a hard limit gets QEMU OOM-killed; the fix's 1 GiB headroom matches libvirt's own estimate for locked memory.",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.7; libvirt domain format (memoryBacking/locked)",
                needs_host: false,
            },
            check: locked,
        },
        Rule {
            meta: Meta {
                id: "mem-hardlimit-low",
                title: "Hard limit too close to guest memory",
                severity: Severity::Error,
                profiles: &["*"],
                why: "<memtune><hard_limit> caps all of QEMU's memory: guest RAM plus QEMU's own (device emulation, I/O buffers, video memory). A limit at or barely above guest RAM gets QEMU killed by the cgroup OOM killer under load.",
                fix: "Raise hard_limit to guest memory plus 1 GiB, or remove it.",
                risk: "A higher limit lets a misbehaving QEMU use more host memory.",
                class: FixClass::Safe,
                source: "libvirt domain format (memtune): 'not recommended to set hard_limit'",
                needs_host: false,
            },
            check: hardlimit_low,
        },
        Rule {
            meta: Meta {
                id: "mem-balloon",
                title: "Memory balloon does not fit the profile",
                severity: Severity::Info,
                profiles: &["*"],
                why: "The balloon lets the host reclaim guest memory: needed to overcommit memory (dense), pointless with hugepages or locked memory (that memory cannot be returned) and a latency risk when it inflates. currentMemory below memory without a balloon cannot be honoured.",
                fix: "<memballoon model='none'/> where it is pointless; model='virtio' where the profile overcommits memory.",
                risk: "Without a balloon the host cannot take memory back and guest memory statistics (virsh dommemstat) are gone.",
                class: FixClass::Safe,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.6",
                needs_host: false,
            },
            check: balloon,
        },
        Rule {
            meta: Meta {
                id: "mem-balloon-vfio",
                title: "Memory balloon beside an assigned PCI or mediated device",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "A PCI device assigned with VFIO can DMA to any guest address, so QEMU maps and pins all guest memory for it, and QEMU (since 3.1) turns off the balloon's page discarding while such a device is attached; a mediated device on vfio-pci (type='mdev', a vGPU slice) blocks it too unless set x-balloon-allowed. Inflating the balloon then returns nothing to the host: it only takes memory away from the guest, and host tools that count on ballooning (overcommit, virsh setmem) are misled. A hostdev with <address type='unassigned'/> is not attached and does not count. Info, since an idle balloon costs nothing; warn on profiles that rely on inflating balloons (dense).",
                fix: "<memballoon model='none'/> (its address and options go with it).",
                risk: "Guest memory statistics (virsh dommemstat) are gone; the guest sees its balloon device disappear.",
                class: FixClass::Safe,
                source: "QEMU commit 'vfio: Inhibit ballooning based on group attachment to a container' (QEMU 3.1, A. Williamson, 2018); libvirt domain format (hostdev, memballoon)",
                needs_host: false,
            },
            check: balloon_vfio,
        },
        Rule {
            meta: Meta {
                id: "mem-hugepages-1g",
                title: "Large domain on 2 MiB hugepages while 1 GiB pages are free",
                severity: Severity::Info,
                profiles: &["server", "latency"],
                why: "A 1 GiB page maps 512 times the memory of a 2 MiB page: large guests (16 GiB and up) then need far fewer TLB entries for their memory, and with EPT/NPT the host side of every two-dimensional page walk gets shorter. The host has a 1 GiB pool with room for the whole guest. Any size of guest when the 2 MiB pool cannot hold it (it would not start) but the 1 GiB pool can.",
                fix: "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>.",
                risk: "The domain will not start unless the 1 GiB pool can hold its memory (on its NUMA nodes); 1 GiB pools are best reserved at boot (hugepagesz=1G hugepages=N), as they rarely can be allocated later.",
                class: FixClass::Capacity,
                source: "libvirt domain format (memoryBacking/hugepages/page); RHEL 6 Virtualization Tuning and Optimization Guide, 8.3.3.3 Enabling 1 GB huge pages for guests; RHEL 7 Performance Tuning Guide, 7.3 Configuring HugeTLB Huge Pages",
                needs_host: true,
            },
            check: hugepages_1g,
        },
    ]
}

/// Whether mem-hugepages asks for hugepages on this domain.
fn wants_hugepages(cx: &Cx) -> bool {
    let d = cx.d;
    let on = super::enabled("mem-hugepages", cx.profile);
    let min = cx.profile.domain.hugepages_min_mib.saturating_mul(1024);
    let mem = d.memory();
    on && d.is_hvm()
        && !d.memory_backing.as_ref().is_some_and(|m| m.hugepages)
        && mem > 0
        && mem >= min
}

fn hugepages(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    // hugepages together with on-demand allocation: libvirt refuses the domain ("hugepages
    // are not allowed with memory allocation ondemand")
    if let Some(m) = d.memory_backing.as_ref().filter(|m| m.hugepages)
        && m.allocation_mode.as_deref() == Some("ondemand")
        && let Some(a) = cx.doc.child(m.node, "allocation")
    {
        let edit = if cx.doc.attr(a, "threads").is_some() {
            Edit::unset(cx.doc, a, "mode")
        } else {
            Edit::remove(cx.doc, a)
        };
        out.at(
            Severity::Error,
            "<hugepages/> with <allocation mode='ondemand'>: libvirt refuses this domain (hugepages are not allowed with memory allocation ondemand); hugepages are allocated up front anyway",
            vec![cx.ev(a)],
        )
        .fix(
            "Drop allocation mode='ondemand'",
            vec![edit],
            virsh_edit(&cx.shell_name(), "remove <allocation mode='ondemand'/> from <memoryBacking>"),
            Applies::NextBoot,
        )
        .class(
            FixClass::Safe,
            "None: the guest's memory comes from the hugepage pool at start, as it must with hugepages.",
        );
        return;
    }
    if !wants_hugepages(cx) {
        return;
    }
    let min = cx.profile.domain.hugepages_min_mib.saturating_mul(1024);
    let mem = d.memory();
    let why = if min == 0 {
        format!(
            "{} of guest memory on 4 KiB pages ({} profile)",
            human_kib(mem),
            cx.profile.name
        )
    } else {
        format!(
            "{} of guest memory on 4 KiB pages (profile threshold {})",
            human_kib(mem),
            human_kib(min)
        )
    };
    let ev = match &d.memory_backing {
        Some(m) => cx.ev(m.node),
        None => cx.ev_absent(d.node, "memoryBacking"),
    };
    let ondemand = d
        .memory_backing
        .as_ref()
        .is_some_and(|m| m.allocation_mode.as_deref() == Some("ondemand"));
    let f = out.finding(why, vec![ev]);
    if ondemand {
        // libvirt: "hugepages are not allowed with memory allocation ondemand"
        f.message.push_str(
            "; <allocation mode='ondemand'> asks for memory allocated as the guest touches it, which hugepages cannot do: drop it first if the guest may take its memory up front",
        );
        return;
    }
    f.fix(
        "Back guest memory with hugepages",
        vec![Edit::ensure(
            cx.doc,
            d.node,
            vec![Seg::new("memoryBacking"), Seg::new("hugepages")],
        )],
        virsh_edit(
            &cx.shell_name(),
            "<memoryBacking><hugepages/></memoryBacking>",
        ),
        Applies::NextBoot,
    );
    if let Some(h) = cx.host {
        let dflt = h.memory.default_hugepage_kib.unwrap_or(2048);
        let free: u64 = h
            .memory
            .hugepages
            .iter()
            .filter(|p| p.size_kib == dflt)
            .map(|p| p.free * p.size_kib)
            .sum();
        if free < mem {
            f.message.push_str(&format!(
                "; the host's {} KiB pool has {} free: reserve more before applying",
                dflt,
                human_kib(free)
            ));
        }
    }
}

fn nosharepages(cx: &Cx, out: &mut Out) {
    if cx.profile.domain.nosharepages != Want::Want {
        return;
    }
    if cx
        .d
        .memory_backing
        .as_ref()
        .is_some_and(|m| m.nosharepages || m.hugepages)
    {
        // KSM only scans anonymous memory: hugetlbfs-backed guest RAM is never merged
        return;
    }
    let ksm = cx
        .host
        .and_then(|h| h.memory.ksm.as_ref())
        .and_then(|k| k.run);
    if ksm == Some(0) {
        // KSM off on this host: no merging now, but the domain is unprotected when it starts
        let f = out.at(
            Severity::Info,
            "no <nosharepages/>; KSM is off on this host now",
            vec![cx.ev_absent(cx.d.node, "memoryBacking/nosharepages")],
        );
        add_fix(cx, f);
        f.class(
            FixClass::Safe,
            "None while KSM is off: no page of the domain is shared now.",
        );
        return;
    }
    let f = out.finding(
        if ksm == Some(1) {
            "no <nosharepages/> while KSM runs on this host".to_string()
        } else {
            "no <nosharepages/>: KSM may merge this domain's pages".to_string()
        },
        vec![cx.ev_absent(cx.d.node, "memoryBacking/nosharepages")],
    );
    if ksm.is_none() {
        f.assumed("KSM may run on the host (no host facts)");
    }
    add_fix(cx, f);
}

fn add_fix(cx: &Cx, f: &mut super::Finding) {
    f.fix(
        "Keep KSM off this domain's memory",
        vec![Edit::ensure(
            cx.doc,
            cx.d.node,
            vec![Seg::new("memoryBacking"), Seg::new("nosharepages")],
        )],
        virsh_edit(
            &cx.shell_name(),
            "<memoryBacking><nosharepages/></memoryBacking>",
        ),
        Applies::NextBoot,
    );
}

fn limit_kib(cx: &Cx) -> u64 {
    cx.d.max_memory_kib.unwrap_or(0).max(cx.d.memory()) + OVERHEAD_KIB
}

fn locked(cx: &Cx, out: &mut Out) {
    let Some(mb) = &cx.d.memory_backing else {
        return;
    };
    if !mb.locked
        || cx
            .d
            .memtune
            .as_ref()
            .is_some_and(|m| m.hard_limit_kib.is_some())
    {
        return;
    }
    let lim = limit_kib(cx);
    out.finding(
        "<locked/> without <memtune><hard_limit>",
        vec![cx.ev(cx.doc.child(mb.node, "locked").unwrap_or(mb.node))],
    )
    .fix(
        format!(
            "Set hard_limit to {} (guest memory + 1 GiB)",
            human_kib(lim)
        ),
        vec![
            Edit::text_at(
                cx.doc,
                cx.d.node,
                vec![Seg::new("memtune"), Seg::new("hard_limit")],
                &lim.to_string(),
            ),
            Edit::set_at(
                cx.doc,
                cx.d.node,
                vec![Seg::new("memtune"), Seg::new("hard_limit")],
                "unit",
                "KiB",
            ),
        ],
        format!(
            "virsh memtune {} --hard-limit {lim} --config --live",
            cx.shell_name()
        ),
        Applies::Live,
    );
}

fn hardlimit_low(cx: &Cx, out: &mut Out) {
    let Some(mt) = &cx.d.memtune else { return };
    let Some(hl) = mt.hard_limit_kib else { return };
    let mem = cx.d.memory();
    if mem == 0 || hl >= mem + MIN_OVERHEAD_KIB {
        return;
    }
    let lim = limit_kib(cx);
    let node = cx.doc.child(mt.node, "hard_limit").unwrap_or(mt.node);
    out.finding(
        format!(
            "hard_limit {} for {} of guest memory",
            human_kib(hl),
            human_kib(mem)
        ),
        vec![cx.ev(node)],
    )
    .fix(
        format!("Raise hard_limit to {}", human_kib(lim)),
        vec![
            Edit::text_at(
                cx.doc,
                mt.node,
                vec![Seg::new("hard_limit")],
                &lim.to_string(),
            ),
            Edit::set_at(cx.doc, mt.node, vec![Seg::new("hard_limit")], "unit", "KiB"),
        ],
        format!(
            "virsh memtune {} --hard-limit {lim} --config --live",
            cx.shell_name()
        ),
        Applies::Live,
    );
}

/// The risk of adding a balloon, in words for the guest at hand.
fn balloon_risk(cx: &Cx) -> String {
    let who = match cx.d.guest_os() {
        kvmtune_domain::GuestOs::Windows(_) => {
            "Windows needs the virtio-win balloon driver to use it (without it the device stays unknown)"
        }
        kvmtune_domain::GuestOs::Linux(_) => "Linux uses it through virtio_balloon",
        kvmtune_domain::GuestOs::Unknown => {
            "unknown guest OS: it needs a virtio balloon driver to use it (Windows: virtio-win)"
        }
    };
    format!("The guest sees a new virtio device; {who}.")
}

fn balloon(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    if !d.is_hvm() {
        return;
    }
    let model = d
        .devices
        .memballoon
        .as_ref()
        .and_then(|b| b.model.as_deref());
    // libvirt adds a virtio balloon to x86 KVM domains that do not say otherwise
    let present = model.is_some_and(|m| m != "none") || d.devices.memballoon.is_none();
    let implicit = d.devices.memballoon.is_none();
    let mb = d.memory_backing.as_ref();
    let pointless = mb.is_some_and(|m| m.hugepages || m.locked) || wants_hugepages(cx);
    let devices = d.devices.node.unwrap_or(d.node);
    let set_model = |cx: &Cx, m: &str| set_balloon_model(cx, m);
    let ev = || match &d.devices.memballoon {
        Some(b) => cx.ev(b.node),
        None => cx.ev_absent(devices, "memballoon"),
    };
    let assigned = assigned_pci(cx).is_some();
    if present && assigned && super::enabled("mem-balloon-vfio", cx.profile) {
        return; // mem-balloon-vfio's finding, with the same fix
    }
    if present && (pointless || cx.profile.domain.balloon == Want::Avoid) {
        let why = if mb.is_some_and(|m| m.hugepages || m.locked) {
            "a balloon cannot reclaim hugepage or locked memory"
        } else if pointless {
            "a balloon cannot reclaim the hugepages mem-hugepages advises"
        } else {
            "the profile does not overcommit memory"
        };
        let f = out.finding(
            format!(
                "{} memory balloon: {why}",
                if implicit {
                    "implicit virtio"
                } else {
                    "virtio"
                }
            ),
            vec![ev()],
        );
        if implicit {
            f.suspect();
        }
        f.fix(
            "Remove the balloon",
            balloon_off(cx),
            virsh_edit(&cx.shell_name(), "<memballoon model='none'/>"),
            Applies::NextBoot,
        );
        if pointless
            && !mb.is_some_and(|m| m.hugepages || m.locked)
            && cx.profile.domain.balloon != Want::Avoid
        {
            // pointless only once mem-hugepages' fix is in: same class as that one
            f.class(
                FixClass::Capacity,
                "Goes with mem-hugepages' fix (the balloon is pointless only on hugepages): without it the host can no longer take memory back.",
            );
        }
        return;
    }
    if !present {
        // with an assigned PCI device a balloon cannot reclaim anything
        if cx.profile.domain.balloon == Want::Want && !pointless && !assigned {
            out.finding(
                format!(
                    "no memory balloon, but the {} profile overcommits memory",
                    cx.profile.name
                ),
                vec![ev()],
            )
            .fix(
                "Add a virtio balloon",
                vec![set_model(cx, "virtio")],
                virsh_edit(&cx.shell_name(), "<memballoon model='virtio'/>"),
                Applies::NextBoot,
            )
            .class(FixClass::GuestVisible, balloon_risk(cx));
        }
        // a gap under 1% is rounding (libvirt aligns sizes), not a guest kept small
        if let (Some(cur), Some(m)) = (d.current_memory_kib, d.memory_kib)
            && cur < m
            && (m - cur).saturating_mul(100) >= m
        {
            let node = cx.doc.child(d.node, "currentMemory").unwrap_or(d.node);
            out.at(
                Severity::Warn,
                format!(
                    "currentMemory {} below memory {} without a balloon to enforce it",
                    human_kib(cur),
                    human_kib(m)
                ),
                vec![cx.ev(node)],
            );
        }
    }
}

/// The edit setting the balloon's model (adding the element when libvirt's is implicit).
fn set_balloon_model(cx: &Cx, m: &str) -> Edit {
    let d = cx.d;
    match &d.devices.memballoon {
        Some(b) => Edit::set(cx.doc, b.node, "model", m),
        None => Edit::set_at(
            cx.doc,
            d.node,
            vec![Seg::new("devices"), Seg::new("memballoon")],
            "model",
            m,
        ),
    }
}

/// The edits turning the balloon off: model='none' takes no address, stats period, driver
/// or virtio options.
fn balloon_off(cx: &Cx) -> Vec<Edit> {
    let mut edits = vec![set_balloon_model(cx, "none")];
    if let Some(b) = &cx.d.devices.memballoon {
        for a in ["autodeflate", "freePageReporting"] {
            if cx.doc.attr(b.node, a).is_some() {
                edits.push(Edit::unset(cx.doc, b.node, a));
            }
        }
        edits.extend(cx.doc.elements(b.node).map(|c| Edit::remove(cx.doc, c)));
    }
    edits
}

/// A PCI device assigned to the domain (a PCI `<hostdev>` or an `<interface type='hostdev'>`):
/// its node and a name for it. mdev devices are left out: they need not pin all memory.
fn assigned_pci(cx: &Cx) -> Option<(NodeId, String)> {
    let doc = cx.doc;
    let addr = |n: NodeId| {
        let a = doc.descend(n, &["source", "address"])?;
        let f = |k: &str| doc.attr(a, k).unwrap_or("0");
        let hex = |k: &str| {
            let v = f(k);
            let v = v.strip_prefix("0x").unwrap_or(v);
            u32::from_str_radix(v, 16).ok()
        };
        Some(format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            hex("domain")?,
            hex("bus")?,
            hex("slot")?,
            hex("function")?
        ))
    };
    // a device with <address type='unassigned'/> is configured but not attached to the
    // guest: QEMU does not map guest memory for it
    let unassigned = |n: NodeId| {
        doc.child(n, "address")
            .is_some_and(|a| doc.attr(a, "type") == Some("unassigned"))
    };
    let subsystem = |n: NodeId| doc.attr(n, "mode").is_none_or(|m| m == "subsystem");
    if let Some(h) =
        cx.d.devices
            .hostdevs
            .iter()
            .find(|h| h.dtype.as_deref() == Some("pci") && subsystem(h.node) && !unassigned(h.node))
    {
        let name = addr(h.node).map_or_else(|| "PCI device".into(), |a| format!("PCI device {a}"));
        return Some((h.node, name));
    }
    // a mediated device on vfio-pci (a vGPU slice): QEMU blocks the balloon's discards for
    // it too, unless the device is set x-balloon-allowed
    if let Some(h) = cx.d.devices.hostdevs.iter().find(|h| {
        h.dtype.as_deref() == Some("mdev")
            && subsystem(h.node)
            && doc.attr(h.node, "model") == Some("vfio-pci")
            && !unassigned(h.node)
    }) {
        let uuid = doc
            .descend(h.node, &["source", "address"])
            .and_then(|a| doc.attr(a, "uuid"));
        let name = uuid.map_or_else(
            || "mediated device (vfio-pci)".into(),
            |u| format!("mediated device {u} (vfio-pci)"),
        );
        return Some((h.node, name));
    }
    cx.d.devices
        .interfaces
        .iter()
        .find(|i| i.itype.as_deref() == Some("hostdev") && !unassigned(i.node))
        .map(|i| {
            let name = addr(i.node).map_or_else(
                || "hostdev NIC".into(),
                |a| format!("hostdev NIC (PCI {a})"),
            );
            (i.node, name)
        })
}

/// Whether the domain has a balloon (libvirt adds a virtio one to KVM domains that do not
/// say otherwise): `Some(implicit)`.
fn has_balloon(cx: &Cx) -> Option<bool> {
    match &cx.d.devices.memballoon {
        None => Some(true),
        Some(b) => b
            .model
            .as_deref()
            .is_some_and(|m| m != "none")
            .then_some(false),
    }
}

fn balloon_vfio(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    if !d.is_hvm() {
        return;
    }
    let Some(implicit) = has_balloon(cx) else {
        return;
    };
    let Some((dev, name)) = assigned_pci(cx) else {
        return;
    };
    let mut ev = vec![match &d.devices.memballoon {
        Some(b) => cx.ev(b.node),
        None => cx.ev_absent(d.devices.node.unwrap_or(d.node), "memballoon"),
    }];
    ev.push(cx.ev(dev));
    // the balloon costs nothing until it inflates: info, warn where the profile relies on
    // inflating balloons (dense)
    let (sev, tail) = if cx.profile.domain.balloon == Want::Want {
        (out.level, "; this profile relies on inflating balloons")
    } else {
        (Severity::Info, "")
    };
    let f = out.at(
        sev,
        format!(
            "{} memory balloon beside assigned {name}: all guest memory is pinned, the balloon cannot return any to the host{tail}",
            if implicit { "implicit virtio" } else { "virtio" }
        ),
        ev,
    );
    if implicit {
        f.suspect();
    }
    f.fix(
        "Remove the balloon",
        balloon_off(cx),
        virsh_edit(&cx.shell_name(), "<memballoon model='none'/>"),
        Applies::NextBoot,
    );
}

const GIB_KIB: u64 = 1024 * 1024;

fn hugepages_1g(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    let (Some(h), Some(mb)) = (cx.host, d.memory_backing.as_ref()) else {
        return;
    };
    if !d.is_hvm() || !mb.hugepages {
        return;
    }
    let Some(hp) = mb.hugepages_node else { return };
    let Some(dflt) = h.memory.default_hugepage_kib else {
        return;
    };
    // every page size the domain uses must be 2 MiB (a page without size is the default)
    if !mb
        .pages
        .iter()
        .map(|p| p.size_kib.unwrap_or(dflt))
        .chain(mb.pages.is_empty().then_some(dflt))
        .all(|s| s == 2048)
    {
        return;
    }
    let mem = d.memory();
    if !mem.is_multiple_of(GIB_KIB) {
        return;
    }
    // every guest NUMA cell must be made of whole 1 GiB pages too
    if d.cpu.as_ref().is_some_and(|c| {
        c.cells
            .iter()
            .any(|cell| cell.memory_kib.is_some_and(|m| !m.is_multiple_of(GIB_KIB)))
    }) {
        return;
    }
    // free 1 GiB pages on the host nodes the domain's memory may come from
    let nodeset = d
        .numatune
        .as_ref()
        .and_then(|n| n.memory.as_ref())
        .and_then(|m| m.nodeset.as_deref())
        .and_then(super::cpuset);
    // free pages of a size on those nodes (the global pool without per-node facts);
    // `None` when the host has no pool facts of that size at all
    let free_of = |size: u64| -> Option<u64> {
        let per_node: Vec<u64> = h
            .numa
            .nodes
            .iter()
            .filter(|n| nodeset.as_ref().is_none_or(|s| s.contains(n.id)))
            .flat_map(|n| n.hugepages.iter())
            .filter(|p| p.size_kib == size)
            .map(|p| p.free)
            .collect();
        if per_node.is_empty() && nodeset.is_none() {
            let global: Vec<u64> = h
                .memory
                .hugepages
                .iter()
                .filter(|p| p.size_kib == size)
                .map(|p| p.free)
                .collect();
            (!global.is_empty()).then(|| global.iter().sum())
        } else {
            (!per_node.is_empty()).then(|| per_node.iter().sum())
        }
    };
    let free = free_of(GIB_KIB).unwrap_or(0);
    let need = mem / GIB_KIB;
    if free < need {
        return;
    }
    // large guests: 1 GiB pages for the TLB; any size: when the 2 MiB pool cannot hold
    // the domain (it would not start) and the 1 GiB pool can
    let min = cx
        .profile
        .domain
        .hugepages_min_mib
        .saturating_mul(1024)
        .max(16 * GIB_KIB);
    let small_pool = free_of(2048).filter(|f| f.saturating_mul(2048) < mem);
    let msg = match small_pool {
        Some(f2) => format!(
            "{} of guest memory on 2 MiB hugepages, but the 2 MiB pool has only {} free there; the host has {free} free 1 GiB pages, which hold it",
            human_kib(mem),
            human_kib(f2 * 2048)
        ),
        None if mem >= min => format!(
            "{} of guest memory on 2 MiB hugepages; the host has {free} free 1 GiB pages",
            human_kib(mem)
        ),
        None => return,
    };
    let f = out.finding(msg, vec![cx.ev(hp)]);
    let mut edits = Vec::new();
    if mb.pages.is_empty() {
        for (a, v) in [("size", "1"), ("unit", "G")] {
            edits.push(Edit::set_at(cx.doc, hp, vec![Seg::new("page")], a, v));
        }
    } else {
        for p in &mb.pages {
            edits.push(Edit::set(cx.doc, p.node, "size", "1"));
            edits.push(Edit::set(cx.doc, p.node, "unit", "G"));
        }
    }
    f.fix(
        "Back guest memory with 1 GiB pages",
        edits,
        virsh_edit(
            &cx.shell_name(),
            "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>",
        ),
        Applies::NextBoot,
    );
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    fn ksm_running() -> Option<kvmtune_host::Host> {
        let mut h = host16();
        h.memory.ksm = Some(ksm(1));
        Some(h)
    }

    /// [`host16`] with `free` 1 GiB pages free on its node.
    fn host_1g(free: u64) -> Option<kvmtune_host::Host> {
        let mut h = host16();
        let mut p = pool(1024 * 1024, free.max(16));
        p.free = free;
        h.numa.nodes[0].hugepages = vec![pool(2048, 0), p];
        Some(h)
    }

    const GPU: &str = "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>";

    pub(crate) fn cases() -> Vec<Case> {
        let huge = "<memoryBacking><hugepages/></memoryBacking>";
        let huge2m =
            "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>";
        let huge1g =
            "<memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>";
        let nosp = "<memoryBacking><nosharepages/></memoryBacking>";
        let locked = "<memoryBacking><locked/></memoryBacking>";
        let limit =
            |mib: u64| format!("<memtune><hard_limit unit='MiB'>{mib}</hard_limit></memtune>");
        let no_balloon = "<devices><memballoon model='none'/></devices>";
        let virtio_balloon = "<devices><memballoon model='virtio'/></devices>";
        vec![
            // mem-hugepages
            case(
                "16 GiB on 4 KiB pages",
                "mem-hugepages",
                "server",
                None,
                vec![dom_named("vm", 16384, "")],
                WARN,
            ),
            case(
                "16 GiB on hugepages",
                "mem-hugepages",
                "server",
                None,
                vec![dom_named("vm", 16384, huge)],
                NONE,
            ),
            case(
                "2 GiB below the server threshold",
                "mem-hugepages",
                "server",
                None,
                vec![dom("")],
                NONE,
            ),
            case(
                "2 GiB on the latency profile",
                "mem-hugepages",
                "latency",
                None,
                vec![dom("")],
                WARN,
            ),
            // mem-nosharepages
            case(
                "latency, KSM may run",
                "mem-nosharepages",
                "latency",
                None,
                vec![dom("")],
                WARN,
            ),
            case(
                "latency, KSM runs",
                "mem-nosharepages",
                "latency",
                ksm_running(),
                vec![dom("")],
                WARN,
            ),
            case(
                "latency, KSM off now",
                "mem-nosharepages",
                "latency",
                Some(host16()),
                vec![dom("")],
                INFO,
            ),
            case(
                "latency with nosharepages",
                "mem-nosharepages",
                "latency",
                ksm_running(),
                vec![dom(nosp)],
                NONE,
            ),
            case(
                "server, no nosharepages",
                "mem-nosharepages",
                "server",
                ksm_running(),
                vec![dom("")],
                NONE,
            ),
            // mem-locked-needs-limit
            case(
                "locked, no hard limit",
                "mem-locked-needs-limit",
                "server",
                None,
                vec![dom(locked)],
                WARN,
            ),
            case(
                "locked with a hard limit",
                "mem-locked-needs-limit",
                "server",
                None,
                vec![dom(&format!("{locked}{}", limit(3072)))],
                NONE,
            ),
            // mem-hardlimit-low
            case(
                "hard limit = guest memory",
                "mem-hardlimit-low",
                "server",
                None,
                vec![dom(&limit(2048))],
                ERROR,
            ),
            case(
                "hard limit guest + 255 MiB",
                "mem-hardlimit-low",
                "server",
                None,
                vec![dom(&limit(2303))],
                ERROR,
            ),
            case(
                "hard limit guest + 256 MiB",
                "mem-hardlimit-low",
                "server",
                None,
                vec![dom(&limit(2304))],
                NONE,
            ),
            case(
                "hard limit guest + 1 GiB",
                "mem-hardlimit-low",
                "server",
                None,
                vec![dom(&limit(3072))],
                NONE,
            ),
            // mem-balloon
            case(
                "implicit balloon with hugepages",
                "mem-balloon",
                "server",
                None,
                vec![dom(huge)],
                INFO,
            ),
            case(
                "no balloon with hugepages",
                "mem-balloon",
                "server",
                None,
                vec![dom(&format!("{huge}{no_balloon}"))],
                NONE,
            ),
            case(
                "implicit balloon, server",
                "mem-balloon",
                "server",
                None,
                vec![dom("")],
                NONE,
            ),
            case(
                "no balloon on dense",
                "mem-balloon",
                "dense",
                None,
                vec![dom(no_balloon)],
                INFO,
            ),
            case(
                "virtio balloon on dense",
                "mem-balloon",
                "dense",
                None,
                vec![dom(virtio_balloon)],
                NONE,
            ),
            case(
                "currentMemory below memory, no balloon",
                "mem-balloon",
                "server",
                None,
                vec![dom(&format!(
                    "<currentMemory unit='MiB'>1024</currentMemory>{no_balloon}"
                ))],
                WARN,
            ),
            case(
                "currentMemory 0.5% below memory, no balloon",
                "mem-balloon",
                "server",
                None,
                vec![dom(&format!(
                    "<currentMemory unit='KiB'>2086666</currentMemory>{no_balloon}"
                ))],
                NONE,
            ),
            case(
                "currentMemory 1.5% below memory, no balloon",
                "mem-balloon",
                "server",
                None,
                vec![dom(&format!(
                    "<currentMemory unit='KiB'>2065694</currentMemory>{no_balloon}"
                ))],
                WARN,
            ),
            case(
                "currentMemory = memory, no balloon",
                "mem-balloon",
                "server",
                None,
                vec![dom(&format!(
                    "<currentMemory unit='MiB'>2048</currentMemory>{no_balloon}"
                ))],
                NONE,
            ),
            case(
                "hugepages with allocation ondemand (hp-ondemand.xml: libvirt refuses it)",
                "mem-hugepages",
                "dense",
                None,
                vec![dom(
                    "<memoryBacking><hugepages/><allocation mode='ondemand'/></memoryBacking>",
                )],
                ERROR,
            ),
            case(
                "hugepages with allocation immediate",
                "mem-hugepages",
                "dense",
                None,
                vec![dom(
                    "<memoryBacking><hugepages/><allocation mode='immediate'/></memoryBacking>",
                )],
                NONE,
            ),
            // mem-balloon-vfio
            case(
                "virtio balloon beside a PCI hostdev (server: info)",
                "mem-balloon-vfio",
                "server",
                None,
                vec![dom(&format!(
                    "<devices>{GPU}<memballoon model='virtio'/></devices>"
                ))],
                INFO,
            ),
            case(
                "virtio balloon beside a PCI hostdev, dense (inflates balloons)",
                "mem-balloon-vfio",
                "dense",
                None,
                vec![dom(&format!(
                    "<devices>{GPU}<memballoon model='virtio'/></devices>"
                ))],
                WARN,
            ),
            case(
                "implicit balloon beside a hostdev NIC",
                "mem-balloon-vfio",
                "server",
                None,
                vec![dom(
                    "<devices><interface type='hostdev' managed='yes'><source>\
<address type='pci' domain='0x0000' bus='0x02' slot='0x10' function='0x1'/></source></interface></devices>",
                )],
                INFO,
            ),
            case(
                "virtio balloon beside an unassigned PCI hostdev (bal-unassigned.xml)",
                "mem-balloon-vfio",
                "dense",
                None,
                vec![dom(&format!(
                    "<devices>{}<memballoon model='virtio'/></devices>",
                    GPU.replace("</hostdev>", "<address type='unassigned'/></hostdev>")
                ))],
                NONE,
            ),
            case(
                "virtio balloon beside a vfio-pci mdev (bal-mdev.xml)",
                "mem-balloon-vfio",
                "dense",
                None,
                vec![dom(
                    "<devices><hostdev mode='subsystem' type='mdev' model='vfio-pci'><source>\
<address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev><memballoon model='virtio'/></devices>",
                )],
                WARN,
            ),
            case(
                "no balloon beside a PCI hostdev",
                "mem-balloon-vfio",
                "server",
                None,
                vec![dom(&format!(
                    "<devices>{GPU}<memballoon model='none'/></devices>"
                ))],
                NONE,
            ),
            case(
                "virtio balloon beside a USB hostdev",
                "mem-balloon-vfio",
                "server",
                None,
                vec![dom(
                    "<devices><hostdev mode='subsystem' type='usb'><source>\
<vendor id='0x1234'/><product id='0xbeef'/></source></hostdev><memballoon model='virtio'/></devices>",
                )],
                NONE,
            ),
            case(
                "dense wants no balloon beside a PCI hostdev",
                "mem-balloon",
                "dense",
                None,
                vec![dom(&format!(
                    "<devices>{GPU}<memballoon model='none'/></devices>"
                ))],
                NONE,
            ),
            case(
                "latency: mem-balloon leaves the hostdev case to mem-balloon-vfio",
                "mem-balloon",
                "latency",
                None,
                vec![dom(&format!(
                    "<devices>{GPU}<memballoon model='virtio'/></devices>"
                ))],
                NONE,
            ),
            // mem-hugepages-1g
            case(
                "16 GiB on default 2 MiB pages, 16 free 1 GiB pages",
                "mem-hugepages-1g",
                "server",
                host_1g(16),
                vec![dom_named("vm", 16384, huge)],
                INFO,
            ),
            case(
                "32 GiB on 2 MiB pages, latency, 32 free",
                "mem-hugepages-1g",
                "latency",
                host_1g(32),
                vec![dom_named("vm", 32768, huge2m)],
                INFO,
            ),
            case(
                "16 GiB on 2 MiB pages, 15 free 1 GiB pages",
                "mem-hugepages-1g",
                "server",
                host_1g(15),
                vec![dom_named("vm", 16384, huge)],
                NONE,
            ),
            case(
                "16 GiB on 2 MiB pages, no host facts",
                "mem-hugepages-1g",
                "server",
                None,
                vec![dom_named("vm", 16384, huge)],
                NONE,
            ),
            case(
                "16 GiB on 1 GiB pages already",
                "mem-hugepages-1g",
                "server",
                host_1g(16),
                vec![dom_named("vm", 16384, huge1g)],
                NONE,
            ),
            case(
                "8 GiB on 2 MiB pages, latency, the 2 MiB pool holds it",
                "mem-hugepages-1g",
                "latency",
                host_1g(16).map(|mut h| {
                    h.numa.nodes[0].hugepages[0] = pool(2048, 8192);
                    h
                }),
                vec![dom_named("vm", 8192, huge)],
                NONE,
            ),
            case(
                "10 GiB on 2 MiB pages, empty 2 MiB pool, 12 free 1 GiB pages (hp1g-1.xml)",
                "mem-hugepages-1g",
                "server",
                host_1g(12),
                vec![dom_named("vm", 10240, huge2m)],
                INFO,
            ),
            case(
                "16.5 GiB on 2 MiB pages: not whole 1 GiB pages",
                "mem-hugepages-1g",
                "server",
                host_1g(32),
                vec![dom_named("vm", 16896, huge)],
                NONE,
            ),
        ]
    }

    #[test]
    fn memory_rules() {
        run_cases(&cases());
    }

    /// The XML after applying the fixes of `rule`.
    fn fixed(src: &str, rule: &str, profile: &str, host: Option<kvmtune_host::Host>) -> String {
        let v = findings(&[src.to_string()], profile, host.as_ref());
        let edits: Vec<_> = v
            .iter()
            .filter(|f| f.rule == rule)
            .filter_map(|f| f.fix.as_ref())
            .flat_map(|f| f.edits.clone())
            .collect();
        assert!(!edits.is_empty(), "no {rule} fix: {v:#?}");
        let mut doc = kvmtune_domain::Document::parse(src).unwrap();
        crate::audit::apply(&mut doc, &edits);
        doc.serialize()
    }

    #[test]
    fn balloon_vfio_fix_drops_the_balloon_and_its_address() {
        let src = dom(&format!(
            "<devices>{GPU}<memballoon model='virtio' autodeflate='on'><stats period='10'/>\
<address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></memballoon></devices>"
        ));
        let v = findings(std::slice::from_ref(&src), "latency", None);
        let mine: Vec<_> = v
            .iter()
            .filter(|f| f.rule.starts_with("mem-balloon"))
            .collect();
        assert_eq!(mine.len(), 1, "{mine:#?}");
        assert!(
            mine[0].message.contains("PCI device 0000:01:00.0"),
            "{}",
            mine[0].message
        );
        let out = fixed(&src, "mem-balloon-vfio", "server", None);
        assert!(
            out.contains("<memballoon model=\"none\"/>")
                || out.contains("<memballoon model='none'/>"),
            "{out}"
        );
        assert!(
            !out.contains("slot='0x05'") && !out.contains("autodeflate"),
            "{out}"
        );
    }

    #[test]
    fn hugepages_1g_fix_sets_the_page_size() {
        let out = fixed(
            &dom_named("vm", 16384, "<memoryBacking><hugepages/></memoryBacking>"),
            "mem-hugepages-1g",
            "server",
            host_1g(16),
        );
        let d = kvmtune_domain::Domain::parse(&out).unwrap().1;
        let pages = &d.memory_backing.unwrap().pages;
        assert_eq!(pages.len(), 1, "{out}");
        assert_eq!(pages[0].size_kib, Some(1024 * 1024), "{out}");
        let out = fixed(
            &dom_named(
                "vm",
                16384,
                "<memoryBacking><hugepages><page size='2' unit='M' nodeset='0'/></hugepages></memoryBacking>",
            ),
            "mem-hugepages-1g",
            "server",
            host_1g(16),
        );
        let d = kvmtune_domain::Domain::parse(&out).unwrap().1;
        let pages = &d.memory_backing.unwrap().pages;
        assert_eq!(pages.len(), 1, "{out}");
        assert_eq!(pages[0].size_kib, Some(1024 * 1024), "{out}");
        assert_eq!(pages[0].nodeset.as_deref(), Some("0"), "{out}");
    }

    /// Was a false positive: hugetlbfs-backed guest memory is never merged by KSM, locked
    /// or not, so it needs no <nosharepages/>.
    #[test]
    fn nosharepages_with_hugepages() {
        run_cases(&[
            case(
                "latency, hugepages, KSM runs",
                "mem-nosharepages",
                "latency",
                ksm_running(),
                vec![dom("<memoryBacking><hugepages/></memoryBacking>")],
                NONE,
            ),
            case(
                "latency, hugepages and locked, KSM runs",
                "mem-nosharepages",
                "latency",
                ksm_running(),
                vec![dom("<memoryBacking><hugepages/><locked/></memoryBacking>")],
                NONE,
            ),
            case(
                "latency, locked without hugepages, KSM runs",
                "mem-nosharepages",
                "latency",
                ksm_running(),
                vec![dom("<memoryBacking><locked/></memoryBacking>")],
                WARN,
            ),
        ]);
    }
}

//! Rules for CPU and I/O thread scheduling: SMT topology against pins, iothread pins and use, numatune modes, CPU quotas, CPU model age, invariant TSC.

use std::collections::BTreeSet;

use super::rules_cpu::{OLD_MODELS, tcg_on_kvm_host, vcpu_cpus, x86};
use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, cpuset, human_kib};
use kvmtune_domain::NodeId;
use kvmtune_host::CpuSet;

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "iothread-pins",
                title: "I/O threads pinned onto the vCPUs' CPUs",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "An <iothreadpin> onto CPUs the vCPUs are pinned to one-to-one (<vcpupin>, one host CPU per vCPU) makes every burst of disk I/O preempt a vCPU: the guest sees stalls exactly when it is busy with I/O. I/O threads belong on housekeeping CPUs, with the emulator threads, apart from the vCPUs. vCPUs floating over a shared cpuset (<vcpu cpuset>, or a <vcpupin> of several CPUs) are left alone: an I/O thread floating over the same pool is no worse than no pin at all.",
                fix: "Pin the I/O threads onto housekeeping CPUs no vCPU uses (the <emulatorpin> CPUs when they are apart from the vCPUs).",
                risk: "virsh iothreadpin applies live; the pins are host-specific.",
                class: FixClass::Migration,
                source: "libvirt domain format (CPU tuning: iothreadpin, emulatorpin); Red Hat Virtualization 4.3 Virtual Machine Management Guide, 4.10.2.2 \"Pinning CPU\" (IO and emulator thread pinning topology)",
                needs_host: false,
            },
            check: iothread_pins,
        },
        Rule {
            meta: Meta {
                id: "iothread-unused",
                title: "I/O threads declared but used by no device",
                severity: Severity::Info,
                profiles: &["*"],
                why: "<iothreads> (or <iothreadids>) only creates the threads; a disk or controller runs in one only when its <driver iothread='N'/> (or a <driver><iothreads> mapping) names it. An unused I/O thread does nothing, and the device meant for it still runs in QEMU's main loop.",
                fix: "Name the I/O thread in the disk's or the virtio-scsi controller's <driver iothread='N'/>, or drop it from <iothreads>/<iothreadids>.",
                risk: "None: an idle thread costs little; assigning it changes the device's I/O path at next boot.",
                class: FixClass::Safe,
                source: "libvirt domain format (IOThreads allocation; disk driver iothread; controller driver iothread); OpenShift Container Platform 4.7 Scalability and performance, \"Use I/O threads for your virtual block devices\" (IBM Z: do not configure idle threads)",
                needs_host: false,
            },
            check: iothread_unused,
        },
        Rule {
            meta: Meta {
                id: "scsi-iothread",
                title: "virtio-scsi controller without an I/O thread",
                severity: Severity::Info,
                profiles: &["*"],
                why: "Disks on a virtio-scsi controller are served by the controller: without <driver iothread='N'/> on it, their I/O runs in QEMU's main loop with device emulation and the monitor, so busy disks add latency to everything else (a virtio-blk disk takes its own iothread instead). Info on every profile, as disk-io's advice for virtio-blk disks.",
                fix: "Give the controller an I/O thread: <controller type='scsi' model='virtio-scsi'><driver iothread='N'/></controller> (and <iothreads> one more when none is free).",
                risk: "One more host thread; it needs pinning on latency hosts.",
                class: FixClass::Safe,
                source: "libvirt domain format (controllers: virtio-scsi driver iothread; IOThreads allocation); OpenShift Container Platform 4.7 Scalability and performance, \"Use I/O threads for your virtual block devices\"",
                needs_host: false,
            },
            check: scsi_iothread,
        },
        Rule {
            meta: Meta {
                id: "numatune-mode",
                title: "Memory interleaved over host nodes although the domain fits one",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "<numatune><memory mode='interleave'> spreads every page round-robin over the nodeset: on two nodes half the guest's memory accesses are remote (30-100% more latency), although the domain fits one node and could have all its memory local. 'preferred' over several nodes does not keep the memory on one node either. \"Fits\" means the node has the memory free now (its free hugepages of the domain's size for a hugepage-backed domain, else MemFree, which excludes the hugepage pools); when a node's free memory is unknown the finding says what it assumed and offers no binding. Domains with guest NUMA cells or per-cell <memnode> bindings are left alone: spreading is their design.",
                fix: "Bind the memory to the node the vCPUs run on: <memory mode='strict' nodeset='N'/> (or 'restrictive'), with the vCPUs on that node's CPUs; `kvmtune plan` picks the node.",
                risk: "The memory moves at next boot; a strict binding fails allocations when the node runs out of free memory.",
                class: FixClass::Capacity,
                source: "libvirt domain format (NUMA node tuning: memory mode); Red Hat Enterprise Linux 7 Virtualization Deployment and Administration Guide, 23.9 \"NUMA Node Tuning\"; Red Hat Enterprise Linux 7 Virtualization Tuning and Optimization Guide, 9.3.2 \"NUMA vCPU Pinning\" (vCPU pinning and numatune together)",
                needs_host: true,
            },
            check: numatune_mode,
        },
        Rule {
            meta: Meta {
                id: "cpu-quota",
                title: "CPU bandwidth capped by a CFS quota",
                severity: Severity::Info,
                profiles: &["*"],
                why: "<cputune><quota>/<period> (per vCPU), <global_quota> (the whole domain) or <emulator_quota>/<iothread_quota> let the host's CFS bandwidth control throttle the threads: once a thread used its quota in a period it is stopped until the next one. The guest sees that as steal-like stalls and slowness under load although the host has idle CPUs.",
                fix: "Nothing, if the cap is intended (a resource limit); otherwise remove the quota (or set -1).",
                risk: "None: removing a quota lets the domain use more host CPU.",
                class: FixClass::Capacity,
                source: "libvirt domain format (CPU tuning: period, quota, global_period, global_quota, emulator_quota, iothread_quota); Linux kernel documentation, \"CFS Bandwidth Control\" (scheduler/sched-bwc)",
                needs_host: false,
            },
            check: cpu_quota,
        },
        Rule {
            meta: Meta {
                id: "cpu-smt-pins",
                title: "Guest SMT topology does not match the host",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "<topology threads='2'> tells the guest that vCPU pairs are hyper-threads of one core: its scheduler then prefers idle cores over idle siblings and balances load as if the pair shared a core's execution units and caches. That is true only when each pair is pinned onto SMT siblings of one host core (a CPU per vCPU, or the pair sharing that core's sibling set); unpinned, or pinned onto separate cores, the guest's SMT-aware decisions are made on a false picture. The reverse, vCPUs pinned onto sibling pairs while the guest sees threads='1', hides the shared cores from the guest. Warn when guest cores are pinned across host cores; info when the vCPUs float, and for the reverse case.",
                fix: "Pin each guest core's vCPUs onto the SMT siblings of one host core (kvmtune's planner), or present threads='1'.",
                risk: "Re-pinning applies live; a topology change is guest-visible at next boot.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format (CPU model and topology; CPU tuning: vcpupin); Red Hat Virtualization 4.3 Virtual Machine Management Guide, 4.10.2.2 \"Pinning CPU\" (guest threads per core within the host's)",
                needs_host: false,
            },
            check: cpu_smt_pins,
        },
        Rule {
            meta: Meta {
                id: "cpu-model-old",
                title: "Named CPU model older than the host's",
                severity: Severity::Warn,
                profiles: &["server", "latency", "desktop", "dense"],
                why: "A custom <model> of an older generation than the host's CPU (domain capabilities' host-model) hides the newer instructions: a SandyBridge guest on a Cascade Lake host has no AVX2, FMA or AVX-512, so vectorised code (crypto, compression, databases, media) takes slower paths. Migratable pools pick an old model on purpose (the migratable profile leaves it alone). The host's generation comes from domain capabilities (host-model's name); without them from the host facts: the /proc/cpuinfo model name where it names the generation plainly (Xeon E5 v2, Xeon Gold 6230, Core i7-4770, EPYC 7302, ...), else only the INVPCID flag (Haswell or newer; info, with what was assumed). With neither domain capabilities nor host facts the rule says nothing.",
                fix: "<cpu mode='host-model'/> (the host's model and features, still migratable between like hosts).",
                risk: "The guest sees a newer CPU at next boot; it can then live-migrate only to hosts with that CPU generation or newer.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format (CPU model and topology: host-model, custom); libvirt CPU map (cpu_map/x86_*.xml); QEMU documentation, \"Recommendations for KVM CPU model configuration on x86 hosts\"; Intel ARK and AMD product names (Xeon E5 v2 = Ivy Bridge-EP, Xeon Scalable 2nd gen = Cascade Lake, EPYC 7xx2 = Rome, ...)",
                needs_host: false,
            },
            check: cpu_model_old,
        },
        Rule {
            meta: Meta {
                id: "cpu-invtsc",
                title: "Invariant TSC not passed to a latency guest",
                severity: Severity::Info,
                profiles: &["latency"],
                why: "The host's TSC is invariant (constant_tsc and nonstop_tsc), but the guest is not told (CPUID invtsc): a Linux guest (5.1 and later) switches to the TSC clocksource only when invtsc is exposed, and keeps kvm-clock otherwise; TSC reads need no pvclock page and are the cheapest clock a latency-sensitive guest can have. QEMU hides invtsc unless asked because a guest that relies on it can be live-migrated only with its TSC frequency fixed. KVM domains only (TCG has no invariant TSC to give); Windows guests are left alone: they read time through the Hyper-V reference TSC page (hypervclock, see clock-windows), not through this clocksource switch. A domain without <cpu>, without a CPU model or with one cpu-mode replaces gets invtsc with cpu-mode's fix instead.",
                fix: "<cpu><feature policy='require' name='invtsc'/></cpu>, added to the CPU mode the domain has (host-passthrough with migratable='off' passes it already); the CPU mode is never changed here.",
                risk: "QEMU blocks live migration of a guest with invtsc unless its TSC frequency is set (<clock><timer name='tsc' frequency=...>, then only to hosts with that frequency or TSC scaling); the domain fails to start on hosts without an invariant TSC.",
                class: FixClass::Migration,
                source: "Linux commit 7539b174aef4 \"x86: kvmguest: use TSC clocksource if invariant TSC is exposed\" (5.1); QEMU commit d99569d9d856 \"kvm: Allow invtsc migration if tsc-khz is set explicitly\"; libvirt domain format (CPU model and topology: feature policy; timekeeping: timer tsc frequency)",
                needs_host: true,
            },
            check: cpu_invtsc,
        },
    ]
}

fn intersect(a: &CpuSet, b: &CpuSet) -> CpuSet {
    a.difference(&a.difference(b))
}

fn id_list(ids: &BTreeSet<u32>) -> String {
    let mut s = CpuSet::new();
    for &i in ids {
        s.insert(i);
    }
    s.to_string()
}

// ---------------------------------------------------------------------------------------
// iothreads

/// The I/O thread ids a domain declares: `<iothreadids>` ids, filled up to the
/// `<iothreads>` count with the lowest free ids (as libvirt does).
fn declared_iothreads(cx: &Cx) -> BTreeSet<u32> {
    let mut ids: BTreeSet<u32> = cx
        .doc
        .child(cx.d.node, "iothreadids")
        .map(|i| {
            cx.doc
                .children(i, "iothread")
                .filter_map(|t| cx.doc.attr(t, "id")?.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut next = 1;
    while (ids.len() as u32) < cx.d.iothreads && next < 1 << 20 {
        ids.insert(next);
        next += 1;
    }
    ids
}

/// The I/O thread ids the domain's devices name: `<driver iothread='N'>` and
/// `<driver><iothreads><iothread id='N'>` of any device (disks, controllers).
/// Found once per [`Cx`] (several rules ask).
fn used_iothreads<'c>(cx: &'c Cx) -> &'c BTreeSet<u32> {
    cx.memo
        .used_iothreads
        .get_or_init(|| find_used_iothreads(cx))
}

fn find_used_iothreads(cx: &Cx) -> BTreeSet<u32> {
    let mut used = BTreeSet::new();
    let Some(devs) = cx.d.devices.node else {
        return used;
    };
    for dev in cx.doc.elements(devs) {
        let Some(drv) = cx.doc.child(dev, "driver") else {
            continue;
        };
        if let Some(n) = cx
            .doc
            .attr(drv, "iothread")
            .and_then(|v| v.trim().parse().ok())
        {
            used.insert(n);
        }
        if let Some(map) = cx.doc.child(drv, "iothreads") {
            used.extend(
                cx.doc
                    .children(map, "iothread")
                    .filter_map(|t| cx.doc.attr(t, "id")?.trim().parse::<u32>().ok()),
            );
        }
    }
    used
}

fn iothread_pins(cx: &Cx, out: &mut Out) {
    let Some(t) = &cx.d.cputune else { return };
    if t.iothreadpin.is_empty() {
        return;
    }
    // only vCPUs that each own a host CPU (1:1 <vcpupin>, as pin-emulator and the
    // planner make them) have CPUs an I/O thread could steal: vCPUs floating over a
    // cpuset share it with everything else anyway, and an I/O thread floating over the
    // same pool is no worse than no pin at all
    let Some(vcpus) = cx.dedicated() else { return };
    if vcpus.is_empty() {
        return;
    }
    // the emulator's CPUs, when they are apart from the vCPUs: where the I/O threads belong
    let housekeeping = t
        .emulatorpin
        .as_ref()
        .and_then(|e| cpuset(&e.cpuset))
        .filter(|e| !e.is_empty() && intersect(e, vcpus).is_empty());
    // an I/O thread no device uses idles wherever it is pinned (iothread-unused)
    let used = used_iothreads(cx);
    for p in &t.iothreadpin {
        if p.id.is_none_or(|id| !used.contains(&id)) {
            continue;
        }
        let Some(io) = cpuset(&p.cpuset) else {
            continue; // pin-invalid
        };
        let shared = intersect(&io, vcpus);
        if shared.is_empty() {
            continue;
        }
        let id = p.id.unwrap_or(0);
        let all_on_vcpus = io.is_subset(vcpus);
        let also = if all_on_vcpus {
            String::new()
        } else {
            format!(" (and on {})", io.difference(vcpus))
        };
        let msg = format!(
            "iothread {id} pinned onto CPU(s) {io}, of which {shared} also run{} the dedicated vCPUs ({vcpus}){also}",
            if shared.len() == 1 { "s" } else { "" }
        );
        let f = out.finding(msg, vec![cx.ev(p.node)]);
        if let Some(hk) = &housekeeping {
            let hk = hk.to_string();
            f.fix(
                format!("Pin iothread {id} onto the emulator's CPUs {hk}"),
                vec![Edit::set(cx.doc, p.node, "cpuset", &hk)],
                format!(
                    "virsh iothreadpin {} {id} {hk} --live --config",
                    cx.shell_name()
                ),
                Applies::Live,
            );
        }
    }
}

fn iothread_unused(cx: &Cx, out: &mut Out) {
    let declared = declared_iothreads(cx);
    if declared.is_empty() {
        return;
    }
    let used = used_iothreads(cx);
    let unused: BTreeSet<u32> = declared.difference(used).copied().collect();
    if unused.is_empty() {
        return;
    }
    let ev = cx
        .doc
        .child(cx.d.node, "iothreadids")
        .or_else(|| cx.doc.child(cx.d.node, "iothreads"))
        .map(|n| cx.ev(n))
        .unwrap_or_else(|| cx.ev_absent(cx.d.node, "iothreads"));
    let what = if used.is_empty() {
        "no disk or controller uses any of them".to_string()
    } else {
        format!("devices use only {}", id_list(used))
    };
    out.finding(
        format!(
            "{} iothread(s) declared, {} unused ({what})",
            declared.len(),
            id_list(&unused)
        ),
        vec![ev],
    );
}

/// The disks (device disk or lun) attached to SCSI controller `index`: `<address
/// type='drive' controller='N'>`, controller 0 when the address is absent.
pub(super) fn disks_on_scsi<'a>(cx: &Cx<'a>, index: u32) -> Vec<&'a kvmtune_domain::model::Disk> {
    cx.d.devices
        .disks
        .iter()
        .filter(|d| d.bus.as_deref() == Some("scsi") && matches!(d.device(), "disk" | "lun"))
        .filter(|d| {
            let ctrl = cx
                .doc
                .child(d.node, "address")
                .filter(|a| cx.doc.attr(*a, "type") == Some("drive"))
                .and_then(|a| cx.doc.attr(a, "controller"))
                .map_or(Some(0), |c| c.trim().parse::<u32>().ok());
            ctrl == Some(index)
        })
        .collect()
}

/// Whether scsi-iothread wants I/O threads on this domain (as disk-io: 2+ vCPUs, a QEMU
/// that has them).
fn scsi_iothreads_wanted(cx: &Cx) -> bool {
    cx.d.vcpus() >= 2 && cx.caps.is_none_or(|c| c.iothreads != Some(false))
}

/// The I/O thread scsi-iothread gives virtio-scsi controllers (one for all of them, as one
/// is usually enough): a declared one no device uses, else a new one, with the new
/// `<iothreads>` count then. With none declared that is iothread 1, the one disk-io gives
/// virtio-blk disks, so the fixes declare the same count.
fn scsi_iothread_choice(cx: &Cx) -> (u32, Option<u32>) {
    let declared = declared_iothreads(cx);
    let used = used_iothreads(cx);
    match declared.difference(used).next().copied() {
        Some(id) => (id, None),
        None => (
            declared.iter().next_back().copied().unwrap_or(0) + 1,
            Some(cx.d.iothreads.max(declared.len() as u32) + 1),
        ),
    }
}

/// The edits that give SCSI controller `ctrl` scsi-iothread's I/O thread.
fn scsi_iothread_edits(cx: &Cx, ctrl: NodeId, id: u32, count: Option<u32>) -> Vec<Edit> {
    let mut edits = Vec::new();
    if let Some(n) = count {
        edits.push(Edit::text_at(
            cx.doc,
            cx.d.node,
            vec![Seg::new("iothreads")],
            &n.to_string(),
        ));
        if cx.doc.child(cx.d.node, "iothreadids").is_some() {
            edits.push(Edit::ensure(
                cx.doc,
                cx.d.node,
                vec![
                    Seg::new("iothreadids"),
                    Seg::keyed("iothread", "id", &id.to_string()),
                ],
            ));
        }
    }
    edits.push(Edit::set_at(
        cx.doc,
        ctrl,
        vec![Seg::new("driver")],
        "iothread",
        &id.to_string(),
    ));
    edits
}

/// For disk-bus, which turns an emulated SCSI controller into virtio-scsi: the I/O thread
/// edits scsi-iothread would ask for next (none when it would not), so one apply finishes.
pub(super) fn converted_scsi_iothread(cx: &Cx, ctrl: NodeId) -> Option<(Vec<Edit>, u32)> {
    if !super::enabled("scsi-iothread", cx.profile) || !scsi_iothreads_wanted(cx) {
        return None;
    }
    let (id, count) = scsi_iothread_choice(cx);
    Some((scsi_iothread_edits(cx, ctrl, id, count), id))
}

fn scsi_iothread(cx: &Cx, out: &mut Out) {
    if !scsi_iothreads_wanted(cx) {
        return;
    }
    let (id, count) = scsi_iothread_choice(cx);
    for c in &cx.d.devices.controllers {
        if c.ctype != "scsi" || c.model.as_deref() != Some("virtio-scsi") {
            continue;
        }
        let drv = cx.doc.child(c.node, "driver");
        if drv.is_some_and(|d| {
            cx.doc.attr(d, "iothread").is_some() || cx.doc.child(d, "iothreads").is_some()
        }) {
            continue;
        }
        let disks = disks_on_scsi(cx, c.index.unwrap_or(0));
        if disks.is_empty() {
            continue;
        }
        let edits = scsi_iothread_edits(cx, c.node, id, count);
        let names: Vec<String> = disks.iter().map(|d| d.label()).collect();
        // info, as disk-io's for virtio-blk disks without an iothread
        out.at(
            Severity::Info,
            format!(
                "virtio-scsi controller {} serves disk(s) {} from QEMU's main loop (no iothread)",
                c.index.unwrap_or(0),
                names.join(", ")
            ),
            vec![cx.ev(drv.unwrap_or(c.node))],
        )
        .fix(
            format!(
                "Give virtio-scsi controller {} iothread {id}",
                c.index.unwrap_or(0)
            ),
            edits,
            super::virsh_edit(
                &cx.shell_name(),
                &format!(
                    "<iothreads>{}</iothreads> and <controller type='scsi' model='virtio-scsi'><driver iothread='{id}'/>",
                    count.unwrap_or(cx.d.iothreads)
                ),
            ),
            Applies::NextBoot,
        );
    }
}

// ---------------------------------------------------------------------------------------
// numatune

/// The host nodes a nodeset names that exist.
fn host_nodes(cx: &Cx, nodeset: &str) -> Option<BTreeSet<u32>> {
    let h = cx.host?;
    let s = cpuset(nodeset)?;
    Some(
        s.iter()
            .filter(|n| h.numa.nodes.iter().any(|x| x.id == *n))
            .collect(),
    )
}

/// Whether a host node has room for the domain's `mem_kib` now: `Some(fits)` judged on
/// what the node has free for it (its free hugepages of the domain's page size for a
/// hugepage-backed domain, else its free memory, which excludes the hugepage pools);
/// `None` when that is not known.
fn node_has_room(cx: &Cx, n: &kvmtune_host::Node, mem_kib: u64) -> Option<bool> {
    let mb = cx.d.memory_backing.as_ref().filter(|m| m.hugepages);
    match mb {
        Some(mb) => {
            let size = mb
                .pages
                .iter()
                .find_map(|p| p.size_kib)
                .or(cx.host?.memory.default_hugepage_kib)?;
            let pool = n.hugepages.iter().find(|p| p.size_kib == size)?;
            Some(pool.free.saturating_mul(size) >= mem_kib)
        }
        None => n.memory_free_kib.map(|f| f >= mem_kib),
    }
}

/// Whether a node could hold the domain at all: its memory less its hugepage pools (or
/// its hugepage pool of the domain's size, for a hugepage-backed domain), and its CPUs.
fn node_could_hold(cx: &Cx, n: &kvmtune_host::Node, mem_kib: u64, vcpus: u32) -> bool {
    if n.cpus.len() < vcpus as usize {
        return false;
    }
    let pools: u64 = n
        .hugepages
        .iter()
        .map(|p| p.total.saturating_mul(p.size_kib))
        .sum();
    if cx.d.memory_backing.as_ref().is_some_and(|m| m.hugepages) {
        return pools >= mem_kib;
    }
    n.memory_total_kib
        .is_some_and(|t| t.saturating_sub(pools) >= mem_kib)
}

fn numatune_mode(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    if !cx.multi_node() {
        return;
    }
    let Some(nt) = &cx.d.numatune else { return };
    // per-cell bindings or guest NUMA cells: spreading over nodes is the design
    if !nt.memnode.is_empty() || cx.d.cpu.as_ref().is_some_and(|c| !c.cells.is_empty()) {
        return;
    }
    let mem = cx.d.memory();
    let n = cx.d.vcpus();
    if mem == 0 {
        return;
    }
    let Some(m) = &nt.memory else { return };
    if m.placement.as_deref() == Some("auto") {
        return;
    }
    let Some(mode @ ("interleave" | "preferred")) = m.mode.as_deref() else {
        return;
    };
    let Some(nodes) = m.nodeset.as_deref().and_then(|s| host_nodes(cx, s)) else {
        return;
    };
    if nodes.len() < 2 {
        return;
    }
    let in_set: Vec<&kvmtune_host::Node> = h
        .numa
        .nodes
        .iter()
        .filter(|x| nodes.contains(&x.id) && node_could_hold(cx, x, mem, n))
        .collect();
    // one node of the set with room now, else one whose free memory is unknown
    let room: Vec<u32> = in_set
        .iter()
        .filter(|x| node_has_room(cx, x, mem) == Some(true))
        .map(|x| x.id)
        .collect();
    let unknown: Vec<u32> = in_set
        .iter()
        .filter(|x| node_has_room(cx, x, mem).is_none())
        .map(|x| x.id)
        .collect();
    if room.is_empty() && unknown.is_empty() {
        return; // no node has room: spreading is a fair choice
    }
    // the one node the vCPUs run on, when they are confined to one
    let vcpu_node = vcpu_cpus(cx).and_then(|c| {
        let nodes: BTreeSet<u32> = c.iter().filter_map(|x| cx.node_of(x)).collect();
        (nodes.len() == 1)
            .then(|| nodes.into_iter().next())
            .flatten()
    });
    let spread = id_list(&nodes);
    let k = nodes.len();
    let (sev, what) = if mode == "interleave" {
        (
            out.level,
            format!(
                "mode='interleave' over nodes {spread}: pages alternate between the {k} nodes, so {} in {k} of the guest's memory accesses go to a remote node",
                k - 1
            ),
        )
    } else {
        (
            Severity::Info,
            format!(
                "mode='preferred' over nodes {spread}: the memory is not kept on the vCPUs' node"
            ),
        )
    };
    let fits = if room.is_empty() {
        "could fit one node".to_string()
    } else {
        format!(
            "fits one node (node {} has that much free)",
            room.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", node ")
        )
    };
    let f = out.at(
        sev,
        format!(
            "{what}, although the domain ({}, {n} vCPUs) {fits}",
            human_kib(mem)
        ),
        vec![cx.ev(m.node)],
    );
    if room.is_empty() {
        f.assumed(format!(
            "node {}'s free memory is unknown: judged on its size less its hugepage pools, so no binding is offered",
            unknown.iter().map(u32::to_string).collect::<Vec<_>>().join(", node ")
        ));
        return;
    }
    // a strict binding only where the vCPUs run and the memory is free now
    if let Some(v) = vcpu_node.filter(|v| room.contains(v)) {
        f.fix(
            format!("Bind the memory strictly to node {v}, where the vCPUs run"),
            vec![
                Edit::set(cx.doc, m.node, "mode", "strict"),
                Edit::set(cx.doc, m.node, "nodeset", &v.to_string()),
            ],
            format!(
                "virsh numatune {} --mode strict --nodeset {v} --config",
                cx.shell_name()
            ),
            Applies::NextBoot,
        );
    }
}

// ---------------------------------------------------------------------------------------
// quotas

/// A `<cputune>` child's value as a number.
fn tune_num(cx: &Cx, tune: NodeId, name: &str) -> Option<(NodeId, i64)> {
    let n = cx.doc.child(tune, name)?;
    Some((n, cx.doc.text(n).trim().parse().ok()?))
}

fn cpus(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} CPU")
}

fn cpu_quota(cx: &Cx, out: &mut Out) {
    let Some(t) = &cx.d.cputune else { return };
    let n = cx.d.vcpus().max(1);
    // (quota, period, what, cap at or above which it limits nothing)
    let pairs = [
        ("quota", "period", "each vCPU", 1.0),
        (
            "global_quota",
            "global_period",
            "the whole domain",
            n as f64,
        ),
        (
            "emulator_quota",
            "emulator_period",
            "the emulator threads",
            1.0,
        ),
        ("iothread_quota", "iothread_period", "each I/O thread", 1.0),
    ];
    for (q, p, what, limitless) in pairs {
        let Some((node, quota)) = tune_num(cx, t.node, q) else {
            continue;
        };
        if quota <= 0 {
            continue; // -1 (or 0): no limit
        }
        // libvirt leaves the period at the kernel's default, 100 ms
        let period = tune_num(cx, t.node, p)
            .map(|(_, v)| v)
            .filter(|v| *v > 0)
            .unwrap_or(100_000);
        let cap = quota as f64 / period as f64;
        if cap >= limitless {
            continue;
        }
        let total = if q == "quota" {
            format!("; {n} vCPU(s) at most {} together", cpus(cap * n as f64))
        } else {
            String::new()
        };
        out.finding(
            format!(
                "{what} capped at {} ({q} {quota} µs per {period} µs){total}: throttled threads stall until the next period",
                cpus(cap)
            ),
            vec![cx.ev(node)],
        );
    }
}

// ---------------------------------------------------------------------------------------
// SMT topology against pins

/// vCPU id → host CPU, for the vCPUs pinned onto exactly one CPU.
fn single_pins(d: &kvmtune_domain::Domain) -> std::collections::BTreeMap<u32, u32> {
    let mut m = std::collections::BTreeMap::new();
    if let Some(t) = &d.cputune {
        for p in &t.vcpupin {
            if let (Some(id), Some(s)) = (p.id, cpuset(&p.cpuset))
                && s.len() == 1
                && let Some(c) = s.iter().next()
            {
                m.insert(id, c);
            }
        }
    }
    m
}

fn cpu_smt_pins(cx: &Cx, out: &mut Out) {
    // x86 only: POWER guests' threads follow the host core's SMT mode
    if !x86(cx) {
        return;
    }
    let Some(cpu) = &cx.d.cpu else { return };
    let n = cx.d.vcpu.max;
    if n < 2 {
        return;
    }
    let threads = cpu.topology.as_ref().and_then(|t| t.threads).unwrap_or(1);
    let pins = single_pins(cx.d);
    let groups = cx
        .host
        .map(|h| &h.cpu.sibling_groups)
        .filter(|g| !g.is_empty());
    if threads >= 2 {
        let Some(topo) = &cpu.topology else { return };
        // each vCPU's pinned CPUs (any number of them)
        let mut all_pins: std::collections::BTreeMap<u32, CpuSet> = Default::default();
        if let Some(t) = &cx.d.cputune {
            for p in &t.vcpupin {
                if let (Some(id), Some(s)) = (p.id, cpuset(&p.cpuset)) {
                    all_pins.insert(id, s);
                }
            }
        }
        // a guest core is confined when all its vCPUs are pinned, within as many host
        // CPUs as a core has threads (one CPU each, or one sibling set shared)
        let cores: Vec<(u32, Vec<u32>, Option<CpuSet>)> = (0..n.div_ceil(threads))
            .map(|core| {
                let ids: Vec<u32> = (core * threads..((core + 1) * threads).min(n)).collect();
                let mut u = CpuSet::new();
                for i in &ids {
                    match all_pins.get(i) {
                        Some(s) => s.iter().for_each(|c| u.insert(c)),
                        None => return (core, ids, None),
                    }
                }
                let confined = u.len() <= threads as usize;
                (core, ids, confined.then_some(u))
            })
            .collect();
        if cores
            .iter()
            .any(|(_, ids, u)| ids.len() >= 2 && u.is_none())
        {
            out.at(
                Severity::Info,
                format!(
                    "threads='{threads}' tells the guest its vCPUs come in SMT groups of {threads}, but the vCPUs are not each confined to one host core (a pin per vCPU, or one sibling set per guest core): the \"siblings\" run wherever the host puts them"
                ),
                vec![cx.ev(topo.node)],
            );
            return;
        }
        let Some(groups) = groups else { return };
        let mut bad = Vec::new();
        for (core, ids, u) in cores {
            let Some(cpus) = u else { continue };
            if ids.len() < 2 {
                continue;
            }
            let single = ids.iter().all(|i| pins.contains_key(i));
            if single && cpus.len() < ids.len() {
                continue; // vCPUs sharing one CPU: a different problem (cpu-exceeds-host)
            }
            let known = cpus.iter().all(|c| groups.iter().any(|g| g.contains(c)));
            if known && !groups.iter().any(|g| cpus.is_subset(g)) {
                bad.push(format!(
                    "guest core {core} (vCPUs {}-{}) on host CPUs {cpus}",
                    ids[0],
                    ids[ids.len() - 1]
                ));
            }
        }
        if bad.is_empty() {
            return;
        }
        let more = if bad.len() > 3 {
            format!(" and {} more", bad.len() - 3)
        } else {
            String::new()
        };
        let ev =
            cx.d.cputune
                .as_ref()
                .map(|t| cx.ev(t.node))
                .into_iter()
                .chain([cx.ev(topo.node)])
                .collect();
        out.finding(
            format!(
                "threads='{threads}', but {}{more}: not SMT siblings on the host",
                bad.into_iter().take(3).collect::<Vec<_>>().join(", ")
            ),
            ev,
        );
    } else {
        // the reverse: one-to-one pins onto sibling pairs the guest does not know about
        let Some(groups) = groups else { return };
        if cx.dedicated().is_none() {
            return;
        }
        let mut shared = Vec::new();
        for g in groups {
            let vs: Vec<String> = pins
                .iter()
                .filter(|(_, c)| g.contains(**c))
                .map(|(v, _)| v.to_string())
                .collect();
            if vs.len() >= 2 {
                shared.push(format!("vCPUs {} on {g}", vs.join(",")));
            }
        }
        if shared.is_empty() {
            return;
        }
        let ev = cpu
            .topology
            .as_ref()
            .map(|t| cx.ev_attr(t.node, "threads"))
            .unwrap_or_else(|| cx.ev_absent(cpu.node, "topology"));
        let count = shared.len();
        out.at(
            Severity::Info,
            format!(
                "{count} pair(s) of vCPUs pinned onto SMT siblings of one host core ({}{}) while the guest sees one thread per core: it cannot keep busy threads off shared cores",
                shared.into_iter().take(3).collect::<Vec<_>>().join("; "),
                if count > 3 { "; ..." } else { "" }
            ),
            vec![ev],
        );
    }
}

// ---------------------------------------------------------------------------------------
// CPU model age

/// x86 CPU model generations, oldest first, one list per vendor (libvirt's cpu_map
/// names without their -IBRS/-noTSX/-IBPB/-vN variants). A model counts as older than
/// another of the same list when it comes first; models of no list (Atom-class
/// Denverton/Snowridge/SierraForest, Hygon Dhyana, client-only Icelake-Client) are not
/// judged. Client and server parts of one generation are ordered client first: the
/// server part adds AVX-512.
const GENERATIONS: &[&[&str]] = &[
    &[
        "Conroe",
        "Penryn",
        "Nehalem",
        "Westmere",
        "SandyBridge",
        "IvyBridge",
        "Haswell",
        "Broadwell",
        "Skylake-Client",
        "Skylake-Server",
        "Cascadelake-Server",
        "Cooperlake",
        "Icelake-Server",
        "SapphireRapids",
        "GraniteRapids",
    ],
    &[
        "Opteron_G1",
        "Opteron_G2",
        "Opteron_G3",
        "Opteron_G4",
        "Opteron_G5",
        "EPYC",
        "EPYC-Rome",
        "EPYC-Milan",
        "EPYC-Genoa",
    ],
];

/// A model's place: (vendor list, index), after stripping its variant suffixes.
fn generation(model: &str) -> Option<(usize, usize)> {
    let mut m = model.trim();
    // -v1, -v2, ... (QEMU versioned models)
    if let Some((base, v)) = m.rsplit_once("-v")
        && !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit())
    {
        m = base;
    }
    loop {
        let before = m;
        for suffix in ["-IBRS", "-IBPB", "-noTSX"] {
            m = m.strip_suffix(suffix).unwrap_or(m);
        }
        if m == before {
            break;
        }
    }
    GENERATIONS
        .iter()
        .enumerate()
        .find_map(|(v, list)| list.iter().position(|x| *x == m).map(|i| (v, i)))
}

/// The libvirt CPU model of a host CPU's generation, read from its /proc/cpuinfo model
/// name where the name says it plainly (Xeon E3/E5/E7 v1-v4, Xeon Scalable, Core i 2nd to
/// 9th generation, EPYC 7001-7003 and 9004); `None` for anything else.
fn generation_of_name(name: &str) -> Option<&'static str> {
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c == '@')
        .filter(|w| !w.is_empty())
        .collect();
    let digits = |w: &str| -> Option<u32> {
        let d: String = w.chars().filter(|c| c.is_ascii_digit()).collect();
        d.parse().ok()
    };
    if name.contains("Intel") {
        // Xeon E3-1230 v2, E5-2650 v2, E7-4850 v3; no version: Sandy Bridge
        if let Some(i) = words
            .iter()
            .position(|w| w.starts_with("E3-") || w.starts_with("E5-") || w.starts_with("E7-"))
        {
            return match words.get(i + 1).copied() {
                Some("v2") => Some("IvyBridge"),
                Some("v3") => Some("Haswell"),
                Some("v4") => Some("Broadwell"),
                Some(v) if v.starts_with('v') => None,
                _ => Some("SandyBridge"),
            };
        }
        // Xeon Scalable: Bronze/Silver/Gold/Platinum NNNN, second digit = generation
        if let Some(i) = words
            .iter()
            .position(|w| matches!(*w, "Bronze" | "Silver" | "Gold" | "Platinum"))
        {
            let n = words.get(i + 1).and_then(|w| digits(w))?;
            if !(1000..10000).contains(&n) {
                return None;
            }
            return match (n / 100) % 10 {
                1 => Some("Skylake-Server"),
                2 => Some("Cascadelake-Server"),
                4 => Some("SapphireRapids"),
                _ => None, // 3: Cooper Lake or Ice Lake; later: not mapped
            };
        }
        // Core i3/i5/i7/i9-NNNN: the first digit(s) = generation (2nd to 9th)
        if let Some(w) = words.iter().find(|w| {
            ["i3-", "i5-", "i7-", "i9-"]
                .iter()
                .any(|p| w.starts_with(p))
        }) {
            let n = digits(&w[3..])?;
            if !(1000..10000).contains(&n) {
                return None;
            }
            return match n / 1000 {
                2 => Some("SandyBridge"),
                3 => Some("IvyBridge"),
                4 => Some("Haswell"),
                5 => Some("Broadwell"),
                6..=9 => Some("Skylake-Client"),
                _ => None,
            };
        }
        return None;
    }
    if name.contains("AMD EPYC") {
        let i = words.iter().position(|w| *w == "EPYC")?;
        let w = words.get(i + 1)?;
        let n = digits(w)?;
        if !(1000..10000).contains(&n) {
            return None;
        }
        return match (n / 1000, n % 10) {
            (7, 1) => Some("EPYC"),
            (7, 2) => Some("EPYC-Rome"),
            (7, 3) => Some("EPYC-Milan"),
            (9, 4) => Some("EPYC-Genoa"),
            _ => None,
        };
    }
    None
}

fn cpu_model_old(cx: &Cx, out: &mut Out) {
    // as cpu-mode: KVM domains, and TCG ones virt-type moves to KVM
    if !x86(cx) || (cx.d.virt_type != "kvm" && !tcg_on_kvm_host(cx)) {
        return;
    }
    let Some(c) = &cx.d.cpu else { return };
    if c.mode() != "custom" {
        return;
    }
    let Some(m) = c.model.as_deref() else { return };
    // cpu-mode reports the oldest models and the unusable ones
    if OLD_MODELS.contains(&m) || cx.caps.and_then(|k| k.model_usable(m)) == Some(false) {
        return;
    }
    let Some((gv, gi)) = generation(m) else {
        return;
    };
    let (host, sev, assumed) = match cx.caps {
        Some(caps) => {
            if caps.host_model == Some(false) {
                return;
            }
            let Some(host) = caps.host_model_name.as_deref() else {
                return;
            };
            let Some((hv, hi)) = generation(host) else {
                return;
            };
            if gv != hv || gi >= hi {
                return;
            }
            (
                format!("the host's ({host}, domain capabilities)"),
                out.level,
                None,
            )
        }
        None if cx
            .host
            .and_then(|h| h.cpu.model_name.as_deref())
            .and_then(generation_of_name)
            .and_then(generation)
            .is_some_and(|(hv, hi)| hv == gv && gi < hi) =>
        {
            // the host's generation, read from its /proc/cpuinfo model name
            let name = cx
                .host
                .and_then(|h| h.cpu.model_name.as_deref())
                .unwrap_or_default();
            let host = generation_of_name(name).unwrap_or_default();
            (
                format!("the host's ({host}: /proc/cpuinfo \"{}\")", name.trim()),
                out.level,
                None,
            )
        }
        None => {
            // else one sure inference from the flags: an Intel host with INVPCID is
            // Haswell or newer, so SandyBridge and IvyBridge models hide AVX2, FMA, BMI
            let Some(h) = cx.host else { return };
            let intel = h.cpu.vendor.as_deref() == Some("GenuineIntel");
            let invpcid = h.cpu.virt_flags.iter().any(|f| f == "invpcid");
            let haswell = generation("Haswell");
            if !intel || !invpcid || haswell.is_none_or(|(hv, hi)| gv != hv || gi >= hi) {
                return;
            }
            (
                "the host's (Haswell or newer: the host CPU has INVPCID)".to_string(),
                Severity::Info,
                Some(
                    "the host's CPU generation from its flags (no domain capabilities to name its model)",
                ),
            )
        }
    };
    let mut edits = vec![Edit::set(cx.doc, c.node, "mode", "host-model")];
    if c.match_.is_some() {
        edits.push(Edit::unset(cx.doc, c.node, "match"));
    }
    if let Some(mn) = c.model_node {
        edits.push(Edit::remove(cx.doc, mn));
    }
    if let Some(v) = cx.doc.child(c.node, "vendor") {
        edits.push(Edit::remove(cx.doc, v));
    }
    let f = out.at(
        sev,
        format!("CPU model {m} is older than {host}: the guest lacks the newer instructions"),
        vec![cx.ev(c.model_node.unwrap_or(c.node))],
    );
    if let Some(a) = assumed {
        f.assumed(a);
    }
    f.fix(
        "Use <cpu mode='host-model'>",
        edits,
        super::virsh_edit(&cx.shell_name(), "<cpu mode='host-model'/>"),
        Applies::NextBoot,
    );
}

// ---------------------------------------------------------------------------------------
// invariant TSC

fn cpu_invtsc(cx: &Cx, out: &mut Out) {
    // KVM domains only: TCG cannot give an invariant TSC (virt-type moves TCG domains first)
    if cx.d.virt_type != "kvm" || !super::rules_cpu::invtsc_wanted(cx) {
        return;
    }
    // a <cpu> that can carry a feature; without one (or without a model) cpu-mode's fix
    // comes first, and this rule follows on the next audit
    let Some(c) = &cx.d.cpu else { return };
    if c.features.iter().any(|f| f.name == "invtsc")
        // -cpu host,migratable=no passes invtsc already
        || (c.mode() == "host-passthrough" && c.migratable == Some(false))
        || (c.mode() == "custom" && c.model.is_none())
        // cpu-mode replaces the model, and its fix brings invtsc
        || super::rules_cpu::cpu_mode_rewrites(cx)
    {
        return;
    }
    let feature = vec![Seg::new("cpu"), Seg::keyed("feature", "name", "invtsc")];
    out.finding(
        format!(
            "the host's TSC is invariant (constant_tsc, nonstop_tsc) but the guest CPU (mode='{}') does not expose invtsc",
            c.mode()
        ),
        vec![
            cx.ev(c.node),
            super::Evidence {
                path: "/proc/cpuinfo flags".into(),
                line: None,
                value: "constant_tsc nonstop_tsc".into(),
            },
        ],
    )
    .fix(
        "Require the invtsc CPU feature (live migration is then blocked unless the TSC frequency is set)",
        vec![Edit::set_at(cx.doc, cx.d.node, feature, "policy", "require")],
        super::virsh_edit(
            &cx.shell_name(),
            "<cpu><feature policy='require' name='invtsc'/></cpu>",
        ),
        Applies::NextBoot,
    );
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    fn pins_io(io: &str, emu: Option<&str>) -> String {
        let emu = emu
            .map(|e| format!("<emulatorpin cpuset='{e}'/>"))
            .unwrap_or_default();
        format!(
            "<vcpu>2</vcpu><iothreads>1</iothreads><cputune><vcpupin vcpu='0' cpuset='2'/>\
<vcpupin vcpu='1' cpuset='3'/>{emu}<iothreadpin iothread='1' cpuset='{io}'/></cputune>{VBLK_IO1}"
        )
    }

    const VBLK_IO1: &str = "<devices><disk type='file' device='disk'><driver name='qemu' type='raw' iothread='1'/>\
<source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk></devices>";

    fn scsi(driver: &str, disk: bool) -> String {
        let disk = if disk {
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/i/a.img'/>\
<target dev='sda' bus='scsi'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>"
        } else {
            ""
        };
        format!(
            "<vcpu>2</vcpu><devices>{disk}<controller type='scsi' index='0' model='virtio-scsi'>{driver}</controller></devices>"
        )
    }

    /// 4 vCPUs, topology 1 socket x (4/threads) cores x threads, optionally pinned.
    fn smt(threads: u32, pins: Option<[&str; 4]>) -> String {
        let pins = pins
            .map(|p| {
                let v: String = p
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("<vcpupin vcpu='{i}' cpuset='{c}'/>"))
                    .collect();
                format!("<cputune>{v}<emulatorpin cpuset='0-1'/></cputune>")
            })
            .unwrap_or_default();
        format!(
            "<vcpu>4</vcpu>{pins}<cpu mode='host-model'><topology sockets='1' cores='{}' threads='{threads}'/></cpu>",
            4 / threads
        )
    }

    fn model(m: &str) -> String {
        format!(
            "<vcpu>2</vcpu><cpu mode='custom' match='exact'><model fallback='forbid'>{m}</model></cpu>"
        )
    }

    /// [`host16`] with more CPU flags.
    fn intel_flags(flags: &[&str]) -> kvmtune_host::Host {
        let mut h = host16();
        h.cpu.virt_flags.extend(flags.iter().map(|f| f.to_string()));
        h
    }

    pub(crate) fn cases() -> Vec<Case> {
        let two_node_cpus = "<vcpu cpuset='0-3'>2</vcpu>";
        let interleave = |ns: &str| {
            format!(
                "{two_node_cpus}<numatune><memory mode='interleave' nodeset='{ns}'/></numatune>"
            )
        };
        vec![
            // iothread-pins
            case(
                "iothread on a vCPU's CPU",
                "iothread-pins",
                "server",
                None,
                vec![dom(&pins_io("3", None))],
                WARN,
            ),
            case(
                "iothread on housekeeping CPUs",
                "iothread-pins",
                "server",
                None,
                vec![dom(&pins_io("0-1", Some("0-1")))],
                NONE,
            ),
            case(
                "unused iothread on a vCPU's CPU",
                "iothread-pins",
                "server",
                None,
                vec![dom(&pins_io("3", None).replace(VBLK_IO1, ""))],
                NONE,
            ),
            case(
                "iothread on vCPU cpuset CPUs (floating vCPUs, not dedicated)",
                "iothread-pins",
                "server",
                Some(host16()),
                vec![dom(&format!(
                    "<vcpu cpuset='4-7'>2</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='5'/></cputune>{VBLK_IO1}"
                ))],
                NONE,
            ),
            case(
                "iothread over the same shared pool as the vCPUs (iot-shared.xml)",
                "iothread-pins",
                "dense",
                Some(host16()),
                vec![dom_named(
                    "ios",
                    4096,
                    &format!(
                        "<vcpu placement='static' cpuset='0-7'>2</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='0-7'/></cputune>{VBLK_IO1}"
                    ),
                )],
                NONE,
            ),
            case(
                "iothread partly on a dedicated vCPU's CPU",
                "iothread-pins",
                "server",
                Some(host16()),
                vec![dom(&pins_io("0-2", Some("0-1")))],
                WARN,
            ),
            case(
                "vCPUs allowed on every host CPU",
                "iothread-pins",
                "server",
                Some(host16()),
                vec![dom(&format!(
                    "<vcpu cpuset='0-15'>2</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='5'/></cputune>{VBLK_IO1}"
                ))],
                NONE,
            ),
            // iothread-unused
            case(
                "two iothreads, one used",
                "iothread-unused",
                "server",
                None,
                vec![dom(&format!(
                    "<vcpu>2</vcpu><iothreads>2</iothreads>{VBLK_IO1}"
                ))],
                INFO,
            ),
            case(
                "one iothread, used",
                "iothread-unused",
                "server",
                None,
                vec![dom(&format!(
                    "<vcpu>2</vcpu><iothreads>1</iothreads>{VBLK_IO1}"
                ))],
                NONE,
            ),
            case(
                "iothread used by a virtio-scsi controller",
                "iothread-unused",
                "server",
                None,
                vec![dom(&format!(
                    "<iothreads>1</iothreads>{}",
                    scsi("<driver iothread='1'/>", true)
                ))],
                NONE,
            ),
            // scsi-iothread
            case(
                "virtio-scsi with a disk, no iothread (server: info, as disk-io)",
                "scsi-iothread",
                "server",
                None,
                vec![dom(&scsi("", true))],
                INFO,
            ),
            case(
                "virtio-scsi with a disk, no iothread, desktop",
                "scsi-iothread",
                "desktop",
                None,
                vec![dom(&scsi("", true))],
                INFO,
            ),
            case(
                "virtio-scsi with an iothread",
                "scsi-iothread",
                "server",
                None,
                vec![dom(&format!(
                    "<iothreads>1</iothreads>{}",
                    scsi("<driver iothread='1'/>", true)
                ))],
                NONE,
            ),
            case(
                "virtio-scsi without disks",
                "scsi-iothread",
                "server",
                None,
                vec![dom(&scsi("", false))],
                NONE,
            ),
            // numatune-mode
            case(
                "interleave over 2 nodes, fits one",
                "numatune-mode",
                "server",
                Some(host2n()),
                vec![dom(&interleave("0-1"))],
                WARN,
            ),
            case(
                "strict on one node",
                "numatune-mode",
                "server",
                Some(host2n()),
                vec![dom(&format!(
                    "{two_node_cpus}<numatune><memory mode='strict' nodeset='0'/></numatune>"
                ))],
                NONE,
            ),
            case(
                "interleave over 2 nodes, bigger than a node",
                "numatune-mode",
                "server",
                Some(host2n()),
                vec![dom_named("big", 40 * 1024, &interleave("0-1"))],
                NONE,
            ),
            case(
                "interleave over 2 nodes with guest cells bound per cell (numa-interleave-cells.xml)",
                "numatune-mode",
                "server",
                Some(host2n()),
                vec![dom(
                    "<vcpu cpuset='0-3'>4</vcpu><numatune><memory mode='interleave' nodeset='0-1'/>\
<memnode cellid='0' mode='strict' nodeset='0'/><memnode cellid='1' mode='strict' nodeset='1'/></numatune>\
<cpu mode='host-model'><numa><cell id='0' cpus='0-1' memory='1' unit='GiB'/><cell id='1' cpus='2-3' memory='1' unit='GiB'/></numa></cpu>",
                )],
                NONE,
            ),
            case(
                "interleave over 2 nodes, fits one by size but no node has it free",
                "numatune-mode",
                "server",
                Some({
                    let mut h = host2n();
                    for n in &mut h.numa.nodes {
                        n.memory_free_kib = Some(512 * 1024);
                    }
                    h
                }),
                vec![dom(&interleave("0-1"))],
                NONE,
            ),
            case(
                "interleave over 2 nodes, free memory unknown (assumed)",
                "numatune-mode",
                "server",
                Some({
                    let mut h = host2n();
                    for n in &mut h.numa.nodes {
                        n.memory_free_kib = None;
                    }
                    h
                }),
                vec![dom(&interleave("0-1"))],
                WARN,
            ),
            case(
                "preferred over 2 nodes, fits one",
                "numatune-mode",
                "server",
                Some(host2n()),
                vec![dom(
                    "<vcpu>2</vcpu><numatune><memory mode='preferred' nodeset='0-1'/></numatune>",
                )],
                INFO,
            ),
            // cpu-quota
            case(
                "quota half a CPU per vCPU",
                "cpu-quota",
                "server",
                None,
                vec![dom(
                    "<vcpu>2</vcpu><cputune><period>100000</period><quota>50000</quota></cputune>",
                )],
                INFO,
            ),
            case(
                "global quota one CPU for 4 vCPUs",
                "cpu-quota",
                "desktop",
                None,
                vec![dom(
                    "<vcpu>4</vcpu><cputune><global_quota>100000</global_quota></cputune>",
                )],
                INFO,
            ),
            case(
                "quota -1",
                "cpu-quota",
                "server",
                None,
                vec![dom(
                    "<vcpu>2</vcpu><cputune><period>100000</period><quota>-1</quota></cputune>",
                )],
                NONE,
            ),
            case(
                "shares only",
                "cpu-quota",
                "server",
                None,
                vec![dom(
                    "<vcpu>2</vcpu><cputune><shares>2048</shares></cputune>",
                )],
                NONE,
            ),
            // cpu-smt-pins
            case(
                "threads=2, unpinned",
                "cpu-smt-pins",
                "server",
                None,
                vec![dom(&smt(2, None))],
                INFO,
            ),
            case(
                "threads=2, guest cores on separate host cores",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(2, Some(["2", "4", "3", "5"])))],
                WARN,
            ),
            case(
                "threads=2, guest cores on sibling pairs",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(2, Some(["2", "3", "4", "5"])))],
                NONE,
            ),
            case(
                "threads=2, each guest core on one host core's sibling set (smt-pair.xml)",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(2, Some(["2-3", "2-3", "4-5", "4-5"])))],
                NONE,
            ),
            case(
                "threads=2, guest core sharing a set spanning two host cores",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(2, Some(["3-4", "3-4", "6-7", "6-7"])))],
                WARN,
            ),
            case(
                "threads=2, vCPUs floating over 4 CPUs",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(2, Some(["2-5", "2-5", "2-5", "2-5"])))],
                INFO,
            ),
            case(
                "threads=2, pinned, siblings unknown",
                "cpu-smt-pins",
                "server",
                None,
                vec![dom(&smt(2, Some(["2", "4", "3", "5"])))],
                NONE,
            ),
            case(
                "threads=1, pinned onto sibling pairs",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(1, Some(["2", "3", "4", "5"])))],
                INFO,
            ),
            case(
                "threads=1, pinned onto separate cores",
                "cpu-smt-pins",
                "server",
                Some(host16()),
                vec![dom(&smt(1, Some(["2", "4", "6", "8"])))],
                NONE,
            ),
            // cpu-model-old
            case(
                "SandyBridge on an INVPCID Intel host",
                "cpu-model-old",
                "server",
                Some(intel_flags(&["invpcid"])),
                vec![dom(&model("SandyBridge"))],
                INFO,
            ),
            case(
                "Haswell on an INVPCID Intel host",
                "cpu-model-old",
                "server",
                Some(intel_flags(&["invpcid"])),
                vec![dom(&model("Haswell-noTSX"))],
                NONE,
            ),
            case(
                "Nehalem: cpu-mode's",
                "cpu-model-old",
                "server",
                Some(intel_flags(&["invpcid"])),
                vec![dom(&model("Nehalem"))],
                NONE,
            ),
            case(
                "SandyBridge, migratable profile",
                "cpu-model-old",
                "migratable",
                Some(intel_flags(&["invpcid"])),
                vec![dom(&model("SandyBridge"))],
                NONE,
            ),
            case(
                "SandyBridge on an Ivy Bridge host, named by /proc/cpuinfo (iot-pins.xml + b-book)",
                "cpu-model-old",
                "server",
                Some({
                    let mut h = host16();
                    h.cpu.model_name = Some("Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz".into());
                    h
                }),
                vec![dom(&model("SandyBridge"))],
                WARN,
            ),
            case(
                "IvyBridge on an Ivy Bridge host, named by /proc/cpuinfo",
                "cpu-model-old",
                "server",
                Some({
                    let mut h = host16();
                    h.cpu.model_name = Some("Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz".into());
                    h
                }),
                vec![dom(&model("IvyBridge"))],
                NONE,
            ),
            // cpu-invtsc
            case(
                "latency, host-passthrough, invariant TSC host",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<cpu mode='host-passthrough'/>")],
                INFO,
            ),
            case(
                "latency, invtsc required",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom(
                    "<cpu mode='host-passthrough'><feature policy='require' name='invtsc'/></cpu>",
                )],
                NONE,
            ),
            case(
                "latency, host-passthrough migratable=off",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<cpu mode='host-passthrough' migratable='off'/>")],
                NONE,
            ),
            case(
                "latency, TSC not invariant",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc"])),
                vec![dom("<cpu mode='host-passthrough'/>")],
                NONE,
            ),
            case(
                "latency, TCG domain (type='qemu') on a KVM host",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<cpu mode='host-passthrough'/>").replace("type='kvm'", "type='qemu'")],
                NONE,
            ),
            case(
                "latency, no <cpu>: cpu-mode's fix comes first",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<vcpu>2</vcpu>")],
                NONE,
            ),
            case(
                "latency, named Haswell model",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom(&model("Haswell-noTSX"))],
                INFO,
            ),
            case(
                "latency, host-model: cpu-mode's fix brings invtsc",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<vcpu>2</vcpu><cpu mode='host-model'/>")],
                NONE,
            ),
            case(
                "latency, Windows guest",
                "cpu-invtsc",
                "latency",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom(
                    "<features><hyperv><relaxed state='on'/></hyperv></features><cpu mode='host-passthrough'/>",
                )],
                NONE,
            ),
            case(
                "server profile",
                "cpu-invtsc",
                "server",
                Some(intel_flags(&["constant_tsc", "nonstop_tsc"])),
                vec![dom("<cpu mode='host-passthrough'/>")],
                NONE,
            ),
        ]
    }

    #[test]
    fn host_generations_from_model_names() {
        for (name, want) in [
            (
                "Intel(R) Xeon(R) CPU E5-2650 v2 @ 2.60GHz",
                Some("IvyBridge"),
            ),
            (
                "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz",
                Some("SandyBridge"),
            ),
            (
                "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz",
                Some("Broadwell"),
            ),
            (
                "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz",
                Some("Cascadelake-Server"),
            ),
            (
                "Intel(R) Xeon(R) Platinum 8180 CPU @ 2.50GHz",
                Some("Skylake-Server"),
            ),
            ("Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz", Some("Haswell")),
            ("Intel(R) Core(TM) i7-10700K CPU @ 3.80GHz", None),
            ("AMD EPYC 7302 16-Core Processor", Some("EPYC-Rome")),
            ("AMD Ryzen 9 5950X 16-Core Processor", None),
            ("QEMU Virtual CPU version 2.5+", None),
        ] {
            assert_eq!(super::generation_of_name(name), want, "{name}");
        }
    }

    #[test]
    fn cpu_mode_leaves_a_named_model_alone_on_the_migratable_profile() {
        let v = findings(&[dom(&model("Nehalem"))], "migratable", Some(&host16()));
        assert!(!v.iter().any(|f| f.rule == "cpu-mode"), "{v:#?}");
        assert!(!v.iter().any(|f| f.rule == "cpu-model-old"), "{v:#?}");
        // server: Nehalem is cpu-mode's
        let v = findings(&[dom(&model("Nehalem"))], "server", Some(&host16()));
        assert!(v.iter().any(|f| f.rule == "cpu-mode"), "{v:#?}");
        // no <cpu> on migratable: still qemu64, still host-model
        let v = findings(&[dom("<vcpu>2</vcpu>")], "migratable", None);
        assert!(v.iter().any(|f| f.rule == "cpu-mode"), "{v:#?}");
    }

    #[test]
    fn sched_rules() {
        run_cases(&cases());
    }

    #[test]
    fn invtsc_fix_only_adds_the_feature_and_limits_migration() {
        let h = intel_flags(&["constant_tsc", "nonstop_tsc"]);
        let v = findings(
            &[dom("<vcpu>2</vcpu><cpu mode='host-passthrough'/>")],
            "latency",
            Some(&h),
        );
        let f = v.iter().find(|f| f.rule == "cpu-invtsc").unwrap();
        let x = f.fix.as_ref().unwrap();
        assert_eq!(x.class, crate::audit::FixClass::Migration);
        assert_eq!(x.edits.len(), 1, "{:?}", x.edits);
        assert!(
            x.edits[0].path.ends_with("feature[@name='invtsc']"),
            "{:?}",
            x.edits
        );
        assert!(x.summary.contains("migration"), "{}", x.summary);
        // the domain used to get <cpu mode='host-passthrough'> from this rule: now cpu-mode
        // writes the mode and brings invtsc in the same fix
        let v = findings(&[dom("<vcpu>2</vcpu>")], "latency", Some(&h));
        assert!(!v.iter().any(|f| f.rule == "cpu-invtsc"), "{v:#?}");
        let m = v.iter().find(|f| f.rule == "cpu-mode").unwrap();
        let x = m.fix.as_ref().unwrap();
        assert!(x.summary.contains("invtsc"), "{}", x.summary);
        assert!(
            x.edits
                .iter()
                .any(|e| e.path.ends_with("feature[@name='invtsc']"))
        );
        assert_eq!(x.class, crate::audit::FixClass::Migration);
        // server (cpu-invtsc off): cpu-mode's fix has no invtsc
        let v = findings(&[dom("<vcpu>2</vcpu>")], "server", Some(&h));
        let m = v.iter().find(|f| f.rule == "cpu-mode").unwrap();
        assert!(!m.fix.as_ref().unwrap().summary.contains("invtsc"));
    }
}

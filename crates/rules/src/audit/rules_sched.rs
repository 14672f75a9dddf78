//! Rules for CPU and I/O thread scheduling: SMT topology against pins, iothread pins and use, numatune modes, CPU quotas, CPU model age, invariant TSC.

use std::collections::BTreeSet;

use super::rules_cpu::vcpu_cpus;
use super::rules_numa::dedicated;
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
                why: "An <iothreadpin> onto CPUs the vCPUs are pinned to (<vcpupin> or <vcpu cpuset>) makes every burst of disk I/O preempt a vCPU: the guest sees stalls exactly when it is busy with I/O. I/O threads belong on housekeeping CPUs, with the emulator threads, apart from the vCPUs.",
                fix: "Pin the I/O threads onto housekeeping CPUs no vCPU uses (the <emulatorpin> CPUs when they are apart from the vCPUs).",
                risk: "virsh iothreadpin applies live; the pins are host-specific.",
                class: FixClass::Migration,
                source: "libvirt domain format (CPU tuning: iothreadpin, emulatorpin); Red Hat Enterprise Linux 7 Virtualization Tuning and Optimization Guide, 8.3 \"libvirt NUMA tuning\" (emulator and I/O thread pinning)",
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
                source: "libvirt domain format (IOThreads allocation; disk driver iothread; controller driver iothread)",
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
                why: "Disks on a virtio-scsi controller are served by the controller: without <driver iothread='N'/> on it, their I/O runs in QEMU's main loop with device emulation and the monitor, so busy disks add latency to everything else (a virtio-blk disk takes its own iothread instead).",
                fix: "Give the controller an I/O thread: <controller type='scsi' model='virtio-scsi'><driver iothread='N'/></controller> (and <iothreads> one more when none is free).",
                risk: "One more host thread; it needs pinning on latency hosts.",
                class: FixClass::Safe,
                source: "libvirt domain format (controllers: virtio-scsi driver iothread; IOThreads allocation); Red Hat Enterprise Linux 7 Virtualization Tuning and Optimization Guide, 5.4 \"Block I/O\" (IOThreads)",
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
                why: "<numatune><memory mode='interleave'> spreads every page round-robin over the nodeset: on two nodes half the guest's memory accesses are remote (30-100% more latency), although the domain fits one node and could have all its memory local. 'preferred' over several nodes does not keep the memory on one node either.",
                fix: "Bind the memory to the node the vCPUs run on: <memory mode='strict' nodeset='N'/> (or 'restrictive'), with the vCPUs on that node's CPUs; `kvmtune plan` picks the node.",
                risk: "The memory moves at next boot; a strict binding fails allocations when the node runs out of free memory.",
                class: FixClass::Capacity,
                source: "libvirt domain format (NUMA node tuning: memory mode); Red Hat Enterprise Linux 7 Virtualization Tuning and Optimization Guide, 8.3 \"libvirt NUMA tuning\" (memory policy modes)",
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
fn used_iothreads(cx: &Cx) -> BTreeSet<u32> {
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
    let Some(vcpus) = vcpu_cpus(cx) else { return };
    if vcpus.is_empty() {
        return;
    }
    // vCPUs allowed on every host CPU are not pinned: nothing to keep apart
    if cx.host_cpus().is_some_and(|all| all.is_subset(&vcpus)) {
        return;
    }
    let one_to_one = dedicated(cx.d).is_some();
    // the emulator's CPUs, when they are apart from the vCPUs: where the I/O threads belong
    let housekeeping = t
        .emulatorpin
        .as_ref()
        .and_then(|e| cpuset(&e.cpuset))
        .filter(|e| !e.is_empty() && intersect(e, &vcpus).is_empty());
    for p in &t.iothreadpin {
        let Some(io) = cpuset(&p.cpuset) else {
            continue; // pin-invalid
        };
        let shared = intersect(&io, &vcpus);
        if shared.is_empty() {
            continue;
        }
        let id = p.id.unwrap_or(0);
        let all_on_vcpus = io.is_subset(&vcpus);
        let (sev, msg) = if one_to_one || all_on_vcpus {
            (
                out.level,
                format!(
                    "iothread {id} pinned onto CPU(s) {io}, of which {shared} also run{} the vCPUs ({vcpus})",
                    if shared.len() == 1 { "s" } else { "" }
                ),
            )
        } else {
            (
                Severity::Info,
                format!(
                    "iothread {id} may run on CPU(s) {shared} of the vCPUs ({vcpus}) as well as on {}",
                    io.difference(&vcpus)
                ),
            )
        };
        let f = out.at(sev, msg, vec![cx.ev(p.node)]);
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
    let unused: BTreeSet<u32> = declared.difference(&used).copied().collect();
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
        format!("devices use only {}", id_list(&used))
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
fn disks_on_scsi<'a>(cx: &Cx<'a>, index: u32) -> Vec<&'a kvmtune_domain::model::Disk> {
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

fn scsi_iothread(cx: &Cx, out: &mut Out) {
    // as disk-io: I/O threads for domains with 2+ vCPUs whose QEMU has them
    if cx.d.vcpus() < 2 || cx.caps.is_some_and(|c| c.iothreads == Some(false)) {
        return;
    }
    let declared = declared_iothreads(cx);
    let used = used_iothreads(cx);
    // the I/O thread to give: a declared one no device uses, else a new one
    let free = declared.difference(&used).next().copied();
    let mut next_new = declared.iter().next_back().copied().unwrap_or(0) + 1;
    let mut new_count = cx.d.iothreads.max(declared.len() as u32);
    let has_ids = cx.doc.child(cx.d.node, "iothreadids").is_some();
    let strong = matches!(cx.profile.name.as_str(), "server" | "latency");
    let mut free = free;
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
        let mut edits = Vec::new();
        let id = match free.take() {
            Some(id) => id,
            None => {
                let id = next_new;
                next_new += 1;
                new_count += 1;
                edits.push(Edit::text_at(
                    cx.doc,
                    cx.d.node,
                    vec![Seg::new("iothreads")],
                    &new_count.to_string(),
                ));
                if has_ids {
                    edits.push(Edit::ensure(
                        cx.doc,
                        cx.d.node,
                        vec![
                            Seg::new("iothreadids"),
                            Seg::keyed("iothread", "id", &id.to_string()),
                        ],
                    ));
                }
                id
            }
        };
        edits.push(Edit::set_at(
            cx.doc,
            c.node,
            vec![Seg::new("driver")],
            "iothread",
            &id.to_string(),
        ));
        let names: Vec<String> = disks.iter().map(|d| d.label()).collect();
        let sev = if strong {
            Severity::Warn
        } else {
            Severity::Info
        };
        out.at(
            sev,
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
                    new_count.max(id)
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

/// The host nodes that could hold `mem_kib` and `vcpus` alone.
fn nodes_fitting(cx: &Cx, mem_kib: u64, vcpus: u32) -> Vec<u32> {
    cx.host
        .map(|h| {
            h.numa
                .nodes
                .iter()
                .filter(|n| {
                    n.cpus.len() >= vcpus as usize
                        && n.memory_total_kib.is_some_and(|m| m >= mem_kib)
                })
                .map(|n| n.id)
                .collect()
        })
        .unwrap_or_default()
}

fn numatune_mode(cx: &Cx, out: &mut Out) {
    if !cx.multi_node() {
        return;
    }
    let Some(nt) = &cx.d.numatune else { return };
    let mem = cx.d.memory();
    let n = cx.d.vcpus();
    if mem == 0 || nodes_fitting(cx, mem, n).is_empty() {
        return; // bigger than every node: spreading is a fair choice
    }
    // the one node the vCPUs run on, when they are confined to one
    let vcpu_node = vcpu_cpus(cx).and_then(|c| {
        let nodes: BTreeSet<u32> = c.iter().filter_map(|x| cx.node_of(x)).collect();
        (nodes.len() == 1)
            .then(|| nodes.into_iter().next())
            .flatten()
    });
    if let Some(m) = &nt.memory
        && m.placement.as_deref() != Some("auto")
        && let Some(mode @ ("interleave" | "preferred")) = m.mode.as_deref()
        && let Some(nodes) = m.nodeset.as_deref().and_then(|s| host_nodes(cx, s))
        && nodes.len() > 1
    {
        let spread = id_list(&nodes);
        let (sev, what) = if mode == "interleave" {
            (
                out.level,
                format!(
                    "mode='interleave' over nodes {spread}: pages alternate between the nodes, so most of the guest's memory is remote to its vCPUs"
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
        let f = out.at(
            sev,
            format!(
                "{what}, although the domain ({}, {n} vCPUs) fits one node",
                human_kib(mem)
            ),
            vec![cx.ev(m.node)],
        );
        match vcpu_node.filter(|v| nodes.contains(v)) {
            Some(v) if nt.memnode.is_empty() => {
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
            _ => {}
        }
    }
    // per guest cell: interleave over several nodes although the cell fits one
    let cpu = cx.d.cpu.as_ref();
    for mn in &nt.memnode {
        if mn.mode.as_deref() != Some("interleave") {
            continue;
        }
        let Some(nodes) = mn.nodeset.as_deref().and_then(|s| host_nodes(cx, s)) else {
            continue;
        };
        if nodes.len() < 2 {
            continue;
        }
        let cell_mem = cpu
            .and_then(|c| c.cells.iter().find(|x| x.id == mn.cellid))
            .and_then(|c| c.memory_kib);
        let Some(cell_mem) = cell_mem else { continue };
        if nodes_fitting(cx, cell_mem, 0).is_empty() {
            continue;
        }
        out.finding(
            format!(
                "guest cell {} ({}) interleaved over nodes {}, although it fits one node",
                mn.cellid.unwrap_or(0),
                human_kib(cell_mem),
                id_list(&nodes)
            ),
            vec![cx.ev(mn.node)],
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
<vcpupin vcpu='1' cpuset='3'/>{emu}<iothreadpin iothread='1' cpuset='{io}'/></cputune>"
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
                "iothread on vCPU cpuset CPUs",
                "iothread-pins",
                "server",
                Some(host16()),
                vec![dom(
                    "<vcpu cpuset='4-7'>2</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='5'/></cputune>",
                )],
                WARN,
            ),
            case(
                "vCPUs allowed on every host CPU",
                "iothread-pins",
                "server",
                Some(host16()),
                vec![dom(
                    "<vcpu cpuset='0-15'>2</vcpu><iothreads>1</iothreads><cputune><iothreadpin iothread='1' cpuset='5'/></cputune>",
                )],
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
                "virtio-scsi with a disk, no iothread",
                "scsi-iothread",
                "server",
                None,
                vec![dom(&scsi("", true))],
                WARN,
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
        ]
    }

    #[test]
    fn sched_rules() {
        run_cases(&cases());
    }
}

//! Domain rules: NUMA placement and CPU pinning.

use super::rules_cpu::vcpu_cpus;
use super::{Applies, Cx, Edit, Evidence, FixClass, Meta, Out, Rule, Severity, cpuset, human_kib};
use kvmtune_host::CpuSet;
use kvmtune_profile::Want;
use std::collections::BTreeSet;

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "numa-unbound",
                title: "No NUMA placement on a multi-node host",
                severity: Severity::Warn,
                profiles: &["server", "latency"],
                why: "Without <numatune>, pins or a vcpu cpuset, the host scheduler moves vCPUs between nodes and memory lands wherever the first touch happened: remote memory access costs 30-100% more latency, and it varies from run to run. With automatic NUMA balancing on (kernel.numa_balancing) and a domain that fits one node, the kernel keeps it mostly local: info only.",
                fix: "Bind the domain to one node: <vcpu cpuset> with that node's CPUs plus <numatune><memory mode='strict' nodeset='N'/></numatune> (kvmtune's planner picks the node).",
                risk: "Pinning ties the domain to this host's layout; a strict nodeset without enough free memory on the node fails allocations.",
                class: FixClass::Migration,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1",
                needs_host: true,
            },
            check: numa_unbound,
        },
        Rule {
            meta: Meta {
                id: "numa-inconsistent",
                title: "vCPUs and memory bound to different nodes",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "The vCPUs' CPUs (vcpu cpuset or vcpupin) are on other host nodes than <numatune>'s nodeset: every memory access the guest makes is remote. The two must be consistent.",
                fix: "Set <numatune><memory nodeset> to the nodes of the vCPUs' CPUs.",
                risk: "The domain's memory moves to the new node at next boot (or with virsh numatune --live, which migrates pages and costs CPU while it runs).",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1 (\"must be consistent\")",
                needs_host: true,
            },
            check: numa_inconsistent,
        },
        Rule {
            meta: Meta {
                id: "numa-node-too-small",
                title: "Strict NUMA binding cannot hold the domain's memory",
                severity: Severity::Error,
                profiles: &["*"],
                why: "With mode='strict' the guest may only allocate on the nodeset; when those nodes have less memory than the guest, allocations fail and the OOM killer ends QEMU.",
                fix: "Widen the nodeset, use mode='preferred' (or 'restrictive'), or shrink the guest.",
                risk: "Memory spread over more nodes is partly remote.",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1",
                needs_host: true,
            },
            check: numa_too_small,
        },
        Rule {
            meta: Meta {
                id: "numa-guest-cells",
                title: "Domain larger than a host node without guest NUMA cells",
                severity: Severity::Warn,
                profiles: &["server", "latency"],
                why: "A guest with more vCPUs or memory than one host node must span nodes; without <cpu><numa><cell> the guest believes all its memory is equally close and cannot place threads and memory together.",
                fix: "Give the guest one <cell> per host node it spans, with that node's vCPUs and memory, and bind each with <numatune><memnode>.",
                risk: "The guest's NUMA layout changes at next boot; it is then tied to hosts with at least as many nodes.",
                class: FixClass::GuestVisible,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1",
                needs_host: true,
            },
            check: numa_guest_cells,
        },
        Rule {
            meta: Meta {
                id: "pin-invalid",
                title: "Pins name CPUs that do not exist",
                severity: Severity::Error,
                profiles: &["*"],
                why: "A vcpupin, emulatorpin, iothreadpin or vcpu cpuset naming a CPU that is absent or offline (or that does not parse) makes the domain fail to start, or pins onto fewer CPUs than intended.",
                fix: "Pin onto online CPUs of this host (see kvmtune host).",
                risk: "None beyond the pin change.",
                class: FixClass::Migration,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1.2",
                needs_host: false,
            },
            check: pin_invalid,
        },
        Rule {
            meta: Meta {
                id: "pin-overlap",
                title: "Dedicated domains share CPUs",
                severity: Severity::Error,
                profiles: &["*"],
                why: "Two domains whose vCPUs are pinned one-to-one onto host CPUs were meant to have those CPUs to themselves; pinned onto the same CPUs (or onto SMT siblings of each other) they steal time from each other, typically after a migration or a copy-pasted XML.",
                fix: "Re-pin one domain onto free CPUs (kvmtune's planner).",
                risk: "virsh vcpupin applies live; the guest sees no change.",
                class: FixClass::Capacity,
                source: "field reports (Nova instances sharing pCPUs after migration)",
                needs_host: false,
            },
            check: pin_overlap,
        },
        Rule {
            meta: Meta {
                id: "pin-emulator",
                title: "Emulator threads not kept off pinned vCPUs",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "QEMU's emulator and I/O threads do device emulation and vhost work. With vCPUs pinned but no <emulatorpin> they float over the vCPUs' CPUs and interrupt them; pinned onto the vCPUs' own CPUs they compete with the guest.",
                fix: "<emulatorpin cpuset='...'/> onto housekeeping CPUs that no vCPU uses.",
                risk: "The emulator threads move at once (live): if the CPUs they get are busy (another domain's vCPUs, host work), the guest's device emulation and QEMU-side I/O slow down; pinning them onto CPUs that vCPUs also use is the problem itself.",
                class: FixClass::Migration,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1.2 (emulatorpin)",
                needs_host: false,
            },
            check: pin_emulator,
        },
        Rule {
            meta: Meta {
                id: "pin-cross-node",
                title: "vCPU pins spread over host nodes without guest NUMA",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "The vCPUs are pinned onto CPUs of several host nodes but the guest has no NUMA cells: it cannot know which memory is close to which vCPU.",
                fix: "Pin into one node, or add guest <numa> cells mirroring the host nodes.",
                risk: "Re-pinning applies live; guest cells need a restart.",
                class: FixClass::Migration,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1",
                needs_host: true,
            },
            check: pin_cross_node,
        },
        Rule {
            meta: Meta {
                id: "pin-policy",
                title: "Pinning does not match the profile",
                severity: Severity::Warn,
                profiles: &["latency", "migratable"],
                why: "The latency profile expects every vCPU pinned one-to-one onto a dedicated CPU (no sharing, stable caches); the migratable profile expects no host-specific pins, which may not fit the destination host.",
                fix: "latency: pin each vCPU with <vcpupin> (kvmtune's planner); migratable: drop the pins.",
                risk: "Pins apply live with virsh vcpupin.",
                class: FixClass::Migration,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1.2; libvirt domain format (cputune vcpupin)",
                needs_host: false,
            },
            check: pin_policy,
        },
    ]
}

/// The host nodes of a set of CPUs.
fn nodes_of(cx: &Cx, cpus: &CpuSet) -> BTreeSet<u32> {
    cpus.iter().filter_map(|c| cx.node_of(c)).collect()
}

fn set_str(s: &BTreeSet<u32>) -> String {
    let mut c = CpuSet::new();
    for &n in s {
        c.insert(n);
    }
    c.to_string()
}

fn numa_unbound(cx: &Cx, out: &mut Out) {
    if !cx.multi_node() {
        return;
    }
    let d = cx.d;
    let pinned =
        d.cputune.as_ref().is_some_and(|t| !t.vcpupin.is_empty()) || d.vcpu.cpuset.is_some();
    let auto = d.vcpu.placement.as_deref() == Some("auto");
    if d.numatune.is_some() || pinned || auto {
        return;
    }
    let nodes = cx.host.map_or(0, |h| h.numa.nodes.len());
    // with automatic NUMA balancing (kernel.numa_balancing 1 or 3) the kernel moves the
    // threads and pages of a domain that fits one node together: placement is worth
    // doing, no longer a warning
    let balancing = cx
        .host
        .and_then(|h| h.numa.balancing)
        .is_some_and(|b| b & 1 == 1);
    let fits = cx.host.is_some_and(|h| {
        h.numa.nodes.iter().any(|n| {
            n.cpus.len() >= d.vcpus() as usize
                && n.memory_total_kib.is_some_and(|m| m >= d.memory())
        })
    });
    let (sev, note) = if balancing && fits {
        (
            Severity::Info,
            "; it fits one node and automatic NUMA balancing is on, which keeps it mostly local",
        )
    } else {
        (out.level, "")
    };
    let f = out.at(
        sev,
        format!("no <numatune>, pins or cpuset on a host with {nodes} NUMA nodes{note}"),
        vec![
            cx.d.vcpu
                .node
                .map(|v| cx.ev(v))
                .unwrap_or_else(|| cx.ev_absent(cx.d.node, "vcpu")),
            cx.ev_absent(cx.d.node, "numatune"),
        ],
    );
    if fits && cx.host.is_some_and(|h| h.numa.balancing.is_none()) {
        f.assumed(
            "kernel.numa_balancing is unknown (e.g. a host read over a remote connection): judged as if it were off",
        );
    }
}

fn numa_inconsistent(cx: &Cx, out: &mut Out) {
    let Some(nt) = &cx.d.numatune else { return };
    let Some(mem) = &nt.memory else { return };
    let Some(nodeset) = mem.nodeset.as_deref().and_then(cpuset) else {
        return;
    };
    let Some(cpus) = vcpu_cpus(cx) else { return };
    let cpu_nodes = nodes_of(cx, &cpus);
    if cpu_nodes.is_empty() {
        return;
    }
    let mem_nodes: BTreeSet<u32> = nodeset.iter().collect();
    if cpu_nodes.is_subset(&mem_nodes) && cpu_nodes == mem_nodes {
        return;
    }
    if cpu_nodes.is_subset(&mem_nodes) {
        return; // memory may also come from more nodes: wasteful, not inconsistent
    }
    let want = set_str(&cpu_nodes);
    let mut evidence = vec![cx.ev_attr(mem.node, "nodeset")];
    if let Some(v) = cx.d.vcpu.node.filter(|_| cx.d.vcpu.cpuset.is_some()) {
        evidence.push(cx.ev_attr(v, "cpuset"));
    }
    if let Some(p) = cx.d.cputune.as_ref().and_then(|t| t.vcpupin.first()) {
        evidence.push(cx.ev(p.node));
    }
    out.finding(
        format!(
            "vCPUs run on CPUs {cpus} (node {want}) but memory is bound to node {}",
            set_str(&mem_nodes)
        ),
        evidence,
    )
    .fix(
        format!("Bind memory to node {want}"),
        vec![Edit::set(cx.doc, mem.node, "nodeset", &want)],
        format!(
            "virsh numatune {} --nodeset {want} --config",
            cx.shell_name()
        ),
        Applies::NextBoot,
    );
}

fn numa_too_small(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    let Some(nt) = &cx.d.numatune else { return };
    if nt.mode() != "strict" {
        return;
    }
    let Some(mem) = &nt.memory else { return };
    let Some(nodeset) = mem.nodeset.as_deref().and_then(cpuset) else {
        return;
    };
    let mut total = 0;
    for n in nodeset.iter() {
        match h
            .numa
            .nodes
            .iter()
            .find(|x| x.id == n)
            .and_then(|x| x.memory_total_kib)
        {
            Some(t) => total += t,
            None => return, // pin-invalid reports nodes that do not exist
        }
    }
    let need = cx.d.memory();
    if need > total {
        out.finding(
            format!(
                "{} of guest memory bound strictly to node(s) {nodeset} holding {} in all",
                human_kib(need),
                human_kib(total)
            ),
            vec![cx.ev(mem.node)],
        );
    }
}

fn numa_guest_cells(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    if h.numa.nodes.len() < 2 || cx.d.cpu.as_ref().is_some_and(|c| !c.cells.is_empty()) {
        return;
    }
    let max_mem = h
        .numa
        .nodes
        .iter()
        .filter_map(|n| n.memory_total_kib)
        .max()
        .unwrap_or(0);
    let max_cpus = h.numa.nodes.iter().map(|n| n.cpus.len()).max().unwrap_or(0) as u32;
    let mem = cx.d.memory();
    let n = cx.d.vcpus();
    let too_big_mem = max_mem > 0 && mem > max_mem;
    let too_big_cpu = max_cpus > 0 && n > max_cpus;
    if !too_big_mem && !too_big_cpu {
        return;
    }
    let what = match (too_big_mem, too_big_cpu) {
        (true, true) => format!(
            "{} and {n} vCPUs exceed the largest node ({}, {max_cpus} CPUs)",
            human_kib(mem),
            human_kib(max_mem)
        ),
        (true, false) => format!(
            "{} exceeds the largest node's {}",
            human_kib(mem),
            human_kib(max_mem)
        ),
        _ => format!("{n} vCPUs exceed the largest node's {max_cpus} CPUs"),
    };
    out.finding(
        format!("{what}, and the guest has no NUMA cells"),
        vec![
            cx.d.cpu
                .as_ref()
                .map(|c| cx.ev(c.node))
                .unwrap_or_else(|| cx.ev_absent(cx.d.node, "cpu")),
        ],
    );
}

fn pin_invalid(cx: &Cx, out: &mut Out) {
    let online = cx.host_cpus();
    // `what` is written only into a finding: most pins have none
    let check_set = |node, what: &dyn std::fmt::Display, set: &str, out: &mut Out| match cpuset(set)
    {
        None => {
            out.finding(
                format!("{what} cpuset '{set}' does not parse"),
                vec![cx.ev(node)],
            );
        }
        Some(s) if s.is_empty() => {
            out.finding(format!("{what} cpuset '{set}' is empty"), vec![cx.ev(node)]);
        }
        Some(s) => {
            if let Some(on) = &online {
                let bad = s.difference(on);
                if !bad.is_empty() {
                    out.finding(
                        format!(
                            "{what} names CPU(s) {bad}, not online on this host (online: {on})"
                        ),
                        vec![cx.ev(node)],
                    );
                }
            }
        }
    };
    let check = |node, what: &dyn std::fmt::Display, set: &str, out: &mut Out| {
        // one CPU (a vcpupin's usual cpuset) parses and is not empty: only whether it is
        // online is left, without building the set
        if let Some(cpu) = CpuSet::single(set) {
            if let Some(on) = &online
                && !on.contains(cpu)
            {
                out.finding(
                    format!("{what} names CPU(s) {cpu}, not online on this host (online: {on})"),
                    vec![cx.ev(node)],
                );
            }
            return;
        }
        check_set(node, what, set, out)
    };
    if let (Some(v), Some(set)) = (cx.d.vcpu.node, cx.d.vcpu.cpuset.as_deref()) {
        check(v, &"<vcpu>", set, out);
    }
    if let Some(t) = &cx.d.cputune {
        for p in &t.vcpupin {
            let id = p.id.unwrap_or(0);
            if id >= cx.d.vcpu.max {
                out.finding(
                    format!(
                        "vcpupin for vCPU {id}, but the domain has {} vCPUs",
                        cx.d.vcpu.max
                    ),
                    vec![cx.ev(p.node)],
                );
            }
            check(
                p.node,
                &format_args!("vcpupin of vCPU {id}"),
                &p.cpuset,
                out,
            );
        }
        if let Some(p) = &t.emulatorpin {
            check(p.node, &"emulatorpin", &p.cpuset, out);
        }
        for p in &t.iothreadpin {
            check(
                p.node,
                &format_args!("iothreadpin of iothread {}", p.id.unwrap_or(0)),
                &p.cpuset,
                out,
            );
        }
    }
    if let (Some(h), Some(nt)) = (cx.host, &cx.d.numatune)
        && let Some(m) = &nt.memory
        && let Some(ns) = m.nodeset.as_deref().and_then(cpuset)
        && !h.numa.nodes.is_empty()
    {
        let missing: Vec<u32> = ns
            .iter()
            .filter(|n| !h.numa.nodes.iter().any(|x| x.id == *n))
            .collect();
        if !missing.is_empty() {
            out.finding(
                format!("numatune nodeset names node(s) {missing:?} that this host does not have"),
                vec![cx.ev(m.node)],
            );
        }
    }
}

/// One-to-one pins: every vCPU pinned onto exactly one CPU. Returns the CPUs.
pub(super) fn dedicated(d: &kvmtune_domain::Domain) -> Option<CpuSet> {
    let t = d.cputune.as_ref()?;
    if t.vcpupin.len() < d.vcpus() as usize || t.vcpupin.is_empty() {
        return None;
    }
    let mut all = CpuSet::new();
    for p in &t.vcpupin {
        let s = cpuset(&p.cpuset)?;
        if s.len() != 1 {
            return None;
        }
        s.iter().for_each(|c| all.insert(c));
    }
    Some(all)
}

fn pin_overlap(cx: &Cx, out: &mut Out) {
    let Some(mine) = cx.dedicated() else { return };
    // the evidence only for a finding: a domain is compared with every other
    let ev = || -> Vec<_> {
        cx.d.cputune
            .as_ref()
            .map(|t| cx.ev(t.node))
            .into_iter()
            .collect()
    };
    // one finding per other domain: the same domain given twice (two copies of its XML
    // among the files) is still one domain
    let mut seen = std::collections::BTreeSet::new();
    for p in cx.peers {
        if std::ptr::eq(p.domain, cx.d) || p.domain.name == cx.d.name {
            continue;
        }
        if !seen.insert(p.domain.name.as_str()) {
            continue;
        }
        let Some(theirs) = dedicated(p.domain) else {
            continue;
        };
        overlap_one(mine, &p.domain.name, &theirs, cx.host, &ev, out);
    }
}

/// `pin-overlap` of a domain pinned one-to-one onto `mine` against one other domain,
/// `name`, pinned one-to-one onto `theirs`.
fn overlap_one(
    mine: &CpuSet,
    name: &str,
    theirs: &CpuSet,
    host: Option<&kvmtune_host::Host>,
    ev: &dyn Fn() -> Vec<Evidence>,
    out: &mut Out,
) {
    let shared: CpuSet =
        mine.iter()
            .filter(|c| theirs.contains(*c))
            .fold(CpuSet::new(), |mut s, c| {
                s.insert(c);
                s
            });
    if !shared.is_empty() {
        out.finding(
            format!("pinned one-to-one onto CPU(s) {shared}, which {name} is pinned onto too"),
            ev(),
        );
    } else if let Some(h) = host {
        let sib: CpuSet = mine
            .iter()
            .flat_map(|c| {
                h.cpu
                    .sibling_groups
                    .iter()
                    .filter(move |g| g.contains(c))
                    .flat_map(|g| g.iter())
                    .filter(move |s| *s != c)
            })
            .filter(|s| theirs.contains(*s))
            .fold(CpuSet::new(), |mut s, c| {
                s.insert(c);
                s
            });
        if !sib.is_empty() {
            out.at(
                Severity::Warn,
                format!("{name}'s dedicated CPU(s) {sib} are SMT siblings of this domain's"),
                ev(),
            );
        }
    }
}

/// What `pin-overlap` reads of a domain pinned one-to-one, kept without its document: its
/// name, its dedicated CPUs and the evidence a finding cites.
pub(super) struct Pinned {
    name: String,
    mine: CpuSet,
    evidence: Vec<Evidence>,
}

impl Pinned {
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

/// The domain's [`Pinned`], when it is pinned one-to-one.
pub(super) fn pinned(cx: &Cx) -> Option<Pinned> {
    let mine = cx.dedicated()?.clone();
    Some(Pinned {
        name: cx.d.name.clone(),
        mine,
        evidence: cx
            .d
            .cputune
            .as_ref()
            .map(|t| cx.ev(t.node))
            .into_iter()
            .collect(),
    })
}

/// The peers as `pin-overlap` compares them: the first peer of each name (in peer order)
/// that is pinned one-to-one, with its CPUs, and which of them hold each CPU.
pub struct PinIndex<'a> {
    first: Vec<(&'a str, CpuSet)>,
    by_cpu: std::collections::HashMap<u32, Vec<usize>>,
}

impl<'a> PinIndex<'a> {
    pub(super) fn new(peers: &[super::Peer<'a>]) -> PinIndex<'a> {
        let mut seen = std::collections::HashSet::new();
        let mut first = Vec::new();
        let mut by_cpu: std::collections::HashMap<u32, Vec<usize>> = Default::default();
        for p in peers {
            let d: &'a kvmtune_domain::Domain = p.domain;
            if !seen.insert(d.name.as_str()) {
                continue;
            }
            let Some(theirs) = dedicated(d) else { continue };
            for c in theirs.iter() {
                by_cpu.entry(c).or_default().push(first.len());
            }
            first.push((d.name.as_str(), theirs));
        }
        PinIndex { first, by_cpu }
    }
}

/// `pin-overlap` of a [`Pinned`] domain against the indexed peers: the findings
/// [`pin_overlap`] gives with the same peers, looking only at the peers that hold one of
/// its CPUs or (with a host) one of their SMT siblings.
pub(super) fn pin_overlap_indexed(
    p: &Pinned,
    index: &PinIndex,
    host: Option<&kvmtune_host::Host>,
    out: &mut Out,
) {
    let mut near = p.mine.clone();
    if let Some(h) = host {
        for c in p.mine.iter() {
            for g in h.cpu.sibling_groups.iter().filter(|g| g.contains(c)) {
                g.iter().for_each(|s| near.insert(s));
            }
        }
    }
    let mut candidates: Vec<usize> = near
        .iter()
        .filter_map(|c| index.by_cpu.get(&c))
        .flatten()
        .copied()
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let ev = || p.evidence.clone();
    for i in candidates {
        let Some((name, theirs)) = index.first.get(i) else {
            continue;
        };
        if *name == p.name {
            continue;
        }
        overlap_one(&p.mine, name, theirs, host, &ev, out);
    }
}

fn pin_emulator(cx: &Cx, out: &mut Out) {
    let Some(t) = &cx.d.cputune else { return };
    if t.vcpupin.is_empty() {
        return;
    }
    let Some(vcpus) = vcpu_cpus(cx) else { return };
    // the fix needs a host CPU no vCPU of this domain is pinned to: say when there is none
    let no_room = cx.host_cpus().map(|h| {
        let free = h.iter().filter(|c| !vcpus.contains(*c)).count();
        (free == 0).then(|| format!("; every host CPU ({h}) holds one of its vCPUs, so there is no CPU to move them to: keep one for the host first (fewer vCPUs, or `kvmtune plan`)"))
    });
    let no_room = no_room.flatten().unwrap_or_default();
    match &t.emulatorpin {
        None => {
            out.finding(
                format!(
                    "vCPUs are pinned (CPUs {vcpus}) but the emulator threads are not{no_room}"
                ),
                vec![cx.ev(t.node)],
            );
        }
        Some(e) => {
            let Some(em) = cpuset(&e.cpuset) else { return };
            let shared: CpuSet =
                em.iter()
                    .filter(|c| vcpus.contains(*c))
                    .fold(CpuSet::new(), |mut s, c| {
                        s.insert(c);
                        s
                    });
            if !shared.is_empty() && cx.dedicated().is_some() {
                out.finding(
                    format!(
                        "emulatorpin {em} shares CPU(s) {shared} with the one-to-one pinned vCPUs{no_room}"
                    ),
                    vec![cx.ev(e.node)],
                );
            }
        }
    }
}

fn pin_cross_node(cx: &Cx, out: &mut Out) {
    if !cx.multi_node() || cx.d.cpu.as_ref().is_some_and(|c| !c.cells.is_empty()) {
        return;
    }
    let Some(t) = &cx.d.cputune else { return };
    if t.vcpupin.is_empty() {
        return;
    }
    let Some(cpus) = vcpu_cpus(cx) else { return };
    let nodes = nodes_of(cx, &cpus);
    if nodes.len() > 1 {
        out.finding(
            format!("vCPUs pinned onto CPUs {cpus} on nodes {}", set_str(&nodes)),
            vec![cx.ev(t.node)],
        );
    }
}

fn pin_policy(cx: &Cx, out: &mut Out) {
    let pins = cx.d.cputune.as_ref().map(|t| t.vcpupin.len()).unwrap_or(0);
    match cx.profile.domain.pinning {
        Want::Want if cx.dedicated().is_none() => {
            let ev =
                cx.d.cputune
                    .as_ref()
                    .map(|t| cx.ev(t.node))
                    .unwrap_or_else(|| cx.ev_absent(cx.d.node, "cputune"));
            let one_to_one =
                cx.d.cputune
                    .as_ref()
                    .map(|t| {
                        t.vcpupin
                            .iter()
                            .filter(|p| cpuset(&p.cpuset).is_some_and(|s| s.len() == 1))
                            .count()
                    })
                    .unwrap_or(0);
            out.finding(
                format!(
                    "{} of {} vCPUs pinned one-to-one; the {} profile wants dedicated CPUs",
                    one_to_one.min(cx.d.vcpus() as usize),
                    cx.d.vcpus(),
                    cx.profile.name
                ),
                vec![ev],
            );
        }
        Want::Avoid if pins > 0 => {
            let t = cx.d.cputune.as_ref().map(|t| t.node).unwrap_or(cx.d.node);
            out.at(
                Severity::Info,
                format!(
                    "{pins} vCPU pins tie the domain to this host's CPU numbering ({} profile)",
                    cx.profile.name
                ),
                vec![Evidence {
                    path: cx.doc.path(t),
                    line: cx.doc.line(t),
                    value: format!("{pins} <vcpupin>"),
                }],
            );
        }
        _ => {}
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    /// [`host2n`] with kernel.numa_balancing set.
    fn balancing_host(v: u32) -> kvmtune_host::Host {
        let mut h = host2n();
        h.numa.balancing = Some(v);
        h
    }

    fn pins(a: &str, b: &str) -> String {
        format!(
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='{a}'/><vcpupin vcpu='1' cpuset='{b}'/></cputune>"
        )
    }

    fn pins_emu(a: &str, b: &str, emu: &str) -> String {
        format!(
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='{a}'/><vcpupin vcpu='1' cpuset='{b}'/><emulatorpin cpuset='{emu}'/></cputune>"
        )
    }

    pub(crate) fn cases() -> Vec<Case> {
        let strict =
            |n: &str| format!("<numatune><memory mode='strict' nodeset='{n}'/></numatune>");
        let cells = "<cpu mode='host-model'><numa><cell id='0' cpus='0-5' memory='1' unit='GiB'/>\
<cell id='1' cpus='6-11' memory='1' unit='GiB'/></numa></cpu>";
        vec![
            // numa-unbound
            case(
                "unbound on 2 nodes",
                "numa-unbound",
                "server",
                Some(host2n()),
                vec![dom("<vcpu>2</vcpu>")],
                WARN,
            ),
            case(
                "unbound on 2 nodes, balancing on, fits one node",
                "numa-unbound",
                "server",
                Some(balancing_host(1)),
                vec![dom("<vcpu>2</vcpu>")],
                INFO,
            ),
            case(
                "unbound on 2 nodes, balancing on, too big for one node",
                "numa-unbound",
                "server",
                Some(balancing_host(1)),
                vec![dom_named("big", 40 * 1024, "<vcpu>2</vcpu>")],
                WARN,
            ),
            case(
                "unbound on 2 nodes, memory tiering only",
                "numa-unbound",
                "server",
                Some(balancing_host(2)),
                vec![dom("<vcpu>2</vcpu>")],
                WARN,
            ),
            case(
                "bound to node 0",
                "numa-unbound",
                "server",
                Some(host2n()),
                vec![dom(&format!("<vcpu cpuset='0-7'>2</vcpu>{}", strict("0")))],
                NONE,
            ),
            case(
                "placement auto",
                "numa-unbound",
                "server",
                Some(host2n()),
                vec![dom("<vcpu placement='auto'>2</vcpu>")],
                NONE,
            ),
            case(
                "unbound on 1 node",
                "numa-unbound",
                "server",
                Some(host16()),
                vec![dom("<vcpu>2</vcpu>")],
                NONE,
            ),
            // numa-inconsistent
            case(
                "cpus node 0, memory node 1",
                "numa-inconsistent",
                "server",
                Some(host2n()),
                vec![dom(&format!("<vcpu cpuset='0-3'>2</vcpu>{}", strict("1")))],
                WARN,
            ),
            case(
                "cpus and memory node 0",
                "numa-inconsistent",
                "server",
                Some(host2n()),
                vec![dom(&format!("<vcpu cpuset='0-3'>2</vcpu>{}", strict("0")))],
                NONE,
            ),
            // numa-node-too-small
            case(
                "40 GiB strict on a 32 GiB node",
                "numa-node-too-small",
                "server",
                Some(host2n()),
                vec![dom_named("vm", 40960, &strict("0"))],
                ERROR,
            ),
            case(
                "40 GiB preferred on a 32 GiB node",
                "numa-node-too-small",
                "server",
                Some(host2n()),
                vec![dom_named(
                    "vm",
                    40960,
                    "<numatune><memory mode='preferred' nodeset='0'/></numatune>",
                )],
                NONE,
            ),
            case(
                "40 GiB strict on both nodes",
                "numa-node-too-small",
                "server",
                Some(host2n()),
                vec![dom_named("vm", 40960, &strict("0-1"))],
                NONE,
            ),
            // numa-guest-cells
            case(
                "12 vCPUs over 8-CPU nodes",
                "numa-guest-cells",
                "server",
                Some(host2n()),
                vec![dom("<vcpu>12</vcpu><cpu mode='host-model'/>")],
                WARN,
            ),
            case(
                "12 vCPUs with guest cells",
                "numa-guest-cells",
                "server",
                Some(host2n()),
                vec![dom(&format!("<vcpu>12</vcpu>{cells}"))],
                NONE,
            ),
            case(
                "8 vCPUs in 8-CPU nodes",
                "numa-guest-cells",
                "server",
                Some(host2n()),
                vec![dom("<vcpu>8</vcpu><cpu mode='host-model'/>")],
                NONE,
            ),
            // pin-invalid
            case(
                "pin onto absent CPU 99",
                "pin-invalid",
                "server",
                Some(host16()),
                vec![dom(&pins("2", "99"))],
                ERROR,
            ),
            case(
                "pin onto online CPU 3",
                "pin-invalid",
                "server",
                Some(host16()),
                vec![dom(&pins("2", "3"))],
                NONE,
            ),
            case(
                "pin does not parse",
                "pin-invalid",
                "server",
                None,
                vec![dom(&pins("2", "x"))],
                ERROR,
            ),
            case(
                "pin for vCPU 5 of 2",
                "pin-invalid",
                "server",
                None,
                vec![dom(
                    "<vcpu>2</vcpu><cputune><vcpupin vcpu='5' cpuset='2'/></cputune>",
                )],
                ERROR,
            ),
            case(
                "nodeset names node 3",
                "pin-invalid",
                "server",
                Some(host2n()),
                vec![dom(&strict("3"))],
                ERROR,
            ),
            case(
                "nodeset names node 1",
                "pin-invalid",
                "server",
                Some(host2n()),
                vec![dom(&strict("1"))],
                NONE,
            ),
            // pin-overlap
            case(
                "same dedicated CPUs",
                "pin-overlap",
                "server",
                Some(host16()),
                vec![dom(&pins("4", "5")), dom_named("b", 1024, &pins("5", "6"))],
                ERROR,
            ),
            case(
                "disjoint dedicated CPUs",
                "pin-overlap",
                "server",
                Some(host16()),
                vec![dom(&pins("4", "5")), dom_named("b", 1024, &pins("8", "9"))],
                NONE,
            ),
            case(
                "SMT siblings of each other",
                "pin-overlap",
                "server",
                Some(host16()),
                vec![dom(&pins("4", "6")), dom_named("b", 1024, &pins("5", "7"))],
                WARN,
            ),
            case(
                "shared pins are not dedicated",
                "pin-overlap",
                "server",
                Some(host16()),
                vec![
                    dom(&pins("4-5", "4-5")),
                    dom_named("b", 1024, &pins("4-5", "4-5")),
                ],
                NONE,
            ),
            // pin-emulator
            case(
                "vCPUs pinned, emulator not",
                "pin-emulator",
                "server",
                None,
                vec![dom(&pins("2", "3"))],
                WARN,
            ),
            case(
                "emulator on housekeeping CPUs",
                "pin-emulator",
                "server",
                None,
                vec![dom(&pins_emu("2", "3", "0-1"))],
                NONE,
            ),
            case(
                "emulator on a vCPU's CPU",
                "pin-emulator",
                "server",
                None,
                vec![dom(&pins_emu("2", "3", "1-2"))],
                WARN,
            ),
            // pin-cross-node
            case(
                "pins on nodes 0 and 1",
                "pin-cross-node",
                "server",
                Some(host2n()),
                vec![dom(&pins("2", "9"))],
                WARN,
            ),
            case(
                "pins on node 0",
                "pin-cross-node",
                "server",
                Some(host2n()),
                vec![dom(&pins("2", "3"))],
                NONE,
            ),
            // pin-policy
            case(
                "latency, no pins",
                "pin-policy",
                "latency",
                None,
                vec![dom("<vcpu>2</vcpu>")],
                WARN,
            ),
            case(
                "latency, one-to-one pins",
                "pin-policy",
                "latency",
                None,
                vec![dom(&pins_emu("2", "3", "0"))],
                NONE,
            ),
            case(
                "latency, shared pins",
                "pin-policy",
                "latency",
                None,
                vec![dom(&pins_emu("2-3", "2-3", "0"))],
                WARN,
            ),
            case(
                "migratable, pinned",
                "pin-policy",
                "migratable",
                None,
                vec![dom(&pins("2", "3"))],
                INFO,
            ),
            case(
                "migratable, unpinned",
                "pin-policy",
                "migratable",
                None,
                vec![dom("<vcpu>2</vcpu>")],
                NONE,
            ),
        ]
    }

    #[test]
    fn numa_and_pin_rules() {
        run_cases(&cases());
    }

    #[test]
    fn invalid_pins_are_named_in_the_message() {
        let doms = vec![dom(
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='1' cpuset='x'/><emulatorpin cpuset='99'/>\
             <iothreadpin iothread='3' cpuset='2-1'/></cputune>",
        )];
        let messages: Vec<String> = findings(&doms, "server", Some(&host16()))
            .into_iter()
            .filter(|f| f.rule == "pin-invalid")
            .map(|f| f.message)
            .collect();
        assert!(
            messages.contains(&"vcpupin of vCPU 1 cpuset 'x' does not parse".to_string()),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("emulatorpin names CPU(s) 99, not online")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("iothreadpin of iothread 3 cpuset '2-1'")),
            "{messages:?}"
        );
    }

    #[test]
    fn an_overlapping_domain_given_twice_is_one_finding() {
        let b = dom_named("b", 1024, &pins("5", "6"));
        let c = dom_named("c", 1024, &pins("4", "9"));
        let doms = vec![dom(&pins("4", "5")), b.clone(), b, c];
        let overlaps: Vec<String> = findings(&doms, "server", Some(&host16()))
            .into_iter()
            .filter(|f| f.rule == "pin-overlap")
            .map(|f| f.message)
            .collect();
        assert_eq!(overlaps.len(), 2, "{overlaps:?}");
        assert!(overlaps[0].contains("which b is"), "{overlaps:?}");
        assert!(overlaps[1].contains("which c is"), "{overlaps:?}");
    }

    #[test]
    fn pin_overlap_in_two_steps_finds_what_it_finds_in_one() {
        // `findings` checks the two-step audit against `audit` for the first domain: many
        // domains with repeated names, one-to-one pins, ranges, with and without SMT facts
        let mut rng = fastrand::Rng::with_seed(7);
        let cpu = |rng: &mut fastrand::Rng| match rng.u32(0..10) {
            0 => "0-3".to_string(),
            _ => rng.u32(0..20).to_string(),
        };
        let doms: Vec<String> = (0..40)
            .map(|_| {
                let name = format!("d{}", rng.u32(0..25));
                let (a, b) = (cpu(&mut rng), cpu(&mut rng));
                dom_named(&name, 1024, &pins(&a, &b))
            })
            .collect();
        let mut fired = 0;
        for host in [None, Some(host16())] {
            for i in 0..doms.len() {
                let mut v = doms[i..].to_vec();
                v.extend_from_slice(&doms[..i]);
                fired += findings(&v, "server", host.as_ref())
                    .iter()
                    .filter(|f| f.rule == "pin-overlap")
                    .count();
            }
        }
        assert!(fired > 40, "{fired}");
    }
}

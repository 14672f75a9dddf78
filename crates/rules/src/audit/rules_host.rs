//! Rules that need the host and all its domains: overcommit, hugepage demand, KSM against
//! nosharepages, isolated CPUs.

use super::{Cx, Evidence, FixClass, Meta, Out, Rule, Severity, cpuset, human_kib};
use std::collections::BTreeMap;

/// Rules whose subject is the host (run once over all domains).
pub(super) const HOST_LEVEL: &[&str] = &[
    "host-overcommit",
    "host-hugepages-demand",
    "host-ksm-nosharepages",
];

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "host-overcommit",
                title: "Host overcommitted beyond the profile",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "More vCPUs than the profile's ratio per host thread means vCPUs wait for CPU (steal time, lock-holder preemption); more guest memory than host RAM works only with KSM, ballooning or swap, each with its own cost.",
                fix: "Move or shrink domains, or choose a denser profile knowingly.",
                risk: "None (advice).",
                class: FixClass::Capacity,
                source: "Red Hat Enterprise Linux 7 Virtualization Deployment and Administration Guide, \"Overcommitting with KVM\"; KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.5-3.7",
                needs_host: true,
            },
            check: overcommit,
        },
        Rule {
            meta: Meta {
                id: "host-hugepages-demand",
                title: "Hugepage pool smaller than the domains need",
                severity: Severity::Error,
                profiles: &["*"],
                why: "Domains with <hugepages/> take their memory from the host's static pool of that page size (on the nodes they are bound to). When the pool is smaller than their demand, the last ones fail to start ('unable to map backing store').",
                fix: "Reserve more pages of that size on those nodes (/sys/devices/system/node/nodeN/hugepages/hugepages-SIZEkB/nr_hugepages, or hugepages= at boot for 1 GiB pages).",
                risk: "Reserved hugepages are taken from general host memory.",
                class: FixClass::Capacity,
                source: "\"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012; KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.8",
                needs_host: true,
            },
            check: hugepages_demand,
        },
        Rule {
            meta: Meta {
                id: "host-ksm-nosharepages",
                title: "KSM runs but no domain can be merged",
                severity: Severity::Info,
                profiles: &["*"],
                why: "ksmd scans memory continuously; when every domain has <nosharepages/> or hugepages (which KSM cannot merge) it burns CPU for nothing.",
                fix: "Stop KSM: echo 0 > /sys/kernel/mm/ksm/run (and disable ksmtuned).",
                risk: "None while no domain can be merged.",
                class: FixClass::Capacity,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 3.1, 3.5",
                needs_host: true,
            },
            check: ksm_nosharepages,
        },
        Rule {
            meta: Meta {
                id: "host-isolcpus-pinning",
                title: "Pins and isolated CPUs do not fit together",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "isolcpus= removes CPUs from the scheduler's load balancing: a vCPU allowed on several isolated CPUs stays on the first one it lands on, so all such vCPUs pile onto one CPU. Dedicated (latency) domains belong on isolated CPUs, pinned one vCPU per CPU.",
                fix: "Pin each vCPU onto a single isolated CPU (<vcpupin vcpu='N' cpuset='C'/>).",
                risk: "virsh vcpupin applies live.",
                class: FixClass::Migration,
                source: "Linux kernel documentation, Documentation/admin-guide/kernel-parameters.txt (isolcpus, nohz_full); libvirt domain format (cputune vcpupin)",
                needs_host: true,
            },
            check: isolcpus,
        },
    ]
}

fn host_ev(path: &str, value: String) -> Evidence {
    Evidence {
        path: path.into(),
        line: None,
        value,
    }
}

/// The domains counted for a host total: the running ones when any runs, else all.
fn counted<'a>(cx: &'a Cx) -> Vec<&'a kvmtune_domain::Domain> {
    let any_active = cx.peers.iter().any(|p| p.active);
    cx.peers
        .iter()
        .filter(|p| p.active || !any_active)
        .map(|p| p.domain)
        .collect()
}

fn overcommit(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    let doms = counted(cx);
    let threads = h.online_cpus().len() as f64;
    // every vCPU a domain may bring online (its maximum, hot-pluggable ones included), as
    // `kvmtune plan` places them
    let vcpus: u32 = doms.iter().map(|d| d.vcpu.max).sum();
    let ratio = cx.profile.domain.vcpu_overcommit;
    if threads > 0.0 && f64::from(vcpus) > threads * ratio {
        out.finding(
            format!(
                "{vcpus} vCPUs (at their maximum, hot-pluggable ones included) in {} domains on {threads} host threads: {:.1}:1, above the {} profile's {ratio}:1",
                doms.len(),
                f64::from(vcpus) / threads,
                cx.profile.name
            ),
            vec![host_ev("/sys/devices/system/cpu/online", format!("{threads} threads"))],
        );
    }
    let Some(total) = h.memory.total_kib else {
        return;
    };
    let mem: u64 = doms.iter().map(|d| d.memory()).sum();
    let mratio = cx.profile.domain.memory_overcommit;
    if total > 0 && mem as f64 > total as f64 * mratio {
        let ksm_run = h.memory.ksm.as_ref().and_then(|k| k.run);
        let ksm = ksm_run == Some(1);
        let swap = h.memory.swap_total_kib.unwrap_or(0) > 0;
        // over a remote connection neither is known: no claim that nothing can absorb it
        let unknown = ksm_run.is_none() && h.remote.is_some();
        let f = out.finding(
            format!(
                "{} of guest memory in {} domains on {} of host RAM ({:.2}:1, profile {mratio}:1){}",
                human_kib(mem),
                doms.len(),
                human_kib(total),
                mem as f64 / total as f64,
                if !ksm && !swap && !unknown { "; neither KSM nor swap can absorb it" } else { "" }
            ),
            vec![host_ev("/proc/meminfo", format!("MemTotal {}", human_kib(total)))],
        );
        if unknown {
            f.assumed("whether KSM runs and swap exists is not known over a remote connection");
        } else if !ksm && !swap {
            f.severity = Severity::Error;
        }
    }
}

fn hugepages_demand(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    let dflt = h.memory.default_hugepage_kib.unwrap_or(2048);
    // (page size, node or None for any) → (KiB demanded, domains)
    let mut demand: BTreeMap<(u64, Option<u32>), (u64, Vec<String>)> = BTreeMap::new();
    for d in cx.peers.iter().map(|p| p.domain) {
        let Some(mb) = d.memory_backing.as_ref().filter(|m| m.hugepages) else {
            continue;
        };
        let mem = d.memory();
        let size = mb.pages.iter().find_map(|p| p.size_kib).unwrap_or(dflt);
        let strict_nodes = d
            .numatune
            .as_ref()
            .filter(|n| n.mode() == "strict")
            .and_then(|n| n.memory.as_ref())
            .and_then(|m| m.nodeset.as_deref())
            .and_then(cpuset);
        let node = strict_nodes
            .filter(|s| s.len() == 1)
            .and_then(|s| s.iter().next());
        let e = demand.entry((size, node)).or_default();
        e.0 += mem;
        e.1.push(d.name.clone());
    }
    for ((size, node), (kib, names)) in demand {
        let pool: u64 = match node {
            Some(n) => h
                .numa
                .nodes
                .iter()
                .find(|x| x.id == n)
                .map(|x| {
                    x.hugepages
                        .iter()
                        .filter(|p| p.size_kib == size)
                        .map(|p| p.total * size)
                        .sum()
                })
                .unwrap_or(0),
            None => h
                .memory
                .hugepages
                .iter()
                .filter(|p| p.size_kib == size)
                .map(|p| p.total * size)
                .sum(),
        };
        if kib > pool {
            let where_ = node.map(|n| format!(" on node {n}")).unwrap_or_default();
            let path = match node {
                Some(n) => format!(
                    "/sys/devices/system/node/node{n}/hugepages/hugepages-{size}kB/nr_hugepages"
                ),
                None => format!("/sys/kernel/mm/hugepages/hugepages-{size}kB/nr_hugepages"),
            };
            out.finding(
                format!(
                    "{} ({}) need {} of {size} KiB pages{where_}; the pool holds {}",
                    names.join(", "),
                    names.len(),
                    human_kib(kib),
                    human_kib(pool)
                ),
                vec![host_ev(&path, format!("{} pages", pool / size.max(1)))],
            );
        }
    }
}

fn ksm_nosharepages(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    if h.memory.ksm.as_ref().and_then(|k| k.run) != Some(1) || cx.peers.is_empty() {
        return;
    }
    let mergeable = cx
        .peers
        .iter()
        .filter(|p| {
            !p.domain
                .memory_backing
                .as_ref()
                .is_some_and(|m| m.nosharepages || m.hugepages)
        })
        .count();
    if mergeable == 0 {
        out.finding(
            format!(
                "KSM runs, but all {} domains have nosharepages or hugepages",
                cx.peers.len()
            ),
            vec![host_ev("/sys/kernel/mm/ksm/run", "1".into())],
        );
    }
}

fn isolcpus(cx: &Cx, out: &mut Out) {
    let Some(h) = cx.host else { return };
    let Some(iso) = h.cpu.isolated.as_ref().or(h.cmdline.isolcpus_cpus.as_ref()) else {
        return;
    };
    if iso.is_empty() {
        return;
    }
    let mut sets: Vec<(usize, String, String)> = Vec::new();
    if let Some(t) = &cx.d.cputune {
        for p in &t.vcpupin {
            sets.push((
                p.node,
                format!("vCPU {}", p.id.unwrap_or(0)),
                p.cpuset.clone(),
            ));
        }
    }
    if sets.is_empty()
        && let (Some(v), Some(c)) = (cx.d.vcpu.node, cx.d.vcpu.cpuset.as_deref())
    {
        sets.push((v, "all vCPUs".into(), c.to_string()));
    }
    for (node, who, set) in sets {
        let Some(s) = cpuset(&set) else { continue };
        let inside: Vec<u32> = s.iter().filter(|c| iso.contains(*c)).collect();
        if inside.len() > 1 {
            out.finding(
                format!("{who} may run on isolated CPUs {set}: without load balancing it stays on one of them"),
                vec![cx.ev(node), host_ev("/sys/devices/system/cpu/isolated", iso.to_string())],
            );
        }
    }
    if cx.profile.domain.pinning == kvmtune_profile::Want::Want
        && let Some(t) = &cx.d.cputune
        && !t.vcpupin.is_empty()
    {
        let outside: Vec<String> = t
            .vcpupin
            .iter()
            .filter(|p| cpuset(&p.cpuset).is_some_and(|s| s.iter().any(|c| !iso.contains(c))))
            .map(|p| p.id.unwrap_or(0).to_string())
            .collect();
        if !outside.is_empty() {
            out.at(
                Severity::Info,
                format!(
                    "vCPU(s) {} pinned outside the isolated CPUs {iso}",
                    outside.join(",")
                ),
                vec![cx.ev(t.node)],
            );
        }
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;
    use kvmtune_host::Host;

    fn vms(n: usize, mib: u64, extra: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                dom_named(
                    if i == 0 { "vm" } else { ["b", "c", "d"][i - 1] },
                    mib,
                    extra,
                )
            })
            .collect()
    }

    fn with(f: impl FnOnce(&mut Host)) -> Option<Host> {
        let mut h = host16();
        f(&mut h);
        Some(h)
    }

    fn pages(n: u64) -> Option<Host> {
        with(|h| h.memory.hugepages = vec![pool(2048, n)])
    }

    fn isolated() -> Option<Host> {
        with(|h| h.cpu.isolated = Some(set("8-15")))
    }

    fn pins(a: &str, b: &str) -> String {
        format!(
            "<vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='{a}'/><vcpupin vcpu='1' cpuset='{b}'/><emulatorpin cpuset='0'/></cputune>"
        )
    }

    pub(crate) fn cases() -> Vec<Case> {
        let huge = "<memoryBacking><hugepages/></memoryBacking>";
        let nosp = "<memoryBacking><nosharepages/></memoryBacking>";
        let ksm_on = || with(|h| h.memory.ksm = Some(ksm(1)));
        vec![
            // host-overcommit
            case(
                "36 vCPUs on 16 threads (2:1)",
                "host-overcommit",
                "server",
                Some(host16()),
                vms(3, 1024, "<vcpu>12</vcpu>"),
                WARN,
            ),
            case(
                "32 vCPUs on 16 threads (2:1)",
                "host-overcommit",
                "server",
                Some(host16()),
                vms(2, 1024, "<vcpu>16</vcpu>"),
                NONE,
            ),
            case(
                "80 GiB on 64 GiB, no KSM or swap",
                "host-overcommit",
                "server",
                Some(host16()),
                vms(2, 40960, ""),
                ERROR,
            ),
            case(
                "80 GiB on 64 GiB of a remote host (KSM and swap unknown): no error",
                "host-overcommit",
                "server",
                with(|h| {
                    h.remote = Some("qemu+ssh://h/system".into());
                    if let Some(k) = &mut h.memory.ksm {
                        k.run = None;
                    }
                }),
                vms(2, 40960, ""),
                WARN,
            ),
            case(
                "80 GiB on 64 GiB with swap",
                "host-overcommit",
                "server",
                with(|h| h.memory.swap_total_kib = Some(8 << 20)),
                vms(2, 40960, ""),
                WARN,
            ),
            case(
                "60 GiB on 64 GiB",
                "host-overcommit",
                "server",
                Some(host16()),
                vms(2, 30720, ""),
                NONE,
            ),
            // host-hugepages-demand
            case(
                "2 GiB demand, 1 GiB pool",
                "host-hugepages-demand",
                "server",
                pages(512),
                vec![dom(huge)],
                ERROR,
            ),
            case(
                "2 GiB demand, 2 GiB pool",
                "host-hugepages-demand",
                "server",
                pages(1024),
                vec![dom(huge)],
                NONE,
            ),
            case(
                "no hugepage domain, no pool",
                "host-hugepages-demand",
                "server",
                pages(0),
                vec![dom("")],
                NONE,
            ),
            case(
                "dense lowers it to info",
                "host-hugepages-demand",
                "dense",
                pages(512),
                vec![dom(huge)],
                INFO,
            ),
            // host-ksm-nosharepages
            case(
                "KSM runs, nothing mergeable",
                "host-ksm-nosharepages",
                "server",
                ksm_on(),
                vec![dom(nosp), dom_named("b", 1024, huge)],
                INFO,
            ),
            case(
                "KSM runs, one domain mergeable",
                "host-ksm-nosharepages",
                "server",
                ksm_on(),
                vec![dom(nosp), dom_named("b", 1024, "")],
                NONE,
            ),
            case(
                "KSM stopped, nothing mergeable",
                "host-ksm-nosharepages",
                "server",
                Some(host16()),
                vec![dom(nosp)],
                NONE,
            ),
            // host-isolcpus-pinning
            case(
                "vCPU floats over isolated CPUs",
                "host-isolcpus-pinning",
                "server",
                isolated(),
                vec![dom(&pins("8-9", "8-9"))],
                WARN,
            ),
            case(
                "vCPUs pinned one per isolated CPU",
                "host-isolcpus-pinning",
                "server",
                isolated(),
                vec![dom(&pins("8", "9"))],
                NONE,
            ),
            case(
                "vcpu cpuset over isolated CPUs",
                "host-isolcpus-pinning",
                "server",
                isolated(),
                vec![dom("<vcpu cpuset='8-11'>2</vcpu>")],
                WARN,
            ),
            case(
                "latency, pinned outside isolated",
                "host-isolcpus-pinning",
                "latency",
                isolated(),
                vec![dom(&pins("2", "3"))],
                INFO,
            ),
            case(
                "latency, pinned inside isolated",
                "host-isolcpus-pinning",
                "latency",
                isolated(),
                vec![dom(&pins("10", "11"))],
                NONE,
            ),
        ]
    }

    #[test]
    fn host_level_rules() {
        run_cases(&cases());
    }
}

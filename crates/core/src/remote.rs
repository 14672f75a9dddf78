//! Host facts of a host reached through libvirt (a remote URI): what libvirt reports, as the
//! same [`Host`] model the local readers fill, with everything libvirt cannot tell listed as
//! unknown "over a remote connection". Nothing here reads this machine.

use std::collections::BTreeMap;

use kvmtune_domain::{Document, NodeId};
use kvmtune_host::{CpuSet, Host, HugePool, Ksm, LogicalCpu, Node, Unknown};
use kvmtune_libvirt::NodeFacts;

/// The host facts libvirt cannot give, each with what kvmtune would read locally.
pub const NOT_OVER_LIBVIRT: &[(&str, &str)] = &[
    ("memory.thp", "/sys/kernel/mm/transparent_hugepage"),
    ("numa.balancing", "/proc/sys/kernel/numa_balancing"),
    ("cmdline", "/proc/cmdline (isolcpus, nohz_full, hugepages=)"),
    ("cpu.isolated", "/sys/devices/system/cpu/isolated"),
    (
        "cpu.governors",
        "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
    ),
    (
        "kvm.modules",
        "/sys/module/kvm*/parameters (halt_poll_ns, nested)",
    ),
    ("kvm.cgroup", "/sys/fs/cgroup"),
    ("kvm.iommu_groups", "/sys/kernel/iommu_groups"),
    (
        "kvm.devices",
        "/dev/vhost-net, /dev/net/tun, /dev/sev (KVM itself: the capabilities' guest domain types)",
    ),
    ("memory.hugetlbfs", "/proc/mounts (hugetlbfs)"),
    ("memory.swap", "/proc/swaps"),
    ("memory.ksm.run", "/sys/kernel/mm/ksm/run"),
    ("kernel", "/proc/sys/kernel/osrelease"),
];

/// What the unknown entries say.
pub const REMOTE_REASON: &str = "not known over a remote connection: libvirt does not report it";

fn num<T: std::str::FromStr>(doc: &Document, n: NodeId, attr: &str) -> Option<T> {
    doc.attr(n, attr).and_then(|v| v.trim().parse().ok())
}

/// A capabilities `<memory>` or `<pages>` value in KiB (`unit` KiB by default).
fn kib(doc: &Document, n: NodeId) -> Option<u64> {
    let v: u64 = doc.text(n).trim().parse().ok()?;
    let mult = match doc.attr(n, "unit").unwrap_or("KiB") {
        "b" | "bytes" => return Some(v / 1024),
        "KiB" | "k" | "K" => 1,
        "MiB" | "M" => 1024,
        "GiB" | "G" => 1024 * 1024,
        _ => return None,
    };
    v.checked_mul(mult)
}

/// The host as libvirt describes it.
pub fn host_from_libvirt(f: &NodeFacts) -> Host {
    let mut host = Host {
        kind: "kvmtune.host".into(),
        version: kvmtune_host::HOST_SCHEMA_VERSION,
        hostname: None,
        kernel: None,
        cpu: Default::default(),
        cmdline: Default::default(),
        numa: Default::default(),
        memory: Default::default(),
        kvm: Default::default(),
        unknown: Vec::new(),
        remote: None,
    };
    host.remote = Some(f.uri.clone());
    host.hostname = f.hostname.clone();
    host.memory.total_kib = f.memory_kib;
    host.memory.free_kib = f.free_memory_bytes.map(|b| b / 1024);
    for e in &f.errors {
        host.unknown.push(Unknown {
            field: "libvirt".into(),
            path: f.uri.clone(),
            error: e.clone(),
        });
    }
    if let Some(caps) = &f.capabilities {
        match Document::parse(caps) {
            Ok(doc) => read_caps(&doc, f, &mut host),
            Err(e) => host.unknown.push(Unknown {
                field: "cpu".into(),
                path: format!("{} capabilities", f.uri),
                error: e.to_string(),
            }),
        }
    }
    host.memory.ksm = ksm(&f.memory_parameters);
    for (field, path) in NOT_OVER_LIBVIRT {
        host.unknown.push(Unknown {
            field: (*field).into(),
            path: (*path).into(),
            error: REMOTE_REASON.into(),
        });
    }
    host
}

fn ksm(p: &BTreeMap<String, u64>) -> Option<Ksm> {
    if p.is_empty() {
        return None;
    }
    let get = |k: &str| p.get(k).copied();
    let shared = get("shm_pages_shared");
    let sharing = get("shm_pages_sharing");
    let mut files = BTreeMap::new();
    for (k, v) in p {
        files.insert(k.trim_start_matches("shm_").to_string(), v.to_string());
    }
    Some(Ksm {
        // libvirt reports KSM's counters, not whether it runs
        run: None,
        merge_across_nodes: get("shm_merge_across_nodes").and_then(|v| u32::try_from(v).ok()),
        pages_shared: shared,
        pages_sharing: sharing,
        // like the local reader: pages_sharing pages of 4 KiB saved
        saved_bytes: sharing.map(|s| s.saturating_mul(4096)),
        files,
    })
}

fn read_caps(doc: &Document, f: &NodeFacts, host: &mut Host) {
    let root = doc.root();
    let Some(h) = doc.child(root, "host") else {
        return;
    };
    if let Some(cpu) = doc.child(h, "cpu") {
        host.cpu.vendor = doc
            .child(cpu, "vendor")
            .map(|n| doc.text(n).trim().to_string());
        host.cpu.model_name = doc
            .child(cpu, "model")
            .map(|n| doc.text(n).trim().to_string());
        let features: Vec<String> = doc
            .children(cpu, "feature")
            .filter_map(|n| doc.attr(n, "name").map(str::to_string))
            .collect();
        host.cpu.hw_virt = ["vmx", "svm"]
            .into_iter()
            .find(|x| features.iter().any(|f| f == x))
            .map(str::to_string);
        host.cpu.virt_flags = features
            .iter()
            .filter(|f| {
                matches!(
                    f.as_str(),
                    "vmx"
                        | "svm"
                        | "ept"
                        | "npt"
                        | "vpid"
                        | "flexpriority"
                        | "tpr_shadow"
                        | "x2apic"
                        | "invtsc"
                        | "constant_tsc"
                        | "nonstop_tsc"
                        | "pdpe1gb"
                )
            })
            .cloned()
            .collect();
    }
    // KVM is usable by that libvirt when a guest architecture offers domain type kvm
    let kvm = doc.children(root, "guest").any(|g| {
        doc.children(g, "arch").any(|a| {
            doc.children(a, "domain")
                .any(|d| doc.attr(d, "type") == Some("kvm"))
        })
    });
    host.kvm.dev_kvm = kvmtune_host::Probe {
        exists: kvm,
        openable: kvm,
    };
    let Some(cells) = doc.descend(h, &["topology", "cells"]) else {
        return;
    };
    let mut all = CpuSet::default();
    let mut pools: BTreeMap<u64, HugePool> = BTreeMap::new();
    for cell in doc.children(cells, "cell") {
        let Some(id) = num::<u32>(doc, cell, "id") else {
            continue;
        };
        let mut cpus = CpuSet::default();
        if let Some(list) = doc.child(cell, "cpus") {
            for c in doc.children(list, "cpu") {
                let Some(cid) = num::<u32>(doc, c, "id") else {
                    continue;
                };
                cpus.insert(cid);
                host.cpu.cpus.push(LogicalCpu {
                    id: cid,
                    online: true,
                    socket: num(doc, c, "socket_id"),
                    die: num(doc, c, "die_id"),
                    core: num(doc, c, "core_id"),
                    node: Some(id),
                    siblings: doc.attr(c, "siblings").and_then(|s| CpuSet::parse(s).ok()),
                });
            }
        }
        all = all.union(&cpus);
        let mut hugepages = Vec::new();
        for p in doc.children(cell, "pages") {
            let (Some(size), Some(total)) = (
                num::<u64>(doc, p, "size"),
                doc.text(p).trim().parse::<u64>().ok(),
            ) else {
                continue;
            };
            if size <= 4 {
                continue; // base pages are not a pool
            }
            let size = match doc.attr(p, "unit").unwrap_or("KiB") {
                "MiB" => size * 1024,
                "GiB" => size * 1024 * 1024,
                _ => size,
            };
            let free = f
                .free_pages
                .get(&NodeFacts::page_key(id, size as u32))
                .copied()
                .unwrap_or(0);
            hugepages.push(HugePool {
                size_kib: size,
                total,
                free,
                surplus: 0,
                reserved: None,
            });
            let e = pools.entry(size).or_insert(HugePool {
                size_kib: size,
                total: 0,
                free: 0,
                surplus: 0,
                reserved: None,
            });
            e.total += total;
            e.free += free;
        }
        let distances = doc
            .child(cell, "distances")
            .map(|d| {
                doc.children(d, "sibling")
                    .filter_map(|s| num::<u32>(doc, s, "value"))
                    .collect()
            })
            .unwrap_or_default();
        host.numa.nodes.push(Node {
            id,
            cpus,
            memory_total_kib: doc.child(cell, "memory").and_then(|m| kib(doc, m)),
            memory_free_kib: f.cells_free_bytes.get(id as usize).map(|b| b / 1024),
            hugepages,
            numastat: BTreeMap::new(),
            distances,
        });
    }
    host.numa.available = !host.numa.nodes.is_empty();
    host.numa.online = (!host.numa.nodes.is_empty()).then(|| {
        let mut s = CpuSet::default();
        for n in &host.numa.nodes {
            s.insert(n.id);
        }
        s
    });
    host.memory.hugepages = pools.into_values().collect();
    host.cpu.cpus.sort_by_key(|c| c.id);
    if !all.is_empty() {
        host.cpu.online = Some(all.clone());
        host.cpu.present = Some(all);
        let sockets: std::collections::BTreeSet<i64> =
            host.cpu.cpus.iter().filter_map(|c| c.socket).collect();
        let cores: std::collections::BTreeSet<(i64, i64, i64)> = host
            .cpu
            .cpus
            .iter()
            .filter_map(|c| Some((c.socket?, c.die.unwrap_or(0), c.core?)))
            .collect();
        host.cpu.sockets = (!sockets.is_empty()).then_some(sockets.len() as u32);
        host.cpu.cores = (!cores.is_empty()).then_some(cores.len() as u32);
        host.cpu.threads = Some(host.cpu.cpus.len() as u32);
        let groups: std::collections::BTreeSet<CpuSet> = host
            .cpu
            .cpus
            .iter()
            .filter_map(|c| c.siblings.clone())
            .collect();
        host.cpu.threads_per_core = groups.iter().map(|g| g.len() as u32).max();
        host.cpu.smt_active = host.cpu.threads_per_core.map(|t| t > 1);
        host.cpu.sibling_groups = groups.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: &str = "<capabilities><host><uuid>x</uuid><cpu><arch>x86_64</arch>\
<model>EPYC-Milan</model><vendor>AMD</vendor><feature name='svm'/><feature name='invtsc'/></cpu>\
<topology><cells num='2'>\
<cell id='0'><memory unit='KiB'>16777216</memory><pages unit='KiB' size='4'>4194304</pages>\
<pages unit='KiB' size='2048'>512</pages><pages unit='KiB' size='1048576'>2</pages>\
<distances><sibling id='0' value='10'/><sibling id='1' value='21'/></distances>\
<cpus num='4'><cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0,2'/>\
<cpu id='1' socket_id='0' die_id='0' core_id='1' siblings='1,3'/>\
<cpu id='2' socket_id='0' die_id='0' core_id='0' siblings='0,2'/>\
<cpu id='3' socket_id='0' die_id='0' core_id='1' siblings='1,3'/></cpus></cell>\
<cell id='1'><memory unit='KiB'>16777216</memory><pages unit='KiB' size='2048'>0</pages>\
<distances><sibling id='0' value='21'/><sibling id='1' value='10'/></distances>\
<cpus num='2'><cpu id='4' socket_id='1' die_id='0' core_id='0' siblings='4'/>\
<cpu id='5' socket_id='1' die_id='0' core_id='1' siblings='5'/></cpus></cell>\
</cells></topology></host></capabilities>";

    fn facts() -> NodeFacts {
        let mut f = NodeFacts {
            uri: "qemu+tcp://127.0.0.2/system".into(),
            hostname: Some("fleet1".into()),
            capabilities: Some(CAPS.into()),
            memory_kib: Some(33554432),
            cpus: Some(6),
            free_memory_bytes: Some(8 << 30),
            cells_free_bytes: vec![4 << 30, 4 << 30],
            ..NodeFacts::default()
        };
        f.free_pages.insert(NodeFacts::page_key(0, 2048), 500);
        f.free_pages.insert(NodeFacts::page_key(0, 1048576), 1);
        f.memory_parameters.insert("shm_pages_sharing".into(), 10);
        f.memory_parameters.insert("shm_pages_shared".into(), 2);
        f.memory_parameters
            .insert("shm_merge_across_nodes".into(), 1);
        f
    }

    #[test]
    fn capabilities_become_the_host_model() {
        let h = host_from_libvirt(&facts());
        assert_eq!(h.remote.as_deref(), Some("qemu+tcp://127.0.0.2/system"));
        assert_eq!(h.hostname.as_deref(), Some("fleet1"));
        assert_eq!(h.cpu.vendor.as_deref(), Some("AMD"));
        assert_eq!(h.cpu.hw_virt.as_deref(), Some("svm"));
        assert_eq!(h.cpu.sockets, Some(2));
        assert_eq!(h.cpu.threads, Some(6));
        assert_eq!(h.cpu.threads_per_core, Some(2));
        assert_eq!(h.numa.nodes.len(), 2);
        assert_eq!(h.numa.nodes[1].cpus, CpuSet::parse("4-5").unwrap());
        assert_eq!(h.numa.nodes[0].distances, vec![10, 21]);
        assert_eq!(h.numa.nodes[0].memory_free_kib, Some(4 << 20));
        let p2m = &h.numa.nodes[0].hugepages[0];
        assert_eq!((p2m.size_kib, p2m.total, p2m.free), (2048, 512, 500));
        assert_eq!(h.memory.hugepages.len(), 2);
        let ksm = h.memory.ksm.as_ref().unwrap();
        assert_eq!(ksm.run, None);
        assert_eq!(ksm.saved_bytes, Some(10 * 4096));
        // what libvirt cannot tell is unknown, never this machine's value
        assert!(h.memory.thp.is_none());
        assert!(h.numa.balancing.is_none());
        assert!(h.cmdline.raw.is_none());
        // no <guest> with domain type kvm: libvirt cannot use KVM there
        assert!(!h.kvm.dev_kvm.exists);
        let mut f = facts();
        f.capabilities = Some(CAPS.replace(
            "</host>",
            "</host><guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>",
        ));
        let h2 = host_from_libvirt(&f);
        assert!(h2.kvm.dev_kvm.exists && h2.kvm.dev_kvm.openable);
        for (field, _) in NOT_OVER_LIBVIRT {
            assert!(
                h.unknown
                    .iter()
                    .any(|u| u.field == *field && u.error == REMOTE_REASON),
                "{field}"
            );
        }
    }

    #[test]
    fn garbled_capabilities_are_an_unknown_not_a_panic() {
        let mut f = facts();
        f.capabilities = Some("<capabilities><host><topology><cells num='1'><cell id='x'>".into());
        let h = host_from_libvirt(&f);
        assert!(h.numa.nodes.is_empty());
        f.capabilities = Some("<capabilities><host><topology><cells><cell id='0'><cpus><cpu id='99999999999'/></cpus></cell></cells></topology></host></capabilities>".into());
        let h = host_from_libvirt(&f);
        assert_eq!(h.numa.nodes.len(), 1);
        assert!(h.cpu.cpus.is_empty());
    }
}

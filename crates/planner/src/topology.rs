//! The host as the planner sees it: NUMA nodes, their cores and usable SMT threads, the
//! memory the domains may use, the CPUs kept for the host; read from host facts.

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_host::{CpuSet, Host};
use serde::Serialize;

/// A physical core: its usable threads (online, not kept for the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    pub socket: i64,
    pub id: i64,
    pub threads: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: u32,
    pub socket: i64,
    pub cores: Vec<Core>,
    /// The host's reserved CPUs on this node (housekeeping: emulator threads may share them).
    pub housekeeping: Vec<u32>,
    /// Ordinary memory (not hugepages) the domains may use, KiB: the node's capacity (total
    /// less the host share), or what is free now (see [`Topo::memory_free_now`]).
    pub memory_kib: u64,
    /// Free hugepages the domains may use, by page size (KiB) → pages. Empty when
    /// `memory_kib` is a capacity (the pools are inside it).
    #[serde(default)]
    pub hugepages_free: BTreeMap<u64, u64>,
}

/// The host as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Topo {
    pub nodes: Vec<Node>,
    pub threads_per_core: u32,
    /// CPUs kept for the host.
    pub reserved: Vec<u32>,
    /// CPUs isolated by `isolcpus=`: when not empty, dedicated vCPUs go to these only.
    pub isolated: Vec<u32>,
    /// Online CPUs of the host.
    pub online: usize,
    /// NUMA distances between nodes, by index into `nodes` (empty: unknown, all equal).
    pub distance: Vec<Vec<u32>>,
    /// Most shared vCPUs per host CPU of a node's shared pool (the profile's
    /// `vcpu_overcommit`); `None`: no bound.
    pub shared_overcommit: Option<f64>,
    /// Whether node memory is what is free now (a live host or a bundle) rather than a
    /// capacity.
    pub memory_free_now: bool,
}

impl Topo {
    /// The distance between nodes by index (10 to itself, 20 to another when unknown).
    pub fn dist(&self, a: usize, b: usize) -> u32 {
        self.distance
            .get(a)
            .and_then(|r| r.get(b))
            .copied()
            .unwrap_or(if a == b { 10 } else { 20 })
    }
}

/// Memory kept for the host on each node, KiB (1 GiB or 5 %, whichever is more, capped at
/// half the node).
pub fn host_memory_reserve(total_kib: u64) -> u64 {
    (1024 * 1024).max(total_kib / 20).min(total_kib / 2)
}

/// Make node memory what is free now: `held` is the memory (KiB) the domains being planned
/// hold on each node already (running domains: their memory is inside the node's used
/// memory), `held_pages` the same for hugepages (node, page KiB) → pages. Ordinary memory
/// becomes `min(capacity, MemFree + held)`, hugepages the free pages plus the held ones. A
/// node whose free memory is unknown keeps its capacity.
pub fn use_free_memory(
    t: &mut Topo,
    host: &Host,
    held: &BTreeMap<u32, u64>,
    held_pages: &BTreeMap<(u32, u64), u64>,
) {
    for n in &mut t.nodes {
        let Some(h) = host.numa.nodes.iter().find(|x| x.id == n.id) else {
            continue;
        };
        let Some(free) = h.memory_free_kib else {
            continue;
        };
        let mine = held.get(&n.id).copied().unwrap_or(0);
        n.memory_kib = n.memory_kib.min(free.saturating_add(mine));
        n.hugepages_free = h
            .hugepages
            .iter()
            .map(|p| {
                let kept = held_pages.get(&(n.id, p.size_kib)).copied().unwrap_or(0);
                (p.size_kib, (p.free + kept).min(p.total.max(p.free)))
            })
            .filter(|(_, pages)| *pages > 0)
            .collect();
    }
    t.memory_free_now = true;
}

/// Read the topology from host facts. `reserve`: `one-core-per-socket`, `none` or a cpuset.
pub fn topo_from_host(host: &Host, reserve: &str) -> Result<Topo, String> {
    let online: Vec<&kvmtune_host::LogicalCpu> =
        host.cpu.cpus.iter().filter(|c| c.online).collect();
    if online.is_empty() {
        return Err("the host's CPU topology is unknown (no online CPU read)".into());
    }
    let node_of = |cpu: u32| -> u32 {
        host.numa
            .nodes
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(|n| n.id)
            .unwrap_or(0)
    };
    // socket -> lowest core id's threads
    let mut reserved: BTreeSet<u32> = BTreeSet::new();
    match reserve {
        "none" | "" => {}
        "one-core-per-socket" => {
            let mut first: BTreeMap<i64, (u32, i64)> = BTreeMap::new();
            for c in &online {
                let s = c.socket.unwrap_or(0);
                let e = first
                    .entry(s)
                    .or_insert((c.id, c.core.unwrap_or(c.id as i64)));
                if c.id < e.0 {
                    *e = (c.id, c.core.unwrap_or(c.id as i64));
                }
            }
            for c in &online {
                let s = c.socket.unwrap_or(0);
                if let Some((_, core)) = first.get(&s)
                    && c.core.unwrap_or(c.id as i64) == *core
                    && node_of(c.id) == node_of(first[&s].0)
                {
                    reserved.insert(c.id);
                }
            }
        }
        set => {
            let cs = CpuSet::parse(set).map_err(|e| format!("reserve {set}: {e}"))?;
            reserved.extend(cs.iter());
        }
    }
    let isolated: BTreeSet<u32> = host
        .cpu
        .isolated
        .as_ref()
        .or(host.cmdline.isolcpus_cpus.as_ref())
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let mut nodes: BTreeMap<u32, Node> = BTreeMap::new();
    for n in &host.numa.nodes {
        let total = n.memory_total_kib.unwrap_or(0);
        nodes.insert(
            n.id,
            Node {
                id: n.id,
                socket: 0,
                cores: Vec::new(),
                housekeeping: Vec::new(),
                memory_kib: total.saturating_sub(host_memory_reserve(total)),
                hugepages_free: BTreeMap::new(),
            },
        );
    }
    if nodes.is_empty() {
        let total = host.memory.total_kib.unwrap_or(0);
        nodes.insert(
            0,
            Node {
                id: 0,
                socket: 0,
                cores: Vec::new(),
                housekeeping: Vec::new(),
                memory_kib: total.saturating_sub(host_memory_reserve(total)),
                hugepages_free: BTreeMap::new(),
            },
        );
    }
    let mut cores: BTreeMap<(u32, i64, i64), Vec<u32>> = BTreeMap::new();
    for c in &online {
        let node = node_of(c.id);
        let socket = c.socket.unwrap_or(0);
        if let Some(n) = nodes.get_mut(&node) {
            n.socket = socket;
            if reserved.contains(&c.id) {
                n.housekeeping.push(c.id);
                continue;
            }
        }
        // with isolcpus, dedicated vCPUs go to the isolated CPUs only
        if !isolated.is_empty() && !isolated.contains(&c.id) {
            if let Some(n) = nodes.get_mut(&node) {
                n.housekeeping.push(c.id);
            }
            continue;
        }
        cores
            .entry((node, socket, c.core.unwrap_or(c.id as i64)))
            .or_default()
            .push(c.id);
    }
    for ((node, socket, id), mut threads) in cores {
        threads.sort_unstable();
        if let Some(n) = nodes.get_mut(&node) {
            n.cores.push(Core {
                socket,
                id,
                threads,
            });
        }
    }
    for n in nodes.values_mut() {
        n.cores.sort_by_key(|c| c.threads.first().copied());
        n.housekeeping.sort_unstable();
    }
    // distances by index: host.numa.nodes order is the order of their distance rows
    let ids: Vec<u32> = nodes.keys().copied().collect();
    let row = |a: u32| host.numa.nodes.iter().find(|n| n.id == a);
    let col = |b: u32| host.numa.nodes.iter().position(|n| n.id == b);
    let distance: Vec<Vec<u32>> = if host
        .numa
        .nodes
        .iter()
        .all(|n| n.distances.len() == host.numa.nodes.len())
    {
        ids.iter()
            .map(|&a| {
                ids.iter()
                    .map(|&b| {
                        row(a)
                            .zip(col(b))
                            .and_then(|(r, j)| r.distances.get(j).copied())
                            .unwrap_or(if a == b { 10 } else { 20 })
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Topo {
        nodes: nodes.into_values().collect(),
        threads_per_core: host.cpu.threads_per_core.unwrap_or(1).max(1),
        reserved: reserved.into_iter().collect(),
        isolated: isolated.into_iter().collect(),
        online: online.len(),
        distance,
        shared_overcommit: None,
        memory_free_now: false,
    })
}

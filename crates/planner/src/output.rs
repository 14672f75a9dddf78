//! What a plan gives: a placement per domain, the domains left out and why, hugepage pools,
//! the objective's score and the host settings the placement calls for.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kvmtune_host::CpuSet;
use serde::Serialize;

use crate::{CpuPolicy, Dom, Policy, Topo};

/// One guest NUMA cell of a domain that spans nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub id: u32,
    pub node: u32,
    pub vcpus: Vec<u32>,
    pub memory_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub name: String,
    /// Host nodes the domain's memory and vCPUs are on.
    pub nodes: Vec<u32>,
    /// vCPU index -> host CPUs it may run on.
    pub vcpus: Vec<Vec<u32>>,
    pub emulator: Vec<u32>,
    /// Guest NUMA cells (empty when the domain fits one node).
    pub cells: Vec<Cell>,
    /// The domain kept its current pins.
    pub kept: bool,
    pub policy: Policy,
    pub page_kib: Option<u64>,
    pub memory_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unplaced {
    pub name: String,
    pub why: String,
}

/// Hugepages the placed domains need on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolNeed {
    pub node: u32,
    pub page_kib: u64,
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub placed: Vec<Placement>,
    pub unplaced: Vec<Unplaced>,
    pub pools: Vec<PoolNeed>,
    /// Objective: (placed, spanning, moved).
    pub score: Score,
    /// Host settings the placement calls for, `KEY = VALUE` as for `kvmtune apply --set`.
    pub host: BTreeMap<String, String>,
    /// A kernel command line suggestion for the dedicated CPUs (never CPU 0 nor the CPUs
    /// kept for the host: at least one CPU stays for housekeeping).
    pub isolcpus: Option<String>,
    /// What the reader should know: shared vCPU overcommit, CPUs left out of `isolcpus`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    pub placed: usize,
    pub spanning: usize,
    pub moved: usize,
}

impl Score {
    /// Better is greater: more placed, then less spanning, then fewer moves.
    fn key(&self) -> (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        (
            self.placed,
            std::cmp::Reverse(self.spanning),
            std::cmp::Reverse(self.moved),
        )
    }
    pub fn better_than(&self, other: &Score) -> bool {
        self.key() > other.key()
    }
}

impl Placement {
    pub(crate) fn new(
        d: &Dom,
        nodes: Vec<u32>,
        vcpus: Vec<Vec<u32>>,
        emulator: Vec<u32>,
    ) -> Placement {
        Placement {
            name: d.name.clone(),
            nodes,
            vcpus,
            emulator,
            cells: Vec::new(),
            kept: false,
            policy: d.policy,
            page_kib: d.page_kib,
            memory_kib: d.memory_kib,
        }
    }
}

/// What [`finish`] needs of the domains' names, worked out once per plan: for the domain at
/// each index, the position that orders its placement (that of the last domain of its name, as
/// a map from names to positions holds) and the index of the first domain of its name (as a
/// search from the start finds it), whose pins tell whether it moved.
pub(crate) struct Names {
    key: Vec<usize>,
    first: Vec<usize>,
}

impl Names {
    pub(crate) fn new(doms: &[Dom]) -> Names {
        let mut by_name: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, d) in doms.iter().enumerate() {
            by_name
                .entry(d.name.as_str())
                .and_modify(|e| e.1 = i)
                .or_insert((i, i));
        }
        let (first, key) = doms
            .iter()
            .map(|d| by_name.get(d.name.as_str()).copied().unwrap_or_default())
            .unzip();
        Names { key, first }
    }
}

/// Sum up a pass: domains in input order, the score, hugepage pools, host settings and the
/// `isolcpus` suggestion. `placed` pairs each placement with its domain's index in `doms`.
pub(crate) fn finish(
    t: &Topo,
    doms: &[Dom],
    names: &Names,
    mut placed: Vec<(usize, Placement)>,
    unplaced: Vec<Unplaced>,
) -> Outcome {
    placed.sort_by_key(|(i, _)| names.key[*i]);
    let moved = placed
        .iter()
        .filter(|(i, p)| !doms[names.first[*i]].pins.is_empty() && !p.kept)
        .count();
    let placed: Vec<Placement> = placed.into_iter().map(|(_, p)| p).collect();
    let spanning = placed.iter().map(|p| p.nodes.len().saturating_sub(1)).sum();
    let mut pools: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for p in &placed {
        let Some(size) = p.page_kib.filter(|&s| s > 4) else {
            continue;
        };
        if p.cells.is_empty() {
            *pools.entry((p.nodes[0], size)).or_default() += p.memory_kib.div_ceil(size);
        } else {
            for c in &p.cells {
                *pools.entry((c.node, size)).or_default() += c.memory_kib.div_ceil(size);
            }
        }
    }
    let mut host = BTreeMap::new();
    if t.nodes.len() > 1 {
        host.insert("ksm.merge_across_nodes".to_string(), "0".to_string());
        if unplaced.is_empty() && !placed.is_empty() {
            host.insert("numa_balancing".to_string(), "0".to_string());
        }
    }
    let dedicated: BTreeSet<u32> = placed
        .iter()
        .filter(|p| p.policy.cpus == CpuPolicy::Dedicated)
        .flat_map(|p| p.vcpus.iter().flatten().copied())
        .collect();
    let mut warnings = Vec::new();
    // shared vCPUs per node against the CPUs they float over
    for n in &t.nodes {
        let shared: Vec<&Placement> = placed
            .iter()
            .filter(|p| p.policy.cpus == CpuPolicy::Shared && p.nodes.first() == Some(&n.id))
            .collect();
        let vcpus: usize = shared.iter().map(|p| p.vcpus.len()).sum();
        // the CPUs they float over: every vCPU lists its node's whole pool, so the same few
        // CPUs come up many times; marked in a bitmap, not inserted one by one into a set
        let mut in_pool: Vec<bool> = Vec::new();
        for &c in shared.iter().flat_map(|p| p.vcpus.iter().flatten()) {
            let c = c as usize;
            if c >= in_pool.len() {
                in_pool.resize(c + 1, false);
            }
            in_pool[c] = true;
        }
        let pool: BTreeSet<u32> = (0..in_pool.len())
            .filter(|&c| in_pool[c])
            .map(|c| c as u32)
            .collect();
        if !pool.is_empty() && vcpus > pool.len() {
            warnings.push(format!(
                "overcommit: node {} runs {vcpus} shared vCPUs of {} domain(s) on {} CPU(s) ({}), {:.1}:1{}",
                n.id,
                shared.len(),
                pool.len(),
                set_of(&pool),
                vcpus as f64 / pool.len() as f64,
                match t.shared_overcommit {
                    Some(r) => format!(" (the profile allows {r}:1)"),
                    None => String::new(),
                }
            ));
        }
    }
    // isolcpus: the dedicated CPUs, never CPU 0 nor a CPU kept for the host
    let keep: BTreeSet<u32> = t
        .reserved
        .iter()
        .chain(t.nodes.iter().flat_map(|n| &n.housekeeping))
        .copied()
        .chain([0])
        .collect();
    let every: BTreeSet<u32> = t
        .nodes
        .iter()
        .flat_map(|n| {
            n.cores
                .iter()
                .flat_map(|c| &c.threads)
                .chain(&n.housekeeping)
        })
        .copied()
        .collect();
    let mut iso: BTreeSet<u32> = dedicated.difference(&keep).copied().collect();
    if !every.is_empty() && every.is_subset(&iso) {
        // CPU 0 is not among the host's CPUs: keep the lowest one
        if let Some(first) = every.first() {
            iso.remove(first);
        }
    }
    let left_out: BTreeSet<u32> = dedicated.difference(&iso).copied().collect();
    if !left_out.is_empty() {
        warnings.push(format!(
            "isolcpus: CPU(s) {} left out of the suggestion although dedicated vCPUs run there: the host keeps at least one housekeeping CPU (CPU 0 and the reserved CPUs{}) for its own threads and interrupts",
            set_of(&left_out),
            if t.reserved.is_empty() {
                "; --reserve none kept none, so CPU 0 is it"
            } else {
                ""
            }
        ));
    }
    let isolcpus = (!iso.is_empty()).then(|| {
        let s = set_of(&iso);
        format!("isolcpus=managed_irq,domain,{s} nohz_full={s} rcu_nocbs={s}")
    });
    Outcome {
        score: Score {
            placed: placed.len(),
            spanning,
            moved,
        },
        placed,
        unplaced,
        pools: pools
            .into_iter()
            .map(|((node, page_kib), pages)| PoolNeed {
                node,
                page_kib,
                pages,
            })
            .collect(),
        host,
        isolcpus,
        warnings,
    }
}

fn set_of(cpus: &BTreeSet<u32>) -> String {
    let mut s = CpuSet::new();
    for c in cpus {
        s.insert(*c);
    }
    s.to_string()
}

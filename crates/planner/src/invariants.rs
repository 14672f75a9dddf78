//! Checks that an outcome is valid, whatever the input (see the crate's invariants).

use std::collections::{BTreeMap, BTreeSet};

use crate::{CpuPolicy, Dom, Outcome, SmtPolicy, Topo};

/// Check the invariants of an outcome; each violation is a line.
pub fn violations(t: &Topo, doms: &[Dom], o: &Outcome) -> Vec<String> {
    let mut v = Vec::new();
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    let mut mem: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &o.placed {
        if p.policy.cpus == CpuPolicy::Dedicated {
            for c in p.vcpus.iter().flatten() {
                if let Some(other) = owner.insert(*c, &p.name) {
                    v.push(format!("CPU {c} dedicated to both {other} and {}", p.name));
                }
            }
            if p.policy.smt == SmtPolicy::Isolate {
                for n in &t.nodes {
                    for core in &n.cores {
                        let users: BTreeSet<&str> = core
                            .threads
                            .iter()
                            .filter_map(|x| owner.get(x).copied())
                            .collect();
                        let mine = core
                            .threads
                            .iter()
                            .filter(|x| p.vcpus.iter().flatten().any(|c| c == *x))
                            .count();
                        if mine > 0 && (users.len() > 1 || mine > 1) {
                            v.push(format!(
                                "{}: SMT isolate broken on core {:?}",
                                p.name, core.threads
                            ));
                        }
                    }
                }
            }
        }
        if p.cells.is_empty() {
            *mem.entry(p.nodes[0]).or_default() += p.memory_kib;
        } else {
            for c in &p.cells {
                *mem.entry(c.node).or_default() += c.memory_kib;
            }
            let total: u64 = p.cells.iter().map(|c| c.memory_kib).sum();
            if total != p.memory_kib {
                v.push(format!(
                    "{}: cells hold {total} KiB of {}",
                    p.name, p.memory_kib
                ));
            }
        }
    }
    // a spanning domain: no single node may have room for it once it is taken out
    for p in o.placed.iter().filter(|p| p.nodes.len() > 1) {
        let Some(d) = doms.iter().find(|d| d.name == p.name) else {
            continue;
        };
        for n in &t.nodes {
            let used_t: usize = o
                .placed
                .iter()
                .filter(|q| q.name != p.name && q.policy.cpus == CpuPolicy::Dedicated)
                .flat_map(|q| q.vcpus.iter().flatten())
                .filter(|c| n.cores.iter().any(|k| k.threads.contains(c)))
                .count();
            let used_m: u64 = o
                .placed
                .iter()
                .filter(|q| q.name != p.name)
                .map(|q| {
                    if q.cells.is_empty() {
                        if q.nodes[0] == n.id { q.memory_kib } else { 0 }
                    } else {
                        q.cells
                            .iter()
                            .filter(|c| c.node == n.id)
                            .map(|c| c.memory_kib)
                            .sum()
                    }
                })
                .sum();
            let threads: usize = n.cores.iter().map(|c| c.threads.len()).sum();
            if p.policy.smt == SmtPolicy::Prefer
                && threads.saturating_sub(used_t) >= d.vcpus as usize
                && n.memory_kib.saturating_sub(used_m) >= d.memory_kib
            {
                v.push(format!("{} spans nodes but fits node {}", p.name, n.id));
            }
        }
    }
    for (node, used) in mem {
        if let Some(n) = t.nodes.iter().find(|n| n.id == node)
            && used > n.memory_kib + n.hugepages_free.iter().map(|(s, p)| s * p).sum::<u64>()
        {
            v.push(format!(
                "node {node}: {used} KiB placed, {} KiB available",
                n.memory_kib
            ));
        }
    }
    v
}

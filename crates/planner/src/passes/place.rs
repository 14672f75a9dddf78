//! Placing one domain: dedicated or shared, on the best node by fill, or on a given node;
//! emulator threads.

use crate::output::Placement;
use crate::{CpuPolicy, Dom, EmulatorPolicy, Fill, SmtPolicy, Topo};

use super::Pass;
use super::span::{Sets, span};
use super::state::{State, emulator_for, fits, pick};

fn shared_pool(t: &Topo, st: &State, ni: usize) -> Vec<u32> {
    t.nodes[ni]
        .cores
        .iter()
        .flat_map(|c| c.threads.iter().copied())
        .filter(|x| !st.taken.contains(x))
        .collect()
}

pub(super) fn one_each(cpus: &[u32]) -> Vec<Vec<u32>> {
    cpus.iter().map(|c| vec![*c]).collect()
}

/// Whether a node with `free` (CPUs or memory) beats the best so far: the first that fits
/// under first fit, else the freest (spread) or the fullest (pack).
fn better_node(best: Option<u64>, free: u64, fill: Fill, first_fit: bool) -> bool {
    match (best, fill, first_fit) {
        (None, _, _) => true,
        (Some(_), _, true) => false,
        (Some(b), Fill::Spread, _) => free > b,
        (Some(b), Fill::Pack, _) => free < b,
    }
}

pub(super) fn place_one(
    t: &Topo,
    st: &mut State,
    sets: &mut Sets,
    d: &Dom,
    pass: &Pass,
    fill: Fill,
) -> Result<Placement, String> {
    let n = d.vcpus as usize;
    if d.policy.cpus == CpuPolicy::Shared {
        // memory decides the node; vCPUs float over its CPUs nobody has to themselves, no
        // more of them per CPU than the profile's overcommit allows
        let mut best: Option<(usize, u64)> = None;
        let mut over = None;
        for i in 0..t.nodes.len() {
            let free = st.free_mem(t, i, d.page_kib);
            let pool = st.free_threads(t, i); // shared_pool(..).len(), not built
            if free < d.memory_kib || pool == 0 {
                continue;
            }
            if let Some(r) = t.shared_overcommit
                && (st.shared_vcpus[i] + n as u64) as f64 > r * pool as f64
            {
                over = Some((i, pool, r));
                continue;
            }
            if better_node(best.map(|b| b.1), free, fill, pass.first_fit) {
                best = Some((i, free));
            }
        }
        let Some((i, _)) = best else {
            if let Some((i, pool, r)) = over {
                return Err(format!(
                    "CPUs are the limit: {n} more shared vCPUs would put {} on the {pool} shared CPU(s) of node {}, over the profile's overcommit of {}:1 (free CPUs, fewer vCPUs, or a profile with a higher vcpu_overcommit)",
                    st.shared_vcpus[i] + n as u64,
                    t.nodes[i].id,
                    r
                ));
            }
            let most = (0..t.nodes.len())
                .map(|i| st.free_mem(t, i, d.page_kib))
                .max()
                .unwrap_or(0);
            return Err(if most < d.memory_kib {
                format!(
                    "memory is the limit: needs {} MiB, the most free on one node is {} MiB",
                    d.memory_kib / 1024,
                    most / 1024
                )
            } else {
                "CPUs are the limit: no node with the memory has a CPU not dedicated to another domain".into()
            });
        };
        let pool = shared_pool(t, st, i);
        st.take_mem(t, i, d.page_kib, d.memory_kib);
        st.shared_vcpus[i] += n as u64;
        let emulator = emulator_for(t, st, i, &d.policy, &pool)
            .ok_or("no CPU left for a dedicated emulator thread")?;
        return Ok(Placement::new(
            d,
            vec![t.nodes[i].id],
            vec![pool; n],
            emulator,
        ));
    }
    if d.policy.smt == SmtPolicy::Require && !(n as u32).is_multiple_of(t.threads_per_core) {
        return Err(format!(
            "smt=require takes whole cores of {} threads; {} vCPUs is not a multiple",
            t.threads_per_core, n
        ));
    }
    let extra = usize::from(d.policy.emulator == EmulatorPolicy::Dedicated);
    // one node; each node's free threads counted once (the state does not change here)
    let free: Vec<usize> = (0..t.nodes.len()).map(|i| st.free_threads(t, i)).collect();
    let mut best: Option<(usize, usize)> = None;
    for (i, &free_i) in free.iter().enumerate() {
        if st.free_mem(t, i, d.page_kib) < d.memory_kib {
            continue;
        }
        let whole = match d.policy.smt {
            SmtPolicy::Prefer => free_i >= n + extra,
            smt => fits(t, st, i, n + extra, smt),
        };
        let fit = whole
            || (extra == 1
                && pick(st, &t.nodes[i], n, d.policy.smt).is_some_and(|(_, c)| {
                    let mut s2 = st.clone();
                    s2.taken.extend(&c);
                    pick(&s2, &t.nodes[i], 1, SmtPolicy::Prefer).is_some()
                }));
        if !fit {
            continue;
        }
        if better_node(
            best.map(|b| b.1 as u64),
            free_i as u64,
            fill,
            pass.first_fit,
        ) {
            best = Some((i, free_i));
        }
    }
    if let Some((i, _)) = best {
        let Some((got, consumed)) = pick(st, &t.nodes[i], n, d.policy.smt) else {
            return Err("internal: a node that fit no longer fits".into());
        };
        st.taken.extend(&consumed);
        st.take_mem(t, i, d.page_kib, d.memory_kib);
        let emulator = emulator_for(t, st, i, &d.policy, &got)
            .ok_or("no CPU left for a dedicated emulator thread")?;
        return Ok(Placement::new(
            d,
            vec![t.nodes[i].id],
            one_each(&got),
            emulator,
        ));
    }
    let total_threads: usize = free.iter().sum();
    let total_mem: u64 = (0..t.nodes.len())
        .map(|i| st.free_mem(t, i, d.page_kib))
        .sum();
    let need = n + extra;
    let cpu_short = total_threads < need;
    let mem_short = total_mem < d.memory_kib;
    if cpu_short || mem_short {
        return Err(short_of(
            t,
            d,
            need,
            total_threads,
            total_mem,
            cpu_short,
            mem_short,
        ));
    }
    if !pass.span || t.nodes.len() < 2 {
        // enough in all, not on one node: say which resource no node has
        let most_t = free.iter().copied().max().unwrap_or(0);
        let most_m = (0..t.nodes.len())
            .map(|i| st.free_mem(t, i, d.page_kib))
            .max()
            .unwrap_or(0);
        let what = match (most_t < need, most_m < d.memory_kib) {
            (true, false) => format!(
                "CPUs are the limit: no node has {need} free CPUs (the most on one node: {most_t})"
            ),
            (false, true) => format!(
                "memory is the limit: no node has {} MiB free (the most on one node: {} MiB)",
                d.memory_kib / 1024,
                most_m / 1024
            ),
            _ => format!(
                "no node has both {need} free CPUs and {} MiB free",
                d.memory_kib / 1024
            ),
        };
        return Err(format!(
            "{what}{}",
            if t.nodes.len() < 2 {
                ""
            } else {
                " (spanning nodes not tried)"
            }
        ));
    }
    span(t, st, sets, d, n)
}

/// Place a dedicated domain on a given node.
pub(super) fn place_on(t: &Topo, st: &mut State, d: &Dom, ni: usize) -> Result<Placement, String> {
    let n = d.vcpus as usize;
    if st.free_mem(t, ni, d.page_kib) < d.memory_kib {
        return Err("the exact assignment no longer fits (memory)".into());
    }
    let (got, consumed) = pick(st, &t.nodes[ni], n, d.policy.smt)
        .ok_or("the exact assignment no longer fits (CPUs)")?;
    st.taken.extend(&consumed);
    st.take_mem(t, ni, d.page_kib, d.memory_kib);
    let emulator = emulator_for(t, st, ni, &d.policy, &got)
        .ok_or("no CPU left for a dedicated emulator thread")?;
    Ok(Placement::new(
        d,
        vec![t.nodes[ni].id],
        one_each(&got),
        emulator,
    ))
}

/// Why a dedicated domain does not fit the whole host: the resource that is short, and when
/// isolation is what limits the CPUs, how to widen it.
fn short_of(
    t: &Topo,
    d: &Dom,
    need: usize,
    free_threads: usize,
    free_mem: u64,
    cpu_short: bool,
    mem_short: bool,
) -> String {
    let mut parts = Vec::new();
    if cpu_short {
        let all: usize = t
            .nodes
            .iter()
            .flat_map(|x| &x.cores)
            .map(|c| c.threads.len())
            .sum();
        if t.isolated.is_empty() {
            parts.push(format!(
                "CPUs are the limit: needs {need} CPUs; {free_threads} of the {all} CPUs for domains are free ({} online, {} reserved for the host)",
                t.online,
                t.reserved.len()
            ));
        } else {
            let mut s = kvmtune_host::CpuSet::new();
            for c in &t.isolated {
                s.insert(*c);
            }
            parts.push(format!(
                "isolation is the limit: needs {need} CPUs; dedicated vCPUs go to isolated CPUs only, and isolcpus isolates {} of the {} online CPUs ({s}), {free_threads} of them free: isolate more CPUs on the kernel command line (isolcpus=, nohz_full=, then reboot) or use shared vCPUs (--cpus shared)",
                t.isolated.len(),
                t.online
            ));
        }
    }
    if mem_short {
        parts.push(format!(
            "memory is the limit: needs {} MiB; the nodes have {} MiB free for domains{}",
            d.memory_kib / 1024,
            free_mem / 1024,
            if t.memory_free_now { " now" } else { "" }
        ));
    }
    parts.join("; ")
}

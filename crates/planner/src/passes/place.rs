//! Placing one domain: dedicated or shared, on the best node by fill, or on a given node;
//! emulator threads.

use crate::output::Placement;
use crate::{CpuPolicy, Dom, EmulatorPolicy, Fill, SmtPolicy, Topo};

use super::Pass;
use super::span::span;
use super::state::{State, emulator_for, pick};

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
    d: &Dom,
    pass: &Pass,
    fill: Fill,
) -> Result<Placement, String> {
    let n = d.vcpus as usize;
    if d.policy.cpus == CpuPolicy::Shared {
        // memory decides the node; vCPUs float over its CPUs nobody has to themselves
        let mut best: Option<(usize, u64)> = None;
        for i in 0..t.nodes.len() {
            let free = st.free_mem(t, i);
            if free < d.memory_kib || shared_pool(t, st, i).is_empty() {
                continue;
            }
            if better_node(best.map(|b| b.1), free, fill, pass.first_fit) {
                best = Some((i, free));
            }
        }
        let Some((i, _)) = best else {
            return Err(if t.nodes.iter().all(|x| x.memory_kib < d.memory_kib) {
                format!("needs {} MiB, more than any node has", d.memory_kib / 1024)
            } else {
                "no node has both the memory and a CPU not dedicated to another domain".into()
            });
        };
        let pool = shared_pool(t, st, i);
        st.mem_used[i] += d.memory_kib;
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
    // one node
    let mut best: Option<(usize, usize)> = None;
    for i in 0..t.nodes.len() {
        if st.free_mem(t, i) < d.memory_kib {
            continue;
        }
        if pick(st, &t.nodes[i], n + extra, d.policy.smt).is_none()
            && !(extra == 1
                && pick(st, &t.nodes[i], n, d.policy.smt).is_some_and(|(_, c)| {
                    let mut s2 = st.clone();
                    s2.taken.extend(&c);
                    pick(&s2, &t.nodes[i], 1, SmtPolicy::Prefer).is_some()
                }))
        {
            continue;
        }
        let free = st.free_threads(&t.nodes[i]);
        if better_node(best.map(|b| b.1 as u64), free as u64, fill, pass.first_fit) {
            best = Some((i, free));
        }
    }
    if let Some((i, _)) = best {
        let Some((got, consumed)) = pick(st, &t.nodes[i], n, d.policy.smt) else {
            return Err("internal: a node that fit no longer fits".into());
        };
        st.taken.extend(&consumed);
        st.mem_used[i] += d.memory_kib;
        let emulator = emulator_for(t, st, i, &d.policy, &got)
            .ok_or("no CPU left for a dedicated emulator thread")?;
        return Ok(Placement::new(
            d,
            vec![t.nodes[i].id],
            one_each(&got),
            emulator,
        ));
    }
    let total_threads: usize = t.nodes.iter().map(|x| st.free_threads(x)).sum();
    let total_mem: u64 = (0..t.nodes.len()).map(|i| st.free_mem(t, i)).sum();
    if !pass.span || t.nodes.len() < 2 {
        return Err(format!(
            "no node has {n} free CPUs and {} MiB free{}",
            d.memory_kib / 1024,
            if t.nodes.len() < 2 {
                ""
            } else {
                " (spanning nodes not tried)"
            }
        ));
    }
    if total_threads < n + extra || total_mem < d.memory_kib {
        return Err(format!(
            "needs {n} CPUs and {} MiB; the host has {total_threads} CPUs and {} MiB free",
            d.memory_kib / 1024,
            total_mem / 1024
        ));
    }
    span(t, st, d, n)
}

/// Place a dedicated domain on a given node.
pub(super) fn place_on(t: &Topo, st: &mut State, d: &Dom, ni: usize) -> Result<Placement, String> {
    let n = d.vcpus as usize;
    if st.free_mem(t, ni) < d.memory_kib {
        return Err("the exact assignment no longer fits (memory)".into());
    }
    let (got, consumed) = pick(st, &t.nodes[ni], n, d.policy.smt)
        .ok_or("the exact assignment no longer fits (CPUs)")?;
    st.taken.extend(&consumed);
    st.mem_used[ni] += d.memory_kib;
    let emulator = emulator_for(t, st, ni, &d.policy, &got)
        .ok_or("no CPU left for a dedicated emulator thread")?;
    Ok(Placement::new(
        d,
        vec![t.nodes[ni].id],
        one_each(&got),
        emulator,
    ))
}

//! Stability: a domain keeps its current pins when they are still valid.

use std::collections::BTreeSet;

use crate::output::Placement;
use crate::{CpuPolicy, Dom, EmulatorPolicy, SmtPolicy, Topo};

use super::place::one_each;
use super::state::{State, emulator_for};

pub(super) fn try_keep(t: &Topo, st: &mut State, d: &Dom) -> Option<Placement> {
    if d.policy.cpus != CpuPolicy::Dedicated || d.pins.len() != d.vcpus as usize {
        return None;
    }
    let mut cpus = Vec::new();
    for v in 0..d.vcpus {
        match d.pins.get(&v).map(Vec::as_slice) {
            Some([one]) => cpus.push(*one),
            _ => return None,
        }
    }
    let distinct: BTreeSet<u32> = cpus.iter().copied().collect();
    if distinct.len() != cpus.len() || cpus.iter().any(|c| st.taken.contains(c)) {
        return None;
    }
    // the node of the first CPU, and whether every CPU is on it: from the state's map of CPUs
    // to nodes when each CPU is on one node, else by searching the nodes' cores
    let one = st.one_node_per_cpu();
    let ni = if one {
        st.node_of(cpus[0])?
    } else {
        t.nodes
            .iter()
            .position(|n| n.cores.iter().any(|c| c.threads.contains(&cpus[0])))?
    };
    let node = &t.nodes[ni];
    let on_node = |c: &u32| {
        if one {
            st.node_of(*c) == Some(ni)
        } else {
            node.cores.iter().any(|k| k.threads.contains(c))
        }
    };
    if !cpus.iter().all(on_node) || st.free_mem(t, ni, d.page_kib) < d.memory_kib {
        return None;
    }
    let mut consumed = cpus.clone();
    if d.policy.smt != SmtPolicy::Prefer {
        // isolate/require: whole cores, untouched by anyone else
        for c in &node.cores {
            if c.threads.iter().any(|x| distinct.contains(x)) {
                if c.threads.iter().any(|x| st.taken.contains(x)) {
                    return None;
                }
                if d.policy.smt == SmtPolicy::Isolate
                    && c.threads.iter().filter(|x| distinct.contains(x)).count() > 1
                {
                    return None;
                }
                consumed.extend(&c.threads);
            }
        }
    }
    let emulator = if d.policy.emulator == EmulatorPolicy::Housekeeping {
        // housekeeping emulators take nothing and always find CPUs: no trial copy needed
        st.taken.extend(&consumed);
        st.take_mem(t, ni, d.page_kib, d.memory_kib);
        match &d.emulator_pin {
            Some(e) if !e.is_empty() && e.iter().all(|x| !cpus.contains(x)) => e.clone(),
            _ => emulator_for(t, st, ni, &d.policy, &cpus)?,
        }
    } else {
        // on a trial copy: a keep that fails at its emulator must not hold its CPUs and memory
        let mut trial = st.clone();
        trial.taken.extend(&consumed);
        trial.take_mem(t, ni, d.page_kib, d.memory_kib);
        let emulator = emulator_for(t, &mut trial, ni, &d.policy, &cpus)?;
        *st = trial;
        emulator
    };
    Some(Placement {
        kept: true,
        ..Placement::new(d, vec![node.id], one_each(&cpus), emulator)
    })
}

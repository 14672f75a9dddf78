//! The placement passes: one pass places every domain in a given order (kept pins first,
//! then dedicated, then shared); [`plan`] runs several and keeps the best.

mod keep;
mod place;
mod span;
mod state;

use std::collections::BTreeMap;

use crate::output::{Names, finish};
use crate::{CpuPolicy, Dom, EmulatorPolicy, Fill, Outcome, SmtPolicy, Topo, Unplaced, exact};

use keep::try_keep;
use place::{place_on, place_one};
use span::Sets;
use state::State;

/// How a pass chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Largest first (vCPUs, then memory).
    Decreasing,
    /// Smallest first: the most domains fit this way when not all can.
    Increasing,
    /// As given (Nova's order).
    Input,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Domains to put on given nodes first (from the exact search).
    pub assign: Option<BTreeMap<String, usize>>,
    pub order: Order,
    /// First node that fits instead of the profile's spread/pack choice.
    pub first_fit: bool,
    /// May a domain span nodes when no single node fits?
    pub span: bool,
    /// Keep valid current pins.
    pub keep: bool,
}

/// One pass over the domains.
pub fn run_pass(t: &Topo, doms: &[Dom], pass: &Pass, fill: Fill) -> Outcome {
    run_pass_with(t, doms, pass, fill, &mut Sets::default(), &Names::new(doms))
}

/// [`run_pass`] with the spanning sets worked out so far on `t` and the names of `doms`.
fn run_pass_with(
    t: &Topo,
    doms: &[Dom],
    pass: &Pass,
    fill: Fill,
    sets: &mut Sets,
    names: &Names,
) -> Outcome {
    let mut st = State::new(t);
    let mut placed = Vec::new();
    let mut unplaced = Vec::new();
    // each domain with its index in `doms`
    let mut rest: Vec<(usize, &Dom)> = Vec::new();
    for (i, d) in doms.iter().enumerate() {
        if d.vcpus == 0 {
            unplaced.push(Unplaced {
                name: d.name.clone(),
                why: "it has no vCPU".into(),
            });
            continue;
        }
        if pass.keep
            && let Some(p) = try_keep(t, &mut st, d)
        {
            placed.push((i, p));
            continue;
        }
        rest.push((i, d));
    }
    // dedicated first (they need CPUs of their own), then shared
    let mut ded: Vec<(usize, &Dom)> = rest
        .iter()
        .copied()
        .filter(|(_, d)| d.policy.cpus == CpuPolicy::Dedicated)
        .collect();
    let shared: Vec<(usize, &Dom)> = rest
        .iter()
        .copied()
        .filter(|(_, d)| d.policy.cpus == CpuPolicy::Shared)
        .collect();
    match pass.order {
        Order::Decreasing => ded.sort_by(|(_, a), (_, b)| {
            b.vcpus
                .cmp(&a.vcpus)
                .then(b.memory_kib.cmp(&a.memory_kib))
                .then(a.name.cmp(&b.name))
        }),
        Order::Increasing => ded.sort_by(|(_, a), (_, b)| {
            a.vcpus
                .cmp(&b.vcpus)
                .then(a.memory_kib.cmp(&b.memory_kib))
                .then(a.name.cmp(&b.name))
        }),
        Order::Input => {}
    }
    if let Some(assign) = &pass.assign {
        // an exact assignment: those domains go to their nodes first, in its order
        let mut first = Vec::new();
        let mut later = Vec::new();
        for (i, d) in ded {
            match assign.get(&d.name) {
                Some(ni) => first.push((i, d, *ni)),
                None => later.push((i, d)),
            }
        }
        for (i, d, ni) in first {
            match place_on(t, &mut st, d, ni) {
                Ok(p) => placed.push((i, p)),
                Err(why) => unplaced.push(Unplaced {
                    name: d.name.clone(),
                    why,
                }),
            }
        }
        ded = later;
    }
    for (i, d) in ded.into_iter().chain(shared) {
        match place_one(t, &mut st, sets, d, pass, fill) {
            Ok(p) => placed.push((i, p)),
            Err(why) => unplaced.push(Unplaced {
                name: d.name.clone(),
                why,
            }),
        }
    }
    finish(t, doms, names, placed, unplaced)
}

/// Instances up to this many domains get the exact search (when every domain is
/// dedicated, SMT `prefer`, housekeeping emulator: the search's model).
pub const EXACT_MAX_DOMAINS: usize = 12;

/// Plan: the stable pass (current valid pins kept) first; if it leaves a domain out, fresh
/// passes in several orders, with and without spanning, and for small instances the exact
/// search's assignment; the best by the objective wins, ties going to the earlier pass (so
/// to the stable one).
pub fn plan(t: &Topo, doms: &[Dom], fill: Fill) -> Outcome {
    plan_with(t, doms, fill, true)
}

/// [`plan`], optionally without the exact search (to measure the heuristics alone).
pub fn plan_with(t: &Topo, doms: &[Dom], fill: Fill, use_exact: bool) -> Outcome {
    let pass = |order, first_fit, span, keep| Pass {
        assign: None,
        order,
        first_fit,
        span,
        keep,
    };
    // the spanning sets, shared by every pass (they depend on the topology only)
    let mut sets = Sets::default();
    let names = Names::new(doms);
    let stable = run_pass_with(
        t,
        doms,
        &pass(Order::Decreasing, false, true, true),
        fill,
        &mut sets,
        &names,
    );
    if stable.unplaced.is_empty() {
        return stable;
    }
    let mut best = stable;
    let consider = |o: Outcome, best: &mut Outcome| {
        if o.score.better_than(&best.score) {
            *best = o;
        }
    };
    let any_pins = doms.iter().any(|d| !d.pins.is_empty());
    let keeps: &[bool] = if any_pins { &[true, false] } else { &[false] };
    for &keep in keeps {
        for span in [true, false] {
            for (order, first_fit) in [
                (Order::Decreasing, false),
                (Order::Decreasing, true),
                (Order::Increasing, false),
                (Order::Increasing, true),
                (Order::Input, true),
                (Order::Input, false),
            ] {
                consider(
                    run_pass_with(
                        t,
                        doms,
                        &pass(order, first_fit, span, keep),
                        fill,
                        &mut sets,
                        &names,
                    ),
                    &mut best,
                );
                let mut other = pass(order, first_fit, span, keep);
                other.first_fit = !first_fit;
                let f = if fill == Fill::Spread {
                    Fill::Pack
                } else {
                    Fill::Spread
                };
                consider(
                    run_pass_with(t, doms, &other, f, &mut sets, &names),
                    &mut best,
                );
            }
        }
    }
    let exact_model = doms.iter().all(|d| {
        d.policy.cpus == CpuPolicy::Dedicated
            && d.policy.smt == SmtPolicy::Prefer
            && d.policy.emulator == EmulatorPolicy::Housekeeping
    });
    if use_exact && exact_model && doms.len() <= EXACT_MAX_DOMAINS {
        let (_, assign) = exact::best_single_node(t, doms);
        let map: BTreeMap<String, usize> = doms
            .iter()
            .zip(assign)
            .filter_map(|(d, a)| a.map(|n| (d.name.clone(), n)))
            .collect();
        for span in [true, false] {
            let mut p = pass(Order::Decreasing, false, span, false);
            p.assign = Some(map.clone());
            consider(
                run_pass_with(t, doms, &p, fill, &mut sets, &names),
                &mut best,
            );
        }
    }
    best
}

/// OpenStack Nova's NUMA fitting, for comparison: domains in the order given, host cells in
/// order, the first cell with enough free CPUs and memory takes the domain; no spanning.
pub fn nova_first_fit(t: &Topo, doms: &[Dom]) -> Outcome {
    run_pass(
        t,
        doms,
        &Pass {
            assign: None,
            order: Order::Input,
            first_fit: true,
            span: false,
            keep: false,
        },
        Fill::Spread,
    )
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The planner against (a) an exact search and (b) OpenStack Nova-style first fit, on seeded
//! generated instances (crates/planner/src/generate.rs). Prints the counts. The exact search
//! is the planner's own (single-node placements only): the independent check is
//! tests/independent.rs.

use kvmtune_planner::{Fill, exact, generate, nova_first_fit, plan, plan_with, violations};

struct Instance {
    seed: u64,
    topo: kvmtune_planner::Topo,
    doms: Vec<kvmtune_planner::Dom>,
}

fn instances(n: u64, max_doms: usize) -> Vec<Instance> {
    (0..n)
        .map(|seed| {
            let mut r = fastrand::Rng::with_seed(1000 + seed);
            let nodes = r.u32(1..=4);
            let cores = r.u32(2..=8);
            let mem = r.u64(16..=96);
            let count = r.usize(3..=max_doms);
            Instance {
                seed,
                topo: generate::host(nodes, cores, 2, mem),
                doms: generate::doms(seed, count, cores * 2, mem),
            }
        })
        .collect()
}

#[test]
fn the_plan_reaches_the_exact_optimum_on_small_instances() {
    let mut gaps = Vec::new();
    let mut total_exact = 0;
    let mut total_plan = 0;
    let (mut heur_total, mut heur_gaps, mut heur_below) = (0, 0, 0);
    let all = instances(300, 12);
    for i in &all {
        let o = plan(&i.topo, &i.doms, Fill::Spread);
        let v = violations(&i.topo, &i.doms, &o);
        assert!(v.is_empty(), "seed {}: {v:?}", i.seed);
        let (best, _) = exact::best_single_node(&i.topo, &i.doms);
        total_exact += best;
        total_plan += o.score.placed;
        if o.score.placed < best {
            gaps.push((i.seed, best, o.score.placed));
        }
        let h = plan_with(&i.topo, &i.doms, Fill::Spread, false);
        heur_total += h.score.placed;
        if h.score.placed < best {
            heur_gaps += best - h.score.placed;
            heur_below += 1;
        }
    }
    eprintln!(
        "heuristics alone (no exact search): placed {heur_total}; below the single-node \
         optimum on {heur_below} instances, {heur_gaps} domains in all"
    );
    eprintln!(
        "exact comparison: {} instances (1-4 nodes, 3-12 domains): plan placed {total_plan}, \
         exact single-node optimum {total_exact}; instances below the optimum: {} {:?}",
        all.len(),
        gaps.len(),
        gaps
    );
    assert!(gaps.is_empty(), "below the optimum: {gaps:?}");
}

#[test]
fn the_plan_places_at_least_as_many_as_nova_first_fit() {
    let all = instances(300, 40);
    let (mut worse, mut more, mut total_nova, mut total_plan) = (Vec::new(), 0, 0, 0);
    for i in &all {
        let o = plan(&i.topo, &i.doms, Fill::Spread);
        let n = nova_first_fit(&i.topo, &i.doms);
        total_nova += n.score.placed;
        total_plan += o.score.placed;
        if o.score.placed < n.score.placed {
            worse.push(i.seed);
        }
        if o.score.placed > n.score.placed {
            more += 1;
        }
    }
    eprintln!(
        "nova first-fit comparison: {} instances (3-40 domains): kvmtune placed {total_plan}, \
         first-fit {total_nova}; more on {more} instances, fewer on {}",
        all.len(),
        worse.len()
    );
    assert!(worse.is_empty(), "fewer than first fit on seeds {worse:?}");
    assert!(more > 0, "never better than first fit");
}

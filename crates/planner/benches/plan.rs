#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `cargo bench -p kvmtune-planner`: plan 1,000 domains on an 8-node, 448-thread host
//! (8 sockets x 28 cores x 2 threads, 768 GiB per node). Three workloads: every domain
//! dedicated (far more vCPUs than threads, so many do not fit and every fallback pass runs),
//! the same with existing pins on every other domain, pins that overlap one another so most
//! cannot be kept (the worst case: with pins, the planner runs its fallback passes both keeping
//! pins and not), and every domain shared (a dense host). Prints the median of 15 runs of each
//! and whether the target (a plan of 1,000 domains under 100 ms, median) is met.

use std::time::Instant;

use kvmtune_planner::{CpuPolicy, Dom, Fill, generate, nova_first_fit, plan};

/// Target: the median plan of 1,000 domains, ms.
const TARGET_MS: f64 = 100.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Pins on every other domain: one CPU per vCPU, a run of the host's usable CPUs starting at
/// a stride that makes neighbours overlap (so most pins conflict with an earlier domain's).
fn pin_half(doms: &mut [Dom], cpus: &[u32]) {
    for (i, d) in doms.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        let start = (i * 5) % cpus.len();
        d.pins = (0..d.vcpus)
            .map(|v| (v, vec![cpus[(start + v as usize) % cpus.len()]]))
            .collect();
    }
}

fn main() {
    let topo = generate::host(8, 28, 2, 768);
    let cpus: Vec<u32> = topo
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .flat_map(|c| c.threads.iter().copied())
        .collect();
    let threads = cpus.len();
    let mut results = Vec::new();
    for label in ["dedicated", "dedicated, half pinned", "shared"] {
        let mut doms = generate::doms(42, 1000, 16, 64);
        match label {
            "shared" => {
                for d in &mut doms {
                    d.policy.cpus = CpuPolicy::Shared;
                }
            }
            "dedicated, half pinned" => pin_half(&mut doms, &cpus),
            _ => {}
        }
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..15 {
            let t0 = Instant::now();
            let o = plan(&topo, &doms, Fill::Spread);
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            last = Some(o);
        }
        let o = last.expect("ran");
        let mut nova_t = Vec::new();
        let mut nova = None;
        for _ in 0..15 {
            let t0 = Instant::now();
            let n = nova_first_fit(&topo, &doms);
            nova_t.push(t0.elapsed().as_secs_f64() * 1000.0);
            nova = Some(n);
        }
        let nova = nova.expect("ran");
        let med = median(times.clone());
        let pinned = doms.iter().filter(|d| !d.pins.is_empty()).count();
        println!(
            "plan 1000 {label} domains on 8 nodes / {threads} threads: median {med:.1} ms (target < {TARGET_MS:.0} ms: {}; min {:.1}, max {:.1}); placed {}, not placed {}{}",
            if med < TARGET_MS { "met" } else { "NOT met" },
            times.iter().cloned().fold(f64::MAX, f64::min),
            times.iter().cloned().fold(0.0, f64::max),
            o.score.placed,
            o.unplaced.len(),
            if pinned > 0 {
                format!(
                    "; {pinned} with pins, {} kept, {} moved",
                    o.placed.iter().filter(|p| p.kept).count(),
                    o.score.moved
                )
            } else {
                String::new()
            }
        );
        println!(
            "  Nova-style first fit on the same input: median {:.1} ms, placed {} ({} fewer); kvmtune takes {:.1}x its time",
            median(nova_t.clone()),
            nova.score.placed,
            o.score.placed as i64 - nova.score.placed as i64,
            med / median(nova_t)
        );
        results.push((label, med));
    }
    for (label, med) in results {
        println!(
            "target: plan 1000 {label} domains in under {TARGET_MS:.0} ms (median): {} ({med:.1} ms)",
            if med < TARGET_MS { "met" } else { "NOT met" }
        );
    }
}

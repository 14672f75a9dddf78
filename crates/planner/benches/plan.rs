#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `cargo bench -p kvmtune-planner`: plan 1,000 domains on an 8-node, 448-thread host
//! (8 sockets x 28 cores x 2 threads, 768 GiB per node). Two workloads: every domain dedicated
//! (far more vCPUs than threads, so many do not fit and every fallback pass runs: the worst
//! case), and every domain shared (a dense host). Prints the median of 15 runs of each.

use std::time::Instant;

use kvmtune_planner::{CpuPolicy, Fill, generate, nova_first_fit, plan};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let topo = generate::host(8, 28, 2, 768);
    let threads: usize = topo
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .map(|c| c.threads.len())
        .sum();
    for (label, shared) in [("dedicated", false), ("shared", true)] {
        let mut doms = generate::doms(42, 1000, 16, 64);
        if shared {
            for d in &mut doms {
                d.policy.cpus = CpuPolicy::Shared;
            }
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
        println!(
            "plan 1000 {label} domains on 8 nodes / {threads} threads: median {:.1} ms (min {:.1}, max {:.1}); placed {}, not placed {}",
            median(times.clone()),
            times.iter().cloned().fold(f64::MAX, f64::min),
            times.iter().cloned().fold(0.0, f64::max),
            o.score.placed,
            o.unplaced.len()
        );
        println!(
            "  Nova-style first fit on the same input: median {:.1} ms, placed {} ({} fewer); kvmtune takes {:.1}x its time",
            median(nova_t.clone()),
            nova.score.placed,
            o.score.placed as i64 - nova.score.placed as i64,
            median(times.clone()) / median(nova_t)
        );
    }
}

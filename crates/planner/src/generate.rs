//! Seeded instances for comparing the planner (tests and benchmarks): a host of `nodes`
//! nodes of `cores` cores with `threads` threads each and `mem_gib` GiB per node, and
//! `count` domains of 1-16 vCPUs and 1-64 GiB, all dedicated with SMT `prefer` and
//! housekeeping emulators, no CPU reserved.

use crate::{Core, CpuPolicy, Dom, EmulatorPolicy, Node, Policy, SmtPolicy, Topo};

pub fn host(nodes: u32, cores: u32, threads: u32, mem_gib: u64) -> Topo {
    let mut out = Vec::new();
    let per_node = cores * threads;
    for n in 0..nodes {
        let mut cs = Vec::new();
        for c in 0..cores {
            // Linux numbering: first threads of all cores, then the siblings
            let ts = (0..threads)
                .map(|t| t * nodes * cores + n * cores + c)
                .collect();
            cs.push(Core {
                socket: n as i64,
                id: c as i64,
                threads: ts,
            });
        }
        let _ = per_node;
        out.push(Node {
            id: n,
            socket: n as i64,
            cores: cs,
            housekeeping: Vec::new(),
            memory_kib: mem_gib * 1024 * 1024,
            hugepages_free: Default::default(),
        });
    }
    Topo {
        nodes: out,
        threads_per_core: threads,
        reserved: Vec::new(),
        isolated: Vec::new(),
        online: (nodes * cores * threads) as usize,
        distance: Vec::new(),
        shared_overcommit: None,
        memory_free_now: false,
    }
}

pub fn doms(seed: u64, count: usize, max_vcpus: u32, max_mem_gib: u64) -> Vec<Dom> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sizes = [1u32, 2, 2, 4, 4, 4, 6, 8, 8, 12, 16];
    let mems = [1u64, 2, 4, 4, 8, 8, 16, 24, 32, 48, 64];
    (0..count)
        .map(|i| {
            let vs: Vec<u32> = sizes.iter().copied().filter(|&v| v <= max_vcpus).collect();
            let ms: Vec<u64> = mems.iter().copied().filter(|&m| m <= max_mem_gib).collect();
            let vcpus = rng.choice(vs).unwrap_or(1);
            let gib = rng.choice(ms).unwrap_or(1);
            Dom {
                name: format!("vm{i:04}"),
                vcpus,
                memory_kib: gib * 1024 * 1024,
                page_kib: None,
                pins: Default::default(),
                emulator_pin: None,
                policy: Policy {
                    cpus: CpuPolicy::Dedicated,
                    smt: SmtPolicy::Prefer,
                    emulator: EmulatorPolicy::Housekeeping,
                },
            }
        })
        .collect()
}

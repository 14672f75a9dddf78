//! An exact search for small instances, to measure the planner against: the most domains
//! that can be placed, each on one node, with SMT `prefer` (any free thread serves) — the
//! planner's objective (1) without spanning. Branch and bound over node assignments; nodes in
//! the same state are tried once.

use crate::{Dom, Topo};

/// The optimum: (domains placed, the assignment: node index or `None` per domain).
pub fn best_single_node(t: &Topo, doms: &[Dom]) -> (usize, Vec<Option<usize>>) {
    let mut order: Vec<usize> = (0..doms.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((doms[i].vcpus, doms[i].memory_kib)));
    let threads: Vec<u64> = t
        .nodes
        .iter()
        .map(|n| n.cores.iter().map(|c| c.threads.len() as u64).sum())
        .collect();
    let mem: Vec<u64> = t.nodes.iter().map(|n| n.memory_kib).collect();
    let mut s = Search {
        doms,
        order,
        free_t: threads,
        free_m: mem,
        cur: vec![None; doms.len()],
        best: 0,
        best_assign: vec![None; doms.len()],
    };
    s.go(0, 0);
    (s.best, s.best_assign)
}

struct Search<'a> {
    doms: &'a [Dom],
    order: Vec<usize>,
    free_t: Vec<u64>,
    free_m: Vec<u64>,
    cur: Vec<Option<usize>>,
    best: usize,
    best_assign: Vec<Option<usize>>,
}

impl Search<'_> {
    fn go(&mut self, k: usize, placed: usize) {
        if placed > self.best {
            self.best = placed;
            self.best_assign.clone_from(&self.cur);
        }
        if k == self.order.len() || placed + (self.order.len() - k) <= self.best {
            return;
        }
        // bound: the remaining domains that could still fit somewhere, smallest first, against
        // the total free capacity
        let tot_t: u64 = self.free_t.iter().sum();
        let tot_m: u64 = self.free_m.iter().sum();
        let mut rem: Vec<(u64, u64)> = self.order[k..]
            .iter()
            .map(|&i| (self.doms[i].vcpus as u64, self.doms[i].memory_kib))
            .collect();
        rem.sort_unstable();
        let (mut ut, mut um, mut could) = (0u64, 0u64, 0usize);
        for (t, m) in rem {
            if ut + t <= tot_t && um + m <= tot_m {
                ut += t;
                um += m;
                could += 1;
            }
        }
        if placed + could <= self.best {
            return;
        }
        let d = self.order[k];
        let (need_t, need_m) = (self.doms[d].vcpus as u64, self.doms[d].memory_kib);
        let mut tried: Vec<(u64, u64)> = Vec::new();
        for n in 0..self.free_t.len() {
            let state = (self.free_t[n], self.free_m[n]);
            if state.0 < need_t || state.1 < need_m || tried.contains(&state) {
                continue;
            }
            tried.push(state);
            self.free_t[n] -= need_t;
            self.free_m[n] -= need_m;
            self.cur[d] = Some(n);
            self.go(k + 1, placed + 1);
            self.cur[d] = None;
            self.free_t[n] += need_t;
            self.free_m[n] += need_m;
        }
        self.go(k + 1, placed);
    }
}

//! Free resources while a pass places domains, and the SMT-aware choice of threads.

use std::rc::Rc;

use crate::{Core, EmulatorPolicy, Node, Policy, SmtPolicy, Topo};

/// A bitmap of CPUs (cheap to copy when a pass tries a placement), with each node's count of
/// free threads kept up to date as CPUs are taken.
#[derive(Debug, Clone)]
pub(super) struct Taken {
    bits: Vec<bool>,
    /// For each CPU, the index of the (first) node whose cores hold it ([`NO_NODE`]: none), shared
    /// by every copy.
    owner: Rc<[u32]>,
    /// Free threads per node; `None` when a CPU appears more than once among the cores (an
    /// odd topology: the count is then taken from the bitmap each time).
    free: Option<Vec<usize>>,
}

const NO_NODE: u32 = u32::MAX;

impl Taken {
    pub(super) fn new(t: &Topo) -> Taken {
        let max = t
            .nodes
            .iter()
            .flat_map(|n| {
                n.cores
                    .iter()
                    .flat_map(|c| c.threads.iter())
                    .chain(&n.housekeeping)
            })
            .copied()
            .max()
            .unwrap_or(0);
        let mut owner = vec![NO_NODE; max as usize + 1];
        let mut free = Some(vec![0; t.nodes.len()]);
        for (i, n) in t.nodes.iter().enumerate() {
            for &c in n.cores.iter().flat_map(|c| &c.threads) {
                match owner.get_mut(c as usize) {
                    Some(o) if *o == NO_NODE => *o = i as u32,
                    _ => free = None,
                }
                if let Some(f) = free.as_mut() {
                    f[i] += 1;
                }
            }
        }
        Taken {
            bits: vec![false; max as usize + 1],
            owner: owner.into(),
            free,
        }
    }
    pub(super) fn contains(&self, c: &u32) -> bool {
        self.bits.get(*c as usize).copied().unwrap_or(false)
    }
    pub(super) fn extend<'a>(&mut self, cs: impl IntoIterator<Item = &'a u32>) {
        for c in cs {
            if let Some(x) = self.bits.get_mut(*c as usize)
                && !*x
            {
                *x = true;
                if let Some(f) = self.free.as_mut()
                    && let Some(&o) = self.owner.get(*c as usize)
                    && o != NO_NODE
                {
                    f[o as usize] -= 1;
                }
            }
        }
    }
}

/// Free resources while planning.
#[derive(Debug, Clone)]
pub(super) struct State {
    /// Threads taken by dedicated vCPUs or emulators (or idled by `isolate`), by CPU id.
    pub(super) taken: Taken,
    /// Ordinary memory placed per node, KiB.
    pub(super) mem_used: Vec<u64>,
    /// Free hugepages taken per node: (page KiB, pages).
    pub(super) pages_used: Vec<Vec<(u64, u64)>>,
    /// Shared vCPUs placed per node.
    pub(super) shared_vcpus: Vec<u64>,
}

impl State {
    pub(super) fn new(t: &Topo) -> State {
        State {
            taken: Taken::new(t),
            mem_used: vec![0; t.nodes.len()],
            pages_used: vec![Vec::new(); t.nodes.len()],
            shared_vcpus: vec![0; t.nodes.len()],
        }
    }
    fn pages_taken(&self, i: usize, page: u64) -> u64 {
        self.pages_used[i]
            .iter()
            .find(|(s, _)| *s == page)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
    /// Free hugepages of a size on node `i`, in KiB.
    fn pages_free_kib(&self, t: &Topo, i: usize, page: Option<u64>) -> u64 {
        let Some(page) = page else { return 0 };
        let have = t.nodes[i].hugepages_free.get(&page).copied().unwrap_or(0);
        have.saturating_sub(self.pages_taken(i, page)) * page
    }
    /// Take memory for a domain on node `i`: free hugepages of its size first, whole pages,
    /// then ordinary memory (a pool grown from free memory).
    pub(super) fn take_mem(&mut self, t: &Topo, i: usize, page: Option<u64>, kib: u64) {
        let mut rest = kib;
        if let Some(size) = page.filter(|&p| p > 0) {
            let free_pages = self.pages_free_kib(t, i, page) / size;
            let pages = (kib / size).min(free_pages);
            if pages > 0 {
                match self.pages_used[i].iter_mut().find(|(s, _)| *s == size) {
                    Some(e) => e.1 += pages,
                    None => self.pages_used[i].push((size, pages)),
                }
                rest -= pages * size;
            }
        }
        self.mem_used[i] += rest;
    }
    /// Whether each CPU is on one node only (as on any real host): then taking threads on
    /// one node changes no other node.
    pub(super) fn one_node_per_cpu(&self) -> bool {
        self.taken.free.is_some()
    }
    /// The index of the node whose cores hold CPU `c` (the first such node), if any.
    pub(super) fn node_of(&self, c: u32) -> Option<usize> {
        match self.taken.owner.get(c as usize) {
            Some(&o) if o != NO_NODE => Some(o as usize),
            _ => None,
        }
    }
    /// Free threads of node `i` (of `t`, the topology the state was made for).
    pub(super) fn free_threads(&self, t: &Topo, i: usize) -> usize {
        match &self.taken.free {
            Some(f) => f[i],
            None => t.nodes[i]
                .cores
                .iter()
                .flat_map(|c| &c.threads)
                .filter(|x| !self.taken.contains(x))
                .count(),
        }
    }
    /// Memory free on node `i` for a domain with hugepages of `page` KiB (or none).
    pub(super) fn free_mem(&self, t: &Topo, i: usize, page: Option<u64>) -> u64 {
        t.nodes[i].memory_kib.saturating_sub(self.mem_used[i]) + self.pages_free_kib(t, i, page)
    }
}

/// Threads for `n` dedicated vCPUs on a node: (the vCPUs' threads, every thread consumed).
pub(super) fn pick(
    st: &State,
    node: &Node,
    n: usize,
    smt: SmtPolicy,
) -> Option<(Vec<u32>, Vec<u32>)> {
    let free_core = |c: &Core| c.threads.iter().all(|t| !st.taken.contains(t));
    let mut got = Vec::new();
    let mut consumed = Vec::new();
    match smt {
        SmtPolicy::Prefer => {
            // whole free cores first (siblings together), then what is left of others
            for c in node.cores.iter().filter(|c| free_core(c)) {
                for &t in &c.threads {
                    if got.len() < n {
                        got.push(t);
                    }
                }
            }
            for c in node.cores.iter().filter(|c| !free_core(c)) {
                for &t in &c.threads {
                    if got.len() < n && !st.taken.contains(&t) {
                        got.push(t);
                    }
                }
            }
            consumed.clone_from(&got);
        }
        SmtPolicy::Isolate => {
            for c in node.cores.iter().filter(|c| free_core(c)) {
                if got.len() < n {
                    got.push(c.threads[0]);
                    consumed.extend(&c.threads);
                }
            }
        }
        SmtPolicy::Require => {
            for c in node.cores.iter().filter(|c| free_core(c)) {
                if got.len() < n && got.len() + c.threads.len() <= n {
                    got.extend(&c.threads);
                    consumed.extend(&c.threads);
                }
            }
        }
    }
    (got.len() == n).then_some((got, consumed))
}

/// Whether [`pick`] finds `n` threads on the node, without building the lists (the count for
/// `prefer` and `isolate`; `require` asks `pick` itself).
pub(super) fn fits(t: &Topo, st: &State, i: usize, n: usize, smt: SmtPolicy) -> bool {
    let node = &t.nodes[i];
    let free_core = |c: &&Core| c.threads.iter().all(|t| !st.taken.contains(t));
    match smt {
        SmtPolicy::Prefer => st.free_threads(t, i) >= n,
        SmtPolicy::Isolate => node.cores.iter().filter(free_core).count() >= n,
        SmtPolicy::Require => pick(st, node, n, smt).is_some(),
    }
}

/// The emulator threads' CPUs of a domain placed on node `ni` with its vCPUs on `own`.
pub(super) fn emulator_for(
    t: &Topo,
    st: &mut State,
    ni: usize,
    p: &Policy,
    own: &[u32],
) -> Option<Vec<u32>> {
    let node = &t.nodes[ni];
    match p.emulator {
        EmulatorPolicy::Housekeeping => {
            if !node.housekeeping.is_empty() {
                return Some(node.housekeeping.clone());
            }
            // the reserved CPUs of the same socket on another node
            let same: Vec<u32> = t
                .nodes
                .iter()
                .filter(|n| n.socket == node.socket)
                .flat_map(|n| n.housekeeping.iter().copied())
                .collect();
            if !same.is_empty() {
                return Some(same);
            }
            Some(own.to_vec())
        }
        EmulatorPolicy::Dedicated => {
            let (got, consumed) = pick(st, node, 1, SmtPolicy::Prefer)?;
            st.taken.extend(&consumed);
            Some(got)
        }
    }
}

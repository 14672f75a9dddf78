//! An exact placement solver written from docs/plan.md alone, to check the planner against.
//! It shares no code with the planner: it reads the planner's public input types ([`Topo`],
//! [`Dom`] and the policy enums) and nothing else; no pass, no exact search, no scoring helper.
//!
//! # The objective (docs/plan.md, "Objective (lexicographic)")
//!
//! 1. place as many domains as possible;
//! 2. then have as few domains as possible span nodes: the sum over placed domains of
//!    (nodes − 1);
//! 3. then move as few domains as possible: a placed domain that has current pins and does not
//!    keep them counts one.
//!
//! Nothing further is part of the objective: the docs' remaining choices (the closest node set
//! by NUMA distance for a spanning domain, the freest node, ties to the earlier pass) pick
//! among plans of equal score and do not change it. So the oracle lets a spanning domain use
//! any set of nodes that fits; a planner that only tries some sets shows up as a gap.
//!
//! # The rules (docs/plan.md, "Inputs", "Spanning", "Objective")
//!
//! - A domain is placed whole or not at all; a domain without vCPUs is never placed.
//! - **Dedicated** vCPUs: one usable CPU each (the cores of [`Topo`]'s nodes: the CPUs kept for
//!   the host and, with `isolcpus`, the non-isolated ones are not in them), never shared.
//!   SMT `prefer`: any free threads; `isolate`: one thread of a wholly free core each, its
//!   siblings idle; `require`: whole free cores, vCPUs a multiple of the threads per core.
//! - Emulator `housekeeping` costs no CPU of the domains; `dedicated` takes one more free
//!   thread on the domain's node (on one of its nodes when it spans).
//! - **Shared** vCPUs: one node; they float over the node's CPUs that no dedicated vCPU or
//!   emulator has (or idles); the node needs at least one, and the shared vCPUs on the node
//!   stay within `shared_overcommit` × those CPUs when the profile bounds them. Shared domains
//!   do not span (spanning splits a domain by the CPUs it got on each node, which a shared
//!   domain has not got).
//! - **Memory** per node: `memory_kib` (capacity, or free now when `memory_free_now`: the topology
//!   already carries the basis) plus, for a domain backed by pages of size S, the node's free
//!   pages of size S. A domain draws whole free pages of its size first (at most
//!   ⌊memory / S⌋), the rest from ordinary memory. Using pages first is never worse: they serve
//!   only domains of that page size, ordinary memory serves every domain.
//! - **Spanning** (dedicated only): over a set of 2 or more nodes, at least one vCPU on each,
//!   the SMT rule applying per node; memory split in proportion to the vCPUs per node, each
//!   share rounded down to the MiB except one node's, which takes the rest (the docs do not
//!   say which: the oracle tries each). The docs' invariant holds on the finished placement: a
//!   spanning domain does not fit any single node (its vCPUs under its SMT rule, its
//!   emulator, its memory; shared pools not counted) once it is taken out. (Without shared
//!   domains the objective alone would ensure it; with them, spanning a domain that fits a
//!   node could leave that node's CPUs to a shared domain's pool.)
//! - **Kept pins** (`kept`): a dedicated domain keeps its current pins when they are valid:
//!   one CPU per vCPU (every vCPU pinned), all distinct, all usable CPUs of one node, one per
//!   core under `isolate` (whole cores consumed under `isolate`/`require`), not used by
//!   another kept domain, the memory fits (and a dedicated emulator finds its thread). A kept
//!   domain is neither moved nor spanning. Which of the domains with valid pins keep them is
//!   the oracle's choice (every compatible subset is tried).
//!
//! # How
//!
//! For each compatible subset of kept domains, a branch and bound over the other domains
//! (dedicated ones first, largest first, then shared ones, so shared domains see the final
//! CPUs): every single node, every spanning split, or left out. A branch stops when an
//! optimistic value (see `optimistic`) cannot beat the best found, or when its state was
//! reached before with as good a value. A node's CPU state is (wholly free cores, free threads on
//! partly used cores): all cores of a node have the same number of threads (asserted), and a
//! `prefer` domain takes the partly used cores' threads first — a state with more whole cores
//! and as many free threads can do all the other can, since a whole core serves as loose
//! threads. Node states are kept sorted (equal states of different nodes are tried once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kvmtune_planner::{CpuPolicy, Dom, EmulatorPolicy, SmtPolicy, Topo};

/// An objective value: better is more placed, then less spanning, then fewer moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Value {
    pub placed: usize,
    pub spanning: usize,
    pub moved: usize,
}

impl Value {
    fn key(&self) -> (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        (
            self.placed,
            std::cmp::Reverse(self.spanning),
            std::cmp::Reverse(self.moved),
        )
    }
    pub fn better(&self, other: &Value) -> bool {
        self.key() > other.key()
    }
    fn add(self, o: Value) -> Value {
        Value {
            placed: self.placed + o.placed,
            spanning: self.spanning + o.spanning,
            moved: self.moved + o.moved,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "placed {} spanning {} moved {}",
            self.placed, self.spanning, self.moved
        )
    }
}

/// A node's free resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct NodeState {
    /// Wholly free cores.
    whole: u32,
    /// Free threads on partly used cores.
    loose: u32,
    /// Ordinary memory, KiB.
    mem: u64,
    /// Free hugepages: (page KiB, pages).
    pages: Vec<(u64, u64)>,
    /// Shared vCPUs placed here.
    shared: u64,
    /// The node's index (last, so that sorting groups equal states of different nodes).
    id: usize,
}

/// Where a spanning domain went: (node index, vCPUs, memory KiB, its dedicated emulator).
type Footprint = (usize, Vec<(usize, u32, u64, bool)>);

impl NodeState {
    fn threads(&self, tpc: u32) -> u32 {
        self.whole * tpc + self.loose
    }
    /// Take `k` threads, partly used cores first.
    fn take_threads(&mut self, k: u32, tpc: u32) -> bool {
        let a = self.loose.min(k);
        let b = k - a;
        let cores = b.div_ceil(tpc);
        if cores > self.whole {
            return false;
        }
        self.whole -= cores;
        self.loose = self.loose - a + cores * tpc - b;
        true
    }
    /// Take `k` dedicated vCPUs under an SMT rule.
    fn take_vcpus(&mut self, k: u32, smt: SmtPolicy, tpc: u32) -> bool {
        match smt {
            SmtPolicy::Prefer => self.take_threads(k, tpc),
            SmtPolicy::Isolate => {
                if k > self.whole {
                    return false;
                }
                self.whole -= k;
                true
            }
            SmtPolicy::Require => {
                if !k.is_multiple_of(tpc) || k / tpc > self.whole {
                    return false;
                }
                self.whole -= k / tpc;
                true
            }
        }
    }
    /// Take memory: whole free pages of the domain's size first, then ordinary memory.
    fn take_mem(&mut self, kib: u64, page: Option<u64>) -> bool {
        let mut rest = kib;
        if let Some(size) = page.filter(|&s| s > 0)
            && let Some(e) = self.pages.iter_mut().find(|(s, _)| *s == size)
        {
            let n = (kib / size).min(e.1);
            e.1 -= n;
            rest -= n * size;
        }
        if rest > self.mem {
            return false;
        }
        self.mem -= rest;
        true
    }
}

struct Ctx<'a> {
    tpc: u32,
    overcommit: Option<f64>,
    doms: Vec<&'a Dom>,
    /// The best value found (over every kept subset).
    best: Value,
    /// States reached, by domain index, with the best value they were reached with.
    seen: HashMap<(usize, Vec<NodeState>, Vec<Footprint>), Value>,
    /// The spanning domains on the current branch.
    spans: Vec<Footprint>,
    /// Whether domains may span nodes.
    span: bool,
}

/// The optimum of the objective over every placement the rules allow.
pub fn optimum(t: &Topo, doms: &[Dom]) -> Value {
    optimum_with(t, doms, true)
}

/// [`optimum`], with or without spanning (without: to cross-check the oracle against other
/// single-node searches).
pub fn optimum_with(t: &Topo, doms: &[Dom], span: bool) -> Value {
    let tpc = t
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .map(|c| c.threads.len() as u32)
        .next()
        .unwrap_or(1);
    assert!(
        t.nodes
            .iter()
            .flat_map(|n| &n.cores)
            .all(|c| c.threads.len() as u32 == tpc),
        "the oracle needs cores of equal thread counts"
    );
    assert!(
        doms.iter().all(|d| !(d.policy.cpus == CpuPolicy::Shared
            && d.policy.emulator == EmulatorPolicy::Dedicated)),
        "the oracle does not model shared domains with dedicated emulators"
    );
    // CPU -> (node, core)
    let mut at: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for (ni, n) in t.nodes.iter().enumerate() {
        for (ci, c) in n.cores.iter().enumerate() {
            for &x in &c.threads {
                at.insert(x, (ni, ci));
            }
        }
    }
    // domains whose pins could be kept: (index, node, CPUs consumed)
    let mut keepable: Vec<(usize, usize, BTreeSet<u32>)> = Vec::new();
    for (i, d) in doms.iter().enumerate() {
        if let Some((node, consumed)) = valid_pins(t, &at, d) {
            keepable.push((i, node, consumed));
        }
    }
    let mut best = Value::default();
    for mask in 0u32..(1 << keepable.len()) {
        let chosen: Vec<&(usize, usize, BTreeSet<u32>)> = keepable
            .iter()
            .enumerate()
            .filter(|(b, _)| mask & (1 << b) != 0)
            .map(|(_, k)| k)
            .collect();
        let Some(start) = kept_state(t, tpc, doms, &at, &chosen) else {
            continue;
        };
        let kept: BTreeSet<usize> = chosen.iter().map(|k| k.0).collect();
        let mut rest: Vec<&Dom> = doms
            .iter()
            .enumerate()
            .filter(|(i, d)| !kept.contains(i) && d.vcpus > 0)
            .map(|(_, d)| d)
            .collect();
        rest.sort_by_key(|d| {
            (
                d.policy.cpus == CpuPolicy::Shared,
                std::cmp::Reverse((d.vcpus, d.memory_kib)),
            )
        });
        let mut cx = Ctx {
            tpc,
            overcommit: t.shared_overcommit,
            doms: rest,
            best,
            seen: HashMap::new(),
            spans: Vec::new(),
            span,
        };
        let acc = Value {
            placed: kept.len(),
            spanning: 0,
            moved: 0,
        };
        cx.go(0, start, acc);
        best = cx.best;
    }
    best
}

/// A domain's pins when they could be kept on their own: (node index, CPUs they consume).
fn valid_pins(
    t: &Topo,
    at: &BTreeMap<u32, (usize, usize)>,
    d: &Dom,
) -> Option<(usize, BTreeSet<u32>)> {
    if d.policy.cpus != CpuPolicy::Dedicated || d.vcpus == 0 || d.pins.len() != d.vcpus as usize {
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
    if distinct.len() != cpus.len() {
        return None;
    }
    let places: Vec<(usize, usize)> = cpus
        .iter()
        .map(|c| at.get(c).copied())
        .collect::<Option<_>>()?;
    let node = places[0].0;
    if places.iter().any(|p| p.0 != node) {
        return None;
    }
    let cores: BTreeSet<usize> = places.iter().map(|p| p.1).collect();
    match d.policy.smt {
        SmtPolicy::Prefer => Some((node, distinct)),
        SmtPolicy::Isolate | SmtPolicy::Require => {
            if d.policy.smt == SmtPolicy::Isolate && cores.len() != places.len() {
                return None;
            }
            let all = cores
                .iter()
                .flat_map(|&c| t.nodes[node].cores[c].threads.iter().copied())
                .collect();
            Some((node, all))
        }
    }
}

/// The node states once the chosen domains keep their pins, or `None` when they cannot all.
fn kept_state(
    t: &Topo,
    tpc: u32,
    doms: &[Dom],
    at: &BTreeMap<u32, (usize, usize)>,
    chosen: &[&(usize, usize, BTreeSet<u32>)],
) -> Option<Vec<NodeState>> {
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for (_, _, consumed) in chosen {
        for c in consumed {
            if !taken.insert(*c) {
                return None;
            }
        }
    }
    let mut st: Vec<NodeState> = t
        .nodes
        .iter()
        .enumerate()
        .map(|(id, n)| NodeState {
            whole: 0,
            loose: 0,
            mem: n.memory_kib,
            pages: n
                .hugepages_free
                .iter()
                .map(|(s, p)| (*s, *p))
                .filter(|(_, p)| *p > 0)
                .collect(),
            shared: 0,
            id,
        })
        .collect();
    let mut used_in_core: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    for c in &taken {
        if let Some(p) = at.get(c) {
            *used_in_core.entry(*p).or_default() += 1;
        }
    }
    for (ni, n) in t.nodes.iter().enumerate() {
        for ci in 0..n.cores.len() {
            match used_in_core.get(&(ni, ci)).copied().unwrap_or(0) {
                0 => st[ni].whole += 1,
                u => st[ni].loose += tpc - u,
            }
        }
    }
    for (i, ni, _) in chosen {
        let d = &doms[*i];
        if !st[*ni].take_mem(d.memory_kib, d.page_kib) {
            return None;
        }
        if d.policy.emulator == EmulatorPolicy::Dedicated && !st[*ni].take_threads(1, tpc) {
            return None;
        }
    }
    Some(st)
}

impl Ctx<'_> {
    /// The domain on node state `s` alone, when it fits.
    fn single(&self, d: &Dom, s: &NodeState) -> Option<NodeState> {
        let mut s = s.clone();
        let n = d.vcpus;
        let ok = if d.policy.cpus == CpuPolicy::Shared {
            let pool = s.threads(self.tpc) as u64;
            pool > 0
                && self
                    .overcommit
                    .is_none_or(|r| (s.shared + n as u64) as f64 <= r * pool as f64)
                && s.take_mem(d.memory_kib, d.page_kib)
                && {
                    s.shared += n as u64;
                    true
                }
        } else {
            s.take_vcpus(n, d.policy.smt, self.tpc)
                && (d.policy.emulator == EmulatorPolicy::Housekeeping
                    || s.take_threads(1, self.tpc))
                && s.take_mem(d.memory_kib, d.page_kib)
        };
        ok.then_some(s)
    }

    /// A value no completion of `acc` from domain `k` on can beat: the most domains the total
    /// free threads and memory could hold (each resource counted alone, smallest first), the
    /// fewest of them spanning (those no node fits now must span: free resources only
    /// shrink), the fewest moved (domains with pins beyond those without).
    fn optimistic(&self, k: usize, st: &[NodeState], acc: Value) -> Value {
        let mut need_t = Vec::new();
        let mut need_m = Vec::new();
        let (mut must_span, mut pinned) = (0, 0);
        for d in &self.doms[k..] {
            let fits_one = st.iter().any(|s| self.single(d, s).is_some());
            if !fits_one && (d.policy.cpus == CpuPolicy::Shared || st.len() < 2 || !self.span) {
                continue; // can never be placed
            }
            must_span += usize::from(!fits_one);
            pinned += usize::from(!d.pins.is_empty());
            need_t.push(if d.policy.cpus == CpuPolicy::Shared {
                0
            } else {
                u64::from(d.vcpus) + u64::from(d.policy.emulator == EmulatorPolicy::Dedicated)
            });
            need_m.push(d.memory_kib);
        }
        let cand = need_t.len();
        let free_t: u64 = st.iter().map(|s| u64::from(s.threads(self.tpc))).sum();
        let free_m: u64 = st
            .iter()
            .map(|s| s.mem + s.pages.iter().map(|(z, p)| z * p).sum::<u64>())
            .sum();
        let most = |mut v: Vec<u64>, cap: u64| {
            v.sort_unstable();
            let mut used = 0u64;
            v.into_iter()
                .take_while(|x| {
                    used += x;
                    used <= cap
                })
                .count()
        };
        let u = most(need_t, free_t).min(most(need_m, free_m));
        acc.add(Value {
            placed: u,
            spanning: u.saturating_sub(cand - must_span),
            moved: u.saturating_sub(cand - pinned),
        })
    }

    /// The docs' invariant on a finished placement (the other domains left out): a spanning
    /// domain does not fit any single node once it is taken out (its CPUs and memory given
    /// back). Needed because with shared domains an optimum could span a domain that fits
    /// a node, to leave the node's CPUs to a shared pool.
    fn spanning_is_needed(&self, st: &[NodeState]) -> bool {
        self.spans.iter().all(|(di, parts)| {
            let d = self.doms[*di];
            st.iter().all(|s| {
                let mut back = s.clone();
                for &(node, c, m, emu) in parts.iter().filter(|p| p.0 == s.id) {
                    match d.policy.smt {
                        SmtPolicy::Prefer => back.loose += c,
                        SmtPolicy::Isolate => back.whole += c,
                        SmtPolicy::Require => back.whole += c / self.tpc,
                    }
                    back.loose += u32::from(emu);
                    back.mem += m;
                    let _ = node;
                }
                // as a dedicated domain: its threads and memory, not the shared pools
                let mut x = back;
                !(x.take_vcpus(d.vcpus, d.policy.smt, self.tpc)
                    && (d.policy.emulator == EmulatorPolicy::Housekeeping
                        || x.take_threads(1, self.tpc))
                    && x.take_mem(d.memory_kib, d.page_kib))
            })
        })
    }

    fn go(&mut self, k: usize, mut st: Vec<NodeState>, acc: Value) {
        if acc.better(&self.best) && self.spanning_is_needed(&st) {
            self.best = acc;
        }
        if k == self.doms.len() {
            return;
        }
        st.sort();
        if !self.optimistic(k, &st, acc).better(&self.best) {
            return;
        }
        // the same state reached before with as good a value: nothing new below
        let key = (k, st.clone(), self.spans.clone());
        match self.seen.get_mut(&key) {
            Some(v) if !acc.better(v) => return,
            Some(v) => *v = acc,
            None => {
                self.seen.insert(key, acc);
            }
        }
        let d = self.doms[k];
        let moved = usize::from(!d.pins.is_empty());
        let one = |spanning| Value {
            placed: 1,
            spanning,
            moved,
        };
        let mut tried: Vec<&NodeState> = Vec::new();
        let mut nexts: Vec<Vec<NodeState>> = Vec::new();
        for i in 0..st.len() {
            if tried.contains(&&st[i]) {
                continue;
            }
            tried.push(&st[i]);
            if let Some(x) = self.single(d, &st[i]) {
                let mut s = st.clone();
                s[i] = x;
                nexts.push(s);
            }
        }
        for s in nexts {
            self.go(k + 1, s, acc.add(one(0)));
        }
        if self.span && d.policy.cpus == CpuPolicy::Dedicated && st.len() >= 2 {
            let mut spans: Vec<(usize, Vec<NodeState>, Footprint)> = Vec::new();
            for set in 1u32..(1 << st.len()) {
                if set.count_ones() < 2 {
                    continue;
                }
                let nodes: Vec<usize> = (0..st.len()).filter(|i| set & (1 << i) != 0).collect();
                let mut split = Vec::new();
                self.compositions(d, &st, &nodes, d.vcpus, &mut split, &mut spans);
            }
            spans.sort_by_key(|(k_nodes, _, _)| *k_nodes);
            for (k_nodes, s, f) in spans {
                self.spans.push((k, f.1));
                self.go(k + 1, s, acc.add(one(k_nodes - 1)));
                self.spans.pop();
            }
        }
        self.go(k + 1, st, acc);
    }

    /// Every split of `left` vCPUs over `nodes` (at least one each), every node for the memory
    /// remainder and for a dedicated emulator: the resulting states.
    fn compositions(
        &self,
        d: &Dom,
        st: &[NodeState],
        nodes: &[usize],
        left: u32,
        split: &mut Vec<u32>,
        out: &mut Vec<(usize, Vec<NodeState>, Footprint)>,
    ) {
        let idx = split.len();
        if idx == nodes.len() {
            if left == 0 {
                self.apply_split(d, st, nodes, split, out);
            }
            return;
        }
        let after = (nodes.len() - idx - 1) as u32;
        if left < after + 1 {
            return;
        }
        let cap = st[nodes[idx]].threads(self.tpc);
        let lo = if after == 0 { left } else { 1 };
        let hi = (left - after).min(cap);
        for c in lo..=hi {
            split.push(c);
            self.compositions(d, st, nodes, left - c, split, out);
            split.pop();
        }
    }

    fn apply_split(
        &self,
        d: &Dom,
        st: &[NodeState],
        nodes: &[usize],
        split: &[u32],
        out: &mut Vec<(usize, Vec<NodeState>, Footprint)>,
    ) {
        let n = d.vcpus as u128;
        let share = |c: u32| (d.memory_kib as u128 * c as u128 / n) as u64 / 1024 * 1024;
        let emus: Vec<Option<usize>> = if d.policy.emulator == EmulatorPolicy::Dedicated {
            nodes.iter().map(|&i| Some(i)).collect()
        } else {
            vec![None]
        };
        for rem in 0..nodes.len() {
            let mut mem: Vec<u64> = split.iter().map(|&c| share(c)).collect();
            let others: u64 = mem
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != rem)
                .map(|(_, m)| *m)
                .sum();
            let Some(last) = d.memory_kib.checked_sub(others) else {
                continue;
            };
            mem[rem] = last;
            for emu in &emus {
                let mut s = st.to_vec();
                let ok = nodes.iter().zip(split).zip(&mem).all(|((&i, &c), &m)| {
                    s[i].take_vcpus(c, d.policy.smt, self.tpc) && s[i].take_mem(m, d.page_kib)
                }) && emu.is_none_or(|e| s[e].take_threads(1, self.tpc));
                if ok && !out.iter().any(|(k, x, _)| *k == nodes.len() && *x == s) {
                    let parts = nodes
                        .iter()
                        .zip(split)
                        .zip(&mem)
                        .map(|((&i, &c), &m)| (st[i].id, c, m, *emu == Some(i)))
                        .collect();
                    out.push((nodes.len(), s, (0, parts)));
                }
            }
        }
    }
}

//! The placement planner behind `kvmtune plan`: where every domain of a host runs.
//!
//! A [`Topo`] (NUMA nodes, their cores and SMT threads, memory, the CPUs kept for the host)
//! and a list of [`Dom`]s (vCPUs, memory, page size, current pins, policy) go in; a
//! [`Placement`] per domain comes out: vCPU pins, emulator pin, NUMA nodes (one when the
//! domain fits one node), guest NUMA cells when it must span nodes, and hugepage pools.
//!
//! The objective, lexicographic (docs/plan.md):
//! 1. place as many domains as possible;
//! 2. then make as few domains span nodes as possible (the sum over domains of nodes − 1);
//! 3. then move as few already-placed domains as possible.
//!
//! Invariants, whatever the input: dedicated vCPUs never share a host CPU (nor, under SMT
//! `isolate`, a core); a domain that fits one node gets one node; the memory placed on a node
//! never exceeds its capacity.

pub mod exact;
pub mod generate;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_host::{CpuSet, Host};
pub use kvmtune_profile::{CpuPolicy, EmulatorPolicy, Fill, SmtPolicy};
use serde::Serialize;

/// A physical core: its usable threads (online, not kept for the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    pub socket: i64,
    pub id: i64,
    pub threads: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: u32,
    pub socket: i64,
    pub cores: Vec<Core>,
    /// The host's reserved CPUs on this node (housekeeping: emulator threads may share them).
    pub housekeeping: Vec<u32>,
    /// Memory the domains may use, KiB.
    pub memory_kib: u64,
}

/// The host as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topo {
    pub nodes: Vec<Node>,
    pub threads_per_core: u32,
    /// CPUs kept for the host.
    pub reserved: Vec<u32>,
}

/// Per-domain policy (the profile's, possibly overridden).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub cpus: CpuPolicy,
    pub smt: SmtPolicy,
    pub emulator: EmulatorPolicy,
}

/// A domain to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dom {
    pub name: String,
    pub vcpus: u32,
    pub memory_kib: u64,
    /// Hugepage size when the domain is backed by hugepages.
    pub page_kib: Option<u64>,
    /// Current vCPU pins (vCPU -> CPUs), from its definition.
    pub pins: BTreeMap<u32, Vec<u32>>,
    pub emulator_pin: Option<Vec<u32>>,
    pub policy: Policy,
}

/// One guest NUMA cell of a domain that spans nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub id: u32,
    pub node: u32,
    pub vcpus: Vec<u32>,
    pub memory_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub name: String,
    /// Host nodes the domain's memory and vCPUs are on.
    pub nodes: Vec<u32>,
    /// vCPU index -> host CPUs it may run on.
    pub vcpus: Vec<Vec<u32>>,
    pub emulator: Vec<u32>,
    /// Guest NUMA cells (empty when the domain fits one node).
    pub cells: Vec<Cell>,
    /// The domain kept its current pins.
    pub kept: bool,
    pub policy: Policy,
    pub page_kib: Option<u64>,
    pub memory_kib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unplaced {
    pub name: String,
    pub why: String,
}

/// Hugepages the placed domains need on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolNeed {
    pub node: u32,
    pub page_kib: u64,
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub placed: Vec<Placement>,
    pub unplaced: Vec<Unplaced>,
    pub pools: Vec<PoolNeed>,
    /// Objective: (placed, spanning, moved).
    pub score: Score,
    /// Host settings the placement calls for, `KEY = VALUE` as for `kvmtune apply --set`.
    pub host: BTreeMap<String, String>,
    /// A kernel command line suggestion for the dedicated CPUs.
    pub isolcpus: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    pub placed: usize,
    pub spanning: usize,
    pub moved: usize,
}

impl Score {
    /// Better is greater: more placed, then less spanning, then fewer moves.
    fn key(&self) -> (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
        (
            self.placed,
            std::cmp::Reverse(self.spanning),
            std::cmp::Reverse(self.moved),
        )
    }
    pub fn better_than(&self, other: &Score) -> bool {
        self.key() > other.key()
    }
}

/// Memory kept for the host on each node, KiB (1 GiB or 5 %, whichever is more, capped at
/// half the node).
pub fn host_memory_reserve(total_kib: u64) -> u64 {
    (1024 * 1024).max(total_kib / 20).min(total_kib / 2)
}

/// Read the topology from host facts. `reserve`: `one-core-per-socket`, `none` or a cpuset.
pub fn topo_from_host(host: &Host, reserve: &str) -> Result<Topo, String> {
    let online: Vec<&kvmtune_host::LogicalCpu> =
        host.cpu.cpus.iter().filter(|c| c.online).collect();
    if online.is_empty() {
        return Err("the host's CPU topology is unknown (no online CPU read)".into());
    }
    let node_of = |cpu: u32| -> u32 {
        host.numa
            .nodes
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(|n| n.id)
            .unwrap_or(0)
    };
    // socket -> lowest core id's threads
    let mut reserved: BTreeSet<u32> = BTreeSet::new();
    match reserve {
        "none" | "" => {}
        "one-core-per-socket" => {
            let mut first: BTreeMap<i64, (u32, i64)> = BTreeMap::new();
            for c in &online {
                let s = c.socket.unwrap_or(0);
                let e = first
                    .entry(s)
                    .or_insert((c.id, c.core.unwrap_or(c.id as i64)));
                if c.id < e.0 {
                    *e = (c.id, c.core.unwrap_or(c.id as i64));
                }
            }
            for c in &online {
                let s = c.socket.unwrap_or(0);
                if let Some((_, core)) = first.get(&s)
                    && c.core.unwrap_or(c.id as i64) == *core
                    && node_of(c.id) == node_of(first[&s].0)
                {
                    reserved.insert(c.id);
                }
            }
        }
        set => {
            let cs = CpuSet::parse(set).map_err(|e| format!("reserve {set}: {e}"))?;
            reserved.extend(cs.iter());
        }
    }
    let isolated: BTreeSet<u32> = host
        .cpu
        .isolated
        .as_ref()
        .or(host.cmdline.isolcpus_cpus.as_ref())
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let mut nodes: BTreeMap<u32, Node> = BTreeMap::new();
    for n in &host.numa.nodes {
        let total = n.memory_total_kib.unwrap_or(0);
        nodes.insert(
            n.id,
            Node {
                id: n.id,
                socket: 0,
                cores: Vec::new(),
                housekeeping: Vec::new(),
                memory_kib: total.saturating_sub(host_memory_reserve(total)),
            },
        );
    }
    if nodes.is_empty() {
        let total = host.memory.total_kib.unwrap_or(0);
        nodes.insert(
            0,
            Node {
                id: 0,
                socket: 0,
                cores: Vec::new(),
                housekeeping: Vec::new(),
                memory_kib: total.saturating_sub(host_memory_reserve(total)),
            },
        );
    }
    let mut cores: BTreeMap<(u32, i64, i64), Vec<u32>> = BTreeMap::new();
    for c in &online {
        let node = node_of(c.id);
        let socket = c.socket.unwrap_or(0);
        if let Some(n) = nodes.get_mut(&node) {
            n.socket = socket;
            if reserved.contains(&c.id) {
                n.housekeeping.push(c.id);
                continue;
            }
        }
        // with isolcpus, dedicated vCPUs go to the isolated CPUs only
        if !isolated.is_empty() && !isolated.contains(&c.id) {
            if let Some(n) = nodes.get_mut(&node) {
                n.housekeeping.push(c.id);
            }
            continue;
        }
        cores
            .entry((node, socket, c.core.unwrap_or(c.id as i64)))
            .or_default()
            .push(c.id);
    }
    for ((node, socket, id), mut threads) in cores {
        threads.sort_unstable();
        if let Some(n) = nodes.get_mut(&node) {
            n.cores.push(Core {
                socket,
                id,
                threads,
            });
        }
    }
    for n in nodes.values_mut() {
        n.cores.sort_by_key(|c| c.threads.first().copied());
        n.housekeeping.sort_unstable();
    }
    Ok(Topo {
        nodes: nodes.into_values().collect(),
        threads_per_core: host.cpu.threads_per_core.unwrap_or(1).max(1),
        reserved: reserved.into_iter().collect(),
    })
}

/// A bitmap of CPUs (cheap to copy when a pass tries a placement).
#[derive(Debug, Clone)]
struct Taken(Vec<bool>);

impl Taken {
    fn new(t: &Topo) -> Taken {
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
        Taken(vec![false; max as usize + 1])
    }
    fn contains(&self, c: &u32) -> bool {
        self.0.get(*c as usize).copied().unwrap_or(false)
    }
    fn extend<'a>(&mut self, cs: impl IntoIterator<Item = &'a u32>) {
        for c in cs {
            if let Some(x) = self.0.get_mut(*c as usize) {
                *x = true;
            }
        }
    }
}

/// Free resources while planning.
#[derive(Debug, Clone)]
struct State {
    /// Threads taken by dedicated vCPUs or emulators (or idled by `isolate`), by CPU id.
    taken: Taken,
    mem_used: Vec<u64>,
}

impl State {
    fn new(t: &Topo) -> State {
        State {
            taken: Taken::new(t),
            mem_used: vec![0; t.nodes.len()],
        }
    }
    fn free_threads(&self, n: &Node) -> usize {
        n.cores
            .iter()
            .flat_map(|c| &c.threads)
            .filter(|t| !self.taken.contains(t))
            .count()
    }
    fn free_mem(&self, t: &Topo, i: usize) -> u64 {
        t.nodes[i].memory_kib.saturating_sub(self.mem_used[i])
    }
}

/// Threads for `n` dedicated vCPUs on a node: (the vCPUs' threads, every thread consumed).
fn pick(st: &State, node: &Node, n: usize, smt: SmtPolicy) -> Option<(Vec<u32>, Vec<u32>)> {
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

fn emulator_for(t: &Topo, st: &mut State, ni: usize, p: &Policy, own: &[u32]) -> Option<Vec<u32>> {
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

fn shared_pool(t: &Topo, st: &State, ni: usize) -> Vec<u32> {
    t.nodes[ni]
        .cores
        .iter()
        .flat_map(|c| c.threads.iter().copied())
        .filter(|x| !st.taken.contains(x))
        .collect()
}

impl Placement {
    fn new(d: &Dom, nodes: Vec<u32>, vcpus: Vec<Vec<u32>>, emulator: Vec<u32>) -> Placement {
        Placement {
            name: d.name.clone(),
            nodes,
            vcpus,
            emulator,
            cells: Vec::new(),
            kept: false,
            policy: d.policy,
            page_kib: d.page_kib,
            memory_kib: d.memory_kib,
        }
    }
}

fn one_each(cpus: &[u32]) -> Vec<Vec<u32>> {
    cpus.iter().map(|c| vec![*c]).collect()
}

fn try_keep(t: &Topo, st: &mut State, d: &Dom) -> Option<Placement> {
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
    let ni = t
        .nodes
        .iter()
        .position(|n| n.cores.iter().any(|c| c.threads.contains(&cpus[0])))?;
    let node = &t.nodes[ni];
    let on_node = |c: &u32| node.cores.iter().any(|k| k.threads.contains(c));
    if !cpus.iter().all(on_node) || st.free_mem(t, ni) < d.memory_kib {
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
    st.taken.extend(&consumed);
    st.mem_used[ni] += d.memory_kib;
    let emulator = match &d.emulator_pin {
        Some(e)
            if d.policy.emulator == EmulatorPolicy::Housekeeping
                && !e.is_empty()
                && e.iter().all(|x| !cpus.contains(x)) =>
        {
            e.clone()
        }
        _ => emulator_for(t, st, ni, &d.policy, &cpus)?,
    };
    Some(Placement {
        kept: true,
        ..Placement::new(d, vec![node.id], one_each(&cpus), emulator)
    })
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

fn place_one(
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
fn place_on(t: &Topo, st: &mut State, d: &Dom, ni: usize) -> Result<Placement, String> {
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

/// Place a domain over the fewest nodes (freest first), as guest NUMA cells.
fn span(t: &Topo, st: &mut State, d: &Dom, n: usize) -> Result<Placement, String> {
    let mut order: Vec<usize> = (0..t.nodes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(st.free_threads(&t.nodes[i])), i));
    for k in 2..=t.nodes.len() {
        let chosen = &order[..k];
        let mut trial = st.clone();
        let mut cells = Vec::new();
        let mut left = n;
        let mut mem_left = d.memory_kib;
        let mut ok = true;
        for (ci, &i) in chosen.iter().enumerate() {
            let cap = match d.policy.smt {
                SmtPolicy::Prefer => trial.free_threads(&t.nodes[i]),
                _ => {
                    t.nodes[i]
                        .cores
                        .iter()
                        .filter(|c| c.threads.iter().all(|x| !trial.taken.contains(x)))
                        .count()
                        * if d.policy.smt == SmtPolicy::Require {
                            t.threads_per_core as usize
                        } else {
                            1
                        }
                }
            };
            let take = if ci + 1 == k { left } else { cap.min(left) };
            if take == 0 {
                ok = false;
                break;
            }
            let Some((got, consumed)) = pick(&trial, &t.nodes[i], take, d.policy.smt) else {
                ok = false;
                break;
            };
            let mem = if ci + 1 == k {
                mem_left
            } else {
                ((d.memory_kib as u128 * take as u128 / n as u128) as u64 / 1024 * 1024)
                    .min(mem_left)
            };
            if trial.free_mem(t, i) < mem {
                ok = false;
                break;
            }
            trial.taken.extend(&consumed);
            trial.mem_used[i] += mem;
            left -= take;
            mem_left -= mem;
            cells.push((i, got, mem));
            if left == 0 && ci + 1 < k {
                ok = false; // fits in fewer nodes than k: a smaller k was tried already
                break;
            }
        }
        if !ok || left != 0 {
            continue;
        }
        let mut vcpus = Vec::new();
        let mut out_cells = Vec::new();
        let mut next = 0u32;
        for (cid, (i, got, mem)) in cells.iter().enumerate() {
            let ids: Vec<u32> = (next..next + got.len() as u32).collect();
            next += got.len() as u32;
            vcpus.extend(got.iter().map(|c| vec![*c]));
            out_cells.push(Cell {
                id: cid as u32,
                node: t.nodes[*i].id,
                vcpus: ids,
                memory_kib: *mem,
            });
        }
        let first = cells[0].0;
        let own: Vec<u32> = vcpus.iter().flatten().copied().collect();
        let emulator = emulator_for(t, &mut trial, first, &d.policy, &own)
            .ok_or("no CPU left for a dedicated emulator thread")?;
        *st = trial;
        let nodes = out_cells.iter().map(|c| c.node).collect();
        return Ok(Placement {
            cells: out_cells,
            ..Placement::new(d, nodes, vcpus, emulator)
        });
    }
    Err("it does not fit even spread over several nodes".into())
}

/// One pass over the domains.
pub fn run_pass(t: &Topo, doms: &[Dom], pass: &Pass, fill: Fill) -> Outcome {
    let mut st = State::new(t);
    let mut placed = Vec::new();
    let mut unplaced = Vec::new();
    let mut rest: Vec<&Dom> = Vec::new();
    for d in doms {
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
            placed.push(p);
            continue;
        }
        rest.push(d);
    }
    // dedicated first (they need CPUs of their own), then shared
    let mut ded: Vec<&Dom> = rest
        .iter()
        .copied()
        .filter(|d| d.policy.cpus == CpuPolicy::Dedicated)
        .collect();
    let shared: Vec<&Dom> = rest
        .iter()
        .copied()
        .filter(|d| d.policy.cpus == CpuPolicy::Shared)
        .collect();
    match pass.order {
        Order::Decreasing => ded.sort_by(|a, b| {
            b.vcpus
                .cmp(&a.vcpus)
                .then(b.memory_kib.cmp(&a.memory_kib))
                .then(a.name.cmp(&b.name))
        }),
        Order::Increasing => ded.sort_by(|a, b| {
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
        for d in ded {
            match assign.get(&d.name) {
                Some(ni) => first.push((d, *ni)),
                None => later.push(d),
            }
        }
        for (d, ni) in first {
            match place_on(t, &mut st, d, ni) {
                Ok(p) => placed.push(p),
                Err(why) => unplaced.push(Unplaced {
                    name: d.name.clone(),
                    why,
                }),
            }
        }
        ded = later;
    }
    for d in ded.into_iter().chain(shared) {
        match place_one(t, &mut st, d, pass, fill) {
            Ok(p) => placed.push(p),
            Err(why) => unplaced.push(Unplaced {
                name: d.name.clone(),
                why,
            }),
        }
    }
    finish(t, doms, placed, unplaced)
}

fn finish(t: &Topo, doms: &[Dom], mut placed: Vec<Placement>, unplaced: Vec<Unplaced>) -> Outcome {
    let order: BTreeMap<&str, usize> = doms
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    placed.sort_by_key(|p| order.get(p.name.as_str()).copied());
    let moved = placed
        .iter()
        .filter(|p| {
            let d = doms.iter().find(|d| d.name == p.name);
            d.is_some_and(|d| !d.pins.is_empty() && !p.kept)
        })
        .count();
    let spanning = placed.iter().map(|p| p.nodes.len().saturating_sub(1)).sum();
    let mut pools: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for p in &placed {
        let Some(size) = p.page_kib.filter(|&s| s > 4) else {
            continue;
        };
        if p.cells.is_empty() {
            *pools.entry((p.nodes[0], size)).or_default() += p.memory_kib.div_ceil(size);
        } else {
            for c in &p.cells {
                *pools.entry((c.node, size)).or_default() += c.memory_kib.div_ceil(size);
            }
        }
    }
    let mut host = BTreeMap::new();
    if t.nodes.len() > 1 {
        host.insert("ksm.merge_across_nodes".to_string(), "0".to_string());
        if unplaced.is_empty() && !placed.is_empty() {
            host.insert("numa_balancing".to_string(), "0".to_string());
        }
    }
    let dedicated: BTreeSet<u32> = placed
        .iter()
        .filter(|p| p.policy.cpus == CpuPolicy::Dedicated)
        .flat_map(|p| p.vcpus.iter().flatten().copied())
        .collect();
    let isolcpus = (!dedicated.is_empty()).then(|| {
        let mut s = CpuSet::new();
        for c in &dedicated {
            s.insert(*c);
        }
        format!("isolcpus=managed_irq,domain,{s} nohz_full={s} rcu_nocbs={s}")
    });
    Outcome {
        score: Score {
            placed: placed.len(),
            spanning,
            moved,
        },
        placed,
        unplaced,
        pools: pools
            .into_iter()
            .map(|((node, page_kib), pages)| PoolNeed {
                node,
                page_kib,
                pages,
            })
            .collect(),
        host,
        isolcpus,
    }
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
    let stable = run_pass(t, doms, &pass(Order::Decreasing, false, true, true), fill);
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
                    run_pass(t, doms, &pass(order, first_fit, span, keep), fill),
                    &mut best,
                );
                let mut other = pass(order, first_fit, span, keep);
                other.first_fit = !first_fit;
                let f = if fill == Fill::Spread {
                    Fill::Pack
                } else {
                    Fill::Spread
                };
                consider(run_pass(t, doms, &other, f), &mut best);
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
            consider(run_pass(t, doms, &p, fill), &mut best);
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

/// Check the invariants of an outcome; each violation is a line.
pub fn violations(t: &Topo, doms: &[Dom], o: &Outcome) -> Vec<String> {
    let mut v = Vec::new();
    let mut owner: BTreeMap<u32, &str> = BTreeMap::new();
    let mut mem: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &o.placed {
        if p.policy.cpus == CpuPolicy::Dedicated {
            for c in p.vcpus.iter().flatten() {
                if let Some(other) = owner.insert(*c, &p.name) {
                    v.push(format!("CPU {c} dedicated to both {other} and {}", p.name));
                }
            }
            if p.policy.smt == SmtPolicy::Isolate {
                for n in &t.nodes {
                    for core in &n.cores {
                        let users: BTreeSet<&str> = core
                            .threads
                            .iter()
                            .filter_map(|x| owner.get(x).copied())
                            .collect();
                        let mine = core
                            .threads
                            .iter()
                            .filter(|x| p.vcpus.iter().flatten().any(|c| c == *x))
                            .count();
                        if mine > 0 && (users.len() > 1 || mine > 1) {
                            v.push(format!(
                                "{}: SMT isolate broken on core {:?}",
                                p.name, core.threads
                            ));
                        }
                    }
                }
            }
        }
        if p.cells.is_empty() {
            *mem.entry(p.nodes[0]).or_default() += p.memory_kib;
        } else {
            for c in &p.cells {
                *mem.entry(c.node).or_default() += c.memory_kib;
            }
            let total: u64 = p.cells.iter().map(|c| c.memory_kib).sum();
            if total != p.memory_kib {
                v.push(format!(
                    "{}: cells hold {total} KiB of {}",
                    p.name, p.memory_kib
                ));
            }
        }
    }
    // a spanning domain: no single node may have room for it once it is taken out
    for p in o.placed.iter().filter(|p| p.nodes.len() > 1) {
        let Some(d) = doms.iter().find(|d| d.name == p.name) else {
            continue;
        };
        for n in &t.nodes {
            let used_t: usize = o
                .placed
                .iter()
                .filter(|q| q.name != p.name && q.policy.cpus == CpuPolicy::Dedicated)
                .flat_map(|q| q.vcpus.iter().flatten())
                .filter(|c| n.cores.iter().any(|k| k.threads.contains(c)))
                .count();
            let used_m: u64 = o
                .placed
                .iter()
                .filter(|q| q.name != p.name)
                .map(|q| {
                    if q.cells.is_empty() {
                        if q.nodes[0] == n.id { q.memory_kib } else { 0 }
                    } else {
                        q.cells
                            .iter()
                            .filter(|c| c.node == n.id)
                            .map(|c| c.memory_kib)
                            .sum()
                    }
                })
                .sum();
            let threads: usize = n.cores.iter().map(|c| c.threads.len()).sum();
            if p.policy.smt == SmtPolicy::Prefer
                && threads.saturating_sub(used_t) >= d.vcpus as usize
                && n.memory_kib.saturating_sub(used_m) >= d.memory_kib
            {
                v.push(format!("{} spans nodes but fits node {}", p.name, n.id));
            }
        }
    }
    for (node, used) in mem {
        if let Some(n) = t.nodes.iter().find(|n| n.id == node)
            && used > n.memory_kib
        {
            v.push(format!(
                "node {node}: {used} KiB placed, {} KiB available",
                n.memory_kib
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests;

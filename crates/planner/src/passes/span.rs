//! Spanning: a domain no single node fits, spread over the fewest nodes as guest NUMA cells.

use std::collections::HashMap;

use crate::output::Placement;
use crate::{Cell, Dom, SmtPolicy, Topo};

use super::state::{State, emulator_for, pick};

/// The distance between two nodes both ways (a SLIT table need not be symmetric).
fn pair(t: &Topo, a: usize, b: usize) -> u64 {
    u64::from(t.dist(a, b)) + u64::from(t.dist(b, a))
}

/// The spanning sets' ingredients for one state: each node's rank (freest first), the pair
/// distances, and from each start node (freest first) the order in which it grows by the node
/// nearest to those taken (by the sum of NUMA distances; ties to the freest). A set of `k`
/// nodes grown from a start is the first `k` of its growth, so one growth serves every `k`.
struct Growth {
    rank: Vec<usize>,
    pairs: Vec<Vec<u64>>,
    grown: Vec<Vec<usize>>,
}

/// The spanning sets to try for each order of the nodes met so far (they depend on the
/// topology and that order only), so that a pass, or a plan's passes, work them out once per
/// order rather than once per domain that spans.
#[derive(Default)]
pub(super) struct Sets(HashMap<Vec<usize>, Vec<Vec<usize>>>);

impl Sets {
    /// For the nodes in `order` (freest first), the sets to try in turn: those of 2 nodes,
    /// then of 3, and so on.
    fn get(&mut self, t: &Topo, order: Vec<usize>) -> &[Vec<usize>] {
        self.0.entry(order).or_insert_with_key(|order| {
            let growth = Growth::new(t, order);
            (2..=t.nodes.len())
                .flat_map(|k| growth.candidates(k))
                .collect()
        })
    }
}

impl Growth {
    fn new(t: &Topo, order: &[usize]) -> Growth {
        let m = t.nodes.len();
        let mut rank = vec![usize::MAX; m];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        let pairs: Vec<Vec<u64>> = (0..m)
            .map(|a| (0..m).map(|b| pair(t, a, b)).collect())
            .collect();
        let grown = order
            .iter()
            .map(|&start| {
                let mut set = vec![start];
                // the sum of distances from each node to the set
                let mut to_set = pairs[start].clone();
                while set.len() < m {
                    let next = order
                        .iter()
                        .copied()
                        .filter(|i| !set.contains(i))
                        .min_by_key(|&i| (to_set[i], rank[i]));
                    match next {
                        Some(x) => {
                            set.push(x);
                            for (i, d) in to_set.iter_mut().enumerate() {
                                *d += pairs[i][x];
                            }
                        }
                        None => break,
                    }
                }
                set
            })
            .collect();
        Growth { rank, pairs, grown }
    }

    /// Sets of `k` nodes to try, closest first: the first `k` of each start's growth; the
    /// sets in order of their total pairwise distance (ties keep the freest start first).
    /// Each set lists its nodes freest first.
    fn candidates(&self, k: usize) -> Vec<Vec<usize>> {
        let mut out: Vec<(u64, Vec<usize>)> = Vec::new();
        for g in &self.grown {
            if g.len() < k {
                continue;
            }
            let mut set = g[..k].to_vec();
            set.sort_by_key(|&i| self.rank[i]);
            if !out.iter().any(|(_, s)| *s == set) {
                let mut total = 0u64;
                for (a, &x) in set.iter().enumerate() {
                    for &y in &set[a + 1..] {
                        total += self.pairs[x][y];
                    }
                }
                out.push((total, set));
            }
        }
        out.sort_by_key(|(total, _)| *total);
        out.into_iter().map(|(_, s)| s).collect()
    }
}

/// Whether the trial of `span` on the nodes `chosen` would fail, told from each node's
/// capacity and free memory (`most`) alone. Sound only when each CPU is on one node and the
/// policy is SMT `prefer` or `isolate`: then a node's capacity and free memory in the trial
/// are its own before the trial (the trial takes only from the other nodes), the capacity is
/// its free threads (`prefer`) or free cores (`isolate`), and `pick` finds `take` threads on
/// it exactly when `take` is at most that.
fn fails_on_numbers(d: &Dom, n: usize, chosen: &[usize], most: &[(usize, u64)]) -> bool {
    let k = chosen.len();
    let mut left = n;
    let mut mem_left = d.memory_kib;
    for (ci, &i) in chosen.iter().enumerate() {
        let (cap, free_mem) = most[i];
        let take = if ci + 1 == k { left } else { cap.min(left) };
        if take == 0 || take > cap {
            return true;
        }
        let mem = if ci + 1 == k {
            mem_left
        } else {
            ((d.memory_kib as u128 * take as u128 / n as u128) as u64 / 1024 * 1024).min(mem_left)
        };
        if free_mem < mem {
            return true;
        }
        left -= take;
        mem_left -= mem;
        if left == 0 && ci + 1 < k {
            return true;
        }
    }
    left != 0
}

/// Place a domain over the fewest nodes, the closest by NUMA distance, as guest NUMA cells.
pub(super) fn span(
    t: &Topo,
    st: &mut State,
    sets: &mut Sets,
    d: &Dom,
    n: usize,
) -> Result<Placement, String> {
    // the nodes freest first; `st` does not change until a set fits, so once for every k
    // (each node's free threads counted once, not at every comparison of the sort)
    let free: Vec<usize> = (0..t.nodes.len()).map(|i| st.free_threads(t, i)).collect();
    let mut order: Vec<usize> = (0..t.nodes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(free[i]), i));
    // what each node could give at most, whatever the split: its vCPUs' threads (those `pick`
    // can take under the SMT policy) and its free memory; a set short of either cannot fit
    let most: Vec<(usize, u64)> = (0..t.nodes.len())
        .map(|i| {
            let node = &t.nodes[i];
            let free_core = |c: &&crate::Core| c.threads.iter().all(|x| !st.taken.contains(x));
            let cpus = match d.policy.smt {
                SmtPolicy::Prefer => free[i],
                SmtPolicy::Isolate => node.cores.iter().filter(free_core).count(),
                SmtPolicy::Require => node
                    .cores
                    .iter()
                    .filter(free_core)
                    .map(|c| c.threads.len())
                    .sum(),
            };
            (cpus, st.free_mem(t, i, d.page_kib))
        })
        .collect();
    let sets = sets.get(t, order);
    let numbers_tell =
        st.one_node_per_cpu() && matches!(d.policy.smt, SmtPolicy::Prefer | SmtPolicy::Isolate);
    for chosen in sets {
        let cpus: usize = chosen.iter().map(|&i| most[i].0).sum();
        let mem: u64 = chosen.iter().map(|&i| most[i].1).sum();
        if cpus < n || mem < d.memory_kib {
            continue; // the trial below would fail
        }
        if numbers_tell && fails_on_numbers(d, n, chosen, &most) {
            continue; // the trial below would fail
        }
        let k = chosen.len();
        let mut trial = st.clone();
        let mut cells = Vec::new();
        let mut left = n;
        let mut mem_left = d.memory_kib;
        let mut ok = true;
        for (ci, &i) in chosen.iter().enumerate() {
            let cap = match d.policy.smt {
                SmtPolicy::Prefer => trial.free_threads(t, i),
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
            if trial.free_mem(t, i, d.page_kib) < mem {
                ok = false;
                break;
            }
            trial.taken.extend(&consumed);
            trial.take_mem(t, i, d.page_kib, mem);
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

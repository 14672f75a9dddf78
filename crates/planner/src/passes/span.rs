//! Spanning: a domain no single node fits, spread over the fewest nodes as guest NUMA cells.

use crate::output::Placement;
use crate::{Cell, Dom, SmtPolicy, Topo};

use super::state::{State, emulator_for, pick};

/// The distance between two nodes both ways (a SLIT table need not be symmetric).
fn pair(t: &Topo, a: usize, b: usize) -> u64 {
    u64::from(t.dist(a, b)) + u64::from(t.dist(b, a))
}

/// Sets of `k` nodes to try, closest first: from each start node (freest first), grow by
/// the node nearest to those taken (by the sum of NUMA distances; ties to the freest); the
/// sets in order of their total pairwise distance (ties keep the freest start first). Each
/// set lists its nodes freest first.
fn candidates(t: &Topo, st: &State, k: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..t.nodes.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(st.free_threads(&t.nodes[i])), i));
    let rank = |i: usize| order.iter().position(|&x| x == i).unwrap_or(usize::MAX);
    let mut out: Vec<(u64, Vec<usize>)> = Vec::new();
    for &start in &order {
        let mut set = vec![start];
        while set.len() < k {
            let next = order
                .iter()
                .copied()
                .filter(|i| !set.contains(i))
                .min_by_key(|&i| (set.iter().map(|&j| pair(t, i, j)).sum::<u64>(), rank(i)));
            match next {
                Some(i) => set.push(i),
                None => break,
            }
        }
        set.sort_by_key(|&i| rank(i));
        if set.len() == k && !out.iter().any(|(_, s)| *s == set) {
            let mut total = 0u64;
            for (a, &x) in set.iter().enumerate() {
                for &y in &set[a + 1..] {
                    total += pair(t, x, y);
                }
            }
            out.push((total, set));
        }
    }
    out.sort_by_key(|(total, _)| *total);
    out.into_iter().map(|(_, s)| s).collect()
}

/// Place a domain over the fewest nodes, the closest by NUMA distance, as guest NUMA cells.
pub(super) fn span(t: &Topo, st: &mut State, d: &Dom, n: usize) -> Result<Placement, String> {
    for k in 2..=t.nodes.len() {
        for chosen in candidates(t, st, k) {
            let k = chosen.len();
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
    }
    Err("it does not fit even spread over several nodes".into())
}

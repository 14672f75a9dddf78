#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeMap;

use super::*;

fn dom(name: &str, vcpus: u32, gib: u64) -> Dom {
    Dom {
        name: name.into(),
        vcpus,
        memory_kib: gib << 20,
        page_kib: None,
        pins: BTreeMap::new(),
        emulator_pin: None,
        policy: Policy {
            cpus: CpuPolicy::Dedicated,
            smt: SmtPolicy::Prefer,
            emulator: EmulatorPolicy::Housekeeping,
        },
    }
}

fn pin_as_placed(doms: &mut [Dom], o: &Outcome) {
    for p in &o.placed {
        let d = doms.iter_mut().find(|d| d.name == p.name).unwrap();
        d.pins = p
            .vcpus
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c.clone()))
            .collect();
        d.emulator_pin = Some(p.emulator.clone());
    }
}

#[test]
fn siblings_together_under_prefer_and_apart_under_isolate() {
    let t = generate::host(2, 4, 2, 64);
    let o = plan(&t, &[dom("a", 2, 4)], Fill::Spread);
    // node 0 core 0 has threads 0 and 8
    assert_eq!(o.placed[0].vcpus, vec![vec![0], vec![8]]);
    let mut d = dom("b", 2, 4);
    d.policy.smt = SmtPolicy::Isolate;
    let o = plan(&t, &[d], Fill::Spread);
    assert_eq!(o.placed[0].vcpus, vec![vec![0], vec![1]]);
    assert!(violations(&t, &[], &o).is_empty());
}

#[test]
fn a_domain_that_fits_one_node_gets_one_node_and_big_ones_span() {
    let t = generate::host(2, 4, 2, 64);
    let doms = vec![dom("small", 4, 8), dom("big", 12, 80)];
    let o = plan(&t, &doms, Fill::Spread);
    assert!(o.unplaced.is_empty(), "{:?}", o.unplaced);
    let small = o.placed.iter().find(|p| p.name == "small").unwrap();
    assert_eq!(small.nodes.len(), 1);
    let big = o.placed.iter().find(|p| p.name == "big").unwrap();
    assert_eq!(big.nodes.len(), 2);
    assert_eq!(big.cells.iter().map(|c| c.vcpus.len()).sum::<usize>(), 12);
    assert!(
        violations(&t, &doms, &o).is_empty(),
        "{:?}",
        violations(&t, &doms, &o)
    );
}

#[test]
fn replanning_a_placed_host_changes_nothing_and_adding_one_moves_nobody() {
    let t = generate::host(2, 8, 2, 128);
    let mut doms = generate::doms(7, 6, 8, 32);
    let first = plan(&t, &doms, Fill::Spread);
    pin_as_placed(&mut doms, &first);
    let again = plan(&t, &doms, Fill::Spread);
    assert_eq!(
        again.placed.iter().map(|p| &p.vcpus).collect::<Vec<_>>(),
        first.placed.iter().map(|p| &p.vcpus).collect::<Vec<_>>()
    );
    assert!(again.placed.iter().all(|p| p.kept));
    assert_eq!(again.score.moved, 0);
    doms.push(dom("new", 2, 2));
    let more = plan(&t, &doms, Fill::Spread);
    assert_eq!(more.score.moved, 0, "{:?}", more.score);
    assert!(more.placed.iter().any(|p| p.name == "new"));
}

#[test]
fn pack_and_spread_choose_different_nodes() {
    let t = generate::host(2, 4, 2, 64);
    let doms = vec![dom("a", 2, 2), dom("b", 2, 2)];
    let spread = plan(&t, &doms, Fill::Spread);
    assert_ne!(spread.placed[0].nodes, spread.placed[1].nodes);
    let pack = plan(&t, &doms, Fill::Pack);
    assert_eq!(pack.placed[0].nodes, pack.placed[1].nodes);
}

#[test]
fn bad_input_is_explained() {
    let t = generate::host(2, 2, 2, 16);
    let mut req = dom("req", 3, 1);
    req.policy.smt = SmtPolicy::Require;
    let o = plan(
        &t,
        &[dom("huge", 64, 4), req, dom("zero", 0, 1)],
        Fill::Spread,
    );
    assert_eq!(o.unplaced.len(), 3, "{:?}", o.unplaced);
    let why: Vec<&str> = o.unplaced.iter().map(|u| u.why.as_str()).collect();
    assert!(why.iter().any(|w| w.contains("needs 64 CPUs")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("multiple")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("no vCPU")), "{why:?}");
    // no free CPU at all
    let mut none = generate::host(1, 1, 1, 16);
    none.nodes[0].housekeeping = none.nodes[0].cores.remove(0).threads;
    let o = plan(&none, &[dom("a", 1, 1)], Fill::Spread);
    assert_eq!(o.unplaced.len(), 1);
    let mut shared = dom("s", 1, 1);
    shared.policy.cpus = CpuPolicy::Shared;
    let o = plan(&none, &[shared], Fill::Spread);
    assert!(
        o.unplaced[0].why.contains("CPU not dedicated"),
        "{:?}",
        o.unplaced
    );
}

#[test]
fn hugepage_pools_are_counted_per_node() {
    let t = generate::host(2, 4, 2, 64);
    let mut d = dom("h", 2, 4);
    d.page_kib = Some(2048);
    let o = plan(&t, &[d], Fill::Spread);
    assert_eq!(
        o.pools,
        vec![PoolNeed {
            node: 0,
            page_kib: 2048,
            pages: 2048
        }]
    );
}

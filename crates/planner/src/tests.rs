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

// ---- issue 16 §2: the plan must be right (fixtures: the book's 2-socket host, the sparse
// EPYC host, a 4-node host with asymmetric distances) ----

fn fixture_host(name: &str) -> kvmtune_host::Host {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hosts")
        .join(name)
        .join("root");
    kvmtune_host::collect(&kvmtune_host::RootDir::new(root))
}

fn fixture_topo(name: &str, reserve: &str) -> Topo {
    topo_from_host(&fixture_host(name), reserve).unwrap()
}

fn shared(name: &str, vcpus: u32, gib: u64) -> Dom {
    let mut d = dom(name, vcpus, gib);
    d.policy.cpus = CpuPolicy::Shared;
    d
}

#[test]
fn spanning_takes_the_closest_nodes_not_the_freest() {
    // nodes 0 and 1 are the freest (5 free cores each) but 32 apart; 0-2 and 1-3 are 12 apart
    let t = fixture_topo("e-4node-asym", "one-core-per-socket");
    assert_eq!(t.dist(0, 1), 32);
    assert_eq!(t.dist(3, 0), 23, "asymmetric row read as is");
    let o = plan(&t, &[dom("wide", 14, 8)], Fill::Spread);
    assert!(o.unplaced.is_empty(), "{:?}", o.unplaced);
    assert_eq!(o.placed[0].nodes, vec![0, 2], "{:?}", o.placed[0]);
    // with uniform distances (a generated host), the freest still go first
    let g = generate::host(3, 4, 2, 64);
    let o = plan(&g, &[dom("wide", 10, 8)], Fill::Spread);
    assert_eq!(o.placed[0].nodes.len(), 2);
    // the sparse EPYC host: node ids 0,1,4 (5: memory only); 0-1 are 12 apart, 4 is 32 away
    let t = fixture_topo("c-epyc-sparse", "none");
    let o = plan(&t, &[dom("wide", 10, 8)], Fill::Spread);
    assert_eq!(o.placed[0].nodes, vec![0, 1], "{:?}", o.placed[0]);
    assert!(violations(&t, &[dom("wide", 10, 8)], &o).is_empty());
}

#[test]
fn node_memory_is_what_is_free_now_plus_what_planned_running_domains_hold() {
    let host = fixture_host("e-4node-asym");
    let cap = fixture_topo("e-4node-asym", "none");
    // capacity: 32 GiB less the host share (1.6 GiB)
    assert!(cap.nodes[1].memory_kib > 30 << 20);
    let mut t = cap.clone();
    use_free_memory(&mut t, &host, &BTreeMap::new(), &BTreeMap::new());
    assert!(t.memory_free_now);
    assert_eq!(t.nodes[1].memory_kib, 28 << 20, "MemFree of node 1");
    assert_eq!(t.nodes[2].memory_kib, 12 << 20);
    // a domain of 29 GiB fits node 1's capacity but not what is free there now
    let big = dom("big", 2, 29);
    let o = plan(&cap, std::slice::from_ref(&big), Fill::Spread);
    assert_eq!(o.placed[0].nodes.len(), 1);
    let o = plan(&t, std::slice::from_ref(&big), Fill::Spread);
    assert!(o.placed.first().is_none_or(|p| p.nodes.len() > 1), "{o:?}");
    // the planned domain already runs on node 1 with 4 GiB: that memory is its to keep
    let mut held = BTreeMap::new();
    held.insert(1u32, 4u64 << 20);
    let mut t2 = cap.clone();
    use_free_memory(&mut t2, &host, &held, &BTreeMap::new());
    // 28 GiB free + 4 GiB held, capped by the capacity
    assert_eq!(t2.nodes[1].memory_kib, cap.nodes[1].memory_kib);
    let o = plan(&t2, std::slice::from_ref(&big), Fill::Spread);
    assert_eq!(o.placed[0].nodes, vec![1], "{o:?}");
}

#[test]
fn hugepage_domains_use_the_free_pages_of_their_size() {
    // node 0 of the asymmetric host: 2048 pages of 2 MiB, 1024 free (2 GiB); MemFree 20 GiB
    let host = fixture_host("e-4node-asym");
    let mut t = fixture_topo("e-4node-asym", "none");
    use_free_memory(&mut t, &host, &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(t.nodes[0].hugepages_free.get(&2048), Some(&1024));
    // 21 GiB of 2 MiB pages: 2 GiB from the free pages + 19 GiB of free memory; an ordinary
    // domain of the same size does not fit (20 GiB free)
    let mut h = dom("h", 2, 21);
    h.page_kib = Some(2048);
    let mut p = Pass {
        assign: None,
        order: Order::Decreasing,
        first_fit: true,
        span: false,
        keep: false,
    };
    let o = run_pass(&t, std::slice::from_ref(&h), &p, Fill::Spread);
    assert_eq!(o.placed[0].nodes, vec![0], "{o:?}");
    p.first_fit = true;
    let o = run_pass(&t, &[dom("plain", 2, 21)], &p, Fill::Spread);
    assert!(o.placed.is_empty() || o.placed[0].nodes != vec![0], "{o:?}");
    assert!(
        violations(
            &t,
            std::slice::from_ref(&h),
            &run_pass(&t, std::slice::from_ref(&h), &p, Fill::Spread)
        )
        .is_empty()
    );
}

#[test]
fn shared_vcpus_are_bounded_by_the_overcommit_ratio_and_warned_about() {
    // a 2-CPU host, as the lab: four shared domains of 2 vCPUs each
    let mut t = generate::host(1, 2, 1, 64);
    let doms: Vec<Dom> = (0..4).map(|i| shared(&format!("s{i}"), 2, 1)).collect();
    let o = plan(&t, &doms, Fill::Spread);
    assert_eq!(o.placed.len(), 4);
    assert!(
        o.warnings.iter().any(|w| w.contains("overcommit")
            && w.contains("8 shared vCPUs")
            && w.contains("4.0:1")),
        "{:?}",
        o.warnings
    );
    // the server profile's 2:1 takes two of them
    t.shared_overcommit = Some(2.0);
    let o = plan(&t, &doms, Fill::Spread);
    assert_eq!(o.placed.len(), 2, "{o:?}");
    assert!(
        o.unplaced
            .iter()
            .all(|u| u.why.contains("CPUs are the limit") && u.why.contains("overcommit of 2:1")),
        "{:?}",
        o.unplaced
    );
    // no warning when nothing is overcommitted
    let o = plan(&t, &doms[..1], Fill::Spread);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
}

#[test]
fn the_reason_names_the_resource_that_is_short() {
    let t = fixture_topo("b-book-2socket", "one-core-per-socket");
    // CPUs: 40 vCPUs, little memory
    let o = plan(&t, &[dom("cpu", 40, 1)], Fill::Spread);
    let why = &o.unplaced[0].why;
    assert!(
        why.contains("CPUs are the limit") && !why.contains("memory"),
        "{why}"
    );
    // memory: 1 vCPU, 200 GiB
    let o = plan(&t, &[dom("mem", 1, 200)], Fill::Spread);
    let why = &o.unplaced[0].why;
    assert!(
        why.contains("memory is the limit") && !why.contains("CPUs"),
        "{why}"
    );
    // on one node only (spanning not allowed): still the right one
    let p = Pass {
        assign: None,
        order: Order::Decreasing,
        first_fit: false,
        span: false,
        keep: false,
    };
    let o = run_pass(&t, &[dom("cpu", 20, 1)], &p, Fill::Spread);
    assert!(
        o.unplaced[0].why.contains("CPUs are the limit"),
        "{:?}",
        o.unplaced
    );
    let o = run_pass(&t, &[dom("mem", 1, 100)], &p, Fill::Spread);
    assert!(
        o.unplaced[0].why.contains("memory is the limit"),
        "{:?}",
        o.unplaced
    );
    // shared: memory
    let o = plan(&t, &[shared("s", 1, 100)], Fill::Spread);
    assert!(
        o.unplaced[0].why.contains("memory is the limit"),
        "{:?}",
        o.unplaced
    );
}

#[test]
fn isolation_as_the_limit_is_named_with_how_to_widen_it() {
    // 15 CPUs online, isolcpus=6,7,14
    let mut host = fixture_host("b-book-2socket");
    for c in &mut host.cpu.cpus {
        c.online = c.id < 15;
    }
    host.cpu.isolated = Some(kvmtune_host::CpuSet::parse("6,7,14").unwrap());
    let t = topo_from_host(&host, "one-core-per-socket").unwrap();
    assert_eq!(t.online, 15);
    assert_eq!(t.isolated, vec![6, 7, 14]);
    let o = plan(&t, &[dom("db", 4, 4)], Fill::Spread);
    let why = &o.unplaced[0].why;
    assert!(why.contains("isolation is the limit"), "{why}");
    assert!(why.contains("3 of the 15 online CPUs"), "{why}");
    assert!(
        why.contains("isolcpus=") && why.contains("--cpus shared"),
        "{why}"
    );
    assert!(!why.contains("the host has 3 CPUs"), "{why}");
}

#[test]
fn the_isolcpus_suggestion_keeps_cpu_0_and_the_reserved_cpus() {
    // --reserve none on a 2-CPU host, both CPUs dedicated: CPU 0 stays out, and it is said
    let t = generate::host(1, 2, 1, 64);
    let o = plan(&t, &[dom("a", 2, 1)], Fill::Spread);
    assert_eq!(o.placed[0].vcpus, vec![vec![0], vec![1]]);
    let s = o.isolcpus.as_deref().unwrap();
    assert!(s.starts_with("isolcpus=managed_irq,domain,1 "), "{s}");
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("CPU(s) 0 left out") && w.contains("--reserve none")),
        "{:?}",
        o.warnings
    );
    // a single dedicated CPU 0: no suggestion at all
    let t1 = generate::host(1, 1, 1, 64);
    let o = plan(&t1, &[dom("a", 1, 1)], Fill::Spread);
    assert_eq!(o.isolcpus, None);
    // the book host with its reserved cores: never 0, 8, 16 or 24
    let t = fixture_topo("b-book-2socket", "one-core-per-socket");
    let o = plan(&t, &[dom("a", 8, 4), dom("b", 8, 4)], Fill::Spread);
    let s = o.isolcpus.unwrap();
    let set = kvmtune_host::CpuSet::parse(
        s.trim_start_matches("isolcpus=managed_irq,domain,")
            .split(' ')
            .next()
            .unwrap(),
    )
    .unwrap();
    for c in [0, 8, 16, 24] {
        assert!(!set.contains(c), "{s}");
    }
}

mod svg_checks {
    use super::*;
    use crate::svg::{colour_pairs, contrast, render, text_width};
    use quick_xml::events::Event;

    struct Parsed {
        width: u32,
        texts: Vec<(f64, f64, u32, String)>,
        title: String,
        desc: String,
        aria: bool,
        fills: Vec<String>,
    }

    fn parse(svg: &str) -> Parsed {
        let mut r = quick_xml::Reader::from_str(svg);
        let mut out = Parsed {
            width: 0,
            texts: Vec::new(),
            title: String::new(),
            desc: String::new(),
            aria: false,
            fills: Vec::new(),
        };
        let mut stack: Vec<String> = Vec::new();
        let mut cur_text: Option<(f64, f64, u32)> = None;
        loop {
            match r.read_event().expect("well-formed XML") {
                Event::Start(e) | Event::Empty(e) if false => drop(e),
                Event::Start(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                    let attr = |k: &str| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == k.as_bytes())
                            .map(|a| String::from_utf8(a.value.to_vec()).unwrap())
                    };
                    if name == "svg" {
                        out.width = attr("width").unwrap().parse().unwrap();
                        out.aria = attr("role").as_deref() == Some("img")
                            && attr("aria-labelledby").is_some();
                    }
                    if name == "text" {
                        cur_text = Some((
                            attr("x").unwrap().parse().unwrap(),
                            attr("y").unwrap().parse().unwrap(),
                            attr("font-size").unwrap().parse().unwrap(),
                        ));
                    }
                    if name == "rect"
                        && let Some(f) = attr("fill")
                    {
                        out.fills.push(f);
                    }
                    stack.push(name);
                }
                Event::Empty(e) => {
                    if e.name().as_ref() == b"rect"
                        && let Some(a) =
                            e.attributes().flatten().find(|a| a.key.as_ref() == b"fill")
                    {
                        out.fills.push(String::from_utf8(a.value.to_vec()).unwrap());
                    }
                }
                Event::Text(t) => {
                    let s = t.decode().unwrap().to_string();
                    match stack.last().map(String::as_str) {
                        Some("text") => {
                            let (x, y, fs) = cur_text.unwrap();
                            out.texts.push((x, y, fs, s));
                        }
                        Some("title") if stack.len() == 2 => out.title = s,
                        Some("desc") => out.desc = s,
                        _ => {}
                    }
                }
                Event::End(_) => {
                    stack.pop();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        out
    }

    /// The book host with its book-like load: dedicated and shared domains, one too big.
    fn book_svg() -> (Topo, Outcome, String) {
        let t = fixture_topo("b-book-2socket", "one-core-per-socket");
        let doms = vec![
            dom("book-cacti-230", 4, 4),
            dom("lab-db-pinned-with-a-long-name", 2, 4),
            shared("web-1", 2, 2),
            shared("web-2", 2, 2),
            shared("web-3", 2, 2),
            shared("web-4", 2, 2),
            dom("too-big", 64, 4),
        ];
        let o = plan(&t, &doms, Fill::Pack);
        let svg = render(&t, &o);
        (t, o, svg)
    }

    #[test]
    fn every_svg_is_well_formed_titled_and_has_a_text_alternative() {
        let (_, o, svg) = book_svg();
        let p = parse(&svg);
        assert!(p.title.starts_with("kvmtune plan:"), "{}", p.title);
        assert!(p.aria);
        for d in &o.placed {
            assert!(p.desc.contains(&d.name), "{}", p.desc);
        }
        assert!(p.desc.contains("too-big not placed"), "{}", p.desc);
        // the lab-like 2-CPU host and an empty outcome too
        let t = generate::host(1, 2, 1, 8);
        for o in [
            plan(&t, &[shared("a", 2, 1)], Fill::Spread),
            plan(&t, &[], Fill::Spread),
        ] {
            let p = parse(&render(&t, &o));
            assert!(!p.title.is_empty() && p.aria);
        }
    }

    #[test]
    fn the_legend_fits_its_text() {
        let (_, _, svg) = book_svg();
        let p = parse(&svg);
        let legend = p
            .texts
            .iter()
            .find(|t| t.3.starts_with("lab-db-pinned-with-a-long-name ("))
            .expect("legend line");
        assert!(legend.3.ends_with(')'), "{}", legend.3);
        for (x, _, fs, s) in &p.texts {
            assert!(
                *x as u32 + text_width(s, *fs) <= p.width,
                "{s:?} at {x} overflows width {}",
                p.width
            );
        }
    }

    #[test]
    fn no_two_texts_overlap() {
        let (_, _, svg) = book_svg();
        let mut all = vec![svg];
        // one thread per core, two-digit core ids: labels wider than the squares
        let t = generate::host(2, 12, 1, 8);
        all.push(render(&t, &plan(&t, &[dom("a", 3, 1)], Fill::Spread)));
        let t = fixture_topo("c-epyc-sparse", "none");
        all.push(render(
            &t,
            &plan(&t, &[dom("a", 3, 1), shared("b", 2, 1)], Fill::Spread),
        ));
        let t = fixture_topo("e-4node-asym", "one-core-per-socket");
        all.push(render(&t, &plan(&t, &[dom("wide", 14, 8)], Fill::Spread)));
        for svg in all {
            let p = parse(&svg);
            let boxes: Vec<(f64, f64, f64, f64, &str)> = p
                .texts
                .iter()
                .map(|(x, y, fs, s)| {
                    let w = text_width(s, *fs) as f64;
                    // baseline y: the glyphs sit above it, descenders a little below
                    (
                        *x,
                        *y - *fs as f64 * 0.8,
                        *x + w,
                        *y + *fs as f64 * 0.2,
                        s.as_str(),
                    )
                })
                .collect();
            for (i, a) in boxes.iter().enumerate() {
                for b in &boxes[i + 1..] {
                    let apart = a.2 <= b.0 || b.2 <= a.0 || a.3 <= b.1 || b.3 <= a.1;
                    assert!(apart, "{:?} overlaps {:?}", a.4, b.4);
                }
            }
        }
    }

    #[test]
    fn a_cpu_shared_by_several_domains_is_drawn_as_shared_not_free() {
        // the lab: 2 CPUs, four shared domains
        let t = generate::host(1, 2, 1, 64);
        let doms: Vec<Dom> = (0..4).map(|i| shared(&format!("lab-{i}"), 2, 1)).collect();
        let o = plan(&t, &doms, Fill::Spread);
        let svg = render(&t, &o);
        assert!(!svg.contains(": free</title>"), "{svg}");
        assert_eq!(svg.matches("shared by 4 domain(s)").count(), 2, "{svg}");
        let p = parse(&svg);
        assert_eq!(p.texts.iter().filter(|t| t.3 == "×4").count(), 2);
        assert!(p.fills.iter().filter(|f| *f == "url(#shared)").count() >= 3);
        assert!(
            p.texts
                .iter()
                .any(|t| t.3.starts_with("shared by several domains"))
        );
    }

    #[test]
    fn every_fill_and_text_colour_pair_has_a_contrast_of_at_least_4_5() {
        for (fill, text) in colour_pairs() {
            let c = contrast(fill, text).unwrap();
            assert!(c >= 4.5, "{text} on {fill}: {c:.2}");
        }
        // and the picture uses no other text colour
        let (_, _, svg) = book_svg();
        for part in svg.split("<text ").skip(1) {
            let fill = part
                .split("fill=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            assert!(
                colour_pairs().iter().any(|(_, t)| *t == fill),
                "text colour {fill}"
            );
        }
        assert!((contrast("#ffffff", "#000000").unwrap() - 21.0).abs() < 0.01);
    }
}

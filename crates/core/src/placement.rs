//! The placement planner on an inventory: domains as the planner sees them, the host's
//! topology, the outcome, and the plan file `kvmtune apply --plan` carries out.

use std::collections::BTreeMap;

use kvmtune_apply::plan::{Plan, PlanCell, PlanDomain, PlanNuma};
use kvmtune_domain::Domain;
use kvmtune_host::{CpuSet, Host};
use kvmtune_planner::{CpuPolicy, Dom, Fill, Outcome, Policy, Topo};

use crate::inventory::Inventory;
use crate::{Error, Result};

/// What to plan: the policy for every domain, per-domain overrides, and the CPUs kept for
/// the host.
#[derive(Debug, Clone)]
pub struct Request {
    pub policy: Policy,
    pub fill: Fill,
    /// Policies of single domains, by name (they must be among those planned).
    pub overrides: BTreeMap<String, Policy>,
    /// `one-core-per-socket`, `none`, or a cpuset.
    pub reserve: String,
    /// Most shared vCPUs per host CPU of a node (the profile's `vcpu_overcommit`); `None`:
    /// no bound.
    pub shared_overcommit: Option<f64>,
}

/// A placement and its plan.
#[derive(Debug, Clone)]
pub struct Placed {
    pub topology: Topo,
    pub outcome: Outcome,
    pub plan: Plan,
}

/// A domain as the planner sees it: vCPUs, memory, hugepage size, current pins.
pub fn dom_of(d: &Domain, host: &Host, policy: Policy) -> Dom {
    let page_kib = d.memory_backing.as_ref().filter(|m| m.hugepages).map(|m| {
        m.pages
            .iter()
            .find_map(|pg| pg.size_kib)
            .or(host.memory.default_hugepage_kib)
            .unwrap_or(2048)
    });
    let mut pins = BTreeMap::new();
    let mut emulator_pin = None;
    if let Some(ct) = &d.cputune {
        for pin in &ct.vcpupin {
            if let (Some(id), Ok(set)) = (pin.id, CpuSet::parse(&pin.cpuset)) {
                pins.insert(id, set.iter().collect());
            }
        }
        emulator_pin = ct
            .emulatorpin
            .as_ref()
            .and_then(|e| CpuSet::parse(&e.cpuset).ok())
            .map(|s| s.iter().collect());
    }
    Dom {
        name: d.name.clone(),
        vcpus: d.vcpu.max,
        memory_kib: d.memory_kib.unwrap_or(0),
        page_kib,
        pins,
        emulator_pin,
        policy,
    }
}

/// Place every domain of the inventory on its host.
pub fn place(inv: &Inventory, req: &Request) -> Result<Placed> {
    if inv.domains.is_empty() {
        return Err(Error::msg("no domain to place"));
    }
    for name in req.overrides.keys() {
        if inv.domain(name).is_none() {
            return Err(Error::msg(format!(
                "--policy {name}:...: no such domain among those planned"
            )));
        }
    }
    let host = inv
        .host
        .as_ref()
        .ok_or_else(|| Error::msg("no host facts to plan against"))?;
    let mut topology = kvmtune_planner::topo_from_host(host, &req.reserve).map_err(Error::Msg)?;
    topology.shared_overcommit = req.shared_overcommit;
    // a domain whose vCPU count or memory cannot be understood is not placed as 1 vCPU or
    // 0 MiB: it is refused with the reason
    let mut refused = Vec::new();
    let doms: Vec<Dom> = inv
        .domains
        .iter()
        .filter(|p| {
            if p.domain.invalid.is_empty() {
                return true;
            }
            let why: Vec<String> = p
                .domain
                .invalid
                .iter()
                .map(|i| format!("{} is {:?}: {}", i.path, i.value.trim(), i.why))
                .collect();
            refused.push(kvmtune_planner::Unplaced {
                name: p.domain.name.clone(),
                why: format!("not planned: {}", why.join("; ")),
            });
            false
        })
        .map(|p| {
            let pol = req
                .overrides
                .get(&p.domain.name)
                .copied()
                .unwrap_or(req.policy);
            dom_of(&p.domain, host, pol)
        })
        .collect();
    let (held, held_pages) = held_memory(inv, host, &doms);
    if free_memory_applies(inv) {
        kvmtune_planner::use_free_memory(&mut topology, host, &held, &held_pages);
    }
    let mut outcome = kvmtune_planner::plan(&topology, &doms, req.fill);
    outcome.unplaced.extend(refused);
    let plan = to_plan_with(&outcome, inv, host, &held_pages);
    Ok(Placed {
        topology,
        outcome,
        plan,
    })
}

/// Whether node memory is what is free now: when every domain planned comes from the host
/// itself (a libvirt connection or a bundle), whose running domains are known. Domain files
/// against a host tree may or may not run there: the nodes' capacity is used instead.
pub fn free_memory_applies(inv: &Inventory) -> bool {
    !inv.domains.is_empty()
        && inv
            .domains
            .iter()
            .all(|p| p.from_libvirt() || p.origin.starts_with("bundle:"))
}

/// The node a running domain's memory is on, as far as its definition tells: its
/// `<numatune><memory>` nodeset when that is one node, else the node all its vCPU pins are
/// on. `None` when neither tells one node (its memory is then not counted anywhere: the
/// free memory is under- rather than over-stated).
fn home_node(d: &Domain, dom: &Dom, host: &Host) -> Option<u32> {
    if let Some(ns) = d
        .numatune
        .as_ref()
        .and_then(|n| n.memory.as_ref())
        .and_then(|m| m.nodeset.as_deref())
        .and_then(|s| CpuSet::parse(s).ok())
    {
        let v: Vec<u32> = ns.iter().collect();
        return (v.len() == 1).then(|| v[0]);
    }
    let mut nodes = dom.pins.values().flatten().map(|c| {
        host.numa
            .nodes
            .iter()
            .find(|n| n.cpus.contains(*c))
            .map(|n| n.id)
    });
    let first = nodes.next()??;
    nodes.all(|n| n == Some(first)).then_some(first)
}

/// Memory the running domains being planned hold now, by node: ordinary memory (KiB) and
/// hugepages ((node, page KiB) → pages). Their configured memory, on their `home_node`;
/// on a one-node host, node 0 (or that node).
pub fn held_memory(
    inv: &Inventory,
    host: &Host,
    doms: &[Dom],
) -> (BTreeMap<u32, u64>, BTreeMap<(u32, u64), u64>) {
    let mut held = BTreeMap::new();
    let mut pages = BTreeMap::new();
    for d in doms {
        let Some(p) = inv.domain(&d.name).filter(|p| p.active) else {
            continue;
        };
        let node = if host.numa.nodes.len() == 1 {
            Some(host.numa.nodes[0].id)
        } else {
            home_node(&p.domain, d, host)
        };
        let Some(node) = node else { continue };
        match d.page_kib.filter(|&s| s > 4) {
            Some(size) => {
                *pages.entry((node, size)).or_insert(0) += d.memory_kib.div_ceil(size);
            }
            None => *held.entry(node).or_insert(0) += d.memory_kib,
        }
    }
    (held, pages)
}

pub fn cpus(list: &[u32]) -> String {
    let mut s = CpuSet::new();
    for c in list {
        s.insert(*c);
    }
    s.to_string()
}

/// The plan file of an outcome: pins, NUMA nodes, guest cells and topology per placed
/// domain, and the hugepage pools each node lacks.
pub fn to_plan(o: &Outcome, inv: &Inventory, host: &Host) -> Plan {
    to_plan_with(o, inv, host, &BTreeMap::new())
}

/// [`to_plan`], knowing the hugepages the planned running domains hold ((node, page KiB) →
/// pages): a node's pool grows by what the placed domains need beyond its free pages and
/// those held ones (the pool total says nothing of what is in use).
pub fn to_plan_with(
    o: &Outcome,
    inv: &Inventory,
    host: &Host,
    held_pages: &BTreeMap<(u32, u64), u64>,
) -> Plan {
    let mut plan = Plan::new();
    for p in &o.placed {
        let Some(src) = inv.domain(&p.name) else {
            continue;
        };
        let dedicated = p.policy.cpus == CpuPolicy::Dedicated;
        let cells: Vec<PlanCell> = p
            .cells
            .iter()
            .map(|c| PlanCell {
                id: c.id,
                cpus: cpus(&c.vcpus),
                memory_kib: c.memory_kib,
                nodeset: c.node.to_string(),
            })
            .collect();
        let n = p.vcpus.len() as u32;
        let topology = (!cells.is_empty()).then(|| {
            let k = cells.len() as u32;
            if n.is_multiple_of(k) {
                [k, n / k, 1]
            } else {
                [1, n, 1]
            }
        });
        let nodes: Vec<String> = p.nodes.iter().map(u32::to_string).collect();
        plan.domains.push(PlanDomain {
            name: p.name.clone(),
            base_sha256: src.from_libvirt().then(|| kvmtune_apply::sha256(&src.text)),
            vcpupin: p
                .vcpus
                .iter()
                .enumerate()
                .map(|(i, c)| (i as u32, cpus(c)))
                .collect(),
            emulatorpin: Some(cpus(&p.emulator)),
            numatune: Some(PlanNuma {
                mode: Some("strict".into()),
                nodeset: nodes.join(","),
            }),
            cells,
            topology,
            reasons: vec![format!(
                "{} on node {}{}",
                if dedicated {
                    "dedicated CPUs"
                } else {
                    "shared CPUs"
                },
                nodes.join("+"),
                if p.kept { " (kept as pinned)" } else { "" }
            )],
            ..PlanDomain::default()
        });
    }
    for (k, v) in &o.host {
        plan.host.insert(k.clone(), v.clone());
    }
    for need in &o.pools {
        let (total, free) = host
            .numa
            .nodes
            .iter()
            .find(|n| n.id == need.node)
            .and_then(|n| n.hugepages.iter().find(|h| h.size_kib == need.page_kib))
            .map(|h| (h.total, h.free))
            .unwrap_or((0, 0));
        let held = held_pages
            .get(&(need.node, need.page_kib))
            .copied()
            .unwrap_or(0);
        let usable = (free + held).min(total.max(free));
        if need.pages > usable {
            plan.host.insert(
                format!("hugepages.node{}.{}kB", need.node, need.page_kib),
                (total + need.pages - usable).to_string(),
            );
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Origin, Select};
    use kvmtune_planner::{EmulatorPolicy, SmtPolicy};

    fn book_host_inventory(xmls: &[&str]) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let mut targets = Vec::new();
        for (i, x) in xmls.iter().enumerate() {
            let f = d.path().join(format!("d{i}.xml"));
            std::fs::write(&f, x).unwrap();
            targets.push(f.display().to_string());
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/hosts/b-book-2socket/root");
        let origin = Origin {
            connect: "test:///default".into(),
            root: Some(root),
            from: None,
        };
        let sel = Select {
            targets,
            host_for_files: true,
            ..Select::default()
        };
        (d, Inventory::gather(&origin, &sel).unwrap())
    }

    const POLICY: Policy = Policy {
        cpus: CpuPolicy::Dedicated,
        smt: SmtPolicy::Prefer,
        emulator: EmulatorPolicy::Housekeeping,
    };

    #[test]
    fn domains_become_planner_input_with_their_pins_and_pages() {
        let xml = "<domain type='kvm'><name>a</name><memory>4194304</memory><vcpu>2</vcpu>\
            <cputune><vcpupin vcpu='0' cpuset='2'/><vcpupin vcpu='1' cpuset='3-4'/>\
            <emulatorpin cpuset='0'/></cputune>\
            <memoryBacking><hugepages><page size='1' unit='G'/></hugepages></memoryBacking>\
            </domain>";
        let (_d, inv) = book_host_inventory(&[xml]);
        let host = inv.host.as_ref().unwrap();
        let dom = dom_of(&inv.domains[0].domain, host, POLICY);
        assert_eq!(dom.vcpus, 2);
        assert_eq!(dom.memory_kib, 4194304);
        assert_eq!(dom.page_kib, Some(1048576));
        assert_eq!(dom.pins.get(&1), Some(&vec![3, 4]));
        assert_eq!(dom.emulator_pin, Some(vec![0]));
    }

    #[test]
    fn a_placement_gives_a_plan_entry_per_placed_domain() {
        let xml = |n: &str| {
            format!(
                "<domain type='kvm'><name>{n}</name><memory>2097152</memory><vcpu>2</vcpu></domain>"
            )
        };
        let (_d, inv) = book_host_inventory(&[&xml("a"), &xml("b")]);
        let req = Request {
            policy: POLICY,
            fill: Fill::Spread,
            overrides: BTreeMap::new(),
            reserve: "one-core-per-socket".into(),
            shared_overcommit: None,
        };
        let placed = place(&inv, &req).unwrap();
        assert_eq!(placed.outcome.placed.len(), 2);
        assert_eq!(placed.plan.domains.len(), 2);
        for d in &placed.plan.domains {
            assert_eq!(d.vcpupin.len(), 2, "{d:?}");
            assert!(d.base_sha256.is_none(), "files have no stored XML to guard");
        }
        // absurd values are refused with the reason, not planned as 1 vCPU / 0 MiB
        let (_d2, inv2) = book_host_inventory(&[
            &xml("ok"),
            "<domain type='kvm'><name>huge</name><memory>1048576</memory>\
             <vcpu>18446744073709551616</vcpu></domain>",
            "<domain type='kvm'><name>neg</name><memory>-5</memory><vcpu>2</vcpu></domain>",
        ]);
        let p2 = place(&inv2, &req).unwrap();
        assert_eq!(p2.plan.domains.len(), 1);
        assert_eq!(p2.outcome.unplaced.len(), 2, "{:?}", p2.outcome.unplaced);
        assert!(
            p2.outcome
                .unplaced
                .iter()
                .any(|u| u.name == "huge" && u.why.contains("/domain/vcpu"))
        );
        assert!(
            p2.outcome
                .unplaced
                .iter()
                .any(|u| u.name == "neg" && u.why.contains("negative"))
        );
        let mut bad = req.clone();
        bad.overrides.insert("nope".into(), POLICY);
        let e = place(&inv, &bad).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn running_domains_memory_is_counted_where_it_is_and_files_plan_against_capacity() {
        let xml = |n: &str, gib: u64, numa: &str| {
            format!(
                "<domain type='kvm'><name>{n}</name><memory>{}</memory><vcpu>2</vcpu>{numa}</domain>",
                gib << 20
            )
        };
        let numa1 = "<numatune><memory mode='strict' nodeset='1'/></numatune>";
        let (_d, mut inv) = book_host_inventory(&[
            &xml("run", 8, numa1),
            &xml("new", 4, ""),
            &xml("new2", 4, ""),
        ]);
        let req = Request {
            policy: POLICY,
            fill: Fill::Spread,
            overrides: BTreeMap::new(),
            reserve: "one-core-per-socket".into(),
            shared_overcommit: None,
        };
        // files: whether they run is unknown, the nodes' capacity counts (60 GiB each)
        assert!(!free_memory_applies(&inv));
        let p = place(&inv, &req).unwrap();
        assert!(!p.topology.memory_free_now);
        assert_eq!(p.outcome.placed.len(), 3, "{:?}", p.outcome.unplaced);
        // the same domains from libvirt, "run" running on node 1: node 0 has 689 MiB free,
        // node 1 4829 MiB free plus the 8 GiB "run" holds there
        for d in &mut inv.domains {
            d.origin = format!("libvirt:{}", d.domain.name);
            d.active = d.domain.name == "run";
        }
        assert!(free_memory_applies(&inv));
        let p = place(&inv, &req).unwrap();
        assert!(p.topology.memory_free_now);
        assert_eq!(p.topology.nodes[0].memory_kib, 705536);
        assert_eq!(p.topology.nodes[1].memory_kib, 4944896 + (8 << 20));
        let placed: Vec<&str> = p.outcome.placed.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(placed, vec!["run", "new"], "{:?}", p.outcome);
        let why = &p.outcome.unplaced[0].why;
        assert!(why.contains("memory is the limit"), "{why}");
    }

    #[test]
    fn a_hugepage_pool_grows_by_the_need_beyond_its_free_pages() {
        let (_d, inv) = book_host_inventory(&[]);
        let mut host = inv.host.clone().unwrap();
        // node 0: 2048 pages of 2 MiB, 1024 of them free
        let pool = host.numa.nodes[0]
            .hugepages
            .iter_mut()
            .find(|h| h.size_kib == 2048)
            .unwrap();
        pool.total = 2048;
        pool.free = 1024;
        let o = Outcome {
            placed: Vec::new(),
            unplaced: Vec::new(),
            pools: vec![kvmtune_planner::PoolNeed {
                node: 0,
                page_kib: 2048,
                pages: 1536,
            }],
            score: kvmtune_planner::Score {
                placed: 0,
                spanning: 0,
                moved: 0,
            },
            host: BTreeMap::new(),
            isolcpus: None,
            warnings: Vec::new(),
        };
        // 1536 pages needed, 1024 free: the pool total was enough, the free pages are not
        let plan = to_plan(&o, &inv, &host);
        assert_eq!(
            plan.host.get("hugepages.node0.2048kB").map(String::as_str),
            Some("2560")
        );
        // 512 of the needed pages are already held by a planned running domain there
        let mut held = BTreeMap::new();
        held.insert((0u32, 2048u64), 512u64);
        let plan = to_plan_with(&o, &inv, &host, &held);
        assert_eq!(plan.host.get("hugepages.node0.2048kB"), None);
    }
}

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
    let topology = kvmtune_planner::topo_from_host(host, &req.reserve).map_err(Error::Msg)?;
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
    let mut outcome = kvmtune_planner::plan(&topology, &doms, req.fill);
    outcome.unplaced.extend(refused);
    let plan = to_plan(&outcome, inv, host);
    Ok(Placed {
        topology,
        outcome,
        plan,
    })
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
        let have = host
            .numa
            .nodes
            .iter()
            .find(|n| n.id == need.node)
            .and_then(|n| n.hugepages.iter().find(|h| h.size_kib == need.page_kib))
            .map(|h| h.total)
            .unwrap_or(0);
        if need.pages > have {
            plan.host.insert(
                format!("hugepages.node{}.{}kB", need.node, need.page_kib),
                need.pages.to_string(),
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
}

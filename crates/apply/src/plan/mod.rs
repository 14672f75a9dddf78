//! Plan files (`kvmtune.plan`, version 1): what `kvmtune apply --plan FILE` carries out.
//! `kvmtune apply --save-plan` writes one from audit fixes; the placement planner writes
//! them too. Every field of a domain is optional; what is absent is left as it is.
//!
//! ```json
//! {
//!   "kind": "kvmtune.plan", "version": 1,
//!   "domains": [{
//!     "name": "db1",
//!     "base_sha256": "9f2c…",          // the stored XML it was made from: apply refuses otherwise
//!     "config_xml": "<domain …>",       // a whole new stored definition
//!     "vcpus": 4,
//!     "vcpupin": {"0": "2", "1": "3"},
//!     "emulatorpin": "0",
//!     "numatune": {"mode": "strict", "nodeset": "0"},
//!     "memtune": {"hard_limit_kib": 8388608},
//!     "current_memory_kib": 4194304,
//!     "reasons": ["planner: fits node 0"]
//!   }],
//!   "host": {"ksm.merge_across_nodes": "0", "numa_balancing": "0"}
//! }
//! ```

use std::collections::BTreeMap;

use kvmtune_domain::Domain;
use kvmtune_domain::edit::{Edit, Seg, apply};
use kvmtune_libvirt::{MEMTUNE_UNLIMITED_KIB, MemTuneSet};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

mod request;

pub use request::{changes, validate};

pub const KIND: &str = "kvmtune.plan";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNuma {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub nodeset: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDomain {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_xml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vcpupin: BTreeMap<u32, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulatorpin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numatune: Option<PlanNuma>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memtune: Option<MemTuneSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_memory_kib: Option<u64>,
    /// Guest NUMA cells (a domain spread over host nodes): `<cpu><numa><cell>` plus a
    /// `<numatune><memnode>` binding each cell's memory to its host node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<PlanCell>,
    /// `<cpu><topology>` matching the cells: sockets, cores, threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<[u32; 3]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanCell {
    pub id: u32,
    /// Guest vCPUs of the cell (`0-3`).
    pub cpus: String,
    pub memory_kib: u64,
    /// Host node(s) its memory is bound to.
    pub nodeset: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub kind: String,
    pub version: u32,
    #[serde(default)]
    pub domains: Vec<PlanDomain>,
    /// Host settings, `KEY: VALUE` as for `--set`.
    #[serde(default)]
    pub host: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan {path}: {why}")]
    Bad { path: String, why: String },
    #[error("plan {0}")]
    Read(kvmtune_host::fsio::ReadError),
    /// A setting that makes no sense for the domain or this host: `plan.json: domain web1:
    /// vcpupin 99999: no such vCPU (the domain has 4)`.
    #[error("{file}: {what}: {why}")]
    Invalid {
        file: String,
        what: String,
        why: String,
    },
    #[error("plan names domain {name}, which this libvirt ({uri}) does not have")]
    NoDomain { name: String, uri: String },
    #[error(
        "domain {0}: its stored XML changed since the plan was made (hash differs); plan again"
    )]
    Changed(String),
    #[error("domain {name}: {why}")]
    Domain { name: String, why: String },
    #[error(transparent)]
    Libvirt(#[from] kvmtune_libvirt::LibvirtError),
    #[error(transparent)]
    Xml(#[from] kvmtune_domain::DomainError),
}

impl Plan {
    pub fn new() -> Plan {
        Plan {
            kind: KIND.into(),
            version: VERSION,
            domains: Vec::new(),
            host: BTreeMap::new(),
        }
    }

    /// Read and check a plan file.
    pub fn read(path: &std::path::Path) -> Result<Plan, PlanError> {
        let bad = |why: String| PlanError::Bad {
            path: path.display().to_string(),
            why,
        };
        let text = kvmtune_host::fsio::read_input_text(path).map_err(PlanError::Read)?;
        let plan: Plan = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if plan.kind != KIND {
            return Err(bad(format!("kind is {:?}, not {KIND:?}", plan.kind)));
        }
        if plan.version > VERSION {
            return Err(bad(format!(
                "version {} is newer than this kvmtune reads ({VERSION})",
                plan.version
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &plan.domains {
            if !seen.insert(&d.name) {
                return Err(bad(format!("domain {} appears twice", d.name)));
            }
            for (v, c) in &d.vcpupin {
                kvmtune_host::CpuSet::parse(c)
                    .map_err(|e| bad(format!("{}: vcpupin {v}: {e}", d.name)))?;
            }
            if let Some(c) = &d.emulatorpin {
                kvmtune_host::CpuSet::parse(c)
                    .map_err(|e| bad(format!("{}: emulatorpin: {e}", d.name)))?;
            }
        }
        Ok(plan)
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

/// The stored XML with the plan's settings written into it.
pub fn apply_to_xml(xml: &str, p: &PlanDomain) -> Result<String, String> {
    if let Some(x) = &p.config_xml {
        return Ok(x.clone());
    }
    let (mut doc, d) = Domain::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root();
    let mut edits = Vec::new();
    if let Some(n) = p.vcpus {
        if n > d.vcpu.max {
            return Err(format!(
                "{} vCPUs asked, the domain's maximum is {}",
                n, d.vcpu.max
            ));
        }
        let vcpu = d.vcpu.node.ok_or("no <vcpu> element")?;
        if n == d.vcpu.max {
            edits.push(Edit::unset(&doc, vcpu, "current"));
        } else {
            edits.push(Edit::set(&doc, vcpu, "current", &n.to_string()));
        }
    }
    for (v, cpus) in &p.vcpupin {
        edits.push(Edit::set_at(
            &doc,
            root,
            vec![
                Seg::new("cputune"),
                Seg::keyed("vcpupin", "vcpu", &v.to_string()),
            ],
            "cpuset",
            cpus,
        ));
    }
    if let Some(c) = &p.emulatorpin {
        edits.push(Edit::set_at(
            &doc,
            root,
            vec![Seg::new("cputune"), Seg::new("emulatorpin")],
            "cpuset",
            c,
        ));
    }
    if let Some(n) = &p.numatune {
        let segs = vec![Seg::new("numatune"), Seg::new("memory")];
        if let Some(m) = &n.mode {
            edits.push(Edit::set_at(&doc, root, segs.clone(), "mode", m));
        }
        edits.push(Edit::set_at(&doc, root, segs, "nodeset", &n.nodeset));
    }
    if let Some(m) = &p.memtune {
        for (el, v) in [
            ("hard_limit", m.hard_limit_kib),
            ("soft_limit", m.soft_limit_kib),
            ("swap_hard_limit", m.swap_hard_limit_kib),
        ] {
            match v {
                None => {}
                Some(MEMTUNE_UNLIMITED_KIB) => {
                    if let Some(node) = doc.descend(root, &["memtune", el]) {
                        edits.push(Edit::remove(&doc, node));
                    }
                }
                Some(k) => {
                    let segs = vec![Seg::new("memtune"), Seg::new(el)];
                    edits.push(Edit::text_at(&doc, root, segs.clone(), &k.to_string()));
                    edits.push(Edit::set_at(&doc, root, segs, "unit", "KiB"));
                }
            }
        }
    }
    for c in &p.cells {
        let cell = vec![
            Seg::new("cpu"),
            Seg::new("numa"),
            Seg::keyed("cell", "id", &c.id.to_string()),
        ];
        edits.push(Edit::set_at(&doc, root, cell.clone(), "cpus", &c.cpus));
        edits.push(Edit::set_at(
            &doc,
            root,
            cell.clone(),
            "memory",
            &c.memory_kib.to_string(),
        ));
        edits.push(Edit::set_at(&doc, root, cell, "unit", "KiB"));
        let mn = vec![
            Seg::new("numatune"),
            Seg::keyed("memnode", "cellid", &c.id.to_string()),
        ];
        edits.push(Edit::set_at(&doc, root, mn.clone(), "mode", "strict"));
        edits.push(Edit::set_at(&doc, root, mn, "nodeset", &c.nodeset));
    }
    if let Some([s, c, t]) = p.topology {
        let topo = vec![Seg::new("cpu"), Seg::new("topology")];
        edits.push(Edit::set_at(
            &doc,
            root,
            topo.clone(),
            "sockets",
            &s.to_string(),
        ));
        edits.push(Edit::set_at(&doc, root, topo.clone(), "dies", "1"));
        edits.push(Edit::set_at(
            &doc,
            root,
            topo.clone(),
            "cores",
            &c.to_string(),
        ));
        edits.push(Edit::set_at(&doc, root, topo, "threads", &t.to_string()));
    }
    if let Some(k) = p.current_memory_kib {
        let segs = vec![Seg::new("currentMemory")];
        edits.push(Edit::text_at(&doc, root, segs.clone(), &k.to_string()));
        edits.push(Edit::set_at(&doc, root, segs, "unit", "KiB"));
    }
    apply(&mut doc, &edits);
    Ok(doc.serialize())
}

/// The settings the running domain should end with: its live settings, with every setting
/// the change altered in the stored definition (`old_cfg` -> `new_cfg`) taken over. Live
/// settings nobody asked to change stay as they are.
pub fn live_target(live: &Settings, old_cfg: &Settings, new_cfg: &Settings) -> Settings {
    let mut t = live.clone();
    macro_rules! take {
        ($($f:ident),*) => {$(
            if new_cfg.$f != old_cfg.$f {
                t.$f = new_cfg.$f.clone();
            }
        )*};
    }
    take!(
        vcpus,
        vcpu_cpuset,
        emulatorpin,
        numa_mode,
        numa_nodeset,
        hard_limit_kib,
        soft_limit_kib,
        swap_hard_limit_kib,
        current_memory_kib
    );
    let keys: std::collections::BTreeSet<u32> = old_cfg
        .vcpupin
        .keys()
        .chain(new_cfg.vcpupin.keys())
        .copied()
        .collect();
    for k in keys {
        let (o, n) = (old_cfg.vcpupin.get(&k), new_cfg.vcpupin.get(&k));
        if o != n {
            match n {
                Some(c) => {
                    t.vcpupin.insert(k, c.clone());
                }
                None => {
                    t.vcpupin.remove(&k);
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::read_xml;

    const XML: &str = "<domain type='kvm'>\n  <name>db</name>\n  <memory unit='KiB'>1048576</memory>\n  <vcpu placement='static' current='2'>4</vcpu>\n  <os>\n    <type>hvm</type>\n  </os>\n  <devices/>\n</domain>\n";

    #[test]
    fn plan_settings_go_into_the_stored_xml() {
        let p = PlanDomain {
            name: "db".into(),
            vcpus: Some(4),
            vcpupin: [(0, "2".into()), (1, "3".into())].into(),
            emulatorpin: Some("0".into()),
            numatune: Some(PlanNuma {
                mode: Some("strict".into()),
                nodeset: "0".into(),
            }),
            memtune: Some(MemTuneSet {
                hard_limit_kib: Some(2097152),
                ..MemTuneSet::default()
            }),
            ..PlanDomain::default()
        };
        let out = apply_to_xml(XML, &p).unwrap();
        let s = read_xml(&out).unwrap();
        assert_eq!(s.vcpus, 4);
        assert_eq!(s.vcpupin.get(&1).map(String::as_str), Some("3"));
        assert_eq!(s.emulatorpin.as_deref(), Some("0"));
        assert_eq!(s.numa_nodeset.as_deref(), Some("0"));
        assert_eq!(s.hard_limit_kib, Some(2097152));
        // libvirt's element order: cputune and numatune before <os>
        assert!(
            out.find("<cputune>").unwrap() < out.find("<os>").unwrap(),
            "{out}"
        );
        // applying again changes nothing
        assert_eq!(apply_to_xml(&out, &p).unwrap(), out);
        let too_many = PlanDomain {
            vcpus: Some(8),
            ..p.clone()
        };
        assert!(
            apply_to_xml(XML, &too_many)
                .unwrap_err()
                .contains("maximum is 4")
        );
    }

    #[test]
    fn guest_cells_and_topology_go_into_cpu_and_numatune() {
        let p = PlanDomain {
            name: "db".into(),
            cells: vec![
                PlanCell {
                    id: 0,
                    cpus: "0-1".into(),
                    memory_kib: 524288,
                    nodeset: "0".into(),
                },
                PlanCell {
                    id: 1,
                    cpus: "2-3".into(),
                    memory_kib: 524288,
                    nodeset: "1".into(),
                },
            ],
            topology: Some([2, 2, 1]),
            ..PlanDomain::default()
        };
        let out = apply_to_xml(XML, &p).unwrap();
        assert!(
            out.contains("<cell id='1' cpus='2-3' memory='524288' unit='KiB'/>"),
            "{out}"
        );
        assert!(
            out.contains("<memnode cellid='1' mode='strict' nodeset='1'/>"),
            "{out}"
        );
        assert!(
            out.contains("<topology sockets='2' dies='1' cores='2' threads='1'/>"),
            "{out}"
        );
        assert_eq!(apply_to_xml(&out, &p).unwrap(), out);
    }

    #[test]
    fn live_target_takes_only_what_changed() {
        let old = read_xml(XML).unwrap();
        let mut live = old.clone();
        live.vcpus = 3; // hot-plugged by the admin: not ours to undo
        let mut new = old.clone();
        new.vcpupin.insert(0, "1".into());
        let t = live_target(&live, &old, &new);
        assert_eq!(t.vcpus, 3);
        assert_eq!(t.vcpupin.get(&0).map(String::as_str), Some("1"));
    }

    #[test]
    fn bad_plans_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("p.json");
        for (text, want) in [
            ("{", "EOF"),
            (r#"{"kind":"x","version":1}"#, "kind"),
            (r#"{"kind":"kvmtune.plan","version":9}"#, "newer"),
            (
                r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"a"},{"name":"a"}]}"#,
                "twice",
            ),
            (
                r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"a","vcpupin":{"0":"x"}}]}"#,
                "vcpupin 0",
            ),
            (
                r#"{"kind":"kvmtune.plan","version":1,"domains":[{"name":"a","vcpu":2}]}"#,
                "unknown field",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = Plan::read(&f).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}

//! vCPUs and their tuning: `<vcpu>`, `<cputune>` (pins, scheduling, quotas) and `<cpu>`
//! (mode, model, topology, features, guest NUMA cells).

use super::{num, owned, to_kib, yes};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Vcpu {
    #[serde(skip)]
    pub node: Option<NodeId>,
    /// Maximum vCPUs (the element's text); 1 when `<vcpu>` is absent, as libvirt assumes.
    pub max: u32,
    pub current: Option<u32>,
    pub placement: Option<String>,
    pub cpuset: Option<String>,
}

impl Vcpu {
    /// vCPUs online at boot.
    pub fn online(&self) -> u32 {
        self.current.unwrap_or(self.max)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    #[serde(skip)]
    pub node: NodeId,
    /// vcpu or iothread id; `None` for emulatorpin.
    pub id: Option<u32>,
    pub cpuset: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuTune {
    #[serde(skip)]
    pub node: NodeId,
    pub vcpupin: Vec<Pin>,
    pub emulatorpin: Option<Pin>,
    pub iothreadpin: Vec<Pin>,
    pub shares: Option<u64>,
    pub period: Option<u64>,
    pub quota: Option<i64>,
    pub emulator_period: Option<u64>,
    pub emulator_quota: Option<i64>,
    /// `<vcpusched scheduler=...>` values.
    pub vcpusched: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuFeature {
    #[serde(skip)]
    pub node: NodeId,
    pub policy: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    #[serde(skip)]
    pub node: NodeId,
    pub sockets: Option<u32>,
    pub dies: Option<u32>,
    pub clusters: Option<u32>,
    pub cores: Option<u32>,
    pub threads: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    #[serde(skip)]
    pub node: NodeId,
    pub id: Option<u32>,
    pub cpus: Option<String>,
    pub memory_kib: Option<u64>,
    pub mem_access: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    #[serde(skip)]
    pub node: NodeId,
    /// `custom` when absent, as libvirt assumes.
    pub mode: Option<String>,
    pub match_: Option<String>,
    pub check: Option<String>,
    pub migratable: Option<bool>,
    #[serde(skip)]
    pub model_node: Option<NodeId>,
    pub model: Option<String>,
    pub fallback: Option<String>,
    pub topology: Option<Topology>,
    pub features: Vec<CpuFeature>,
    pub cells: Vec<Cell>,
}

impl Cpu {
    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("custom")
    }
    /// Whether a feature is required/forced (or, for host-passthrough, not disabled).
    pub fn feature_policy(&self, name: &str) -> Option<&str> {
        self.features
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.policy.as_deref().unwrap_or("require"))
    }
}

pub(super) fn vcpu(doc: &Document, id: Option<NodeId>) -> Vcpu {
    let Some(id) = id else {
        return Vcpu {
            max: 1,
            ..Vcpu::default()
        };
    };
    Vcpu {
        node: Some(id),
        max: doc.text(id).trim().parse().unwrap_or(1),
        current: num(doc.attr(id, "current")),
        placement: owned(doc.attr(id, "placement")),
        cpuset: owned(doc.attr(id, "cpuset")),
    }
}

fn pin(doc: &Document, id: NodeId, key: &str) -> Pin {
    Pin {
        node: id,
        id: num(doc.attr(id, key)),
        cpuset: doc.attr(id, "cpuset").unwrap_or_default().to_string(),
    }
}

pub(super) fn cputune(doc: &Document, c: NodeId) -> CpuTune {
    let n = |name: &str| {
        doc.child(c, name)
            .and_then(|e| doc.text(e).trim().parse().ok())
    };
    let q = |name: &str| {
        doc.child(c, name)
            .and_then(|e| doc.text(e).trim().parse().ok())
    };
    CpuTune {
        node: c,
        vcpupin: doc
            .children(c, "vcpupin")
            .map(|p| pin(doc, p, "vcpu"))
            .collect(),
        emulatorpin: doc.child(c, "emulatorpin").map(|p| pin(doc, p, "")),
        iothreadpin: doc
            .children(c, "iothreadpin")
            .map(|p| pin(doc, p, "iothread"))
            .collect(),
        shares: n("shares"),
        period: n("period"),
        quota: q("quota"),
        emulator_period: n("emulator_period"),
        emulator_quota: q("emulator_quota"),
        vcpusched: doc
            .children(c, "vcpusched")
            .filter_map(|v| owned(doc.attr(v, "scheduler")))
            .collect(),
    }
}

pub(super) fn cpu(doc: &Document, c: NodeId) -> Cpu {
    let model = doc.child(c, "model");
    Cpu {
        node: c,
        mode: owned(doc.attr(c, "mode")),
        match_: owned(doc.attr(c, "match")),
        check: owned(doc.attr(c, "check")),
        migratable: yes(doc.attr(c, "migratable")),
        model_node: model,
        model: model
            .map(|m| doc.text(m).trim().to_string())
            .filter(|m| !m.is_empty()),
        fallback: model.and_then(|m| owned(doc.attr(m, "fallback"))),
        topology: doc.child(c, "topology").map(|t| Topology {
            node: t,
            sockets: num(doc.attr(t, "sockets")),
            dies: num(doc.attr(t, "dies")),
            clusters: num(doc.attr(t, "clusters")),
            cores: num(doc.attr(t, "cores")),
            threads: num(doc.attr(t, "threads")),
        }),
        features: doc
            .children(c, "feature")
            .map(|f| CpuFeature {
                node: f,
                policy: owned(doc.attr(f, "policy")),
                name: doc.attr(f, "name").unwrap_or_default().to_string(),
            })
            .collect(),
        cells: doc
            .child(c, "numa")
            .map(|n| {
                doc.children(n, "cell")
                    .map(|cell| Cell {
                        node: cell,
                        id: num(doc.attr(cell, "id")),
                        cpus: owned(doc.attr(cell, "cpus")),
                        memory_kib: num(doc.attr(cell, "memory"))
                            .and_then(|v| to_kib(v, doc.attr(cell, "unit"))),
                        mem_access: owned(doc.attr(cell, "memAccess")),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

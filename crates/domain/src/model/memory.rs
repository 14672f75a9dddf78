//! Memory placement and backing: `<numatune>`, `<memoryBacking>` (hugepages, locking,
//! sharing) and `<memtune>`.

use super::{num, owned, size_kib, to_kib};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct NumaMemory {
    #[serde(skip)]
    pub node: NodeId,
    pub mode: Option<String>,
    pub nodeset: Option<String>,
    pub placement: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemNode {
    #[serde(skip)]
    pub node: NodeId,
    pub cellid: Option<u32>,
    pub mode: Option<String>,
    pub nodeset: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumaTune {
    #[serde(skip)]
    pub node: NodeId,
    pub memory: Option<NumaMemory>,
    pub memnode: Vec<MemNode>,
}

impl NumaTune {
    /// libvirt's default mode is strict.
    pub fn mode(&self) -> &str {
        self.memory
            .as_ref()
            .and_then(|m| m.mode.as_deref())
            .unwrap_or("strict")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    #[serde(skip)]
    pub node: NodeId,
    pub size_kib: Option<u64>,
    pub nodeset: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryBacking {
    #[serde(skip)]
    pub node: NodeId,
    #[serde(skip)]
    pub hugepages_node: Option<NodeId>,
    pub hugepages: bool,
    pub pages: Vec<Page>,
    pub nosharepages: bool,
    pub locked: bool,
    pub source_type: Option<String>,
    pub access_mode: Option<String>,
    pub allocation_mode: Option<String>,
    pub discard: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemTune {
    #[serde(skip)]
    pub node: NodeId,
    pub hard_limit_kib: Option<u64>,
    pub soft_limit_kib: Option<u64>,
    pub swap_hard_limit_kib: Option<u64>,
    pub min_guarantee_kib: Option<u64>,
}

pub(super) fn numatune(doc: &Document, n: NodeId) -> NumaTune {
    NumaTune {
        node: n,
        memory: doc.child(n, "memory").map(|m| NumaMemory {
            node: m,
            mode: owned(doc.attr(m, "mode")),
            nodeset: owned(doc.attr(m, "nodeset")),
            placement: owned(doc.attr(m, "placement")),
        }),
        memnode: doc
            .children(n, "memnode")
            .map(|m| MemNode {
                node: m,
                cellid: num(doc.attr(m, "cellid")),
                mode: owned(doc.attr(m, "mode")),
                nodeset: owned(doc.attr(m, "nodeset")),
            })
            .collect(),
    }
}

pub(super) fn backing(doc: &Document, m: NodeId) -> MemoryBacking {
    let hp = doc.child(m, "hugepages");
    MemoryBacking {
        node: m,
        hugepages_node: hp,
        hugepages: hp.is_some(),
        pages: hp
            .map(|h| {
                doc.children(h, "page")
                    .map(|p| Page {
                        node: p,
                        size_kib: num(doc.attr(p, "size"))
                            .and_then(|v| to_kib(v, doc.attr(p, "unit"))),
                        nodeset: owned(doc.attr(p, "nodeset")),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        nosharepages: doc.child(m, "nosharepages").is_some(),
        locked: doc.child(m, "locked").is_some(),
        source_type: doc
            .child(m, "source")
            .and_then(|s| owned(doc.attr(s, "type"))),
        access_mode: doc
            .child(m, "access")
            .and_then(|s| owned(doc.attr(s, "mode"))),
        allocation_mode: doc
            .child(m, "allocation")
            .and_then(|s| owned(doc.attr(s, "mode"))),
        discard: doc.child(m, "discard").is_some(),
    }
}

pub(super) fn memtune(doc: &Document, m: NodeId) -> MemTune {
    MemTune {
        node: m,
        hard_limit_kib: size_kib(doc, doc.child(m, "hard_limit")),
        soft_limit_kib: size_kib(doc, doc.child(m, "soft_limit")),
        swap_hard_limit_kib: size_kib(doc, doc.child(m, "swap_hard_limit")),
        min_guarantee_kib: size_kib(doc, doc.child(m, "min_guarantee")),
    }
}

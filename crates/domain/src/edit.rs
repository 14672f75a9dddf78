//! Fixes as edits on the domain document. An edit names its target by node (an element
//! that exists) or by a path of segments from a node, created where missing
//! (`ensure /domain/memoryBacking/hugepages`). Applying an edit that is already in effect
//! changes nothing, so fixing twice is a no-op.

use crate::{Document, NodeId};
use serde::Serialize;

/// One step of an ensured path: an element name, optionally told apart from its siblings
/// by an attribute (`timer[@name='hpet']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seg {
    pub name: String,
    pub key: Option<(String, String)>,
}

impl Seg {
    pub fn new(name: &str) -> Seg {
        Seg {
            name: name.into(),
            key: None,
        }
    }
    pub fn keyed(name: &str, attr: &str, value: &str) -> Seg {
        Seg {
            name: name.into(),
            key: Some((attr.into(), value.into())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(NodeId),
    /// Descend from a node, creating missing elements.
    Ensure(NodeId, Vec<Seg>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Only make sure the target exists.
    Ensure,
    SetAttr {
        #[serde(serialize_with = "crate::json_text::text")]
        attr: String,
        #[serde(serialize_with = "crate::json_text::text")]
        value: String,
    },
    RemoveAttr {
        #[serde(serialize_with = "crate::json_text::text")]
        attr: String,
    },
    SetText {
        #[serde(serialize_with = "crate::json_text::text")]
        text: String,
    },
    /// Remove the target element.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edit {
    #[serde(skip)]
    pub target: Target,
    /// The target as a path (`/domain/devices/disk[1]/driver`).
    #[serde(serialize_with = "crate::json_text::text")]
    pub path: String,
    #[serde(flatten)]
    pub op: Op,
}

impl Edit {
    fn path_of(doc: &Document, t: &Target) -> String {
        match t {
            Target::Node(n) => doc.path(*n),
            Target::Ensure(n, segs) => {
                let mut p = doc.path(*n);
                for s in segs {
                    p.push('/');
                    p.push_str(&s.name);
                    if let Some((a, v)) = &s.key {
                        p.push_str(&format!("[@{a}='{v}']"));
                    }
                }
                p
            }
        }
    }
    pub fn new(doc: &Document, target: Target, op: Op) -> Edit {
        Edit {
            path: Edit::path_of(doc, &target),
            target,
            op,
        }
    }
    pub fn set(doc: &Document, node: NodeId, attr: &str, value: &str) -> Edit {
        Edit::new(
            doc,
            Target::Node(node),
            Op::SetAttr {
                attr: attr.into(),
                value: value.into(),
            },
        )
    }
    pub fn set_at(doc: &Document, from: NodeId, segs: Vec<Seg>, attr: &str, value: &str) -> Edit {
        Edit::new(
            doc,
            Target::Ensure(from, segs),
            Op::SetAttr {
                attr: attr.into(),
                value: value.into(),
            },
        )
    }
    pub fn unset(doc: &Document, node: NodeId, attr: &str) -> Edit {
        Edit::new(
            doc,
            Target::Node(node),
            Op::RemoveAttr { attr: attr.into() },
        )
    }
    pub fn remove(doc: &Document, node: NodeId) -> Edit {
        Edit::new(doc, Target::Node(node), Op::Remove)
    }
    pub fn ensure(doc: &Document, from: NodeId, segs: Vec<Seg>) -> Edit {
        Edit::new(doc, Target::Ensure(from, segs), Op::Ensure)
    }
    pub fn text_at(doc: &Document, from: NodeId, segs: Vec<Seg>, text: &str) -> Edit {
        Edit::new(
            doc,
            Target::Ensure(from, segs),
            Op::SetText { text: text.into() },
        )
    }

    /// The edit in one line: `set /domain/devices/disk/driver/@cache = 'none'`.
    pub fn describe(&self) -> String {
        match &self.op {
            Op::Ensure => format!("ensure {}", self.path),
            Op::SetAttr { attr, value } => format!("set {}/@{attr} = '{value}'", self.path),
            Op::RemoveAttr { attr } => format!("remove {}/@{attr}", self.path),
            Op::SetText { text } => format!("set {} text = '{text}'", self.path),
            Op::Remove => format!("remove {}", self.path),
        }
    }
}

/// libvirt's order of the domain's children (as `virsh dumpxml` writes them). New
/// children of `<domain>` go after their predecessors in this order.
const DOMAIN_ORDER: &[&str] = &[
    "name",
    "uuid",
    "genid",
    "title",
    "description",
    "metadata",
    "maxMemory",
    "memory",
    "currentMemory",
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpu",
    "vcpus",
    "iothreads",
    "iothreadids",
    "defaultiothread",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "os",
    "idmap",
    "features",
    "cpu",
    "clock",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "pm",
    "perf",
    "devices",
];

/// Where a new child goes among the element children: after the last sibling that comes
/// before it in libvirt's order (for `<domain>` and `<cpu>`); `None` appends.
fn position(doc: &Document, parent: NodeId, name: &str) -> Option<usize> {
    let order: &[&str] = match doc.name(parent) {
        "domain" if parent == doc.root() => DOMAIN_ORDER,
        "cpu" => &[
            "model",
            "vendor",
            "topology",
            "cache",
            "maxphysaddr",
            "feature",
            "numa",
        ],
        _ => return None,
    };
    let me = order.iter().position(|n| *n == name)?;
    let before = &order[..me];
    let elems: Vec<NodeId> = doc.elements(parent).collect();
    let last = elems.iter().rposition(|&e| before.contains(&doc.name(e)));
    match last {
        Some(i) => Some(i + 1),
        None => Some(0),
    }
}

fn resolve(doc: &mut Document, t: &Target) -> Option<NodeId> {
    match t {
        Target::Node(n) => doc
            .parent(*n)
            .map(|_| *n)
            .or((*n == doc.root()).then_some(*n)),
        Target::Ensure(from, segs) => {
            let mut at = *from;
            if doc.parent(at).is_none() && at != doc.root() {
                return None; // removed meanwhile
            }
            for s in segs {
                let found = doc.children(at, &s.name).find(|&c| match &s.key {
                    Some((a, v)) => doc.attr(c, a) == Some(v.as_str()),
                    None => true,
                });
                at = match found {
                    Some(c) => c,
                    None => {
                        let attrs: Vec<(&str, &str)> = s
                            .key
                            .iter()
                            .map(|(a, v)| (a.as_str(), v.as_str()))
                            .collect();
                        let pos = position(doc, at, &s.name);
                        doc.insert_element(at, pos, &s.name, &attrs)?
                    }
                };
            }
            Some(at)
        }
    }
}

/// Apply edits in order; returns how many changed the document.
pub fn apply(doc: &mut Document, edits: &[Edit]) -> usize {
    let mut changed = 0;
    for e in edits {
        // ensuring a path that exists changes nothing; count creation by size
        let before = doc.node_count();
        let Some(node) = resolve(doc, &e.target) else {
            continue;
        };
        let grew = doc.node_count() != before;
        let did = match &e.op {
            Op::Ensure => false,
            Op::SetAttr { attr, value } => doc.set_attr(node, attr, value),
            Op::RemoveAttr { attr } => doc.remove_attr(node, attr),
            Op::SetText { text } => doc.set_text(node, text),
            Op::Remove => doc.remove(node),
        };
        if did || grew {
            changed += 1;
        }
    }
    changed
}

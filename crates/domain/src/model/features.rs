//! `<features>` (ACPI, APIC, Hyper-V enlightenments, KVM flags, PMU, vmport) and `<clock>`
//! (offset, timers).

use super::{num, owned, yes};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Flag {
    #[serde(skip)]
    pub node: NodeId,
    pub name: String,
    /// `state='on|off'` (Hyper-V, KVM features) or `present`; `None` when unspecified.
    pub state: Option<bool>,
    /// Other attributes (spinlocks `retries`, vendor_id `value`, ...).
    pub attrs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Features {
    #[serde(skip)]
    pub node: Option<NodeId>,
    /// Names of the direct children of `<features>` (acpi, apic, pae, hyperv, kvm, ...).
    pub present: Vec<String>,
    #[serde(skip)]
    pub hyperv_node: Option<NodeId>,
    /// `<hyperv mode='custom|passthrough'>`
    pub hyperv_mode: Option<String>,
    pub hyperv: Vec<Flag>,
    #[serde(skip)]
    pub kvm_node: Option<NodeId>,
    pub kvm: Vec<Flag>,
    pub pmu: Option<bool>,
    pub vmport: Option<bool>,
}

impl Features {
    pub fn has(&self, name: &str) -> bool {
        self.present.iter().any(|p| p == name)
    }
    /// A Hyper-V enlightenment is on when listed with state on (or without a state), or
    /// when `mode='passthrough'` gives them all.
    pub fn hyperv_on(&self, name: &str) -> bool {
        if self.hyperv_mode.as_deref() == Some("passthrough") {
            return true;
        }
        self.hyperv
            .iter()
            .any(|f| f.name == name && f.state != Some(false))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Timer {
    #[serde(skip)]
    pub node: NodeId,
    pub name: String,
    pub present: Option<bool>,
    pub tickpolicy: Option<String>,
    pub track: Option<String>,
    pub mode: Option<String>,
    pub frequency: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Clock {
    #[serde(skip)]
    pub node: NodeId,
    pub offset: Option<String>,
    pub timers: Vec<Timer>,
}

impl Clock {
    pub fn timer(&self, name: &str) -> Option<&Timer> {
        self.timers.iter().find(|t| t.name == name)
    }
}

fn flag(doc: &Document, f: NodeId) -> Flag {
    Flag {
        node: f,
        name: doc.name(f).to_string(),
        state: yes(doc.attr(f, "state")),
        attrs: doc
            .attrs(f)
            .filter(|(name, _)| *name != "state")
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
    }
}

pub(super) fn features(doc: &Document, id: Option<NodeId>) -> Features {
    let Some(id) = id else {
        return Features::default();
    };
    let hv = doc.child(id, "hyperv");
    let kvm = doc.child(id, "kvm");
    Features {
        node: Some(id),
        present: doc.elements(id).map(|e| doc.name(e).to_string()).collect(),
        hyperv_node: hv,
        hyperv_mode: hv.and_then(|h| owned(doc.attr(h, "mode"))),
        hyperv: hv
            .map(|h| doc.elements(h).map(|f| flag(doc, f)).collect())
            .unwrap_or_default(),
        kvm_node: kvm,
        kvm: kvm
            .map(|k| doc.elements(k).map(|f| flag(doc, f)).collect())
            .unwrap_or_default(),
        pmu: doc
            .child(id, "pmu")
            .map(|p| yes(doc.attr(p, "state")) != Some(false)),
        vmport: doc
            .child(id, "vmport")
            .map(|p| yes(doc.attr(p, "state")) != Some(false)),
    }
}

pub(super) fn clock(doc: &Document, c: NodeId) -> Clock {
    Clock {
        node: c,
        offset: owned(doc.attr(c, "offset")),
        timers: doc
            .children(c, "timer")
            .map(|t| Timer {
                node: t,
                name: doc.attr(t, "name").unwrap_or_default().to_string(),
                present: yes(doc.attr(t, "present")),
                tickpolicy: owned(doc.attr(t, "tickpolicy")),
                track: owned(doc.attr(t, "track")),
                mode: owned(doc.attr(t, "mode")),
                frequency: num(doc.attr(t, "frequency")),
            })
            .collect(),
    }
}

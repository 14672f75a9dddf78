//! Network interfaces: `<interface>` (model, driver, queues, MAC address).

use super::{num, owned};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Interface {
    #[serde(skip)]
    pub node: NodeId,
    pub itype: Option<String>,
    #[serde(skip)]
    pub model_node: Option<NodeId>,
    pub model: Option<String>,
    #[serde(skip)]
    pub driver_node: Option<NodeId>,
    pub driver_name: Option<String>,
    pub queues: Option<u32>,
    pub mac: Option<String>,
}

impl Interface {
    /// How a finding names the NIC: `NIC 52:54:00:12:34:56`, or `NIC (type network, no
    /// MAC yet)` when libvirt has not assigned one.
    pub fn label(&self) -> String {
        match &self.mac {
            Some(m) => format!("NIC {m}"),
            None => format!(
                "NIC (type {}, no MAC yet)",
                self.itype.as_deref().unwrap_or("unknown")
            ),
        }
    }
}

pub(super) fn interface(doc: &Document, e: NodeId) -> Interface {
    let model = doc.child(e, "model");
    let drv = doc.child(e, "driver");
    Interface {
        node: e,
        itype: owned(doc.attr(e, "type")),
        model_node: model,
        model: model.and_then(|m| owned(doc.attr(m, "type"))),
        driver_node: drv,
        driver_name: drv.and_then(|x| owned(doc.attr(x, "name"))),
        queues: drv.and_then(|x| num(doc.attr(x, "queues"))),
        mac: doc
            .child(e, "mac")
            .and_then(|m| owned(doc.attr(m, "address"))),
    }
}

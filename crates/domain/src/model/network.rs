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

//! Disks and their storage: `<disk>` (driver, cache, I/O mode, iothread, target, source).

use super::{num, owned};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    #[serde(skip)]
    pub node: NodeId,
    /// `file`, `block`, `network`, `volume`, ...
    pub disk_type: Option<String>,
    /// `disk` (default), `cdrom`, `floppy`, `lun`.
    pub device: Option<String>,
    #[serde(skip)]
    pub driver_node: Option<NodeId>,
    pub driver_name: Option<String>,
    pub format: Option<String>,
    pub cache: Option<String>,
    pub io: Option<String>,
    pub iothread: Option<u32>,
    pub discard: Option<String>,
    pub queues: Option<u32>,
    #[serde(skip)]
    pub target_node: Option<NodeId>,
    pub target_dev: Option<String>,
    pub bus: Option<String>,
    pub source: Option<String>,
    pub readonly: bool,
}

impl Disk {
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("disk")
    }
    /// The name to show: target dev, else source.
    pub fn label(&self) -> String {
        self.target_dev
            .clone()
            .or_else(|| self.source.clone())
            .unwrap_or_else(|| "disk".into())
    }
}

pub(super) fn disk(doc: &Document, e: NodeId) -> Disk {
    let drv = doc.child(e, "driver");
    let target = doc.child(e, "target");
    let r = |n: &str| drv.and_then(|x| doc.attr(x, n));
    let a = |n: &str| owned(r(n));
    Disk {
        node: e,
        disk_type: owned(doc.attr(e, "type")),
        device: owned(doc.attr(e, "device")),
        driver_node: drv,
        driver_name: a("name"),
        format: a("type"),
        cache: a("cache"),
        io: a("io"),
        iothread: num(r("iothread")),
        discard: a("discard"),
        queues: num(r("queues")),
        target_node: target,
        target_dev: target.and_then(|t| owned(doc.attr(t, "dev"))),
        bus: target.and_then(|t| owned(doc.attr(t, "bus"))),
        source: doc.child(e, "source").and_then(|s| {
            ["file", "dev", "name", "volume", "dir"]
                .iter()
                .find_map(|k| owned(doc.attr(s, k)))
        }),
        readonly: doc.child(e, "readonly").is_some(),
    }
}

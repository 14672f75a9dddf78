//! `<devices>`: the emulator, disks and interfaces (see their modules), controllers and
//! every other device (input, video, sound, balloon, hostdev, rng, watchdog, channels,
//! serials, consoles, graphics, USB redirection, ...).

use super::disks::{Disk, disk};
use super::network::{Interface, interface};
use super::{num, owned};
use crate::xml::{Document, NodeId};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    #[serde(skip)]
    pub node: NodeId,
    pub ctype: String,
    pub index: Option<u32>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    #[serde(skip)]
    pub node: NodeId,
    /// The element name: input, video, sound, hostdev, rng, watchdog, channel, serial, ...
    pub kind: String,
    /// The `type` attribute (input type, hostdev type, channel type, ...).
    pub dtype: Option<String>,
    /// `model` attribute or `<model type=...>` (video, sound, watchdog, rng, memballoon).
    pub model: Option<String>,
    /// `bus` attribute (inputs).
    pub bus: Option<String>,
    /// `<target type=... name=...>` of channels and consoles.
    pub target: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Devices {
    #[serde(skip)]
    pub node: Option<NodeId>,
    pub emulator: Option<String>,
    pub disks: Vec<Disk>,
    pub controllers: Vec<Controller>,
    pub interfaces: Vec<Interface>,
    pub inputs: Vec<Device>,
    pub videos: Vec<Device>,
    pub sounds: Vec<Device>,
    pub memballoon: Option<Device>,
    pub hostdevs: Vec<Device>,
    pub rngs: Vec<Device>,
    pub watchdogs: Vec<Device>,
    pub channels: Vec<Device>,
    pub serials: Vec<Device>,
    pub consoles: Vec<Device>,
    pub graphics: Vec<Device>,
    pub redirdevs: Vec<Device>,
    /// Any other device element, by name (smartcard, tpm, shmem, ...).
    pub others: Vec<Device>,
}

fn device(doc: &Document, d: NodeId) -> Device {
    let model_el = doc.child(d, "model");
    let target = doc.child(d, "target");
    Device {
        node: d,
        kind: doc.name(d).to_string(),
        dtype: owned(doc.attr(d, "type")),
        model: owned(doc.attr(d, "model"))
            .or_else(|| model_el.and_then(|m| owned(doc.attr(m, "type")))),
        bus: owned(doc.attr(d, "bus")),
        target: target
            .and_then(|t| owned(doc.attr(t, "name")).or_else(|| owned(doc.attr(t, "type")))),
    }
}

pub(super) fn devices(doc: &Document, id: Option<NodeId>) -> Devices {
    let Some(id) = id else {
        return Devices::default();
    };
    let mut d = Devices {
        node: Some(id),
        ..Devices::default()
    };
    for e in doc.elements(id) {
        match doc.name(e) {
            "emulator" => d.emulator = Some(doc.text(e).trim().to_string()),
            "disk" => d.disks.push(disk(doc, e)),
            "controller" => d.controllers.push(Controller {
                node: e,
                ctype: doc.attr(e, "type").unwrap_or_default().to_string(),
                index: num(doc.attr(e, "index")),
                model: owned(doc.attr(e, "model")),
            }),
            "interface" => d.interfaces.push(interface(doc, e)),
            "input" => d.inputs.push(device(doc, e)),
            "video" => d.videos.push(device(doc, e)),
            "sound" => d.sounds.push(device(doc, e)),
            "memballoon" => d.memballoon = Some(device(doc, e)),
            "hostdev" => d.hostdevs.push(device(doc, e)),
            "rng" => d.rngs.push(device(doc, e)),
            "watchdog" => d.watchdogs.push(device(doc, e)),
            "channel" => d.channels.push(device(doc, e)),
            "serial" => d.serials.push(device(doc, e)),
            "console" => d.consoles.push(device(doc, e)),
            "graphics" => d.graphics.push(device(doc, e)),
            "redirdev" => d.redirdevs.push(device(doc, e)),
            _ => d.others.push(device(doc, e)),
        }
    }
    d
}

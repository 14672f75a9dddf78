//! A typed view of a domain document: what the rules read, each part carrying the
//! [`NodeId`] of its element so findings can point at it and fixes can edit it.
//!
//! The view is read-only and built in one pass; edits go to the [`Document`]. Values the
//! XML does not give are `None`: the view never fills in libvirt's defaults, so rules can
//! tell "absent" from "set to the default".

use crate::xml::{Document, NodeId, XmlError};
use serde::Serialize;

/// Convert a libvirt scaled integer to KiB (libvirt's default unit). Byte values round up,
/// as libvirt does. `None` for an unknown unit or an overflow.
pub fn to_kib(value: u64, unit: Option<&str>) -> Option<u64> {
    let unit = unit.unwrap_or("KiB");
    let (mult, div): (u64, u64) = match unit {
        "b" | "bytes" => (1, 1024),
        "KB" => (1000, 1024),
        "k" | "K" | "KiB" => (1, 1),
        "MB" => (1_000_000, 1024),
        "M" | "MiB" => (1024, 1),
        "GB" => (1_000_000_000, 1024),
        "G" | "GiB" => (1024 * 1024, 1),
        "TB" => (1_000_000_000_000, 1024),
        "T" | "TiB" => (1024 * 1024 * 1024, 1),
        "PB" => (1_000_000_000_000_000, 1024),
        "P" | "PiB" => (1024u64.pow(4), 1),
        "EB" => (1_000_000_000_000_000_000, 1024),
        "E" | "EiB" => (1024u64.pow(5), 1),
        _ => return None,
    };
    let bytes_or_kib = value.checked_mul(mult)?;
    Some(bytes_or_kib.div_ceil(div))
}

/// A memory size element (`<memory unit='GiB'>4</memory>`) in KiB.
fn size_kib(doc: &Document, id: Option<NodeId>) -> Option<u64> {
    let id = id?;
    let v: u64 = doc.text(id).trim().parse().ok()?;
    to_kib(v, doc.attr(id, "unit"))
}

fn num<T: std::str::FromStr>(s: Option<&str>) -> Option<T> {
    s.and_then(|v| v.trim().parse().ok())
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_string)
}

/// `yes`/`on` → true, `no`/`off` → false.
fn yes(s: Option<&str>) -> Option<bool> {
    match s? {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    #[serde(skip)]
    pub node: NodeId,
    /// `kvm`, `qemu`, ...
    pub virt_type: String,
    pub name: String,
    pub uuid: Option<String>,
    /// The libosinfo OS id from `<metadata>`, when present.
    pub os_id: Option<String>,
    pub os: Os,
    pub memory_kib: Option<u64>,
    pub current_memory_kib: Option<u64>,
    pub max_memory_kib: Option<u64>,
    pub max_memory_slots: Option<u32>,
    pub vcpu: Vcpu,
    pub iothreads: u32,
    pub cputune: Option<CpuTune>,
    pub numatune: Option<NumaTune>,
    pub cpu: Option<Cpu>,
    pub memory_backing: Option<MemoryBacking>,
    pub memtune: Option<MemTune>,
    pub features: Features,
    pub clock: Option<Clock>,
    pub devices: Devices,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Os {
    #[serde(skip)]
    pub node: Option<NodeId>,
    /// `hvm`, `linux`, ...
    pub os_type: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    /// `<os firmware='efi'>`
    pub firmware: Option<String>,
    pub loader: Option<String>,
    pub loader_type: Option<String>,
    pub loader_secure: Option<bool>,
    pub kernel: Option<String>,
    pub cmdline: Option<String>,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    #[serde(skip)]
    pub node: NodeId,
    pub ctype: String,
    pub index: Option<u32>,
    pub model: Option<String>,
}

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

/// libosinfo id parts of Linux distributions.
const LINUX_OSINFO: &[&str] = &[
    "linux",
    "fedoraproject.org",
    "redhat.com",
    "centos.org",
    "debian.org",
    "ubuntu.com",
    "suse.com",
    "opensuse.org",
    "archlinux.org",
    "gentoo.org",
    "rockylinux.org",
    "almalinux.org",
    "oracle.com/ol",
    "mageia.org",
    "mandriva.com",
    "slackware.com",
    "nixos.org",
    "voidlinux.org",
    "altlinux.org",
];

/// What the XML says about the guest OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "os", content = "because")]
pub enum GuestOs {
    Windows(String),
    Linux(String),
    Unknown,
}

/// Why a document is not a domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("malformed XML: {0}")]
    Xml(#[from] XmlError),
    #[error("not a domain: the root element is <{0}>")]
    NotADomain(String),
}

impl Domain {
    /// Parse and view in one go.
    pub fn parse(src: &str) -> Result<(Document, Domain), DomainError> {
        let doc = Document::parse(src)?;
        let d = Domain::from_doc(&doc)?;
        Ok((doc, d))
    }

    pub fn from_doc(doc: &Document) -> Result<Domain, DomainError> {
        let root = doc.root();
        if doc.name(root) != "domain" {
            return Err(DomainError::NotADomain(doc.name(root).to_string()));
        }
        let t = |n: &str| doc.child(root, n).map(|c| doc.text(c).trim().to_string());
        let os_id = doc.child(root, "metadata").and_then(|m| {
            doc.elements(m)
                .filter(|&e| doc.name(e).ends_with(":libosinfo") || doc.name(e) == "libosinfo")
                .flat_map(|e| doc.elements(e).collect::<Vec<_>>())
                .find(|&o| doc.name(o).ends_with("os"))
                .and_then(|o| owned(doc.attr(o, "id")))
        });
        let max_memory = doc.child(root, "maxMemory");
        Ok(Domain {
            node: root,
            virt_type: doc.attr(root, "type").unwrap_or_default().to_string(),
            name: t("name").unwrap_or_default(),
            uuid: t("uuid"),
            os_id,
            os: os(doc, doc.child(root, "os")),
            memory_kib: size_kib(doc, doc.child(root, "memory")),
            current_memory_kib: size_kib(doc, doc.child(root, "currentMemory")),
            max_memory_kib: size_kib(doc, max_memory),
            max_memory_slots: max_memory.and_then(|m| num(doc.attr(m, "slots"))),
            vcpu: vcpu(doc, doc.child(root, "vcpu")),
            iothreads: doc
                .child(root, "iothreads")
                .and_then(|i| doc.text(i).trim().parse().ok())
                .unwrap_or(0),
            cputune: doc.child(root, "cputune").map(|c| cputune(doc, c)),
            numatune: doc.child(root, "numatune").map(|n| numatune(doc, n)),
            cpu: doc.child(root, "cpu").map(|c| cpu(doc, c)),
            memory_backing: doc.child(root, "memoryBacking").map(|m| backing(doc, m)),
            memtune: doc.child(root, "memtune").map(|m| MemTune {
                node: m,
                hard_limit_kib: size_kib(doc, doc.child(m, "hard_limit")),
                soft_limit_kib: size_kib(doc, doc.child(m, "soft_limit")),
                swap_hard_limit_kib: size_kib(doc, doc.child(m, "swap_hard_limit")),
                min_guarantee_kib: size_kib(doc, doc.child(m, "min_guarantee")),
            }),
            features: features(doc, doc.child(root, "features")),
            clock: doc.child(root, "clock").map(|c| Clock {
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
            }),
            devices: devices(doc, doc.child(root, "devices")),
        })
    }

    /// vCPUs at boot.
    pub fn vcpus(&self) -> u32 {
        self.vcpu.online()
    }

    /// The guest OS, as far as the XML shows it: the libosinfo id first, then Windows-only
    /// configuration (Hyper-V enlightenments, a localtime clock).
    pub fn guest_os(&self) -> GuestOs {
        if let Some(id) = &self.os_id {
            if id.contains("microsoft.com/win") {
                return GuestOs::Windows(format!("libosinfo id {id}"));
            }
            if LINUX_OSINFO.iter().any(|v| id.contains(v)) {
                return GuestOs::Linux(format!("libosinfo id {id}"));
            }
            return GuestOs::Unknown; // BSDs, Solaris, ...: neither rule set applies
        }
        if self.features.hyperv_node.is_some() && !self.features.hyperv.is_empty() {
            return GuestOs::Windows("Hyper-V enlightenments are configured".into());
        }
        if self.clock.as_ref().and_then(|c| c.offset.as_deref()) == Some("localtime") {
            return GuestOs::Windows("the clock runs in localtime".into());
        }
        if self
            .clock
            .as_ref()
            .is_some_and(|c| c.timer("hypervclock").is_some())
        {
            return GuestOs::Windows("a hypervclock timer is configured".into());
        }
        if self.os.kernel.is_some() || self.os.os_type.as_deref() == Some("linux") {
            return GuestOs::Linux("direct kernel boot".into());
        }
        if self
            .clock
            .as_ref()
            .and_then(|c| c.timer("kvmclock"))
            .is_some_and(|t| t.present == Some(true))
        {
            return GuestOs::Linux("kvmclock is configured".into());
        }
        GuestOs::Unknown
    }

    /// The memory the guest has at boot, KiB.
    pub fn memory(&self) -> u64 {
        self.memory_kib
            .or(self.current_memory_kib)
            .unwrap_or_else(|| {
                self.cpu
                    .as_ref()
                    .map_or(0, |c| c.cells.iter().filter_map(|c| c.memory_kib).sum())
            })
    }

    /// A full-virtualization x86 or other hardware guest (not a container or Xen PV).
    pub fn is_hvm(&self) -> bool {
        self.os.os_type.as_deref().is_none_or(|t| t == "hvm")
    }
}

fn os(doc: &Document, id: Option<NodeId>) -> Os {
    let Some(id) = id else {
        return Os::default();
    };
    let ty = doc.child(id, "type");
    let loader = doc.child(id, "loader");
    let text = |n: &str| doc.child(id, n).map(|c| doc.text(c).trim().to_string());
    Os {
        node: Some(id),
        os_type: ty.map(|t| doc.text(t).trim().to_string()),
        arch: ty.and_then(|t| owned(doc.attr(t, "arch"))),
        machine: ty.and_then(|t| owned(doc.attr(t, "machine"))),
        firmware: owned(doc.attr(id, "firmware")),
        loader: loader.map(|l| doc.text(l).trim().to_string()),
        loader_type: loader.and_then(|l| owned(doc.attr(l, "type"))),
        loader_secure: loader.and_then(|l| yes(doc.attr(l, "secure"))),
        kernel: text("kernel"),
        cmdline: text("cmdline"),
    }
}

fn vcpu(doc: &Document, id: Option<NodeId>) -> Vcpu {
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

fn cputune(doc: &Document, c: NodeId) -> CpuTune {
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

fn numatune(doc: &Document, n: NodeId) -> NumaTune {
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

fn cpu(doc: &Document, c: NodeId) -> Cpu {
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

fn backing(doc: &Document, m: NodeId) -> MemoryBacking {
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

fn flag(doc: &Document, f: NodeId) -> Flag {
    Flag {
        node: f,
        name: doc.name(f).to_string(),
        state: yes(doc.attr(f, "state")),
        attrs: doc
            .attrs(f)
            .iter()
            .filter(|a| a.name != "state")
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect(),
    }
}

fn features(doc: &Document, id: Option<NodeId>) -> Features {
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

fn devices(doc: &Document, id: Option<NodeId>) -> Devices {
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
            "disk" => {
                let drv = doc.child(e, "driver");
                let target = doc.child(e, "target");
                let a = |n: &str| drv.and_then(|x| owned(doc.attr(x, n)));
                d.disks.push(Disk {
                    node: e,
                    disk_type: owned(doc.attr(e, "type")),
                    device: owned(doc.attr(e, "device")),
                    driver_node: drv,
                    driver_name: a("name"),
                    format: a("type"),
                    cache: a("cache"),
                    io: a("io"),
                    iothread: num(a("iothread").as_deref()),
                    discard: a("discard"),
                    queues: num(a("queues").as_deref()),
                    target_node: target,
                    target_dev: target.and_then(|t| owned(doc.attr(t, "dev"))),
                    bus: target.and_then(|t| owned(doc.attr(t, "bus"))),
                    source: doc.child(e, "source").and_then(|s| {
                        ["file", "dev", "name", "volume", "dir"]
                            .iter()
                            .find_map(|k| owned(doc.attr(s, k)))
                    }),
                    readonly: doc.child(e, "readonly").is_some(),
                });
            }
            "controller" => d.controllers.push(Controller {
                node: e,
                ctype: doc.attr(e, "type").unwrap_or_default().to_string(),
                index: num(doc.attr(e, "index")),
                model: owned(doc.attr(e, "model")),
            }),
            "interface" => {
                let model = doc.child(e, "model");
                let drv = doc.child(e, "driver");
                d.interfaces.push(Interface {
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
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libvirt_unit_normalises_to_kib() {
        for (v, u, kib) in [
            (4194304, None, 4194304),
            (1, Some("b"), 1),
            (1024, Some("bytes"), 1),
            (1025, Some("bytes"), 2),
            (1, Some("KB"), 1),
            (1, Some("k"), 1),
            (1, Some("KiB"), 1),
            (1, Some("MB"), 977),
            (1, Some("M"), 1024),
            (1, Some("MiB"), 1024),
            (4, Some("GiB"), 4 * 1024 * 1024),
            (1, Some("G"), 1048576),
            (1, Some("GB"), 976563),
            (1, Some("T"), 1073741824),
            (1, Some("TB"), 976562500),
            (1, Some("P"), 1099511627776),
            (1, Some("PiB"), 1099511627776),
            (1, Some("PB"), 976562500000),
            (1, Some("E"), 1125899906842624),
            (1, Some("EB"), 976562500000000),
        ] {
            assert_eq!(to_kib(v, u), Some(kib), "{v} {u:?}");
        }
        assert_eq!(to_kib(1, Some("furlong")), None);
        assert_eq!(to_kib(u64::MAX, Some("GiB")), None);
    }

    #[test]
    fn the_view_reads_what_rules_need() {
        let xml = r#"<domain type='kvm'>
  <name>db</name>
  <metadata><libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"><libosinfo:os id="http://microsoft.com/win/10"/></libosinfo:libosinfo></metadata>
  <memory unit='GiB'>8</memory>
  <vcpu placement='static' cpuset='0-3' current='2'>4</vcpu>
  <cputune><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='0'/><period>100000</period><quota>-1</quota></cputune>
  <numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='strict' nodeset='0'/></numatune>
  <memoryBacking><hugepages><page size='1' unit='G' nodeset='0'/></hugepages><nosharepages/><locked/></memoryBacking>
  <memtune><hard_limit unit='G'>10</hard_limit></memtune>
  <cpu mode='custom' match='exact'><model fallback='forbid'>Nehalem</model><topology sockets='1' cores='2' threads='2'/><feature policy='require' name='vmx'/><numa><cell id='0' cpus='0-3' memory='8' unit='GiB'/></numa></cpu>
  <features><acpi/><hyperv mode='custom'><relaxed state='on'/><spinlocks state='on' retries='8191'/><vapic state='off'/></hyperv><kvm><hidden state='on'/></kvm></features>
  <clock offset='localtime'><timer name='hpet' present='no'/><timer name='rtc' tickpolicy='catchup'/></clock>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none' io='native' iothread='1'/><source file='/a.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <controller type='usb' index='0' model='qemu-xhci'/>
    <interface type='network'><model type='virtio'/><driver name='vhost' queues='4'/></interface>
    <input type='tablet' bus='usb'/><sound model='ich6'/><video><model type='qxl'/></video>
    <memballoon model='virtio'/><watchdog model='i6300esb' action='reset'/>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>"#;
        let (_doc, d) = Domain::parse(xml).unwrap();
        assert_eq!(d.memory_kib, Some(8 * 1024 * 1024));
        assert_eq!((d.vcpu.max, d.vcpus()), (4, 2));
        let ct = d.cputune.as_ref().unwrap();
        assert_eq!(
            (ct.vcpupin[0].id, ct.vcpupin[0].cpuset.as_str()),
            (Some(0), "1")
        );
        assert_eq!(ct.quota, Some(-1));
        assert_eq!(d.numatune.as_ref().unwrap().mode(), "strict");
        let mb = d.memory_backing.as_ref().unwrap();
        assert_eq!(mb.pages[0].size_kib, Some(1048576));
        assert!(mb.nosharepages && mb.locked);
        assert_eq!(
            d.memtune.as_ref().unwrap().hard_limit_kib,
            Some(10 * 1048576)
        );
        let cpu = d.cpu.as_ref().unwrap();
        assert_eq!(cpu.model.as_deref(), Some("Nehalem"));
        assert_eq!(cpu.topology.as_ref().unwrap().threads, Some(2));
        assert_eq!(cpu.feature_policy("vmx"), Some("require"));
        assert_eq!(cpu.cells[0].memory_kib, Some(8 * 1048576));
        assert!(d.features.hyperv_on("relaxed") && !d.features.hyperv_on("vapic"));
        assert_eq!(d.features.kvm[0].name, "hidden");
        assert_eq!(
            d.clock.as_ref().unwrap().timer("hpet").unwrap().present,
            Some(false)
        );
        let disk = &d.devices.disks[0];
        assert_eq!(
            (
                disk.cache.as_deref(),
                disk.io.as_deref(),
                disk.iothread,
                disk.bus.as_deref()
            ),
            (Some("none"), Some("native"), Some(1), Some("virtio"))
        );
        assert_eq!(d.devices.interfaces[0].queues, Some(4));
        assert_eq!(d.devices.videos[0].model.as_deref(), Some("qxl"));
        assert_eq!(
            d.devices.channels[0].target.as_deref(),
            Some("org.qemu.guest_agent.0")
        );
        assert!(matches!(d.guest_os(), GuestOs::Windows(_)));
    }

    #[test]
    fn libosinfo_ids_classify_the_guest() {
        let with = |id: &str| {
            let x = format!(
                "<domain><name>a</name><metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'><libosinfo:os id='{id}'/></libosinfo:libosinfo></metadata></domain>"
            );
            Domain::parse(&x).unwrap().1.guest_os()
        };
        assert!(matches!(
            with("http://microsoft.com/win/2k22"),
            GuestOs::Windows(_)
        ));
        assert!(matches!(
            with("http://debian.org/debian/12"),
            GuestOs::Linux(_)
        ));
        assert!(matches!(
            with("http://redhat.com/rhel/9.2"),
            GuestOs::Linux(_)
        ));
        assert_eq!(with("http://freebsd.org/freebsd/14.0"), GuestOs::Unknown);
    }

    #[test]
    fn a_non_domain_is_refused() {
        assert!(matches!(
            Domain::parse("<network/>"),
            Err(DomainError::NotADomain(n)) if n == "network"
        ));
    }
}

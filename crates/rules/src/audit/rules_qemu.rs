//! Rules for what libvirt does not see: qemu:commandline overrides, what hides the hypervisor from the guest (read by the Hyper-V rules in rules_clock.rs), NIC model strings libvirt does not treat as virtio.

use super::{Applies, Cx, Edit, Evidence, FixClass, Meta, Out, Rule, Seg, Severity, virsh_edit};
use kvmtune_domain::NodeId;

/// libvirt's QEMU namespace (`xmlns:qemu=...`).
const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "qemu-commandline",
                title: "QEMU arguments behind libvirt's back",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "<qemu:commandline> appends raw arguments to QEMU's command line: libvirt neither checks nor tracks them (it marks the domain tainted, custom-argv). A -cpu there replaces libvirt's whole -cpu (QEMU takes the last one): the <cpu> element, its features and every Hyper-V setting stop applying. Devices added with -device/-drive/-netdev/-object/-chardev are unknown to libvirt: virsh, kvmtune and management tools do not see them, libvirt does not reserve their PCI slots, and migration, hot-plug and snapshots do not carry them. -smp, -m, -numa and -machine contradict what the XML says. <qemu:override> changes properties of the devices libvirt creates, also unchecked. Warn for the options above; info when only other options (-fw_cfg, -global, ...) or a <qemu:override> are there.",
                fix: "Express the arguments in libvirt XML (-cpu host,...: <cpu mode='host-passthrough'> with <feature> elements and <features><hyperv>; -device/-drive/-netdev: the matching element under <devices>; -smp/-m/-numa: <vcpu>/<cpu><topology>, <memory>, <cpu><numa>) and drop them from <qemu:commandline>. Environment variables (<qemu:env>) are left alone.",
                risk: "None: kvmtune edits nothing here.",
                class: FixClass::GuestVisible,
                source: "libvirt QEMU driver: Pass-through of arbitrary qemu commands and Overriding properties of QEMU devices (https://libvirt.org/drvqemu.html#pass-through-of-arbitrary-qemu-commands, #overriding-properties-of-qemu-devices, qemu:override since libvirt 8.2); libvirt kbase, QEMU command-line passthrough (https://libvirt.org/kbase/qemu-passthrough-security.html); QEMU System Emulation invocation (-cpu, -device, -object); virt-manager#599 (-set no longer applies to libvirt's JSON -device)",
                needs_host: false,
            },
            check: qemu_commandline,
        },
        Rule {
            meta: Meta {
                id: "net-model-string",
                title: "NIC model is a QEMU device name, not libvirt's virtio",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "libvirt passes an unknown <model type> (virtio-net-pci, virtio-net, ...) to QEMU as a device name: the guest gets a virtio NIC, but libvirt does not treat it as virtio, so it sets up no vhost-net (the data path stays in QEMU), no multiqueue and none of the virtio <driver> options. libvirt's virtio models are virtio, virtio-transitional and virtio-non-transitional.",
                fix: "<model type='virtio'/> (virtio-net-pci-transitional: virtio-transitional; virtio-net-pci-non-transitional: virtio-non-transitional).",
                risk: "None for the guest: it sees the same virtio-net device; vhost-net needs /dev/vhost-net on the host.",
                class: FixClass::Safe,
                source: "libvirt domain format, Network interfaces (Setting the NIC model; virtio-related options); QEMU invocation (-device virtio-net-pci)",
                needs_host: false,
            },
            check: net_model_string,
        },
    ]
}

// ---------------------------------------------------------------------------------------
// qemu namespace

/// Whether `node` itself declares `xmlns:prefix`: `Some(bound to the QEMU namespace)`, or
/// `None` when it does not declare it.
fn declares_qemu(cx: &Cx, node: NodeId, prefix: &str) -> Option<bool> {
    cx.doc
        .attrs(node)
        .find(|(n, _)| n.strip_prefix("xmlns:") == Some(prefix))
        .map(|(_, v)| v == QEMU_NS)
}

/// Whether `prefix` is bound to the QEMU namespace on `node` or one of its ancestors.
fn qemu_prefix(cx: &Cx, node: NodeId, prefix: &str) -> bool {
    let mut at = Some(node);
    while let Some(n) = at {
        if let Some(q) = declares_qemu(cx, n, prefix) {
            return q;
        }
        at = cx.doc.parent(n);
    }
    // undeclared: libvirt's own prefix
    prefix == "qemu"
}

/// The children of `parent` named `local` in the QEMU namespace.
fn qemu_children(cx: &Cx, parent: NodeId, local: &str) -> Vec<NodeId> {
    // the binding of the last prefix seen on `parent` (the children's usually share one)
    let mut inherited: Option<(&str, bool)> = None;
    let mut out = Vec::new();
    for e in cx.doc.elements(parent) {
        let name = cx.doc.name(e);
        // most children are not `prefix:local`: tell them apart without a string search
        let Some(head) = name.strip_suffix(local).and_then(|h| h.strip_suffix(':')) else {
            continue;
        };
        let Some((p, l)) = name.split_once(':') else {
            continue;
        };
        if p.len() != head.len() {
            continue;
        }
        if l != local {
            continue;
        }
        let q = match declares_qemu(cx, e, p) {
            Some(q) => q,
            None => match inherited {
                Some((ip, q)) if ip == p => q,
                _ => {
                    let q = qemu_prefix(cx, parent, p);
                    inherited = Some((p, q));
                    q
                }
            },
        };
        if q {
            out.push(e);
        }
    }
    out
}

/// One QEMU option of `<qemu:commandline>`: the option (`-cpu`, single dash) and its
/// value, when the next `<qemu:arg>` is one.
pub(crate) struct Arg {
    pub opt: String,
    pub node: NodeId,
    pub value: Option<(String, NodeId)>,
}

impl Arg {
    fn val(&self) -> &str {
        self.value.as_ref().map_or("", |(v, _)| v.as_str())
    }
    /// The option and its value for a message, a long value (JSON) cut short: the
    /// evidence has it whole.
    fn text(&self) -> String {
        match &self.value {
            Some((v, _)) if v.chars().count() > 80 => {
                let cut: String = v.chars().take(77).collect();
                format!("{} {cut}...", self.opt)
            }
            Some((v, _)) => format!("{} {}", self.opt, v),
            None => self.opt.clone(),
        }
    }
    fn evidence(&self, cx: &Cx) -> Vec<Evidence> {
        let mut v = vec![cx.ev_attr(self.node, "value")];
        if let Some((_, n)) = &self.value {
            v.push(cx.ev_attr(*n, "value"));
        }
        v
    }
}

/// Element children with their position among the children of their name and how many
/// there are.
type Ranks = Vec<(NodeId, usize, usize)>;

/// [`Cx::ev_attr`] of `value` for the `<qemu:arg>`s of one `<qemu:commandline>` after
/// another: the same evidence, with the commandline's path and its children's positions
/// computed once rather than once per argument.
struct ArgEvidence<'a> {
    /// The commandline, its path, and for each element child: (id, position among the
    /// children of its name, how many there are).
    parent: Option<(NodeId, String, Ranks)>,
    cx: &'a Cx<'a>,
}

impl<'a> ArgEvidence<'a> {
    fn new(cx: &'a Cx<'a>) -> Self {
        ArgEvidence { parent: None, cx }
    }

    fn of(&mut self, node: NodeId) -> Evidence {
        let doc = self.cx.doc;
        let Some(p) = doc.parent(node) else {
            return self.cx.ev_attr(node, "value");
        };
        if self.parent.as_ref().is_none_or(|(q, _, _)| *q != p) {
            let kids: Vec<NodeId> = doc.elements(p).collect();
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for &k in &kids {
                let n = doc.name(k);
                match counts.iter_mut().find(|(c, _)| *c == n) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((n, 1)),
                }
            }
            let mut seen: Vec<(&str, usize)> = Vec::new();
            let mut ranks = Vec::with_capacity(kids.len());
            for &k in &kids {
                let n = doc.name(k);
                let i = match seen.iter_mut().find(|(c, _)| *c == n) {
                    Some((_, c)) => {
                        *c += 1;
                        *c
                    }
                    None => {
                        seen.push((n, 1));
                        1
                    }
                };
                let of = counts.iter().find(|(c, _)| *c == n).map_or(0, |(_, c)| *c);
                ranks.push((k, i, of));
            }
            self.parent = Some((p, doc.path(p), ranks));
        }
        let Some((_, ppath, ranks)) = &self.parent else {
            return self.cx.ev_attr(node, "value");
        };
        let Some(&(_, i, of)) = ranks.iter().find(|(k, _, _)| *k == node) else {
            return self.cx.ev_attr(node, "value");
        };
        let name = doc.name(node);
        let path = if of > 1 {
            format!("{ppath}/{name}[{i}]/@value")
        } else {
            format!("{ppath}/{name}/@value")
        };
        Evidence {
            path,
            line: doc.line(node),
            value: doc.attr(node, "value").unwrap_or("(absent)").to_string(),
        }
    }

    /// [`Arg::evidence`].
    fn arg(&mut self, a: &Arg) -> [Option<Evidence>; 2] {
        [
            Some(self.of(a.node)),
            a.value.as_ref().map(|(_, n)| self.of(*n)),
        ]
    }
}

/// The options of every `<qemu:commandline>` of the domain, in order. A value that does
/// not start with a dash belongs to the option before it.
pub(super) fn qemu_args(cx: &Cx) -> Vec<Arg> {
    qemu_args_in(cx).into_iter().map(owned).collect()
}

/// An [`Arg`] borrowed from the document: (option, node, value and its node).
type BorrowedArg<'a> = (&'a str, NodeId, Option<(&'a str, NodeId)>);

/// A [`BorrowedArg`] copied out of the document.
fn owned(a: BorrowedArg) -> Arg {
    Arg {
        opt: a.0.to_string(),
        node: a.1,
        value: a.2.map(|(v, n)| (v.to_string(), n)),
    }
}

/// [`qemu_args`] without copying them out of the document (several rules look for one).
fn qemu_args_in<'a>(cx: &Cx<'a>) -> Vec<BorrowedArg<'a>> {
    let doc = cx.doc;
    let mut out: Vec<BorrowedArg<'a>> = Vec::new();
    for cl in qemu_children(cx, cx.d.node, "commandline") {
        let mut open = false;
        for a in qemu_children(cx, cl, "arg") {
            let v = doc.attr(a, "value").unwrap_or("");
            if v.starts_with('-') && v.len() > 1 {
                // QEMU accepts --opt as -opt
                let opt = if v.starts_with("--") { &v[1..] } else { v };
                out.push((opt, a, None));
                open = true;
            } else if open && let Some(last) = out.last_mut() {
                last.2 = Some((v, a));
                open = false;
            } else {
                // a bare argument QEMU would take as a disk image (or refuse)
                out.push((v, a, None));
            }
        }
    }
    out
}

/// The `-cpu` that replaces libvirt's (QEMU takes the last one; libvirt puts the
/// passthrough arguments after its own).
/// Found once per [`Cx`] (several rules ask).
pub(super) fn cpu_override<'c>(cx: &'c Cx) -> Option<&'c Arg> {
    cx.memo
        .cpu_override
        .get_or_init(|| {
            qemu_args_in(cx)
                .into_iter()
                .rev()
                .find(|a| a.0 == "-cpu")
                .map(owned)
        })
        .as_ref()
}

/// The comma-separated properties of a -cpu value after the model, as (name, on).
fn cpu_props(value: &str) -> Vec<(String, bool)> {
    value
        .split(',')
        .skip(1)
        .filter(|t| !t.is_empty())
        .map(|t| {
            if let Some(n) = t.strip_prefix('-') {
                (n.to_string(), false)
            } else if let Some(n) = t.strip_prefix('+') {
                (n.to_string(), true)
            } else if let Some((n, v)) = t.split_once('=') {
                (
                    n.to_string(),
                    !matches!(v, "off" | "false" | "no" | "n" | "0"),
                )
            } else {
                (t.to_string(), true)
            }
        })
        .collect()
}

fn cpu_prop_off(value: &str, name: &str) -> bool {
    cpu_props(value)
        .iter()
        .rev()
        .find(|(n, _)| n.replace('_', "-") == name)
        .is_some_and(|(_, on)| !on)
}

/// The Hyper-V flags a -cpu value turns on (`hv-relaxed` → `relaxed`; `passthrough` for
/// hv-passthrough).
pub(super) fn cpu_hv_flags(value: &str) -> Vec<String> {
    cpu_props(value)
        .into_iter()
        .filter(|(_, on)| *on)
        .filter_map(|(n, _)| {
            let n = n.replace('_', "-");
            n.strip_prefix("hv-").map(str::to_string)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// what hides the hypervisor

/// What hides the CPUID hypervisor bit or the KVM leaves from the guest.
#[derive(Clone)]
pub(crate) struct Hider {
    /// In words, for messages.
    pub what: String,
    pub evidence: Vec<Evidence>,
    /// The XML node a fix edits (none for a qemu:commandline -cpu).
    pub node: Option<NodeId>,
}

/// The CPUID hypervisor bit disabled: by the last qemu:commandline -cpu when there is one
/// (it replaces libvirt's -cpu), else by a `<cpu><feature policy='disable|forbid'>`.
/// Found once per [`Cx`] (several rules ask).
pub(super) fn hypervisor_hider<'c>(cx: &'c Cx) -> Option<&'c Hider> {
    cx.memo
        .hypervisor_hider
        .get_or_init(|| find_hypervisor_hider(cx))
        .as_ref()
}

/// When a qemu:commandline -cpu replaces libvirt's, it alone decides: the hider when it
/// turns CPU property `prop` off, else none (`Some(None)`). `None` without an override.
fn override_hider(cx: &Cx, prop: &str) -> Option<Option<Hider>> {
    let a = cpu_override(cx)?;
    Some(cpu_prop_off(a.val(), prop).then(|| Hider {
        what: format!("qemu:commandline -cpu '{}'", a.val()),
        evidence: a.evidence(cx),
        node: None,
    }))
}

fn find_hypervisor_hider(cx: &Cx) -> Option<Hider> {
    if let Some(by_override) = override_hider(cx, "hypervisor") {
        return by_override;
    }
    let f = cx.d.cpu.as_ref()?.features.iter().find(|f| {
        f.name == "hypervisor" && matches!(f.policy.as_deref(), Some("disable") | Some("forbid"))
    })?;
    Some(Hider {
        what: cx.doc.start_tag(f.node),
        evidence: vec![cx.ev(f.node)],
        node: Some(f.node),
    })
}

/// The KVM signature leaves hidden: `kvm=off` in a qemu:commandline -cpu, else
/// `<features><kvm><hidden state='on'/>`.
pub(super) fn kvm_hider(cx: &Cx) -> Option<Hider> {
    if let Some(by_override) = override_hider(cx, "kvm") {
        return by_override;
    }
    let h =
        cx.d.features
            .kvm
            .iter()
            .find(|f| f.name == "hidden" && f.state == Some(true))?;
    Some(Hider {
        what: cx.doc.start_tag(h.node),
        evidence: vec![cx.ev(h.node)],
        node: Some(h.node),
    })
}

/// Why Windows does not get the Hyper-V enlightenments of the XML: the hypervisor bit
/// hidden, or a qemu:commandline -cpu that replaces libvirt's (with the hv flags it
/// turns on itself, `None` when the bit is hidden).
pub(crate) struct Blind {
    pub hider: Hider,
    pub hv_flags: Option<Vec<String>>,
}

/// Found once per [`Cx`] (several rules ask).
pub(super) fn windows_blind<'c>(cx: &'c Cx) -> Option<&'c Blind> {
    cx.memo
        .windows_blind
        .get_or_init(|| find_windows_blind(cx))
        .as_ref()
}

fn find_windows_blind(cx: &Cx) -> Option<Blind> {
    if let Some(h) = hypervisor_hider(cx) {
        return Some(Blind {
            hider: h.clone(),
            hv_flags: None,
        });
    }
    let a = cpu_override(cx)?;
    Some(Blind {
        hider: Hider {
            what: format!(
                "qemu:commandline -cpu '{}', which replaces libvirt's -cpu",
                a.val()
            ),
            evidence: a.evidence(cx),
            node: None,
        },
        hv_flags: Some(cpu_hv_flags(a.val())),
    })
}

/// Whether a PCI device is passed through (often a GPU).
/// Whether cpu-hypervisor-hidden offers to unhide the CPUID hypervisor bit: the rule is on,
/// an XML `<feature>` hides it, and no PCI device is passed through.
pub(super) fn unhide_offered(cx: &Cx) -> bool {
    super::enabled("cpu-hypervisor-hidden", cx.profile)
        && cx.d.is_hvm()
        && !pci_passthrough(cx)
        && hypervisor_hider(cx).is_some_and(|h| h.node.is_some())
}

pub(super) fn pci_passthrough(cx: &Cx) -> bool {
    cx.d.devices
        .hostdevs
        .iter()
        .any(|h| h.dtype.as_deref() == Some("pci"))
}

// ---------------------------------------------------------------------------------------
// qemu-commandline

/// The device or object type a -device/-object value names (`virtio-net-pci,id=n0` or
/// JSON `{"driver":"virtio-net-pci",...}`).
fn driver_of(value: &str, key: &str) -> String {
    let v = value.trim();
    if v.starts_with('{') {
        let pat = format!("\"{key}\"");
        if let Some(i) = v.find(&pat) {
            let rest = v[i + pat.len()..].trim_start();
            let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
            if let Some(rest) = rest.strip_prefix('"') {
                return rest.split('"').next().unwrap_or("").to_string();
            }
        }
        return String::new();
    }
    let first = v.split(',').next().unwrap_or("");
    first
        .strip_prefix(&format!("{key}="))
        .or_else(|| first.strip_prefix("driver="))
        .or_else(|| first.strip_prefix("qom-type="))
        .unwrap_or(first)
        .to_string()
}

/// The libvirt element for a QEMU device.
fn device_element(driver: &str) -> &'static str {
    let d = driver;
    let any = |p: &[&str]| p.iter().any(|x| d.starts_with(x));
    if any(&["virtio-net", "e1000", "rtl8139", "vmxnet3"]) {
        "<interface>"
    } else if any(&[
        "virtio-blk",
        "scsi-hd",
        "scsi-cd",
        "ide-hd",
        "ide-cd",
        "nvme",
    ]) {
        "<disk>"
    } else if any(&["vfio-pci"]) {
        "<hostdev mode='subsystem' type='pci'>"
    } else if any(&["usb-host"]) {
        "<hostdev mode='subsystem' type='usb'>"
    } else if any(&["ivshmem"]) {
        "<shmem>"
    } else if any(&[
        "virtio-gpu",
        "virtio-vga",
        "VGA",
        "qxl",
        "cirrus",
        "bochs",
        "ramfb",
    ]) {
        "<video>"
    } else if any(&["vhost-user-fs", "virtio-9p"]) {
        "<filesystem>"
    } else if any(&["virtio-rng"]) {
        "<rng>"
    } else if any(&[
        "virtio-input",
        "virtio-keyboard",
        "virtio-mouse",
        "virtio-tablet",
        "usb-tablet",
        "usb-kbd",
        "usb-mouse",
    ]) {
        "<input>"
    } else if any(&[
        "virtio-serial",
        "virtserialport",
        "virtconsole",
        "isa-serial",
    ]) {
        "<channel>, <serial> or <console>"
    } else if any(&["intel-hda", "ich9-intel-hda", "hda-", "ac97", "usb-audio"]) {
        "<sound>"
    } else if any(&["tpm-"]) {
        "<tpm>"
    } else if any(&["virtio-balloon"]) {
        "<memballoon>"
    } else if any(&["i6300esb", "ib700"]) {
        "<watchdog>"
    } else if any(&["virtio-iommu", "intel-iommu", "amd-iommu"]) {
        "<iommu>"
    } else if any(&[
        "pcie-root-port",
        "pci-bridge",
        "virtio-scsi",
        "qemu-xhci",
        "usb-ehci",
    ]) {
        "<controller>"
    } else {
        "the matching element under <devices>, if libvirt has one"
    }
}

/// What an option does behind libvirt's back and the libvirt element for it; `None` for an
/// option that is only INFO (not one of the replacing or device-adding ones).
fn judge(a: &Arg, kvmfr: bool) -> Option<String> {
    let v = a.val();
    // Looking Glass's kvmfr: an ivshmem device backed by the /dev/kvmfrN char device.
    // libvirt's <shmem> maps a POSIX shared memory file (or an ivshmem server socket),
    // never a char device: there is nothing to move these arguments to
    const KVMFR: &str = "; libvirt has no equivalent for an ivshmem device backed by the Looking Glass kvmfr device (/dev/kvmfrN): <shmem> maps only a file under /dev/shm or an ivshmem server, so keep these arguments";
    if kvmfr {
        let ivshmem = a.opt == "-device" && driver_of(v, "driver").starts_with("ivshmem");
        let backend = a.opt == "-object" && v.contains("/dev/kvmfr");
        if ivshmem || backend {
            let what = if ivshmem {
                format!("adds a device {}", driver_of(v, "driver"))
            } else {
                format!("adds an object {}", driver_of(v, "qom-type"))
            };
            return Some(format!("{what} libvirt does not know{KVMFR}"));
        }
    }
    Some(match a.opt.as_str() {
        "-cpu" => {
            let model = v.split(',').next().unwrap_or("");
            let cpu = if model == "host" || model == "max" {
                "<cpu mode='host-passthrough'>".to_string()
            } else {
                format!("<cpu mode='custom'><model>{model}</model>")
            };
            format!(
                "replaces libvirt's -cpu: the <cpu> element and the Hyper-V and KVM <features> no longer apply; in libvirt: {cpu} with <feature> elements (hv-*: <features><hyperv>; kvm=off: <features><kvm><hidden>)"
            )
        }
        "-device" => {
            let d = driver_of(v, "driver");
            format!(
                "adds a device {} libvirt does not know; in libvirt: {}",
                if d.is_empty() { "" } else { d.as_str() },
                device_element(&d)
            )
            .replace("device  libvirt", "device libvirt")
        }
        "-drive" => "adds a drive libvirt does not know; in libvirt: <disk>".into(),
        "-netdev" => "adds a network backend libvirt does not know; in libvirt: <interface>".into(),
        "-chardev" => "adds a character device libvirt does not know; in libvirt: <serial>, <console> or <channel>".into(),
        "-object" => {
            let t = driver_of(v, "qom-type");
            let el = if t == "input-linux" {
                "<input type='evdev'>"
            } else if t.starts_with("memory-backend") {
                "<memoryBacking>, <shmem> or <memory model='nvdimm'>"
            } else if t == "iothread" {
                "<iothreads>"
            } else if t.starts_with("rng-") {
                "<rng>"
            } else if t.starts_with("secret") || t.starts_with("tls-creds") {
                "the libvirt secret or TLS settings of the device"
            } else {
                "the matching libvirt element"
            };
            format!("adds an object {t} libvirt does not know; in libvirt: {el}")
        }
        "-set" => "changes a property of a device libvirt creates (libvirt now passes -device as JSON, which -set no longer reaches); in libvirt: the device's own XML, else <qemu:override>".into(),
        "-smp" => "contradicts <vcpu>; in libvirt: <vcpu> and <cpu><topology>".into(),
        "-m" => "contradicts <memory>; in libvirt: <memory> (and <maxMemory>)".into(),
        "-numa" => "contradicts the guest NUMA layout; in libvirt: <cpu><numa><cell>".into(),
        "-machine" | "-M" => {
            "overrides the machine options; in libvirt: <os><type machine=...> and <features>"
                .into()
        }
        _ => return None,
    })
}

fn qemu_commandline(cx: &Cx, out: &mut Out) {
    let args = qemu_args(cx);
    if !args.is_empty() {
        let mut warn = Vec::new();
        let mut other = Vec::new();
        let mut evidence = Vec::new();
        let kvmfr = args.iter().any(|a| a.val().contains("/dev/kvmfr"));
        let mut ev = ArgEvidence::new(cx);
        for a in &args {
            evidence.extend(ev.arg(a).into_iter().flatten());
            match judge(a, kvmfr) {
                Some(j) => warn.push(format!("{} ({j})", a.text())),
                None => other.push(a.text()),
            }
        }
        let mut msg = String::from("<qemu:commandline> passes QEMU arguments libvirt does not see");
        if !warn.is_empty() {
            msg.push_str(&format!(": {}", warn.join("; ")));
        }
        if !other.is_empty() {
            msg.push_str(&format!(
                "{}{}",
                if warn.is_empty() { ": " } else { "; also " },
                other.join(", ")
            ));
        }
        msg.push_str(". libvirt's XML is no longer the whole truth: virsh and kvmtune cannot see this, migration and hot-plug may break");
        let sev = if warn.is_empty() {
            Severity::Info
        } else {
            Severity::Warn
        };
        out.at(sev, msg, evidence);
    }
    for ov in qemu_children(cx, cx.d.node, "override") {
        for dev in qemu_children(cx, ov, "device") {
            let alias = cx.doc.attr(dev, "alias").unwrap_or("?");
            let mut props = Vec::new();
            let mut evidence = vec![cx.ev(dev)];
            for fe in qemu_children(cx, dev, "frontend") {
                for p in qemu_children(cx, fe, "property") {
                    let name = cx.doc.attr(p, "name").unwrap_or("?");
                    let ty = cx.doc.attr(p, "type").unwrap_or("?");
                    props.push(match (ty, cx.doc.attr(p, "value")) {
                        ("remove", _) => format!("{name} removed"),
                        (_, Some(v)) => format!("{name}={v} ({ty})"),
                        (_, None) => format!("{name} ({ty})"),
                    });
                    evidence.push(cx.ev(p));
                }
            }
            out.at(
                Severity::Info,
                format!(
                    "<qemu:override> changes QEMU properties of device '{alias}' behind libvirt's back: {}; libvirt does not check them (express them in the device's XML where libvirt has an attribute for them)",
                    if props.is_empty() {
                        "none listed".to_string()
                    } else {
                        props.join(", ")
                    }
                ),
                evidence,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// cpu-hypervisor-hidden

/// QEMU device names libvirt passes through without treating them as virtio, with the
/// libvirt model for the same device.
const NIC_STRINGS: &[(&str, &str)] = &[
    ("virtio-net-pci", "virtio"),
    ("virtio-net", "virtio"),
    ("virtio-net-device", "virtio"),
    ("virtio-net-pci-transitional", "virtio-transitional"),
    ("virtio-net-pci-non-transitional", "virtio-non-transitional"),
];

fn net_model_string(cx: &Cx, out: &mut Out) {
    for nic in &cx.d.devices.interfaces {
        let (Some(m), Some(mn)) = (nic.model.as_deref(), nic.model_node) else {
            continue;
        };
        let Some((_, to)) = NIC_STRINGS.iter().find(|(s, _)| *s == m) else {
            continue;
        };
        let mut edits = vec![Edit::set(cx.doc, mn, "type", to)];
        let mut class = None;
        if m == "virtio-net-device" {
            // the virtio-mmio transport: libvirt's virtio is PCI unless the address says
            // virtio-mmio
            match cx.doc.child(nic.node, "address") {
                None => edits.push(Edit::set_at(
                    cx.doc,
                    nic.node,
                    vec![Seg::new("address")],
                    "type",
                    "virtio-mmio",
                )),
                Some(a) if cx.doc.attr(a, "type") == Some("virtio-mmio") => {}
                Some(_) => {
                    class = Some((
                        FixClass::GuestVisible,
                        "The guest sees the NIC move from the virtio-mmio transport to PCI: its interface name may change.",
                    ))
                }
            }
        }
        // queues beyond the vCPUs, ignored so far, start to count once the model is
        // libvirt's: capped here as queues-exceed-vcpus would, so one apply finishes
        let n = cx.d.vcpu.max.max(1);
        if let Some(drv) = cx.doc.child(nic.node, "driver")
            && cx.doc.child(drv, "iothreads").is_none()
            && cx
                .doc
                .attr(drv, "queues")
                .and_then(|q| q.trim().parse::<u32>().ok())
                .is_some_and(|q| q > n)
            && super::enabled("queues-exceed-vcpus", cx.profile)
        {
            edits.push(Edit::set(cx.doc, drv, "queues", &n.to_string()));
        }
        let f = out.finding(
            format!(
                "{} has model '{m}', a QEMU device name: libvirt passes it through without vhost-net, multiqueue or virtio options (libvirt's model: '{to}')",
                nic.label()
            ),
            vec![cx.ev_attr(mn, "type")],
        );
        f.fix(
            format!("Use libvirt's model '{to}'"),
            edits,
            virsh_edit(&cx.shell_name(), &format!("<model type='{to}'/>")),
            Applies::NextBoot,
        );
        if let Some((c, r)) = class {
            f.class(c, r);
        }
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    const NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

    /// A domain with the QEMU namespace declared on its root.
    fn qdom(extra: &str) -> String {
        dom(extra).replacen(
            "<domain type='kvm'>",
            &format!("<domain type='kvm' xmlns:qemu='{NS}'>"),
            1,
        )
    }

    fn cmdline(args: &[&str]) -> String {
        let a: String = args
            .iter()
            .map(|a| format!("<qemu:arg value='{a}'/>"))
            .collect();
        format!("<qemu:commandline>{a}</qemu:commandline>")
    }

    fn osinfo(id: &str) -> String {
        format!(
            "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='{id}'/></libosinfo:libosinfo></metadata>"
        )
    }

    pub(crate) const WIN10: &str = "http://microsoft.com/win/10";
    pub(crate) const FEDORA: &str = "http://fedoraproject.org/fedora/40";

    const GPU: &str = "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>\
<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev></devices>";
    const USB: &str = "<devices><hostdev mode='subsystem' type='usb' managed='yes'><source>\
<vendor id='0x046d'/><product id='0xc52b'/></source></hostdev></devices>";
    const NO_HV: &str =
        "<cpu mode='host-passthrough'><feature policy='disable' name='hypervisor'/></cpu>";
    const KVM_HIDDEN: &str = "<features><kvm><hidden state='on'/></kvm></features>";

    fn nic(model: &str) -> String {
        format!(
            "<vcpu>2</vcpu><devices><interface type='bridge'><source bridge='br0'/>\
<model type='{model}'/></interface></devices>"
        )
    }

    pub(crate) fn cases() -> Vec<Case> {
        vec![
            // qemu-commandline
            case(
                "-device added behind libvirt",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&["-device", "virtio-net-pci,netdev=n0"]))],
                WARN,
            ),
            case(
                "-cpu override",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&["-cpu", "host,kvm=off,hv_relaxed"]))],
                WARN,
            ),
            case(
                "-smp override",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&["-smp", "4"]))],
                WARN,
            ),
            case(
                "JSON -object",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&[
                    "-object",
                    "{\"qom-type\":\"input-linux\",\"id\":\"kbd\",\"evdev\":\"/dev/input/event3\"}",
                ]))],
                WARN,
            ),
            case(
                "namespace declared on the element",
                "qemu-commandline",
                "server",
                None,
                vec![dom(&format!(
                    "<qemu:commandline xmlns:qemu='{NS}'><qemu:arg value='-device'/>\
<qemu:arg value='ivshmem-plain,memdev=m'/></qemu:commandline>"
                ))],
                WARN,
            ),
            case(
                "another prefix for the QEMU namespace",
                "qemu-commandline",
                "server",
                None,
                vec![dom(&format!(
                    "<q:commandline xmlns:q='{NS}'><q:arg value='-netdev'/>\
<q:arg value='user,id=n0'/></q:commandline>"
                ))],
                WARN,
            ),
            case(
                "-set on a libvirt device",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&[
                    "-set",
                    "device.scsi0-0-0-1.rotation_rate=1",
                ]))],
                WARN,
            ),
            case(
                "another option only: info",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(&cmdline(&["-fw_cfg", "opt/x,string=1"]))],
                INFO,
            ),
            case(
                "qemu:override of a device property: info",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(
                    "<qemu:override><qemu:device alias='ua-nic0'><qemu:frontend>\
<qemu:property name='romfile' type='string' value=''/></qemu:frontend></qemu:device></qemu:override>",
                )],
                INFO,
            ),
            case(
                "environment variables only",
                "qemu-commandline",
                "server",
                None,
                vec![qdom(
                    "<qemu:commandline><qemu:env name='QEMU_AUDIO_DRV' value='pa'/></qemu:commandline>",
                )],
                NONE,
            ),
            case(
                "commandline of another namespace",
                "qemu-commandline",
                "server",
                None,
                vec![dom(
                    "<x:commandline xmlns:x='http://example.com/x'><x:arg value='-device'/></x:commandline>",
                )],
                NONE,
            ),
            // cpu-hypervisor-hidden
            case(
                "hypervisor bit disabled",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!("{}{NO_HV}", osinfo(WIN10)))],
                WARN,
            ),
            case(
                "hypervisor bit forbidden, GPU passed through: still a warning",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!(
                    "<cpu mode='custom'><model>EPYC</model><feature policy='forbid' name='hypervisor'/></cpu>{GPU}"
                ))],
                WARN,
            ),
            case(
                "hypervisor bit required",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(
                    "<cpu mode='host-passthrough'><feature policy='require' name='hypervisor'/></cpu>",
                )],
                NONE,
            ),
            case(
                "another feature disabled",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(
                    "<cpu mode='host-passthrough'><feature policy='disable' name='x2apic'/></cpu>",
                )],
                NONE,
            ),
            case(
                "kvm hidden, Linux",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!("{}{KVM_HIDDEN}", osinfo(FEDORA)))],
                WARN,
            ),
            case(
                "kvm hidden, GPU passed through: info",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!("{}{KVM_HIDDEN}{GPU}", osinfo(WIN10)))],
                INFO,
            ),
            case(
                "kvm hidden, Windows without a GPU: info",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!("{}{KVM_HIDDEN}", osinfo(WIN10)))],
                INFO,
            ),
            case(
                "kvm hidden, a USB device only: warn",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom(&format!("{}{KVM_HIDDEN}{USB}", osinfo(FEDORA)))],
                WARN,
            ),
            case(
                "kvm hidden off",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![dom("<features><kvm><hidden state='off'/></kvm></features>")],
                NONE,
            ),
            case(
                "-cpu override hides the hypervisor bit",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![qdom(&cmdline(&["-cpu", "host,-hypervisor"]))],
                WARN,
            ),
            case(
                "-cpu override replaces an XML that hides it",
                "cpu-hypervisor-hidden",
                "server",
                None,
                vec![qdom(&format!(
                    "{NO_HV}{}",
                    cmdline(&["-cpu", "host,hv_relaxed"])
                ))],
                NONE,
            ),
            // net-model-string
            case(
                "virtio-net-pci",
                "net-model-string",
                "server",
                None,
                vec![dom(&nic("virtio-net-pci"))],
                WARN,
            ),
            case(
                "virtio-net-pci-non-transitional",
                "net-model-string",
                "desktop",
                None,
                vec![dom(&nic("virtio-net-pci-non-transitional"))],
                WARN,
            ),
            case(
                "libvirt's virtio-non-transitional",
                "net-model-string",
                "server",
                None,
                vec![dom(&nic("virtio-non-transitional"))],
                NONE,
            ),
            case(
                "libvirt's virtio",
                "net-model-string",
                "server",
                None,
                vec![dom(&nic("virtio"))],
                NONE,
            ),
            case(
                "e1000 is net-model's",
                "net-model-string",
                "server",
                None,
                vec![dom(&nic("e1000"))],
                NONE,
            ),
        ]
    }

    #[test]
    fn qemu_rules() {
        run_cases(&cases());
    }

    fn fix_of<'a>(v: &'a [crate::audit::Finding], rule: &str) -> Option<&'a crate::audit::Fix> {
        v.iter()
            .find(|f| f.rule == rule)
            .and_then(|f| f.fix.as_ref())
    }

    fn fixed(src: &str, rule: &str) -> String {
        let v = findings(&[src.to_string()], "server", None);
        let f = fix_of(&v, rule).unwrap_or_else(|| panic!("no {rule} fix in {v:#?}"));
        let mut doc = kvmtune_domain::Document::parse(src).unwrap();
        crate::audit::apply(&mut doc, &f.edits);
        doc.serialize()
    }

    #[test]
    fn commandline_evidence_is_each_arg_and_advice_names_the_libvirt_element() {
        let d = qdom(&format!(
            "{}<qemu:commandline><qemu:env name='A' value='b'/></qemu:commandline>",
            cmdline(&[
                "-cpu",
                "host,kvm=off",
                "-device",
                "vfio-pci,host=01:00.0",
                "-S"
            ])
        ));
        let v = findings(&[d], "server", None);
        let f: Vec<_> = v.iter().filter(|f| f.rule == "qemu-commandline").collect();
        assert_eq!(f.len(), 1, "{v:#?}");
        let f = f[0];
        assert_eq!(f.evidence.len(), 5, "{:#?}", f.evidence);
        assert_eq!(f.evidence[1].value, "host,kvm=off");
        assert!(f.fix.is_none());
        for s in [
            "<cpu mode='host-passthrough'>",
            "<hostdev mode='subsystem' type='pci'>",
            "-S",
        ] {
            assert!(f.message.contains(s), "{s}: {}", f.message);
        }
        assert!(!f.message.contains("QEMU_AUDIO"), "{}", f.message);
    }

    #[test]
    fn override_names_the_alias_and_properties() {
        let d = qdom(
            "<qemu:override><qemu:device alias='ua-disk0'><qemu:frontend>\
<qemu:property name='serial' type='string' value='abc'/><qemu:property name='bootindex' type='remove'/>\
</qemu:frontend></qemu:device></qemu:override>",
        );
        let v = findings(&[d], "server", None);
        let f = v.iter().find(|f| f.rule == "qemu-commandline").unwrap();
        for s in ["'ua-disk0'", "serial=abc (string)", "bootindex removed"] {
            assert!(f.message.contains(s), "{s}: {}", f.message);
        }
        assert_eq!(f.evidence.len(), 3);
    }

    #[test]
    fn hypervisor_fixes_only_without_pci_passthrough() {
        let src = dom(&format!("{}{NO_HV}", osinfo(FEDORA)));
        let xml = fixed(&src, "cpu-hypervisor-hidden");
        assert!(!xml.contains("hypervisor"), "{xml}");
        let v = findings(&[src], "server", None);
        let f = v
            .iter()
            .find(|f| f.rule == "cpu-hypervisor-hidden")
            .unwrap();
        assert!(f.message.contains("kvmclock"), "{}", f.message);
        assert_eq!(
            f.fix.as_ref().unwrap().class,
            crate::audit::FixClass::GuestVisible
        );

        let gpu = dom(&format!("{}{NO_HV}{KVM_HIDDEN}{GPU}", osinfo(WIN10)));
        let v = findings(&[gpu], "server", None);
        let mine: Vec<_> = v
            .iter()
            .filter(|f| f.rule == "cpu-hypervisor-hidden")
            .collect();
        assert_eq!(mine.len(), 2, "{v:#?}");
        assert!(mine.iter().all(|f| f.fix.is_none()), "{mine:#?}");
        assert!(
            mine.iter()
                .any(|f| f.message.contains("NVIDIA") && f.message.contains("deliberate")),
            "{mine:#?}"
        );
        assert!(
            mine.iter()
                .any(|f| f.message.contains("Hyper-V enlightenment")),
            "{mine:#?}"
        );

        let xml = fixed(
            &dom(&format!("{}{KVM_HIDDEN}", osinfo(FEDORA))),
            "cpu-hypervisor-hidden",
        );
        assert!(
            xml.contains("<hidden state=\"off\"/>") || xml.contains("<hidden state='off'/>"),
            "{xml}"
        );
    }

    #[test]
    fn net_model_strings_map_to_libvirts_models() {
        for (from, to) in [
            ("virtio-net-pci", "virtio"),
            ("virtio-net", "virtio"),
            ("virtio-net-pci-transitional", "virtio-transitional"),
            ("virtio-net-pci-non-transitional", "virtio-non-transitional"),
        ] {
            let src = dom(&nic(from));
            let xml = fixed(&src, "net-model-string");
            assert!(
                xml.contains(&format!("type='{to}'")) || xml.contains(&format!("type=\"{to}\"")),
                "{from}: {xml}"
            );
            let v = findings(&[src], "server", None);
            let f = fix_of(&v, "net-model-string").unwrap();
            assert_eq!(f.class, crate::audit::FixClass::Safe);
            // net-model and net-multiqueue leave such a NIC to this rule
            assert!(
                !v.iter()
                    .any(|f| f.rule == "net-model" || f.rule == "net-multiqueue"),
                "{v:#?}"
            );
        }
        // the virtio-mmio transport stays
        let xml = fixed(&dom(&nic("virtio-net-device")), "net-model-string");
        assert!(xml.contains("virtio-mmio"), "{xml}");
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;
    use crate::audit::testkit::{dom, with_cx};

    #[test]
    fn the_cpu_override_is_found_once_per_context() {
        let xml = "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
<name>vm</name><memory unit='MiB'>2048</memory><os><type arch='x86_64'>hvm</type></os>\
<qemu:commandline><qemu:arg value='-cpu'/><qemu:arg value='host,kvm=off'/>\
<qemu:arg value='-cpu'/><qemu:arg value='host,-hypervisor'/></qemu:commandline></domain>";
        with_cx(&[xml.to_string()], "server", None, |cx| {
            let a = cpu_override(cx).expect("a -cpu");
            // QEMU takes the last -cpu
            assert_eq!(a.val(), "host,-hypervisor");
            // the second ask gets the same one, not a new search
            let b = cpu_override(cx).expect("a -cpu");
            assert!(std::ptr::eq(a, b));
            // and so do the rules built on it
            let h = hypervisor_hider(cx).expect("hidden by the -cpu");
            assert!(std::ptr::eq(h, hypervisor_hider(cx).expect("again")));
        });
        // close case: no qemu:commandline, no override (and it stays none)
        with_cx(&[dom("")], "server", None, |cx| {
            assert!(cpu_override(cx).is_none());
            assert!(cpu_override(cx).is_none());
            assert!(hypervisor_hider(cx).is_none());
        });
    }
}

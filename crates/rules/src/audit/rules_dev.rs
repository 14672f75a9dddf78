//! Domain rules: devices (USB, input, disks, network, legacy hardware).

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, virsh_edit};
use kvmtune_domain::{GuestOs, NodeId};
use kvmtune_profile::Want;

pub(super) const EMULATED_NICS: &[&str] = &[
    "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "i82551", "i82557b", "i82559er", "vmxnet3",
];

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "dev-usb-idle",
                title: "USB controllers with nothing on them",
                severity: Severity::Warn,
                profiles: &["server", "latency", "migratable", "dense"],
                why: "Every emulated USB controller is a PCI device the guest drives; UHCI/EHCI companion sets poll on timers and keep waking the emulator (digoal, 2015: an idle guest at 9% host CPU; kcli#489: 13% → 1% without USB). A server with no USB device needs no controller.",
                fix: "Replace them with <controller type='usb' model='none'/>.",
                risk: "No USB devices can be attached (hot-plug included) until a controller is added back.",
                class: FixClass::Safe,
                source: "digoal, \"KVM VM CPU overhead: an optimisation example (CPU flags)\", blog, 2015; kcli#489",
                needs_host: false,
            },
            check: usb_idle,
        },
        Rule {
            meta: Meta {
                id: "dev-tablet",
                title: "USB tablet does not fit the profile",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "A USB tablet gives absolute mouse positioning for graphical consoles, but the guest polls it and the USB controller it needs about 1000 times a second: measurable idle CPU and context switches on servers. Desktops want it: without it the mouse pointer drifts.",
                fix: "Servers: remove <input type='tablet' bus='usb'/> (aarch64/riscv64 virt, which have no PS/2: make it <input type='tablet' bus='virtio'/>). Desktops: add a USB tablet, unless a virtio tablet is there already. s390x is left alone.",
                risk: "Without a tablet the VNC/SPICE pointer is relative (servers rarely notice). On machines without PS/2 (aarch64 and riscv64 virt) the tablet is not removed but replaced by a virtio tablet, so the guest keeps an absolute pointer (it needs the virtio-input driver; Windows: vioinput).",
                class: FixClass::Safe,
                source: "KVM 技术详解与实践 (KVM in Depth and Practice), ch. 2.3; Proxmox VE docs (use tablet for pointer)",
                needs_host: false,
            },
            check: tablet,
        },
        Rule {
            meta: Meta {
                id: "disk-bus",
                title: "Disk on an emulated bus",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "IDE and SATA (AHCI) disks, and SCSI disks on an emulated HBA (lsilogic, lsisas1068, lsisas1078, ...), are emulated register by register: each request costs several VM exits, one request in flight for IDE. virtio-blk (or virtio-scsi) uses shared-memory queues and is several times faster.",
                fix: "IDE/SATA disks: target bus='virtio' (dev vdX), dropping the drive address; a disk with <wwn>, <vendor> or <product> (which virtio-blk cannot carry) is left to move by hand. SCSI disks: the controller's model becomes virtio-scsi (one finding per controller, listing its disks): names, addresses, wwn, vendor, product and serial stay.",
                risk: "High: the guest needs virtio drivers before the switch (Windows: install virtio-win first or it will not boot); Linux fstab/boot entries using /dev/sdX or /dev/hdX names must use UUIDs.",
                class: FixClass::GuestDriver,
                source: "\"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012",
                needs_host: false,
            },
            check: disk_bus,
        },
        Rule {
            meta: Meta {
                id: "disk-cache",
                title: "Disk cache mode not for production",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "writethrough syncs every write to the host disk (slow); the default and writeback double-cache in the host page cache (memory pressure, data at risk if the host crashes and the guest did not flush); unsafe ignores flushes. cache='none' uses O_DIRECT: no host page cache, guest flushes honoured.",
                fix: "<driver cache='none'/>; the io mode is left as it is (disk-io-mode advises io='native' for block devices; sparse or qcow2 files keep io='threads', or io_uring where QEMU and the kernel support it).",
                risk: "Guests that relied on the host page cache read more from disk; on file systems without O_DIRECT support (tmpfs) the domain will not start.",
                class: FixClass::Safe,
                source: "\"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012",
                needs_host: false,
            },
            check: disk_cache,
        },
        Rule {
            meta: Meta {
                id: "disk-io",
                title: "Disk I/O mode or iothreads",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "Virtio disks without an iothread are served by QEMU's main loop, which also runs device emulation and the monitor: busy disks then add latency to everything else. And io='native' needs O_DIRECT (cache none or directsync); with another cache mode QEMU refuses to start or silently uses threads.",
                fix: "Use cache='none' with io='native'; give virtio disks an iothread (<iothreads> and driver iothread='N').",
                risk: "Iothreads add a host thread each; they need pinning on latency hosts.",
                class: FixClass::Safe,
                source: "libvirt domain format (disk driver io, iothread)",
                needs_host: false,
            },
            check: disk_io,
        },
        Rule {
            meta: Meta {
                id: "net-model",
                title: "Emulated NIC or vhost off",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "e1000 and rtl8139 emulate real NICs register by register (many exits per packet); virtio-net with vhost moves the data path into the host kernel. driver name='qemu' turns vhost off.",
                fix: "<model type='virtio'/> and no driver name='qemu' (vhost is the default when /dev/vhost-net exists).",
                risk: "The guest needs virtio-net drivers (Windows: virtio-win); the NIC name and MAC-bound config may change in the guest.",
                class: FixClass::GuestDriver,
                source: "digoal, \"KVM VM CPU overhead: an optimisation example (CPU flags)\", blog, 2015 (vhost=on); \"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012",
                needs_host: false,
            },
            check: net_model,
        },
        Rule {
            meta: Meta {
                id: "net-multiqueue",
                title: "Multi-vCPU guest with single-queue virtio-net",
                severity: Severity::Info,
                profiles: &["server", "latency", "dense"],
                why: "One queue means one vCPU handles all packet interrupts and one vhost thread does all the copying: throughput stops scaling past one core.",
                fix: "<driver queues='N'/> with N = vCPUs (at most 8).",
                risk: "Older guest kernels need 'ethtool -L eth0 combined N' to use the queues; more host threads.",
                class: FixClass::GuestVisible,
                source: "libvirt domain format (interface driver queues)",
                needs_host: false,
            },
            check: net_multiqueue,
        },
        Rule {
            meta: Meta {
                id: "dev-legacy",
                title: "Legacy devices the profile has no use for",
                severity: Severity::Info,
                profiles: &["*"],
                why: "Sound cards, floppy drives and extra video adapters on a server are emulated hardware nobody uses: they cost PCI slots, guest driver wake-ups and attack surface (digoal's 2015 example removed them).",
                fix: "Remove <sound>, floppy <disk> and secondary <video> devices.",
                risk: "None for servers; desktops may want sound.",
                class: FixClass::GuestVisible,
                source: "digoal, \"KVM VM CPU overhead: an optimisation example (CPU flags)\", blog, 2015",
                needs_host: false,
            },
            check: legacy,
        },
        Rule {
            meta: Meta {
                id: "guest-io-scheduler",
                title: "Guest I/O scheduler on virtio disks",
                severity: Severity::Info,
                profiles: &["server", "latency"],
                why: "The host already schedules I/O; a guest elevator (cfq, bfq, mq-deadline) on virtio disks adds latency and CPU. 'none' (noop on old kernels) is right for virtio.",
                fix: "In the guest: a udev rule setting queue/scheduler to none for vd* disks (elevator= on the kernel command line for old kernels).",
                risk: "None.",
                class: FixClass::Safe,
                source: "\"KVM性能优化\" (KVM performance tuning), openwares.net blog, 2012",
                needs_host: false,
            },
            check: io_scheduler,
        },
    ]
}

fn server_like(cx: &Cx) -> bool {
    cx.profile.domain.tablet != Want::Want
}

/// Devices that use a USB controller, other than tablets.
fn usb_users(cx: &Cx) -> usize {
    let d = &cx.d.devices;
    let inputs = d
        .inputs
        .iter()
        .filter(|i| i.bus.as_deref() == Some("usb") && i.dtype.as_deref() != Some("tablet"))
        .count();
    let hostdevs = d
        .hostdevs
        .iter()
        .filter(|h| h.dtype.as_deref() == Some("usb"))
        .count();
    let disks = d
        .disks
        .iter()
        .filter(|x| x.bus.as_deref() == Some("usb"))
        .count();
    let others = d
        .others
        .iter()
        .filter(|o| {
            matches!(o.kind.as_str(), "hub" | "smartcard") || o.bus.as_deref() == Some("usb")
        })
        .count();
    let sounds = d
        .sounds
        .iter()
        .filter(|s| s.model.as_deref() == Some("usb"))
        .count();
    inputs + hostdevs + disks + others + sounds + d.redirdevs.len()
}

/// USB ports the domain's USB controllers and hubs offer, as libvirt counts them (a
/// controller's `ports`, else its model's: UHCI 2, EHCI 6, xHCI 4; an EHCI's UHCI companions
/// share its ports; a hub adds 8 and takes one). A controller without a model counts 2 (the
/// fewest any default has), so a tablet is never added where no port may be free.
fn usb_ports(cx: &Cx) -> usize {
    if !cx.d.devices.controllers.iter().any(|c| c.ctype == "usb") {
        return 2; // libvirt adds its default USB controller to an x86 domain with none
    }
    let mut ports = 0;
    for c in &cx.d.devices.controllers {
        if c.ctype != "usb" || c.model.as_deref() == Some("none") {
            continue;
        }
        if cx.doc.child(c.node, "master").is_some() {
            continue; // a companion controller: its ports are its EHCI master's
        }
        let own = cx
            .doc
            .attr(c.node, "ports")
            .and_then(|p| p.parse::<usize>().ok());
        ports += own.unwrap_or(match c.model.as_deref() {
            Some("ehci" | "ich9-ehci1") => 6,
            Some("qemu-xhci" | "nec-xhci") => 4,
            _ => 2,
        });
    }
    let hubs =
        cx.d.devices
            .others
            .iter()
            .filter(|o| o.kind == "hub")
            .count();
    ports + hubs * 8
}

/// Devices that take a USB port: [`usb_users`], tablets and USB smartcard readers (`ccid`
/// controllers).
fn usb_ports_used(cx: &Cx) -> usize {
    let ccid =
        cx.d.devices
            .controllers
            .iter()
            .filter(|c| c.ctype == "ccid")
            .count();
    usb_users(cx) + tablets(cx).len() + ccid
}

fn tablets(cx: &Cx) -> Vec<usize> {
    cx.d.devices
        .inputs
        .iter()
        .filter(|i| {
            i.dtype.as_deref() == Some("tablet") && i.bus.as_deref().is_none_or(|b| b == "usb")
        })
        .map(|i| i.node)
        .collect()
}

/// A machine without PS/2 (aarch64 and riscv64 `virt`): a USB tablet may be the guest's
/// only pointing device, and a virtio tablet replaces it.
fn no_ps2(cx: &Cx) -> bool {
    let arch = cx.d.os.arch.as_deref().unwrap_or("");
    let machine = cx.d.os.machine.as_deref().unwrap_or("virt");
    matches!(arch, "aarch64" | "armv7l" | "riscv64" | "riscv32") && machine.starts_with("virt")
}

/// The edits turning a USB tablet into a virtio one (its USB address and alias go).
fn tablet_to_virtio(cx: &Cx, t: NodeId) -> Vec<Edit> {
    let mut edits = vec![Edit::set(cx.doc, t, "bus", "virtio")];
    for a in ["address", "alias"] {
        if let Some(n) = cx.doc.child(t, a) {
            edits.push(Edit::remove(cx.doc, n));
        }
    }
    edits
}

fn usb_idle(cx: &Cx, out: &mut Out) {
    if !server_like(cx) || usb_users(cx) > 0 {
        return;
    }
    let ctrls: Vec<_> =
        cx.d.devices
            .controllers
            .iter()
            .filter(|c| c.ctype == "usb" && c.model.as_deref() != Some("none"))
            .collect();
    if ctrls.is_empty() {
        return;
    }
    let tabs = tablets(cx);
    let companions = ctrls
        .iter()
        .any(|c| c.model.as_deref().is_some_and(|m| m.starts_with("ich9-")));
    let sev = if ctrls.len() > 1 || companions || !tabs.is_empty() {
        out.level
    } else {
        Severity::Info
    };
    let msg = if tabs.is_empty() {
        format!("{} USB controller(s) and no USB device", ctrls.len())
    } else {
        format!("{} USB controller(s) serving only a tablet", ctrls.len())
    };
    // without PS/2 the tablet may be the only pointer: it becomes a virtio tablet (as
    // dev-tablet's fix makes it) instead of going
    let mut edits: Vec<Edit> = if no_ps2(cx) {
        tabs.iter().flat_map(|&t| tablet_to_virtio(cx, t)).collect()
    } else {
        tabs.iter().map(|&t| Edit::remove(cx.doc, t)).collect()
    };
    // keep the first controller element (its position) as the 'none' one, drop the rest
    let first = ctrls[0];
    for c in &ctrls[1..] {
        edits.push(Edit::remove(cx.doc, c.node));
    }
    edits.push(Edit::set(cx.doc, first.node, "model", "none"));
    edits.push(Edit::set(cx.doc, first.node, "index", "0"));
    // model='none' has no ports, address, companion master, alias or driver
    if cx.doc.attr(first.node, "ports").is_some() {
        edits.push(Edit::unset(cx.doc, first.node, "ports"));
    }
    edits.extend(cx.doc.elements(first.node).map(|c| Edit::remove(cx.doc, c)));
    let swapped = no_ps2(cx) && !tabs.is_empty();
    let f = out.at(sev, msg, ctrls.iter().map(|c| cx.ev(c.node)).collect());
    f.fix(
        "Replace the USB controllers with model='none'",
        edits,
        virsh_edit(&cx.shell_name(), "<controller type='usb' model='none'/>"),
        Applies::NextBoot,
    );
    if swapped {
        // the tablet becomes a virtio tablet: the guest's driver decides the class
        let windows = matches!(cx.d.guest_os(), GuestOs::Windows(_));
        f.class(tablet_swap_class(cx), tablet_swap_risk(cx, windows));
    }
}

/// A USB tablet turned into a virtio tablet needs the guest's virtio-input driver: in every
/// Linux distribution kernel; Windows needs vioinput first; an unknown guest may lack it.
fn tablet_swap_class(cx: &Cx) -> FixClass {
    match cx.d.guest_os() {
        GuestOs::Linux(_) => FixClass::Safe,
        _ => FixClass::GuestDriver,
    }
}

fn tablet_swap_risk(cx: &Cx, windows: bool) -> &'static str {
    match cx.d.guest_os() {
        GuestOs::Linux(_) => {
            "The pointer stays absolute, through virtio-input (Linux: the virtio_input driver, in every distribution kernel); the USB tablet and its polling go."
        }
        _ if windows => {
            "The pointer stays absolute, through virtio-input: Windows needs the virtio-win input driver (vioinput) first, or it has no pointer."
        }
        _ => {
            "Unknown guest OS: the pointer stays absolute only through virtio-input, which needs the guest's driver (Linux has it; Windows: vioinput), or it has no pointer on this machine without PS/2."
        }
    }
}

fn tablet(cx: &Cx, out: &mut Out) {
    // s390x has neither USB nor PS/2 pointers (its consoles are text or virtio-gpu)
    if cx.d.os.arch.as_deref() == Some("s390x") {
        return;
    }
    let tabs = tablets(cx);
    // a virtio tablet gives the same absolute pointer without USB polling
    let virtio_tablet =
        cx.d.devices
            .inputs
            .iter()
            .any(|i| i.dtype.as_deref() == Some("tablet") && i.bus.as_deref() == Some("virtio"));
    match cx.profile.domain.tablet {
        Want::Avoid if no_ps2(cx) => {
            let windows = matches!(cx.d.guest_os(), GuestOs::Windows(_));
            for t in tabs {
                let f = out.finding(
                    format!(
                        "USB tablet, which the {} profile does without; this {} machine has no PS/2, so it may be the only pointer: a virtio tablet keeps it without the USB polling",
                        cx.profile.name,
                        cx.d.os.machine.as_deref().unwrap_or("virt")
                    ),
                    vec![cx.ev(t)],
                );
                f.fix(
                    "Replace the USB tablet with a virtio tablet",
                    tablet_to_virtio(cx, t),
                    virsh_edit(&cx.shell_name(), "<input type='tablet' bus='virtio'/> in place of <input type='tablet' bus='usb'/>"),
                    Applies::NextBoot,
                );
                f.class(tablet_swap_class(cx), tablet_swap_risk(cx, windows));
            }
        }
        Want::Avoid => {
            for t in tabs {
                out.finding(
                    format!(
                        "USB tablet, which the {} profile does without",
                        cx.profile.name
                    ),
                    vec![cx.ev(t)],
                )
                .fix(
                    "Remove the tablet",
                    vec![Edit::remove(cx.doc, t)],
                    format!("virsh detach-device {} tablet.xml --config   # tablet.xml: <input type='tablet' bus='usb'/>", cx.shell_name()),
                    Applies::NextBoot,
                );
            }
        }
        Want::Want if tabs.is_empty() && !virtio_tablet && !cx.d.devices.graphics.is_empty() => {
            let usb_off =
                cx.d.devices
                    .controllers
                    .iter()
                    .any(|c| c.ctype == "usb" && c.model.as_deref() == Some("none"));
            let (ports, used) = (usb_ports(cx), usb_ports_used(cx));
            let full = !usb_off && used >= ports;
            let f = out.at(
                Severity::Info,
                if full {
                    format!("graphical console without a USB tablet: the pointer will drift; no USB port is free for one ({used} of {ports} taken): add a USB controller (e.g. qemu-xhci) or a hub first")
                } else {
                    "graphical console without a USB tablet: the pointer will drift".to_string()
                },
                vec![cx.ev(cx.d.devices.graphics[0].node)],
            );
            if !usb_off
                && !full
                && let Some(dev) = cx.d.devices.node
            {
                f.fix(
                    "Add a USB tablet",
                    vec![Edit::set_at(cx.doc, dev, vec![Seg::keyed("input", "type", "tablet")], "bus", "usb")],
                    format!("virsh attach-device {} tablet.xml --config   # tablet.xml: <input type='tablet' bus='usb'/>", cx.shell_name()),
                    Applies::NextBoot,
                );
            }
        }
        _ => {}
    }
}

/// Whether a virtio-blk disk already has an iothread: its own `driver iothread`, or a
/// `<driver><iothreads>` mapping (its queues spread over iothreads).
fn has_iothread(cx: &Cx, disk: &kvmtune_domain::model::Disk) -> bool {
    disk.iothread.is_some()
        || disk
            .driver_node
            .is_some_and(|d| cx.doc.child(d, "iothreads").is_some())
}

/// Whether disk-io wants iothreads on this domain at all (enabled, 2+ vCPUs, supported).
fn iothreads_wanted(cx: &Cx) -> bool {
    super::enabled("disk-io", cx.profile)
        && cx.d.vcpus() >= 2
        && cx.caps.is_none_or(|c| c.iothreads != Some(false))
}

/// The edits giving a (virtio-blk) disk iothread 1, declaring it when the domain has none.
fn iothread_edits(cx: &Cx, d: &kvmtune_domain::model::Disk, edits: &mut Vec<Edit>) {
    if cx.d.iothreads == 0 {
        edits.push(Edit::text_at(
            cx.doc,
            cx.d.node,
            vec![Seg::new("iothreads")],
            "1",
        ));
    }
    edits.push(Edit::set_at(
        cx.doc,
        d.node,
        vec![Seg::new("driver")],
        "iothread",
        "1",
    ));
    if d.driver_node.is_none() {
        edits.push(Edit::set_at(
            cx.doc,
            d.node,
            vec![Seg::new("driver")],
            "name",
            "qemu",
        ));
    }
}

fn disk_bus(cx: &Cx, out: &mut Out) {
    if !cx.d.is_hvm() {
        return;
    }
    let mut used: Vec<String> =
        cx.d.devices
            .disks
            .iter()
            .filter_map(|d| d.target_dev.clone())
            .collect();
    let windows = matches!(cx.d.guest_os(), GuestOs::Windows(_));
    // disks on an emulated SCSI controller: the controller becomes virtio-scsi (one
    // finding per controller); the disks keep their names, addresses and SCSI identity
    emulated_scsi_controllers(cx, out);
    for disk in &cx.d.devices.disks {
        if disk.device() != "disk" {
            continue;
        }
        let Some(bus) = disk.bus.as_deref() else {
            continue;
        };
        if !matches!(bus, "ide" | "sata") {
            continue;
        }
        let Some(t) = disk.target_node else { continue };
        // identity only an IDE or SCSI disk can carry: moving it is the admin's call
        let scsi_only: Vec<&str> = ["wwn", "vendor", "product"]
            .into_iter()
            .filter(|e| cx.doc.child(disk.node, e).is_some())
            .collect();
        if !scsi_only.is_empty() {
            let f = out.finding(
                format!(
                    "disk {} on the emulated {bus} bus; it carries <{}>, which a virtio-blk disk cannot (libvirt: only ide and scsi disks support it): move it by hand, e.g. to a virtio-scsi controller, which keeps it",
                    disk.label(),
                    scsi_only.join(">, <")
                ),
                vec![cx.ev(t)],
            );
            if windows {
                f.message
                    .push_str(" (Windows guest: install the virtio-win driver first)");
            }
            continue;
        }
        // the name changes only when it must: a vdX name fits virtio already
        let dev = match disk.target_dev.as_deref() {
            Some(d) if d.starts_with("vd") => d.to_string(),
            _ => (0..26u8)
                .map(|i| format!("vd{}", (b'a' + i) as char))
                .find(|n| !used.contains(n))
                .unwrap_or_else(|| "vdz".into()),
        };
        used.push(dev.clone());
        let mut edits = vec![Edit::set(cx.doc, t, "bus", "virtio")];
        if disk.target_dev.as_deref() != Some(dev.as_str()) {
            edits.push(Edit::set(cx.doc, t, "dev", &dev));
        }
        // CHS translation is an IDE setting ("CHS translation mode can only be set for 'ide'
        // bus"); the geometry itself stays
        if let Some(g) = cx.doc.child(disk.node, "geometry")
            && cx.doc.attr(g, "trans").is_some()
        {
            edits.push(Edit::unset(cx.doc, g, "trans"));
        }
        // the old bus's address (a drive address) and alias name it on that bus: libvirt
        // assigns a PCI address and a new alias to the virtio-blk disk
        for a in ["address", "alias"] {
            if let Some(n) = cx
                .doc
                .child(disk.node, a)
                .filter(|&n| a == "alias" || cx.doc.attr(n, "type") != Some("pci"))
            {
                edits.push(Edit::remove(cx.doc, n));
            }
        }
        // disk-io advises an iothread for virtio disks: the move brings it along, so that
        // disk-io need not advise one for a disk that is not virtio yet
        let iothread = iothreads_wanted(cx) && !disk.readonly && !has_iothread(cx, disk);
        if iothread {
            iothread_edits(cx, disk, &mut edits);
        }
        let f = out.finding(
            format!("disk {} on the emulated {bus} bus", disk.label()),
            vec![cx.ev(t)],
        );
        f.fix(
            format!(
                "Move {} to virtio-blk as {dev}{}",
                disk.label(),
                if iothread { " with an iothread" } else { "" }
            ),
            edits,
            virsh_edit(
                &cx.shell_name(),
                &format!(
                    "<target dev='{dev}' bus='virtio'/> on disk {}",
                    disk.label()
                ),
            ),
            Applies::NextBoot,
        );
        f.class(FixClass::GuestDriver, super::virtio_disk_risk(cx.d));
        if windows {
            f.message
                .push_str(" (Windows guest: install the virtio-win storage driver first)");
        }
    }
}

/// SCSI controller models QEMU emulates register by register (HBAs), which virtio-scsi
/// replaces; ibmvscsi (POWER's paravirtual vSCSI) and the virtio models are not among them.
const EMULATED_SCSI: &[&str] = &[
    "lsilogic",
    "lsisas1068",
    "lsisas1078",
    "buslogic",
    "vmpvscsi",
    "ncr53c90",
    "am53c974",
    "dc390",
];

/// The SCSI controller index a disk is attached to: its drive address's controller, 0
/// when it has none.
fn scsi_controller_index(cx: &Cx, disk: &kvmtune_domain::model::Disk) -> Option<u32> {
    cx.doc
        .child(disk.node, "address")
        .filter(|a| cx.doc.attr(*a, "type") == Some("drive"))
        .and_then(|a| cx.doc.attr(a, "controller"))
        .map_or(Some(0), |c| c.trim().parse::<u32>().ok())
}

/// The risk of turning an emulated SCSI controller into virtio-scsi, for the guest at hand.
fn virtio_scsi_risk(d: &kvmtune_domain::Domain) -> String {
    match d.guest_os() {
        GuestOs::Windows(_) => "Windows needs the virtio-win SCSI driver (vioscsi) installed first, or it will not boot from these disks; the disks keep their SCSI identity (wwn, vendor, product, serial)".into(),
        GuestOs::Linux(_) => "the guest needs the virtio_scsi driver (in the initramfs for a boot disk); the disks keep their /dev/sdX names and their SCSI identity (wwn, vendor, product, serial)".into(),
        GuestOs::Unknown => "unknown guest OS: it needs a virtio-scsi driver first (Windows: vioscsi from virtio-win), or it will not boot from these disks; a Linux guest keeps the /dev/sdX names".into(),
    }
}

/// disk-bus for bus='scsi' disks: one finding per emulated SCSI controller with disks on
/// it, whose fix changes the controller's model to virtio-scsi.
fn emulated_scsi_controllers(cx: &Cx, out: &mut Out) {
    let x86 = super::rules_cpu::x86(cx);
    let scsi_disks: Vec<(&kvmtune_domain::model::Disk, Option<u32>)> =
        cx.d.devices
            .disks
            .iter()
            .filter(|d| d.bus.as_deref() == Some("scsi"))
            .map(|d| (d, scsi_controller_index(cx, d)))
            .collect();
    let on = |index: u32| -> Vec<&kvmtune_domain::model::Disk> {
        scsi_disks
            .iter()
            .filter(|(_, i)| *i == Some(index))
            .map(|(d, _)| *d)
            .collect()
    };
    let windows = matches!(cx.d.guest_os(), GuestOs::Windows(_));
    let scsi_ctrls: Vec<_> =
        cx.d.devices
            .controllers
            .iter()
            .filter(|c| c.ctype == "scsi")
            .collect();
    for c in &scsi_ctrls {
        let index = c.index.unwrap_or(0);
        // a controller without a model is libvirt's default: lsilogic on x86 (when QEMU
        // has it, else virtio-scsi), something else on other machines
        let (model, assumed) = match c.model.as_deref() {
            Some(m) if EMULATED_SCSI.contains(&m) => (m, false),
            None if x86 => ("lsilogic", true),
            _ => continue,
        };
        let devs = on(index);
        if !devs.iter().any(|d| d.device() == "disk") {
            continue;
        }
        let names: Vec<String> = devs
            .iter()
            .map(|d| {
                let id: Vec<&str> = ["wwn", "vendor", "product"]
                    .into_iter()
                    .filter(|e| cx.doc.child(d.node, e).is_some())
                    .collect();
                let mut n = d.label();
                if d.device() != "disk" {
                    n.push_str(&format!(" ({})", d.device()));
                }
                if !id.is_empty() {
                    n.push_str(&format!(" (with <{}>)", id.join(">, <")));
                }
                n
            })
            .collect();
        let mut edits = vec![Edit::set(cx.doc, c.node, "model", "virtio-scsi")];
        let mut with = String::new();
        if let Some((io, id)) = super::rules_sched::converted_scsi_iothread(cx, c.node) {
            edits.extend(io);
            with = format!(" with iothread {id}");
        }
        let mut msg = format!(
            "SCSI controller {index} ({}) is emulated; its disks: {}",
            if assumed {
                "no model: libvirt's x86 default, lsilogic".to_string()
            } else {
                model.to_string()
            },
            names.join(", ")
        );
        if windows {
            msg.push_str(" (Windows guest: install the virtio-win SCSI driver, vioscsi, first)");
        }
        let f = out.finding(msg, vec![cx.ev(c.node)]);
        f.fix(
            format!("Make SCSI controller {index} virtio-scsi{with}"),
            edits,
            virsh_edit(
                &cx.shell_name(),
                &format!("<controller type='scsi' index='{index}' model='virtio-scsi'/>"),
            ),
            Applies::NextBoot,
        );
        f.class(FixClass::GuestDriver, virtio_scsi_risk(cx.d));
        if assumed {
            f.assumed("the controller without a model is lsilogic (libvirt's x86 default when QEMU has it)");
        }
    }
    // disks on a SCSI controller the XML does not declare: libvirt adds one of its default
    // model; said, not fixed (the controller element is not there to change)
    let mut implicit: Vec<(u32, Vec<String>)> = Vec::new();
    for (d, i) in &scsi_disks {
        let Some(i) = *i else { continue };
        if d.device() != "disk" || scsi_ctrls.iter().any(|c| c.index.unwrap_or(0) == i) || !x86 {
            continue;
        }
        match implicit.iter_mut().find(|(x, _)| *x == i) {
            Some((_, v)) => v.push(d.label()),
            None => implicit.push((i, vec![d.label()])),
        }
    }
    for (i, names) in implicit {
        out.finding(
            format!(
                "disk(s) {} on SCSI controller {i}, which the XML does not declare: libvirt adds its default model (lsilogic on x86 when QEMU has it, an emulated HBA); declare <controller type='scsi' index='{i}' model='virtio-scsi'/>",
                names.join(", ")
            ),
            vec![cx.ev_absent(cx.d.devices.node.unwrap_or(cx.d.node), "controller")],
        )
        .assumed("libvirt's default SCSI controller model on this host is lsilogic");
    }
}

fn disk_cache(cx: &Cx, out: &mut Out) {
    let ok = &cx.profile.domain.disk_cache;
    for disk in &cx.d.devices.disks {
        if disk.device() != "disk"
            || disk.readonly
            || matches!(
                disk.disk_type.as_deref(),
                Some("network") | Some("vhostuser") | Some("nvme")
            )
        {
            // network disks (rbd, iscsi) follow their storage's own advice; a vhost-user
            // disk is served by another process, which has no QEMU cache mode at all; a
            // userspace NVMe disk (type='nvme': QEMU drives the controller through VFIO)
            // bypasses the host page cache and the host's AIO whatever the cache mode says
            continue;
        }
        if disk.driver_name.as_deref().is_some_and(|n| n != "qemu") {
            continue;
        }
        let cache = disk.cache.as_deref().unwrap_or("default");
        if ok.iter().any(|c| c == cache) {
            continue;
        }
        let sev = if cache == "unsafe" {
            Severity::Error
        } else {
            out.level
        };
        let ev = match disk.driver_node {
            Some(n) => cx.ev_attr(n, "cache"),
            None => cx.ev_absent(disk.node, "driver"),
        };
        let mut edits = Vec::new();
        let segs = || vec![Seg::new("driver")];
        if disk.driver_node.is_none() {
            edits.push(Edit::set_at(cx.doc, disk.node, segs(), "name", "qemu"));
        }
        // the io mode stays as it is: disk-io-mode owns it (native for block devices; a
        // sparse or qcow2 file keeps threads, or io_uring, since native AIO can block on
        // the file system's allocation)
        edits.push(Edit::set_at(cx.doc, disk.node, segs(), "cache", "none"));
        out.at(
            sev,
            format!("disk {} uses cache={cache}", disk.label()),
            vec![ev],
        )
        .fix(
            format!("cache='none' on {}", disk.label()),
            edits,
            virsh_edit(
                &cx.shell_name(),
                &format!(
                    "<driver name='qemu' cache='none'/> on disk {}",
                    disk.label()
                ),
            ),
            Applies::NextBoot,
        );
    }
}

fn disk_io(cx: &Cx, out: &mut Out) {
    let mut need_iothread = Vec::new();
    for disk in &cx.d.devices.disks {
        if disk.io.as_deref() == Some("native")
            && !matches!(disk.cache.as_deref(), Some("none") | Some("directsync"))
            && let Some(drv) = disk.driver_node
        {
            // disk-cache fixes this too where it applies; fix here for accepted caches
            out.at(
                Severity::Error,
                format!(
                    "disk {}: io='native' with cache={}",
                    disk.label(),
                    disk.cache.as_deref().unwrap_or("default")
                ),
                vec![cx.ev(drv)],
            )
            .fix(
                "Use cache='none' with io='native'",
                vec![Edit::set(cx.doc, drv, "cache", "none")],
                virsh_edit(&cx.shell_name(), "cache='none' io='native'"),
                Applies::NextBoot,
            );
        }
        // only virtio-blk disks take an iothread of their own (SCSI disks get theirs
        // through the virtio-scsi controller; libvirt rejects one on SATA/IDE/USB disks)
        if disk.device() == "disk"
            && disk.bus.as_deref() == Some("virtio")
            && disk.disk_type.as_deref() != Some("vhostuser")
            && !has_iothread(cx, disk)
            && !disk.readonly
        {
            need_iothread.push(disk);
        }
    }
    if need_iothread.is_empty() || !iothreads_wanted(cx) {
        return;
    }
    let mut edits = Vec::new();
    for d in &need_iothread {
        iothread_edits(cx, d, &mut edits);
    }
    let names: Vec<String> = need_iothread.iter().map(|d| d.label()).collect();
    out.at(
        Severity::Info,
        format!(
            "disk(s) {} served by QEMU's main loop (no iothread)",
            names.join(", ")
        ),
        need_iothread
            .iter()
            .map(|d| cx.ev(d.driver_node.unwrap_or(d.node)))
            .collect(),
    )
    .fix(
        "Give the virtio disks an iothread",
        edits,
        virsh_edit(
            &cx.shell_name(),
            "<iothreads>1</iothreads> and <driver iothread='1'/>",
        ),
        Applies::NextBoot,
    );
}

/// The queues net-multiqueue advises for a virtio NIC with `vhost` (the count), when it
/// would advise any.
fn queues_wanted(cx: &Cx, nic: &kvmtune_domain::model::Interface) -> Option<u32> {
    let n = cx.d.vcpus();
    (super::enabled("net-multiqueue", cx.profile)
        && n >= 2
        && nic.queues.is_none_or(|x| x <= 1)
        && matches!(
            nic.itype.as_deref(),
            Some("network") | Some("bridge") | Some("direct") | Some("ethernet")
        ))
    .then_some(n.min(8))
}

/// The edit giving a NIC `q` queues.
fn queues_edit(cx: &Cx, nic: &kvmtune_domain::model::Interface, q: u32) -> Edit {
    Edit::set_at(
        cx.doc,
        nic.node,
        vec![Seg::new("driver")],
        "queues",
        &q.to_string(),
    )
}

/// net-model's move to virtio-net brings the queues net-multiqueue would advise (it
/// advises none for a NIC that is not virtio yet); the fix's summary.
fn with_queues(cx: &Cx, nic: &kvmtune_domain::model::Interface, edits: &mut Vec<Edit>) -> String {
    match queues_wanted(cx, nic) {
        Some(q) => {
            edits.push(queues_edit(cx, nic, q));
            format!("Use virtio-net with {q} queues")
        }
        None => "Use virtio-net".into(),
    }
}

fn net_model(cx: &Cx, out: &mut Out) {
    let vhost_missing = cx.host.is_some_and(|h| !h.kvm.dev_vhost_net.exists);
    for nic in &cx.d.devices.interfaces {
        if matches!(
            nic.itype.as_deref(),
            Some("hostdev") | Some("vhostuser") | Some("vdpa") | Some("user")
        ) {
            continue;
        }
        match nic.model.as_deref() {
            Some(m) if EMULATED_NICS.contains(&m) => {
                let Some(mn) = nic.model_node else { continue };
                let mut edits = vec![Edit::set(cx.doc, mn, "type", "virtio")];
                if nic.driver_name.as_deref() == Some("qemu")
                    && let Some(dn) = nic.driver_node
                {
                    edits.push(Edit::unset(cx.doc, dn, "name"));
                }
                let summary = with_queues(cx, nic, &mut edits);
                out.finding(
                    format!("{} is an emulated {m}", nic.label()),
                    vec![cx.ev(mn)],
                )
                .fix(
                    summary,
                    edits,
                    virsh_edit(&cx.shell_name(), "<model type='virtio'/>"),
                    Applies::NextBoot,
                )
                .class(FixClass::GuestDriver, super::virtio_nic_risk(cx.d));
            }
            Some("virtio") if nic.driver_name.as_deref() == Some("qemu") => {
                let Some(dn) = nic.driver_node else { continue };
                let f = out.finding(
                    "virtio NIC with vhost off (driver name='qemu')",
                    vec![cx.ev(dn)],
                );
                f.fix(
                    "Let libvirt use vhost-net",
                    vec![Edit::unset(cx.doc, dn, "name")],
                    virsh_edit(
                        &cx.shell_name(),
                        "remove name='qemu' from the interface <driver>",
                    ),
                    Applies::NextBoot,
                );
                f.class(
                    FixClass::Safe,
                    "None for the guest (its NIC stays virtio); vhost-net needs /dev/vhost-net on the host.",
                );
                if vhost_missing {
                    f.message.push_str(
                        "; /dev/vhost-net is also missing on this host (modprobe vhost_net)",
                    );
                }
            }
            None if nic.model_node.is_none() && cx.d.is_hvm() => {
                // libvirt's default model for QEMU x86 is rtl8139 (older) or e1000 (q35)
                let f = out.finding(
                    "NIC without <model>: libvirt picks an emulated model (rtl8139/e1000)",
                    vec![cx.ev(nic.node)],
                );
                let mut edits = vec![Edit::set_at(
                    cx.doc,
                    nic.node,
                    vec![Seg::new("model")],
                    "type",
                    "virtio",
                )];
                let summary = with_queues(cx, nic, &mut edits);
                f.suspect().fix(
                    summary,
                    edits,
                    virsh_edit(&cx.shell_name(), "<model type='virtio'/>"),
                    Applies::NextBoot,
                );
                f.class(FixClass::GuestDriver, super::virtio_nic_risk(cx.d));
            }
            _ => {}
        }
    }
}

/// libvirt's virtio-net models (`virtio-net-pci` and the like are not: libvirt passes them
/// through without vhost or queues).
const VIRTIO_NICS: &[&str] = &["virtio", "virtio-transitional", "virtio-non-transitional"];

fn net_multiqueue(cx: &Cx, out: &mut Out) {
    let n = cx.d.vcpus();
    for nic in &cx.d.devices.interfaces {
        // only virtio-net takes queues; an emulated NIC is net-model's finding alone
        let virtio = nic
            .model
            .as_deref()
            .is_some_and(|m| VIRTIO_NICS.contains(&m));
        if !virtio {
            continue;
        }
        if nic.driver_name.as_deref() == Some("qemu") {
            continue; // without vhost, multiqueue gains little
        }
        let Some(q) = queues_wanted(cx, nic) else {
            continue;
        };
        out.finding(
            format!("virtio NIC with one queue on a {n}-vCPU guest"),
            vec![
                nic.driver_node
                    .map(|d| cx.ev(d))
                    .unwrap_or_else(|| cx.ev_absent(nic.node, "driver")),
            ],
        )
        .fix(
            format!("Give the NIC {q} queues"),
            vec![queues_edit(cx, nic, q)],
            virsh_edit(
                &cx.shell_name(),
                &format!("<driver queues='{q}'/> in the interface"),
            ),
            Applies::NextBoot,
        );
    }
}

fn legacy(cx: &Cx, out: &mut Out) {
    if cx.profile.domain.legacy_devices != Want::Avoid {
        return;
    }
    for s in &cx.d.devices.sounds {
        out.finding(
            format!("sound device {}", s.model.as_deref().unwrap_or("")),
            vec![cx.ev(s.node)],
        )
        .fix(
            "Remove the sound device",
            vec![Edit::remove(cx.doc, s.node)],
            virsh_edit(&cx.shell_name(), "remove <sound>"),
            Applies::NextBoot,
        )
        .class(
            FixClass::Safe,
            "The guest has no sound afterwards; nothing else depends on it.",
        );
    }
    for d in cx.d.devices.disks.iter().filter(|d| d.device() == "floppy") {
        let f = out.finding(format!("floppy drive {}", d.label()), vec![cx.ev(d.node)]);
        f.fix(
            "Remove the floppy drive",
            vec![Edit::remove(cx.doc, d.node)],
            virsh_edit(&cx.shell_name(), "remove the floppy <disk>"),
            Applies::NextBoot,
        );
        match &d.source {
            None => f.class(FixClass::Safe, "None: the drive is empty."),
            Some(src) => f.class(
                FixClass::GuestVisible,
                format!("The guest loses the floppy image {src} (driver disks are often passed this way)."),
            ),
        };
    }
    for v in cx.d.devices.videos.iter().skip(1) {
        out.finding(
            format!(
                "secondary video adapter {}",
                v.model.as_deref().unwrap_or("")
            ),
            vec![cx.ev(v.node)],
        )
        .fix(
            "Remove the secondary video adapter",
            vec![Edit::remove(cx.doc, v.node)],
            virsh_edit(&cx.shell_name(), "remove the second <video>"),
            Applies::NextBoot,
        );
    }
}

fn io_scheduler(cx: &Cx, out: &mut Out) {
    let Some(cmdline) = cx.d.os.cmdline.as_deref() else {
        return;
    };
    let virtio =
        cx.d.devices
            .disks
            .iter()
            .any(|d| d.bus.as_deref() == Some("virtio") && d.device() == "disk");
    if !virtio {
        return;
    }
    let elevator = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("elevator="));
    match elevator {
        Some("none") | Some("noop") => {}
        Some(e) => {
            let node = cx
                .doc
                .descend(cx.d.node, &["os", "cmdline"])
                .unwrap_or(cx.d.node);
            out.finding(
                format!("guest kernel command line sets elevator={e} for virtio disks"),
                vec![cx.ev(node)],
            );
        }
        None => {
            let node = cx
                .doc
                .descend(cx.d.node, &["os", "cmdline"])
                .unwrap_or(cx.d.node);
            out.finding(
                "direct kernel boot with virtio disks; the guest's I/O scheduler is not set on its command line",
                vec![cx.ev(node)],
            )
            .suspect();
        }
    }
}

/// Table tests: for each rule a case that fires and a near miss that must not.
#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    fn devices(inner: &str) -> String {
        dom(&format!("<devices>{inner}</devices>"))
    }

    fn vcpus_devices(n: u32, extra: &str, inner: &str) -> String {
        dom(&format!(
            "<vcpu>{n}</vcpu>{extra}<devices>{inner}</devices>"
        ))
    }

    /// A file disk with the given driver attributes and target.
    fn disk(driver: &str, dev: &str, bus: &str) -> String {
        format!(
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2' {driver}/>\
<source file='/var/lib/libvirt/images/a.qcow2'/><target dev='{dev}' bus='{bus}'/></disk>"
        )
    }

    fn nic(inner: &str) -> String {
        format!("<interface type='network'><source network='default'/>{inner}</interface>")
    }

    /// Direct kernel boot with a virtio disk and this guest command line.
    fn kernel_boot(cmdline: &str) -> String {
        format!(
            "<domain type='kvm'><name>vm</name><memory unit='MiB'>2048</memory>\
<os><type arch='x86_64' machine='q35'>hvm</type><kernel>/boot/vmlinuz</kernel><cmdline>{cmdline}</cmdline></os>\
<devices>{}</devices></domain>",
            disk("cache='none' io='native'", "vda", "virtio")
        )
    }

    pub(crate) fn cases() -> Vec<Case> {
        let ok = "cache='none' io='native'";
        let xhci = "<controller type='usb' model='qemu-xhci'/>";
        let tablet = "<input type='tablet' bus='usb'/>";
        let vnc = "<graphics type='vnc'/>";
        let iothread = "<iothreads>1</iothreads>";
        vec![
            // dev-usb-idle
            case(
                "one idle xhci",
                "dev-usb-idle",
                "server",
                None,
                vec![devices(xhci)],
                INFO,
            ),
            case(
                "ich9 companions",
                "dev-usb-idle",
                "server",
                None,
                vec![devices(
                    "<controller type='usb' model='ich9-ehci1'/><controller type='usb' model='ich9-uhci1'/>",
                )],
                WARN,
            ),
            case(
                "xhci serving only a tablet",
                "dev-usb-idle",
                "server",
                None,
                vec![devices(&format!("{xhci}{tablet}"))],
                WARN,
            ),
            case(
                "xhci with a usb mouse",
                "dev-usb-idle",
                "server",
                None,
                vec![devices(&format!("{xhci}<input type='mouse' bus='usb'/>"))],
                NONE,
            ),
            case(
                "usb model none",
                "dev-usb-idle",
                "server",
                None,
                vec![devices("<controller type='usb' model='none'/>")],
                NONE,
            ),
            case(
                "idle xhci on a desktop",
                "dev-usb-idle",
                "desktop",
                None,
                vec![devices(xhci)],
                NONE,
            ),
            // dev-tablet
            case(
                "tablet on a server",
                "dev-tablet",
                "server",
                None,
                vec![devices(&format!("{xhci}{tablet}"))],
                WARN,
            ),
            case(
                "ps2 mouse on a server",
                "dev-tablet",
                "server",
                None,
                vec![devices("<input type='mouse' bus='ps2'/>")],
                NONE,
            ),
            case(
                "desktop console without tablet",
                "dev-tablet",
                "desktop",
                None,
                vec![devices(&format!("{xhci}{vnc}"))],
                INFO,
            ),
            case(
                "desktop console with a virtio tablet (tab-virtio.xml)",
                "dev-tablet",
                "desktop",
                None,
                vec![devices(&format!("{xhci}<input type='tablet' bus='virtio'/>{vnc}"))],
                NONE,
            ),
            case(
                "desktop s390x console without tablet",
                "dev-tablet",
                "desktop",
                None,
                vec![devices(vnc).replace(
                    "arch='x86_64' machine='q35'",
                    "arch='s390x' machine='s390-ccw-virtio'",
                )],
                NONE,
            ),
            case(
                "tablet on an aarch64 virt server (no PS/2)",
                "dev-tablet",
                "server",
                None,
                vec![devices(&format!("{xhci}{tablet}")).replace(
                    "arch='x86_64' machine='q35'",
                    "arch='aarch64' machine='virt'",
                )],
                WARN,
            ),
            case(
                "desktop console with tablet",
                "dev-tablet",
                "desktop",
                None,
                vec![devices(&format!("{xhci}{tablet}{vnc}"))],
                NONE,
            ),
            // disk-bus
            case(
                "sata disk",
                "disk-bus",
                "server",
                None,
                vec![devices(&disk(ok, "sda", "sata"))],
                WARN,
            ),
            case(
                "sata cdrom",
                "disk-bus",
                "server",
                None,
                vec![devices(
                    "<disk type='file' device='cdrom'><source file='/a.iso'/><target dev='sda' bus='sata'/><readonly/></disk>",
                )],
                NONE,
            ),
            case(
                "virtio disk",
                "disk-bus",
                "server",
                None,
                vec![devices(&disk(ok, "vda", "virtio"))],
                NONE,
            ),
            case(
                "scsi disk without virtio-scsi",
                "disk-bus",
                "server",
                None,
                vec![devices(&disk(ok, "sda", "scsi"))],
                WARN,
            ),
            case(
                "scsi disk on an lsilogic controller",
                "disk-bus",
                "server",
                None,
                vec![devices(&format!(
                    "<controller type='scsi' index='0' model='lsilogic'/>{}",
                    disk(ok, "sda", "scsi")
                ))],
                WARN,
            ),
            case(
                "scsi disk with <vendor> on lsilogic beside a virtio-scsi controller (vpd.xml sdb, was silent)",
                "disk-bus",
                "server",
                None,
                vec![devices(&format!(
                    "<controller type='scsi' index='0' model='virtio-scsi'/><controller type='scsi' index='1' model='lsilogic'/>{}",
                    disk(ok, "sdb", "scsi").replace(
                        "</disk>",
                        "<vendor>SEA GATE</vendor><address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>"
                    )
                ))],
                WARN,
            ),
            case(
                "scsi disk on POWER's paravirtual ibmvscsi",
                "disk-bus",
                "server",
                None,
                vec![devices(&format!(
                    "<controller type='scsi' index='0' model='ibmvscsi'/>{}",
                    disk(ok, "sda", "scsi")
                ))],
                NONE,
            ),
            case(
                "scsi disk on virtio-scsi",
                "disk-bus",
                "server",
                None,
                vec![devices(&format!(
                    "<controller type='scsi' model='virtio-scsi'/>{}",
                    disk(ok, "sda", "scsi")
                ))],
                NONE,
            ),
            // disk-cache
            case(
                "cache writeback on server",
                "disk-cache",
                "server",
                None,
                vec![devices(&disk("cache='writeback'", "vda", "virtio"))],
                WARN,
            ),
            case(
                "cache unsafe",
                "disk-cache",
                "server",
                None,
                vec![devices(&disk("cache='unsafe'", "vda", "virtio"))],
                ERROR,
            ),
            case(
                "no cache attribute",
                "disk-cache",
                "server",
                None,
                vec![devices(&disk("", "vda", "virtio"))],
                WARN,
            ),
            case(
                "cache none",
                "disk-cache",
                "server",
                None,
                vec![devices(&disk(ok, "vda", "virtio"))],
                NONE,
            ),
            case(
                "cache writeback on desktop",
                "disk-cache",
                "desktop",
                None,
                vec![devices(&disk("cache='writeback'", "vda", "virtio"))],
                NONE,
            ),
            case(
                "vhost-user disk",
                "disk-cache",
                "server",
                None,
                vec![devices(
                    "<disk type='vhostuser' device='disk'><driver name='qemu' type='raw'/>\
<source type='unix' path='/tmp/vhost-blk.sock'><reconnect enabled='yes' timeout='10'/></source>\
<target dev='vda' bus='virtio'/></disk>",
                )],
                NONE,
            ),
            // disk-io
            case(
                "io native with writeback",
                "disk-io",
                "desktop",
                None,
                vec![devices(&disk(
                    "cache='writeback' io='native'",
                    "vda",
                    "virtio",
                ))],
                ERROR,
            ),
            case(
                "io native with cache none, 1 vCPU",
                "disk-io",
                "server",
                None,
                vec![devices(&disk(ok, "vda", "virtio"))],
                NONE,
            ),
            case(
                "2 vCPUs, virtio disk without iothread",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(2, "", &disk(ok, "vda", "virtio"))],
                INFO,
            ),
            case(
                "2 vCPUs, virtio disk with iothread",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(
                    2,
                    iothread,
                    &disk("cache='none' io='native' iothread='1'", "vda", "virtio"),
                )],
                NONE,
            ),
            case(
                "2 vCPUs, sata disk: no iothread on sata",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(2, "", &disk(ok, "sda", "sata"))],
                NONE,
            ),
            case(
                "2 vCPUs, ide disk: no iothread on ide",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(2, "", &disk(ok, "hda", "ide"))],
                NONE,
            ),
            case(
                "2 vCPUs, usb disk: no iothread on usb",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(2, "", &disk(ok, "sda", "usb"))],
                NONE,
            ),
            case(
                "2 vCPUs, scsi disk on virtio-scsi: the controller's business",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(
                    2,
                    iothread,
                    &format!(
                        "<controller type='scsi' model='virtio-scsi'><driver iothread='1'/></controller>{}",
                        disk(ok, "sda", "scsi")
                    ),
                )],
                NONE,
            ),
            case(
                "2 vCPUs, virtio disk with an iothreads mapping",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(
                    2,
                    "<iothreads>2</iothreads>",
                    "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none' io='native' queues='2'>\
<iothreads><iothread id='1'><queue id='0'/></iothread><iothread id='2'><queue id='1'/></iothread></iothreads></driver>\
<source file='/a.img'/><target dev='vda' bus='virtio'/></disk>",
                )],
                NONE,
            ),
            case(
                "2 vCPUs, virtio disk next to a sata disk",
                "disk-io",
                "server",
                None,
                vec![vcpus_devices(
                    2,
                    "",
                    &format!("{}{}", disk(ok, "sda", "sata"), disk(ok, "vda", "virtio")),
                )],
                INFO,
            ),
            // net-model
            case(
                "e1000 NIC",
                "net-model",
                "server",
                None,
                vec![devices(&nic("<model type='e1000'/>"))],
                WARN,
            ),
            case(
                "virtio NIC",
                "net-model",
                "server",
                None,
                vec![devices(&nic("<model type='virtio'/>"))],
                NONE,
            ),
            case(
                "virtio NIC, vhost off",
                "net-model",
                "server",
                None,
                vec![devices(&nic("<model type='virtio'/><driver name='qemu'/>"))],
                WARN,
            ),
            case(
                "virtio NIC, vhost driver",
                "net-model",
                "server",
                None,
                vec![devices(&nic(
                    "<model type='virtio'/><driver name='vhost'/>",
                ))],
                NONE,
            ),
            case(
                "NIC without model",
                "net-model",
                "server",
                None,
                vec![devices(&nic(""))],
                WARN,
            ),
            // net-multiqueue
            case(
                "4 vCPUs, one queue",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(4, "", &nic("<model type='virtio'/>"))],
                INFO,
            ),
            case(
                "4 vCPUs, 4 queues",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(
                    4,
                    "",
                    &nic("<model type='virtio'/><driver queues='4'/>"),
                )],
                NONE,
            ),
            case(
                "1 vCPU, one queue",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(1, "", &nic("<model type='virtio'/>"))],
                NONE,
            ),
            case(
                "4 vCPUs, e1000: net-model's alone",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(4, "", &nic("<model type='e1000'/>"))],
                NONE,
            ),
            case(
                "4 vCPUs, NIC without model: net-model's alone",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(4, "", &nic(""))],
                NONE,
            ),
            case(
                "4 vCPUs, virtio-non-transitional, one queue",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(
                    4,
                    "",
                    &nic("<model type='virtio-non-transitional'/>"),
                )],
                INFO,
            ),
            case(
                "4 vCPUs, virtio with vhost off: net-model's alone",
                "net-multiqueue",
                "server",
                None,
                vec![vcpus_devices(
                    4,
                    "",
                    &nic("<model type='virtio'/><driver name='qemu'/>"),
                )],
                NONE,
            ),
            // dev-legacy
            case(
                "sound on a server",
                "dev-legacy",
                "server",
                None,
                vec![devices("<sound model='ich9'/>")],
                INFO,
            ),
            case(
                "sound on a desktop",
                "dev-legacy",
                "desktop",
                None,
                vec![devices("<sound model='ich9'/>")],
                NONE,
            ),
            case(
                "two video adapters",
                "dev-legacy",
                "server",
                None,
                vec![devices(
                    "<video><model type='virtio'/></video><video><model type='qxl'/></video>",
                )],
                INFO,
            ),
            case(
                "one video adapter",
                "dev-legacy",
                "server",
                None,
                vec![devices("<video><model type='virtio'/></video>")],
                NONE,
            ),
            case(
                "floppy drive",
                "dev-legacy",
                "server",
                None,
                vec![devices(
                    "<disk type='file' device='floppy'><source file='/a.img'/><target dev='fda' bus='fdc'/></disk>",
                )],
                INFO,
            ),
            // guest-io-scheduler
            case(
                "elevator=mq-deadline",
                "guest-io-scheduler",
                "server",
                None,
                vec![kernel_boot("console=ttyS0 elevator=mq-deadline")],
                INFO,
            ),
            case(
                "elevator=none",
                "guest-io-scheduler",
                "server",
                None,
                vec![kernel_boot("console=ttyS0 elevator=none")],
                NONE,
            ),
            case(
                "kernel boot, no elevator",
                "guest-io-scheduler",
                "server",
                None,
                vec![kernel_boot("console=ttyS0")],
                INFO,
            ),
            case(
                "firmware boot",
                "guest-io-scheduler",
                "server",
                None,
                vec![devices(&disk(ok, "vda", "virtio"))],
                NONE,
            ),
        ]
    }

    #[test]
    fn scsi_disks_get_a_virtio_scsi_controller_not_a_move() {
        let ok = "cache='none' io='native'";
        let src = devices(&format!(
            "<controller type='scsi' index='0' model='lsilogic'/><controller type='scsi' index='1' model='lsisas1078'/>{}{}{}",
            disk(ok, "sda", "scsi"),
            disk(ok, "sdb", "scsi").replace(
                "</disk>",
                "<wwn>5000c50015ea71ac</wwn><address type='drive' controller='0' bus='0' target='0' unit='1'/></disk>"
            ),
            disk(ok, "sdc", "scsi").replace(
                "</disk>",
                "<vendor>SEAGATE</vendor><address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>"
            ),
        ));
        let v = findings(std::slice::from_ref(&src), "server", None);
        let f: Vec<_> = v.iter().filter(|f| f.rule == "disk-bus").collect();
        assert_eq!(f.len(), 2, "one per controller: {f:#?}");
        assert!(f[0].message.contains("sda") && f[0].message.contains("sdb (with <wwn>)"));
        assert!(
            f[1].message.contains("sdc (with <vendor>)"),
            "{}",
            f[1].message
        );
        for x in &f {
            let fix = x.fix.as_ref().unwrap();
            assert_eq!(fix.class, crate::audit::FixClass::GuestDriver);
            assert!(
                fix.summary.starts_with("Make SCSI controller"),
                "{}",
                fix.summary
            );
        }
        let mut out = src.clone();
        for x in &f {
            let (mut doc, _) = kvmtune_domain::Domain::parse(&out).unwrap();
            crate::audit::apply(&mut doc, &x.fix.as_ref().unwrap().edits);
            out = doc.serialize();
        }
        // names and identity kept, no virtio-blk move, controllers now virtio-scsi
        for s in [
            "dev='sda' bus='scsi'",
            "dev='sdb' bus='scsi'",
            "<wwn>",
            "<vendor>",
        ] {
            assert!(out.contains(s), "{s}: {out}");
        }
        assert!(!out.contains("lsi"), "{out}");
        assert!(!out.contains("bus='virtio'"), "{out}");
        // a wwn disk on SATA keeps the move-by-hand finding
        let sata = devices(
            &disk(ok, "sda", "sata").replace("</disk>", "<wwn>5000c50015ea71ac</wwn></disk>"),
        );
        let v = findings(&[sata], "server", None);
        let f = v.iter().find(|f| f.rule == "disk-bus").unwrap();
        assert!(
            f.fix.is_none() && f.message.contains("move it by hand"),
            "{f:#?}"
        );
    }

    #[test]
    fn tablet_without_ps2_becomes_virtio_instead_of_going() {
        let src = devices(
            "<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'/><graphics type='spice' autoport='yes'/>",
        )
        .replace("arch='x86_64' machine='q35'", "arch='aarch64' machine='virt'");
        let v = findings(std::slice::from_ref(&src), "server", None);
        let mut out = src.clone();
        for r in ["dev-tablet", "dev-usb-idle"] {
            let f = v
                .iter()
                .find(|f| f.rule == r)
                .unwrap_or_else(|| panic!("{r}: {v:#?}"));
            let x = f.fix.as_ref().unwrap();
            let (mut doc, _) = kvmtune_domain::Domain::parse(&out).unwrap();
            crate::audit::apply(&mut doc, &x.edits);
            out = doc.serialize();
            if r == "dev-tablet" {
                assert!(x.summary.contains("virtio tablet"), "{}", x.summary);
                assert!(x.risk.contains("absolute"), "{}", x.risk);
            }
            // an unknown guest may lack the virtio-input driver: not applied by default
            assert_eq!(x.class, crate::audit::FixClass::GuestDriver, "{r}");
        }
        assert!(out.contains("<input type='tablet' bus='virtio'/>"), "{out}");
        // x86: the tablet goes (PS/2 mouse remains)
        let x86 =
            devices("<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'/>");
        let v = findings(&[x86], "server", None);
        let f = v.iter().find(|f| f.rule == "dev-tablet").unwrap();
        assert_eq!(f.fix.as_ref().unwrap().summary, "Remove the tablet");
    }

    #[test]
    fn disk_cache_sets_only_the_cache_mode() {
        // a qcow2 file without io used to get io='native' too (native AIO can block on a
        // sparse file's allocation): now only cache='none', disk-io-mode owns io
        let v = findings(&[devices(&disk("", "vda", "virtio"))], "server", None);
        let f = v.iter().find(|f| f.rule == "disk-cache").unwrap();
        let x = f.fix.as_ref().unwrap();
        assert_eq!(x.summary, "cache='none' on vda");
        assert!(
            x.edits
                .iter()
                .all(|e| !format!("{:?}", e.op).contains("\"io\"")),
            "{:?}",
            x.edits
        );
        assert!(!x.command.contains("io="), "{}", x.command);
        // an io mode already there stays
        let v = findings(
            &[devices(&disk(
                "cache='writeback' io='threads'",
                "vda",
                "virtio",
            ))],
            "server",
            None,
        );
        let x = v
            .iter()
            .find(|f| f.rule == "disk-cache")
            .unwrap()
            .fix
            .as_ref()
            .unwrap();
        assert_eq!(x.edits.len(), 1, "{:?}", x.edits);
    }

    #[test]
    fn device_rules() {
        run_cases(&cases());
    }
}

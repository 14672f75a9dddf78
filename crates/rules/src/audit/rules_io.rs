//! Rules for the I/O path: queue counts, throttles, io modes.

use super::{Applies, Cx, Edit, FixClass, Meta, Out, Rule, Seg, Severity, human_kib, virsh_edit};
use kvmtune_domain::NodeId;
use kvmtune_profile::Want;

/// libvirt's virtio NIC models.
const VIRTIO_NET: &[&str] = &["virtio", "virtio-transitional", "virtio-non-transitional"];

/// libvirt's virtio-scsi controller models.
const VIRTIO_SCSI: &[&str] = &[
    "virtio-scsi",
    "virtio-transitional",
    "virtio-non-transitional",
];

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule {
            meta: Meta {
                id: "queues-exceed-vcpus",
                title: "More virtio queues than vCPUs",
                severity: Severity::Info,
                profiles: &["*"],
                why: "Multiqueue pays off when each vCPU has a queue of its own (RHEL: best when the number of queues equals the number of vCPUs). Queues beyond the guest's vCPUs are never used: Linux's virtio-blk and virtio-scsi cap their hardware queues at the CPU count (since 5.1), virtio-net enables min(queues, online CPUs) by default. They still cost: a tap queue, a vhost worker and kernel memory per virtio-net queue pair on the host, and an MSI-X vector per queue in the guest; older guest kernels that tried to use them all ran out of vectors and fell back to one shared interrupt for every queue. Info: an idle queue costs little. A NIC whose model is a QEMU device name (virtio-net-pci, ...) is left to net-model-string: libvirt ignores its queues.",
                fix: "Set <driver queues='N'/> on the NIC, virtio-blk disk or virtio-scsi controller to the domain's vCPU count (the maximum, hot-pluggable vCPUs included).",
                risk: "Low: the guest sees fewer queues on the device; its drivers never used more than one per vCPU. A guest that later gets more vCPUs needs the queues raised again.",
                class: FixClass::Safe,
                source: "RHEL 7 Virtualization Tuning and Optimization Guide, 5.4.2 Multi-Queue virtio-net; libvirt domain format (disk driver queues, interface driver queues, controller driver queues); Linux 5.1 commits 'virtio-blk: limit number of hw queues by nr_cpu_ids' and 'scsi: virtio_scsi: limit number of hw queues by nr_cpu_ids' (1978f30a8773)",
                needs_host: false,
            },
            check: queues_exceed,
        },
        Rule {
            meta: Meta {
                id: "io-throttled",
                title: "Disk or network I/O is throttled",
                severity: Severity::Info,
                profiles: &["*"],
                why: "<iotune> on a disk makes QEMU throttle it (bytes or operations per second, optionally shared by a group_name), <blkiotune><device> makes the host's block cgroup throttle a host device, and <bandwidth> on an interface makes libvirt shape it with tc. All are deliberate limits, but they are the first thing to look at when a guest's disk or network is slow: the guest sees a slow device, not a limit.",
                fix: "None by kvmtune: check the limits are meant (virsh blkdeviotune / blkiotune / domiftune show and change them).",
                risk: "None (no fix).",
                class: FixClass::Safe,
                source: "libvirt domain format (disk iotune; blkiotune; interface bandwidth / Quality of service)",
                needs_host: false,
            },
            check: throttled,
        },
        Rule {
            meta: Meta {
                id: "disk-io-mode",
                title: "Host block device with threaded AIO",
                severity: Severity::Warn,
                profiles: &["*"],
                why: "With cache='none' (or directsync) QEMU opens the disk with O_DIRECT; on a raw host block device io='native' then submits requests with Linux AIO straight from QEMU, while io='threads' (QEMU's default when io is unset) hands each request to a pool of worker threads: more context switches, more host CPU and more latency per request. Block devices (raw or qcow2 on an LV or a partition) have no file-system allocation that could make native AIO block, so native fits them. Files are left alone: on a sparse or qcow2 file native AIO can block while the file system allocates, so io='threads' (or io='io_uring' on QEMU 5.0+ and Linux 5.1+) fits them. One finding lists the domain's disks. Info; warn on profiles that dedicate CPUs (latency). This rule owns the io choice: disk-cache sets only the cache mode.",
                fix: "<driver io='native'/> on the block device disks (they keep cache='none' or directsync; a disk whose cache disk-cache changes gets cache='none' in this fix too, since native needs O_DIRECT).",
                risk: "Low: native AIO needs O_DIRECT, which cache='none' or directsync gives. io='io_uring' is an alternative on QEMU 5.0+ and Linux 5.1+.",
                class: FixClass::Safe,
                source: "libvirt domain format (disk driver io); QEMU block device options (-blockdev file/host_device aio=threads|native|io_uring, native needs cache.direct=on); RHEL 7 Virtualization Tuning and Optimization Guide, 7.3 I/O Mode (native: kernel asynchronous I/O with direct I/O, the RHV default)",
                needs_host: false,
            },
            check: io_mode,
        },
    ]
}

/// The queues attribute of an element's `<driver>` child, with that driver.
fn driver_queues(cx: &Cx, node: NodeId) -> Option<(NodeId, u32)> {
    let drv = cx.doc.child(node, "driver")?;
    let q = cx.doc.attr(drv, "queues")?.trim().parse().ok()?;
    Some((drv, q))
}

/// Whether a driver maps queues to iothreads (`<iothreads><iothread><queue id>`): the
/// mapping names queue numbers, so lowering the count needs the mapping redone by hand.
fn maps_queues(cx: &Cx, drv: NodeId) -> bool {
    cx.doc.child(drv, "iothreads").is_some_and(|its| {
        cx.doc
            .children(its, "iothread")
            .any(|t| cx.doc.child(t, "queue").is_some())
    })
}

fn queues_exceed(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    if !d.is_hvm() {
        return;
    }
    // the guest's possible CPUs: hot-pluggable vCPUs count (the guest sizes queues by them)
    let n = d.vcpu.max.max(1);
    let mut over: Vec<(String, NodeId, u32)> = Vec::new();
    for nic in &d.devices.interfaces {
        // any model: net-model turns an emulated NIC into virtio-net, keeping its queues
        // (which only virtio-net takes); a hostdev NIC is the host's hardware
        if nic.itype.as_deref() == Some("hostdev") {
            continue;
        }
        // a QEMU device name as the model (virtio-net-pci, ...): libvirt ignores the
        // queues there (net-model-string's case); other unknown models take none either
        if let Some(m) = nic.model.as_deref()
            && !VIRTIO_NET.contains(&m)
            && !super::rules_dev::EMULATED_NICS.contains(&m)
        {
            continue;
        }
        if let Some((drv, q)) = driver_queues(cx, nic.node)
            && q > n
        {
            let name = nic.label();
            over.push((name, drv, q));
        }
    }
    for disk in &d.devices.disks {
        if disk.bus.as_deref() != Some("virtio") {
            continue;
        }
        if let Some((drv, q)) = driver_queues(cx, disk.node)
            && q > n
        {
            over.push((format!("disk {}", disk.label()), drv, q));
        }
    }
    for c in &d.devices.controllers {
        if c.ctype != "scsi" || !c.model.as_deref().is_some_and(|m| VIRTIO_SCSI.contains(&m)) {
            continue;
        }
        if let Some((drv, q)) = driver_queues(cx, c.node)
            && q > n
        {
            over.push((
                format!("virtio-scsi controller {}", c.index.unwrap_or(0)),
                drv,
                q,
            ));
        }
    }
    let vcpus = if d.vcpu.current.is_some_and(|c| c < n) {
        format!("{n} vCPUs (maximum)")
    } else if n == 1 {
        "1 vCPU".to_string()
    } else {
        format!("{n} vCPUs")
    };
    for (what, drv, q) in over {
        let f = out.finding(
            format!("{what} has {q} queues for {vcpus}"),
            vec![cx.ev_attr(drv, "queues")],
        );
        if maps_queues(cx, drv) {
            f.message
                .push_str("; its iothread queue mapping must be redone by hand");
            continue;
        }
        f.fix(
            format!("Give the {what} {n} queue(s)"),
            vec![Edit::set(cx.doc, drv, "queues", &n.to_string())],
            virsh_edit(
                &cx.shell_name(),
                &format!("<driver queues='{n}'/> on the {what}"),
            ),
            Applies::NextBoot,
        );
    }
}

/// Bytes per second in words.
fn bytes_rate(b: u64) -> String {
    if b >= 1024 {
        format!("{}/s", human_kib(b / 1024))
    } else {
        format!("{b} B/s")
    }
}

/// libvirt's kilobytes per second (as tc takes them) in words, with megabits for networks.
fn kb_rate(kb: u64) -> String {
    let mbit = kb as f64 * 8.0 / 1000.0;
    if mbit >= 10.0 {
        format!("{kb} KB/s ({mbit:.0} Mbit/s)")
    } else {
        format!("{kb} KB/s ({mbit:.1} Mbit/s)")
    }
}

/// The non-zero limits among `names` (child elements of `node`), in words.
fn limits(cx: &Cx, node: NodeId, names: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for name in names {
        let Some(e) = cx.doc.child(node, name) else {
            continue;
        };
        let Ok(x) = cx.doc.text(e).trim().parse::<u64>() else {
            continue;
        };
        if x == 0 {
            continue; // 0 is "no limit"
        }
        let what = name.replace('_', " ");
        let val = if name.contains("bytes") {
            bytes_rate(x)
        } else {
            format!("{x} IOPS")
        };
        v.push(format!("{what} {val}"));
    }
    v
}

const IOTUNE: &[&str] = &[
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
    "total_bytes_sec_max",
    "read_bytes_sec_max",
    "write_bytes_sec_max",
    "total_iops_sec_max",
    "read_iops_sec_max",
    "write_iops_sec_max",
];
const BLKIOTUNE: &[&str] = &[
    "read_bytes_sec",
    "write_bytes_sec",
    "read_iops_sec",
    "write_iops_sec",
];

fn throttled(cx: &Cx, out: &mut Out) {
    let d = cx.d;
    for disk in &d.devices.disks {
        let Some(io) = cx.doc.child(disk.node, "iotune") else {
            continue;
        };
        let v = limits(cx, io, IOTUNE);
        if v.is_empty() {
            continue;
        }
        let group = cx
            .doc
            .child(io, "group_name")
            .map(|g| cx.doc.text(g).trim().to_string())
            .filter(|g| !g.is_empty());
        let mut msg = format!("disk {} throttled by QEMU: {}", disk.label(), v.join(", "));
        if let Some(g) = group {
            msg.push_str(&format!(" (shared by group '{g}')"));
        }
        out.finding(msg, vec![cx.ev(io)]);
    }
    if let Some(bt) = cx.doc.child(d.node, "blkiotune") {
        for dev in cx.doc.children(bt, "device") {
            let v = limits(cx, dev, BLKIOTUNE);
            if v.is_empty() {
                continue;
            }
            let path = cx
                .doc
                .child(dev, "path")
                .map(|p| cx.doc.text(p).trim().to_string())
                .unwrap_or_default();
            out.finding(
                format!(
                    "host device {path} throttled by the block cgroup: {}",
                    v.join(", ")
                ),
                vec![cx.ev(dev)],
            );
        }
    }
    for nic in &d.devices.interfaces {
        let Some(bw) = cx.doc.child(nic.node, "bandwidth") else {
            continue;
        };
        let mut v = Vec::new();
        for dir in ["inbound", "outbound"] {
            let Some(e) = cx.doc.child(bw, dir) else {
                continue;
            };
            let num = |a: &str| {
                cx.doc
                    .attr(e, a)
                    .and_then(|x| x.trim().parse::<u64>().ok())
                    .filter(|&x| x > 0)
            };
            // floor is a guarantee, not a limit
            let mut parts = Vec::new();
            if let Some(a) = num("average") {
                parts.push(format!("average {}", kb_rate(a)));
            }
            if let Some(p) = num("peak") {
                parts.push(format!("peak {}", kb_rate(p)));
            }
            if let Some(b) = num("burst") {
                parts.push(format!("burst {}", human_kib(b)));
            }
            if !parts.is_empty() {
                v.push(format!("{dir} {}", parts.join(", ")));
            }
        }
        if v.is_empty() {
            continue;
        }
        out.finding(
            format!("{} shaped: {}", nic.label(), v.join("; ")),
            vec![cx.ev(bw)],
        );
    }
}

/// The cache mode a disk has once disk-cache's fix is in: its own when the profile accepts
/// it, else cache='none' where disk-cache fixes it (`true`: the fix is pending).
fn cache_after_disk_cache<'a>(
    cx: &Cx,
    disk: &'a kvmtune_domain::model::Disk,
) -> Option<(&'a str, bool)> {
    let cache = disk.cache.as_deref().unwrap_or("default");
    if cx.profile.domain.disk_cache.iter().any(|c| c == cache) {
        return Some((cache, false));
    }
    // disk-cache skips read-only disks (and the non-QEMU, network, vhost-user and nvme
    // ones, which are not type='block')
    (super::enabled("disk-cache", cx.profile) && !disk.readonly).then_some(("none", true))
}

fn io_mode(cx: &Cx, out: &mut Out) {
    let latency = cx.profile.domain.pinning == Want::Want;
    let sev = if latency { out.level } else { Severity::Info };
    let mut names = Vec::new();
    let mut evidence = Vec::new();
    let mut edits = Vec::new();
    let mut with_cache = false;
    for disk in &cx.d.devices.disks {
        // any image format on a host block device: there is no file-system allocation
        // under it that could make native AIO block (qcow2 on an LV included)
        if disk.disk_type.as_deref() != Some("block")
            || disk.device() != "disk"
            || disk.driver_name.as_deref().is_some_and(|n| n != "qemu")
            || !matches!(disk.io.as_deref(), None | Some("threads"))
        {
            continue;
        }
        let Some((cache, pending)) = cache_after_disk_cache(cx, disk) else {
            continue;
        };
        if !matches!(cache, "none" | "directsync") {
            continue; // native needs O_DIRECT: another cache mode the profile accepts stays
        }
        let segs = || vec![Seg::new("driver")];
        if pending {
            // disk-cache's cache='none' comes along, so this fix alone gives a valid disk
            with_cache = true;
            if disk.driver_node.is_none() {
                edits.push(Edit::set_at(cx.doc, disk.node, segs(), "name", "qemu"));
            }
            edits.push(Edit::set_at(cx.doc, disk.node, segs(), "cache", "none"));
        }
        edits.push(Edit::set_at(cx.doc, disk.node, segs(), "io", "native"));
        let io = match disk.io.as_deref() {
            Some(_) => "io='threads'",
            None => "no io",
        };
        let cache = if pending {
            format!(
                "cache={} (disk-cache: none)",
                disk.cache.as_deref().unwrap_or("default")
            )
        } else {
            format!("cache={cache}")
        };
        names.push(format!(
            "{} ({}, {cache}, {io})",
            disk.label(),
            disk.format.as_deref().unwrap_or("raw")
        ));
        evidence.push(match disk.driver_node {
            Some(drv) => cx.ev_attr(drv, "io"),
            None => cx.ev_absent(disk.node, "driver"),
        });
    }
    if names.is_empty() {
        return;
    }
    let labels: Vec<&str> = names
        .iter()
        .map(|n| n.split(' ').next().unwrap_or(n))
        .collect();
    let what = if with_cache {
        "<driver cache='none' io='native'/>"
    } else {
        "<driver io='native'/>"
    };
    out.at(
        sev,
        format!(
            "host block device disk(s) on threaded AIO (QEMU's default when io is unset): {}",
            names.join(", ")
        ),
        evidence,
    )
    .fix(
        format!("io='native' on {}", labels.join(", ")),
        edits,
        virsh_edit(
            &cx.shell_name(),
            &format!("{what} on disk(s) {}", labels.join(", ")),
        ),
        Applies::NextBoot,
    );
}

#[cfg(test)]
pub(super) mod table {
    use crate::audit::testkit::*;

    fn nic(queues: &str) -> String {
        format!(
            "<interface type='bridge'><source bridge='br0'/><model type='virtio'/>\
<driver {queues}/></interface>"
        )
    }

    fn blk(driver: &str) -> String {
        format!(
            "<disk type='block' device='disk'><driver name='qemu' {driver}/>\
<source dev='/dev/vg/a'/><target dev='vda' bus='virtio'/></disk>"
        )
    }

    fn with(vcpus: &str, devices: &str) -> Vec<String> {
        vec![dom(&format!("{vcpus}<devices>{devices}</devices>"))]
    }

    pub(crate) fn cases() -> Vec<Case> {
        let v4 = "<vcpu>4</vcpu>";
        let scsi = |q: u32| {
            format!(
                "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='{q}'/></controller>"
            )
        };
        vec![
            // queues-exceed-vcpus
            case(
                "virtio NIC with 8 queues on 4 vCPUs",
                "queues-exceed-vcpus",
                "server",
                None,
                with(v4, &nic("queues='8'")),
                INFO,
            ),
            case(
                "virtio NIC with 4 queues on 4 vCPUs",
                "queues-exceed-vcpus",
                "server",
                None,
                with(v4, &nic("queues='4'")),
                NONE,
            ),
            case(
                "8 queues on 4 of 8 hot-pluggable vCPUs",
                "queues-exceed-vcpus",
                "server",
                None,
                with("<vcpu current='4'>8</vcpu>", &nic("queues='8'")),
                NONE,
            ),
            case(
                "virtio-blk with 4 queues on 1 vCPU",
                "queues-exceed-vcpus",
                "server",
                None,
                with("", &blk("type='raw' queues='4'")),
                INFO,
            ),
            case(
                "virtio-scsi with 8 queues on 4 vCPUs",
                "queues-exceed-vcpus",
                "dense",
                None,
                with(v4, &scsi(8)),
                INFO,
            ),
            case(
                "virtio-scsi with 2 queues on 4 vCPUs",
                "queues-exceed-vcpus",
                "dense",
                None,
                with(v4, &scsi(2)),
                NONE,
            ),
            case(
                "virtio-net-pci model string with 8 queues (libvirt ignores them)",
                "queues-exceed-vcpus",
                "server",
                None,
                with(
                    "<vcpu>2</vcpu>",
                    "<interface type='bridge'><source bridge='br0'/><model type='virtio-net-pci'/>\
<driver queues='8'/></interface>",
                ),
                NONE,
            ),
            // io-throttled
            case(
                "disk with iotune",
                "io-throttled",
                "server",
                None,
                with(
                    "",
                    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
<source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
<iotune><total_bytes_sec>52428800</total_bytes_sec><read_iops_sec>1000</read_iops_sec></iotune></disk>",
                ),
                INFO,
            ),
            case(
                "disk with an all-zero iotune",
                "io-throttled",
                "server",
                None,
                with(
                    "",
                    "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
<source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
<iotune><total_bytes_sec>0</total_bytes_sec><total_iops_sec>0</total_iops_sec></iotune></disk>",
                ),
                NONE,
            ),
            case(
                "NIC with bandwidth",
                "io-throttled",
                "desktop",
                None,
                with(
                    "",
                    "<interface type='network'><source network='default'/><model type='virtio'/>\
<bandwidth><inbound average='1000' peak='4000' burst='1024'/></bandwidth></interface>",
                ),
                INFO,
            ),
            case(
                "NIC with only a floor",
                "io-throttled",
                "desktop",
                None,
                with(
                    "",
                    "<interface type='network'><source network='default'/><model type='virtio'/>\
<bandwidth><inbound average='0' floor='200'/></bandwidth></interface>",
                ),
                NONE,
            ),
            // disk-io-mode
            case(
                "raw LV, cache none, io unset",
                "disk-io-mode",
                "server",
                None,
                with("", &blk("type='raw' cache='none'")),
                INFO,
            ),
            case(
                "raw LV, cache none, io threads, latency",
                "disk-io-mode",
                "latency",
                None,
                with("", &blk("type='raw' cache='none' io='threads'")),
                WARN,
            ),
            case(
                "raw LV, cache none, io native",
                "disk-io-mode",
                "latency",
                None,
                with("", &blk("type='raw' cache='none' io='native'")),
                NONE,
            ),
            case(
                "raw LV, cache writeback on desktop",
                "disk-io-mode",
                "desktop",
                None,
                with("", &blk("type='raw' cache='writeback'")),
                NONE,
            ),
            case(
                "qcow2 on an LV, cache none, io unset",
                "disk-io-mode",
                "server",
                None,
                with("", &blk("type='qcow2' cache='none'")),
                INFO,
            ),
            case(
                "raw LV, cache writeback on server (disk-cache sets none)",
                "disk-io-mode",
                "server",
                None,
                with("", &blk("type='raw' cache='writeback'")),
                INFO,
            ),
            case(
                "raw file, cache none",
                "disk-io-mode",
                "server",
                None,
                with(
                    "",
                    "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/>\
<source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk>",
                ),
                NONE,
            ),
        ]
    }

    #[test]
    fn model_string_nic_queues_follow_net_model_strings_fix() {
        let src = with(
            "<vcpu>2</vcpu>",
            "<interface type='bridge'><source bridge='br0'/><model type='virtio-net-pci'/>\
<driver queues='8'/></interface>",
        );
        let v = findings(&src, "server", None);
        assert!(!v.iter().any(|f| f.rule == "queues-exceed-vcpus"), "{v:#?}");
        let x = v
            .iter()
            .find(|f| f.rule == "net-model-string")
            .and_then(|f| f.fix.as_ref())
            .unwrap();
        let (mut doc, _) = kvmtune_domain::Domain::parse(&src[0]).unwrap();
        crate::audit::apply(&mut doc, &x.edits);
        let v = findings(&[doc.serialize()], "server", None);
        assert!(!v.iter().any(|f| f.rule == "queues-exceed-vcpus"), "{v:#?}");
    }

    #[test]
    fn io_rules() {
        run_cases(&cases());
    }

    #[test]
    fn throttle_limits_are_in_human_units() {
        let v = findings(
            &with(
                "",
                "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
<source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
<iotune><total_bytes_sec>52428800</total_bytes_sec><read_iops_sec>1000</read_iops_sec>\
<group_name>g1</group_name></iotune></disk>\
<interface type='network'><source network='default'/><model type='virtio'/>\
<bandwidth><outbound average='128' peak='256' burst='32768'/></bandwidth></interface>",
            ),
            "server",
            None,
        );
        let msgs: Vec<&str> = v
            .iter()
            .filter(|f| f.rule == "io-throttled")
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            [
                "disk vda throttled by QEMU: total bytes sec 50 MiB/s, read iops sec 1000 IOPS (shared by group 'g1')",
                "NIC (type network, no MAC yet) shaped: outbound average 128 KB/s (1.0 Mbit/s), peak 256 KB/s (2.0 Mbit/s), burst 32 MiB",
            ],
            "{v:#?}"
        );
    }

    #[test]
    fn io_mode_is_one_finding_listing_the_disks_and_brings_the_cache_it_needs() {
        let two = format!(
            "{}{}",
            blk("type='raw' cache='none'"),
            blk("type='qcow2' cache='writeback'").replace("vda", "vdb")
        );
        let v = findings(&with("", &two), "server", None);
        let f: Vec<_> = v.iter().filter(|f| f.rule == "disk-io-mode").collect();
        assert_eq!(f.len(), 1, "{v:#?}");
        assert!(f[0].message.contains("vda") && f[0].message.contains("vdb"));
        let x = f[0].fix.as_ref().unwrap();
        assert_eq!(x.summary, "io='native' on vda, vdb");
        // vdb's cache='none' (disk-cache's) comes with it: native needs O_DIRECT
        let cache: Vec<_> = x
            .edits
            .iter()
            .filter(|e| format!("{:?}", e.op).contains("cache"))
            .collect();
        assert_eq!(cache.len(), 1, "{:?}", x.edits);
        // disk-cache sets only the cache mode
        let dc = v.iter().find(|f| f.rule == "disk-cache").unwrap();
        let dx = dc.fix.as_ref().unwrap();
        assert_eq!(dx.summary, "cache='none' on vdb");
        assert!(
            !dx.edits
                .iter()
                .any(|e| format!("{:?}", e.op).contains("\"io\"")),
            "{:?}",
            dx.edits
        );
    }

    #[test]
    fn queue_mappings_are_not_rewritten() {
        let v = findings(
            &with(
                "<vcpu>2</vcpu><iothreads>2</iothreads>",
                "<controller type='scsi' index='0' model='virtio-scsi'><driver queues='3'>\
<iothreads><iothread id='1'><queue id='0'/></iothread><iothread id='2'><queue id='1'/>\
<queue id='2'/></iothread></iothreads></driver></controller>",
            ),
            "server",
            None,
        );
        let f = v.iter().find(|f| f.rule == "queues-exceed-vcpus").unwrap();
        assert!(f.fix.is_none(), "{f:#?}");
        assert!(f.message.contains("by hand"), "{}", f.message);
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Precision of fixes (issue 12 §3): fixes that leave no invalid leftovers, fixes of
//! several rules that agree with each other, and fixing twice changing nothing.

use kvmtune_domain::{Document, Domain};
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Finding, Peer};

fn run(doc: &Document, profile: &str) -> Vec<Finding> {
    let profile = Profile::load(profile).unwrap();
    let d = Domain::from_doc(doc).unwrap();
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    audit::audit(&Cx {
        doc,
        d: &d,
        profile: &profile,
        host: None,
        caps: None,
        peers: &peers,
        memo: Default::default(),
    })
}

/// The edits of the fixes of `rules` (all rules when empty) on `doc`.
fn edits(doc: &Document, profile: &str, rules: &[&str]) -> Vec<audit::Edit> {
    run(doc, profile)
        .iter()
        .filter(|f| rules.is_empty() || rules.contains(&f.rule))
        .filter_map(|f| f.fix.as_ref())
        .flat_map(|f| f.edits.clone())
        .collect()
}

/// `src` with the fixes of `rules` applied once.
fn fixed(src: &str, profile: &str, rules: &[&str]) -> Document {
    let mut doc = Document::parse(src).unwrap();
    let e = edits(&doc, profile, rules);
    assert!(!e.is_empty(), "no fix of {rules:?} for {src}");
    audit::apply(&mut doc, &e);
    doc
}

fn rules_of(doc: &Document, profile: &str) -> Vec<&'static str> {
    run(doc, profile).iter().map(|f| f.rule).collect()
}

fn dom(extra: &str) -> String {
    format!(
        "<domain type='kvm'><name>vm</name><memory unit='MiB'>2048</memory>\
<os><type arch='x86_64' machine='q35'>hvm</type></os>{extra}</domain>"
    )
}

#[test]
fn a_disk_moved_to_virtio_loses_its_drive_address_and_alias_and_gets_its_iothread() {
    let src = dom("<vcpu>2</vcpu><devices><disk type='file' device='disk'>\
<driver name='qemu' type='raw' cache='none' io='native'/><source file='/i/a.img'/>\
<target dev='sda' bus='sata'/><alias name='ua-sata0'/>\
<address type='drive' controller='0' bus='0' target='0' unit='0'/></disk></devices>");
    let doc = Document::parse(&src).unwrap();
    assert!(!rules_of(&doc, "server").contains(&"disk-io"));
    let doc = fixed(&src, "server", &["disk-bus"]);
    let xml = doc.serialize();
    assert!(
        xml.contains("bus=\"virtio\"") || xml.contains("bus='virtio'"),
        "{xml}"
    );
    assert!(!xml.contains("<address"), "{xml}");
    assert!(!xml.contains("<alias"), "{xml}");
    assert!(xml.contains("iothread="), "{xml}");
    assert!(xml.contains("<iothreads>1</iothreads>"), "{xml}");
    let after = rules_of(&doc, "server");
    assert!(!after.contains(&"disk-io"), "{after:?}");
    assert!(!after.contains(&"disk-bus"), "{after:?}");
}

#[test]
fn an_emulated_nic_moved_to_virtio_gets_its_queues_in_the_same_fix() {
    let src = dom(
        "<vcpu>4</vcpu><devices><interface type='network'><source network='default'/>\
<model type='e1000'/></interface></devices>",
    );
    let doc = Document::parse(&src).unwrap();
    let before = run(&doc, "server");
    assert_eq!(
        before.iter().filter(|f| f.rule == "net-model").count(),
        1,
        "{before:#?}"
    );
    assert!(!before.iter().any(|f| f.rule == "net-multiqueue"));
    let doc = fixed(&src, "server", &["net-model"]);
    let xml = doc.serialize();
    assert!(xml.contains("queues="), "{xml}");
    let after = rules_of(&doc, "server");
    assert!(!after.contains(&"net-multiqueue"), "{after:?}");
    assert!(!after.contains(&"net-model"), "{after:?}");
}

/// A Windows 10 guest with hpet off and neither Hyper-V nor a tuned clock.
const WIN_HPET_OFF: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata><vcpu>2</vcpu>\
<features><acpi/><apic/></features><clock offset='localtime'><timer name='hpet' present='no'/></clock>";

#[test]
fn clock_and_hyperv_fixes_make_one_clock_and_applying_twice_changes_nothing() {
    let both = ["clock-windows", "hyperv-enlightenments"];
    let src = dom(WIN_HPET_OFF);
    let doc = Document::parse(&src).unwrap();
    let before = rules_of(&doc, "server");
    for r in both {
        assert!(before.contains(&r), "{r} missing: {before:?}");
    }
    let e = edits(&doc, "server", &both);
    let mut once = Document::parse(&src).unwrap();
    audit::apply(&mut once, &e);
    let mut twice = Document::parse(&src).unwrap();
    audit::apply(&mut twice, &e);
    audit::apply(&mut twice, &e);
    assert_eq!(once.serialize(), twice.serialize());
    let d = Domain::from_doc(&once).unwrap();
    let clock = d.clock.as_ref().unwrap();
    // hypervclock + stimer: hpet stays off, and there is one timer of each name
    assert!(d.features.hyperv_on("stimer"));
    assert_eq!(clock.timer("hypervclock").unwrap().present, Some(true));
    assert_eq!(clock.timer("hpet").unwrap().present, Some(false));
    for t in &clock.timers {
        let n = clock.timers.iter().filter(|x| x.name == t.name).count();
        assert_eq!(n, 1, "timer {} {n} times: {}", t.name, once.serialize());
    }
    // and an audit of the result asks nothing more of either rule
    let after = rules_of(&once, "server");
    for r in both {
        assert!(!after.contains(&r), "{r} again: {after:?}");
    }
    // clock-windows' fix alone already makes that clock (stimer, not hpet)
    let alone = fixed(&src, "server", &["clock-windows"]);
    let d = Domain::from_doc(&alone).unwrap();
    assert!(d.features.hyperv_on("stimer"), "{}", alone.serialize());
    assert_eq!(
        d.clock.as_ref().unwrap().timer("hpet").unwrap().present,
        Some(false)
    );
    assert!(!rules_of(&alone, "server").contains(&"clock-windows"));
    // the same in either order: hyperv's edits first
    let mut rev = Document::parse(&src).unwrap();
    let mut e2 = edits(&doc, "server", &["hyperv-enlightenments"]);
    e2.extend(edits(&doc, "server", &["clock-windows"]));
    audit::apply(&mut rev, &e2);
    let d = Domain::from_doc(&rev).unwrap();
    assert_eq!(
        d.clock.as_ref().unwrap().timer("hpet").unwrap().present,
        Some(false)
    );
    // the same settings (the order of the elements may differ)
    let settings = |doc: &Document| {
        let d = Domain::from_doc(doc).unwrap();
        let mut hv: Vec<String> = d
            .features
            .hyperv
            .iter()
            .map(|f| format!("{}={:?}{:?}", f.name, f.state, f.attrs))
            .collect();
        hv.sort();
        let mut timers: Vec<String> = d
            .clock
            .as_ref()
            .unwrap()
            .timers
            .iter()
            .map(|t| format!("{}={:?}{:?}", t.name, t.present, t.tickpolicy))
            .collect();
        timers.sort();
        (hv, timers)
    };
    assert_eq!(settings(&rev), settings(&once));
}

#[test]
fn a_usb_controller_set_to_none_keeps_no_ports_nor_children() {
    let src = dom(
        "<devices><controller type='usb' index='0' model='qemu-xhci' ports='15'>\
<alias name='ua-usb'/><address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>\
</controller></devices>",
    );
    let doc = fixed(&src, "server", &["dev-usb-idle"]);
    let xml = doc.serialize();
    assert!(
        xml.contains("model=\"none\"") || xml.contains("model='none'"),
        "{xml}"
    );
    assert!(!xml.contains("ports="), "{xml}");
    assert!(!xml.contains("<address"), "{xml}");
    assert!(!xml.contains("<alias"), "{xml}");
    assert!(!rules_of(&doc, "server").contains(&"dev-usb-idle"));
}

#[test]
fn a_balloon_set_to_none_keeps_no_address() {
    let src = dom(
        "<memoryBacking><hugepages/></memoryBacking><devices><memballoon model='virtio' autodeflate='on'>\
<stats period='10'/><address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>\
</memballoon></devices>",
    );
    let doc = fixed(&src, "server", &["mem-balloon"]);
    let xml = doc.serialize();
    assert!(
        xml.contains("model=\"none\"") || xml.contains("model='none'"),
        "{xml}"
    );
    assert!(!xml.contains("<address"), "{xml}");
    assert!(!xml.contains("<stats"), "{xml}");
    assert!(!xml.contains("autodeflate"), "{xml}");
    assert!(!rules_of(&doc, "server").contains(&"mem-balloon"));
}

#[test]
fn a_disk_with_chs_translation_loses_only_the_translation_when_moved() {
    let src = dom("<vcpu>1</vcpu><devices><disk type='file' device='disk'>\
<driver name='qemu' type='raw'/><source file='/i/a.img'/>\
<geometry cyls='16383' heads='16' secs='63' trans='lba'/><target dev='hda' bus='ide'/></disk></devices>");
    let doc = fixed(&src, "server", &["disk-bus"]);
    let xml = doc.serialize();
    assert!(xml.contains("bus='virtio'"), "{xml}");
    assert!(
        xml.contains("<geometry cyls='16383' heads='16' secs='63'/>"),
        "{xml}"
    );
}

#[test]
fn a_disk_with_a_wwn_vendor_or_product_is_not_moved_to_virtio_blk() {
    for extra in [
        "<wwn>5000c50015ea71ac</wwn>",
        "<vendor>SEAGATE</vendor>",
        "<product>ST3146707LC</product>",
    ] {
        let src = dom(&format!(
            "<vcpu>1</vcpu><devices><disk type='file' device='disk'>\
<driver name='qemu' type='raw'/><source file='/i/a.img'/>\
<target dev='sda' bus='scsi'/>{extra}</disk></devices>"
        ));
        let doc = Document::parse(&src).unwrap();
        let f = run(&doc, "server");
        let bus = f.iter().find(|f| f.rule == "disk-bus").unwrap();
        assert!(bus.fix.is_none(), "{extra}: {bus:?}");
        assert!(bus.message.contains("virtio-scsi"), "{}", bus.message);
    }
}

#[test]
fn a_disk_named_vdx_keeps_its_name_when_moved() {
    let src = dom("<vcpu>1</vcpu><devices><disk type='file' device='disk'>\
<driver name='qemu' type='raw'/><source file='/i/a.img'/><target dev='vdb' bus='sata'/></disk>\
</devices>");
    let doc = fixed(&src, "server", &["disk-bus"]);
    let xml = doc.serialize();
    assert!(xml.contains("<target dev='vdb' bus='virtio'/>"), "{xml}");
}

#[test]
fn a_tablet_is_added_only_where_a_usb_port_is_free() {
    let vnc = "<graphics type='vnc' port='-1'/>";
    // two redirected devices on a 2-port UHCI: no free port, no fix, the message says why
    let full = dom(&format!(
        "<vcpu>1</vcpu><devices><controller type='usb' index='0' model='piix3-uhci'/>\
<redirdev bus='usb' type='spicevmc'/><redirdev bus='usb' type='spicevmc'/>{vnc}</devices>"
    ));
    let doc = Document::parse(&full).unwrap();
    let f = run(&doc, "desktop");
    let t = f.iter().find(|f| f.rule == "dev-tablet").unwrap();
    assert!(t.fix.is_none(), "{t:?}");
    assert!(t.message.contains("no USB port is free"), "{}", t.message);
    // the same on an xHCI controller (4 ports): the tablet fits
    let room = full.replace("piix3-uhci", "qemu-xhci");
    let doc = fixed(&room, "desktop", &["dev-tablet"]);
    assert!(doc.serialize().contains("<input type='tablet' bus='usb'"));
    // no USB controller at all: libvirt adds its default one, the tablet fits
    let none = dom(&format!("<vcpu>1</vcpu><devices>{vnc}</devices>"));
    fixed(&none, "desktop", &["dev-tablet"]);
}

/// A userspace NVMe disk (QEMU drives the controller through VFIO) has no host page cache to
/// tune: no disk-cache finding, while the file disk beside it gets one.
#[test]
fn a_userspace_nvme_disk_gets_no_cache_advice() {
    let src = dom("<vcpu>1</vcpu><devices><disk type='nvme' device='disk'>\
<driver name='qemu' type='raw'/><source type='pci' managed='yes' namespace='1'>\
<address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source>\
<target dev='vda' bus='virtio'/></disk>\
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/i/b.img'/>\
<target dev='vdb' bus='virtio'/></disk></devices>");
    let doc = Document::parse(&src).unwrap();
    let cache: Vec<String> = run(&doc, "server")
        .into_iter()
        .filter(|f| f.rule == "disk-cache")
        .map(|f| f.message)
        .collect();
    assert_eq!(cache, vec!["disk vdb uses cache=default".to_string()]);
}

/// libvirt refuses hugepages with `<allocation mode='ondemand'>`: the finding stays, in
/// words, with no fix.
#[test]
fn hugepages_are_not_added_to_ondemand_allocation() {
    let src = dom("<vcpu>2</vcpu><memoryBacking><allocation mode='ondemand'/></memoryBacking>");
    let doc = Document::parse(&src).unwrap();
    let f = run(&doc, "latency");
    let h = f.iter().find(|f| f.rule == "mem-hugepages").unwrap();
    assert!(h.fix.is_none(), "{h:?}");
    assert!(h.message.contains("ondemand"), "{}", h.message);
}

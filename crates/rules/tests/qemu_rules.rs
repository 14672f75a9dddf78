#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The rules of rules_qemu.rs on real domains: the qemu:commandline ones of the corpus,
//! and how often each rule fires over every corpus domain.

mod common;
use common::*;

use kvmtune_domain::{Document, Domain};
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, Finding, Peer, Severity};

fn audit_src(src: &str, profile: &str) -> Vec<Finding> {
    let profile = Profile::load(profile).unwrap();
    let doc = Document::parse(src).unwrap();
    let d = Domain::from_doc(&doc).unwrap();
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    audit::audit(&Cx {
        doc: &doc,
        d: &d,
        profile: &profile,
        host: None,
        caps: None,
        peers: &peers,
        memo: Default::default(),
    })
}

fn of<'a>(v: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    v.iter().filter(|f| f.rule == rule).collect()
}

#[test]
fn qemu_commandline_fires_on_the_corpus_domains_that_have_one() {
    let Some(c) = corpus() else { return };
    // wild domains: devices and objects behind libvirt's back
    for (file, arg) in [
        ("wild-domains/12.xml", "-device"),
        ("wild-domains/08.xml", "input-linux"),
    ] {
        let src = std::fs::read_to_string(c.join(file)).unwrap();
        let v = audit_src(&src, "server");
        let q = of(&v, "qemu-commandline");
        assert_eq!(q.len(), 1, "{file}: {v:#?}");
        assert_eq!(q[0].severity, Severity::Warn, "{file}");
        assert!(q[0].message.contains(arg), "{file}: {}", q[0].message);
        assert!(q[0].fix.is_none());
        // 08 also sets two environment variables: not findings, not evidence
        assert!(
            q[0].evidence.iter().all(|e| !e.path.contains("env")),
            "{file}: {:#?}",
            q[0].evidence
        );
    }
    // libvirt's own tests: options that add nothing libvirt knows of, namespace declared
    // on the element or on the root
    for file in [
        "libvirt-domains/qemu-ns-commandline.xml",
        "libvirt-domains/qemu-ns-no-env.xml",
        "libvirt-domains/qemu-ns-commandline-ns0.xml",
        "libvirt-domains/qemu-ns-domain-commandline-ns0.xml",
    ] {
        let src = std::fs::read_to_string(c.join(file)).unwrap();
        let v = audit_src(&src, "server");
        let q = of(&v, "qemu-commandline");
        assert_eq!(q.len(), 1, "{file}: {v:#?}");
        assert_eq!(q[0].severity, Severity::Info, "{file}");
    }
}

#[test]
fn env_alone_is_not_a_finding() {
    let src = "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
<name>vm</name><memory unit='MiB'>2048</memory><os><type arch='x86_64' machine='q35'>hvm</type></os>\
<qemu:commandline><qemu:env name='QEMU_AUDIO_DRV' value='pa'/>\
<qemu:env name='QEMU_PA_SERVER' value='/run/user/1000/pulse/native'/></qemu:commandline></domain>";
    let v = audit_src(src, "server");
    assert!(of(&v, "qemu-commandline").is_empty(), "{v:#?}");
}

/// 12.xml's Looking Glass device: ivshmem-plain on a memory-backend-file of /dev/kvmfr0.
/// libvirt's <shmem> cannot map a char device, so the advice is to keep the arguments
/// (it used to suggest <shmem>).
#[test]
fn kvmfr_ivshmem_has_no_libvirt_equivalent() {
    let Some(c) = corpus() else { return };
    let src = std::fs::read_to_string(c.join("wild-domains/12.xml")).unwrap();
    let v = audit_src(&src, "server");
    let q = of(&v, "qemu-commandline");
    assert_eq!(q.len(), 1, "{v:#?}");
    let m = &q[0].message;
    assert!(m.contains("libvirt has no equivalent"), "{m}");
    assert!(m.contains("kvmfr"), "{m}");
    assert!(!m.contains("in libvirt: <shmem>"), "{m}");
    assert!(!m.contains("in libvirt: <memoryBacking>, <shmem>"), "{m}");
}

#[test]
fn the_hidden_hypervisor_of_a_gpu_passthrough_windows_is_reported_without_a_fix() {
    let Some(c) = corpus() else { return };
    // 12.xml: Windows 11, GPU passed through, <feature policy="disable" name="hypervisor"/>,
    // Hyper-V passthrough, hpet off (its <kvm><hidden> sits outside <features>: no effect)
    let src = std::fs::read_to_string(c.join("wild-domains/12.xml")).unwrap();
    let v = audit_src(&src, "server");
    let h = of(&v, "cpu-hypervisor-hidden");
    assert_eq!(h.len(), 1, "{v:#?}");
    assert_eq!(h[0].severity, Severity::Warn);
    assert!(h[0].fix.is_none());
    assert!(h[0].message.contains("deliberate"), "{}", h[0].message);
    let e = of(&v, "hyperv-enlightenments");
    assert_eq!(e.len(), 1, "{v:#?}");
    assert!(e[0].fix.is_none());
    // the cause is cpu-hypervisor-hidden's: reported once at warn, the rest is info
    assert_eq!(e[0].severity, Severity::Info);
    assert!(
        e[0].message.contains("cpu-hypervisor-hidden"),
        "{}",
        e[0].message
    );
    assert!(
        e[0].message.contains("all (mode='passthrough')")
            && e[0].message.contains("hidden from Windows"),
        "{}",
        e[0].message
    );
    // the synthetic timers do not reach Windows: clock-windows turns hpet back on
    let cw = of(&v, "clock-windows");
    assert_eq!(cw.len(), 1, "{v:#?}");
    let edits: Vec<String> = cw[0]
        .fix
        .as_ref()
        .unwrap()
        .edits
        .iter()
        .map(|e| e.describe())
        .collect();
    // the third timer of 12.xml is <timer name="hpet" present="no"/>
    assert!(
        edits.len() == 1
            && edits[0] == "set /domain/clock/timer[3]/@present = 'yes'"
            && !edits[0].contains("stimer"),
        "{edits:?}"
    );

    // 08.xml: kvm hidden with GPUs passed through: info, no fix
    let src = std::fs::read_to_string(c.join("wild-domains/08.xml")).unwrap();
    let v = audit_src(&src, "server");
    let h = of(&v, "cpu-hypervisor-hidden");
    assert_eq!(h.len(), 1, "{v:#?}");
    assert_eq!(h[0].severity, Severity::Info);
    assert!(h[0].fix.is_none());
    assert!(h[0].message.contains("NVIDIA"), "{}", h[0].message);
}

/// The fixes of these rules on a valid libvirt test domain given the problems: the fixed
/// XML still validates against libvirt's schema (corpus_fix.rs sees none of them: no
/// libvirt test domain has them).
#[test]
fn fixes_validate() {
    let Some(c) = corpus() else { return };
    let base = std::fs::read_to_string(c.join("libvirt-domains/event_idx.xml")).unwrap();
    let broken = |model: &str| {
        base.replace(
            "</os>",
            "</os>\n  <features><acpi/><kvm><hidden state='on'/></kvm></features>\n  \
<cpu mode='host-passthrough'><feature policy='disable' name='hypervisor'/></cpu>",
        )
        .replace(
            "<model type='virtio'/>",
            &format!("<model type='{model}'/>"),
        )
    };
    let rules = ["cpu-hypervisor-hidden", "net-model-string"];
    let out = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for model in [
        "virtio-net-pci",
        "virtio-net-device",
        "virtio-net-pci-non-transitional",
    ] {
        let src = broken(model);
        let mut doc = Document::parse(&src).unwrap();
        let v = audit_src(&src, "server");
        let edits: Vec<audit::Edit> = v
            .iter()
            .filter(|f| rules.contains(&f.rule))
            .filter_map(|f| f.fix.as_ref())
            .flat_map(|f| f.edits.clone())
            .collect();
        assert_eq!(
            edits.len(),
            if model == "virtio-net-device" { 4 } else { 3 },
            "{v:#?}"
        );
        audit::apply(&mut doc, &edits);
        let fixed = doc.serialize();
        let again = audit_src(&fixed, "server");
        assert!(
            !again.iter().any(|f| rules.contains(&f.rule)),
            "{model}: {again:#?}"
        );
        let p = out.path().join(format!("{model}.xml"));
        std::fs::write(&p, &fixed).unwrap();
        files.push(p);
    }
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping validation: xmllint not installed");
        return;
    }
    let r = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(c.join("libvirt-schemas/domain.rng"))
        .args(&files)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

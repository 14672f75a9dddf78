#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The scheduling rules (rules_sched.rs) on real domains: the wild corpus examples, the
//! caps-based CPU model age, fixes that meet disk-io's, and how often each rule fires on
//! libvirt's test domains (printed with `--nocapture`).

mod common;
use common::*;

use kvmtune_domain::{Document, Domain};
use kvmtune_host::{CpuSet, Host};
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, DomainCaps, Finding, Peer};

/// A one-node host with `n` online CPUs whose SMT siblings are `(c, c + n/2)`, as Linux
/// numbers AMD Ryzen/Threadripper and most Intel parts (and `(2c, 2c+1)` when `pairs`).
fn smt_host(n: u32, pairs: bool) -> Host {
    let mut h = fixture_host("b-book-2socket");
    let mut online = CpuSet::new();
    for c in 0..n {
        online.insert(c);
    }
    h.cpu.online = Some(online.clone());
    h.cpu.sibling_groups = (0..n / 2)
        .map(|c| {
            let mut g = CpuSet::new();
            if pairs {
                g.insert(2 * c);
                g.insert(2 * c + 1);
            } else {
                g.insert(c);
                g.insert(c + n / 2);
            }
            g
        })
        .collect();
    h.numa.nodes.truncate(1);
    h.numa.nodes[0].cpus = online;
    h
}

fn audit_with(
    src: &str,
    profile: &str,
    host: Option<&Host>,
    caps: Option<&DomainCaps>,
) -> (Document, Vec<Finding>) {
    let profile = Profile::load(profile).unwrap();
    let doc = Document::parse(src).unwrap();
    let d = Domain::from_doc(&doc).unwrap();
    let peers = [Peer {
        domain: &d,
        active: true,
    }];
    let v = audit::audit(&Cx {
        doc: &doc,
        d: &d,
        profile: &profile,
        host,
        caps,
        peers: &peers,
        memo: Default::default(),
    });
    (doc, v)
}

fn of<'a>(v: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    v.iter().filter(|f| f.rule == rule).collect()
}

/// The XML after applying every fix of `v`.
fn fixed(mut doc: Document, v: &[Finding]) -> String {
    let edits: Vec<audit::Edit> = v
        .iter()
        .filter_map(|f| f.fix.as_ref())
        .flat_map(|f| f.edits.clone())
        .collect();
    audit::apply(&mut doc, &edits);
    doc.serialize()
}

#[test]
fn wild_domains_iothreads_smt_and_invtsc() {
    let Some(c) = corpus() else { return };
    let wild = |n: &str| std::fs::read_to_string(c.join("wild-domains").join(n)).unwrap();
    // 12: a Ryzen 7950X3D gaming guest with nine I/O threads and four disks
    let (_, v) = audit_with(&wild("12.xml"), "server", None, None);
    let unused = of(&v, "iothread-unused");
    assert_eq!(unused.len(), 1, "{v:#?}");
    assert!(
        unused[0].message.contains("1,4-5,8-9"),
        "{}",
        unused[0].message
    );
    // iothread 9 is pinned onto vCPU 11's CPU 21, but no device uses it: nothing stolen
    assert!(of(&v, "iothread-pins").is_empty(), "{v:#?}");
    // the same guest with disk sda moved onto iothread 9
    let moved = wild("12.xml").replacen(
        "io=\"threads\" iothread=\"2\"",
        "io=\"threads\" iothread=\"9\"",
        1,
    );
    let (_, v) = audit_with(&moved, "server", None, None);
    let pins = of(&v, "iothread-pins");
    assert_eq!(pins.len(), 1, "{v:#?}");
    assert!(
        pins[0].message.contains("iothread 9"),
        "{}",
        pins[0].message
    );
    let fix = pins[0].fix.as_ref().unwrap();
    assert!(fix.summary.contains("24,31"), "{}", fix.summary);

    // SMT: every wild guest with threads='2' pins its guest cores onto sibling pairs
    // (c, c+16) on the 32-thread Ryzens, (c, c+6) on the 12-thread i7-6850K
    for (file, n) in [("08.xml", 32), ("12.xml", 32), ("15.xml", 12)] {
        let right = smt_host(n, false);
        let (_, v) = audit_with(&wild(file), "server", Some(&right), None);
        assert!(of(&v, "cpu-smt-pins").is_empty(), "{file}: {v:#?}");
        // the same pins on a host numbering siblings (2c, 2c+1) are not siblings
        let wrong = smt_host(n, true);
        let (_, v) = audit_with(&wild(file), "server", Some(&wrong), None);
        let f = of(&v, "cpu-smt-pins");
        assert_eq!(f.len(), 1, "{file}: {v:#?}");
        assert_eq!(f[0].severity, audit::Severity::Warn);
    }

    // invtsc: 08 and 12 require it (and are migratable='off'); 15 does not
    let tsc = fixture_host("b-book-2socket");
    assert!(
        ["constant_tsc", "nonstop_tsc"]
            .iter()
            .all(|f| tsc.cpu.virt_flags.iter().any(|x| x == f))
    );
    for file in ["08.xml", "12.xml"] {
        let (_, v) = audit_with(&wild(file), "latency", Some(&tsc), None);
        assert!(of(&v, "cpu-invtsc").is_empty(), "{file}");
    }
    // 15 is a Windows guest: it reads time through the Hyper-V reference TSC page, and
    // the rule (whose reason is Linux's clocksource switch) leaves it alone
    let (_, v) = audit_with(&wild("15.xml"), "latency", Some(&tsc), None);
    assert!(of(&v, "cpu-invtsc").is_empty(), "{v:#?}");
    // the same CPU in a Linux guest gets invtsc, and nothing but invtsc
    let linux = wild("15.xml").replace("microsoft.com/win/10", "debian.org/debian/12");
    let (doc, v) = audit_with(&linux, "latency", Some(&tsc), None);
    let f = of(&v, "cpu-invtsc");
    assert_eq!(f.len(), 1, "{v:#?}");
    assert_eq!(f[0].fix.as_ref().unwrap().edits.len(), 1);
    let xml = fixed(doc, &v);
    assert!(
        xml.contains("name=\"invtsc\"") || xml.contains("name='invtsc'"),
        "{xml}"
    );
}

const CAPS: &str = "<domainCapabilities><domain>kvm</domain><iothreads supported='yes'/><cpu>\
<mode name='host-passthrough' supported='yes'/>\
<mode name='host-model' supported='yes'><model fallback='forbid'>Cascadelake-Server</model></mode>\
<mode name='custom' supported='yes'><model usable='yes'>Nehalem</model><model usable='yes'>SandyBridge</model>\
<model usable='yes'>Skylake-Server-IBRS</model><model usable='yes'>Cascadelake-Server-v4</model>\
<model usable='no'>Icelake-Server</model></mode></cpu></domainCapabilities>";

fn with_model(m: &str) -> String {
    format!(
        "<domain type='kvm'><name>m</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu>\
<os><type arch='x86_64' machine='q35'>hvm</type></os>\
<cpu mode='custom' match='exact'><model fallback='forbid'>{m}</model><feature policy='require' name='pcid'/></cpu></domain>"
    )
}

#[test]
fn cpu_model_age_from_domain_capabilities_and_never_with_cpu_mode() {
    let caps = DomainCaps::parse(CAPS).unwrap();
    let (doc, v) = audit_with(&with_model("SandyBridge"), "server", None, Some(&caps));
    let f = of(&v, "cpu-model-old");
    assert_eq!(f.len(), 1, "{v:#?}");
    assert_eq!(f[0].severity, audit::Severity::Warn);
    assert!(
        f[0].message.contains("Cascadelake-Server"),
        "{}",
        f[0].message
    );
    assert!(f[0].assumed.is_none());
    assert!(of(&v, "cpu-mode").is_empty(), "{v:#?}");
    let xml = fixed(doc, &v);
    let (_, again) = audit_with(&xml, "server", None, Some(&caps));
    assert!(
        of(&again, "cpu-model-old").is_empty() && of(&again, "cpu-mode").is_empty(),
        "{xml}"
    );
    assert!(
        !xml.contains("SandyBridge") && !xml.contains("match="),
        "{xml}"
    );
    // a variant of an older generation counts; the host's own generation does not
    let (_, v) = audit_with(
        &with_model("Skylake-Server-IBRS"),
        "server",
        None,
        Some(&caps),
    );
    assert_eq!(of(&v, "cpu-model-old").len(), 1);
    let (_, v) = audit_with(
        &with_model("Cascadelake-Server-v4"),
        "server",
        None,
        Some(&caps),
    );
    assert!(of(&v, "cpu-model-old").is_empty());
    // the oldest and the unusable models stay cpu-mode's
    for m in ["Nehalem", "Icelake-Server"] {
        let (_, v) = audit_with(&with_model(m), "server", None, Some(&caps));
        assert!(of(&v, "cpu-model-old").is_empty(), "{m}");
        assert_eq!(of(&v, "cpu-mode").len(), 1, "{m}");
    }
    // migratable pools pick old models on purpose; without caps or host: not judged
    let (_, v) = audit_with(&with_model("SandyBridge"), "migratable", None, Some(&caps));
    assert!(of(&v, "cpu-model-old").is_empty());
    let (_, v) = audit_with(&with_model("SandyBridge"), "server", None, None);
    assert!(of(&v, "cpu-model-old").is_empty());
    // never both rules on one corpus domain
    let Some(c) = corpus() else { return };
    for e in std::fs::read_dir(c.join("libvirt-domains")).unwrap() {
        let p = e.unwrap().path();
        let src = std::fs::read_to_string(&p).unwrap();
        let Ok((_, _)) = Domain::parse(&src) else {
            continue;
        };
        let (_, v) = audit_with(&src, "server", None, Some(&caps));
        assert!(
            of(&v, "cpu-model-old").is_empty() || of(&v, "cpu-mode").is_empty(),
            "{}",
            p.display()
        );
    }
}

fn devices(extra: &str, iothreads: &str, disks: &str) -> String {
    format!(
        "<domain type='kvm'><name>s</name><memory unit='MiB'>2048</memory><vcpu>2</vcpu>{iothreads}\
<os><type arch='x86_64' machine='q35'>hvm</type></os><cpu mode='host-model'/>{extra}<devices>{disks}\
<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none' io='native'/><source file='/i/s.img'/>\
<target dev='sda' bus='scsi'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk>\
<controller type='scsi' index='0' model='virtio-scsi'/></devices></domain>"
    )
}

const VDA: &str = "<disk type='file' device='disk'><driver name='qemu' type='raw' cache='none' io='native'/>\
<source file='/i/v.img'/><target dev='vda' bus='virtio'/></disk>";

#[test]
fn scsi_iothread_and_disk_io_fixes_agree() {
    // no iothreads: disk-io gives vda iothread 1, scsi-iothread gives the controller 1 too
    let (doc, v) = audit_with(&devices("", "", VDA), "server", None, None);
    assert_eq!(of(&v, "scsi-iothread").len(), 1, "{v:#?}");
    assert_eq!(of(&v, "disk-io").len(), 1, "{v:#?}");
    let xml = fixed(doc, &v);
    assert_eq!(xml.matches("<iothreads>").count(), 1, "{xml}");
    assert!(xml.contains("<iothreads>1</iothreads>"), "{xml}");
    let (_, again) = audit_with(&xml, "server", None, None);
    for r in ["scsi-iothread", "disk-io", "iothread-unused"] {
        assert!(of(&again, r).is_empty(), "{r}: {xml}");
    }
    // vda on iothread 1 already: the controller gets a new iothread 2
    let vda1 = VDA.replace("io='native'/>", "io='native' iothread='1'/>");
    let (doc, v) = audit_with(
        &devices("", "<iothreads>1</iothreads>", &vda1),
        "server",
        None,
        None,
    );
    let xml = fixed(doc, &v);
    assert!(xml.contains("<iothreads>2</iothreads>"), "{xml}");
    assert!(
        xml.contains("iothread='2'") || xml.contains("iothread=\"2\""),
        "{xml}"
    );
    // an unused declared iothread is taken
    let (doc, v) = audit_with(
        &devices("", "<iothreads>2</iothreads>", &vda1),
        "server",
        None,
        None,
    );
    assert_eq!(of(&v, "iothread-unused").len(), 1);
    let xml = fixed(doc, &v);
    assert!(xml.contains("<iothreads>2</iothreads>"), "{xml}");
    let (_, again) = audit_with(&xml, "server", None, None);
    assert!(of(&again, "iothread-unused").is_empty(), "{xml}");
    // with <iothreadids>, a new id is declared there too
    let ids = "<iothreads>1</iothreads><iothreadids><iothread id='5'/></iothreadids>";
    let vda5 = VDA.replace("io='native'/>", "io='native' iothread='5'/>");
    let (doc, v) = audit_with(&devices("", ids, &vda5), "server", None, None);
    let xml = fixed(doc, &v);
    assert!(xml.contains("<iothreads>2</iothreads>"), "{xml}");
    assert!(xml.contains("id=\"6\"") || xml.contains("id='6'"), "{xml}");
}

#[test]
fn quotas_are_stated_in_cpus() {
    let src = devices(
        "<cputune><period>100000</period><quota>25000</quota><global_period>100000</global_period>\
<global_quota>150000</global_quota><emulator_quota>-1</emulator_quota></cputune>",
        "",
        "",
    );
    let (_, v) = audit_with(&src, "latency", None, None);
    let q: Vec<&str> = of(&v, "cpu-quota")
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q.iter()
            .any(|m| m.starts_with("each vCPU capped at 0.25 CPU")
                && m.contains("at most 0.5 CPU together"))
    );
    assert!(
        q.iter()
            .any(|m| m.starts_with("the whole domain capped at 1.5 CPU"))
    );
}

#[test]
fn numatune_interleave_fix_binds_the_vcpus_node() {
    let mut h = fixture_host("b-book-2socket");
    assert!(h.numa.nodes.len() >= 2);
    let node0 = h.numa.nodes[0].cpus.clone();
    let first: Vec<String> = node0.iter().take(2).map(|c| c.to_string()).collect();
    h.numa.balancing = Some(0);
    let src = format!(
        "<domain type='kvm'><name>n</name><memory unit='MiB'>1024</memory><vcpu cpuset='{}'>2</vcpu>\
<numatune><memory mode='interleave' nodeset='0-1'/></numatune>\
<os><type arch='x86_64' machine='q35'>hvm</type></os><cpu mode='host-model'/></domain>",
        first.join(",")
    );
    // the fixture's node 0 has 689 MiB free (16 GiB of it sit in 2 MiB hugepages): the
    // 1 GiB domain does not fit there now, so no strict binding to it (node 1 has room)
    let (_, v) = audit_with(&src, "server", Some(&h), None);
    let f = of(&v, "numatune-mode");
    assert_eq!(f.len(), 1, "{v:#?}");
    assert!(f[0].fix.is_none(), "{:#?}", f[0]);
    assert!(
        f[0].message.contains("node 1 has that much free"),
        "{}",
        f[0].message
    );
    // node 0's free memory unknown: the finding says what it assumed, no fix
    let mut blind = h.clone();
    blind.numa.nodes[0].memory_free_kib = None;
    blind.numa.nodes[1].memory_free_kib = None;
    let (_, v) = audit_with(&src, "server", Some(&blind), None);
    let f = of(&v, "numatune-mode");
    assert_eq!(f.len(), 1, "{v:#?}");
    assert!(f[0].fix.is_none() && f[0].assumed.is_some(), "{:#?}", f[0]);
    // with 8 GiB free on node 0 the binding is offered
    h.numa.nodes[0].memory_free_kib = Some(8 * 1024 * 1024);
    let (doc, v) = audit_with(&src, "server", Some(&h), None);
    let f = of(&v, "numatune-mode");
    assert_eq!(f.len(), 1, "{v:#?}");
    assert!(f[0].fix.is_some(), "{:#?}", f[0]);
    assert!(of(&v, "numa-inconsistent").is_empty());
    let xml = fixed(doc, &v);
    let (_, again) = audit_with(&xml, "server", Some(&h), None);
    for r in ["numatune-mode", "numa-inconsistent", "numa-unbound"] {
        assert!(of(&again, r).is_empty(), "{r}: {xml}");
    }
}

/// Every I/O thread a device names is declared, after all fixes of all rules (disk-io,
/// scsi-iothread) on the corpus and on a domain with several controllers.
#[test]
fn fixed_domains_declare_every_iothread_they_use() {
    fn check(xml: &str, what: &str) {
        let doc = Document::parse(xml).unwrap();
        let root = doc.root();
        let count: u32 = doc
            .child(root, "iothreads")
            .map(|i| doc.text(i).trim().parse().unwrap())
            .unwrap_or(0);
        let mut declared: Vec<u32> = doc
            .child(root, "iothreadids")
            .map(|i| {
                doc.children(i, "iothread")
                    .map(|t| doc.attr(t, "id").unwrap().parse().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let mut next = 1;
        while (declared.len() as u32) < count {
            if !declared.contains(&next) {
                declared.push(next);
            }
            next += 1;
        }
        let Some(devs) = doc.child(root, "devices") else {
            return;
        };
        for dev in doc.elements(devs) {
            if let Some(id) = doc
                .child(dev, "driver")
                .and_then(|d| doc.attr(d, "iothread"))
            {
                let id: u32 = id.parse().unwrap();
                assert!(
                    declared.contains(&id),
                    "{what}: iothread {id} undeclared\n{xml}"
                );
            }
        }
    }
    let two = devices("", "", VDA).replace(
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
        "<controller type='scsi' index='0' model='virtio-scsi'/>\
<controller type='scsi' index='1' model='virtio-scsi'/>\
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/i/t.img'/>\
<target dev='sdb' bus='scsi'/><address type='drive' controller='1' bus='0' target='0' unit='0'/></disk>",
    );
    for iothreads in ["", "<iothreads>1</iothreads>"] {
        let src = two.replace("<vcpu>2</vcpu>", &format!("<vcpu>2</vcpu>{iothreads}"));
        for profile in ["server", "desktop"] {
            let (doc, v) = audit_with(&src, profile, None, None);
            assert_eq!(of(&v, "scsi-iothread").len(), 2, "{v:#?}");
            check(&fixed(doc, &v), profile);
        }
    }
    let Some(c) = corpus() else { return };
    let host = fixture_host("b-book-2socket");
    for e in std::fs::read_dir(c.join("libvirt-domains")).unwrap() {
        let p = e.unwrap().path();
        let src = std::fs::read_to_string(&p).unwrap();
        if Domain::parse(&src).is_err() {
            continue;
        }
        for (profile, h) in [("server", None), ("latency", Some(&host))] {
            let (doc, v) = audit_with(&src, profile, h, None);
            if v.iter()
                .any(|f| f.rule == "scsi-iothread" || f.rule == "disk-io")
            {
                check(&fixed(doc, &v), &p.display().to_string());
            }
        }
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune plan` on the book's 2-socket host with the book's VMs, on the lab (plan, apply
//! through the journal, check /proc, roll back), and with bad input.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The lab tests change the same domains: one at a time.
static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn book_root() -> String {
    hosts_dir()
        .join("b-book-2socket/root")
        .display()
        .to_string()
}

fn book_domains() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/domains");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("book-")
        })
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn each_book_vm_lands_within_one_socket_with_its_emulator() {
    let root = book_root();
    let mut args = vec!["--json", "--root", root.as_str(), "plan"];
    let doms = book_domains();
    args.extend(doms.iter().map(String::as_str));
    let o = kvmtune(&args);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let r = json(&o);
    // the book's host: node 0 = CPUs 0-7,16-23 (socket 0), node 1 = 8-15,24-31 (socket 1)
    let socket = |cpu: u64| if (cpu % 16) < 8 { 0 } else { 1 };
    let placed = r["outcome"]["placed"].as_array().unwrap();
    assert!(placed.len() >= 9, "{}", r["outcome"]);
    let mut used = BTreeSet::new();
    for p in placed {
        let cpus: Vec<u64> = p["vcpus"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()))
            .collect();
        let sockets: BTreeSet<u64> = cpus.iter().map(|c| socket(*c)).collect();
        assert_eq!(sockets.len(), 1, "{} spans sockets: {cpus:?}", p["name"]);
        let emu: BTreeSet<u64> = p["emulator"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| socket(x.as_u64().unwrap()))
            .collect();
        assert_eq!(
            emu, sockets,
            "{}: emulator {} not on its socket",
            p["name"], p["emulator"]
        );
        assert_eq!(p["nodes"].as_array().unwrap().len(), 1);
        for c in cpus {
            assert!(used.insert(c), "CPU {c} given twice");
            assert!(
                ![0, 8, 16, 24].contains(&c),
                "CPU {c} is reserved for the host"
            );
        }
    }
    // the book pinned cacti-230 to 28-31 by hand: valid pins are kept
    let cacti = placed
        .iter()
        .find(|p| p["name"] == "book-cacti-230")
        .unwrap();
    assert_eq!(cacti["kept"], true);
    assert_eq!(cacti["vcpus"], serde_json::json!([[28], [29], [30], [31]]));
    // what did not fit says why
    for u in r["outcome"]["unplaced"].as_array().unwrap() {
        assert!(u["why"].as_str().unwrap().contains("CPUs"), "{u}");
    }
    // the book's 4 KiB-page VM and the hugepage VM: the plan asks for the hugepage pool
    assert!(
        r["plan"]["host"].to_string().contains("hugepages.node"),
        "{}",
        r["plan"]["host"]
    );
}

#[test]
fn the_plan_file_and_svg_are_written() {
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("p.json");
    let svg = t.path().join("p.svg");
    let root = book_root();
    let doms = book_domains();
    let mut args = vec![
        "--root",
        root.as_str(),
        "plan",
        "-o",
        plan.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    args.extend(doms.iter().map(String::as_str));
    let o = kvmtune(&args);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(p["kind"], "kvmtune.plan");
    assert!(p["domains"][0]["vcpupin"].is_object());
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("book-cacti-230") && s.trim_end().ends_with("</svg>")
    );
    assert!(stdout(&o).contains("node 1 (socket 1)"), "{}", stdout(&o));
}

#[test]
fn bad_input_gives_a_clear_message() {
    let t = tempfile::tempdir().unwrap();
    let root = book_root();
    // a domain larger than the host
    let src = std::fs::read_to_string(book_domains().iter().find(|d| d.contains("cacti")).unwrap())
        .unwrap();
    let big = t.path().join("big.xml");
    std::fs::write(
        &big,
        src.replace(
            "<vcpu placement='static'>4</vcpu>",
            "<vcpu placement='static'>64</vcpu>",
        )
        .replace("book-cacti-230", "huge"),
    )
    .unwrap();
    let o = kvmtune(&["--json", "--root", &root, "plan", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let why = json(&o)["outcome"]["unplaced"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("needs 64 CPUs"), "{why}");
    // a host with no free CPU
    let o = kvmtune(&[
        "--json",
        "--root",
        &root,
        "plan",
        "--reserve",
        "0-31",
        big.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    // contradictory: whole cores of 2 threads for 3 vCPUs
    let odd = t.path().join("odd.xml");
    std::fs::write(
        &odd,
        src.replace(
            "<vcpu placement='static'>4</vcpu>",
            "<vcpu placement='static'>3</vcpu>",
        )
        .replace("book-cacti-230", "odd"),
    )
    .unwrap();
    let o = kvmtune(&[
        "--json",
        "--root",
        &root,
        "plan",
        "--smt",
        "require",
        odd.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        json(&o)["outcome"]["unplaced"][0]["why"]
            .as_str()
            .unwrap()
            .contains("multiple")
    );
    // an unwritable plan file: one line, exit 2, nothing left behind
    let o = kvmtune(&[
        "--root",
        &root,
        "plan",
        odd.to_str().unwrap(),
        "-o",
        "/nonexistent-dir/p.json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent-dir/p.json"),
        "{}",
        stderr(&o)
    );
    // history of a journal that does not exist reads nothing and creates nothing
    let missing = t.path().join("no-journal");
    let o = kvmtune(&["history", "--journal", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("no journal at"));
    assert!(!missing.exists());
    // bad policies are errors before anything is planned
    for args in [
        vec!["plan", "--policy", "odd:cpus=lots"],
        vec!["plan", "--policy", "nobody:cpus=shared"],
        vec!["plan", "--policy", "odd"],
        vec!["plan", "--reserve", "x-y"],
    ] {
        let mut a = vec!["--root", root.as_str()];
        a.extend(args.iter().copied());
        a.push(odd.to_str().unwrap());
        let o = kvmtune(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
}

/// Small domain files: (name, vCPUs, MiB).
fn small_domains(dir: &Path, doms: &[(&str, u32, u64)]) -> Vec<String> {
    doms.iter()
        .map(|(n, v, mib)| {
            let f = dir.join(format!("{n}.xml"));
            std::fs::write(
                &f,
                format!(
                    "<domain type='kvm'><name>{n}</name><memory unit='KiB'>{}</memory><vcpu>{v}</vcpu></domain>",
                    mib * 1024
                ),
            )
            .unwrap();
            f.display().to_string()
        })
        .collect()
}

#[test]
fn the_text_says_which_cpus_are_reserved_in_words() {
    let t = tempfile::tempdir().unwrap();
    let root = book_root();
    let doms = small_domains(t.path(), &[("a", 2, 1024)]);
    for (reserve, want) in [
        ("0", "reserved for the host: CPU 0 (0)"),
        ("none", "reserved for the host: none (none)"),
        ("0,8", "reserved for the host: CPUs 0,8 (0,8)"),
    ] {
        let o = kvmtune(&["--root", &root, "plan", "--reserve", reserve, &doms[0]]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains(want), "{reserve}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("node memory: capacity"),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn an_empty_plan_writes_no_file_and_gives_no_apply_hint() {
    let t = tempfile::tempdir().unwrap();
    let root = book_root();
    let doms = small_domains(t.path(), &[("huge", 64, 1024)]);
    let plan = t.path().join("p.json");
    let o = kvmtune(&[
        "--root",
        &root,
        "plan",
        "-o",
        plan.to_str().unwrap(),
        &doms[0],
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!plan.exists(), "an empty plan was written");
    assert!(!out.contains("apply --plan"), "{out}");
    assert!(out.contains("nothing was placed"), "{out}");
    assert!(out.contains("no plan file was written"), "{out}");
    assert!(out.contains("CPUs are the limit"), "{out}");
}

#[test]
fn shared_vcpus_are_bounded_by_the_profile_and_overcommit_is_warned() {
    // two CPUs left for domains (30 and 31, node 1), four domains of 2 shared vCPUs
    let t = tempfile::tempdir().unwrap();
    let root = book_root();
    let doms = small_domains(
        t.path(),
        &[
            ("s1", 2, 512),
            ("s2", 2, 512),
            ("s3", 2, 512),
            ("s4", 2, 512),
        ],
    );
    let mut args = vec![
        "--root",
        &root,
        "plan",
        "--cpus",
        "shared",
        "--reserve",
        "0-29",
    ];
    args.extend(doms.iter().map(String::as_str));
    // server: 2 shared vCPUs per CPU at most
    let o = kvmtune(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 placed"), "{out}");
    assert!(out.contains("overcommit of 2:1"), "{out}");
    // dense allows 8:1: all placed, with the overcommit said
    let mut dense = args.clone();
    dense.extend(["-p", "dense"]);
    let o = kvmtune(&dense);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("warning: overcommit: node 1 runs 8 shared vCPUs of 4 domain(s) on 2 CPU(s) (30-31), 4.0:1 (the profile allows 8:1)"),
        "{out}"
    );
}

#[test]
fn the_isolcpus_suggestion_never_covers_cpu_0_or_the_reserved_cpus() {
    let t = tempfile::tempdir().unwrap();
    let root = book_root();
    let doms = small_domains(t.path(), &[("a", 16, 1024), ("b", 16, 1024)]);
    for reserve in ["none", "one-core-per-socket"] {
        let mut args = vec!["--json", "--root", &root, "plan", "--reserve", reserve];
        args.extend(doms.iter().map(String::as_str));
        let o = kvmtune(&args);
        let r = json(&o);
        let s = r["outcome"]["isolcpus"].as_str().unwrap().to_string();
        let set: BTreeSet<u32> = s
            .trim_start_matches("isolcpus=managed_irq,domain,")
            .split(' ')
            .next()
            .unwrap()
            .split(',')
            .flat_map(|p| match p.split_once('-') {
                Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<u32>>(),
                None => vec![p.parse().unwrap()],
            })
            .collect();
        assert!(!set.contains(&0), "{reserve}: {s}");
        assert!(set.len() < 32, "{reserve}: every CPU isolated: {s}");
        if reserve == "none" {
            let w = r["outcome"]["warnings"].to_string();
            assert!(w.contains("--reserve none"), "{w}");
        } else {
            for c in [0, 8, 16, 24] {
                assert!(!set.contains(&c), "{s}");
            }
        }
    }
}

#[test]
fn isolation_is_named_as_the_limit_with_how_to_widen_it() {
    // the book host with 15 CPUs online and isolcpus=6,7,14
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    copy_tree(Path::new(&book_root()), &root);
    let cpu = root.join("sys/devices/system/cpu");
    std::fs::write(cpu.join("isolated"), "6,7,14\n").unwrap();
    std::fs::write(cpu.join("online"), "0-14\n").unwrap();
    for c in 15..32 {
        std::fs::write(cpu.join(format!("cpu{c}/online")), "0\n").unwrap();
    }
    let doms = small_domains(t.path(), &[("db", 4, 1024)]);
    let o = kvmtune(&["--root", root.to_str().unwrap(), "plan", &doms[0]]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("isolation is the limit"), "{out}");
    assert!(out.contains("3 of the 15 online CPUs (6-7,14)"), "{out}");
    assert!(
        out.contains("isolcpus=") && out.contains("--cpus shared"),
        "{out}"
    );
    assert!(!out.contains("the host has 3 CPUs"), "{out}");
}

#[test]
fn a_lab_plan_is_applied_checked_in_proc_and_rolled_back() {
    if !libvirt_up() {
        assert!(
            !lab_required(),
            "the lab is required but libvirtd is not up"
        );
        return;
    }
    let _g = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let plan: PathBuf = t.path().join("plan.json");
    let j = t.path().join("journal").display().to_string();
    let dom = "lab-win10-desktop";
    let before = Command::new("virsh")
        .args(["-c", "qemu:///system", "dumpxml", "--inactive", dom])
        .output()
        .unwrap()
        .stdout;
    let o = kvmtune(&[
        "plan",
        dom,
        "--reserve",
        "none",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let pins = p["domains"][0]["vcpupin"].clone();
    assert_eq!(pins["0"], "0", "{p}");
    assert_eq!(pins["1"], "1", "{p}");
    let o = kvmtune(&[
        "apply",
        "--plan",
        plan.to_str().unwrap(),
        "--yes",
        "--journal",
        &j,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let pid = std::fs::read_to_string(format!("/run/libvirt/qemu/{dom}.pid"))
        .unwrap()
        .trim()
        .to_string();
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        match comm.trim() {
            "CPU 0/TCG" => assert_eq!(allowed, "0"),
            "CPU 1/TCG" => assert_eq!(allowed, "1"),
            _ => {}
        }
    }
    let o = kvmtune(&["rollback", "--last", "--journal", &j]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let after = Command::new("virsh")
        .args(["-c", "qemu:///system", "dumpxml", "--inactive", dom])
        .output()
        .unwrap()
        .stdout;
    let canon = |b: &[u8]| {
        kvmtune_domain::Document::parse(&String::from_utf8_lossy(b))
            .unwrap()
            .canonical()
    };
    assert_eq!(canon(&after), canon(&before));
}

#[test]
fn every_lab_domain_shared_is_planned_applied_and_rolled_back() {
    if !libvirt_up() {
        assert!(
            !lab_required(),
            "the lab is required but libvirtd is not up"
        );
        return;
    }
    let _g = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let lab = [
        "lab-db-pinned",
        "lab-seed000-untuned",
        "lab-tuned",
        "lab-win10-desktop",
    ];
    let t = tempfile::tempdir().unwrap();
    let plan = t.path().join("plan.json");
    let j = t.path().join("journal").display().to_string();
    let xml = |d: &str| {
        let out = Command::new("virsh")
            .args(["-c", "qemu:///system", "dumpxml", "--inactive", d])
            .output()
            .unwrap()
            .stdout;
        kvmtune_domain::Document::parse(&String::from_utf8_lossy(&out))
            .unwrap()
            .canonical()
    };
    let vcpu_affinity = |d: &str| -> Vec<(String, String)> {
        let pid = std::fs::read_to_string(format!("/run/libvirt/qemu/{d}.pid"))
            .unwrap()
            .trim()
            .to_string();
        let mut v: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let comm = std::fs::read_to_string(e.path().join("comm"))
                    .ok()?
                    .trim()
                    .to_string();
                let status = std::fs::read_to_string(e.path().join("status")).ok()?;
                let a = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
                    .trim()
                    .to_string();
                comm.starts_with("CPU ").then_some((comm, a))
            })
            .collect();
        v.sort();
        v
    };
    let before: Vec<_> = lab.iter().map(|d| (xml(d), vcpu_affinity(d))).collect();
    // 7 shared vCPUs on the lab's 2 CPUs: over the server profile's 2:1, within dense's 8:1
    let mut args = vec![
        "plan",
        "-p",
        "dense",
        "--cpus",
        "shared",
        "--reserve",
        "none",
        "-o",
        plan.to_str().unwrap(),
    ];
    args.extend(lab);
    let o = kvmtune(&args);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let o = kvmtune(&[
        "apply",
        "--plan",
        plan.to_str().unwrap(),
        "--yes",
        "--journal",
        &j,
    ]);
    let applied = lab.iter().map(|d| vcpu_affinity(d)).collect::<Vec<_>>();
    let r = kvmtune(&["rollback", "--last", "--journal", &j]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    for (d, a) in lab.iter().zip(&applied) {
        assert!(a.iter().all(|(_, cpus)| cpus == "0-1"), "{d}: {a:?}");
    }
    // the pinned database really moved from 0 and 1 to the shared pool, and came back
    assert!(
        before[0].1.iter().any(|(_, c)| c != "0-1"),
        "{:?}",
        before[0].1
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", stdout(&r), stderr(&r));
    for (d, b) in lab.iter().zip(&before) {
        assert_eq!(xml(d), b.0, "{d}: stored XML");
        assert_eq!(vcpu_affinity(d), b.1, "{d}: affinity");
    }
}

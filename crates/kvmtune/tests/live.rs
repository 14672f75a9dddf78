#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Tests on the live machine: kvmtune agrees with numactl and virt-host-validate, and a
//! support bundle taken with the lab running reads back as the live host.
//! CI installs numactl, libvirt and starts the lab (scripts/lab up) and sets
//! KVMTUNE_REQUIRE_LAB=1, so nothing here is skipped there.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::Command;

fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(
        !lab_required(),
        "{tool} is required in CI (KVMTUNE_REQUIRE_LAB=1) but missing"
    );
    eprintln!("skipped: {tool} not installed (scripts/lab up installs it)");
    false
}

struct NumactlNode {
    cpus: String,
    size_mb: u64,
    free_mb: u64,
}

fn numactl_hardware() -> (BTreeMap<u32, NumactlNode>, Vec<Vec<u32>>) {
    let out = Command::new("numactl").arg("--hardware").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nodes: BTreeMap<u32, NumactlNode> = BTreeMap::new();
    let mut distances = Vec::new();
    let mut in_dist = false;
    for line in text.lines() {
        if line.starts_with("node distances") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((_, row)) = line.split_once(':') {
                distances.push(row.split_whitespace().map(|d| d.parse().unwrap()).collect());
            }
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() >= 3 && w[0] == "node" {
            let id: u32 = w[1].parse().unwrap();
            let n = nodes.entry(id).or_insert(NumactlNode {
                cpus: String::new(),
                size_mb: 0,
                free_mb: 0,
            });
            match w[2] {
                "cpus:" => n.cpus = w[3..].join(","),
                "size:" => n.size_mb = w[3].parse().unwrap(),
                "free:" => n.free_mb = w[3].parse().unwrap(),
                _ => {}
            }
        }
    }
    (nodes, distances)
}

#[test]
fn host_agrees_with_numactl_hardware() {
    if !require("numactl") {
        return;
    }
    let (nodes, distances) = numactl_hardware();
    let h = json(&kvmtune(&["host", "--json"]));
    let ours = h["numa"]["nodes"].as_array().unwrap();
    assert_eq!(ours.len(), nodes.len(), "node count");
    for (i, (id, n)) in nodes.iter().enumerate() {
        let o = &ours[i];
        assert_eq!(o["id"], *id);
        // numactl lists CPUs one by one; compare as sets through kvmtune's own list syntax
        let theirs = kvmtune_host::CpuSet::parse(&n.cpus).unwrap().to_string();
        assert_eq!(o["cpus"].as_str().unwrap(), theirs, "node {id} cpus");
        assert_eq!(
            o["memory_total_kib"].as_u64().unwrap() / 1024,
            n.size_mb,
            "node {id} size"
        );
        let free = o["memory_free_kib"].as_u64().unwrap() / 1024;
        assert!(
            free.abs_diff(n.free_mb) < 512,
            "node {id} free: {free} vs numactl {}",
            n.free_mb
        );
        let d: Vec<u32> = o["distances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(d, distances[i], "node {id} distances");
    }
}

#[test]
fn check_verdicts_agree_with_virt_host_validate() {
    if !require("virt-host-validate") {
        return;
    }
    let out = Command::new("virt-host-validate")
        .arg("qemu")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let j = json(&kvmtune(&["host", "--check", "--json"]));
    let ours = j["checks"].as_array().unwrap();
    let mut compared = 0;
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("QEMU: Checking ") else {
            continue;
        };
        let Some((title, verdict)) = rest.rsplit_once(": ") else {
            continue;
        };
        let title = title.trim();
        let verdict = verdict.split_whitespace().next().unwrap();
        let mine = ours
            .iter()
            .find(|c| c["virt_host_validate"] == true && c["title"] == title)
            .unwrap_or_else(|| panic!("kvmtune makes no check {title:?}"));
        assert_eq!(
            mine["verdict"], verdict,
            "{title}: kvmtune {} vs virt-host-validate {verdict}",
            mine["verdict"]
        );
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} checks compared:\n{text}");
    eprintln!("compared {compared} virt-host-validate checks: all verdicts agree");
}

/// Fields that change between two reads of a live host (counters, free memory).
fn mask_volatile(v: &mut serde_json::Value) {
    for node in v["numa"]["nodes"].as_array_mut().unwrap() {
        node["memory_free_kib"] = serde_json::Value::Null;
        node["numastat"] = serde_json::Value::Null;
        for p in node["hugepages"].as_array_mut().unwrap() {
            p["free"] = serde_json::Value::Null;
        }
    }
    for k in [
        "free_kib",
        "available_kib",
        "anon_huge_kib",
        "swap_free_kib",
    ] {
        v["memory"][k] = serde_json::Value::Null;
    }
    v["memory"]["swaps"] = serde_json::Value::Null;
    if v["memory"]["ksm"].is_object() {
        for k in ["files", "pages_shared", "pages_sharing", "saved_bytes"] {
            v["memory"]["ksm"][k] = serde_json::Value::Null;
        }
    }
    if v["memory"]["thp"].is_object() {
        v["memory"]["thp"]["khugepaged"] = serde_json::Value::Null;
    }
    for p in v["memory"]["hugepages"].as_array_mut().unwrap() {
        p["free"] = serde_json::Value::Null;
        p["reserved"] = serde_json::Value::Null;
    }
}

#[test]
fn snapshot_of_the_lab_host_reads_back_as_the_live_host() {
    if !libvirt_up() {
        assert!(
            !lab_required(),
            "libvirtd is required in CI but /run/libvirt/libvirt-sock is missing"
        );
        eprintln!("skipped: libvirtd not running (scripts/lab up starts it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.tar.gz");
    let out = kvmtune(&["snapshot", "-o", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert!(report["libvirt_error"].is_null(), "{report:#}");

    let bundle = kvmtune_bundle::Bundle::read(&path).unwrap();
    // What the bundle holds: capabilities, domain capabilities, every domain's XML.
    let lv = &bundle.manifest.libvirt;
    assert!(
        lv.capabilities
            .as_deref()
            .unwrap()
            .contains("<capabilities>")
    );
    assert!(
        lv.domain_capabilities.contains_key("qemu"),
        "{:?}",
        lv.errors
    );
    let lab: Vec<_> = lv
        .domains
        .iter()
        .filter(|d| d.name.starts_with("lab-"))
        .collect();
    if lab_required() {
        assert_eq!(lab.len(), 4, "the lab's four domains");
    }
    for d in &lv.domains {
        let inactive = d.inactive_xml.as_deref().unwrap();
        // compared parsed: a name with `&` or `'` is escaped in the XML
        let (_, parsed) = kvmtune_domain::Domain::parse(inactive).unwrap();
        assert_eq!(parsed.name, d.name);
        if d.active {
            let live = d.live_xml.as_deref().unwrap();
            assert!(live.contains(" id='"), "{} live XML carries its id", d.name);
        }
    }

    // From the bundle, `host --json` is exactly what was computed at capture time ...
    let from = json(&kvmtune(&[
        "--from",
        path.to_str().unwrap(),
        "host",
        "--json",
    ]));
    let captured: serde_json::Value =
        serde_json::from_str(bundle.host_json.as_deref().unwrap()).unwrap();
    assert_eq!(from, captured);
    // ... and the live host now, but for counters that moved in between.
    let mut live = json(&kvmtune(&["host", "--json"]));
    let mut from = from;
    mask_volatile(&mut live);
    mask_volatile(&mut from);
    assert_eq!(live, from);
    // checks read from the bundle give the live verdicts
    let a = json(&kvmtune(&["host", "--check", "--json"]));
    let b = json(&kvmtune(&[
        "--from",
        path.to_str().unwrap(),
        "host",
        "--check",
        "--json",
    ]));
    let verdicts = |j: &serde_json::Value| -> Vec<(String, String)> {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["title"].to_string(), c["verdict"].to_string()))
            .collect()
    };
    assert_eq!(verdicts(&a), verdicts(&b));
}

#[test]
fn snapshot_to_an_unwritable_place_fails_cleanly() {
    let out = kvmtune(&[
        "snapshot",
        "--no-libvirt",
        "-o",
        "/nonexistent-dir/x.tar.gz",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-dir/x.tar.gz"), "{err}");
}

#[test]
fn snapshot_on_a_full_disk_fails_cleanly_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        assert!(
            !lab_required(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root?)");
        return;
    }
    let target = mnt.join("b.tar.gz");
    let out = kvmtune(&["snapshot", "--no-libvirt", "-o", target.to_str().unwrap()]);
    let listing: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("b.tar.gz") && err.contains("No space left"),
        "{err}"
    );
    assert!(listing.is_empty(), "left behind: {listing:?}");
}

#[test]
fn lab_guests_boot_to_their_init() {
    let lab_dir =
        std::env::var("KVMTUNE_LAB_DIR").unwrap_or_else(|_| "/var/cache/kvmtune-lab".into());
    let domains = [
        "lab-db-pinned",
        "lab-seed000-untuned",
        "lab-tuned",
        "lab-win10-desktop",
    ];
    let log = |d: &str| std::path::Path::new(&lab_dir).join(format!("{d}.serial.log"));
    if !log(domains[0]).exists() {
        assert!(
            !lab_required(),
            "the lab is required in CI but {} is missing",
            log(domains[0]).display()
        );
        eprintln!("skipped: the lab is not up (scripts/lab up)");
        return;
    }
    // Four TCG guests share two cores: give them time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    for d in domains {
        loop {
            let text = std::fs::read_to_string(log(d)).unwrap_or_default();
            if text.contains("kvmtune-lab guest up") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{d} did not reach /init: {text:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

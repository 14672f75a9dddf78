#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune --root tests/fixtures/hosts/X/root host --json` must equal X/expected-host.json.
//! Regenerate the expected files with `KVMTUNE_BLESS=1 cargo test --test host_fixtures`.

mod common;
use common::*;

const FIXTURES: &[&str] = &[
    "a-this-machine",
    "b-book-2socket",
    "c-epyc-sparse",
    "d-1g-isolated",
    "e-4node-asym",
];

fn host_json(name: &str) -> serde_json::Value {
    let root = hosts_dir().join(name).join("root");
    let out = kvmtune(&["--root", root.to_str().unwrap(), "host", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    json(&out)
}

#[test]
fn every_fixture_matches_its_expected_json() {
    let bless = std::env::var("KVMTUNE_BLESS").is_ok();
    for name in FIXTURES {
        let got = host_json(name);
        let expected_path = hosts_dir().join(name).join("expected-host.json");
        if bless {
            std::fs::write(
                &expected_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        assert_eq!(
            got,
            expected,
            "fixture {name} differs from {}",
            expected_path.display()
        );
    }
}

#[test]
fn book_host_has_the_books_topology() {
    let h = host_json("b-book-2socket");
    assert_eq!(h["cpu"]["sockets"], 2);
    assert_eq!(h["cpu"]["cores"], 16);
    assert_eq!(h["cpu"]["threads"], 32);
    assert_eq!(h["cpu"]["threads_per_core"], 2);
    assert_eq!(h["cpu"]["hw_virt"], "vmx");
    let nodes = h["numa"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["cpus"], "0-7,16-23");
    assert_eq!(nodes[1]["cpus"], "8-15,24-31");
    // numactl --hardware: "node 0 size: 65501 MB", "node 1 size: 65535 MB"
    assert_eq!(nodes[0]["memory_total_kib"].as_u64().unwrap() / 1024, 65501);
    assert_eq!(nodes[1]["memory_total_kib"].as_u64().unwrap() / 1024, 65535);
    assert_eq!(nodes[0]["distances"], serde_json::json!([10, 20]));
    assert_eq!(nodes[1]["distances"], serde_json::json!([20, 10]));
    assert_eq!(nodes[0]["hugepages"][0]["size_kib"], 2048);
    assert_eq!(nodes[0]["hugepages"][0]["total"], 8192);
    assert_eq!(nodes[1]["hugepages"][0]["total"], 0);
    assert_eq!(h["memory"]["ksm"]["run"], 1);
    assert_eq!(h["memory"]["ksm"]["saved_bytes"], 262144u64 * 4096);
    assert_eq!(nodes[0]["numastat"]["numa_hit"], 4911255660u64);
}

#[test]
fn epyc_host_has_sparse_nodes_an_offline_cpu_and_a_memory_only_node() {
    let h = host_json("c-epyc-sparse");
    let ids: Vec<u64> = h["numa"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![0, 1, 4, 5]);
    assert_eq!(h["cpu"]["offline"], "23");
    assert_eq!(h["cpu"]["online"], "0-22");
    assert_eq!(h["cpu"]["threads"], 23);
    assert_eq!(h["numa"]["nodes"][3]["cpus"], "");
    assert_eq!(
        h["numa"]["nodes"][2]["distances"],
        serde_json::json!([32, 32, 10, 40])
    );
    assert_eq!(h["cpu"]["hw_virt"], "svm");
    assert_eq!(h["kvm"]["cgroup"]["mode"], "v2");
    let cpu23 = h["cpu"]["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 23)
        .unwrap();
    assert_eq!(cpu23["online"], false);
    // CPU 11's sibling 23 is offline: its sibling list holds only itself.
    let cpu11 = h["cpu"]["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 11)
        .unwrap();
    assert_eq!(cpu11["siblings"], "11");
    assert_eq!(cpu11["node"], 4);
}

#[test]
fn isolated_host_has_1g_pages_on_node_1_only_thp_never_and_isolcpus() {
    let h = host_json("d-1g-isolated");
    let n = h["numa"]["nodes"].as_array().unwrap();
    let g1 = |node: &serde_json::Value| {
        node["hugepages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["size_kib"] == 1048576)
            .unwrap()["total"]
            .clone()
    };
    assert_eq!(g1(&n[0]), 0);
    assert_eq!(g1(&n[1]), 16);
    assert_eq!(h["memory"]["thp"]["enabled"], "never");
    assert_eq!(h["cmdline"]["isolcpus_cpus"], "2-7");
    assert_eq!(h["cpu"]["isolated"], "2-7");
    assert_eq!(h["memory"]["hugetlbfs"][0]["pagesize_kib"], 1048576);
}

#[test]
fn checks_follow_the_profile() {
    let root = hosts_dir().join("d-1g-isolated/root");
    let out = kvmtune(&[
        "--root",
        root.to_str().unwrap(),
        "host",
        "--check",
        "--profile",
        "latency",
        "--json",
    ]);
    let j = json(&out);
    let verdict = |id: &str| -> Vec<String> {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"] == id)
            .map(|c| c["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        verdict("host-isolcpus"),
        vec!["PASS"],
        "latency wants isolated CPUs and has them"
    );
    assert_eq!(
        verdict("host-thp"),
        vec!["WARN"],
        "THP never loses 2M TLB benefits"
    );
    assert_eq!(verdict("host-governor"), vec!["PASS"]);
    assert_eq!(out.status.code(), Some(1), "WARN findings exit 1");

    let book = hosts_dir().join("b-book-2socket/root");
    let dense = json(&kvmtune(&[
        "--root",
        book.to_str().unwrap(),
        "host",
        "--check",
        "--profile",
        "dense",
        "--json",
    ]));
    let server = json(&kvmtune(&[
        "--root",
        book.to_str().unwrap(),
        "host",
        "--check",
        "--json",
    ]));
    let ksm = |j: &serde_json::Value| {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "host-ksm")
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(ksm(&dense), "PASS", "dense wants KSM on, and it runs");
    assert_eq!(ksm(&server), "WARN", "server advises KSM off");
}

#[test]
fn text_output_shows_every_section() {
    for name in FIXTURES {
        let root = hosts_dir().join(name).join("root");
        let out = kvmtune(&["--root", root.to_str().unwrap(), "--color", "never", "host"]);
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        for section in ["CPU", "NUMA", "Memory", "KVM"] {
            assert!(
                text.lines().any(|l| l.starts_with(section)),
                "{name}: no {section} section"
            );
        }
        assert!(!text.contains('\x1b'), "no colour with --color never");
    }
}

fn checks_of(fixture: &str) -> Vec<(String, String, String)> {
    let root = hosts_dir().join(fixture).join("root");
    let j = json(&kvmtune(&[
        "--root",
        root.to_str().unwrap(),
        "host",
        "--check",
        "--json",
    ]));
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["title"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn verdict_of(checks: &[(String, String, String)], title: &str) -> (String, String) {
    let c = checks
        .iter()
        .find(|c| c.0 == title)
        .unwrap_or_else(|| panic!("no check {title:?}"));
    (c.1.clone(), c.2.clone())
}

#[test]
fn iommu_and_secure_guest_branches_follow_virt_host_validate() {
    // Intel with a DMAR table and IOMMU groups: both IOMMU checks pass.
    let b = checks_of("b-book-2socket");
    assert_eq!(
        verdict_of(&b, "for device assignment IOMMU support").0,
        "PASS"
    );
    assert_eq!(verdict_of(&b, "if IOMMU is enabled by kernel").0, "PASS");
    assert_eq!(verdict_of(&b, "for hardware virtualization").0, "PASS");
    assert_eq!(verdict_of(&b, "if device /dev/kvm is accessible").0, "PASS");
    // cgroup v1 without cpuacct/cpu merged mount names still counts both controllers
    assert_eq!(
        verdict_of(&b, "for cgroup 'cpuacct' controller support").0,
        "PASS"
    );
    // AMD with IVRS: passes; sev flag but kvm_amd.sev=N: WARN "disabled in kernel".
    let c = checks_of("c-epyc-sparse");
    assert_eq!(
        verdict_of(&c, "for device assignment IOMMU support").0,
        "PASS"
    );
    let (v, detail) = verdict_of(&c, "for secure guest support");
    assert_eq!(v, "WARN");
    assert!(detail.contains("disabled in kernel"), "{detail}");
    // cgroup v2: cpuacct via cpu, blkio via io, devices via eBPF
    for ctl in ["cpuacct", "blkio", "devices"] {
        assert_eq!(
            verdict_of(&c, &format!("for cgroup '{ctl}' controller support")).0,
            "PASS",
            "{ctl}"
        );
    }
}

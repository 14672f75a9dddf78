#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Remote hosts (issue 13 §1) against the lab's fleet: private libvirtds in their own mount
//! and UTS namespaces (`scripts/lab fleet-up`), reached over TCP and ssh. Host facts come
//! from the remote libvirt, never from this machine; plans and host settings are applied
//! through libvirt, journaled with the URI and rolled back through it.

mod common;

use std::process::Command;

use common::*;

const FLEET1: &str = "qemu+tcp://127.0.0.2/system";
const FLEET2: &str = "qemu+tcp://127.0.0.3/system";
const FLEET3: &str = "qemu+tcp://127.0.0.4/system";
const KEYS: &str = "/var/tmp/kvmtune-private/fleet1/ssh";

fn ssh_uri(key: &str) -> String {
    format!("qemu+ssh://root@127.0.0.2:2222/system?keyfile={KEYS}/{key}&no_verify=1")
}

/// The fleet's lock (one remote test at a time), or a skip when the fleet is not up.
fn fleet() -> Option<std::sync::MutexGuard<'static, ()>> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let up = Command::new("virsh")
        .args(["-c", FLEET1, "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            !lab_required(),
            "the lab is required but the fleet is not up (scripts/lab fleet-up)"
        );
        eprintln!("skipping: the fleet is not up (scripts/lab fleet-up)");
        return None;
    }
    Some(LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn sysfs(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn host_facts_are_each_daemons_own_and_unknowns_stay_unknown() {
    let Some(_g) = fleet() else { return };
    for (uri, name) in [(FLEET1, "fleet1"), (FLEET2, "fleet2"), (FLEET3, "fleet3")] {
        let o = run(&["--json", "-c", uri, "host"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let h = json(&o);
        assert_eq!(h["hostname"], name, "{h}");
        assert_ne!(h["hostname"], local_hostname().as_str());
        assert_eq!(h["remote"], uri);
        // what the daemon's capabilities say: its cells and its CPUs
        let caps = virsh_on(uri, &["capabilities"]);
        let cells = caps.matches("<cell id=").count();
        assert_eq!(h["numa"]["nodes"].as_array().unwrap().len(), cells, "{h}");
        let cpus = caps.matches("<cpu id=").count();
        assert_eq!(h["cpu"]["cpus"].as_array().unwrap().len(), cpus);
        // what libvirt does not report is unknown, not this machine's value
        assert!(h["memory"]["thp"].is_null(), "{h}");
        assert!(h["numa"]["balancing"].is_null());
        assert!(h["cmdline"]["raw"].is_null());
        let unknown: Vec<&str> = h["unknown"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["field"].as_str())
            .collect();
        for f in ["memory.thp", "numa.balancing", "kvm.cgroup"] {
            assert!(unknown.contains(&f), "{f}: {unknown:?}");
        }
    }
    // the text says "unknown", never "none"
    let o = run(&["-c", FLEET2, "host"]);
    let t = stdout(&o);
    assert!(t.starts_with("Host fleet2"), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("  THP") && l.contains("unknown (not reported over a remote")),
        "{t}"
    );
}

#[test]
fn host_check_over_a_remote_connection_judges_kvm_and_says_unknown_for_the_rest() {
    let Some(_g) = fleet() else { return };
    let o = run(&["--json", "-c", FLEET1, "host", "--check"]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.host-check");
    assert_eq!(v["version"], 3);
    let checks = v["checks"].as_array().unwrap();
    let virt = checks.iter().find(|c| c["id"] == "host-virt-ext").unwrap();
    assert_eq!(virt["verdict"], "PASS", "{virt}");
    let thp = checks.iter().find(|c| c["id"] == "host-thp").unwrap();
    assert_eq!(thp["verdict"], "UNKNOWN");
    assert!(thp["severity"].is_null());
    assert_eq!(
        v["not_judged"].as_u64().unwrap() as usize,
        checks.len() - 1,
        "{v}"
    );
}

#[test]
fn audit_over_ssh_sees_fleet1_only_and_a_wrong_key_is_a_clear_error() {
    let Some(_g) = fleet() else { return };
    let o = run(&["--json", "-c", &ssh_uri("id_ed25519"), "audit", "--all"]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let v = json(&o);
    let names: Vec<&str> = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.contains(&"fleet1-web"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("fleet1-")), "{names:?}");
    assert!(
        v["host"]
            .as_str()
            .unwrap()
            .starts_with("libvirt qemu+ssh://"),
        "{}",
        v["host"]
    );
    // fleet1-web has the fleet's USB tablet
    let web = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "fleet1-web")
        .unwrap();
    assert!(web["findings"].to_string().contains("dev-tablet"));

    let o = run(&["-c", &ssh_uri("wrong_ed25519"), "host"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("Permission denied (publickey)"), "{e}");
}

/// openssl, or the test fails with what it ran.
fn openssl(args: &[&str]) {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `qemu+tls://` with the lab's certificates (`pkipath=`, scripts/libvirtd-private): fleet2's
/// own facts and domains; a client that trusts another CA, or has no certificates, is one
/// clear line and exit 2.
#[test]
fn audit_over_tls_sees_fleet2_and_an_untrusted_server_is_a_clear_error() {
    let Some(_g) = fleet() else { return };
    let pki = "/var/tmp/kvmtune-private/fleet2/pki";
    let uri = format!("qemu+tls://127.0.0.3/system?pkipath={pki}");
    let v = json(&run(&["--json", "-c", &uri, "host"]));
    assert_eq!(v["hostname"], "fleet2", "{v}");
    assert_eq!(v["remote"], uri.as_str());
    let o = run(&["--json", "-c", &uri, "audit", "--all"]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let v = json(&o);
    let names: Vec<&str> = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(names.contains(&"fleet2-web"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("fleet2-")), "{names:?}");

    // a client whose CA is another one: the server's certificate is not trusted
    let t = tempfile::tempdir().unwrap();
    let d = t.path().to_str().unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509", "-days", "30", "-subj", "/CN=other CA"];
    a.extend(ec);
    let (ck, cc) = (format!("{d}/cakey.pem"), format!("{d}/cacert.pem"));
    a.extend(["-keyout", &ck, "-out", &cc]);
    openssl(&a);
    let (k, csr, crt) = (
        format!("{d}/clientkey.pem"),
        format!("{d}/c.csr"),
        format!("{d}/clientcert.pem"),
    );
    let mut a = vec!["req", "-subj", "/CN=client"];
    a.extend(ec);
    a.extend(["-keyout", &k, "-out", &csr]);
    openssl(&a);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &cc,
        "-CAkey",
        &ck,
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        &crt,
    ]);
    let o = run(&[
        "-c",
        &format!("qemu+tls://127.0.0.3/system?pkipath={d}"),
        "host",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("qemu+tls://127.0.0.3/system") && e.contains("certificate"),
        "{e}"
    );
    // no certificates at all
    let o = run(&[
        "-c",
        "qemu+tls://127.0.0.3/system?pkipath=/nonexistent",
        "host",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/cacert.pem"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_plan_pins_a_running_remote_domain_and_rollback_restores_it_through_the_journaled_uri() {
    let Some(_g) = fleet() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal");
    let j = j.to_str().unwrap();
    let plan = t.path().join("p.json");
    let dom = "fleet2-web";
    let before = virsh_on(FLEET2, &["dumpxml", "--inactive", dom]);
    let pins_before = virsh_on(FLEET2, &["vcpupin", dom]);
    let o = run(&[
        "-c",
        FLEET2,
        "plan",
        dom,
        "--cpus",
        "shared",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[
        "-c",
        FLEET2,
        "apply",
        "--plan",
        plan.to_str().unwrap(),
        "--journal",
        j,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    // the remote live XML carries the pins and the remote emulator is pinned
    let live = virsh_on(FLEET2, &["dumpxml", dom]);
    assert!(live.contains("<vcpupin vcpu='0'"), "{live}");
    assert!(live.contains("<emulatorpin"), "{live}");
    // the journal names the host; history shows it
    let h = stdout(&run(&["history", "1", "--journal", j]));
    assert!(
        h.contains(&format!("libvirt: {FLEET2} (another host")),
        "{h}"
    );
    // rollback without -c: the entry's URI, not qemu:///system
    let o = run(&["rollback", "--last", "--journal", j]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(virsh_on(FLEET2, &["dumpxml", "--inactive", dom]), before);
    assert_eq!(virsh_on(FLEET2, &["vcpupin", dom]), pins_before);
}

#[test]
fn hugepages_and_ksm_are_set_through_libvirt_and_rolled_back_and_the_rest_is_refused() {
    let Some(_g) = fleet() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal");
    let j = j.to_str().unwrap();
    // the fleet's daemons share this machine's kernel: the effect is visible in its sysfs
    let pages = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    let merge = "/sys/kernel/mm/ksm/merge_across_nodes";
    let (p0, m0) = (sysfs(pages), sysfs(merge));
    let want_pages = (p0.parse::<u64>().unwrap() + 2).to_string();
    let want_merge = if m0 == "1" { "0" } else { "1" };
    let o = run(&[
        "-c",
        FLEET3,
        "apply",
        "--set",
        &format!("hugepages.2M={want_pages}"),
        "--set",
        &format!("ksm.merge_across_nodes={want_merge}"),
        "--journal",
        j,
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(sysfs(pages), want_pages);
    assert_eq!(sysfs(merge), want_merge);
    // libvirt reports them too
    let h = json(&run(&["--json", "-c", FLEET3, "host"]));
    assert_eq!(
        h["memory"]["ksm"]["merge_across_nodes"].to_string(),
        want_merge
    );
    let o = run(&["rollback", "--last", "--journal", j]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(sysfs(pages), p0);
    assert_eq!(sysfs(merge), m0);

    // what libvirt cannot set is refused before anything changes, never written here
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    let thp0 = sysfs(thp);
    for args in [
        vec!["--set", "thp.enabled=never"],
        vec!["--set", "numa_balancing=0"],
        vec!["--set", "ksm.run=1"],
        vec!["--set", "hugepages.2M=1", "--persist"],
    ] {
        let mut a = vec!["-c", FLEET3, "apply", "--journal", j, "--yes"];
        a.extend(args.iter().copied());
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stdout(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.contains("over a remote connection") || e.contains("remote connection"),
            "{e}"
        );
    }
    assert_eq!(sysfs(thp), thp0);
    assert_eq!(sysfs(pages), p0);
}

#[test]
fn a_snapshot_of_a_remote_host_holds_its_libvirt_facts_and_no_local_file() {
    let Some(_g) = fleet() else { return };
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("fleet2.tar.gz");
    let b = b.to_str().unwrap();
    let o = run(&["-c", FLEET2, "snapshot", "-o", b]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 host files"), "{}", stdout(&o));
    let h = json(&run(&["--json", "--from", b, "host"]));
    assert_eq!(h["hostname"], "fleet2");
    assert_eq!(h["remote"], FLEET2);
    let v = json(&run(&["--json", "--from", b, "audit", "--all"]));
    let names: Vec<&str> = v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("fleet2-")), "{names:?}");
    // a bundle has no live statistics: refused in one line
    let o = run(&["--from", b, "stat"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--from reads a bundle"),
        "{}",
        stderr(&o)
    );
}

/// `apply` over several hosts: one journal entry per host, each through its own URI; an
/// unreachable host is its own failed line and the others are applied; each entry rolls back
/// on its own host.
#[test]
fn apply_over_several_hosts_journals_one_entry_per_host() {
    let Some(_g) = fleet() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal");
    let j = j.to_str().unwrap();
    let before1 = virsh_on(FLEET1, &["dumpxml", "--inactive", "fleet1-web"]);
    let before3 = virsh_on(FLEET3, &["dumpxml", "--inactive", "fleet3-web"]);
    let dead = "qemu+tcp://127.0.0.59/system";
    let o = run(&[
        "-c",
        FLEET1,
        "-c",
        FLEET3,
        "-c",
        dead,
        "apply",
        "--all",
        "--journal",
        j,
        "--yes",
    ]);
    // an unreachable host is 1 (2 only when no host could be worked on)
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("== fleet1 ({FLEET1}) ==")), "{out}");
    assert!(
        out.contains(&format!("applied on 2 of 3 host(s): {FLEET1}, {FLEET3}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "failed (each rolled back on its own host, or never started): {dead}"
        )),
        "{out}"
    );
    // fleet3-web's writethrough cache went; fleet1-web's tablet went
    assert!(!virsh_on(FLEET3, &["dumpxml", "--inactive", "fleet3-web"]).contains("writethrough"));
    assert!(!virsh_on(FLEET1, &["dumpxml", "--inactive", "fleet1-web"]).contains("tablet"));
    let h = json(&run(&["--json", "history", "--journal", j]));
    let uris: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["uri"].as_str())
        .collect();
    // the hosts run in parallel: one entry each, in whichever order they began
    let mut sorted = uris.clone();
    sorted.sort();
    assert_eq!(sorted, [FLEET1, FLEET3], "{h}");
    // history of one host among several: its entries only
    let h = json(&run(&[
        "--json",
        "-c",
        FLEET3,
        "-c",
        dead,
        "history",
        "--journal",
        j,
    ]));
    let uris: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["uri"].as_str())
        .collect();
    assert_eq!(uris, [FLEET3], "{h}");
    // rollback --last over the hosts: each host's own last entry, through its own URI
    let o = run(&[
        "--json",
        "-c",
        FLEET1,
        "-c",
        FLEET3,
        "rollback",
        "--last",
        "--journal",
        j,
    ]);
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}\n{}", stderr(&o));
    assert_eq!(v["kind"], "kvmtune.fleet-rollback");
    let mut ids = Vec::new();
    for i in 0..2 {
        let r = &v["hosts"][i]["report"]["result"];
        assert_eq!(r["ok"], true, "{v}");
        ids.push(r["id"].as_str().unwrap()[..4].to_string());
    }
    ids.sort();
    assert_eq!(ids, ["0001", "0002"], "{v}");
    assert_eq!(
        virsh_on(FLEET1, &["dumpxml", "--inactive", "fleet1-web"]),
        before1
    );
    assert_eq!(
        virsh_on(FLEET3, &["dumpxml", "--inactive", "fleet3-web"]),
        before3
    );
    // --json over several hosts: one document, each host's dry run in hosts[].report
    let o = run(&[
        "--json",
        "-c",
        FLEET1,
        "-c",
        FLEET3,
        "apply",
        "--all",
        "--journal",
        j,
    ]);
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.fleet-apply", "{v}");
    assert_eq!(v["hosts"].as_array().unwrap().len(), 2);
    for h in v["hosts"].as_array().unwrap() {
        assert_eq!(h["ok"], true, "{h}");
        assert!(
            h["report"]["kind"]
                .as_str()
                .unwrap()
                .starts_with("kvmtune.apply"),
            "{h}"
        );
    }
}

/// `--from BUNDLE` is honoured or refused in one line by every command.
#[test]
fn every_command_honours_or_refuses_from() {
    // the lab's domains with the book's host files
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("b.tar.gz");
    let b = b.to_str().unwrap();
    let root = hosts_dir().join("b-book-2socket/root");
    let o = run(&["--root", root.to_str().unwrap(), "snapshot", "-o", b]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (args, ok) in [
        (vec!["host"], true),
        (vec!["host", "--check"], true),
        (vec!["audit", "--all"], true),
        (vec!["plan"], true),
        (vec!["stat", "-n", "1"], false),
        (vec!["top"], false),
        (vec!["diagnose"], false),
        (vec!["apply", "--all"], false),
        (vec!["rollback", "--last"], false),
        (vec!["history"], false),
        (vec!["snapshot", "-o", "-"], false),
        (vec!["fleet"], false),
    ] {
        let mut a = vec!["--from", b];
        a.extend(args.iter().copied());
        let o = run(&a);
        let code = o.status.code();
        if ok {
            assert!(matches!(code, Some(0) | Some(1)), "{a:?}: {}", stderr(&o));
        } else {
            assert_eq!(code, Some(2), "{a:?}: {}", stdout(&o));
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{a:?}: {e}");
            assert!(e.contains("--from") || e.contains("bundle"), "{a:?}: {e}");
        }
    }
}

/// Files judged with `--host` while `-c` names another host: that host's facts, not this
/// machine's.
#[test]
fn files_with_host_take_the_named_hosts_facts() {
    let Some(_g) = fleet() else { return };
    let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/domains/seed000-before.xml");
    let v = json(&run(&[
        "--json",
        "-c",
        FLEET2,
        "audit",
        "--host",
        f.to_str().unwrap(),
    ]));
    let from = v["host"].as_str().unwrap();
    assert!(from.starts_with(&format!("libvirt {FLEET2}")), "{from}");
}

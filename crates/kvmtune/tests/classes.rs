#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fix classes end to end: `audit`, `explain`, `rules --json` and SARIF show them; `apply`
//! applies `safe` fixes unless `--class` or `--rule` asks for more, and names what it left
//! out. On the lab: `apply --all --yes` with the defaults, every running lab domain restarted
//! reaches its `/init`, then the rollback.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// A Windows 10 guest with an IDE disk, an e1000 NIC and a USB tablet on a server.
const WIN_IDE: &str = "<domain type='kvm'><name>win</name><memory>1048576</memory>\
<vcpu>2</vcpu><metadata><libosinfo:libosinfo \
xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata>\
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
<source file='/i/a.img'/><target dev='hda' bus='ide'/></disk>\
<interface type='bridge'><source bridge='br0'/><model type='e1000'/></interface>\
<controller type='usb' index='0' model='piix3-uhci'/>\
<input type='tablet' bus='usb'/></devices></domain>";

fn win_file(dir: &Path) -> String {
    let f = dir.join("win.xml");
    std::fs::write(&f, WIN_IDE).unwrap();
    f.display().to_string()
}

#[test]
fn audit_json_text_and_sarif_show_each_fix_class() {
    let t = tempfile::tempdir().unwrap();
    let f = win_file(t.path());
    let o = run(&["--json", "audit", &f]);
    let v = json(&o);
    assert_eq!(v["kind"], "kvmtune.audit");
    assert_eq!(v["version"], 2);
    let findings = v["domains"][0]["findings"].as_array().unwrap();
    let fix = |rule: &str| {
        findings
            .iter()
            .find(|x| x["rule"] == rule)
            .map(|x| x["fix"].clone())
            .unwrap_or_else(|| panic!("no {rule} in {findings:#?}"))
    };
    assert_eq!(fix("disk-cache")["class"], "safe");
    assert_eq!(fix("disk-bus")["class"], "guest-driver");
    assert!(
        fix("disk-bus")["risk"]
            .as_str()
            .unwrap()
            .contains("Windows needs the virtio-win"),
        "{}",
        fix("disk-bus")
    );
    assert_eq!(fix("net-model")["class"], "guest-driver");
    for x in findings.iter().filter(|x| !x["fix"].is_null()) {
        assert!(x["fix"]["class"].is_string(), "{x}");
    }

    let text = stdout(&run(&["audit", &f]));
    assert!(
        text.contains("[guest-driver] Move hda to virtio-blk"),
        "{text}"
    );
    assert!(text.contains("[safe] cache='none'"), "{text}");

    let sarif = json(&run(&["audit", "--format", "sarif", &f]));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let bus = results.iter().find(|r| r["ruleId"] == "disk-bus").unwrap();
    assert_eq!(bus["properties"]["class"], "guest-driver");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let r = rules.iter().find(|r| r["id"] == "disk-cache").unwrap();
    assert_eq!(r["properties"]["class"], "safe");
}

#[test]
fn explain_and_rules_json_show_the_rules_class() {
    let o = run(&["explain", "disk-bus"]);
    let text = stdout(&o);
    assert!(text.contains("Class:  guest-driver"), "{text}");
    assert!(text.contains("--rule disk-bus"), "{text}");
    let v = json(&run(&["--json", "rules"]));
    let rules = v["rules"].as_array().unwrap();
    let class = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap()["class"].clone();
    assert_eq!(class("disk-cache"), "safe");
    assert_eq!(class("mem-hugepages"), "capacity");
    assert_eq!(class("cpu-topology"), "guest-visible");
    // only audit rules have fixes with classes
    assert!(class("exit-io-storm").is_null());
    for r in rules.iter().filter(|r| r["rule_kind"] == "audit") {
        assert!(r["class"].is_string(), "{r}");
    }
}

#[test]
fn a_class_needs_domains_and_a_known_name() {
    let o = run(&["apply", "--class", "guest-driver"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--class selects audit fixes"),
        "{}",
        stderr(&o)
    );
}

fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .arg("-c")
        .arg("qemu:///system")
        .args(args)
        .output()
        .unwrap()
}

fn virsh_ok(args: &[&str]) -> String {
    let o = virsh(args);
    assert!(
        o.status.success(),
        "virsh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_win10_dry_run_shows_classes_and_risks_and_leaves_the_bus_change_out() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal").display().to_string();
    let dom = "lab-win10-desktop";
    let o = run(&["apply", dom, "--journal", &j]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("why   disk-cache: cache='none' on hda (next start; safe: "),
        "{out}"
    );
    assert!(!out.contains("bus='virtio'"), "{out}");
    assert!(
        out.contains("left out: disk-bus: Move hda to virtio-blk as vda")
            && out.contains("(guest-driver: Windows needs the virtio-win storage driver")
            && out.contains("— include with --rule disk-bus or --class guest-driver"),
        "{out}"
    );
    // asked for: the bus change is in, and no longer left out
    for extra in [["--class", "guest-driver"], ["--rule", "disk-bus"]] {
        let o = run(&["apply", dom, extra[0], extra[1], "--journal", &j]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("why   disk-bus: Move hda to virtio-blk as vda with an iothread (next start; guest-driver: Windows needs"),
            "{out}"
        );
        assert!(out.contains("bus='virtio'"), "{out}");
        assert!(!out.contains("left out: disk-bus"), "{out}");
    }
    let v = json(&run(&["--json", "apply", dom, "--journal", &j]));
    let left = v["left_out"].as_array().unwrap();
    assert!(
        left.iter()
            .any(|l| l["rule"] == "disk-bus" && l["class"] == "guest-driver"),
        "{v}"
    );
    assert!(!Path::new(&j).join("lock").exists(), "dry runs only");
}

/// The names of the lab's domains (lab/domains and lab/kvm of the repository).
fn lab_names() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab");
    let mut v = Vec::new();
    for d in ["domains", "kvm"] {
        for e in std::fs::read_dir(root.join(d)).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = n.strip_suffix(".xml") {
                v.push(n.to_string());
            }
        }
    }
    v
}

fn running(dom: &str) -> bool {
    String::from_utf8_lossy(&virsh(&["domstate", dom]).stdout).starts_with("running")
}

/// The serial log file of a domain (`<serial><log file=...>`), if it has one.
fn serial_log(dom: &str) -> Option<String> {
    let xml = virsh_ok(&["dumpxml", "--inactive", dom]);
    let at = xml.find("<log file='")? + "<log file='".len();
    let end = xml[at..].find('\'')?;
    Some(xml[at..at + end].to_string())
}

/// Destroy and start each domain, then wait until its serial log shows the lab's `/init`.
fn restart_and_wait(doms: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for d in doms {
        let _ = virsh(&["destroy", d]);
        let o = virsh(&["start", d]);
        if !o.status.success() {
            failed.push(format!(
                "{d}: virsh start: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            continue;
        }
        let Some(log) = serial_log(d) else {
            failed.push(format!("{d}: no serial log to watch"));
            continue;
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("kvmtune-lab guest up") {
                eprintln!(
                    "{d}: /init reached in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                break;
            }
            if start.elapsed() > Duration::from_secs(150) || !running(d) {
                failed.push(format!(
                    "{d}: no /init within {:.0} s (running: {}); serial log: {text:?}",
                    start.elapsed().as_secs_f64(),
                    running(d)
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    failed
}

/// If the test fails half way: roll back and restart what was running.
struct Restore {
    journal: String,
    running: Vec<String>,
    armed: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let _ = run(&["rollback", "--last", "--journal", &self.journal]);
        let _ = restart_and_wait(&self.running);
    }
}

#[test]
fn apply_all_with_the_defaults_keeps_every_lab_domain_booting() {
    let Some(_g) = lab() else { return };
    let t = tempfile::tempdir().unwrap();
    let j = t.path().join("journal").display().to_string();
    let lab = lab_names();
    let all = virsh_ok(&["list", "--all", "--name"]);
    let all: Vec<String> = all
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let doms: Vec<String> = all.iter().filter(|d| lab.contains(d)).cloned().collect();
    assert!(!doms.is_empty(), "no lab domain defined");
    // --all when the connection holds only lab domains; else the lab's names (other
    // domains on a shared lab belong to someone else)
    let mut args: Vec<&str> = vec!["apply", "--yes", "--journal", &j];
    if all.len() == doms.len() {
        args.push("--all");
    } else {
        eprintln!("other domains are defined: applying to the lab domains by name");
        args.extend(doms.iter().map(String::as_str));
    }
    // the running lab domains that boot the lab's kernel (lab/kvm's domain never reaches
    // /init on this machine's paravirtual KVM, and has no serial log)
    let was_running: Vec<String> = doms
        .iter()
        .filter(|d| running(d) && serial_log(d).is_some())
        .cloned()
        .collect();
    assert!(!was_running.is_empty(), "no lab domain is running");
    let before: Vec<(String, String)> = doms
        .iter()
        .map(|d| (d.clone(), virsh_ok(&["dumpxml", "--inactive", d])))
        .collect();

    let mut guard = Restore {
        journal: j.clone(),
        running: was_running.clone(),
        armed: true,
    };
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("applied "), "{out}");
    // the defaults: safe fixes only; the rest is named
    assert!(
        !out.contains("; guest-driver: ") && !out.contains("; guest-visible: "),
        "{out}"
    );
    assert!(out.contains("left out: "), "{out}");
    let changed: Vec<&String> = before
        .iter()
        .filter(|(d, x)| &virsh_ok(&["dumpxml", "--inactive", d]) != x)
        .map(|(d, _)| d)
        .collect();
    assert!(!changed.is_empty(), "the defaults changed nothing: {out}");

    let failed = restart_and_wait(&was_running);
    assert!(
        failed.is_empty(),
        "after apply --all --yes: {failed:#?}\n{out}"
    );

    let o = run(&["rollback", "--last", "--journal", &j]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    for (d, x) in &before {
        let now = virsh_ok(&["dumpxml", "--inactive", d]);
        assert_eq!(
            kvmtune_domain::Document::parse(&now).unwrap().canonical(),
            kvmtune_domain::Document::parse(x).unwrap().canonical(),
            "{d} not restored"
        );
    }
    // back to the stored definitions as they were, running as they were
    guard.armed = false;
    let failed = restart_and_wait(&was_running);
    assert!(failed.is_empty(), "after the rollback: {failed:#?}");
}

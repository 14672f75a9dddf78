#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Proving the effect of a change, on the lab's libvirtd: a throwaway TCG domain made from
//! lab-tuned's definition (new name, no UUID, no disk, no serial log; `idle=poll` so its vCPU
//! spins) is measured busy, busy again, and suspended; `compare` reports the suspension and
//! no change between the two busy windows. `apply --measure` stores a before and an after
//! window in the journal entry and `history ID` (and `history ID --measure`) compares them;
//! `snapshot --stat-seconds` puts a window into the bundle for `--from` diagnose and compare.
//! The domain is undefined at the end, also when the test fails.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const URI: &str = "qemu:///system";

fn virsh(args: &[&str]) -> Output {
    Command::new("virsh")
        .arg("-c")
        .arg(URI)
        .args(args)
        .output()
        .unwrap()
}

/// A throwaway domain, destroyed and undefined when dropped (also on panic).
struct Throwaway(String);

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        let o = virsh(&["undefine", &self.0]);
        if !o.status.success() {
            eprintln!(
                "could not undefine {}: {}",
                self.0,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// lab-tuned's definition as a new domain `name`: no UUID (libvirt makes one), no disk
/// (lab-tuned holds its image), no serial log file, no lab metadata, and `idle=poll` so
/// the guest's idle loop spins instead of halting: a busy vCPU.
fn throwaway_xml(name: &str) -> String {
    let o = virsh(&["dumpxml", "--inactive", "lab-tuned"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let xml = String::from_utf8(o.stdout).unwrap();
    let mut out = String::new();
    let mut skip = false;
    for line in xml.lines() {
        let t = line.trim();
        if t.starts_with("<disk ") {
            skip = true;
        }
        if skip {
            if t == "</disk>" {
                skip = false;
            }
            continue;
        }
        if t.starts_with("<uuid>") || t.starts_with("<log ") || t.starts_with("<kvmtune:lab") {
            continue;
        }
        if t == "<metadata>" || t == "</metadata>" {
            continue;
        }
        if t.starts_with("<name>") {
            out.push_str(&format!("  <name>{name}</name>\n"));
            continue;
        }
        if let Some(rest) = t.strip_prefix("<cmdline>") {
            out.push_str(&format!("    <cmdline>idle=poll {rest}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(out.contains("idle=poll") && !out.contains("<disk"), "{out}");
    out
}

fn start_throwaway(tag: &str) -> Throwaway {
    let name = format!("kvmtune-h23-{tag}-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dom.xml");
    std::fs::write(&file, throwaway_xml(&name)).unwrap();
    let o = virsh(&["define", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let guard = Throwaway(name.clone());
    let o = virsh(&["start", &name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    guard
}

/// `kvmtune stat --json -n N DOMAIN` into a file.
fn record(dom: &str, n: u32, path: &Path) -> Vec<serde_json::Value> {
    let o = run(&["-c", URI, "stat", "--json", "-n", &n.to_string(), dom]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(path, &o.stdout).unwrap();
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn host_cpu(frames: &[serde_json::Value]) -> Vec<f64> {
    frames
        .iter()
        .filter_map(|f| f["domains"][0]["host_cpu_pct"].as_f64())
        .collect()
}

/// Wait until the guest's vCPU spins (booted, idle=poll): host CPU above 10% for 2 s.
fn wait_busy(dom: &str) {
    let t0 = Instant::now();
    loop {
        let o = run(&["-c", URI, "stat", "--json", "-n", "2", dom]);
        if o.status.code() == Some(0) {
            let frames: Vec<serde_json::Value> = stdout(&o)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let cpu = host_cpu(&frames);
            if cpu.len() == 2 && cpu.iter().all(|c| *c > 10.0) {
                return;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{dom} never got busy"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn metric<'a>(c: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    c["domains"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == id)
        .unwrap_or_else(|| panic!("no {id} in {c}"))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn compare_sees_a_suspended_guest_and_no_change_between_busy_windows() {
    let Some(_lab) = lab() else { return };
    let dom = start_throwaway("cmp");
    wait_busy(&dom.0);
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("busy1.jsonl"),
        dir.path().join("busy2.jsonl"),
        dir.path().join("suspended.jsonl"),
    );
    let fa = record(&dom.0, 6, &a);
    let fb = record(&dom.0, 6, &b);
    let o = virsh(&["suspend", &dom.0]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fc = record(&dom.0, 6, &c);
    let _ = virsh(&["resume", &dom.0]);
    eprintln!(
        "host CPU of {}: busy {:.1}% {:?}, busy again {:.1}% {:?}, suspended {:.1}% {:?}",
        dom.0,
        mean(&host_cpu(&fa)),
        host_cpu(&fa),
        mean(&host_cpu(&fb)),
        host_cpu(&fb),
        mean(&host_cpu(&fc)),
        host_cpu(&fc)
    );

    // the suspension: host CPU significantly lower
    let o = run(&[
        "compare",
        "--json",
        a.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["kind"], "kvmtune.compare");
    assert_eq!(j["domains"][0]["domain"], dom.0.as_str());
    let h = metric(&j, "host_cpu_pct");
    eprintln!("compare busy -> suspended: {h}");
    assert_eq!(h["verdict"], "lower", "{h}");
    assert_eq!(h["significant"], true);
    assert!(h["change_pct"].as_f64().unwrap() < -80.0, "{h}");
    let t = run(&["compare", a.to_str().unwrap(), c.to_str().unwrap()]);
    let text = stdout(&t);
    eprintln!("{text}");
    assert!(
        text.contains("host CPU -") && text.contains(", lower"),
        "{text}"
    );
    assert!(text.contains("no KVM exit counters"), "{text}");

    // two busy windows: nothing significant
    let o = run(&[
        "compare",
        "--json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    eprintln!("compare busy -> busy: {}", metric(&j, "host_cpu_pct"));
    assert_eq!(j["domains"][0]["verdict"], "no significant change", "{j}");

    // two windows of one log: the busy window against the suspended one
    let both = dir.path().join("both.jsonl");
    let mut text = std::fs::read_to_string(&a).unwrap();
    text.push_str(&std::fs::read_to_string(&c).unwrap());
    std::fs::write(&both, text).unwrap();
    let o = run(&[
        "compare",
        "--json",
        both.to_str().unwrap(),
        "--before",
        "1..6",
        "--after",
        "7..12",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert_eq!(metric(&json(&o), "host_cpu_pct")["verdict"], "lower");
}

#[test]
fn apply_measure_stores_both_windows_and_history_compares_them() {
    let Some(_lab) = lab() else { return };
    let dom = start_throwaway("apply");
    wait_busy(&dom.0);
    let jdir = tempfile::tempdir().unwrap();
    let journal = jdir.path().to_str().unwrap();
    // a change of the stored definition (the profile in its metadata), measured around it
    let o = run(&[
        "-c",
        URI,
        "apply",
        &dom.0,
        "--set-profile",
        "latency",
        "--yes",
        "--measure",
        "3",
        "--journal",
        journal,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("measured before: 3 interval(s)") && text.contains("measured after: 3"),
        "{text}"
    );
    assert!(text.contains("host CPU"), "{text}");
    let o = run(&["history", "1", "--journal", journal, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    let w = j["measure"]["windows"].as_array().unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        (w[0]["label"].as_str(), w[1]["label"].as_str()),
        (Some("before"), Some("after"))
    );
    assert_eq!(w[0]["frames"].as_array().unwrap().len(), 3);
    let c = &j["measure"]["comparison"];
    assert_eq!(c["domains"][0]["domain"], dom.0.as_str());
    // nothing that changes the guest's work: its CPU is no different
    eprintln!("apply --measure: {}", metric(c, "host_cpu_pct"));
    let o = run(&["history", "1", "--journal", journal]);
    let text = stdout(&o);
    assert!(text.contains("measured after: 3 interval(s)"), "{text}");
    assert!(text.contains(&format!("{}: ", dom.0)), "{text}");

    // after a restart: history ID --measure adds the window and compares with it
    let o = run(&[
        "-c",
        URI,
        "history",
        "1",
        "--journal",
        journal,
        "--measure",
        "2",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = json(&o);
    let w = j["measure"]["windows"].as_array().unwrap();
    assert_eq!(w.len(), 3);
    assert_eq!(w[2]["label"], "after-restart");
    assert!(
        j["measure"]["comparison"]["after"]
            .as_str()
            .unwrap()
            .starts_with("after-restart"),
        "{j}"
    );
    // the HTML report of the host shows the entry's before/after figures
    let page = jdir.path().join("report.html");
    let o = run(&[
        "-c",
        URI,
        "report",
        "-o",
        page.to_str().unwrap(),
        "--stat-seconds",
        "0",
        "--journal",
        journal,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Effect of a journaled change"),
        "no effect section"
    );
    assert!(
        html.contains(&format!("{}: host CPU (", dom.0)),
        "no host CPU row"
    );
}

#[test]
fn a_bundle_with_a_stat_window_diagnoses_and_compares_elsewhere() {
    let Some(_lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b.tar.gz");
    let bs = b.to_str().unwrap();
    let o = run(&[
        "-c",
        URI,
        "snapshot",
        "-o",
        bs,
        "--stat-seconds",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["stat"]["frames"], 3);
    let o = run(&["--from", bs, "diagnose", "--json", "--no-audit"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let j = json(&o);
    assert!(
        j["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subject"] == "lab-tuned"),
        "{j}"
    );
    let o = run(&[
        "--from", bs, "compare", "--before", "1..1", "--after", "2..3",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert!(stdout(&o).contains("lab-tuned: "), "{}", stdout(&o));
    // live-only commands refuse --from in one line
    for cmd in [&["stat", "-n", "1"][..], &["top", "-n", "1"][..]] {
        let mut args = vec!["--from", bs];
        args.extend_from_slice(cmd);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    // a bundle without a window: diagnose refuses in one line
    let nb = dir.path().join("nb.tar.gz");
    let o = run(&["snapshot", "-o", nb.to_str().unwrap(), "--no-libvirt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["--from", nb.to_str().unwrap(), "diagnose"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("no stat window"), "{e}");
}

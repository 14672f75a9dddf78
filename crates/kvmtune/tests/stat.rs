#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune stat`, `top` and `diagnose` against the lab's real libvirtd: a KVM domain's real
//! exit counters, TCG domains' CPU figures, host CPU compared with the kernel's /proc
//! accounting, domains vanishing mid-run, the TUI in a pseudo-terminal, and recorded reports
//! through the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .arg("-c")
        .arg("qemu:///system")
        .args(args)
        .output()
        .unwrap()
}

fn lab_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("KVMTUNE_LAB_DIR").unwrap_or_else(|_| "/var/cache/kvmtune-lab".into()),
    )
}

/// A transient domain, destroyed when dropped (the KVM one spins a host CPU).
struct Transient(String);

impl Drop for Transient {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
    }
}

/// Start the lab's KVM domain (lab/kvm/lab-kvm-stat.xml) under `name`.
fn start_kvm(name: &str) -> Transient {
    let _ = virsh(&["destroy", name]);
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/kvm/lab-kvm-stat.xml"),
    )
    .unwrap()
    .replace("@KERNEL@", &lab_dir().join("vmlinuz").display().to_string())
    .replace(
        "@INITRD@",
        &lab_dir().join("initrd.gz").display().to_string(),
    )
    .replace("<name>lab-kvm-stat</name>", &format!("<name>{name}</name>"));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), xml).unwrap();
    let o = virsh(&["create", f.path().to_str().unwrap()]);
    assert!(
        o.status.success(),
        "virsh create: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Transient(name.to_string())
}

fn pid_of(name: &str) -> u32 {
    std::fs::read_to_string(format!("/run/libvirt/qemu/{name}.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// utime + stime of a whole process, in ticks (USER_HZ = 100).
fn proc_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s[s.rfind(')').unwrap() + 1..].split_whitespace().collect();
    f[14 - 3].parse::<u64>().unwrap() + f[15 - 3].parse::<u64>().unwrap()
}

fn jsonl(o: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn dom<'a>(frame: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    frame["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
}

#[test]
fn kvm_domain_gives_exit_counters_and_host_cpu_matches_proc() {
    let Some(_g) = lab() else { return };
    let kvm = start_kvm("lab-kvm-stat");
    std::thread::sleep(Duration::from_secs(2));
    let pid = pid_of(&kvm.0);

    let t0 = Instant::now();
    let ticks0 = proc_ticks(pid);
    let o = kvmtune(&[
        "stat",
        "--json",
        "--count",
        "3",
        "--interval",
        "1",
        "lab-kvm-stat",
        "lab-win10-desktop",
        "lab-seed000-untuned",
    ]);
    let ticks1 = proc_ticks(pid);
    let wall = t0.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = jsonl(&o);
    assert_eq!(frames.len(), 3);
    let mut host = Vec::new();
    for f in &frames {
        assert_eq!(f["kind"], "kvmtune.stat");
        let k = dom(f, "lab-kvm-stat").expect("kvm domain in every frame");
        // real KVM counters from the kernel, through one libvirt call
        let exits = k["exits"]["total"].as_f64().unwrap();
        assert!(exits > 0.0, "exits/s {exits}: {k}");
        assert!(k["kvm"]["exits"].as_f64().unwrap() > 0.0);
        assert_eq!(k["pid"], pid);
        assert_eq!(k["host_cpu_source"], "proc");
        assert_eq!(k["guest_cpu_source"], "guest-time");
        assert_eq!(k["vcpu"].as_array().unwrap().len(), 2);
        host.push(k["host_cpu_pct"].as_f64().unwrap());
        // TCG domains: CPU figures, no KVM counters
        for t in ["lab-win10-desktop", "lab-seed000-untuned"] {
            let d = dom(f, t).unwrap();
            assert!(d["host_cpu_pct"].as_f64().is_some(), "{d}");
            assert!(d["guest_cpu_pct"].as_f64().is_some(), "{d}");
            assert_eq!(d["guest_cpu_source"], "vcpu-threads");
            assert!(d["exits"].is_null());
            assert!(
                d["memory"]["per_node_kib"]["0"].as_u64().unwrap() > 0,
                "{d}"
            );
        }
    }
    // the kernel's own accounting of the whole process over (slightly more than) the window
    let kernel_pct = (ticks1 - ticks0) as f64 / 100.0 / wall * 100.0;
    let ours = host.iter().sum::<f64>() / host.len() as f64;
    eprintln!(
        "host CPU of the QEMU process: kvmtune {ours:.1}%, /proc {kernel_pct:.1}% over {wall:.2} s"
    );
    assert!(ours > 50.0, "the spinning vCPU should show: {ours}");
    assert!(
        (ours - kernel_pct).abs() <= 10.0,
        "kvmtune {ours:.1}% vs /proc {kernel_pct:.1}%"
    );

    // the live diagnosis sees the same numbers
    let o = kvmtune(&["diagnose", "--json", "--duration", "2", "lab-kvm-stat"]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let r = json(&o);
    assert_eq!(r["kind"], "kvmtune.diagnose");
    assert_eq!(r["mode"], "live");
    let s = &r["subjects"][0];
    assert_eq!(s["subject"], "lab-kvm-stat");
    assert!(s["profile"]["total"].as_f64().unwrap() > 0.0, "{s}");
    let cpu = &s["profile"]["cpu"];
    assert!(cpu["host_pct"].as_f64().unwrap() > 50.0, "{s}");
    // what the numbers say decides the rules, and the exit code follows them
    let rules: Vec<&str> = s["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    let emul = s["profile"]["kinds"]["emulation"].as_f64().unwrap_or(0.0);
    assert_eq!(
        emul >= 10_000.0,
        rules.contains(&"exit-mmio-emul"),
        "{rules:?} {emul}"
    );
    let overhead = cpu["host_pct"].as_f64().unwrap() - cpu["guest_pct"].as_f64().unwrap();
    assert_eq!(
        overhead >= 30.0,
        rules.contains(&"overhead-high"),
        "{rules:?}"
    );
    assert_eq!(o.status.code() == Some(1), !rules.is_empty());
    drop(kvm);
}

#[test]
fn text_csv_and_bad_arguments() {
    let Some(_g) = lab() else { return };
    let o = kvmtune(&[
        "stat",
        "--count",
        "2",
        "--interval",
        "0.5",
        "--format",
        "csv",
        "-d",
        "lab-win10-desktop",
        "lab-db-pinned",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("time,interval_s,domain,"));
    assert_eq!(lines.len(), 1 + 2 * 2, "{out}");
    let cols = lines[0].split(',').count();
    for l in &lines[1..] {
        assert_eq!(l.split(',').count(), cols, "{l}");
        assert!(l.contains(",lab-win10-desktop,") || l.contains(",lab-db-pinned,"));
    }
    // numa_maps read on request (on this one-node host memory is otherwise the RSS)
    let o = kvmtune(&[
        "stat",
        "--json",
        "--count",
        "1",
        "--numa-interval",
        "1",
        "lab-db-pinned",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let f = &jsonl(&o)[0];
    let m = &dom(f, "lab-db-pinned").unwrap()["memory"];
    assert!(m["per_node_kib"]["0"].as_u64().unwrap() > 1024, "{m}");
    assert_eq!(m["remote_share"], 0.0);
    let o = kvmtune(&["stat", "--count", "1", "--vcpus"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("HOST%") && out.contains("lab-tuned") && out.contains("vcpu 0"),
        "{out}"
    );

    for (args, needle) in [
        (
            vec!["stat", "--count", "1", "no-such-domain"],
            "no-such-domain",
        ),
        (vec!["stat", "--interval", "0"], "--interval"),
        (vec!["stat", "--count", "0"], "--count"),
        (
            vec!["-c", "qemu:///nowhere", "stat", "--count", "1"],
            "qemu:///nowhere",
        ),
        (
            vec!["diagnose", "--duration", "1", "no-such-domain"],
            "no-such-domain",
        ),
    ] {
        let o = kvmtune(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn a_domain_that_stops_mid_run_is_reported_and_the_run_goes_on() {
    let Some(_g) = lab() else { return };
    let kvm = start_kvm("lab-kvm-vanish");
    std::thread::sleep(Duration::from_millis(500));
    let child = Command::new(bin())
        .args(["stat", "--json", "--count", "4", "--interval", "1"])
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1700));
    drop(kvm);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = jsonl(&o);
    assert_eq!(frames.len(), 4);
    assert!(dom(&frames[0], "lab-kvm-vanish").is_some());
    let gone: Vec<_> = frames
        .iter()
        .filter(|f| {
            f["vanished"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "lab-kvm-vanish")
        })
        .collect();
    assert_eq!(gone.len(), 1, "vanished once: {frames:?}");
    assert!(dom(frames.last().unwrap(), "lab-kvm-vanish").is_none());
    // the others kept going
    assert!(dom(frames.last().unwrap(), "lab-win10-desktop").is_some());
}

#[test]
fn top_runs_in_a_terminal_and_quits_on_q() {
    let Some(_g) = lab() else { return };
    if !have("script") {
        assert!(!lab_required(), "script(1) is needed for the pty test");
        return;
    }
    let cmd = format!(
        "stty cols 120 rows 30; {} top --count 2 --interval 0.5",
        bin()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = String::from_utf8_lossy(&o.stdout);
    for d in ["lab-win10-desktop", "lab-db-pinned", "HOST%", "EXITS/s"] {
        assert!(screen.contains(d), "{d} not on the screen");
    }
    // q quits an open-ended run
    let mut child = Command::new("script")
        .args(["-qec", &format!("{} top", bin()), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    use std::io::Write as _;
    child.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "top did not quit on q"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    // without a terminal it says so
    let o = kvmtune(&["top"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("terminal"));
}

#[test]
fn diagnose_reads_a_stat_log_and_recorded_reports() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kvmstat/tests/fixtures");
    let before = fixtures.join("seed004-before.txt");
    let after = fixtures.join("seed004-after.txt");
    let xml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/domains/lab-win10-desktop.xml");

    // the seed's table with the seed's domain: the storm, the clock fix, and the audit
    // finding that confirms it
    let o = kvmtune(&[
        "diagnose",
        "--json",
        "--perf-report",
        before.to_str().unwrap(),
        xml.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["mode"], "perf-report");
    let d = &r["subjects"][0]["diagnoses"][0];
    assert_eq!(d["rule"], "exit-io-storm");
    let audit: Vec<&str> = d["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert!(audit.contains(&"clock-windows"), "{audit:?}");
    let o = kvmtune(&["diagnose", "--perf-report", after.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("nothing alarming"));

    // bad reports: one line, exit 2
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("bad.txt");
    std::fs::write(
        &bad,
        "VM-EXIT Samples Samples% Time% Min Time Max Time Avg time\nHLT 12 x% 1% 1us 2us 3us\n",
    )
    .unwrap();
    let empty = t.path().join("empty.txt");
    std::fs::write(&empty, "nothing here\n").unwrap();
    for (f, needle) in [
        (&bad, "line 2"),
        (&empty, "no perf kvm stat table"),
        (&t.path().join("missing.txt"), "missing.txt"),
    ] {
        let o = kvmtune(&["diagnose", "--perf-report", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{e}");
    }
    let badlog = t.path().join("bad.jsonl");
    std::fs::write(&badlog, "{\"kind\":\"kvmtune.stat\"\n").unwrap();
    let o = kvmtune(&["diagnose", "--log", badlog.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));

    // a stat log recorded on the lab, read back
    let Some(_g) = lab() else { return };
    let o = kvmtune(&["stat", "--json", "--count", "2", "--interval", "0.5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = t.path().join("stat.jsonl");
    std::fs::write(&log, &o.stdout).unwrap();
    let o = kvmtune(&[
        "diagnose",
        "--json",
        "--no-audit",
        "--log",
        log.to_str().unwrap(),
        "lab-win10-desktop",
    ]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );
    let r = json(&o);
    assert_eq!(r["mode"], "log");
    assert_eq!(r["subjects"].as_array().unwrap().len(), 1);
    assert_eq!(r["subjects"][0]["subject"], "lab-win10-desktop");
    assert!(
        r["subjects"][0]["source"]
            .as_str()
            .unwrap()
            .contains("mean of 2 intervals")
    );
    let o = kvmtune(&["diagnose", "--log", log.to_str().unwrap(), "no-such-domain"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no figures of domain no-such-domain"),
        "{}",
        stderr(&o)
    );
}

/// libvirt's in-process test driver needs no daemon: the JSON shape with a domain that has
/// no QEMU process, and a host with no running domain at all.
#[test]
fn test_driver_domains_and_an_empty_host() {
    let o = kvmtune(&[
        "-c",
        "test:///default",
        "stat",
        "--json",
        "-n",
        "1",
        "-i",
        "0.2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let f = &jsonl(&o)[0];
    assert_eq!(f["kind"], "kvmtune.stat");
    let d = dom(f, "test").unwrap();
    assert!(d["exits"].is_null());
    assert!(
        d["notes"][0].as_str().unwrap().contains("no QEMU process"),
        "{d}"
    );

    let t = tempfile::tempdir().unwrap();
    let node = t.path().join("node.xml");
    std::fs::write(
        &node,
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>\
         <active>2</active><mhz>2000</mhz><model>i686</model></cpu><memory>2097152</memory></node>",
    )
    .unwrap();
    let uri = format!("test://{}", node.display());
    let o = kvmtune(&["-c", &uri, "stat", "--json", "-n", "2", "-i", "0.2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let frames = jsonl(&o);
    assert_eq!(frames.len(), 2);
    assert!(
        frames
            .iter()
            .all(|f| f["domains"].as_array().unwrap().is_empty())
    );
    let o = kvmtune(&["-c", &uri, "diagnose", "--json", "--duration", "0.5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(json(&o)["subjects"].as_array().unwrap().is_empty());
}

#[test]
fn a_closed_output_ends_stat_normally() {
    use std::io::BufRead as _;
    let mut child = Command::new(bin())
        .args([
            "-c",
            "test:///default",
            "stat",
            "--format",
            "csv",
            "-i",
            "0.2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("time,"), "{first}");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

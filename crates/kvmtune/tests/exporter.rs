#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune exporter` against the real lab (read-only): the HTTP server scraped twice,
//! the series each running lab domain must have, promtool's lint, and --textfile. The
//! refusals need no libvirt.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The exporter process, killed (by its own handle) when the test ends.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(bin())
        .args([
            "-c",
            "qemu:///system",
            "exporter",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, addr }
}

/// GET a path: (status line, body).
fn get(addr: &str, path: &str, accept: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{accept}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the series `name{labels}` (labels as they are printed), if served.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn running_domains() -> Vec<String> {
    virsh_on("qemu:///system", &["list", "--name"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn promtool_check(text: &str) {
    if !have("promtool") {
        assert!(
            !lab_required(),
            "the lab is required (KVMTUNE_REQUIRE_LAB=1) but promtool is missing: scripts/install-test-tools"
        );
        eprintln!("skipped promtool check metrics: promtool not installed (.ci/run installs it)");
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serves_the_lab() {
    let Some(_lab) = lab() else { return };
    let running = running_domains();
    assert!(!running.is_empty(), "no lab domain runs");
    let srv = start();
    let (status, first) = get(&srv.addr, "/metrics", None);
    assert!(status.contains(" 200 "), "{status}");
    std::thread::sleep(Duration::from_millis(500));
    let (_, second) = get(&srv.addr, "/metrics", None);
    for text in [&first, &second] {
        assert_eq!(value(text, "kvmtune_up"), Some(1.0), "{text}");
    }
    for d in &running {
        let lbl = format!("{{domain=\"{d}\"}}");
        for m in [
            "kvmtune_domain_cpu_host_seconds_total",
            "kvmtune_domain_cpu_guest_seconds_total",
            "kvmtune_domain_vcpus",
        ] {
            let a = value(&first, &format!("{m}{lbl}"));
            let b = value(&second, &format!("{m}{lbl}"));
            assert!(a.is_some() && b.is_some(), "{m}{lbl} missing:\n{second}");
        }
        // counters only grow between two scrapes of a domain that kept running
        let a = value(
            &first,
            &format!("kvmtune_domain_cpu_host_seconds_total{lbl}"),
        )
        .unwrap();
        let b = value(
            &second,
            &format!("kvmtune_domain_cpu_host_seconds_total{lbl}"),
        )
        .unwrap();
        assert!(b >= a, "{d}: {a} -> {b}");
        // KVM exits exist when KVM gives statistics; the lab's domains are TCG (no KVM
        // statistics): then no exit series may be invented either
        let has_kvm = second.contains(&format!(
            "kvmtune_domain_kvm_stat_total{{domain=\"{d}\",stat=\"exits\"}}"
        ));
        let has_exits =
            second.contains(&format!("kvmtune_domain_kvm_exits_total{{domain=\"{d}\","));
        assert_eq!(has_kvm, has_exits, "{d}: exits by kind iff KVM statistics");
        if !has_kvm {
            eprintln!("{d}: no KVM statistics (a TCG domain): no exit series");
        }
    }
    if running.iter().any(|d| d == "lab-seed000-untuned") {
        assert!(
            second.contains("kvmtune_audit_findings{domain=\"lab-seed000-untuned\","),
            "{second}"
        );
        assert!(second.contains("kvmtune_domain_info{domain=\"lab-seed000-untuned\",uuid=\""));
    }
    promtool_check(&second);
    // OpenMetrics by negotiation
    let (_, om) = get(&srv.addr, "/metrics", Some("application/openmetrics-text"));
    assert!(om.ends_with("# EOF\n"));
    let (status, body) = get(&srv.addr, "/-/healthy", None);
    assert!(status.contains(" 200 ") && body == "OK");
    let (status, _) = get(&srv.addr, "/nope", None);
    assert!(status.contains(" 404 "), "{status}");
}

#[test]
fn textfile_is_written_and_a_fifo_refused() {
    let Some(_lab) = lab() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["-c", "qemu:///system", "exporter", "--textfile", d]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(dir.path().join("kvmtune.prom")).unwrap();
    assert_eq!(value(&text, "kvmtune_up"), Some(1.0));
    promtool_check(&text);
    let o = run(&[
        "--json",
        "-c",
        "qemu:///system",
        "exporter",
        "--textfile",
        d,
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["kind"], "kvmtune.exporter");
    assert_eq!(doc["up"], true);

    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("kvmtune.prom");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let o = run_watched(&[
        "-c",
        "qemu:///system",
        "exporter",
        "--textfile",
        fifo_dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(fifo.to_str().unwrap()) && err.contains("FIFO"),
        "{err}"
    );
}

#[test]
fn refusals_are_one_line() {
    for args in [
        vec!["--root", "/", "exporter"],
        vec!["--json", "exporter"],
        vec!["-c", "qemu:///system", "-c", "test:///default", "exporter"],
        vec!["exporter", "--audit-interval", "1"],
    ] {
        let o = run_watched(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.trim().is_empty(), "{args:?}");
        if !args.contains(&"--audit-interval") {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }
}

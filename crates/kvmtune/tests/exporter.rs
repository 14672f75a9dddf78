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
    start_on("qemu:///system")
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

/// GET a path where the server may refuse the connection at its cap: (status line, body), or
/// `None` when the connection was closed before any answer could be read.
fn try_get(addr: &str, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
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

/// A private libvirtd of this test's own (scripts/libvirtd-private), taken down when dropped.
struct Daemon(&'static str);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/libvirtd-private"))
            .args(["down", self.0])
            .output();
        let _ =
            std::fs::remove_dir_all(std::path::Path::new("/var/tmp/kvmtune-private").join(self.0));
    }
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn private(args: &[&str]) -> std::process::Output {
    Command::new(repo().join("scripts/libvirtd-private"))
        .args(args)
        .output()
        .unwrap()
}

/// The exporter on `uri`, its address read from stderr; killed when dropped.
fn start_on(uri: &str) -> Server {
    let mut child = Command::new(bin())
        .args(["-c", uri, "exporter", "--listen", "127.0.0.1:0"])
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

/// Scrape until `ok` holds for the text (or 60 s pass): the last text.
fn scrape_until(addr: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, text) = get(addr, "/metrics", None);
        if ok(&text) || std::time::Instant::now() > until {
            return text;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Against a private libvirtd of its own: a domain destroyed between scrapes is gone from
/// the next scrape (no error); the daemon killed under the exporter makes `kvmtune_up` 0 (the
/// exporter keeps serving) and, started again, 1 — by itself, the same exporter process.
#[test]
fn a_destroyed_domain_disappears_and_a_restarted_libvirtd_is_found_again() {
    let Some(_lab) = lab() else { return };
    const NAME: &str = "h14-exporter";
    const ADDR: &str = "127.0.0.62";
    let up = private(&["up", NAME, ADDR]);
    let daemon = Daemon(NAME);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let uri = format!("qemu+tcp://{ADDR}/system");
    let xml = "<domain type='qemu'><name>kvmtune-exp-a</name>\
        <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
        <os><type arch='x86_64' machine='pc'>hvm</type>\
        <kernel>/var/cache/kvmtune-lab/vmlinuz</kernel>\
        <initrd>/var/cache/kvmtune-lab/initrd.gz</initrd><cmdline>console=ttyS0 quiet</cmdline></os>\
        <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/></devices>\
        </domain>";
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("a.xml");
    std::fs::write(&f, xml).unwrap();
    let o = Command::new("virsh")
        .args(["-c", &uri, "create", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let srv = start_on(&uri);
    let series = "kvmtune_domain_cpu_host_seconds_total{domain=\"kvmtune-exp-a\"}";
    let text = scrape_until(&srv.addr, |t| value(t, series).is_some());
    assert!(value(&text, series).is_some(), "{text}");
    assert_eq!(value(&text, "kvmtune_up"), Some(1.0));

    // destroyed between scrapes: gone, and still up
    let o = Command::new("virsh")
        .args(["-c", &uri, "destroy", "kvmtune-exp-a"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (status, text) = get(&srv.addr, "/metrics", None);
    assert!(status.contains(" 200 "), "{status}");
    assert!(!text.contains("kvmtune-exp-a"), "{text}");
    assert_eq!(value(&text, "kvmtune_up"), Some(1.0), "{text}");

    // libvirtd gone: up 0, the exporter answers
    drop(daemon);
    let text = scrape_until(&srv.addr, |t| value(t, "kvmtune_up") == Some(0.0));
    assert_eq!(value(&text, "kvmtune_up"), Some(0.0), "{text}");
    assert!(text.contains("kvmtune_last_error_info{"), "{text}");
    // started again (a new daemon on the same address): up 1 by itself
    let up = private(&["up", NAME, ADDR]);
    let _daemon = Daemon(NAME);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let text = scrape_until(&srv.addr, |t| value(t, "kvmtune_up") == Some(1.0));
    assert_eq!(value(&text, "kvmtune_up"), Some(1.0), "{text}");
}

/// The exporter process's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Under load against the lab: 50 concurrent scrapes (each answered with the metrics), 20
/// clients that send one byte a second, a 1 MB request header and unknown methods — every
/// request answered as due, the exporter keeps serving, and its memory stays bounded.
#[test]
fn load_and_hostile_requests_keep_it_serving_in_bounded_memory() {
    let Some(_lab) = lab() else { return };
    let srv = start();
    let pid = srv.child.id();
    let (_, warm) = get(&srv.addr, "/metrics", None);
    assert_eq!(value(&warm, "kvmtune_up"), Some(1.0));
    let before = rss_kib(pid);
    // slow clients: one byte a second, held open while the rest goes on
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = srv.addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for b in b"GET /metrics HTTP/1.1\r\n".iter().take(5) {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            })
        })
        .collect();
    for _round in 0..4 {
        let scrapers: Vec<_> = (0..50)
            .map(|_| {
                let addr = srv.addr.clone();
                std::thread::spawn(move || try_get(&addr, "/metrics"))
            })
            .collect();
        let mut served = 0;
        for t in scrapers {
            match t.join().unwrap() {
                Some((status, body)) if status.contains(" 200 ") => {
                    assert!(body.contains("kvmtune_up 1"), "{body}");
                    served += 1;
                }
                // the connection cap answers 503 when it is full
                Some((status, _)) => assert!(status.contains(" 503 "), "{status}"),
                // ... at once, before reading the request: a client still writing it may see
                // the connection closed instead of the 503
                None => {}
            }
        }
        assert!(served > 0, "no scrape of the round was served");
    }
    // a 1 MB header: refused, not read into memory
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 4"),
        "{}",
        &out[..out.len().min(200)]
    );
    for method in ["POST", "DELETE", "BREW"] {
        let mut s = TcpStream::connect(&srv.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "{method} /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 405") || out.starts_with("HTTP/1.1 400"),
            "{method}: {out}"
        );
    }
    for t in slow {
        let out = t.join().unwrap();
        // cut off (408), or turned away at the connection cap (503) when it came in late
        assert!(
            out.is_empty() || out.starts_with("HTTP/1.1 4") || out.starts_with("HTTP/1.1 503"),
            "{out}"
        );
    }
    let (status, body) = get(&srv.addr, "/metrics", None);
    assert!(
        status.contains(" 200 ") && body.contains("kvmtune_up 1"),
        "{status}"
    );
    let after = rss_kib(pid);
    eprintln!(
        "exporter RSS: {before} KiB before, {after} KiB after 200 scrapes, 20 slow clients and a 1 MB header"
    );
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
}

/// A stored definition changed behind the exporter's back (`virsh define` with a new
/// profile in its metadata, then `undefine`) is audited again within the XML check (15 s),
/// without any domain starting or stopping; a CPU counter never goes down between scrapes.
#[test]
fn an_edited_or_undefined_definition_is_audited_again_and_counters_never_go_down() {
    let Some(_lab) = lab() else { return };
    const NAME: &str = "h14-exporter-xml";
    const ADDR: &str = "127.0.0.63";
    let up = private(&["up", NAME, ADDR]);
    let _daemon = Daemon(NAME);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let uri = format!("qemu+tcp://{ADDR}/system");
    let xml = |profile: &str| {
        format!(
            "<domain type='qemu'><name>kvmtune-exp-b</name><uuid>6d0c2f5e-93a1-4c1e-8f3e-1a2b3c4d5e6f</uuid>\
             <metadata><kvmtune:profile xmlns:kvmtune=\"https://kvmtune.invalid/xmlns/profile/1\">{profile}</kvmtune:profile></metadata>\
             <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type>\
             <kernel>/var/cache/kvmtune-lab/vmlinuz</kernel>\
             <initrd>/var/cache/kvmtune-lab/initrd.gz</initrd><cmdline>console=ttyS0 quiet</cmdline></os>\
             <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/></devices>\
             </domain>"
        )
    };
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("b.xml");
    let virsh = |args: &[&str]| {
        let o = Command::new("virsh")
            .arg("-c")
            .arg(&uri)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(&f, xml("desktop")).unwrap();
    virsh(&["define", f.to_str().unwrap()]);
    // a running one too, for the counters
    let a = t.path().join("a.xml");
    std::fs::write(
        &a,
        xml("server")
            .replace("kvmtune-exp-b", "kvmtune-exp-c")
            .replace("6d0c2f5e", "7d0c2f5e"),
    )
    .unwrap();
    virsh(&["create", a.to_str().unwrap()]);
    let srv = start_on(&uri);
    let info = "kvmtune_domain_info{domain=\"kvmtune-exp-b\",uuid=\"";
    let has_profile = |t: &str, p: &str| {
        t.lines()
            .any(|l| l.starts_with(info) && l.contains(&format!("profile=\"{p}\"")))
    };
    let text = scrape_until(&srv.addr, |t| has_profile(t, "desktop"));
    assert!(has_profile(&text, "desktop"), "{text}");
    // edited: the profile in its metadata is now latency
    std::fs::write(&f, xml("latency")).unwrap();
    virsh(&["define", f.to_str().unwrap()]);
    let last: std::cell::Cell<Option<f64>> = std::cell::Cell::new(None);
    let series = "kvmtune_domain_cpu_emulator_seconds_total{domain=\"kvmtune-exp-c\"}";
    let text = scrape_until(&srv.addr, |t| {
        // meanwhile: the emulator's CPU time never goes down
        if let Some(v) = value(t, series) {
            let l = last.get();
            assert!(l.is_none_or(|l| v >= l), "{series} went down: {l:?} -> {v}");
            last.set(Some(v));
        }
        has_profile(t, "latency")
    });
    assert!(
        has_profile(&text, "latency"),
        "the edit was not audited again:\n{text}"
    );
    // undefined: gone from the next audit
    virsh(&["undefine", "kvmtune-exp-b"]);
    let text = scrape_until(&srv.addr, |t| !t.contains("domain=\"kvmtune-exp-b\""));
    assert!(!text.contains("domain=\"kvmtune-exp-b\""), "{text}");
}

/// A transient domain on qemu:///system, destroyed when dropped.
struct Transient(&'static str);

impl Drop for Transient {
    fn drop(&mut self) {
        let _ = Command::new("virsh")
            .args(["-c", "qemu:///system", "destroy", self.0])
            .output();
    }
}

/// The idle-domain rule (docs/exporter.md, "Idle domains") on the real libvirtd: an idle
/// KVM guest (no boot device: SeaBIOS waits in HLT) has its vCPU group read at the first
/// two scrapes, then not at every scrape (its figures' age grows and its counters stay),
/// then again (age 0); its KVM counters never go down.
#[test]
fn an_idle_domains_vcpu_figures_are_read_less_often_and_never_go_down() {
    let Some(_lab) = lab() else { return };
    if !std::path::Path::new("/dev/kvm").exists() {
        assert!(
            !lab_required(),
            "no /dev/kvm: the idle KVM guest cannot run"
        );
        eprintln!("skipped: no /dev/kvm");
        return;
    }
    const NAME: &str = "kvmtune-t-exp-idle";
    let _ = Command::new("virsh")
        .args(["-c", "qemu:///system", "destroy", NAME])
        .output();
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("idle.xml");
    std::fs::write(
        &f,
        format!(
            "<domain type='kvm'><name>{NAME}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
             <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model>\
             <feature policy='disable' name='svm'/></cpu>\
             <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/></devices>\
             </domain>"
        ),
    )
    .unwrap();
    virsh_on("qemu:///system", &["create", f.to_str().unwrap()]);
    let _guest = Transient(NAME);
    // the firmware's start is busy (about 10 s here); then it halts
    std::thread::sleep(Duration::from_secs(8));
    let srv = start();
    let age_series = format!("kvmtune_domain_vcpu_stats_age_seconds{{domain=\"{NAME}\"}}");
    let exits_series = format!("kvmtune_domain_kvm_stat_total{{domain=\"{NAME}\",stat=\"exits\"}}");
    let mut ages = Vec::new();
    let mut exits = Vec::new();
    for _ in 0..36 {
        let (_, text) = get(&srv.addr, "/metrics", None);
        let (Some(age), Some(n)) = (value(&text, &age_series), value(&text, &exits_series)) else {
            panic!("{age_series} or {exits_series} missing:\n{text}");
        };
        ages.push(age);
        exits.push(n);
        std::thread::sleep(Duration::from_millis(400));
    }
    eprintln!("ages {ages:?}\nexits {exits:?}");
    assert_eq!(
        &ages[..2],
        &[0.0, 0.0],
        "the first two scrapes read every domain"
    );
    let stale = ages
        .iter()
        .position(|a| *a > 0.0)
        .expect("the idle guest's vCPU group was read at every scrape");
    let again = ages[stale..]
        .iter()
        .position(|a| *a == 0.0)
        .expect("the idle guest's vCPU group was never read again");
    assert!(again <= 10, "read again after {again} scrapes: {ages:?}");
    assert!(ages.iter().all(|a| *a < 60.0), "{ages:?}");
    // kept figures are the last reading: flat while old, never lower
    for (i, w) in exits.windows(2).enumerate() {
        assert!(
            w[1] >= w[0],
            "exits went down at scrape {}: {exits:?}",
            i + 1
        );
        if ages[i + 1] > 0.0 {
            assert_eq!(w[1], w[0], "an old reading changed at scrape {}", i + 1);
        }
    }
}

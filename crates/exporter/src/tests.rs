#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Encoding of a fixed collection, hostile names, and the HTTP server against a fake
//! collector on 127.0.0.1:0.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::encode::{Format, encode, samples};
use crate::http::Limits;
use crate::metrics::METRICS;
use crate::model::{Collection, DomainMetrics, FindingLine, HostMetrics, Pool};
use crate::scrape::{Collect, Scraper};

fn fixed() -> Collection {
    Collection {
        up: true,
        version: "0.1.0".into(),
        domains: vec![DomainMetrics {
            name: "db".into(),
            uuid: "u-1".into(),
            profile: "database".into(),
            running: true,
            cpu_host_s: Some(12.5),
            cpu_guest_s: Some(10.0),
            cpu_emulator_s: Some(2.5),
            vcpu_delay_s: Some(0.25),
            vcpus: Some(2),
            vcpu_stats_age_s: Some(4.5),
            memory_node_bytes: BTreeMap::from([(0, 1024), (1, 3072)]),
            memory_remote_ratio: Some(0.75),
            balloon_current_bytes: Some(1 << 30),
            balloon_target_bytes: Some(1 << 30),
            exits: BTreeMap::from([("io".into(), 7), ("halt".into(), 3)]),
            halt_poll_success_s: Some(1.5),
            halt_poll_fail_s: Some(0.5),
            kvm_counters: BTreeMap::from([("exits".into(), 20)]),
            kvm_gauges: BTreeMap::from([("pages_4k".into(), 9)]),
            pin_drift: Some(false),
        }],
        findings: vec![FindingLine {
            domain: "db".into(),
            rule: "cpu.host-passthrough".into(),
            severity: "warn".into(),
        }],
        host: HostMetrics {
            ksm_pages_shared: Some(1),
            ksm_pages_sharing: Some(4),
            ksm_saved_bytes: Some(16384),
            hugepages: vec![Pool {
                node: "0".into(),
                size_bytes: 2 << 20,
                total: 8,
                free: 2,
            }],
            thp_mode: Some("madvise".into()),
            numa_balancing: Some(false),
            vcpu_thread_ratio: Some(0.5),
            memory_committed_bytes: Some(4096),
            memory_total_bytes: Some(8192),
            domains_running: Some(1),
            domains_defined: Some(3),
        },
        scrape_duration_s: Some(0.01),
        libvirt_call_s: Some(0.005),
        last_error: None,
        audit_timestamp_s: Some(1_700_000_000.0),
    }
}

#[test]
fn a_fixed_collection_in_the_prometheus_text_format() {
    let text = encode(&fixed(), Format::Text);
    for line in [
        "# TYPE kvmtune_domain_cpu_host_seconds_total counter",
        "kvmtune_domain_cpu_host_seconds_total{domain=\"db\"} 12.5",
        "kvmtune_domain_info{domain=\"db\",uuid=\"u-1\",profile=\"database\"} 1",
        "kvmtune_domain_kvm_exits_total{domain=\"db\",kind=\"io\"} 7",
        "kvmtune_domain_kvm_stat_total{domain=\"db\",stat=\"exits\"} 20",
        "kvmtune_domain_kvm_stat{domain=\"db\",stat=\"pages_4k\"} 9",
        "kvmtune_domain_memory_node_bytes{domain=\"db\",node=\"1\"} 3072",
        "kvmtune_domain_memory_remote_ratio{domain=\"db\"} 0.75",
        "kvmtune_domain_vcpu_stats_age_seconds{domain=\"db\"} 4.5",
        "kvmtune_audit_findings{domain=\"db\",rule=\"cpu.host-passthrough\",severity=\"warn\"} 1",
        "kvmtune_pin_drift{domain=\"db\"} 0",
        "kvmtune_host_hugepages_free{node=\"0\",size_bytes=\"2097152\"} 2",
        "kvmtune_host_thp_info{mode=\"madvise\"} 1",
        "kvmtune_host_domains{state=\"defined\"} 3",
        "kvmtune_up 1",
        "kvmtune_build_info{version=\"0.1.0\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(!text.contains("# EOF"));
    assert!(
        !text.contains("kvmtune_last_error_info{"),
        "no error, no series"
    );
    // every metric with samples is described, once, with its type
    for m in METRICS {
        let t = format!("# TYPE {} {}", m.name, m.kind.name());
        let n = if text.contains(&format!("\n{}", m.name)) {
            1
        } else {
            0
        };
        assert_eq!(text.matches(&format!("{t}\n")).count(), n, "{t}\n{text}");
    }
    promtool_accepts(&text);
}

/// `promtool check metrics` passes on the text (skipped when promtool is not installed).
fn promtool_accepts(text: &str) {
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: lint skipped");
        return;
    };
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
fn openmetrics_by_negotiation() {
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(
        Format::negotiate(Some("text/plain;version=0.0.4")),
        Format::Text
    );
    let a = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    assert_eq!(Format::negotiate(Some(a)), Format::OpenMetrics);
    let om = encode(&fixed(), Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE kvmtune_domain_cpu_host_seconds counter\n"));
    assert!(om.contains("kvmtune_domain_cpu_host_seconds_total{domain=\"db\"} 12.5"));
}

#[test]
fn hostile_domain_names_are_escaped() {
    let mut c = fixed();
    c.domains[0].name = "evil\"} 1\nkvmtune_up{x=\"\\".into();
    c.last_error = Some("line one".into());
    let text = encode(&c, Format::Text);
    // the name stays inside its label value: no forged line
    assert_eq!(
        text.lines().filter(|l| l.starts_with("kvmtune_up")).count(),
        1
    );
    assert!(
        text.contains(r#"kvmtune_domain_vcpus{domain="evil\"} 1\nkvmtune_up{x=\"\\"} 2"#),
        "{text}"
    );
    assert!(text.contains("kvmtune_last_error_info{error=\"line one\"} 1"));
}

#[test]
fn a_gone_domain_is_gone_and_unknowns_are_absent() {
    let mut c = fixed();
    c.domains.clear();
    c.host = HostMetrics::default();
    c.up = false;
    let text = encode(&c, Format::Text);
    assert!(!text.contains("domain=\"db\"}"), "{text}");
    assert!(text.contains("kvmtune_up 0"));
    assert!(!text.contains("kvmtune_host_ksm_pages_shared "));
    // samples never carry NaN
    assert!(samples(&c).iter().all(|s| s.value.is_finite()));
}

#[test]
fn exit_kinds() {
    use crate::collect::exit_kind;
    assert_eq!(exit_kind("io_exits"), Some("io"));
    assert_eq!(exit_kind("irq_window_exits"), Some("irq_window"));
    assert_eq!(exit_kind("insn_emulation"), Some("insn_emulation"));
    assert_eq!(exit_kind("exits"), None);
    assert_eq!(exit_kind("pf_fixed"), None);
}

#[test]
fn a_snapshot_becomes_cumulative_series() {
    use kvmtune_kvmstat::live::{DomSnap, RawDomain, RawVcpu};
    let mut raw = RawDomain {
        name: "k".into(),
        id: Some(3),
        cpu_time_ns: Some(4_000_000_000),
        ..RawDomain::default()
    };
    for i in 0..2 {
        raw.vcpus.insert(
            i,
            RawVcpu {
                time_ns: Some(1_000_000_000),
                delay_ns: Some(500_000_000),
                wait_ns: None,
                counters: BTreeMap::from([
                    ("exits".into(), 10),
                    ("io_exits".into(), 4),
                    ("halt_poll_fail_ns".into(), 2_000_000_000),
                    ("pf_fixed".into(), 1),
                    ("guest_mode".into(), 1),
                ]),
            },
        );
    }
    raw.vm.insert("pages_2m".into(), 5);
    raw.vm.insert("remote_tlb_flush".into(), 6);
    let s = DomSnap {
        raw,
        proc: None,
        numa_kib: None,
        proc_note: None,
    };
    let d = crate::collect::from_snapshot(&s, &BTreeMap::new());
    assert_eq!(d.cpu_host_s, Some(4.0));
    assert_eq!(d.cpu_guest_s, Some(2.0));
    assert_eq!(d.cpu_emulator_s, Some(2.0));
    assert_eq!(d.vcpu_delay_s, Some(1.0));
    assert_eq!(d.vcpus, Some(2));
    assert_eq!(d.exits["io"], 8);
    assert!(!d.exits.contains_key("all") && !d.exits.contains_key(""));
    assert_eq!(d.kvm_counters["exits"], 20);
    assert_eq!(d.kvm_counters["pf_fixed"], 2);
    assert_eq!(d.kvm_counters["remote_tlb_flush"], 6);
    assert_eq!(d.kvm_gauges["guest_mode"], 2);
    assert_eq!(d.kvm_gauges["pages_2m"], 5);
    assert_eq!(d.halt_poll_fail_s, Some(4.0));
    assert_eq!(d.halt_poll_success_s, None);
    assert_eq!(d.vcpu_stats_age_s, Some(0.0), "read with this snapshot");
    // an idle domain's kept reading: the same counters, with their age
    let mut old = s.clone();
    old.raw.vcpu_age_s = 7.0;
    let o = crate::collect::from_snapshot(&old, &BTreeMap::new());
    assert_eq!(o.vcpu_stats_age_s, Some(7.0));
    assert_eq!(o.exits, d.exits);
    // no vCPU group at all (never read): no age either
    let mut none = s.clone();
    none.raw.vcpus.clear();
    let n = crate::collect::from_snapshot(&none, &BTreeMap::new());
    assert_eq!(n.vcpu_stats_age_s, None);
}

// ---- HTTP ----

struct Fake {
    calls: Arc<AtomicUsize>,
    delay: Duration,
}
impl Collect for Fake {
    fn collect(&mut self) -> Collection {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        fixed()
    }
}

fn server(delay: Duration, limits: Limits) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let scraper = Arc::new(
        Scraper::new(
            Fake {
                calls: Arc::clone(&calls),
                delay,
            },
            Duration::from_secs(10),
        )
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = crate::handler(scraper);
    std::thread::spawn(move || crate::http::serve(l, h, limits));
    (addr, calls)
}

fn limits() -> Limits {
    Limits {
        connections: 64,
        head_bytes: 16 * 1024,
        head_time: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
    }
}

fn request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

#[test]
fn paths_methods_and_formats() {
    let (addr, _) = server(Duration::ZERO, limits());
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(r.contains("kvmtune_up 1"));
    let r = request(
        addr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert!(
        r.contains("Content-Type: application/openmetrics-text"),
        "{r}"
    );
    assert!(r.ends_with("# EOF\n"));
    let r = get(addr, "/");
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("href=\"/metrics\""));
    let r = get(addr, "/-/healthy");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\nOK"),
        "{r}"
    );
    assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    assert!(get(addr, "/metrics/../etc").starts_with("HTTP/1.1 404"));
    let r = request(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 405") && r.contains("Allow: GET, HEAD"),
        "{r}"
    );
    let r = request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    assert!(request(addr, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // the query string is not part of the path
    assert!(get(addr, "/metrics?x=1").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_huge_header_is_refused_and_the_server_goes_on() {
    let (addr, _) = server(Duration::ZERO, limits());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 1 << 20));
    raw.extend(b"\r\n\r\n");
    // the server stops reading at its bound: the write may fail, the answer is 431 or a
    // closed connection, never a 200
    let _ = s.write_all(&raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 431"), "{out}");
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_slow_client_does_not_block_scrapes_and_is_timed_out() {
    let (addr, _) = server(Duration::ZERO, limits());
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = Instant::now();
        for b in b"GET /metrics HTTP/1.1\r\n" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        (t.elapsed(), String::from_utf8_lossy(&out).into_owned())
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    for _ in 0..5 {
        assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
    }
    assert!(t.elapsed() < Duration::from_secs(2));
    let (took, out) = slow.join().unwrap();
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn fifty_concurrent_scrapes_are_all_answered_by_few_collections() {
    let (addr, calls) = server(Duration::from_millis(200), limits());
    let threads: Vec<_> = (0..50)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics")))
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("kvmtune_up 1"),
            "{r}"
        );
    }
    // serialised: a scrape arriving during a collection shares it
    assert!(calls.load(Ordering::SeqCst) < 10, "{calls:?}");
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let l = Limits {
        connections: 2,
        ..limits()
    };
    let (addr, _) = server(Duration::ZERO, l);
    // two idle connections hold both slots
    let a = TcpStream::connect(addr).unwrap();
    let b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 503"));
    drop((a, b));
    // the slots free once the idle ones are timed out
    std::thread::sleep(Duration::from_millis(2500));
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200"));
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kvmtune exporter` proved with the real components (issue 14, "Proof with the real
//! components"): Debian's `prometheus` server scrapes the exporter running against the lab's
//! libvirtd every second (scripts/prometheus), then its HTTP API must show `up` 1, host and
//! guest CPU of the lab's TCG domains, audit findings of the seed domain, KVM exits of the
//! lab's KVM domain, every query of the Grafana dashboard (contrib/grafana/kvmtune.json) with
//! data, and the recording rules and alerts (contrib/prometheus/kvmtune.rules.yml) loaded and
//! healthy. `promtool check metrics` lints a scrape; `promtool check rules` and `promtool test
//! rules` run here too, so CI runs them.
//!
//! Needs `prometheus` and `promtool` (Debian package `prometheus`): skipped without them,
//! a failure when the lab is required (KVMTUNE_REQUIRE_LAB=1).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether prometheus and promtool are installed; a failure instead of a skip when the lab is
/// required.
fn prometheus_installed() -> bool {
    let ok = have("prometheus") && have("promtool") && have("curl");
    if !ok {
        assert!(
            !lab_required(),
            "the lab is required (KVMTUNE_REQUIRE_LAB=1) but prometheus/promtool/curl are missing \
             (apt-get install --no-install-recommends prometheus curl)"
        );
        eprintln!("skipping: prometheus, promtool or curl not installed");
    }
    ok
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    if !prometheus_installed() {
        return;
    }
    let dir = repo().join("contrib/prometheus");
    let o = Command::new("promtool")
        .args(["check", "rules", "kvmtune.rules.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool check rules:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = Command::new("promtool")
        .args(["test", "rules", "kvmtune.rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool test rules:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
}

// ---- the lab proof

const KVM_DOMAIN: &str = "lab-kvm-prom";
const TCG_DOMAINS: &[&str] = &[
    "lab-db-pinned",
    "lab-seed000-untuned",
    "lab-tuned",
    "lab-win10-desktop",
];

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

/// The lab's KVM definition (lab/kvm/lab-kvm-stat.xml) started as a transient domain under
/// another name (stat.rs uses lab-kvm-stat), destroyed when dropped: a transient domain leaves
/// no definition behind, and it spins a host CPU while it runs.
struct Transient(String);

impl Drop for Transient {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
    }
}

fn start_kvm(name: &str) -> Transient {
    let _ = virsh(&["destroy", name]);
    let xml = std::fs::read_to_string(repo().join("lab/kvm/lab-kvm-stat.xml"))
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
    assert!(o.status.success(), "virsh create: {}", stderr(&o));
    Transient(name.to_string())
}

/// The exporter, killed (by the pid of the child this test started) when dropped.
struct Exporter {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Exporter {
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// The first `127.0.0.1:PORT` in a line.
fn bound_addr(line: &str) -> Option<String> {
    let i = line.find("127.0.0.1:")?;
    let rest = &line[i + "127.0.0.1:".len()..];
    let port: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!port.is_empty() && port != "0").then(|| format!("127.0.0.1:{port}"))
}

fn start_exporter() -> Exporter {
    let mut child = Command::new(bin())
        .args([
            "-c",
            "qemu:///system",
            "exporter",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("KVMTUNE_JOURNAL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    // drains stderr as long as the exporter runs
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = bound_addr(&line) {
                let _ = tx.send(a);
            }
            l.lock().unwrap().push(line);
        }
    });
    let mut e = Exporter {
        child,
        addr: String::new(),
        log,
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => e.addr = a,
        Err(_) => panic!(
            "kvmtune exporter printed no bound 127.0.0.1 address within 60 s; stderr:\n{}",
            e.log()
        ),
    }
    e
}

fn script() -> PathBuf {
    repo().join("scripts/prometheus")
}

/// The state directory of this test's Prometheus (not the default one a person may be using).
fn prom_dir() -> PathBuf {
    PathBuf::from("/var/tmp/kvmtune-prometheus/cargo-test")
}

/// scripts/prometheus down when dropped (also when the test panics).
struct Prometheus {
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("down")
            .env("KVMTUNE_PROMETHEUS_DIR", prom_dir())
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(target: &str) -> Prometheus {
    let port = free_port().to_string();
    let o = Command::new(script())
        .args(["up", &port, target])
        .env("KVMTUNE_PROMETHEUS_DIR", prom_dir())
        .output()
        .unwrap();
    // the guard first: a half-started server is stopped too
    let p = Prometheus {
        url: format!("http://127.0.0.1:{port}"),
    };
    assert!(
        o.status.success(),
        "scripts/prometheus up: {}{}",
        stdout(&o),
        stderr(&o)
    );
    p
}

fn curl(args: &[&str]) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "curl {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// An instant query: the result vector.
fn query(p: &Prometheus, expr: &str) -> Vec<Value> {
    let body = curl(&[
        &format!("{}/api/v1/query", p.url),
        "--data-urlencode",
        &format!("query={expr}"),
    ]);
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "query {expr}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn label<'a>(s: &'a Value, name: &str) -> &'a str {
    s["metric"][name].as_str().unwrap_or("")
}

fn value(s: &Value) -> f64 {
    s["value"][1].as_str().unwrap().parse().unwrap()
}

/// Poll `expr` until it returns something, or panic after `secs`.
fn wait_for(p: &Prometheus, expr: &str, secs: u64, what: &str) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = query(p, expr);
        if !r.is_empty() {
            return r;
        }
        assert!(
            Instant::now() < end,
            "{what}: `{expr}` empty after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every (panel title, expression) of a Grafana dashboard, rows' nested panels included.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The `kvmtune_*` metric names in a text (not the `kvmtune:` recording rules).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("kvmtune_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

/// Grafana's template variables as this test sets them: this exporter, every domain, and a
/// rate window of ten 1 s scrapes.
fn substitute(expr: &str, instance: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("$__interval", "1s")
        .replace("$__range", "1m")
        .replace("$instance", instance)
        .replace("$domain", ".*")
}

#[test]
fn exporter_scraped_by_real_prometheus_and_dashboard_queries_have_data() {
    let Some(_g) = lab() else { return };
    if !prometheus_installed() {
        return;
    }
    // built without the exporter (this test's branch before the exporter's is merged): a skip,
    // a failure when the lab is required
    if !run(&["exporter", "--help"]).status.success() {
        assert!(
            !lab_required(),
            "the lab is required but this kvmtune has no `exporter` command"
        );
        eprintln!("skipping: this kvmtune has no `exporter` command");
        return;
    }
    // A KVM domain exists only where /dev/kvm does (LAB.md); without it the exit panels can
    // have no data.
    let kvm_here = Path::new("/dev/kvm").exists();
    let _kvm = kvm_here.then(|| start_kvm(KVM_DOMAIN));

    let exporter = start_exporter();
    let prom = start_prometheus(&exporter.addr);
    let instance = exporter.addr.clone();
    let sel = format!("job=\"kvmtune\",instance=\"{instance}\"");

    // `up` 1 and a few scrapes (1 s apart) for rates
    wait_for(&prom, &format!("up{{{sel}}} == 1"), 60, "up");
    wait_for(
        &prom,
        &format!("count_over_time(up{{{sel}}}[1m]) >= 12"),
        60,
        "12 scrapes",
    );
    let up = query(&prom, &format!("kvmtune_up{{{sel}}}"));
    assert!(
        up.len() == 1 && value(&up[0]) == 1.0,
        "kvmtune_up: {up:?}\nexporter stderr:\n{}",
        exporter.log()
    );

    // host and guest CPU of every TCG lab domain; the CPU of at least one moves
    for m in [
        "kvmtune_domain_cpu_host_seconds_total",
        "kvmtune_domain_cpu_guest_seconds_total",
    ] {
        let r = query(&prom, &format!("{m}{{{sel}}}"));
        for d in TCG_DOMAINS {
            assert!(
                r.iter().any(|s| label(s, "domain") == *d),
                "{m} has no series of {d}: {r:?}"
            );
        }
    }
    let moving = query(
        &prom,
        &format!("rate(kvmtune_domain_cpu_host_seconds_total{{{sel}}}[10s]) > 0"),
    );
    assert!(
        moving
            .iter()
            .any(|s| TCG_DOMAINS.contains(&label(s, "domain"))),
        "no TCG domain's host CPU moves: {moving:?}"
    );

    // the seed domain's audit findings (the audit runs at start, in the background)
    let findings = wait_for(
        &prom,
        &format!("kvmtune_audit_findings{{{sel},domain=\"lab-seed000-untuned\"}}"),
        120,
        "findings of lab-seed000-untuned",
    );
    assert!(
        findings.iter().all(|s| !label(s, "rule").is_empty()
            && !label(s, "severity").is_empty()
            && value(s) == 1.0),
        "{findings:?}"
    );

    // KVM exits: the KVM domain's must move; any exit series must
    let exits = query(&prom, &format!("kvmtune_domain_kvm_exits_total{{{sel}}}"));
    if kvm_here {
        let kvm_exits = wait_for(
            &prom,
            &format!(
                "sum by (domain) (rate(kvmtune_domain_kvm_exits_total{{{sel},domain=\"{KVM_DOMAIN}\"}}[10s])) > 0"
            ),
            30,
            "exit rate of the KVM domain",
        );
        assert_eq!(kvm_exits.len(), 1);
        let all = query(
            &prom,
            &format!(
                "rate(kvmtune_domain_kvm_stat_total{{{sel},domain=\"{KVM_DOMAIN}\",stat=\"exits\"}}[10s]) > 0"
            ),
        );
        assert_eq!(all.len(), 1, "all exits of {KVM_DOMAIN}: {all:?}");
    } else {
        eprintln!("no /dev/kvm: no KVM domain, exits only checked if the exporter has them");
    }
    if !exits.is_empty() {
        let r = query(
            &prom,
            &format!("sum(rate(kvmtune_domain_kvm_exits_total{{{sel}}}[10s])) > 0"),
        );
        assert_eq!(r.len(), 1, "exit series exist but none moves: {exits:?}");
    }

    // the rules file is loaded and every rule evaluates without error on real series
    let rules: Value =
        serde_json::from_str(&curl(&[&format!("{}/api/v1/rules", prom.url)])).unwrap();
    let groups = rules["data"]["groups"].as_array().unwrap();
    let mut names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["kvmtune.alerts", "kvmtune.rules"], "{rules}");
    // a second evaluation after the scrapes above, so that the health is of real data
    std::thread::sleep(Duration::from_secs(2));
    let rules: Value =
        serde_json::from_str(&curl(&[&format!("{}/api/v1/rules", prom.url)])).unwrap();
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(
                r["health"], "ok",
                "rule {} of {}: {r}",
                r["name"], g["name"]
            );
        }
    }
    for rec in [
        "kvmtune:domain_cpu_host:rate1m",
        "kvmtune:domain_cpu_guest:rate1m",
        "kvmtune:domain_overhead_cpu:rate1m",
        "kvmtune:domain_overhead:ratio",
    ] {
        wait_for(&prom, &format!("{rec}{{{sel}}}"), 10, rec);
    }
    if kvm_here {
        wait_for(
            &prom,
            &format!("kvmtune:domain_exits:rate1m{{{sel},domain=\"{KVM_DOMAIN}\"}}"),
            10,
            "exit rates recorded",
        );
        // the KVM domain emulates instructions in a loop (docs/lab.md): well above
        // exit-mmio-emul's 10,000/s, so the exit storm alert is pending (it fires after 5 min)
        let alert = wait_for(
            &prom,
            &format!(
                "ALERTS{{alertname=\"KvmtuneExitStorm\",instance=\"{instance}\",domain=\"{KVM_DOMAIN}\",kind=\"insn_emulation\"}}"
            ),
            10,
            "KvmtuneExitStorm pending for the KVM domain",
        );
        assert_eq!(label(&alert[0], "alertstate"), "pending", "{alert:?}");
    }

    // promtool check metrics on one scrape: no errors, no lint problems
    let scrape = curl(&[&format!("http://{instance}/metrics")]);
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let o = lint.wait_with_output().unwrap();
    assert!(
        o.status.success() && stdout(&o).trim().is_empty() && stderr(&o).trim().is_empty(),
        "promtool check metrics:\n{}{}",
        stdout(&o),
        stderr(&o)
    );

    // every metric the rules read is served (a renamed metric would leave a rule silently
    // empty); the KVM statistics only where a KVM domain runs
    let rules_text =
        std::fs::read_to_string(repo().join("contrib/prometheus/kvmtune.rules.yml")).unwrap();
    for name in metric_names(&rules_text) {
        if !kvm_here && (name.contains("_kvm_") || name.contains("halt_poll")) {
            continue;
        }
        if name == "kvmtune_last_error_info" {
            continue; // named in an annotation; absent while there is no error
        }
        assert!(
            scrape.contains(&format!("\n{name}{{")) || scrape.contains(&format!("\n{name} ")),
            "the rules read {name}, which the exporter does not serve"
        );
    }

    // every query of the Grafana dashboard has data, except those listed with the reason
    let exempt: Vec<(&str, &str)> = {
        let mut v = vec![(
            "kvmtune_last_error_info",
            "absent while the exporter has no error",
        )];
        if !kvm_here {
            for m in [
                "kvmtune_domain_kvm_exits_total",
                "kvmtune_domain_kvm_stat_total",
                "kvmtune_domain_halt_poll_",
            ] {
                v.push((m, "KVM statistics: only KVM domains have them, and without /dev/kvm the lab has none (all TCG)"));
            }
        }
        v
    };
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("contrib/grafana/kvmtune.json")).unwrap(),
    )
    .unwrap();
    let queries = dashboard_queries(&dash);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let e = substitute(expr, &instance);
        assert!(!e.contains('$'), "panel {title}: unknown variable in {e}");
        if exempt.iter().any(|(m, _)| e.contains(m)) {
            continue;
        }
        if query(&prom, &e).is_empty() {
            empty.push(format!("{title}: {e}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    // the exemptions are real: each names a metric some query uses
    for (m, why) in &exempt {
        assert!(
            queries.iter().any(|(_, e)| e.contains(m)),
            "exemption {m} ({why}) matches no query"
        );
    }
}

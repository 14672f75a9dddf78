//! Shared helpers for the rule and host-check table tests: tiny domains, hand-built hosts,
//! one runner for rule cases, and the completeness tests (every rule id of [`rules`] and
//! every host check id has a case that fires and a near miss that does not).

use std::collections::BTreeSet;

use kvmtune_domain::Domain;
use kvmtune_host::{CpuSet, Host, HugePool, Ksm, Node};

use super::{Cx, Finding, Peer, Severity, audit, audit_host, rules};
use crate::host_checks::{Verdict, check_host};
use kvmtune_profile::Profile;

/// A minimal x86_64 KVM domain named `vm` (2 GiB, q35) with `extra` inside `<domain>`.
/// `extra` usually holds `<vcpu>`, `<cpu>` and `<devices>`.
pub(crate) fn dom(extra: &str) -> String {
    format!(
        "<domain type='kvm'><name>vm</name><memory unit='MiB'>2048</memory>\
<os><type arch='x86_64' machine='q35'>hvm</type></os>{extra}</domain>"
    )
}

/// The same with another name and memory size (MiB), for peers and size cases.
pub(crate) fn dom_named(name: &str, mib: u64, extra: &str) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><memory unit='MiB'>{mib}</memory>\
<os><type arch='x86_64' machine='q35'>hvm</type></os>{extra}</domain>"
    )
}

pub(crate) fn set(s: &str) -> CpuSet {
    CpuSet::parse(s).expect("test cpuset")
}

/// A host with nothing known: no CPUs, no NUMA, no devices.
pub(crate) fn blank_host() -> Host {
    Host {
        kind: "kvmtune.host".into(),
        version: kvmtune_host::HOST_SCHEMA_VERSION,
        hostname: None,
        kernel: None,
        cpu: Default::default(),
        cmdline: Default::default(),
        numa: Default::default(),
        memory: Default::default(),
        kvm: Default::default(),
        unknown: Vec::new(),
        remote: None,
    }
}

fn node(id: u32, cpus: &str, mem_gib: u64) -> Node {
    Node {
        id,
        cpus: set(cpus),
        memory_total_kib: Some(mem_gib * 1024 * 1024),
        memory_free_kib: Some(mem_gib * 1024 * 1024 / 2),
        hugepages: Vec::new(),
        numastat: Default::default(),
        distances: Vec::new(),
    }
}

pub(crate) fn pool(size_kib: u64, total: u64) -> HugePool {
    HugePool {
        size_kib,
        total,
        free: total,
        surplus: 0,
        reserved: Some(0),
    }
}

pub(crate) fn ksm(run: u32) -> Ksm {
    Ksm {
        run: Some(run),
        merge_across_nodes: Some(1),
        pages_shared: Some(0),
        pages_sharing: Some(0),
        saved_bytes: Some(0),
        files: Default::default(),
    }
}

/// A working single-node KVM host: 16 CPUs (siblings n, n+1), 64 GiB, /dev/kvm,
/// /dev/vhost-net, /dev/net/tun, no swap, KSM stopped.
pub(crate) fn host16() -> Host {
    let mut h = blank_host();
    h.cpu.vendor = Some("GenuineIntel".into());
    h.cpu.hw_virt = Some("vmx".into());
    h.cpu.virt_flags = vec!["vmx".into()];
    h.cpu.online = Some(set("0-15"));
    h.cpu.sibling_groups = (0..8)
        .map(|c| set(&format!("{},{}", 2 * c, 2 * c + 1)))
        .collect();
    h.numa.available = true;
    h.numa.nodes = vec![node(0, "0-15", 64)];
    h.memory.total_kib = Some(64 * 1024 * 1024);
    h.memory.swap_total_kib = Some(0);
    h.memory.default_hugepage_kib = Some(2048);
    h.memory.ksm = Some(ksm(0));
    for p in [
        &mut h.kvm.dev_kvm,
        &mut h.kvm.dev_vhost_net,
        &mut h.kvm.dev_tun,
    ] {
        p.exists = true;
        p.openable = true;
    }
    h
}

/// [`host16`] split into two nodes: node 0 = CPUs 0-7 and 32 GiB, node 1 = CPUs 8-15 and
/// 32 GiB.
pub(crate) fn host2n() -> Host {
    let mut h = host16();
    h.numa.nodes = vec![node(0, "0-7", 32), node(1, "8-15", 32)];
    h
}

/// An audit case: `doms[0]` is audited (with every domain of `doms` as an active peer),
/// host-level rules run too. `expect`: `Some(sev)` = the rule reports a finding at `sev`;
/// `None` = the rule reports nothing.
pub(crate) struct Case {
    pub name: &'static str,
    pub rule: &'static str,
    pub profile: &'static str,
    pub host: Option<Host>,
    pub doms: Vec<String>,
    pub expect: Option<Severity>,
}

pub(crate) const INFO: Option<Severity> = Some(Severity::Info);
pub(crate) const WARN: Option<Severity> = Some(Severity::Warn);
pub(crate) const ERROR: Option<Severity> = Some(Severity::Error);
/// The rule must not fire.
pub(crate) const NONE: Option<Severity> = None;

/// Table row: `(name, rule, profile, host, domains, expected)`.
pub(crate) fn case(
    name: &'static str,
    rule: &'static str,
    profile: &'static str,
    host: Option<Host>,
    doms: Vec<String>,
    expect: Option<Severity>,
) -> Case {
    Case {
        name,
        rule,
        profile,
        host,
        doms,
        expect,
    }
}

/// `f` with the context of `doms[0]` among the active `doms`.
pub(crate) fn with_cx<T>(
    doms: &[String],
    profile: &str,
    host: Option<&Host>,
    f: impl FnOnce(&Cx) -> T,
) -> T {
    let profile = Profile::load(profile).expect("profile");
    let parsed: Vec<_> = doms
        .iter()
        .map(|x| Domain::parse(x).expect("test domain parses"))
        .collect();
    let peers: Vec<Peer> = parsed
        .iter()
        .map(|(_, d)| Peer {
            domain: d,
            active: true,
        })
        .collect();
    let (doc, d) = &parsed[0];
    let cx = Cx {
        doc,
        d,
        profile: &profile,
        host,
        caps: None,
        peers: &peers,
        memo: Default::default(),
    };
    f(&cx)
}

/// Every finding (domain and host level) for `doms[0]` among the active `doms`.
pub(crate) fn findings(doms: &[String], profile: &str, host: Option<&Host>) -> Vec<Finding> {
    with_cx(doms, profile, host, |cx| all_findings(cx, host))
}

fn all_findings(cx: &Cx, host: Option<&Host>) -> Vec<Finding> {
    let peers = cx.peers;
    let mut v = audit(cx);
    // the audit in two steps (one file at a time) finds the same
    let (mut split, wait) = super::audit_deferring_peers(cx);
    if let Some(wait) = wait {
        wait.finish(&super::PeerIndex::new(peers), host, &mut split);
    }
    assert_eq!(format!("{split:?}"), format!("{v:?}"), "audit in two steps");
    // and in two steps that keep only (severity, rule) of the first findings
    let (first, wait) = super::audit_deferring_peers(cx);
    if let Some(wait) = wait {
        let keys: Vec<_> = first.iter().map(|f| (f.severity, f.rule)).collect();
        let added = wait.finish_added(&super::PeerIndex::new(peers), host, &keys);
        let whole = super::merged(first, added);
        assert_eq!(format!("{whole:?}"), format!("{v:?}"), "finish_added");
    }
    v.extend(audit_host(cx));
    v
}

/// Run a table of cases; fails naming every case that went wrong.
pub(crate) fn run_cases(cases: &[Case]) {
    let mut bad = Vec::new();
    for c in cases {
        let all = findings(&c.doms, c.profile, c.host.as_ref());
        let mine: Vec<&Finding> = all.iter().filter(|f| f.rule == c.rule).collect();
        let ok = match c.expect {
            Some(sev) => mine.iter().any(|f| f.severity == sev),
            None => mine.is_empty(),
        };
        if !ok {
            let got: Vec<String> = mine
                .iter()
                .map(|f| format!("{} {}", f.severity.as_str(), f.message))
                .collect();
            bad.push(format!(
                "case {:?} ({} on {}): expected {}, got {:?}",
                c.name,
                c.rule,
                c.profile,
                c.expect.map_or("no finding", |s| s.as_str()),
                got
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} case(s) failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// A host check case: the checks with `id` whose title contains `title` ("" for any).
/// `expect`: `Some(v)` = there is at least one and all have verdict `v`; `None` = none.
pub(crate) struct HostCase {
    pub name: &'static str,
    pub id: &'static str,
    pub title: &'static str,
    pub profile: &'static str,
    pub host: Host,
    pub expect: Option<Verdict>,
}

/// Table row: `(name, id, title, profile, host, expected)`.
pub(crate) fn host_case(
    name: &'static str,
    id: &'static str,
    title: &'static str,
    profile: &'static str,
    host: Host,
    expect: Option<Verdict>,
) -> HostCase {
    HostCase {
        name,
        id,
        title,
        profile,
        host,
        expect,
    }
}

/// Run a table of host check cases; fails naming every case that went wrong.
pub(crate) fn run_host_cases(cases: &[HostCase]) {
    let mut bad = Vec::new();
    for c in cases {
        let profile = Profile::load(c.profile).expect("profile");
        let all = check_host(&c.host, &profile);
        let mine: Vec<_> = all
            .iter()
            .filter(|x| x.id == c.id && x.title.contains(c.title))
            .collect();
        let ok = match c.expect {
            Some(v) => !mine.is_empty() && mine.iter().all(|x| x.verdict == v),
            None => mine.is_empty(),
        };
        if !ok {
            let got: Vec<String> = mine
                .iter()
                .map(|x| format!("{} {}: {}", x.verdict.as_str(), x.title, x.detail))
                .collect();
            bad.push(format!(
                "case {:?} ({} {:?} on {}): expected {}, got {:?}",
                c.name,
                c.id,
                c.title,
                c.profile,
                c.expect.map_or("no check", |v| v.as_str()),
                got
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} case(s) failed:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Every table of the rule files (the ignored false-positive cases excluded).
fn all_cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(super::rules_cpu::table::cases());
    v.extend(super::rules_numa::table::cases());
    v.extend(super::rules_mem::table::cases());
    v.extend(super::rules_dev::table::cases());
    v.extend(super::rules_clock::table::cases());
    v.extend(super::rules_host::table::cases());
    v.extend(super::rules_qemu::table::cases());
    v.extend(super::rules_sched::table::cases());
    v.extend(super::rules_io::table::cases());
    v.extend(super::rules_gfx::table::cases());
    v
}

#[test]
fn every_rule_has_a_firing_case_and_a_near_miss() {
    let cases = all_cases();
    let fires: BTreeSet<&str> = cases
        .iter()
        .filter(|c| c.expect.is_some())
        .map(|c| c.rule)
        .collect();
    let quiet: BTreeSet<&str> = cases
        .iter()
        .filter(|c| c.expect.is_none())
        .map(|c| c.rule)
        .collect();
    let ids: BTreeSet<&str> = rules().iter().map(|r| r.meta.id).collect();
    let no_fire: Vec<&&str> = ids.difference(&fires).collect();
    let no_miss: Vec<&&str> = ids.difference(&quiet).collect();
    assert!(
        no_fire.is_empty(),
        "rules without a firing case: {no_fire:?}"
    );
    assert!(no_miss.is_empty(), "rules without a near miss: {no_miss:?}");
    let unknown: Vec<&str> = cases
        .iter()
        .map(|c| c.rule)
        .filter(|r| !ids.contains(r))
        .collect();
    assert!(unknown.is_empty(), "cases name unknown rules: {unknown:?}");
}

/// The check ids host_checks.rs defines: its `"host-..."` string literals (the table test
/// checks that they are exactly the ids of `host_checks::rules()`).
pub(crate) fn host_check_ids() -> BTreeSet<String> {
    let src = include_str!("../host_checks.rs");
    let code = src.split("#[cfg(test)]").next().unwrap_or(src);
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("host-")
                && s.len() > 5
                && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_host_check_has_a_firing_case_and_a_passing_one() {
    let cases = crate::host_checks::table::cases();
    let fires: BTreeSet<String> = cases
        .iter()
        .filter(|c| c.expect.is_some_and(|v| v != Verdict::Pass))
        .map(|c| c.id.to_string())
        .collect();
    let quiet: BTreeSet<String> = cases
        .iter()
        .filter(|c| c.expect.is_none_or(|v| v == Verdict::Pass))
        .map(|c| c.id.to_string())
        .collect();
    let ids = host_check_ids();
    assert!(ids.len() >= 23, "too few host check ids found: {ids:?}");
    let no_fire: Vec<&String> = ids.difference(&fires).collect();
    let no_miss: Vec<&String> = ids.difference(&quiet).collect();
    assert!(
        no_fire.is_empty(),
        "host checks without a firing case: {no_fire:?}"
    );
    assert!(
        no_miss.is_empty(),
        "host checks without a passing case: {no_miss:?}"
    );
    let unknown: Vec<&str> = cases
        .iter()
        .map(|c| c.id)
        .filter(|id| !ids.contains(*id))
        .collect();
    assert!(unknown.is_empty(), "cases name unknown checks: {unknown:?}");
    // and every id the checks emit on the fixture hosts is among them
    for (dir, h) in fixture_hosts() {
        for (p, _) in kvmtune_profile::BUILTIN {
            let profile = Profile::load(p).expect("profile");
            for c in crate::host_checks::check_host(&h, &profile) {
                assert!(
                    ids.contains(&c.id),
                    "{}: check id {} not covered",
                    dir.display(),
                    c.id
                );
            }
        }
    }
}

/// The fixture hosts, tests/fixtures/hosts/*/root, collected.
pub(crate) fn fixture_hosts() -> Vec<(std::path::PathBuf, Host)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts");
    let mut v = Vec::new();
    for e in std::fs::read_dir(&root).expect("fixture hosts") {
        let dir = e.expect("dir entry").path().join("root");
        if dir.is_dir() {
            let h = kvmtune_host::collect(&kvmtune_host::RootDir::new(&dir));
            v.push((dir, h));
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!v.is_empty(), "no fixture hosts under {}", root.display());
    v
}

/// Issue 18: every rule's finding, rendered from a case that fires, reads as true text: a
/// specific message, and where there is a fix a summary, a command and a risk that say
/// something; no unfilled placeholder, no blank where a name should be.
#[test]
fn every_firing_case_renders_specific_text() {
    fn suspicious(s: &str) -> Option<&'static str> {
        if s.trim().is_empty() {
            return Some("empty");
        }
        if s.contains("{}") || s.contains("{:") || s.contains("@KERNEL@") {
            return Some("an unfilled placeholder");
        }
        if s.contains("  ") && !s.contains("   # ") {
            return Some("a double space (a blank value?)");
        }
        if s.contains(" ,") || s.contains("( ") || s.contains(" )") || s.contains("''") {
            return Some("a blank value");
        }
        None
    }
    // prose (why, risk) may list examples with "..."; what names this finding may not
    fn elided(what: &str, s: &str) -> bool {
        matches!(what, "message" | "fix summary" | "fix command") && s.contains("...")
    }
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    for c in all_cases().iter().filter(|c| c.expect.is_some()) {
        for f in findings(&c.doms, c.profile, c.host.as_ref())
            .iter()
            .filter(|f| f.rule == c.rule)
        {
            seen.insert(f.rule);
            let mut texts = vec![("message", f.message.clone()), ("why", f.why.to_string())];
            if let Some(x) = &f.fix {
                texts.push(("fix summary", x.summary.clone()));
                texts.push(("fix command", x.command.clone()));
                texts.push(("risk", x.risk.clone()));
                if x.risk.trim_end_matches('.').ends_with("applies live") {
                    bad.push(format!(
                        "{} ({}): risk names no risk: {}",
                        c.rule, c.name, x.risk
                    ));
                }
            } else {
                texts.push(("risk", f.risk.to_string()));
            }
            for (what, t) in texts {
                if let Some(p) = suspicious(&t) {
                    bad.push(format!("{} ({}): {what} has {p}: {t:?}", c.rule, c.name));
                }
                if elided(what, &t) {
                    bad.push(format!(
                        "{} ({}): {what} has an elision instead of the value: {t:?}",
                        c.rule, c.name
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} problem(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
    let all: BTreeSet<&str> = rules().iter().map(|r| r.meta.id).collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "no rendered finding for {missing:?}");
}

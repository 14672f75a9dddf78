//! A synthetic report: many domains on a given host with a window of statistics, for the
//! size benchmark (`bench/report.py`) and the tests. The figures are made up; the layout,
//! sizes and pictures are the real ones.

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_host::Host;
use kvmtune_planner::{CpuPolicy, Dom, EmulatorPolicy, Fill, Policy, SmtPolicy};

use crate::model::*;

/// A report of `domains` domains on `host` with `seconds` one-second intervals of
/// statistics, a finding or three per domain with a fix diff, the plan and diagnoses.
pub fn report(host: Host, name: &str, domains: usize, seconds: usize) -> Report {
    let online: Vec<u32> = host.online_cpus().iter().collect();
    let online_set: BTreeSet<u32> = online.iter().copied().collect();
    let node_of = |c: u32| -> u32 {
        host.numa
            .nodes
            .iter()
            .find(|n| n.cpus.contains(c))
            .map(|n| n.id)
            .unwrap_or(0)
    };
    let mut doms = Vec::new();
    let mut audits = Vec::new();
    for i in 0..domains {
        let vcpus = [1u32, 2, 4][i % 3];
        let mut vcpu_cpus = BTreeMap::new();
        // a third pinned, one CPU each, wrapping over the host; the rest float
        if i % 3 == 0 && !online.is_empty() {
            for v in 0..vcpus {
                vcpu_cpus.insert(v, vec![online[(i + v as usize) % online.len()]]);
            }
        } else {
            for v in 0..vcpus {
                vcpu_cpus.insert(v, online.clone());
            }
        }
        let name = format!("vm{i:02}-{}", ["web", "db", "cache", "build"][i % 4]);
        doms.push(DomainCpus {
            name: name.clone(),
            running: i % 5 != 4,
            vcpus,
            memory_kib: 1024 * 1024 * u64::from(vcpus),
            vcpu_cpus,
            emulator_cpus: (i % 3 == 0).then(|| vec![online[0]]),
            source: if i % 2 == 0 {
                PinSource::Live
            } else {
                PinSource::Xml
            },
        });
        let findings = (0..(1 + i % 3))
            .map(|k| FindingRow {
                rule: ["disk-cache", "clock-windows", "cpu-mode"][k].into(),
                severity: [Severity::Warn, Severity::Error, Severity::Info][k],
                title: ["Disk cache mode", "Windows clock", "CPU model"][k].into(),
                message: format!("{name}: the setting number {k} is not what the profile wants"),
                class: Some(["safe", "guest-visible", "migration"][k].into()),
                risk: "none known; the guest sees the same devices".into(),
                fix: Some("set the recommended value".into()),
                applies: Some("next start".into()),
                diff: Some(format!(
                    "--- a/{name}.xml\n+++ b/{name}.xml\n@@ -10,3 +10,3 @@\n   <devices>\n-    <driver name='qemu' type='raw' cache='writethrough'/>\n+    <driver name='qemu' type='raw' cache='none' io='native'/>\n   </devices>\n"
                )),
                suspect: false,
            })
            .collect();
        audits.push(DomainAudit {
            name,
            profile: "server".into(),
            findings,
        });
    }
    let policy = Policy {
        cpus: CpuPolicy::Shared,
        smt: SmtPolicy::Prefer,
        emulator: EmulatorPolicy::Housekeeping,
    };
    let (plan, plan_note, reserved) =
        match kvmtune_planner::topo_from_host(&host, "one-core-per-socket") {
            Ok(topo) => {
                let pdoms: Vec<Dom> = doms
                    .iter()
                    .map(|d| Dom {
                        name: d.name.clone(),
                        vcpus: d.vcpus,
                        memory_kib: d.memory_kib,
                        page_kib: None,
                        pins: BTreeMap::new(),
                        emulator_pin: None,
                        policy,
                    })
                    .collect();
                let after = kvmtune_planner::plan(&topo, &pdoms, Fill::Spread);
                let (before, floating) = current_placement(&doms, &online_set, &node_of);
                let reserved = topo.reserved.clone();
                (
                    Some(PlanView {
                        topology: topo,
                        before,
                        floating,
                        after,
                        profile: "server".into(),
                    }),
                    String::new(),
                    reserved,
                )
            }
            Err(e) => (None, e, Vec::new()),
        };
    let nodes: Vec<u32> = host.numa.nodes.iter().map(|n| n.id).collect();
    let samples = (1..=seconds)
        .map(|t| Sample {
            t_s: t as f64,
            domains: doms
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let wave = ((t as f64 + i as f64) / 7.0).sin().abs();
                    let guest = 20.0 * f64::from(d.vcpus) * wave;
                    let host_pct = guest + 3.0 + (i % 4) as f64;
                    let mut exits = BTreeMap::new();
                    exits.insert("halt".to_string(), 900.0 * wave + i as f64);
                    exits.insert("io".to_string(), 300.0 + 10.0 * t as f64);
                    exits.insert("mmio".to_string(), 120.0 * wave);
                    exits.insert("irq".to_string(), 80.0);
                    let node_kib = nodes
                        .iter()
                        .enumerate()
                        .map(|(k, n)| (*n, d.memory_kib / (k as u64 + 2)))
                        .collect();
                    DomSample {
                        name: d.name.clone(),
                        host_pct: Some(host_pct),
                        guest_pct: Some(guest),
                        overhead_pct: Some(host_pct - guest),
                        exits,
                        node_kib,
                        rss_kib: Some(d.memory_kib / 2),
                    }
                })
                .collect(),
        })
        .collect();
    let diagnoses = doms
        .iter()
        .step_by(8)
        .map(|d| DiagRow {
            subject: d.name.clone(),
            severity: Severity::Warn,
            rule: "exit-io-storm".into(),
            title: "I/O exit storm".into(),
            message: format!("{} does 900 I/O exits/s", d.name),
            figures: vec![("io exits/s".into(), 900.0, "/s".into())],
            cause: "a legacy timer polled through port I/O".into(),
            fix: "give the guest a paravirtual clock".into(),
            audit: vec!["clock-windows (warn): no hypervclock".into()],
        })
        .collect();
    let checks = match kvmtune_rules::load_profile("server") {
        Ok(p) => kvmtune_rules::check_host(&host, &p),
        Err(_) => Vec::new(),
    };
    Report {
        title: format!("kvmtune report: {name}"),
        generated: "2026-01-01T00:00:00Z".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        fleet: Vec::new(),
        hosts: vec![HostSection {
            name: name.into(),
            source: "synthetic data on a host fixture".into(),
            error: None,
            host: Some(host),
            reserved,
            domains: doms,
            checks_profile: "server".into(),
            checks,
            audits,
            host_findings: Vec::new(),
            plan,
            plan_note,
            stats: Stats {
                samples,
                note: format!("A synthetic window of {seconds} s."),
            },
            diagnoses,
            effect: None,
            notes: Vec::new(),
        }],
    }
}

//! `kvmtune report -o FILE`: one self-contained HTML page of a host (or a fleet). This
//! module gathers what the other commands compute (host facts, checks, audit, plan, a
//! window of live statistics, diagnoses) and hands it to `kvmtune-report`, which renders.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::cli::{Cli, ReportArgs};
use crate::output::{self, Exit};
use kvmtune_core::fleet::{self as core_fleet, HostEntry, RunOptions};
use kvmtune_core::inventory::{Inventory, Origin, Select};
use kvmtune_core::placement;
use kvmtune_core::profiles::Profiles;
use kvmtune_core::watch::Watch;
use kvmtune_host::CpuSet;
use kvmtune_kvmstat::diagnose::{Limits, diagnose};
use kvmtune_kvmstat::live::{Frame, VmFigures, profile};
use kvmtune_report::{
    DiagRow, DomSample, DomainAudit, DomainCpus, FindingRow, FleetRow, HostSection, PinSource,
    PlanView, Report, Sample, Stats,
};

pub const KIND: &str = "kvmtune.report";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Written<'a> {
    /// Where the page was written (`-` for stdout).
    path: String,
    bytes: usize,
    /// The hosts of the page, each with its sections and whether it could be read.
    hosts: Vec<HostDoc<'a>>,
    /// `fleet` when the page starts with a fleet overview.
    overview: bool,
    stat_seconds: u64,
}

#[derive(Serialize)]
struct HostDoc<'a> {
    host: &'a str,
    ok: bool,
    error: Option<&'a str>,
    sections: Vec<&'static str>,
    domains: usize,
    findings: usize,
    samples: usize,
    diagnoses: usize,
    notes: &'a [String],
}

/// `--json` describes the page written; with `-o -` the page is stdout.
fn check_args(cli: &Cli, args: &ReportArgs) -> Result<()> {
    if cli.json && output::is_stdout(&args.output) {
        bail!("--json describes the page written to -o FILE: with -o - the page is stdout");
    }
    Profiles::from_args(&args.profile)?;
    Ok(())
}

pub fn run(cli: &Cli, args: &ReportArgs) -> Result<Exit> {
    check_args(cli, args)?;
    let origin = crate::origin(cli);
    let section = gather(&origin, None, args, &args.profile)?;
    let title = format!("kvmtune report: {}", section.name);
    write(cli, args, title, Vec::new(), vec![section])
}

/// The report of several hosts: each gathered on its own thread (at most --parallel at a
/// time), a fleet overview first.
pub fn run_many(cli: &Cli, args: &ReportArgs, hosts: Vec<HostEntry>) -> Result<Exit> {
    check_args(cli, args)?;
    if !args.targets.is_empty() {
        bail!("domain names or files describe one host: leave them out with several hosts");
    }
    let opts = RunOptions {
        parallel: cli.parallel as usize,
        // the statistics window is part of each host's run
        timeout: Duration::from_secs(cli.host_timeout + args.stat_seconds),
    };
    let a = args.clone();
    let outcomes = core_fleet::run(&hosts, opts, move |h| {
        let origin = Origin::local(&h.uri);
        let profiles = crate::multi::host_profiles(&a.profile, h);
        gather(&origin, h.name.clone(), &a, &profiles).map_err(|e| crate::one_line(&e))
    });
    let mut sections = Vec::new();
    for (h, o) in hosts.iter().zip(outcomes) {
        sections.push(match o.result {
            Ok(s) => s,
            Err(e) => HostSection {
                name: h.name.clone().unwrap_or_else(|| h.uri.clone()),
                source: format!("libvirt {}", h.uri),
                error: Some(e),
                plan_note: "the host could not be read".into(),
                ..HostSection::default()
            },
        });
    }
    let fleet: Vec<FleetRow> = hosts
        .iter()
        .zip(&sections)
        .map(|(h, s)| fleet_row(&h.uri, s))
        .collect();
    let ok = sections.iter().filter(|s| s.error.is_none()).count();
    let title = format!("kvmtune report: {} hosts", hosts.len());
    let code = write(cli, args, title, fleet, sections)?;
    if ok == 0 {
        output::error(&format!("report: no host answered ({} tried)", hosts.len()));
        return Ok(Exit::Error);
    }
    Ok(if ok < hosts.len() {
        code.max(Exit::Findings)
    } else {
        code
    })
}

fn fleet_row(uri: &str, s: &HostSection) -> FleetRow {
    let mut findings = [0usize; 3];
    for f in s
        .audits
        .iter()
        .flat_map(|a| &a.findings)
        .chain(&s.host_findings)
    {
        findings[match f.severity {
            kvmtune_report::Severity::Error => 0,
            kvmtune_report::Severity::Warn => 1,
            kvmtune_report::Severity::Info => 2,
        }] += 1;
    }
    FleetRow {
        host: s.name.clone(),
        uri: uri.to_string(),
        error: s.error.clone(),
        domains: s.domains.len(),
        running: s.domains.iter().filter(|d| d.running).count(),
        cpus: s.host.as_ref().map(|h| h.online_cpus().len() as u32),
        memory_kib: s.host.as_ref().and_then(|h| h.memory.total_kib),
        findings,
        checks_failed: s
            .checks
            .iter()
            .filter(|c| {
                matches!(
                    c.verdict,
                    kvmtune_rules::Verdict::Warn | kvmtune_rules::Verdict::Fail
                )
            })
            .count(),
        diagnoses: s.diagnoses.len(),
    }
}

fn write(
    cli: &Cli,
    args: &ReportArgs,
    title: String,
    fleet: Vec<FleetRow>,
    hosts: Vec<HostSection>,
) -> Result<Exit> {
    let report = Report {
        title,
        generated: kvmtune_kvmstat::live::rfc3339(now_ms()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        fleet,
        hosts,
    };
    let html = kvmtune_report::render(&report);
    output::write_output(&args.output, html.as_bytes(), 0o644)?;
    if cli.json {
        let docs = report
            .hosts
            .iter()
            .map(|h| {
                let mut sections: Vec<&'static str> = kvmtune_report::SECTIONS.to_vec();
                if h.effect.is_some() {
                    sections.push("effect");
                }
                HostDoc {
                    host: &h.name,
                    ok: h.error.is_none(),
                    error: h.error.as_deref(),
                    sections,
                    domains: h.domains.len(),
                    findings: h.audits.iter().map(|a| a.findings.len()).sum::<usize>()
                        + h.host_findings.len(),
                    samples: h.stats.samples.len(),
                    diagnoses: h.diagnoses.len(),
                    notes: &h.notes,
                }
            })
            .collect();
        let doc = Written {
            path: args.output.display().to_string(),
            bytes: html.len(),
            hosts: docs,
            overview: !report.fleet.is_empty(),
            stat_seconds: args.stat_seconds,
        };
        output::print_doc(KIND, VERSION, &doc)?;
    } else if !output::is_stdout(&args.output) {
        output::note(&format!(
            "report written to {} ({} bytes)",
            args.output.display(),
            html.len()
        ));
    }
    Ok(Exit::Clean)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Everything about one host: facts, checks, audit with fix diffs, the plan before and
/// after, a window of statistics (live hosts), diagnoses.
fn gather(
    origin: &Origin,
    name: Option<String>,
    args: &ReportArgs,
    profile_args: &[String],
) -> Result<HostSection> {
    let profiles = Profiles::from_args(profile_args)?;
    let sel = Select {
        targets: args.targets.clone(),
        all: args.targets.is_empty(),
        host_for_files: true,
    };
    let inv = Inventory::gather(origin, &sel)?;
    let profiles = profiles.with_metadata(&inv);
    let profile = profiles.default_profile().clone();
    let mut notes: Vec<String> = inv.errors.clone();
    let host = inv.host.clone();
    let name = name
        .or_else(|| host.as_ref().and_then(|h| h.hostname.clone()))
        .unwrap_or_else(|| origin.connect.clone());
    let checks = host
        .as_ref()
        .map(|h| kvmtune_rules::check_host(h, &profile))
        .unwrap_or_default();
    // the audit, secrets redacted, each fix with the diff it makes
    let mut audit = kvmtune_core::audit::audit_with(&inv, &profiles);
    audit.redact();
    let mut audits = Vec::new();
    for p in &inv.domains {
        let Some(r) = audit.domain(&p.origin) else {
            continue;
        };
        let findings = r
            .findings
            .iter()
            .map(|f| {
                let diff = f.fix.as_ref().filter(|x| !x.edits.is_empty()).map(|x| {
                    let mut doc = p.doc.clone();
                    kvmtune_rules::audit::apply(&mut doc, &x.edits);
                    kvmtune_core::unified_diff(
                        &format!("{}.xml", p.domain.name),
                        &kvmtune_domain::secrets::redact(&p.text),
                        &kvmtune_domain::secrets::redact(&doc.serialize()),
                        2,
                    )
                });
                FindingRow::of(f, diff)
            })
            .collect();
        audits.push(DomainAudit {
            name: r.name.clone(),
            profile: r.profile.clone(),
            findings,
        });
    }
    let host_findings = audit
        .host_findings
        .iter()
        .map(|f| FindingRow::of(f, None))
        .collect();
    let domains = domain_cpus(origin, &inv, host.as_ref());
    // the plan, and the reserved CPUs of the map
    let mut reserved = Vec::new();
    let (plan, plan_note) = match host.as_ref() {
        None => (None, "no host facts to plan against".to_string()),
        Some(h) => {
            if let Ok(t) = kvmtune_planner::topo_from_host(h, &profile.plan.reserve) {
                reserved = t.reserved.clone();
            }
            let req = placement::Request {
                policy: kvmtune_planner::Policy {
                    cpus: profile.plan.cpus,
                    smt: profile.plan.smt,
                    emulator: profile.plan.emulator,
                },
                fill: profile.plan.fill,
                overrides: BTreeMap::new(),
                reserve: profile.plan.reserve.clone(),
                shared_overcommit: Some(profile.domain.vcpu_overcommit),
            };
            match placement::place(&inv, &req) {
                Ok(placed) => {
                    let online: BTreeSet<u32> = h.online_cpus().iter().collect();
                    let node_of = |c: u32| {
                        h.numa
                            .nodes
                            .iter()
                            .find(|n| n.cpus.contains(c))
                            .map(|n| n.id)
                            .unwrap_or(0)
                    };
                    let (before, floating) =
                        kvmtune_report::current_placement(&domains, &online, &node_of);
                    reserved = placed.topology.reserved.clone();
                    (
                        Some(PlanView {
                            topology: placed.topology,
                            before,
                            floating,
                            after: placed.outcome,
                            profile: profile.name.clone(),
                        }),
                        format!(
                            "`kvmtune plan -p {} -o FILE` writes this plan for `kvmtune apply --plan`.",
                            profile.name
                        ),
                    )
                }
                Err(e) => (None, e.to_string()),
            }
        }
    };
    let (stats, frames) = window(origin, args.stat_seconds, &mut notes);
    let diagnoses = diagnoses(&frames, &audit);
    Ok(HostSection {
        name,
        source: inv.host_origin.clone(),
        error: None,
        host,
        reserved,
        domains,
        checks_profile: profile.name.clone(),
        checks,
        audits,
        host_findings,
        plan,
        plan_note,
        stats,
        diagnoses,
        effect: if origin.from.is_some() {
            None
        } else {
            effect(&args.journal, &origin.connect)
        },
        notes,
    })
}

/// The latest entry of this host's journal measured with `apply --measure`: its
/// before/after figures per domain (a reader: nothing is created or locked).
fn effect(journal: &std::path::Path, uri: &str) -> Option<kvmtune_report::Effect> {
    let j = kvmtune_apply::journal::Journal::existing(journal).ok()?;
    for id in j.entries().ok()?.iter().rev() {
        let l = j.describe(id, false);
        if !l.uri.is_empty() && l.uri != uri {
            continue;
        }
        let Some(m) = j.measurement(id).ok().flatten() else {
            continue;
        };
        let Some(c) = crate::apply::measured_comparison(&m) else {
            continue;
        };
        let mut rows = Vec::new();
        for d in &c.domains {
            for mc in &d.metrics {
                if let (Some(b), Some(a)) = (&mc.before, &mc.after) {
                    rows.push((
                        format!("{}: {} ({})", d.domain, mc.label, mc.verdict.word()),
                        b.mean,
                        a.mean,
                        mc.unit.to_string(),
                    ));
                }
            }
        }
        return Some(kvmtune_report::Effect {
            entry: format!("{id} ({} against {})", c.after, c.before),
            rows,
        });
    }
    None
}

fn cpu_list(s: &str) -> Option<Vec<u32>> {
    CpuSet::parse(s).ok().map(|c| c.iter().collect())
}

/// Where each domain's threads may run: the live affinity of a domain running on this host
/// (its QEMU found under /proc), else its XML pins.
fn domain_cpus(
    origin: &Origin,
    inv: &Inventory,
    host: Option<&kvmtune_host::Host>,
) -> Vec<DomainCpus> {
    let local = origin.from.is_none() && kvmtune_libvirt::is_local(&origin.connect);
    let procs = local.then(|| kvmtune_host::process::QemuProcs::new(origin.root_dir()));
    let online: Vec<u32> = host
        .map(|h| h.online_cpus().iter().collect())
        .unwrap_or_default();
    inv.domains
        .iter()
        .map(|p| {
            let d = &p.domain;
            let mut out = DomainCpus {
                name: d.name.clone(),
                running: p.active,
                vcpus: d.vcpu.max,
                memory_kib: d.memory_kib.unwrap_or(0),
                ..DomainCpus::default()
            };
            let live = procs
                .as_ref()
                .filter(|_| p.active && p.from_libvirt())
                .and_then(|q| q.pid(&d.name).and_then(|pid| q.affinity(pid).ok()));
            if let Some(a) = live {
                out.source = PinSource::Live;
                for (v, s) in &a.vcpus {
                    if let Some(l) = cpu_list(s) {
                        out.vcpu_cpus.insert(*v, l);
                    }
                }
                out.emulator_cpus = cpu_list(&a.emulator);
                return out;
            }
            // the XML: <vcpupin>, else <vcpu cpuset>, else every CPU
            let all = d
                .vcpu
                .cpuset
                .as_deref()
                .and_then(cpu_list)
                .unwrap_or_else(|| online.clone());
            let mut pins = BTreeMap::new();
            let mut emu = None;
            if let Some(ct) = &d.cputune {
                for pin in &ct.vcpupin {
                    if let (Some(id), Some(l)) = (pin.id, cpu_list(&pin.cpuset)) {
                        pins.insert(id, l);
                    }
                }
                emu = ct.emulatorpin.as_ref().and_then(|e| cpu_list(&e.cpuset));
            }
            for v in 0..d.vcpu.max.min(4096) {
                let set = pins.get(&v).cloned().unwrap_or_else(|| all.clone());
                out.vcpu_cpus.insert(v, set);
            }
            out.emulator_cpus = emu.or_else(|| d.vcpu.cpuset.as_deref().and_then(cpu_list));
            out
        })
        .collect()
}

/// A window of live statistics: one frame per second for `seconds` seconds. None from a
/// bundle (it records no statistics) or with 0 seconds; a failure to watch is a note, not
/// an error of the report.
fn window(origin: &Origin, seconds: u64, notes: &mut Vec<String>) -> (Stats, Vec<Frame>) {
    if let Some(path) = &origin.from {
        // the bundle's recorded window (`snapshot --stat-seconds N`), if it has one
        return match crate::compare::bundle_frames(path) {
            Ok(frames) => {
                let note = format!(
                    "Recorded in the bundle ({} interval(s), `kvmtune snapshot --stat-seconds`).",
                    frames.len()
                );
                (stats_of(&frames, note), frames)
            }
            Err(_) => (
                Stats {
                    samples: Vec::new(),
                    note: "No live statistics in this bundle (made without `kvmtune snapshot --stat-seconds N`).".into(),
                },
                Vec::new(),
            ),
        };
    }
    if seconds == 0 {
        return (
            Stats {
                samples: Vec::new(),
                note: "No live statistics: --stat-seconds 0.".into(),
            },
            Vec::new(),
        );
    }
    let watched = (|| -> Result<Vec<Frame>> {
        let mut w = Watch::open(origin, Vec::new(), None)?;
        let mut prev = w.take()?;
        let start = Instant::now();
        let mut frames = Vec::new();
        for i in 1..=seconds {
            // each sample one second after the start of the window, not after the last read
            let due = start + Duration::from_secs(i);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let cur = w.take()?;
            frames.push(w.frame(&prev, &cur));
            prev = cur;
        }
        Ok(frames)
    })();
    let frames = match watched {
        Ok(f) => f,
        Err(e) => {
            let why = format!("no live statistics: {}", crate::one_line(&e));
            notes.push(why.clone());
            return (
                Stats {
                    samples: Vec::new(),
                    note: why,
                },
                Vec::new(),
            );
        }
    };
    let note = if frames.iter().all(|f| f.domains.is_empty()) {
        format!("No running domain on {} during the window.", origin.connect)
    } else {
        format!("Sampled live on {}, one interval a second.", origin.connect)
    };
    (stats_of(&frames, note), frames)
}

/// The charts' samples of a window of frames.
fn stats_of(frames: &[Frame], note: String) -> Stats {
    let mut t = 0.0;
    let samples: Vec<Sample> = frames
        .iter()
        .map(|f| {
            t += f.interval_s;
            Sample {
                t_s: t,
                domains: f.domains.iter().map(dom_sample).collect(),
            }
        })
        .collect();
    Stats { samples, note }
}

fn dom_sample(f: &VmFigures) -> DomSample {
    let mut exits = BTreeMap::new();
    if let Some(e) = &f.exits {
        for (k, v) in [
            ("io", e.io),
            ("mmio", e.mmio),
            ("halt", e.halt),
            ("irq", e.irq),
            ("irq_window", e.irq_window),
            ("signal", e.signal),
            ("insn_emulation", e.insn_emulation),
            ("pf_fixed", e.pf_fixed),
            ("hypercalls", e.hypercalls),
        ] {
            exits.insert(k.to_string(), v);
        }
    }
    DomSample {
        name: f.name.clone(),
        host_pct: f.host_cpu_pct,
        guest_pct: f.guest_cpu_pct,
        overhead_pct: f.overhead_pct,
        exits,
        node_kib: f
            .memory
            .as_ref()
            .map(|m| m.per_node_kib.clone())
            .unwrap_or_default(),
        rss_kib: f.rss_kib,
    }
}

/// The diagnoses of the window's mean figures per domain, with the audit findings that
/// explain them.
fn diagnoses(frames: &[Frame], audit: &kvmtune_core::audit::AuditReport) -> Vec<DiagRow> {
    let lim = Limits::default();
    let mut out = Vec::new();
    for (f, n) in kvmtune_kvmstat::log::merge_frames(frames) {
        let p = profile(&f, &format!("mean of {n} intervals"));
        let findings = audit
            .domains
            .iter()
            .find(|d| d.name == f.name)
            .map(|d| &d.findings);
        for d in diagnose(&p, &lim) {
            let links = kvmtune_core::diagnosis::links(&d.audit_rules, findings);
            out.push(DiagRow {
                subject: f.name.clone(),
                severity: d.severity,
                rule: d.rule.to_string(),
                title: d.title.to_string(),
                message: d.message.clone(),
                figures: d
                    .figures
                    .iter()
                    .map(|x| (x.name.clone(), x.value, x.unit.to_string()))
                    .collect(),
                cause: d.cause.to_string(),
                fix: d.fix.clone(),
                audit: links
                    .iter()
                    .map(|l| format!("{} ({}): {}", l.rule, l.severity, l.message))
                    .collect(),
            });
        }
    }
    out
}

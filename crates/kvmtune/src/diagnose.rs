//! `kvmtune diagnose`: the diagnosis rules on live statistics, a `stat --json` log or a
//! recorded `perf kvm stat`/`kvm_stat` report, shown with the domain's audit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{Cli, DiagnoseArgs};
use crate::output::human;
use crate::output::{Exit, Style, print_doc, print_text};
use kvmtune_core::profiles::Profiles;
use kvmtune_core::watch::Watch;
use kvmtune_kvmstat::diagnose::{Diagnosis, Limits, Severity, diagnose};
use kvmtune_kvmstat::exits::{ExitProfile, profiles};
use kvmtune_kvmstat::live::{VmFigures, profile};
use kvmtune_kvmstat::log::{merge_frames, read_log};
use kvmtune_rules::audit::Finding;

pub const DIAGNOSE_SCHEMA_VERSION: u32 = 2;

#[derive(Serialize)]
pub struct Judged {
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
    /// Findings of the domain's audit among the diagnosis's audit rules: the configuration
    /// that explains the numbers.
    pub audit: Vec<kvmtune_core::diagnosis::AuditLink>,
}

#[derive(Serialize)]
pub struct Subject {
    /// A domain name, or a report's table.
    pub subject: String,
    pub source: String,
    /// The numbers the rules judged.
    pub profile: ExitProfile,
    /// The scenario profile the domain's audit was judged with (absent without an audit).
    pub audit_profile: Option<String>,
    pub diagnoses: Vec<Judged>,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct Report {
    /// `live`, `log` or `perf-report`.
    pub mode: &'static str,
    pub input: String,
    pub limits: Limits,
    pub subjects: Vec<Subject>,
    /// Domains whose audit could not run, and why.
    pub audit_errors: Vec<String>,
}

fn summary(p: &ExitProfile) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &p.cpu {
        parts.push(format!(
            "host {:.0}%, guest {:.0}%, overhead {:.0}%",
            c.host_pct,
            c.guest_pct,
            (c.host_pct - c.guest_pct).max(0.0)
        ));
    }
    if p.total > 0.0 {
        let unit = if p.per_sec {
            " exits/s"
        } else {
            " exits sampled"
        };
        let top: Vec<String> = p
            .top
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {}", human(*v)))
            .collect();
        parts.push(format!("{}{unit} ({})", human(p.total), top.join(", ")));
    }
    parts.join("; ")
}

fn render(r: &Report, st: &Style) -> String {
    let mut s = String::new();
    for sub in &r.subjects {
        match &sub.audit_profile {
            Some(p) => {
                let _ = writeln!(s, "{} - profile {p}", sub.subject);
            }
            None => {
                let _ = writeln!(s, "{}", sub.subject);
            }
        }
        let _ = writeln!(s, "  {}", sub.source);
        let sm = summary(&sub.profile);
        if !sm.is_empty() {
            let _ = writeln!(s, "  {sm}");
        }
        for n in &sub.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        if sub.diagnoses.is_empty() {
            let _ = writeln!(s, "  nothing alarming");
        }
        for j in &sub.diagnoses {
            let d = &j.diagnosis;
            let first = format!("  {} ", st.severity(d.severity));
            s.push_str(&st.wrap(&first, 8, &format!("{}: {}", d.rule, d.title)));
            s.push_str(&st.wrap("        ", 8, &d.message));
            s.push_str(&st.wrap("        cause: ", 15, d.cause));
            s.push_str(&st.wrap("        fix: ", 13, &d.fix));
            if !j.audit.is_empty() {
                for a in &j.audit {
                    s.push_str(&st.wrap(
                        "        audit: ",
                        15,
                        &format!("{} ({}): {}", a.rule, a.severity, a.message),
                    ));
                }
            } else if !d.audit_rules.is_empty() {
                s.push_str(&st.wrap(
                    "        audit rules that check the fix: ",
                    15,
                    &d.audit_rules.join(", "),
                ));
            }
        }
        s.push('\n');
    }
    for e in &r.audit_errors {
        let _ = writeln!(s, "audit not run: {e}");
    }
    s
}

/// Sleep `secs` while watching; on a terminal (and never with --json) a progress line on
/// stderr counts down, then is erased.
fn wait_with_progress(secs: f64, domains: usize, json: bool) {
    use std::io::{IsTerminal as _, Write as _};
    let mut err = std::io::stderr();
    if json || !err.is_terminal() {
        std::thread::sleep(Duration::from_secs_f64(secs));
        return;
    }
    let t0 = Instant::now();
    loop {
        let left = secs - t0.elapsed().as_secs_f64();
        if left <= 0.0 {
            break;
        }
        let _ = write!(
            err,
            "\r\x1b[Kwatching {domains} domain{} for {secs:.0} s: {left:.0} s left",
            if domains == 1 { "" } else { "s" }
        );
        let _ = err.flush();
        std::thread::sleep(Duration::from_secs_f64(left.min(1.0)));
    }
    let _ = write!(err, "\r\x1b[K");
    let _ = err.flush();
}

/// Each domain's audit (its profile and findings) by domain name.
type Audits = BTreeMap<String, kvmtune_core::diagnosis::DomainAudit>;

/// The audits of the domains named: one inventory, one audit, each domain with its profile
/// (`--profile NAME=DOMAIN`, its metadata, `--profile NAME`, server).
fn audits(cli: &Cli, targets: &[String], profile: &[String]) -> Result<(Audits, Vec<String>)> {
    let profiles = Profiles::from_args(profile)?;
    let sel = kvmtune_core::inventory::Select {
        targets: targets.to_vec(),
        all: false,
        host_for_files: false,
    };
    match kvmtune_core::inventory::Inventory::gather(&crate::origin(cli), &sel) {
        Ok(inv) => {
            let profiles = profiles.with_metadata(&inv);
            let mut errors = inv.errors.clone();
            errors.extend(profiles.unmatched(&inv));
            Ok((
                kvmtune_core::diagnosis::findings_by_domain(&inv, &profiles),
                errors,
            ))
        }
        Err(e) => Ok((BTreeMap::new(), vec![e.to_string()])),
    }
}

fn link(ds: Vec<Diagnosis>, findings: Option<&Vec<Finding>>) -> Vec<Judged> {
    ds.into_iter()
        .map(|d| Judged {
            audit: kvmtune_core::diagnosis::links(&d.audit_rules, findings),
            diagnosis: d,
        })
        .collect()
}

/// `diagnose` on several hosts: each host's running domains watched at the same time,
/// grouped by host.
pub fn run_many(
    cli: &Cli,
    args: &DiagnoseArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    if args.perf_report.is_some() || args.log.is_some() {
        bail!("--perf-report and --log read one recording of one host: leave out -c/--hosts");
    }
    let args = args.clone();
    crate::multi::run(
        cli,
        hosts,
        "diagnose",
        Box::new(move |cli, h| {
            let mut a = args.clone();
            a.profile = crate::multi::host_profiles(&args.profile, h);
            run(cli, &a)
        }),
    )
}

pub fn run(cli: &Cli, args: &DiagnoseArgs) -> Result<Exit> {
    let lim = Limits::default();
    let mut subjects = Vec::new();
    let mut audit_errors = Vec::new();
    let (mode, input) = if let Some(path) = &args.perf_report {
        // a regular file under the input cap: a FIFO or /dev/zero is refused, not waited on
        let text = kvmtune_host::fsio::read_input_text(path)?;
        let rec = kvmtune_kvmstat::perf::parse(&text).with_context(|| {
            format!("{}: not a perf kvm stat or kvm_stat report", path.display())
        })?;
        let (found, errs) = if args.no_audit || args.targets.is_empty() {
            (BTreeMap::new(), Vec::new())
        } else {
            audits(cli, &args.targets, &args.profile)?
        };
        audit_errors = errs;
        // the report is about the one domain named, if any
        let all: Vec<Finding> = found
            .values()
            .flat_map(|a| a.findings.iter().cloned())
            .collect();
        let audit_profile = (found.len() == 1)
            .then(|| found.values().next().map(|a| a.profile.clone()))
            .flatten();
        let label = path.display().to_string();
        for p in profiles(&rec, &label) {
            let ds = diagnose(&p, &lim);
            let mut notes = Vec::new();
            if !p.per_sec {
                notes.push(
                    "a perf report has sample counts over an unknown time and no CPU figures: \
                     the halt-polling, overhead and NUMA rules need live statistics"
                        .to_string(),
                );
            }
            subjects.push(Subject {
                subject: p.source.clone(),
                source: format!("recorded report {label}"),
                diagnoses: link(ds, (!all.is_empty()).then_some(&all)),
                audit_profile: audit_profile.clone(),
                profile: p,
                notes,
            });
        }
        ("perf-report", label)
    } else {
        let from_bundle = if args.log.is_none() {
            cli.from.clone()
        } else {
            None
        };
        let (figs, input, mode): (Vec<(VmFigures, String)>, String, &'static str) =
            if let Some(path) = args.log.as_ref().or(from_bundle.as_ref()) {
                // --from BUNDLE without --log: the bundle's stat window (snapshot --stat-seconds)
                let frames = if from_bundle.is_some() {
                    crate::compare::bundle_frames(path)?
                } else {
                    read_log(path)?
                };
                let merged = merge_frames(&frames);
                for t in &args.targets {
                    if !merged.iter().any(|(f, _)| &f.name == t) {
                        bail!("{}: no figures of domain {t} in the log", path.display());
                    }
                }
                let figs = merged
                    .into_iter()
                    .filter(|(f, _)| args.targets.is_empty() || args.targets.contains(&f.name))
                    .map(|(f, n)| {
                        let src = format!("log {}: mean of {n} intervals", path.display());
                        (f, src)
                    })
                    .collect();
                (figs, path.display().to_string(), "log")
            } else {
                if !(args.duration.is_finite() && (0.5..=3600.0).contains(&args.duration)) {
                    bail!(
                        "--duration must be between 0.5 and 3600 seconds, not {}",
                        args.duration
                    );
                }
                let mut watch = Watch::open(&crate::origin(cli), args.targets.clone(), None)?;
                let first = watch.take()?;
                let t0 = Instant::now();
                wait_with_progress(args.duration, first.domains.len(), cli.json);
                let last = watch.take()?;
                let fr = watch.frame(&first, &last);
                let secs = t0.elapsed().as_secs_f64();
                for n in fr.vanished.iter().chain(&fr.restarted) {
                    audit_errors.push(format!(
                        "{n}: stopped or restarted while watched; not judged"
                    ));
                }
                let figs = fr
                    .domains
                    .into_iter()
                    .map(|f| (f, format!("live on {}: {secs:.1} s", cli.connect)))
                    .collect();
                (figs, cli.connect.clone(), "live")
            };
        let names: Vec<String> = figs.iter().map(|(f, _)| f.name.clone()).collect();
        let (found, errs) = if args.no_audit {
            (BTreeMap::new(), Vec::new())
        } else if mode == "log" && !args.targets.is_empty() {
            audits(cli, &args.targets, &args.profile)?
        } else if mode == "live" || from_bundle.is_some() {
            audits(cli, &names, &args.profile)?
        } else {
            (BTreeMap::new(), Vec::new())
        };
        audit_errors.extend(errs);
        for (f, src) in figs {
            let mut p = profile(&f, &src);
            // the domain type from the audit's inventory: a TCG domain has no KVM exits
            p.virt_type = found.get(&f.name).and_then(|a| a.virt_type.clone());
            let ds = diagnose(&p, &lim);
            let mut notes = f.notes.clone();
            if f.exits.is_none() {
                notes.push(
                    "no KVM exit counters (a TCG domain, or libvirt and QEMU too old for \
                     query-stats): only the CPU and NUMA rules apply"
                        .to_string(),
                );
            }
            subjects.push(Subject {
                subject: f.name.clone(),
                source: src,
                diagnoses: link(ds, found.get(&f.name).map(|a| &a.findings)),
                audit_profile: found.get(&f.name).map(|a| a.profile.clone()),
                profile: p,
                notes,
            });
        }
        (mode, input)
    };
    let any = subjects.iter().any(|s| {
        s.diagnoses
            .iter()
            .any(|d| d.diagnosis.severity == Severity::Warn)
    });
    let report = Report {
        mode,
        input,
        limits: lim,
        subjects,
        audit_errors,
    };
    if cli.json {
        print_doc("kvmtune.diagnose", DIAGNOSE_SCHEMA_VERSION, &report)?;
    } else {
        print_text(&render(&report, &Style::of(cli)))?;
    }
    Ok(if any { Exit::Findings } else { Exit::Clean })
}

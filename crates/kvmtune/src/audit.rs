//! `kvmtune audit`: judge domain XML (files, a libvirt connection or a bundle) against a
//! profile, print findings, and optionally write fixed XML or diffs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{AuditArgs, Cli, OutputFormat};
use crate::{Exit, print_json, print_text, use_color};
use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;
use kvmtune_rules::Profile;
use kvmtune_rules::audit::{self, Cx, DomainCaps, Finding, Peer, Severity};

pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// One domain to audit.
#[derive(Debug)]
pub struct Input {
    /// Where it came from: `file:PATH`, `libvirt:NAME`, `bundle:NAME`.
    pub origin: String,
    /// For files: the path (fixed XML is named after it).
    pub path: Option<PathBuf>,
    pub text: String,
    pub active: bool,
}

/// What the audit ran against.
pub struct Context {
    pub host: Option<Host>,
    pub host_origin: String,
    /// Domain capabilities by virt type (`kvm`, `qemu`).
    pub caps: BTreeMap<String, DomainCaps>,
    pub caps_origin: String,
}

#[derive(Serialize)]
pub struct DomainReport {
    pub name: String,
    pub origin: String,
    /// Highest severity among the findings.
    pub worst: Option<Severity>,
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub line_file: Option<PathBuf>,
}

#[derive(Serialize, Default)]
pub struct Counts {
    pub error: usize,
    pub warn: usize,
    pub info: usize,
}

#[derive(Serialize)]
pub struct Report {
    pub kind: &'static str,
    pub version: u32,
    pub profile: String,
    pub host: String,
    pub domain_capabilities: String,
    pub summary: Counts,
    pub domains: Vec<DomainReport>,
    /// Findings about the host as a whole (overcommit, hugepage demand, KSM).
    pub host_findings: Vec<Finding>,
    /// Inputs that could not be audited (malformed XML, not a domain).
    pub errors: Vec<String>,
}

/// Parsed inputs: the document and its view.
pub struct Parsed {
    pub input: Input,
    pub doc: Document,
    pub domain: Domain,
}

pub fn parse_inputs(inputs: Vec<Input>) -> (Vec<Parsed>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        match Domain::parse(&input.text) {
            Ok((doc, domain)) => ok.push(Parsed { input, doc, domain }),
            Err(e) => errors.push(format!("{}: {e}", input.origin)),
        }
    }
    (ok, errors)
}

/// Audit every parsed domain against the context.
pub fn audit_all(
    parsed: &[Parsed],
    ctx: &Context,
    profile: &Profile,
) -> (Vec<DomainReport>, Vec<Finding>) {
    let peers: Vec<Peer> = parsed
        .iter()
        .map(|p| Peer {
            domain: &p.domain,
            active: p.input.active,
        })
        .collect();
    let mut reports = Vec::new();
    for p in parsed {
        let cx = Cx {
            doc: &p.doc,
            d: &p.domain,
            profile,
            host: ctx.host.as_ref(),
            caps: ctx.caps.get(&p.domain.virt_type),
            peers: &peers,
        };
        let findings = audit::audit(&cx);
        reports.push(DomainReport {
            name: p.domain.name.clone(),
            origin: p.input.origin.clone(),
            worst: findings.iter().map(|f| f.severity).max(),
            findings,
            line_file: p.input.path.clone(),
        });
    }
    let host_findings = match parsed.first() {
        Some(p) => audit::audit_host(&Cx {
            doc: &p.doc,
            d: &p.domain,
            profile,
            host: ctx.host.as_ref(),
            caps: None,
            peers: &peers,
        }),
        None => Vec::new(),
    };
    reports.sort_by(|a, b| {
        b.worst
            .cmp(&a.worst)
            .then(b.findings.len().cmp(&a.findings.len()))
            .then(a.name.cmp(&b.name))
    });
    (reports, host_findings)
}

pub fn run(cli: &Cli, args: &AuditArgs) -> Result<Exit> {
    let profile = kvmtune_rules::load_profile(&args.profile)?;
    let fail_on = match &args.fail_on {
        Some(s) => Some(
            Severity::parse(s)
                .with_context(|| format!("--fail-on {s}: expected info, warn or error"))?,
        ),
        None => Some(Severity::Warn),
    };
    if args.fix && args.output.is_none() && !args.diff {
        bail!("--fix needs -o DIR (write the fixed XML) or --diff (print the changes)");
    }
    let (inputs, ctx, mut errors) = crate::audit_inputs::gather(cli, args)?;
    if inputs.is_empty() && errors.is_empty() {
        bail!("nothing to audit: give XML files, domain names or --all");
    }
    let (parsed, parse_errors) = parse_inputs(inputs);
    errors.extend(parse_errors);
    let (domains, host_findings) = audit_all(&parsed, &ctx, &profile);
    let mut summary = Counts::default();
    for f in domains
        .iter()
        .flat_map(|d| &d.findings)
        .chain(&host_findings)
    {
        match f.severity {
            Severity::Error => summary.error += 1,
            Severity::Warn => summary.warn += 1,
            Severity::Info => summary.info += 1,
        }
    }
    let report = Report {
        kind: "kvmtune.audit",
        version: AUDIT_SCHEMA_VERSION,
        profile: profile.name.clone(),
        host: ctx.host_origin.clone(),
        domain_capabilities: ctx.caps_origin.clone(),
        summary,
        domains,
        host_findings,
        errors,
    };

    let mut fixed = Vec::new();
    if args.fix {
        for p in &parsed {
            let Some(r) = report.domains.iter().find(|r| r.origin == p.input.origin) else {
                continue;
            };
            let edits: Vec<audit::Edit> = r
                .findings
                .iter()
                .filter_map(|f| f.fix.as_ref())
                .flat_map(|f| f.edits.clone())
                .collect();
            let mut doc = p.doc.clone();
            audit::apply(&mut doc, &edits);
            fixed.push((p, doc.serialize()));
        }
        if let Some(dir) = &args.output {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // two inputs must not write the same file
            let mut seen = std::collections::BTreeMap::new();
            for (p, _) in &fixed {
                if let Some(other) = seen.insert(out_name(p), &p.input.origin) {
                    bail!(
                        "-o {}: {} and {} would both be written as {}",
                        dir.display(),
                        other,
                        p.input.origin,
                        out_name(p)
                    );
                }
            }
            // write everything to temporaries first, then rename: a failed write leaves
            // nothing behind
            let mut staged = Vec::new();
            for (p, text) in &fixed {
                let name = out_name(p);
                let dest = dir.join(&name);
                let tmp = dir.join(format!(".{name}.tmp"));
                if let Err(e) =
                    std::fs::write(&tmp, text).and_then(|_| std::fs::File::open(&tmp)?.sync_all())
                {
                    for (t, _) in &staged {
                        let _ = std::fs::remove_file(t);
                    }
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
                }
                staged.push((tmp, dest));
            }
            for (tmp, dest) in &staged {
                std::fs::rename(tmp, dest)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
            }
        }
    }

    let diffs: Vec<String> = if args.diff {
        fixed
            .iter()
            .filter(|(p, text)| &p.input.text != text)
            .map(|(p, text)| {
                let name = p
                    .input
                    .path
                    .as_ref()
                    .map(|x| x.display().to_string())
                    .unwrap_or_else(|| format!("{}.xml", p.domain.name));
                similar::TextDiff::from_lines(p.input.text.as_str(), text.as_str())
                    .unified_diff()
                    .context_radius(3)
                    .header(
                        &format!("a/{}", name.trim_start_matches('/')),
                        &format!("b/{}", name.trim_start_matches('/')),
                    )
                    .to_string()
            })
            .collect()
    } else {
        Vec::new()
    };

    let format = if cli.json {
        OutputFormat::Json
    } else {
        args.format
    };
    match format {
        OutputFormat::Json => {
            if args.diff {
                let mut v = serde_json::to_value(&report).context("cannot encode the report")?;
                v["diffs"] = serde_json::json!(diffs);
                print_json(&v)?;
            } else {
                print_json(&report)?;
            }
        }
        OutputFormat::Sarif => print_json(&crate::sarif::sarif(&report))?,
        OutputFormat::Text => {
            if args.diff {
                print_text(&diffs.concat())?;
            } else {
                print_text(&render(&report, use_color(cli), cli.verbose > 0))?;
            }
        }
    }
    if let (Some(dir), false) = (&args.output, cli.json || args.format != OutputFormat::Text) {
        eprintln!(
            "kvmtune: wrote {} fixed domain XML file(s) to {}",
            fixed.len(),
            dir.display()
        );
    }
    for e in &report.errors {
        eprintln!("kvmtune: error: {e}");
    }
    if !report.errors.is_empty() {
        return Ok(Exit::Error);
    }
    let worst = report
        .domains
        .iter()
        .flat_map(|d| &d.findings)
        .chain(&report.host_findings)
        .map(|f| f.severity)
        .max();
    Ok(match (worst, fail_on) {
        (Some(w), Some(t)) if w >= t => Exit::Findings,
        _ => Exit::Clean,
    })
}

fn out_name(p: &Parsed) -> String {
    match &p.input.path {
        Some(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "domain.xml".into()),
        None => format!("{}.xml", sanitize(&p.domain.name)),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sev_label(s: Severity, color: bool) -> String {
    let (t, c) = match s {
        Severity::Error => ("ERROR", "31;1"),
        Severity::Warn => ("WARN ", "33;1"),
        Severity::Info => ("INFO ", "36"),
    };
    if color {
        format!("\x1b[{c}m{t}\x1b[0m")
    } else {
        t.to_string()
    }
}

fn first_sentence(s: &str) -> &str {
    match s.find(". ") {
        Some(i) => &s[..=i],
        None => s,
    }
}

fn render_finding(out: &mut String, f: &Finding, color: bool, verbose: bool) {
    let line = f
        .evidence
        .first()
        .and_then(|e| e.line)
        .map(|l| format!("  (line {l})"))
        .unwrap_or_default();
    let mark = if f.suspect { " [suspected]" } else { "" };
    let _ = writeln!(
        out,
        "  {} {:<22} {}{mark}{line}",
        sev_label(f.severity, color),
        f.rule,
        f.message
    );
    let pad = "        ";
    if verbose {
        for e in &f.evidence {
            let _ = writeln!(
                out,
                "{pad}  at {}{}: {}",
                e.path,
                e.line.map(|l| format!(" line {l}")).unwrap_or_default(),
                e.value
            );
        }
        let _ = writeln!(out, "{pad}  why: {}", f.why);
    } else {
        let _ = writeln!(out, "{pad}  why: {}", first_sentence(f.why));
    }
    match &f.fix {
        Some(fix) => {
            let applies = match fix.applies {
                audit::Applies::Live => "live",
                audit::Applies::NextBoot => "next boot",
            };
            let _ = writeln!(
                out,
                "{pad}  fix: {} ({applies}): {}",
                fix.summary, fix.command
            );
            if verbose {
                for e in &fix.edits {
                    let _ = writeln!(out, "{pad}       {}", e.describe());
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "{pad}  fix: {}",
                kvmtune_rules::audit::rules()
                    .iter()
                    .find(|r| r.meta.id == f.rule)
                    .map(|r| r.meta.fix)
                    .unwrap_or("")
            );
        }
    }
    if verbose {
        let _ = writeln!(out, "{pad}  risk: {}", f.risk);
    }
    if let Some(a) = &f.assumed {
        let _ = writeln!(out, "{pad}  assumed: {a}");
    }
}

pub fn render(r: &Report, color: bool, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kvmtune audit: profile {}, host facts: {}, domain capabilities: {}",
        r.profile, r.host, r.domain_capabilities
    );
    for d in &r.domains {
        let _ = writeln!(out);
        let counts = if d.findings.is_empty() {
            "clean".to_string()
        } else {
            format!("{} finding(s)", d.findings.len())
        };
        let _ = writeln!(out, "{} ({}) - {counts}", d.name, d.origin);
        for f in &d.findings {
            render_finding(&mut out, f, color, verbose);
        }
    }
    if !r.host_findings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "host");
        for f in &r.host_findings {
            render_finding(&mut out, f, color, verbose);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} domain(s): {} error, {} warn, {} info{}",
        r.domains.len(),
        r.summary.error,
        r.summary.warn,
        r.summary.info,
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; {} input(s) could not be read", r.errors.len())
        }
    );
    out
}

/// Is this argument a file rather than a domain name?
pub fn is_file_arg(arg: &str) -> bool {
    Path::new(arg).exists() || arg.ends_with(".xml") || arg.contains('/')
}

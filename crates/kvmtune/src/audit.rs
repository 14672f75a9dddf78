//! `kvmtune audit`: judge domain XML (files, a libvirt connection or a bundle) against a
//! profile, print findings, and optionally write fixed XML or diffs.

use anyhow::{Context as _, Result, bail};

use crate::cli::{AuditArgs, Cli, OutputFormat};
use crate::output::{self, Exit, Style, print_text};
use kvmtune_core::audit::{self as core_audit, AuditReport, KIND, VERSION};
use kvmtune_core::inventory::{Inventory, Select, is_file_arg};
use kvmtune_core::profiles::Profiles;
use kvmtune_rules::audit::{Applies, Finding, Severity};

pub fn run(cli: &Cli, args: &AuditArgs) -> Result<Exit> {
    let profiles = Profiles::from_args(&args.profile)?;
    let fail_on = match &args.fail_on {
        Some(s) => Severity::parse(s)
            .with_context(|| format!("--fail-on {s}: expected info, warn or error"))?,
        None => Severity::Warn,
    };
    if args.output.as_deref().is_some_and(output::is_stdout) {
        bail!("-o takes a directory for the fixed XML files; --diff prints the changes instead");
    }
    if args.fix && args.output.is_none() && !args.diff {
        bail!("--fix needs -o DIR (write the fixed XML) or --diff (print the changes)");
    }
    let sel = Select {
        targets: args.targets.clone(),
        all: args.all,
        host_for_files: args.host,
    };
    let origin = crate::origin(cli);
    // XML files only, nothing to fix: one file at a time (memory flat in the number of
    // files); anything else gathers the inventory first
    let streaming = origin.from.is_none()
        && !args.all
        && !args.fix
        && !args.diff
        && !args.targets.is_empty()
        && args.targets.iter().all(|t| is_file_arg(t));
    let (mut report, inv) = if streaming {
        let (host, host_origin) = if args.host || origin.root.is_some() {
            let (host, from) = origin.host_facts()?;
            (Some(host), from)
        } else {
            (None, kvmtune_core::inventory::NO_HOST_FOR_FILES.to_string())
        };
        let report = core_audit::audit_files(&args.targets, host.as_ref(), host_origin, profiles);
        (report, None)
    } else {
        let inv = Inventory::gather(&origin, &sel)?;
        // --all over a connection or bundle without domains: an empty report, not an error
        if inv.domains.is_empty() && inv.errors.is_empty() && !args.all {
            bail!("nothing to audit: give XML files, domain names or --all");
        }
        let profiles = profiles.with_metadata(&inv);
        (core_audit::audit_with(&inv, &profiles), Some(inv))
    };
    if !args.secrets {
        report.redact();
    }

    let fixed = match (&inv, args.fix) {
        (Some(inv), true) => core_audit::fixed(inv, &report, &[]),
        _ => Vec::new(),
    };
    if let Some(dir) = &args.output {
        kvmtune_host::fsio::create_dir(dir, kvmtune_host::fsio::PRIVATE_DIR)?;
        if let Some((a, b, name)) = core_audit::name_clash(&fixed) {
            bail!(
                "-o {}: {a} and {b} would both be written as {name}",
                dir.display()
            );
        }
        // every file is staged before any is renamed: a failed write leaves nothing behind
        kvmtune_host::fsio::write_all_atomic(
            &core_audit::output_paths(dir, &fixed),
            kvmtune_host::fsio::PRIVATE_FILE,
        )?;
    }
    let diffs: Vec<String> = if args.diff {
        fixed
            .iter()
            .filter(|f| f.changed())
            .map(|f| {
                if args.secrets {
                    f.diff()
                } else {
                    f.redacted_diff()
                }
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
                output::print_doc(KIND, VERSION, &v)?;
            } else {
                output::print_doc(KIND, VERSION, &report)?;
            }
        }
        OutputFormat::Sarif => crate::print_json(&crate::sarif::sarif(&report))?,
        OutputFormat::Text => {
            if args.diff {
                print_text(&Style::of(cli).diff(&diffs.concat()))?;
            } else {
                print_text(&render(&report, &Style::of(cli)))?;
            }
        }
    }
    if let (Some(dir), false) = (&args.output, cli.json || args.format != OutputFormat::Text) {
        output::note(&format!(
            "wrote {} fixed domain XML file(s) to {}",
            fixed.len(),
            dir.display()
        ));
    }
    for e in &report.errors {
        output::error(e);
    }
    if !report.errors.is_empty() {
        return Ok(Exit::Error);
    }
    Ok(Exit::findings_if(
        report.worst().is_some_and(|w| w >= fail_on),
    ))
}

/// The kind of the audit of several hosts (docs/json.md).
pub const FLEET_KIND: &str = "kvmtune.fleet-audit";
pub const FLEET_VERSION: u32 = 1;

/// Add `"host": HOST` to every finding of an audit document body.
pub fn tag_findings(v: &mut serde_json::Value, host: &str) {
    let tag = |list: Option<&mut serde_json::Value>| {
        if let Some(serde_json::Value::Array(a)) = list {
            for f in a {
                if let serde_json::Value::Object(o) = f {
                    o.insert("host".into(), serde_json::json!(host));
                }
            }
        }
    };
    if let Some(serde_json::Value::Array(ds)) = v.get_mut("domains") {
        for d in ds {
            tag(d.get_mut("findings"));
        }
    }
    tag(v.get_mut("host_findings"));
}

/// `kvmtune audit` over several hosts: every domain of every host, each host with its
/// profile; the fleet table, then each host's audit.
pub fn run_many(
    cli: &Cli,
    args: &AuditArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    use crate::fleet;
    // the arguments are checked before any host is contacted
    Profiles::from_args(&args.profile)?;
    let fail_on = fleet::fail_on(args.fail_on.as_deref())?;
    if !args.targets.is_empty() {
        bail!(
            "with several hosts, audit takes no FILE|DOMAIN: every domain of every host is audited"
        );
    }
    if args.fix || args.host {
        bail!("--fix and --host work on one host; audit one host (-c URI) for them");
    }
    let outcomes = fleet::gather(cli, &hosts, args.profile.clone(), true, None);
    let mut rows = fleet::rows(&hosts, &outcomes);
    let mut reports: Vec<Option<AuditReport>> = outcomes
        .into_iter()
        .map(|o| o.result.ok().and_then(|a| a.survey.audit))
        .collect();
    if !args.secrets {
        reports.iter_mut().flatten().for_each(AuditReport::redact);
    }
    // NAME=DOMAIN for a domain no host has is an error, as with one host
    let mut errors = Vec::new();
    for a in &args.profile {
        if let Some((name, dom)) = a.split_once('=')
            && !rows
                .iter()
                .filter_map(|r| r.figures.as_ref())
                .any(|f| f.domains.iter().any(|d| d.name == dom))
        {
            errors.push(format!(
                "--profile {name}={dom}: no domain {dom} on any host"
            ));
        }
    }
    let findings = reports
        .iter()
        .flatten()
        .any(|r| r.worst().is_some_and(|w| w >= fail_on));
    let format = if cli.json {
        OutputFormat::Json
    } else {
        args.format
    };
    match format {
        OutputFormat::Json => {
            let mut list = Vec::new();
            for (row, rep) in rows.iter().zip(&reports) {
                let report = match rep {
                    Some(r) => {
                        let mut v = serde_json::to_value(r).context("cannot encode the report")?;
                        tag_findings(&mut v, &row.host);
                        v
                    }
                    None => serde_json::Value::Null,
                };
                list.push(serde_json::json!({
                    "host": row.host, "uri": row.uri, "ok": row.ok, "error": row.error,
                    "report": report,
                }));
            }
            output::print_doc(
                FLEET_KIND,
                FLEET_VERSION,
                &serde_json::json!({
                    "summary": fleet::summary(&rows),
                    "fleet": rows,
                    "errors": errors,
                    "hosts": list,
                }),
            )?;
        }
        OutputFormat::Sarif => {
            let list: Vec<(&str, &AuditReport)> = rows
                .iter()
                .zip(&reports)
                .filter_map(|(row, r)| r.as_ref().map(|r| (row.host.as_str(), r)))
                .collect();
            crate::print_json(&crate::sarif::sarif_hosts(&list))?;
        }
        OutputFormat::Text => {
            let st = Style::of(cli);
            let mut out = fleet::render(&rows, &st);
            for (row, rep) in rows.iter().zip(&reports) {
                out.push('\n');
                out.push_str(&st.bold(&format!(
                    "== {} ({}) ==",
                    output::safe(&row.host),
                    output::safe(&row.uri)
                )));
                out.push('\n');
                match rep {
                    Some(r) => out.push_str(&render(r, &st)),
                    None => out.push_str(&format!(
                        "error: {}\n",
                        output::one_line(row.error.as_deref().unwrap_or("failed"))
                    )),
                }
            }
            print_text(&out)?;
        }
    }
    for (row, rep) in rows.iter().zip(&reports) {
        for e in rep.iter().flat_map(|r| &r.errors) {
            output::error(&format!("{}: {e}", row.host));
        }
    }
    for e in &errors {
        output::error(e);
    }
    // a host whose report has errors counts as a failed host
    for (row, rep) in rows.iter_mut().zip(&reports) {
        if let Some(r) = rep {
            row.input_errors = r.errors.clone();
        }
    }
    let code = fleet::exit(&rows, findings || !errors.is_empty());
    if code == Exit::Error {
        output::error(&format!("no host answered ({} tried)", rows.len()));
    }
    Ok(code)
}

const PAD: usize = 10;

fn render_finding(out: &mut String, f: &Finding, st: &Style) {
    let line = f
        .evidence
        .first()
        .and_then(|e| e.line)
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    let mark = if f.suspect { " [suspected]" } else { "" };
    let first = format!("  {} {} ", st.severity(f.severity), f.rule);
    out.push_str(&st.wrap(
        &first,
        PAD,
        &format!("{}{mark}{line}", output::safe(&f.message)),
    ));
    let pad = " ".repeat(PAD);
    let field = |out: &mut String, label: &str, text: &str| {
        let first = format!("{pad}{label}: ");
        out.push_str(&st.wrap(&first, PAD + label.len() + 2, text));
    };
    if st.verbose {
        for e in &f.evidence {
            let at = format!(
                "{}{}: {}",
                e.path,
                e.line.map(|l| format!(" line {l}")).unwrap_or_default(),
                output::safe(&e.value)
            );
            field(out, "at", &at);
        }
    }
    // the whole reason: its first sentence alone often says nothing (pin-emulator's)
    field(out, "why", f.why);
    match &f.fix {
        Some(fix) => {
            let applies = match fix.applies {
                Applies::Live => "live",
                Applies::NextBoot => "next boot",
            };
            field(
                out,
                "fix",
                &format!(
                    "[{}] {} ({applies}): {}",
                    fix.class,
                    fix.summary,
                    output::safe(&fix.command)
                ),
            );
            if st.verbose {
                for e in &fix.edits {
                    out.push_str(&st.wrap(&format!("{pad}     "), PAD + 5, &e.describe()));
                }
            }
        }
        None => {
            let generic = kvmtune_rules::audit::rules()
                .iter()
                .find(|r| r.meta.id == f.rule)
                .map(|r| format!("[{}] {}", r.meta.class, r.meta.fix))
                .unwrap_or_default();
            field(out, "fix", &generic);
        }
    }
    if st.verbose {
        field(
            out,
            "risk",
            f.fix.as_ref().map_or(f.risk, |x| x.risk.as_str()),
        );
    }
    if let Some(a) = &f.assumed {
        field(out, "assumed", a);
    }
}

/// The audit as text, wrapped at the style's width.
pub fn render(r: &AuditReport, st: &Style) -> String {
    let mut out = String::new();
    out.push_str(&st.wrap(
        "",
        2,
        &format!(
            "kvmtune audit: profile {}, host facts: {}, domain capabilities: {}",
            r.profile, r.host, r.domain_capabilities
        ),
    ));
    for d in &r.domains {
        out.push('\n');
        let counts = if d.findings.is_empty() {
            "clean".to_string()
        } else {
            format!("{} finding(s)", d.findings.len())
        };
        out.push_str(&st.wrap(
            "",
            2,
            &format!(
                "{} ({}) - profile {} - {counts}",
                st.bold(&output::safe(&d.name)),
                output::safe(&d.origin),
                output::safe(&d.profile)
            ),
        ));
        for f in &d.findings {
            render_finding(&mut out, f, st);
        }
    }
    if !r.host_findings.is_empty() {
        out.push('\n');
        out.push_str(&st.bold("host"));
        out.push('\n');
        for f in &r.host_findings {
            render_finding(&mut out, f, st);
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "{} domain(s): {} error, {} warn, {} info{}\n",
        r.domains.len(),
        r.summary.error,
        r.summary.warn,
        r.summary.info,
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; {} input(s) could not be read", r.errors.len())
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmtune_core::inventory::Origin;

    #[test]
    fn the_corpus_audit_reads_cleanly_at_80_columns() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
        let mut targets = Vec::new();
        for (sub, most) in [("wild-domains", 1000), ("libvirt-domains", 300)] {
            let mut files: Vec<String> = std::fs::read_dir(corpus.join(sub))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".xml"))
                .collect();
            files.sort();
            targets.extend(files.into_iter().take(most));
        }
        assert!(!targets.is_empty());
        let inv = Inventory::gather(
            &Origin::local("test:///default"),
            &Select {
                targets,
                ..Select::default()
            },
        )
        .unwrap();
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let text = render(&core_audit::audit(&inv, &profile), &Style::plain());
        let mut findings = 0;
        for l in text.lines() {
            // a line may only run over when it is one unbreakable word after its indent
            if l.chars().count() > 80 {
                assert!(
                    l.trim().split(' ').count() <= 2,
                    "over 80 columns with a place to break: {l:?}"
                );
            }
            if l.starts_with("  WARN ") || l.starts_with("  ERROR ") {
                findings += 1;
            }
        }
        assert!(findings > 0, "{text}");
    }
}

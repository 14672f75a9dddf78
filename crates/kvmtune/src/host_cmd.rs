//! `kvmtune host` and `host --check`: the host as KVM sees it, and its checks.

use anyhow::Result;
use serde::Serialize;

use crate::cli::{Cli, HostArgs};
use crate::output::{self, Exit, Style, print_text};
use kvmtune_profile::Counts;
use kvmtune_rules::{Check, Verdict, check_host};

pub const CHECK_KIND: &str = "kvmtune.host-check";
pub const CHECK_VERSION: u32 = 3;

#[derive(Serialize)]
struct CheckReport<'a> {
    profile: &'a str,
    source: String,
    /// Checks by severity (WARN is warn, FAIL is error), and how many passed.
    summary: Counts,
    passed: usize,
    /// Checks that could not be judged (verdict UNKNOWN: a host read over a remote
    /// connection, whose facts libvirt does not report).
    not_judged: usize,
    checks: &'a [Check],
}

pub fn run(cli: &Cli, args: &HostArgs) -> Result<Exit> {
    let (host, source) = crate::origin(cli).host_facts()?;
    let style = Style::of(cli);
    if !args.check {
        if cli.json {
            // the host model carries its own kind/version fields
            crate::print_json(&host)?;
        } else {
            print_text(&crate::render::host(
                &host,
                &source,
                style.color,
                style.verbose,
            ))?;
        }
        return Ok(Exit::Clean);
    }
    let profile = kvmtune_rules::load_profile(&args.profile)?;
    let checks = check_host(&host, &profile);
    let summary = Counts::of(checks.iter().filter_map(|c| c.verdict.severity()));
    let passed = checks.iter().filter(|c| c.verdict == Verdict::Pass).count();
    let not_judged = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Unknown)
        .count();
    let findings = summary.warn + summary.error > 0;
    if cli.json {
        output::print_doc(
            CHECK_KIND,
            CHECK_VERSION,
            &CheckReport {
                profile: &profile.name,
                source: source.clone(),
                summary,
                passed,
                not_judged,
                checks: &checks,
            },
        )?;
    } else {
        print_text(&crate::render::checks(
            &checks,
            &profile.name,
            &source,
            &style,
        ))?;
    }
    Ok(Exit::findings_if(findings))
}

/// The kind of `host --check` over several hosts (docs/json.md).
pub const FLEET_CHECK_KIND: &str = "kvmtune.fleet-host-check";
/// The kind of `host` over several hosts.
pub const FLEET_HOST_KIND: &str = "kvmtune.fleet-host";
pub const FLEET_VERSION: u32 = 1;

/// `kvmtune host` (and `--check`) over several hosts: the fleet table (with each host's
/// audit for --check), then each host's view or checks under a header line.
pub fn run_many(
    cli: &Cli,
    args: &HostArgs,
    hosts: Vec<kvmtune_core::fleet::HostEntry>,
) -> Result<Exit> {
    use crate::fleet;
    kvmtune_rules::load_profile(&args.profile)?;
    let check = args.check.then(|| args.profile.clone());
    let outcomes = fleet::gather(cli, &hosts, vec![args.profile.clone()], args.check, check);
    let rows = fleet::rows(&hosts, &outcomes);
    let style = Style::of(cli);
    let mut findings = false;
    let mut docs = Vec::new();
    let mut text = fleet::render(&rows, &style);
    for (row, o) in rows.iter().zip(&outcomes) {
        text.push('\n');
        text.push_str(&style.bold(&format!(
            "== {} ({}) ==",
            output::safe(&row.host),
            output::safe(&row.uri)
        )));
        text.push('\n');
        let a = match &o.result {
            Ok(a) => a,
            Err(e) => {
                text.push_str(&format!("error: {}\n", output::one_line(e)));
                docs.push(serde_json::json!({
                    "host": row.host, "uri": row.uri, "ok": false, "error": e, "report": null,
                }));
                continue;
            }
        };
        let Some(host) = a.survey.inventory.host.as_ref() else {
            continue;
        };
        let report = match &a.checks {
            None => {
                text.push_str(&crate::render::host(
                    host,
                    &a.source,
                    style.color,
                    style.verbose,
                ));
                serde_json::to_value(host)?
            }
            Some((profile, checks)) => {
                let summary = Counts::of(checks.iter().filter_map(|c| c.verdict.severity()));
                findings |= summary.warn + summary.error > 0;
                text.push_str(&crate::render::checks(checks, profile, &a.source, &style));
                let mut v = serde_json::to_value(CheckReport {
                    profile,
                    source: a.source.clone(),
                    summary,
                    passed: checks.iter().filter(|c| c.verdict == Verdict::Pass).count(),
                    not_judged: checks
                        .iter()
                        .filter(|c| c.verdict == Verdict::Unknown)
                        .count(),
                    checks,
                })?;
                if let Some(serde_json::Value::Array(cs)) = v.get_mut("checks") {
                    for c in cs {
                        c["host"] = serde_json::json!(row.host);
                    }
                }
                v
            }
        };
        docs.push(serde_json::json!({
            "host": row.host, "uri": row.uri, "ok": true, "error": null, "report": report,
        }));
    }
    if cli.json {
        output::print_doc(
            if args.check {
                FLEET_CHECK_KIND
            } else {
                FLEET_HOST_KIND
            },
            FLEET_VERSION,
            &serde_json::json!({
                "summary": fleet::summary(&rows),
                "fleet": rows,
                "hosts": docs,
            }),
        )?;
    } else {
        print_text(&text)?;
    }
    // the audit's findings are in the table; the exit follows the checks, as with one host
    let code = fleet::exit(&rows, findings);
    if code == Exit::Error {
        output::error(&format!("no host answered ({} tried)", rows.len()));
    }
    Ok(code)
}

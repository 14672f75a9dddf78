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

//! `kvmtune rules` and `kvmtune explain ID`: every rule of every kind (audit rules, host
//! checks, diagnosis rules) from the one catalog.

use kvmtune_rules::audit::FixClass;
use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::cli::Cli;
use crate::output::{Exit, Style, print_doc, print_text};
use kvmtune_core::catalog::{self, Kind, RuleInfo};
use kvmtune_profile::Level;

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    rule: RuleInfo,
    /// The level in the profile asked for (audit rules only).
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<Level>,
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Off => "off",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

pub fn list(cli: &Cli, profile: Option<&str>) -> Result<Exit> {
    let profile = profile.map(kvmtune_rules::load_profile).transpose()?;
    let all = catalog::all();
    if cli.json {
        let rules: Vec<Listed> = all
            .into_iter()
            .map(|r| Listed {
                level: profile.as_ref().and_then(|p| catalog::level_in(&r, p)),
                rule: r,
            })
            .collect();
        print_doc("kvmtune.rules", 2, &serde_json::json!({ "rules": rules }))?;
        return Ok(Exit::Clean);
    }
    let st = Style::of(cli);
    let mut s = String::new();
    for (kind, head) in [
        (Kind::Audit, "Audit rules (kvmtune audit)"),
        (Kind::HostCheck, "Host checks (kvmtune host --check)"),
        (Kind::Diagnosis, "Diagnosis rules (kvmtune diagnose)"),
    ] {
        let _ = writeln!(s, "{}", st.bold(head));
        for r in all.iter().filter(|r| r.kind == kind) {
            let lvl = match (&profile, r.severity) {
                (Some(p), _) if kind == Kind::Audit => catalog::level_in(r, p)
                    .map(level_word)
                    .unwrap_or("-")
                    .to_string(),
                (_, Some(sev)) => sev.as_str().to_string(),
                (_, None) => "-".to_string(),
            };
            let first = format!("  {:<24} {:<6} ", r.id, lvl);
            s.push_str(&st.wrap(&first, 34, r.title));
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "{} rules; `kvmtune explain ID` for one, docs/rules.md for all.",
        all.len()
    );
    print_text(&s)?;
    Ok(Exit::Clean)
}

pub fn explain(cli: &Cli, id: &str) -> Result<Exit> {
    let Some(r) = catalog::find(id) else {
        let near = catalog::near(id);
        if near.is_empty() {
            bail!("no rule {id} (see `kvmtune rules`)");
        }
        bail!("no rule {id}; did you mean {}?", near.join(", "));
    };
    if cli.json {
        print_doc("kvmtune.rule", 1, &r)?;
        return Ok(Exit::Clean);
    }
    let st = Style::of(cli);
    let mut s = String::new();
    let sev = r.severity.map(|x| x.as_str()).unwrap_or("by finding");
    s.push_str(&st.wrap(
        "",
        2,
        &format!("{} ({}, {sev}): {}", r.id, r.kind.as_str(), r.title),
    ));
    s.push('\n');
    if !r.enabled_in.is_empty() {
        s.push_str(&st.wrap("Profiles: ", 10, &r.enabled_in.join(", ")));
    }
    if let Some(n) = r.needs_host {
        s.push_str(&format!(
            "Needs host facts: {}\n",
            if n { "yes" } else { "no" }
        ));
    }
    if let Some(v) = r.virt_host_validate {
        s.push_str(&format!(
            "Also checked by virt-host-validate: {}\n",
            if v { "yes" } else { "no" }
        ));
    }
    s.push('\n');
    s.push_str(&st.wrap("Why:    ", 8, r.why));
    s.push('\n');
    s.push_str(&st.wrap("Fix:    ", 8, r.fix));
    if let Some(c) = r.class {
        s.push_str(&st.wrap(
            "Class:  ",
            8,
            &if c == FixClass::Safe {
                format!("{c}: {} (`kvmtune apply` applies it by default)", c.meaning())
            } else {
                format!(
                    "{c}: {} (`kvmtune apply` includes it with --class {c} or --rule {}; a fix may declare another class where the guest decides it)",
                    c.meaning(),
                    r.id
                )
            },
        ));
    }
    s.push('\n');
    if let Some(risk) = r.risk {
        s.push_str(&st.wrap("Risk:   ", 8, risk));
        s.push('\n');
    }
    if !r.audit_rules.is_empty() {
        s.push_str(&st.wrap(
            "Audit rules that check the fix: ",
            8,
            &r.audit_rules.join(", "),
        ));
        s.push('\n');
    }
    s.push_str(&st.wrap("Source: ", 8, r.source));
    print_text(&s)?;
    Ok(Exit::Clean)
}

//! `kvmtune rules` and `kvmtune explain RULE`.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::json;

use crate::{Exit, print_json, print_text};
use kvmtune_rules::audit::{Level, docs::profiles_of, level, rules};

pub fn list(json_out: bool, profile: Option<&str>) -> Result<Exit> {
    let profile = profile.map(kvmtune_rules::load_profile).transpose()?;
    let all = rules();
    if json_out {
        let v: Vec<_> = all
            .iter()
            .map(|r| {
                let mut o = serde_json::to_value(&r.meta).unwrap_or_default();
                o["enabled_in"] = json!(profiles_of(&r.meta));
                if let Some(p) = &profile {
                    o["level"] = json!(format!("{:?}", level(&r.meta, p)).to_lowercase());
                }
                o
            })
            .collect();
        print_json(&json!({"kind": "kvmtune.rules", "version": 1, "rules": v}))?;
        return Ok(Exit::Clean);
    }
    let mut s = String::new();
    for r in all {
        let lvl = match &profile {
            Some(p) => match level(&r.meta, p) {
                Level::Off => "off".to_string(),
                l => format!("{l:?}").to_lowercase(),
            },
            None => r.meta.severity.as_str().to_string(),
        };
        let _ = writeln!(s, "{:<24} {:<6} {}", r.meta.id, lvl, r.meta.title);
    }
    let _ = writeln!(
        s,
        "\n{} rules; `kvmtune explain RULE` for one, docs/rules.md for all.",
        all.len()
    );
    print_text(&s)?;
    Ok(Exit::Clean)
}

pub fn explain(json_out: bool, id: &str) -> Result<Exit> {
    let all = rules();
    let Some(r) = all.iter().find(|r| r.meta.id == id) else {
        let near: Vec<&str> = all
            .iter()
            .map(|r| r.meta.id)
            .filter(|x| x.contains(id) || id.contains(x))
            .collect();
        if near.is_empty() {
            bail!("no rule {id} (see `kvmtune rules`)");
        }
        bail!("no rule {id}; did you mean {}?", near.join(", "));
    };
    let m = &r.meta;
    if json_out {
        let mut o = serde_json::to_value(m)?;
        o["enabled_in"] = json!(profiles_of(m));
        print_json(&o)?;
        return Ok(Exit::Clean);
    }
    let mut s = String::new();
    let _ = writeln!(s, "{} ({}): {}\n", m.id, m.severity.as_str(), m.title);
    let _ = writeln!(s, "Profiles: {}", profiles_of(m).join(", "));
    let _ = writeln!(
        s,
        "Needs host facts: {}\n",
        if m.needs_host { "yes" } else { "no" }
    );
    let _ = writeln!(s, "Why:    {}\n", m.why);
    let _ = writeln!(s, "Fix:    {}\n", m.fix);
    let _ = writeln!(s, "Risk:   {}\n", m.risk);
    let _ = writeln!(s, "Source: {}", m.source);
    print_text(&s)?;
    Ok(Exit::Clean)
}

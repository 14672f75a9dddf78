//! docs/rules.md, generated from the rule definitions (a test keeps the file current).

use super::{Level, level, rules};
use kvmtune_profile::{BUILTIN, Profile};
use std::fmt::Write as _;

/// The profiles a rule is on in, with the level when it differs from the default.
pub fn profiles_of(meta: &super::Meta) -> Vec<String> {
    let mut v = Vec::new();
    for (name, _) in BUILTIN {
        let Ok(p) = Profile::load(name) else { continue };
        match level(meta, &p) {
            Level::Off => {}
            l if l == level_of(meta.severity) => v.push(name.to_string()),
            l => v.push(format!("{name} ({})", format!("{l:?}").to_lowercase())),
        }
    }
    v
}

fn level_of(s: super::Severity) -> Level {
    match s {
        super::Severity::Info => Level::Info,
        super::Severity::Warn => Level::Warn,
        super::Severity::Error => Level::Error,
    }
}

pub fn markdown() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Audit rules\n");
    let _ = writeln!(
        s,
        "Generated from the rule definitions in `crates/rules/src/audit/` (`KVMTUNE_BLESS=1 cargo test -p kvmtune-rules --test rules_doc` rewrites it; the test fails when it is stale). `kvmtune rules` lists them, `kvmtune explain RULE` prints one.\n"
    );
    let _ = writeln!(
        s,
        "Each fix has a class, what it needs before it can be applied without harm (`kvmtune apply` applies `safe` fixes unless `--class` or `--rule` asks for more; a fix may declare another class than its rule's where the guest decides it, e.g. a virtio NIC for a Windows guest):\n"
    );
    for c in super::FixClass::ALL {
        let _ = writeln!(s, "- `{}`: {}", c.as_str(), c.meaning());
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| id | severity | class | profiles | title |\n|---|---|---|---|---|"
    );
    for r in rules() {
        let _ = writeln!(
            s,
            "| [{id}](#{id}) | {} | {} | {} | {} |",
            r.meta.severity.as_str(),
            r.meta.class.as_str(),
            profiles_of(&r.meta).join(", "),
            r.meta.title,
            id = r.meta.id
        );
    }
    for r in rules() {
        let m = &r.meta;
        let _ = writeln!(s, "\n## {}\n", m.id);
        let _ = writeln!(s, "**{}**: {}\n", m.severity.as_str(), m.title);
        let _ = writeln!(s, "- Profiles: {}", profiles_of(m).join(", "));
        let _ = writeln!(
            s,
            "- Needs host facts: {}",
            if m.needs_host {
                "yes (skipped without them)"
            } else {
                "no"
            }
        );
        let _ = writeln!(s, "- Why: {}", m.why);
        let _ = writeln!(s, "- Fix: {}", m.fix);
        let _ = writeln!(s, "- Class: `{}` ({})", m.class.as_str(), m.class.meaning());
        let _ = writeln!(s, "- Risk: {}", m.risk);
        let _ = writeln!(s, "- Source: {}", m.source);
    }
    s
}

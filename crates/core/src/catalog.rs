//! Every rule kvmtune knows, of every kind, in one list: audit rules, host checks and
//! diagnosis rules. `kvmtune rules` lists it and `kvmtune explain ID` looks ids up in it, so
//! every id any command prints can be explained.

use serde::Serialize;

use kvmtune_profile::{Level, Profile, Severity};
use kvmtune_rules::audit::{self, FixClass, docs::profiles_of};

/// Which judge a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A domain audit rule (`kvmtune audit`).
    Audit,
    /// A host check (`kvmtune host --check`).
    HostCheck,
    /// A diagnosis rule (`kvmtune diagnose`).
    Diagnosis,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audit => "audit",
            Kind::HostCheck => "host-check",
            Kind::Diagnosis => "diagnosis",
        }
    }
}

/// One rule, whatever its kind.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    /// Serialized as `rule_kind`: `kind` is the JSON envelope's (`kvmtune.rule`).
    #[serde(rename = "rule_kind")]
    pub kind: Kind,
    pub title: &'static str,
    /// Default severity; host checks take theirs from what they find (PASS, INFO, WARN,
    /// FAIL), so they have none here.
    pub severity: Option<Severity>,
    pub why: &'static str,
    pub fix: &'static str,
    /// Audit rules only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<&'static str>,
    /// Audit rules: the class of the rule's fix (a fix may declare another where the guest
    /// decides it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<FixClass>,
    pub source: &'static str,
    /// Audit rules: the built-in profiles the rule is on in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enabled_in: Vec<String>,
    /// Audit rules: whether it needs host facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_host: Option<bool>,
    /// Host checks: whether virt-host-validate makes the same check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virt_host_validate: Option<bool>,
    /// Diagnosis rules: the audit rules that check the fix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit_rules: Vec<&'static str>,
}

/// Every rule: audit rules, then host checks, then diagnosis rules.
pub fn all() -> Vec<RuleInfo> {
    let mut out = Vec::new();
    for r in audit::rules() {
        let m = &r.meta;
        out.push(RuleInfo {
            id: m.id,
            kind: Kind::Audit,
            title: m.title,
            severity: Some(m.severity),
            why: m.why,
            fix: m.fix,
            risk: Some(m.risk),
            class: Some(m.class),
            source: m.source,
            enabled_in: profiles_of(m),
            needs_host: Some(m.needs_host),
            virt_host_validate: None,
            audit_rules: Vec::new(),
        });
    }
    for h in kvmtune_rules::host_checks::rules() {
        out.push(RuleInfo {
            id: h.id,
            kind: Kind::HostCheck,
            title: h.title,
            severity: None,
            why: h.why,
            fix: h.fix,
            risk: None,
            class: None,
            source: h.source,
            enabled_in: Vec::new(),
            needs_host: None,
            virt_host_validate: Some(h.virt_host_validate),
            audit_rules: Vec::new(),
        });
    }
    for d in kvmtune_kvmstat::diagnose::RULES {
        out.push(RuleInfo {
            id: d.id,
            kind: Kind::Diagnosis,
            title: d.title,
            severity: Some(d.severity),
            why: d.why,
            fix: d.fix,
            risk: None,
            class: None,
            source: d.source,
            enabled_in: Vec::new(),
            needs_host: None,
            virt_host_validate: None,
            audit_rules: d.audit_rules.to_vec(),
        });
    }
    out
}

/// A rule by id.
pub fn find(id: &str) -> Option<RuleInfo> {
    all().into_iter().find(|r| r.id == id)
}

/// Ids close to `id` (one contains the other), for "did you mean".
pub fn near(id: &str) -> Vec<&'static str> {
    all()
        .into_iter()
        .map(|r| r.id)
        .filter(|x| x.contains(id) || id.contains(x))
        .collect()
}

/// An audit rule's level in a profile (`None` for other kinds: profiles tune audit rules).
pub fn level_in(r: &RuleInfo, profile: &Profile) -> Option<Level> {
    if r.kind != Kind::Audit {
        return None;
    }
    audit::rules()
        .iter()
        .find(|a| a.meta.id == r.id)
        .map(|a| audit::level(&a.meta, profile))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_are_unique_across_kinds_and_every_kind_is_listed() {
        let all = all();
        let mut seen = BTreeSet::new();
        for r in &all {
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
            assert!(
                !r.title.is_empty() && !r.why.is_empty() && !r.source.is_empty(),
                "{}",
                r.id
            );
        }
        for k in [Kind::Audit, Kind::HostCheck, Kind::Diagnosis] {
            assert!(all.iter().any(|r| r.kind == k), "{k:?}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(find("disk-cache").map(|r| r.kind), Some(Kind::Audit));
        assert_eq!(find("disk-cache").unwrap().class, Some(FixClass::Safe));
        assert_eq!(find("disk-bus").unwrap().class, Some(FixClass::GuestDriver));
        assert_eq!(find("exit-io-storm").unwrap().class, None);
        assert_eq!(
            find("host-kvm-device").map(|r| r.kind),
            Some(Kind::HostCheck)
        );
        assert_eq!(find("exit-io-storm").map(|r| r.kind), Some(Kind::Diagnosis));
        assert!(find("disk").is_none());
        assert!(near("disk").contains(&"disk-cache"));
        let p = kvmtune_rules::load_profile("desktop").unwrap();
        let usb = find("dev-usb-idle").unwrap();
        assert_eq!(level_in(&usb, &p), Some(Level::Off));
        assert_eq!(level_in(&find("exit-io-storm").unwrap(), &p), None);
    }

    /// Every id that the audit, host checks or diagnosis can print is explainable.
    #[test]
    fn every_printed_id_is_in_the_catalog() {
        let ids: BTreeSet<&str> = all().iter().map(|r| r.id).collect();
        for root in std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hosts"),
        )
        .unwrap()
        {
            let root = root.unwrap().path().join("root");
            if !root.is_dir() {
                continue;
            }
            let host = kvmtune_host::collect(&kvmtune_host::RootDir::new(&root));
            for (name, _) in kvmtune_profile::BUILTIN {
                let p = kvmtune_rules::load_profile(name).unwrap();
                for c in kvmtune_rules::check_host(&host, &p) {
                    assert!(ids.contains(c.id.as_str()), "host check {} unknown", c.id);
                }
            }
        }
    }
}

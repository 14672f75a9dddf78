//! Audit fixes as apply requests, and the re-audit that verifies them after the define.

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_apply::engine::DomainChange;
use kvmtune_apply::{plan, settings};
use kvmtune_domain::Domain;
use kvmtune_libvirt::Virt;
use kvmtune_profile::Profile;
use kvmtune_rules::audit::{self, Cx, Peer};

use crate::audit::AuditReport;
use crate::inventory::Inventory;
use crate::{Error, Result};

/// Which parts of a domain a change touches (`--live`, `--config`; both by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub live: bool,
    pub config: bool,
}

/// The domain changes that apply the audit's fixes.
#[derive(Debug, Clone, Default)]
pub struct AuditChanges {
    pub changes: Vec<DomainChange>,
    /// The rule ids applied, per domain (what [`reaudit`] checks).
    pub rules: BTreeMap<String, BTreeSet<String>>,
}

/// Check that every id of `only` names an audit rule.
pub fn check_rule_ids(only: &[String]) -> Result<()> {
    let known: BTreeSet<&str> = audit::rules().iter().map(|r| r.meta.id).collect();
    for r in only {
        if !known.contains(r.as_str()) {
            return Err(Error::msg(format!(
                "--rule {r}: no such rule (see `kvmtune rules`)"
            )));
        }
    }
    Ok(())
}

/// The fixes of `report` (only those of `only`'s rules when it is not empty) as changes of
/// the stored definitions and, for running domains in the live scope, of their live state.
pub fn changes(
    inv: &Inventory,
    report: &AuditReport,
    only: &[String],
    scope: Scope,
    virt: &dyn Virt,
) -> Result<AuditChanges> {
    check_rule_ids(only)?;
    let mut out = AuditChanges::default();
    for f in crate::audit::fixed(inv, report, only) {
        if f.rules.is_empty() || !f.changed() {
            continue;
        }
        let p = f.input;
        let name = p.domain.name.clone();
        let live_target = if scope.live && p.active {
            let live = virt.xml(&name, false)?;
            let live = settings::read_xml(&live)
                .map_err(|e| Error::msg(format!("live XML of {name}: {e}")))?;
            let old = settings::read(&p.doc, &p.domain);
            let new = settings::read_xml(&f.xml)
                .map_err(|e| Error::msg(format!("fixed XML of {name}: {e}")))?;
            Some(plan::live_target(&live, &old, &new))
        } else {
            None
        };
        out.rules.insert(name.clone(), f.rules.clone());
        out.changes.push(DomainChange {
            name,
            base_sha256: kvmtune_apply::sha256(&p.text),
            new_inactive: scope.config.then(|| f.xml.clone()),
            live_target,
            reasons: f.reasons.clone(),
        });
    }
    Ok(out)
}

/// Re-audit a domain's stored XML after the define: the fixes of the applied rules must be
/// in effect (applying them again changes nothing). One line per fix that is not.
pub fn reaudit(
    inv: &Inventory,
    profile: &Profile,
    applied: &AuditChanges,
    name: &str,
    xml: &str,
) -> Vec<String> {
    let Some(rules) = applied.rules.get(name) else {
        return Vec::new();
    };
    let (doc, d) = match Domain::parse(xml) {
        Ok(x) => x,
        Err(e) => return vec![format!("stored XML: {e}")],
    };
    let peers = [Peer {
        domain: &d,
        active: false,
    }];
    let cx = Cx {
        doc: &doc,
        d: &d,
        profile,
        host: inv.host.as_ref(),
        caps: inv.caps.get(&d.virt_type),
        peers: &peers,
    };
    let mut problems = Vec::new();
    for f in audit::audit(&cx) {
        if !rules.contains(f.rule) {
            continue;
        }
        if let Some(fix) = &f.fix {
            let mut again = doc.clone();
            audit::apply(&mut again, &fix.edits);
            if again.serialize() != doc.serialize() {
                problems.push(format!(
                    "{}: the fix is not in effect in the XML libvirt stored ({})",
                    f.rule, f.message
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Origin, Select};

    #[test]
    fn unknown_rule_ids_are_refused() {
        assert!(check_rule_ids(&["disk-cache".into()]).is_ok());
        let e = check_rule_ids(&["disk-cahce".into()]).unwrap_err();
        assert!(e.to_string().contains("disk-cahce"));
    }

    #[test]
    fn reaudit_names_a_fix_that_is_not_in_effect_and_accepts_one_that_is() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vm.xml");
        let xml = "<domain type='kvm'><name>vm</name><memory>1048576</memory><vcpu>1</vcpu>\
            <devices><disk type='file' device='disk'><driver name='qemu' type='raw' \
            cache='writethrough'/><source file='/i/a.img'/><target dev='vda' bus='virtio'/>\
            </disk></devices></domain>";
        std::fs::write(&f, xml).unwrap();
        let sel = Select {
            targets: vec![f.display().to_string()],
            ..Select::default()
        };
        let inv = Inventory::gather(&Origin::local("test:///default"), &sel).unwrap();
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let report = crate::audit::audit(&inv, &profile);
        let fixed = crate::audit::fixed(&inv, &report, &["disk-cache".into()]);
        let mut applied = AuditChanges::default();
        applied
            .rules
            .insert("vm".into(), ["disk-cache".to_string()].into());
        let bad = reaudit(&inv, &profile, &applied, "vm", xml);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("disk-cache:"), "{bad:?}");
        assert!(reaudit(&inv, &profile, &applied, "vm", &fixed[0].xml).is_empty());
        assert!(reaudit(&inv, &profile, &applied, "other", xml).is_empty());
    }
}

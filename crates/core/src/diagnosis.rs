//! Diagnoses tied to the configuration that explains them: for each diagnosis, the
//! findings of the same domain's audit among the diagnosis's linked audit rules.

use std::collections::BTreeMap;

use serde::Serialize;

use kvmtune_profile::{Profile, Severity};
use kvmtune_rules::audit::Finding;

use crate::inventory::Inventory;

/// An audit finding of the same domain that a diagnosis points at.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLink {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// Audit findings by domain name, for every domain of the inventory (one audit, over the
/// inventory gathered once).
pub fn findings_by_domain(inv: &Inventory, profile: &Profile) -> BTreeMap<String, Vec<Finding>> {
    crate::audit::audit(inv, profile)
        .domains
        .into_iter()
        .map(|d| (d.name, d.findings))
        .collect()
}

/// The findings among `audit_rules`.
pub fn links(audit_rules: &[&str], findings: Option<&Vec<Finding>>) -> Vec<AuditLink> {
    findings
        .into_iter()
        .flatten()
        .filter(|f| audit_rules.contains(&f.rule))
        .map(|f| AuditLink {
            rule: f.rule,
            severity: f.severity,
            message: f.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_linked_rules_findings_are_kept() {
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vm.xml");
        std::fs::write(
            &f,
            "<domain type='kvm'><name>vm</name><memory>1048576</memory><vcpu>1</vcpu>\
             <devices><input type='tablet' bus='usb'/></devices></domain>",
        )
        .unwrap();
        let inv = Inventory::gather(
            &crate::inventory::Origin::local("test:///default"),
            &crate::inventory::Select {
                targets: vec![f.display().to_string()],
                ..Default::default()
            },
        )
        .unwrap();
        let by = findings_by_domain(&inv, &profile);
        let all = by.get("vm").unwrap();
        assert!(all.iter().any(|f| f.rule == "dev-tablet"), "{all:?}");
        let l = links(&["dev-tablet"], Some(all));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].rule, "dev-tablet");
        assert!(links(&["exit-none"], Some(all)).is_empty());
        assert!(links(&["dev-tablet"], None).is_empty());
    }
}

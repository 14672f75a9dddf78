//! Diagnoses tied to the configuration that explains them: for each diagnosis, the
//! findings of the same domain's audit among the diagnosis's linked audit rules.

use std::collections::BTreeMap;

use serde::Serialize;

use kvmtune_profile::Severity;
use kvmtune_rules::audit::Finding;

use crate::inventory::Inventory;
use crate::profiles::Profiles;

/// An audit finding of the same domain that a diagnosis points at.
#[derive(Debug, Clone, Serialize)]
pub struct AuditLink {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// One domain's audit: the profile it was judged with and its findings.
#[derive(Debug, Clone)]
pub struct DomainAudit {
    pub profile: String,
    pub findings: Vec<Finding>,
    /// The domain's `<domain type=...>` (`kvm`, `qemu` for TCG), from the same inventory.
    pub virt_type: Option<String>,
}

/// Audit findings by domain name, for every domain of the inventory (one audit, over the
/// inventory gathered once), each domain judged with its own profile.
pub fn findings_by_domain(inv: &Inventory, profiles: &Profiles) -> BTreeMap<String, DomainAudit> {
    crate::audit::audit_with(inv, profiles)
        .domains
        .into_iter()
        .map(|d| {
            let virt_type = inv
                .domains
                .iter()
                .find(|p| p.domain.name == d.name)
                .map(|p| p.domain.virt_type.clone());
            (
                d.name,
                DomainAudit {
                    profile: d.profile,
                    findings: d.findings,
                    virt_type,
                },
            )
        })
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
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vm.xml");
        std::fs::write(
            &f,
            "<domain type='kvm'><name>vm</name><memory>1048576</memory><vcpu>1</vcpu>\
             <devices><input type='tablet' bus='usb'/></devices></domain>",
        )
        .unwrap();
        let meta = "<metadata><p:profile xmlns:p='https://kvmtune.invalid/xmlns/profile/1'>desktop</p:profile></metadata>";
        let g = d.path().join("desk.xml");
        std::fs::write(
            &g,
            format!(
                "<domain type='kvm'><name>desk</name>{meta}<memory>1048576</memory><vcpu>1</vcpu>\
             <devices><input type='tablet' bus='usb'/></devices></domain>"
            ),
        )
        .unwrap();
        let inv = Inventory::gather(
            &crate::inventory::Origin::local("test:///default"),
            &crate::inventory::Select {
                targets: vec![f.display().to_string(), g.display().to_string()],
                ..Default::default()
            },
        )
        .unwrap();
        let profiles = Profiles::from_args(&[]).unwrap().with_metadata(&inv);
        let by = findings_by_domain(&inv, &profiles);
        // each domain with its own profile: a tablet is advice on a server, not on a desktop
        assert_eq!(by["desk"].profile, "desktop");
        assert!(!by["desk"].findings.iter().any(|f| f.rule == "dev-tablet"));
        assert_eq!(by["vm"].profile, "server");
        assert_eq!(by["vm"].virt_type.as_deref(), Some("kvm"));
        let all = &by.get("vm").unwrap().findings;
        assert!(all.iter().any(|f| f.rule == "dev-tablet"), "{all:?}");
        let l = links(&["dev-tablet"], Some(all));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].rule, "dev-tablet");
        assert!(links(&["exit-none"], Some(all)).is_empty());
        assert!(links(&["dev-tablet"], None).is_empty());
    }
}

//! Audit fixes as apply requests, and the re-audit that verifies them after the define.

use std::collections::{BTreeMap, BTreeSet};

use kvmtune_apply::engine::DomainChange;
use kvmtune_apply::{plan, settings};
use kvmtune_domain::Domain;
use kvmtune_libvirt::Virt;
use kvmtune_profile::Profile;
use kvmtune_rules::audit::{self, Cx, FixClass, Peer};
use serde::Serialize;

use crate::audit::AuditReport;
use crate::inventory::Inventory;
use crate::{Error, Result};

/// Which parts of a domain a change touches (`--live`, `--config`; both by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub live: bool,
    pub config: bool,
}

/// Which audit fixes `apply` applies: by default the `safe` ones; `--class` adds classes,
/// `--rule` names rules that are applied whatever their class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Rules named with `--rule`.
    pub rules: Vec<String>,
    /// The classes whose fixes are applied (every fix of a named rule is applied too).
    pub classes: BTreeSet<FixClass>,
}

impl Default for Selection {
    /// `safe` fixes only.
    fn default() -> Self {
        Selection {
            rules: Vec::new(),
            classes: [FixClass::Safe].into(),
        }
    }
}

impl Selection {
    /// The selection of `--rule` ids and `--class` names (`all` for every class). Without
    /// `--rule`, `safe` fixes are always in; with `--rule` and no `--class`, only the named
    /// rules' fixes (as before classes existed).
    pub fn parse(rules: &[String], classes: &[String]) -> Result<Selection> {
        check_rule_ids(rules)?;
        let mut set = BTreeSet::new();
        if rules.is_empty() {
            set.insert(FixClass::Safe);
        }
        for c in classes {
            if c == "all" {
                set.extend(FixClass::ALL);
                continue;
            }
            let Some(x) = FixClass::parse(c) else {
                let names: Vec<&str> = FixClass::ALL.iter().map(|c| c.as_str()).collect();
                return Err(Error::msg(format!(
                    "--class {c}: no such class (one of {}, or all)",
                    names.join(", ")
                )));
            };
            set.insert(x);
        }
        Ok(Selection {
            rules: rules.to_vec(),
            classes: set,
        })
    }

    /// Every fix.
    pub fn all() -> Selection {
        Selection {
            rules: Vec::new(),
            classes: FixClass::ALL.into(),
        }
    }

    /// Whether a fix of `rule` in `class` is applied.
    pub fn takes(&self, rule: &str, class: FixClass) -> bool {
        self.rules.iter().any(|r| r == rule) || self.classes.contains(&class)
    }

    /// Whether the user picked the fixes by rule (then what is left out is their choice,
    /// not worth listing).
    pub fn by_rule(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// A fix that the selection left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub domain: String,
    pub rule: String,
    pub summary: String,
    pub class: FixClass,
    pub risk: String,
}

impl LeftOut {
    /// `disk-bus: Move hda to virtio-blk as vda (guest-driver: RISK) — include with
    /// --rule disk-bus or --class guest-driver`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} ({}: {}) — include with --rule {} or --class {}",
            self.rule,
            self.summary,
            self.class,
            self.risk.trim_end_matches('.'),
            self.rule,
            self.class
        )
    }
}

/// The domain changes that apply the audit's fixes.
#[derive(Debug, Clone, Default)]
pub struct AuditChanges {
    pub changes: Vec<DomainChange>,
    /// The rule ids applied, per domain (what [`reaudit`] checks).
    pub rules: BTreeMap<String, BTreeSet<String>>,
    /// The fixes the selection left out (listed when it selects by class), in the order of
    /// the audit: per domain, most severe first.
    pub left_out: Vec<LeftOut>,
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

/// The fixes of `report` that `sel` takes, as changes of the stored definitions and, for
/// running domains in the live scope, of their live state; and the fixes it left out.
pub fn changes(
    inv: &Inventory,
    report: &AuditReport,
    sel: &Selection,
    scope: Scope,
    virt: &dyn Virt,
) -> Result<AuditChanges> {
    check_rule_ids(&sel.rules)?;
    let mut out = AuditChanges {
        left_out: left_out(report, sel),
        ..AuditChanges::default()
    };
    let take = |f: &audit::Finding| f.fix.as_ref().is_some_and(|x| sel.takes(f.rule, x.class));
    for f in crate::audit::fixed_by(inv, report, take) {
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

/// The fixes `sel` does not take (none listed when it names rules).
pub fn left_out(report: &AuditReport, sel: &Selection) -> Vec<LeftOut> {
    if sel.by_rule() {
        return Vec::new();
    }
    let mut v = Vec::new();
    for d in &report.domains {
        for f in &d.findings {
            let Some(x) = &f.fix else { continue };
            if sel.takes(f.rule, x.class) {
                continue;
            }
            v.push(LeftOut {
                domain: d.name.clone(),
                rule: f.rule.to_string(),
                summary: x.summary.clone(),
                class: x.class,
                risk: x.risk.clone(),
            });
        }
    }
    v
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
        memo: Default::default(),
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

    /// A Windows 10 domain with an IDE disk (no cache mode) and a USB tablet.
    const WIN_IDE: &str = "<domain type='kvm'><name>win</name><memory>1048576</memory>\
        <vcpu>2</vcpu><metadata><libosinfo:libosinfo \
        xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
        <libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata>\
        <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <disk type='file' device='disk'><driver name='qemu' type='raw'/>\
        <source file='/i/a.img'/><target dev='hda' bus='ide'/></disk>\
        <controller type='usb' index='0' model='piix3-uhci'/>\
        <input type='tablet' bus='usb'/></devices></domain>";

    fn win_changes(rules: &[&str], classes: &[&str]) -> AuditChanges {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("win.xml");
        std::fs::write(&f, WIN_IDE).unwrap();
        let sel = Select {
            targets: vec![f.display().to_string()],
            ..Select::default()
        };
        let inv = Inventory::gather(&Origin::local("test:///default"), &sel).unwrap();
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let report = crate::audit::audit(&inv, &profile);
        let rules: Vec<String> = rules.iter().map(|x| x.to_string()).collect();
        let classes: Vec<String> = classes.iter().map(|x| x.to_string()).collect();
        let sel = Selection::parse(&rules, &classes).unwrap();
        // config scope only: libvirt is not asked anything
        let virt = kvmtune_libvirt::Libvirt::open("test:///default", true).unwrap();
        let scope = Scope {
            live: false,
            config: true,
        };
        changes(&inv, &report, &sel, scope, &virt).unwrap()
    }

    #[test]
    fn the_default_applies_safe_fixes_and_names_the_bus_change_it_leaves_out() {
        let ch = win_changes(&[], &[]);
        let rules = &ch.rules["win"];
        assert!(rules.contains("disk-cache"), "{rules:?}");
        assert!(rules.contains("dev-tablet"), "{rules:?}");
        assert!(!rules.contains("disk-bus"), "{rules:?}");
        let xml = ch.changes[0].new_inactive.as_deref().unwrap();
        assert!(
            xml.contains("bus='ide'") && xml.contains("cache='none'"),
            "{xml}"
        );
        assert!(!xml.contains("tablet"), "{xml}");
        let reasons = &ch.changes[0].reasons;
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("disk-cache: ") && r.contains("(next start; safe: ")),
            "{reasons:?}"
        );
        let bus = ch.left_out.iter().find(|l| l.rule == "disk-bus").unwrap();
        assert_eq!(bus.class, FixClass::GuestDriver);
        let line = bus.line();
        assert!(line.contains("Windows needs the virtio-win"), "{line}");
        assert!(
            line.ends_with("include with --rule disk-bus or --class guest-driver"),
            "{line}"
        );
        assert!(ch.left_out.iter().all(|l| l.class != FixClass::Safe));
    }

    #[test]
    fn a_class_or_a_rule_includes_the_bus_change() {
        for ch in [
            win_changes(&[], &["guest-driver"]),
            win_changes(&[], &["all"]),
        ] {
            let rules = &ch.rules["win"];
            assert!(
                rules.contains("disk-bus") && rules.contains("disk-cache"),
                "{rules:?}"
            );
            let xml = ch.changes[0].new_inactive.as_deref().unwrap();
            assert!(xml.contains("bus='virtio'"), "{xml}");
            assert!(ch.left_out.iter().all(|l| l.rule != "disk-bus"));
        }
        // a rule named is applied whatever its class, and alone (as before classes)
        let ch = win_changes(&["disk-bus"], &[]);
        assert_eq!(ch.rules["win"], ["disk-bus".to_string()].into());
        assert!(ch.left_out.is_empty(), "{:?}", ch.left_out);
        // a rule and a class: both
        let ch = win_changes(&["disk-bus"], &["safe"]);
        let rules = &ch.rules["win"];
        assert!(
            rules.contains("disk-bus") && rules.contains("disk-cache"),
            "{rules:?}"
        );
        assert!(!rules.contains("clock-windows"), "{rules:?}");
    }

    #[test]
    fn selections_parse() {
        assert_eq!(Selection::parse(&[], &[]).unwrap(), Selection::default());
        assert_eq!(
            Selection::parse(&[], &["all".into()]).unwrap(),
            Selection::all()
        );
        let s = Selection::parse(&[], &["capacity".into()]).unwrap();
        assert!(s.takes("mem-hugepages", FixClass::Capacity));
        assert!(s.takes("disk-cache", FixClass::Safe));
        assert!(!s.takes("disk-bus", FixClass::GuestDriver));
        let s = Selection::parse(&["disk-bus".into()], &[]).unwrap();
        assert!(s.takes("disk-bus", FixClass::GuestDriver));
        assert!(!s.takes("disk-cache", FixClass::Safe));
        let e = Selection::parse(&[], &["risky".into()]).unwrap_err();
        assert!(e.to_string().contains("--class risky"), "{e}");
        assert!(Selection::parse(&["disk-cahce".into()], &[]).is_err());
    }

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

//! Between plans and apply requests: the domain changes a plan asks for
//! ([`changes`]), and the plan that repeats a prepared request ([`Plan::from_request`]).

use kvmtune_libvirt::Virt;

use super::{Plan, PlanDomain, PlanError, apply_to_xml, live_target};
use crate::engine::{DomainChange, Prepared, Request};
use crate::settings;
use crate::sha256;

/// The domain changes of a plan against the domains `virt` has now: each domain's new
/// stored definition (with `config`) and, for a running domain (with `live`), the settings
/// it should end with. Refuses a domain that does not exist or whose stored XML is not the
/// one the plan was made from.
pub fn changes(
    p: &Plan,
    live: bool,
    config: bool,
    virt: &dyn Virt,
) -> Result<Vec<DomainChange>, PlanError> {
    let listed = virt.list()?;
    let mut out = Vec::new();
    for d in &p.domains {
        let Some(r) = listed.iter().find(|x| x.name == d.name) else {
            return Err(PlanError::NoDomain {
                name: d.name.clone(),
                uri: virt.uri().to_string(),
            });
        };
        let xml = virt.xml(&d.name, true)?;
        let sha = sha256(&xml);
        if let Some(b) = &d.base_sha256
            && *b != sha
        {
            return Err(PlanError::Changed(d.name.clone()));
        }
        let new = apply_to_xml(&xml, d).map_err(|why| PlanError::Domain {
            name: d.name.clone(),
            why,
        })?;
        let live_target = if live && r.active {
            let now = settings::read_xml(&virt.xml(&d.name, false)?)?;
            let old = settings::read_xml(&xml)?;
            let news = settings::read_xml(&new)?;
            Some(live_target(&now, &old, &news))
        } else {
            None
        };
        let mut reasons = d.reasons.clone();
        if reasons.is_empty() {
            reasons.push("plan".into());
        }
        out.push(DomainChange {
            name: d.name.clone(),
            base_sha256: sha,
            new_inactive: config.then_some(new),
            live_target,
            reasons,
        });
    }
    Ok(out)
}

impl Plan {
    /// The plan that asks for what a prepared request does: each domain's new stored
    /// definition (made from the stored XML `prep` read) and the host settings.
    pub fn from_request(req: &Request, prep: &Prepared) -> Plan {
        let mut p = Plan::new();
        for d in &req.domains {
            let base = prep
                .entry
                .domains
                .iter()
                .find(|b| b.name == d.name)
                .map(|b| b.inactive_sha256.clone());
            p.domains.push(PlanDomain {
                name: d.name.clone(),
                base_sha256: base,
                config_xml: d.new_inactive.clone(),
                reasons: d.reasons.clone(),
                ..PlanDomain::default()
            });
        }
        for w in &req.host {
            p.host.insert(w.key.clone(), w.value.clone());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Env, prepare};
    use crate::fake::Fake;
    use std::path::PathBuf;

    const OLD: &str = "<domain type='kvm'><name>a</name><memory unit='KiB'>1024</memory><vcpu placement='static' current='1'>2</vcpu><os><type>hvm</type></os></domain>";

    fn plan(d: PlanDomain) -> Plan {
        Plan {
            domains: vec![d],
            ..Plan::new()
        }
    }

    fn pins() -> PlanDomain {
        PlanDomain {
            name: "a".into(),
            vcpupin: [(0, "1".into())].into(),
            ..PlanDomain::default()
        }
    }

    #[test]
    fn a_plan_becomes_a_new_definition_and_a_live_target() {
        let f = Fake::new("a", OLD, true);
        let ch = changes(&plan(pins()), true, true, &f).unwrap();
        assert_eq!(ch.len(), 1);
        let c = &ch[0];
        assert_eq!((c.name.as_str(), c.base_sha256.clone()), ("a", sha256(OLD)));
        assert_eq!(c.reasons, vec!["plan".to_string()]);
        let new = settings::read_xml(c.new_inactive.as_deref().unwrap()).unwrap();
        assert_eq!(new.vcpupin.get(&0).map(String::as_str), Some("1"));
        let t = c.live_target.as_ref().unwrap();
        assert_eq!(t.vcpupin.get(&0).map(String::as_str), Some("1"));
        assert_eq!(t.vcpus, 1);
        // --config only: no live target; --live only: no new definition
        let ch = changes(&plan(pins()), false, true, &f).unwrap();
        assert!(ch[0].live_target.is_none() && ch[0].new_inactive.is_some());
        let ch = changes(&plan(pins()), true, false, &f).unwrap();
        assert!(ch[0].live_target.is_some() && ch[0].new_inactive.is_none());
        // a domain that does not run has no live target
        let off = Fake::new("a", OLD, false);
        let mut d = pins();
        d.reasons = vec!["planner: fits node 0".into()];
        let ch = changes(&plan(d), true, true, &off).unwrap();
        assert!(ch[0].live_target.is_none());
        assert_eq!(ch[0].reasons, vec!["planner: fits node 0".to_string()]);
        assert!(f.calls.borrow().is_empty() && off.calls.borrow().is_empty());
    }

    #[test]
    fn a_plan_is_refused_for_a_missing_or_changed_domain() {
        let f = Fake::new("a", OLD, false);
        let mut d = pins();
        d.name = "b".into();
        let e = changes(&plan(d), true, true, &f).unwrap_err().to_string();
        assert_eq!(
            e,
            "plan names domain b, which this libvirt (fake:///) does not have"
        );
        let mut d = pins();
        d.base_sha256 = Some(sha256("<domain/>"));
        let e = changes(&plan(d), true, true, &f).unwrap_err().to_string();
        assert!(
            e.starts_with("domain a: its stored XML changed since the plan"),
            "{e}"
        );
        let mut d = pins();
        d.base_sha256 = Some(sha256(OLD));
        d.vcpus = Some(8);
        let e = changes(&plan(d), true, true, &f).unwrap_err().to_string();
        assert_eq!(e, "domain a: 8 vCPUs asked, the domain's maximum is 2");
    }

    #[test]
    fn a_saved_plan_repeats_the_request() {
        let f = Fake::new("a", OLD, true);
        let env = Env {
            virt: &f,
            root: PathBuf::from("/nonexistent"),
            proc: None,
            host_cpus: "0-3".into(),
        };
        let req = Request {
            domains: changes(&plan(pins()), true, true, &f).unwrap(),
            host: vec![crate::hostset::parse("thp.enabled=never").unwrap()],
            ..Request::default()
        };
        // the host setting cannot be read under /nonexistent: prepare without it
        let prep = prepare(
            &env,
            &Request {
                host: Vec::new(),
                ..req.clone()
            },
        )
        .unwrap();
        let p = Plan::from_request(&req, &prep);
        assert_eq!(p.domains.len(), 1);
        assert_eq!(
            p.domains[0].base_sha256.as_deref(),
            Some(sha256(OLD).as_str())
        );
        assert_eq!(p.domains[0].config_xml, req.domains[0].new_inactive);
        assert_eq!(p.domains[0].reasons, vec!["plan".to_string()]);
        assert_eq!(p.host.get("thp.enabled").map(String::as_str), Some("never"));
        // the saved plan, applied again, asks for the same definition
        let again = changes(&p, false, true, &f).unwrap();
        assert_eq!(again[0].new_inactive, req.domains[0].new_inactive);
    }
}

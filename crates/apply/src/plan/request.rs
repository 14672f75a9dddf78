//! Between plans and apply requests: the domain changes a plan asks for
//! ([`changes`]), and the plan that repeats a prepared request ([`Plan::from_request`]).

use kvmtune_host::CpuSet;
use kvmtune_libvirt::{MEMTUNE_UNLIMITED_KIB, Virt};

use super::{Plan, PlanDomain, PlanError, apply_to_xml, live_target};
use crate::check::{self, HostLimits, NUMA_MODES};
use crate::engine::{DomainChange, Prepared, Request};
use crate::settings::{self, Settings};
use crate::sha256;

/// Check a plan (read from `file`) against the domains `virt` has and this host before
/// anything is computed from it: a `config_xml` must be the domain's own definition (its
/// name and UUID), and every setting must make sense (see [`crate::check`]). The first
/// problem is the error, one line naming the file, the domain and the field. A domain
/// `virt` does not have is left to [`changes`].
pub fn validate(p: &Plan, file: &str, virt: &dyn Virt, host: &HostLimits) -> Result<(), PlanError> {
    let listed = virt.list()?;
    for d in &p.domains {
        let Some(r) = listed.iter().find(|x| x.name == d.name) else {
            continue;
        };
        let invalid = |why: String| PlanError::Invalid {
            file: file.to_string(),
            what: format!("domain {}", d.name.escape_debug()),
            why,
        };
        let xml = virt.xml(&d.name, true)?;
        let old = settings::read_xml(&xml).map_err(|e| invalid(format!("stored XML: {e}")))?;
        fields(d, &old, host).map_err(invalid)?;
        let new = apply_to_xml(&xml, d).map_err(invalid)?;
        check::identity(&new, &d.name, &r.uuid, d.config_xml.is_some())
            .map_err(|why| invalid(format!("config_xml: {why}")))?;
        // sizes and counts libvirt would refuse or read otherwise (a vCPU count of 2^64)
        if let Ok((_, dom)) = kvmtune_domain::Domain::parse(&new)
            && let Some(bad) = dom.invalid.first()
        {
            return Err(invalid(format!(
                "{}{} is {:?}: {}",
                if d.config_xml.is_some() {
                    "config_xml: "
                } else {
                    ""
                },
                bad.path,
                bad.value.trim(),
                bad.why
            )));
        }
        let news = settings::read_xml(&new).map_err(|e| invalid(format!("config_xml: {e}")))?;
        check::settings(&old, &news, host).map_err(|why| {
            invalid(if d.config_xml.is_some() {
                format!("config_xml: {why}")
            } else {
                why
            })
        })?;
    }
    let nodes = host.nodes.as_ref();
    for (k, v) in &p.host {
        let invalid = |why: String| PlanError::Invalid {
            file: file.to_string(),
            what: "host".into(),
            why,
        };
        let w = crate::hostset::parse(&format!("{k}={v}")).map_err(|e| invalid(e.to_string()))?;
        crate::hostset::check_sane(&w, nodes, host.memory_kib).map_err(invalid)?;
    }
    Ok(())
}

/// The plan's own fields against the domain's stored settings and the host.
fn fields(d: &PlanDomain, old: &Settings, host: &HostLimits) -> Result<(), String> {
    let cap = (host.cpus.len().max(1) as u32).saturating_mul(check::VCPUS_PER_HOST_CPU);
    let max = if old.max_vcpus > 0 {
        old.max_vcpus
    } else {
        cap
    };
    if let Some(n) = d.vcpus
        && !(1..=max).contains(&n)
    {
        return Err(format!(
            "vcpus {n}: out of range (1 to the domain's maximum, {max})"
        ));
    }
    for (v, cpus) in &d.vcpupin {
        if *v >= max {
            return Err(format!("vcpupin {v}: no such vCPU (the domain has {max})"));
        }
        host.check_cpus(&format!("vcpupin {v}"), cpus)?;
    }
    if let Some(c) = &d.emulatorpin {
        host.check_cpus("emulatorpin", c)?;
    }
    if let Some(n) = &d.numatune {
        if let Some(m) = &n.mode
            && !NUMA_MODES.contains(&m.as_str())
        {
            return Err(format!(
                "numatune mode {}: unknown (one of {})",
                m.escape_debug(),
                NUMA_MODES.join(", ")
            ));
        }
        host.check_nodes(
            &format!("numatune nodeset {}", n.nodeset.escape_debug()),
            &n.nodeset,
        )?;
    }
    if let Some(m) = &d.memtune {
        for (f, v) in [
            ("hard_limit_kib", m.hard_limit_kib),
            ("soft_limit_kib", m.soft_limit_kib),
            ("swap_hard_limit_kib", m.swap_hard_limit_kib),
        ] {
            if v == Some(0) {
                return Err(format!("memtune {f} 0: must be more than 0"));
            }
            if let Some(k) = v
                && k > MEMTUNE_UNLIMITED_KIB
            {
                return Err(format!("memtune {f} {k}: above libvirt's largest value"));
            }
        }
    }
    if let Some(k) = d.current_memory_kib {
        if k == 0 {
            return Err("current_memory_kib 0: must be more than 0".into());
        }
        if let Some(m) = old.memory_kib
            && k > m
        {
            return Err(format!(
                "current_memory_kib {k}: above the domain's maximum memory ({m} KiB)"
            ));
        }
    }
    for c in &d.cells {
        let field = format!("cells {}", c.id);
        // guest cells are numbered 0.. and there cannot be more of them than vCPUs
        if c.id >= max {
            return Err(format!(
                "{field}: no such cell (ids run from 0 to the vCPU count, {max}, minus one)"
            ));
        }
        if c.memory_kib == 0 {
            return Err(format!("{field}: memory_kib 0: must be more than 0"));
        }
        if let Some(m) = old.memory_kib
            && c.memory_kib > m
        {
            return Err(format!(
                "{field}: memory_kib {}: above the domain's memory ({m} KiB)",
                c.memory_kib
            ));
        }
        let cpus = CpuSet::parse(&c.cpus).map_err(|e| format!("{field}: cpus: {e}"))?;
        if let Some(v) = cpus.iter().find(|v| *v >= max) {
            return Err(format!(
                "{field}: cpus: no such vCPU {v} (the domain has {max})"
            ));
        }
        host.check_nodes(
            &format!("{field}: nodeset {}", c.nodeset.escape_debug()),
            &c.nodeset,
        )?;
    }
    // checked: three parts near 2^32 overflow even u64
    let product = d.topology.map(|t| {
        t.iter()
            .try_fold(1u64, |acc, &x| acc.checked_mul(u64::from(x)))
            .unwrap_or(u64::MAX)
    });
    if let (Some(t), Some(p)) = (d.topology, product)
        && (t.contains(&0) || p > u64::from(cap))
    {
        return Err(format!(
            "topology {}x{}x{}: each part must be at least 1 and the product at most {cap}",
            t[0], t[1], t[2]
        ));
    }
    Ok(())
}

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
            remote: false,
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

    #[test]
    fn hostile_plans_are_refused_by_field_before_anything() {
        let f = Fake::new("a", OLD, true);
        let host = HostLimits {
            cpus: CpuSet::parse("0-1").unwrap(),
            nodes: Some(CpuSet::parse("0").unwrap()),
            memory_kib: Some(1 << 20),
        };
        let with = |d: PlanDomain| validate(&plan(d), "plan.json", &f, &host);
        assert!(with(pins()).is_ok());
        for (d, want) in [
            (
                PlanDomain {
                    vcpus: Some(0),
                    ..pins()
                },
                "plan.json: domain a: vcpus 0: out of range (1 to the domain's maximum, 2)",
            ),
            (
                PlanDomain {
                    vcpupin: [(99999, "0".into())].into(),
                    ..pins()
                },
                "plan.json: domain a: vcpupin 99999: no such vCPU (the domain has 2)",
            ),
            (
                PlanDomain {
                    numatune: Some(super::super::PlanNuma {
                        mode: Some("bogus".into()),
                        nodeset: "0".into(),
                    }),
                    ..pins()
                },
                "plan.json: domain a: numatune mode bogus: unknown (one of strict, preferred, interleave, restrictive)",
            ),
            (
                PlanDomain {
                    numatune: Some(super::super::PlanNuma {
                        mode: None,
                        nodeset: "99".into(),
                    }),
                    ..pins()
                },
                "plan.json: domain a: numatune nodeset 99: no NUMA node 99 on this host (it has 0)",
            ),
            (
                PlanDomain {
                    current_memory_kib: Some(0),
                    ..pins()
                },
                "plan.json: domain a: current_memory_kib 0: must be more than 0",
            ),
            (
                PlanDomain {
                    emulatorpin: Some("7".into()),
                    ..pins()
                },
                "plan.json: domain a: emulatorpin: no host CPU 7 (the host has 0-1)",
            ),
            (
                PlanDomain {
                    config_xml: Some(OLD.replace("<name>a</name>", "<name>victim</name>")),
                    ..pins()
                },
                "plan.json: domain a: config_xml: it defines domain victim, not a",
            ),
            (
                PlanDomain {
                    config_xml: Some(OLD.to_string()),
                    ..pins()
                },
                "plan.json: domain a: config_xml: it has no <uuid> (the domain's is u)",
            ),
            (
                PlanDomain {
                    config_xml: Some(
                        OLD.replace("<name>a</name>", "<name>a</name><uuid>u</uuid>")
                            .replace(">2</vcpu>", ">18446744073709551616</vcpu>"),
                    ),
                    ..pins()
                },
                "plan.json: domain a: config_xml: /domain/vcpu is \"18446744073709551616\": too large a number",
            ),
            (
                PlanDomain {
                    topology: Some([u32::MAX, u32::MAX, u32::MAX]),
                    ..pins()
                },
                "plan.json: domain a: topology 4294967295x4294967295x4294967295: each part must be at least 1 and the product at most 16",
            ),
            (
                PlanDomain {
                    cells: vec![super::super::PlanCell {
                        id: u32::MAX,
                        cpus: "0".into(),
                        memory_kib: u64::MAX,
                        nodeset: "0".into(),
                    }],
                    ..pins()
                },
                "plan.json: domain a: cells 4294967295: no such cell (ids run from 0 to the vCPU count, 2, minus one)",
            ),
        ] {
            let e = with(d).unwrap_err().to_string();
            assert_eq!(e, want);
        }
        let mut p = plan(pins());
        p.host
            .insert("ksm.merge_across_nodes".into(), "1\nx".into());
        let e = validate(&p, "plan.json", &f, &host)
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with("plan.json: host: host setting"), "{e}");
        p.host.clear();
        p.host.insert("hugepages.node3.2M".into(), "4".into());
        assert_eq!(
            validate(&p, "plan.json", &f, &host)
                .unwrap_err()
                .to_string(),
            "plan.json: host: hugepages.node3.2M: no NUMA node 3 on this host (it has 0)"
        );
        p.host.clear();
        p.host.insert("hugepages.1G".into(), "4096".into());
        assert!(
            validate(&p, "plan.json", &f, &host)
                .unwrap_err()
                .to_string()
                .contains("more than the host's memory")
        );
        assert!(f.calls.borrow().is_empty());
    }
}

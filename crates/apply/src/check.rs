//! Checks of untrusted input: plan files and journal entries are files anybody with write
//! access to them may have edited, so what they ask for is checked before anything
//! changes.
//!
//! - A new definition must be the target domain's: its `<name>` and `<uuid>`
//!   ([`identity`]).
//! - Settings must make sense for the domain and this host ([`settings`]): a vCPU count
//!   within 1 and the domain's maximum, pins of existing vCPUs to existing host CPUs, a
//!   known numatune mode, nodesets of existing host NUMA nodes, memory above 0 and at most
//!   the maximum.
//! - A journal entry may only restore the known host setting files and kvmtune's own
//!   persistent files, under a normalised root, and the definitions of its own domains
//!   (`entry`).
//!
//! Each error is one line naming the field: `vcpupin 99999: no such vCPU (the domain has 4)`.

use kvmtune_domain::Domain;
use kvmtune_host::CpuSet;

use crate::settings::Settings;

/// A domain without a maximum vCPU count may have at most this many vCPUs per host CPU.
pub const VCPUS_PER_HOST_CPU: u32 = 8;

/// The numatune memory modes libvirt knows.
pub const NUMA_MODES: [&str; 4] = ["strict", "preferred", "interleave", "restrictive"];

/// What the host has, for checking settings.
#[derive(Debug, Clone, Default)]
pub struct HostLimits {
    /// Every online host CPU (empty: unknown, nothing is checked against it).
    pub cpus: CpuSet,
    /// The host's NUMA nodes (`None`: unknown).
    pub nodes: Option<CpuSet>,
    /// The host's memory.
    pub memory_kib: Option<u64>,
}

impl HostLimits {
    /// The most vCPUs a domain may have when nothing else says.
    fn vcpu_cap(&self) -> u32 {
        (self.cpus.len().max(1) as u32).saturating_mul(VCPUS_PER_HOST_CPU)
    }

    /// Why a CPU list is not a non-empty set of this host's CPUs.
    pub fn check_cpus(&self, field: &str, list: &str) -> Result<(), String> {
        let c = CpuSet::parse(list).map_err(|e| format!("{field}: {e}"))?;
        if c.is_empty() {
            return Err(format!("{field}: an empty CPU list"));
        }
        let missing = c.difference(&self.cpus);
        if !self.cpus.is_empty() && !missing.is_empty() {
            return Err(format!(
                "{field}: no host CPU {missing} (the host has {})",
                self.cpus
            ));
        }
        Ok(())
    }

    /// Why a node list is not a non-empty set of this host's NUMA nodes.
    pub fn check_nodes(&self, field: &str, list: &str) -> Result<(), String> {
        let c = CpuSet::parse(list).map_err(|e| format!("{field}: {e}"))?;
        if c.is_empty() {
            return Err(format!("{field}: an empty node list"));
        }
        if let Some(nodes) = &self.nodes {
            let missing = c.difference(nodes);
            if !missing.is_empty() {
                return Err(format!(
                    "{field}: no NUMA node {missing} on this host (it has {})",
                    if nodes.is_empty() {
                        "none".to_string()
                    } else {
                        nodes.to_string()
                    }
                ));
            }
        }
        Ok(())
    }
}

/// A UUID compared the way libvirt reads it: case and dashes do not matter.
fn uuid_key(u: &str) -> String {
    u.chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Why `xml` is not a definition of domain `name` with UUID `uuid`. With `need_uuid`, a
/// definition without a `<uuid>` is refused too (libvirt would create a new domain).
pub fn identity(xml: &str, name: &str, uuid: &str, need_uuid: bool) -> Result<(), String> {
    let (_, d) = Domain::parse(xml).map_err(|e| format!("not a domain definition: {e}"))?;
    if d.name != name {
        return Err(format!(
            "it defines domain {}, not {}",
            d.name.escape_debug(),
            name.escape_debug()
        ));
    }
    match d.uuid.as_deref() {
        Some(u) if !uuid.is_empty() && uuid_key(u) != uuid_key(uuid) => Err(format!(
            "its UUID {} is not the domain's ({uuid})",
            u.escape_debug()
        )),
        None if need_uuid => Err(format!("it has no <uuid> (the domain's is {uuid})")),
        _ => Ok(()),
    }
}

/// Why the settings a change leads to (`new`, from `old`) do not make sense for the domain
/// or this host. Only what changes is checked: a domain already pinned to a CPU this host
/// lacks can still get other fixes.
pub fn settings(old: &Settings, new: &Settings, host: &HostLimits) -> Result<(), String> {
    if new.max_vcpus != old.max_vcpus && !(1..=host.vcpu_cap()).contains(&new.max_vcpus) {
        return Err(format!(
            "vcpu maximum {}: out of range (1 to {} on this host)",
            new.max_vcpus,
            host.vcpu_cap()
        ));
    }
    let max = if new.max_vcpus > 0 {
        new.max_vcpus
    } else {
        host.vcpu_cap()
    };
    if (new.vcpus != old.vcpus || new.max_vcpus != old.max_vcpus) && !(1..=max).contains(&new.vcpus)
    {
        return Err(format!(
            "vcpus {}: out of range (1 to the domain's maximum, {max})",
            new.vcpus
        ));
    }
    for (v, cpus) in &new.vcpupin {
        if old.vcpupin.get(v) == Some(cpus) && new.max_vcpus == old.max_vcpus {
            continue;
        }
        if *v >= max {
            return Err(format!("vcpupin {v}: no such vCPU (the domain has {max})"));
        }
        host.check_cpus(&format!("vcpupin {v}"), cpus)?;
    }
    if let Some(c) = &new.emulatorpin
        && old.emulatorpin.as_ref() != Some(c)
    {
        host.check_cpus("emulatorpin", c)?;
    }
    if let Some(c) = &new.vcpu_cpuset
        && old.vcpu_cpuset.as_ref() != Some(c)
    {
        host.check_cpus("vcpu cpuset", c)?;
    }
    if let Some(m) = &new.numa_mode
        && old.numa_mode.as_ref() != Some(m)
        && !NUMA_MODES.contains(&m.as_str())
    {
        return Err(format!(
            "numatune mode {}: unknown (one of {})",
            m.escape_debug(),
            NUMA_MODES.join(", ")
        ));
    }
    if let Some(n) = &new.numa_nodeset
        && old.numa_nodeset.as_ref() != Some(n)
    {
        host.check_nodes(&format!("numatune nodeset {}", n.escape_debug()), n)?;
    }
    if new.memory_kib != old.memory_kib && new.memory_kib == Some(0) {
        return Err("memory 0: must be more than 0".into());
    }
    if let Some(c) = new.current_memory_kib
        && (new.current_memory_kib != old.current_memory_kib || new.memory_kib != old.memory_kib)
    {
        if c == 0 {
            return Err("current_memory_kib 0: must be more than 0".into());
        }
        if let Some(m) = new.memory_kib
            && c > m
        {
            return Err(format!(
                "current_memory_kib {c}: above the domain's maximum memory ({m} KiB)"
            ));
        }
    }
    for (field, o, n) in [
        ("hard_limit_kib", old.hard_limit_kib, new.hard_limit_kib),
        ("soft_limit_kib", old.soft_limit_kib, new.soft_limit_kib),
        (
            "swap_hard_limit_kib",
            old.swap_hard_limit_kib,
            new.swap_hard_limit_kib,
        ),
    ] {
        if n != o && n == Some(0) {
            return Err(format!("memtune {field} 0: must be more than 0"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::read_xml;

    const XML: &str = "<domain type='kvm'><name>web1</name><uuid>0f8f1a3c-0000-4000-8000-000000000001</uuid><memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>1048576</currentMemory><vcpu placement='static'>4</vcpu></domain>";

    fn host() -> HostLimits {
        HostLimits {
            cpus: CpuSet::parse("0-3").unwrap(),
            nodes: Some(CpuSet::parse("0").unwrap()),
            memory_kib: Some(8 << 20),
        }
    }

    #[test]
    fn a_definition_must_be_the_targets() {
        let uuid = "0F8F1A3C00004000800000000000000 1".replace(' ', "");
        assert!(identity(XML, "web1", &uuid, true).is_ok());
        let e = identity(XML, "db1", &uuid, true).unwrap_err();
        assert_eq!(e, "it defines domain web1, not db1");
        let e = identity(XML, "web1", "0f8f1a3c-0000-4000-8000-000000000002", true).unwrap_err();
        assert!(e.contains("is not the domain's"), "{e}");
        let no_uuid = XML.replace("<uuid>0f8f1a3c-0000-4000-8000-000000000001</uuid>", "");
        assert!(
            identity(&no_uuid, "web1", &uuid, true)
                .unwrap_err()
                .contains("no <uuid>")
        );
        assert!(identity(&no_uuid, "web1", &uuid, false).is_ok());
        assert!(identity("<nope/>", "web1", &uuid, false).is_err());
    }

    #[test]
    fn absurd_settings_are_refused_by_field() {
        let old = read_xml(XML).unwrap();
        let h = host();
        let with = |f: &dyn Fn(&mut Settings)| {
            let mut s = old.clone();
            f(&mut s);
            settings(&old, &s, &h)
        };
        assert!(with(&|_| {}).is_ok());
        assert_eq!(
            with(&|s| s.vcpus = 0).unwrap_err(),
            "vcpus 0: out of range (1 to the domain's maximum, 4)"
        );
        assert_eq!(
            with(&|s| {
                s.vcpupin.insert(99999, "1".into());
            })
            .unwrap_err(),
            "vcpupin 99999: no such vCPU (the domain has 4)"
        );
        assert_eq!(
            with(&|s| {
                s.vcpupin.insert(1, "7".into());
            })
            .unwrap_err(),
            "vcpupin 1: no host CPU 7 (the host has 0-3)"
        );
        assert!(
            with(&|s| s.emulatorpin = Some("x".into()))
                .unwrap_err()
                .starts_with("emulatorpin: invalid CPU list")
        );
        assert!(
            with(&|s| s.numa_mode = Some("bogus".into()))
                .unwrap_err()
                .starts_with("numatune mode bogus: unknown")
        );
        assert_eq!(
            with(&|s| s.numa_nodeset = Some("99".into())).unwrap_err(),
            "numatune nodeset 99: no NUMA node 99 on this host (it has 0)"
        );
        assert_eq!(
            with(&|s| s.current_memory_kib = Some(0)).unwrap_err(),
            "current_memory_kib 0: must be more than 0"
        );
        assert!(
            with(&|s| s.current_memory_kib = Some(1 << 30))
                .unwrap_err()
                .contains("above the domain's maximum memory")
        );
        assert!(with(&|s| s.hard_limit_kib = Some(0)).is_err());
        assert!(with(&|s| s.max_vcpus = 1000).is_err());
        // what does not change is not checked: an old pin to a CPU this host lacks stays
        let mut pinned = old.clone();
        pinned.vcpupin.insert(0, "63".into());
        let mut fixed = pinned.clone();
        fixed.hard_limit_kib = Some(1 << 20);
        assert!(settings(&pinned, &fixed, &h).is_ok());
    }
}

//! The profile of each domain. First wins: `--profile NAME=DOMAIN` on the command line,
//! the domain's own `<metadata>` (`<kvmtune:profile xmlns:kvmtune="https://kvmtune.invalid/xmlns/profile/1">desktop</kvmtune:profile>`,
//! see [`kvmtune_domain::model::PROFILE_NS`]), then `--profile NAME`, then `server`.
//!
//! Every named profile is loaded once. A profile named on the command line that cannot be
//! loaded is an error of the run; one named in a domain's metadata that cannot be loaded
//! (an unknown name, or a path: metadata may only name built-in profiles, so a domain's XML
//! cannot make kvmtune read a file) is an error line for that domain, which is then audited
//! with the profile it would have had without the metadata.

use std::collections::BTreeMap;

use kvmtune_apply::engine::DomainChange;
use kvmtune_profile::Profile;

use crate::Result;
use crate::inventory::{Inventory, Parsed};

/// The profile when nothing names one.
pub const DEFAULT: &str = "server";

#[derive(Debug, Clone)]
pub struct Profiles {
    /// `--profile NAME`, or `server`.
    default: Profile,
    /// `--profile NAME=DOMAIN`: domain name → profile name.
    overrides: BTreeMap<String, String>,
    /// Every profile loaded, by the name it was asked for.
    loaded: BTreeMap<String, Profile>,
    /// Metadata profiles that could not be loaded: name → why.
    bad: BTreeMap<String, String>,
}

impl Profiles {
    /// One profile for every domain, whatever their metadata says.
    pub fn single(profile: Profile) -> Profiles {
        Profiles {
            default: profile,
            overrides: BTreeMap::new(),
            loaded: BTreeMap::new(),
            bad: BTreeMap::new(),
        }
    }

    /// From the `--profile` arguments (`NAME` at most once, `NAME=DOMAIN` any number of
    /// times), loading those profiles. Then [`Profiles::with_metadata`] loads the profiles
    /// the domains' metadata names.
    pub fn from_args(args: &[String]) -> Result<Profiles> {
        let mut default: Option<&str> = None;
        let mut overrides = BTreeMap::new();
        for a in args {
            match a.split_once('=') {
                Some((name, domain)) if !name.is_empty() && !domain.is_empty() => {
                    if let Some(old) = overrides.insert(domain.to_string(), name.to_string())
                        && old != name
                    {
                        return Err(crate::Error::msg(format!(
                            "--profile: domain {domain} is given two profiles ({old} and {name})"
                        )));
                    }
                }
                Some(_) => {
                    return Err(crate::Error::msg(format!(
                        "--profile {a}: expected NAME or NAME=DOMAIN"
                    )));
                }
                None => match default {
                    Some(d) if d != a => {
                        return Err(crate::Error::msg(format!(
                            "--profile: two default profiles ({d} and {a}); use NAME=DOMAIN for one domain"
                        )));
                    }
                    _ => default = Some(a),
                },
            }
        }
        let default_name = default.unwrap_or(DEFAULT);
        let mut loaded = BTreeMap::new();
        let default = kvmtune_rules::load_profile(default_name)?;
        loaded.insert(default_name.to_string(), default.clone());
        for name in overrides.values() {
            if !loaded.contains_key(name) {
                loaded.insert(name.clone(), kvmtune_rules::load_profile(name)?);
            }
        }
        Ok(Profiles {
            default,
            overrides,
            loaded,
            bad: BTreeMap::new(),
        })
    }

    /// Load the profiles the inventory's domains name in their metadata.
    pub fn with_metadata(mut self, inv: &Inventory) -> Profiles {
        for p in &inv.domains {
            self.learn_metadata(&p.domain);
        }
        self
    }

    /// Load the profile `d`'s metadata names, once (what [`Profiles::with_metadata`] does
    /// for every domain of an inventory; the streaming file audit calls it per file).
    pub fn learn_metadata(&mut self, d: &kvmtune_domain::Domain) {
        let Some(name) = &d.profile else {
            return;
        };
        if self.loaded.contains_key(name) || self.bad.contains_key(name) {
            return;
        }
        if name.contains('/') || name.ends_with(".toml") {
            self.bad.insert(
                name.clone(),
                "metadata may only name a built-in profile, not a file".to_string(),
            );
            return;
        }
        match kvmtune_rules::load_profile(name) {
            Ok(profile) => {
                self.loaded.insert(name.clone(), profile);
            }
            Err(e) => {
                self.bad.insert(name.clone(), e.to_string());
            }
        }
    }

    /// The profile for hosts and for domains nothing else names a profile for.
    pub fn default_profile(&self) -> &Profile {
        &self.default
    }

    /// The profile a domain is judged with.
    pub fn for_domain(&self, p: &Parsed) -> &Profile {
        self.resolve(p).0
    }

    /// The profile a domain is judged with, and an error line when its metadata names a
    /// profile that cannot be used.
    pub fn resolve(&self, p: &Parsed) -> (&Profile, Option<String>) {
        self.resolve_domain(&p.domain, &p.origin)
    }

    /// [`Profiles::resolve`] for a domain read from `origin`.
    pub fn resolve_domain(
        &self,
        d: &kvmtune_domain::Domain,
        origin: &str,
    ) -> (&Profile, Option<String>) {
        let name = &d.name;
        if let Some(profile) = self.overrides.get(name).and_then(|n| self.loaded.get(n)) {
            return (profile, None);
        }
        if let Some(meta) = &d.profile {
            if let Some(profile) = self.loaded.get(meta) {
                return (profile, None);
            }
            if let Some(why) = self.bad.get(meta) {
                return (
                    &self.default,
                    Some(format!(
                        "{origin}: profile {meta:?} from its metadata: {why}; audited with {} instead",
                        self.default.name
                    )),
                );
            }
        }
        (&self.default, None)
    }

    /// `--profile NAME=DOMAIN` for domains that are not in the inventory.
    pub fn unmatched(&self, inv: &Inventory) -> Vec<String> {
        self.unmatched_among(|d| inv.domains.iter().any(|p| p.domain.name == d))
    }

    /// The `--profile NAME=DOMAIN` arguments whose domain `audited` does not know.
    pub fn unmatched_among(&self, audited: impl Fn(&str) -> bool) -> Vec<String> {
        self.overrides
            .iter()
            .filter(|(d, _)| !audited(d))
            .map(|(d, n)| format!("--profile {n}={d}: no domain {d} among those audited"))
            .collect()
    }
}

/// A profile that a domain's metadata may name: a built-in one (not a file), that loads.
pub fn check_metadata_name(name: &str) -> Result<()> {
    if name.contains('/') || name.ends_with(".toml") {
        return Err(crate::Error::msg(format!(
            "--set-profile {name}: a domain's metadata may only name a built-in profile, not a file"
        )));
    }
    kvmtune_rules::load_profile(name)
        .map(|_| ())
        .map_err(|e| crate::Error::msg(format!("--set-profile {name}: {e}")))
}

/// The changes that make each domain of the inventory name `name` in its metadata
/// (`apply --set-profile`): its stored definition only, nothing else of the domain. Domains
/// whose metadata names it already are left out.
pub fn set_profile_changes(inv: &Inventory, name: &str) -> Result<Vec<DomainChange>> {
    check_metadata_name(name)?;
    let mut out = Vec::new();
    for p in &inv.domains {
        let edits = kvmtune_domain::model::profile_edits(&p.doc, name);
        if edits.is_empty() {
            continue;
        }
        let mut doc = p.doc.clone();
        kvmtune_domain::edit::apply(&mut doc, &edits);
        let was = p
            .domain
            .profile
            .as_deref()
            .map_or("none".to_string(), |w| format!("{w:?}"));
        out.push(DomainChange {
            name: p.domain.name.clone(),
            base_sha256: kvmtune_apply::sha256(&p.text),
            new_inactive: Some(doc.serialize()),
            live_target: None,
            reasons: vec![format!(
                "profile: the metadata names profile {name} (was: {was}); kvmtune judges the domain with it from now on"
            )],
        });
    }
    Ok(out)
}

/// Whether the XML libvirt stored names `name` in its metadata: one line when it does not.
pub fn profile_in_effect(xml: &str, name: &str) -> Vec<String> {
    match kvmtune_domain::Domain::parse(xml) {
        Ok((_, d)) if d.profile.as_deref() == Some(name) => Vec::new(),
        Ok((_, d)) => vec![format!(
            "profile: the stored XML names {:?}, not {name}",
            d.profile.as_deref().unwrap_or("no profile")
        )],
        Err(e) => vec![format!("stored XML: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Origin, Select};

    fn domain(name: &str, meta: Option<&str>) -> String {
        let meta = meta.map_or(String::new(), |m| {
            format!(
                "<metadata><kvmtune:profile xmlns:kvmtune='{}'>{m}</kvmtune:profile></metadata>",
                kvmtune_domain::model::PROFILE_NS
            )
        });
        format!(
            "<domain type='kvm'><name>{name}</name>{meta}<memory>1048576</memory><vcpu>2</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>"
        )
    }

    fn inventory(doms: &[(&str, Option<&str>)]) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let mut targets = Vec::new();
        for (name, meta) in doms {
            let f = d.path().join(format!("{name}.xml"));
            std::fs::write(&f, domain(name, *meta)).unwrap();
            targets.push(f.display().to_string());
        }
        let sel = Select {
            targets,
            ..Select::default()
        };
        let inv = Inventory::gather(&Origin::local("test:///default"), &sel).unwrap();
        (d, inv)
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn used(ps: &Profiles, inv: &Inventory, name: &str) -> String {
        let p = inv.domains.iter().find(|p| p.domain.name == name).unwrap();
        ps.for_domain(p).name.clone()
    }

    #[test]
    fn command_line_beats_metadata_beats_default_beats_server() {
        let (_d, inv) = inventory(&[("a", Some("desktop")), ("b", Some("desktop")), ("c", None)]);
        // nothing named: metadata, else server
        let ps = Profiles::from_args(&[]).unwrap().with_metadata(&inv);
        assert_eq!(used(&ps, &inv, "a"), "desktop");
        assert_eq!(used(&ps, &inv, "c"), "server");
        // --profile NAME: metadata still wins over it
        let ps = Profiles::from_args(&args(&["latency"]))
            .unwrap()
            .with_metadata(&inv);
        assert_eq!(used(&ps, &inv, "a"), "desktop");
        assert_eq!(used(&ps, &inv, "c"), "latency");
        assert_eq!(ps.default_profile().name, "latency");
        // --profile NAME=DOMAIN beats metadata
        let ps = Profiles::from_args(&args(&["dense=a", "latency", "migratable=c"]))
            .unwrap()
            .with_metadata(&inv);
        assert_eq!(used(&ps, &inv, "a"), "dense");
        assert_eq!(used(&ps, &inv, "b"), "desktop");
        assert_eq!(used(&ps, &inv, "c"), "migratable");
        assert!(ps.unmatched(&inv).is_empty());
        let ps = Profiles::from_args(&args(&["dense=nope"]))
            .unwrap()
            .with_metadata(&inv);
        assert_eq!(ps.unmatched(&inv).len(), 1);
    }

    #[test]
    fn a_bad_metadata_profile_is_an_error_line_and_a_bad_argument_an_error() {
        let (_d, inv) = inventory(&[("a", Some("no-such-profile")), ("b", Some("/etc/x.toml"))]);
        let ps = Profiles::from_args(&args(&["latency"]))
            .unwrap()
            .with_metadata(&inv);
        for p in &inv.domains {
            let (profile, err) = ps.resolve(p);
            assert_eq!(profile.name, "latency");
            let err = err.unwrap();
            assert!(err.contains("audited with latency instead"), "{err}");
        }
        // the command line overrides a bad metadata profile without complaint
        let ps = Profiles::from_args(&args(&["dense=a"]))
            .unwrap()
            .with_metadata(&inv);
        let a = inv.domains.iter().find(|p| p.domain.name == "a").unwrap();
        assert_eq!(ps.resolve(a).0.name, "dense");
        assert!(ps.resolve(a).1.is_none());
        // bad arguments
        assert!(Profiles::from_args(&args(&["no-such-profile"])).is_err());
        assert!(Profiles::from_args(&args(&["no-such-profile=a"])).is_err());
        assert!(Profiles::from_args(&args(&["latency", "dense"])).is_err());
        assert!(Profiles::from_args(&args(&["dense=a", "latency=a"])).is_err());
        assert!(Profiles::from_args(&args(&["=a"])).is_err());
        assert!(Profiles::from_args(&args(&["latency", "latency"])).is_ok());
    }

    #[test]
    fn set_profile_writes_metadata_only_and_skips_domains_that_have_it() {
        let (_d, inv) = inventory(&[("a", Some("desktop")), ("b", None)]);
        let ch = set_profile_changes(&inv, "desktop").unwrap();
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert_eq!(ch[0].name, "b");
        assert!(ch[0].live_target.is_none());
        let xml = ch[0].new_inactive.as_deref().unwrap();
        assert!(profile_in_effect(xml, "desktop").is_empty(), "{xml}");
        assert_eq!(profile_in_effect(xml, "latency").len(), 1);
        // the rest of the definition is as it was
        let old = &inv
            .domains
            .iter()
            .find(|p| p.domain.name == "b")
            .unwrap()
            .text;
        assert_eq!(
            xml.replace(&format!("<metadata><kvmtune:profile xmlns:kvmtune='{}'>desktop</kvmtune:profile></metadata>", kvmtune_domain::model::PROFILE_NS), ""),
            *old
        );
        assert!(set_profile_changes(&inv, "/etc/x.toml").is_err());
        assert!(set_profile_changes(&inv, "no-such").is_err());
    }
}

//! The audit of an inventory: findings per domain and for the host, the fixed XML of the
//! findings' fixes, and what to name fixed files.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use kvmtune_profile::{Counts, Profile};
use kvmtune_rules::audit::{self, Applies, Cx, Finding, Fix, Peer, Severity};

use kvmtune_domain::{Document, Domain};
use kvmtune_host::Host;

use crate::inventory::{Inventory, NO_CAPS, Parsed};
use crate::profiles::Profiles;

/// The `kind` and `version` of the audit document (docs/json.md).
pub const KIND: &str = "kvmtune.audit";
/// Version 2: every fix has a `class` and a `risk`.
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub name: String,
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub origin: String,
    /// The name of the profile the domain was judged with.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub profile: String,
    /// Highest severity among the findings.
    pub worst: Option<Severity>,
    pub findings: Vec<Finding>,
}

impl DomainReport {
    /// [`AuditReport::redact`] for one domain.
    pub fn redact(&mut self) {
        self.findings.iter_mut().for_each(redact_finding);
    }
}

/// [`DomainReport::redact`] for one finding.
pub fn redact_finding(f: &mut Finding) {
    for e in &mut f.evidence {
        redact_text(&mut e.value);
    }
    redact_text(&mut f.message);
}

/// [`kvmtune_domain::secrets::redact`] in place. Secrets are attribute values and element
/// texts of two elements, found from their tags: a text without either tag has none and
/// stays as it is.
fn redact_text(s: &mut String) {
    if kvmtune_domain::secrets::may_hold_secret(s) {
        *s = kvmtune_domain::secrets::redact(s);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub profile: String,
    pub host: String,
    pub domain_capabilities: String,
    pub summary: Counts,
    pub domains: Vec<DomainReport>,
    /// Findings about the host as a whole (overcommit, hugepage demand, KSM).
    pub host_findings: Vec<Finding>,
    /// Inputs that could not be audited (unreadable, malformed XML, not a domain).
    pub errors: Vec<String>,
}

impl AuditReport {
    /// Every finding, the domains' and the host's.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.domains
            .iter()
            .flat_map(|d| &d.findings)
            .chain(&self.host_findings)
    }

    pub fn worst(&self) -> Option<Severity> {
        self.findings().map(|f| f.severity).max()
    }

    /// Replace secrets (graphics passwords, cookies) in every evidence value and message.
    pub fn redact(&mut self) {
        for d in &mut self.domains {
            d.redact();
        }
        self.host_findings.iter_mut().for_each(redact_finding);
    }

    pub fn domain(&self, origin: &str) -> Option<&DomainReport> {
        self.domains.iter().find(|d| d.origin == origin)
    }
}

fn peers(inv: &Inventory) -> Vec<Peer<'_>> {
    inv.domains
        .iter()
        .map(|p| Peer {
            domain: &p.domain,
            active: p.active,
        })
        .collect()
}

/// Audit every domain of the inventory, and the host over all of them, with one profile
/// for all.
pub fn audit(inv: &Inventory, profile: &Profile) -> AuditReport {
    audit_with(inv, &Profiles::single(profile.clone()))
}

/// Audit every domain of the inventory with its own profile, and the host over all of them
/// with the default profile.
pub fn audit_with(inv: &Inventory, profiles: &Profiles) -> AuditReport {
    let peers = peers(inv);
    // pin-overlap compares a domain with the peers through this index: not every pinned
    // domain with every other
    let index = audit::PeerIndex::new(&peers);
    let mut domains = Vec::new();
    let mut errors = inv.errors.clone();
    errors.extend(profiles.unmatched(inv));
    for p in &inv.domains {
        let (profile, error) = profiles.resolve(p);
        errors.extend(error);
        let cx = Cx {
            doc: &p.doc,
            d: &p.domain,
            profile,
            host: inv.host.as_ref(),
            caps: inv.caps.get(&p.domain.virt_type),
            peers: &peers,
            memo: Default::default(),
        };
        let (mut findings, wait) = audit::audit_deferring_peers(&cx);
        if let Some(wait) = wait {
            wait.finish(&index, cx.host, &mut findings);
        }
        // `finish` counts the summary
        domains.push(counted(
            DomainReport {
                name: p.domain.name.clone(),
                origin: p.origin.clone(),
                profile: profile.name.clone(),
                worst: None,
                findings,
            },
            &mut Counts::default(),
        ));
    }
    let profile = profiles.default_profile();
    let host_findings = match inv.domains.first() {
        Some(p) => audit::audit_host(&Cx {
            doc: &p.doc,
            d: &p.domain,
            profile,
            host: inv.host.as_ref(),
            caps: None,
            peers: &peers,
            memo: Default::default(),
        }),
        None => Vec::new(),
    };
    let mut host_findings = host_findings;
    if !inv.whole_host {
        partial_host(&mut host_findings, inv.domains.len());
    }
    finish(
        profile.name.clone(),
        inv.host_origin.clone(),
        inv.caps_origin.clone(),
        domains,
        host_findings,
        errors,
    )
}

/// What the rules that compare domains read of a peer: its name, vCPUs, memory (as
/// [`Domain::memory`] gives it), memory backing, NUMA tuning and pins; nothing else (host
/// totals and `pin-overlap` read no more). A few hundred bytes instead of the whole view;
/// `tests/streaming_audit.rs` proves the reports equal.
fn peer_view(d: &Domain) -> Domain {
    Domain {
        node: d.node,
        virt_type: d.virt_type.clone(),
        name: d.name.clone(),
        uuid: None,
        os_id: None,
        profile: None,
        os: Default::default(),
        memory_kib: Some(d.memory()),
        current_memory_kib: None,
        max_memory_kib: d.max_memory_kib,
        max_memory_slots: d.max_memory_slots,
        vcpu: d.vcpu.clone(),
        iothreads: d.iothreads,
        cputune: d.cputune.clone(),
        numatune: d.numatune.clone(),
        cpu: None,
        memory_backing: d.memory_backing.clone(),
        memtune: None,
        features: Default::default(),
        clock: None,
        devices: Default::default(),
        invalid: Vec::new(),
    }
}

/// What a streamed audit keeps of a domain whose report waits for the last file.
struct Waiting {
    /// Name, origin, profile and the first part's `worst`; no findings.
    report: DomainReport,
    /// (severity, rule) of each finding of the first part, in order.
    keys: Vec<(Severity, &'static str)>,
    wait: audit::Deferred,
}

/// Items kept in fixed-size chunks: pushing never moves those already kept.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    const CHUNK: usize = 256;

    fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < Self::CHUNK => c.push(item),
            _ => {
                let mut c = Vec::with_capacity(Self::CHUNK);
                c.push(item);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// Audit XML files one at a time, as `kvmtune audit FILE...` does: each file is read,
/// parsed, audited and dropped before the next, so memory grows with the number of files
/// only by each domain's findings and a small view of it for the host totals. A domain
/// whose findings can depend on the others ([`audit::reads_peers`]: every vCPU pinned to one
/// host CPU) gets the rules that compare domains once all files are read, from what its
/// first pass kept ([`audit::audit_deferring_peers`]); each file is parsed once.
///
/// The report is the one [`audit_with`] gives for an [`Inventory`] of the same files
/// (`Inventory::gather` with these files and `host`): the same domains, findings, order
/// and error lines.
pub fn audit_files(
    paths: &[String],
    host: Option<&Host>,
    host_origin: String,
    profiles: Profiles,
) -> AuditReport {
    let mut domains: Vec<(usize, DomainReport)> = Vec::new();
    // the domains given in two parts: where the first part is in `domains`
    let mut waiting = std::collections::HashMap::new();
    let mut report = audit_files_with(paths, host, host_origin, profiles, &mut |i, part| {
        match part {
            Streamed::Whole(d) => domains.push((i, d)),
            Streamed::First(d) => {
                waiting.insert(i, domains.len());
                domains.push((i, d));
            }
            Streamed::Rest { report, added, .. } => {
                if let Some(d) = waiting.remove(&i).and_then(|at| domains.get_mut(at)) {
                    d.1.worst = report.worst;
                    d.1.findings = merged(std::mem::take(&mut d.1.findings), added);
                }
            }
        }
        Ok(())
    })
    .unwrap_or_else(|never: std::convert::Infallible| match never {});
    // the order of `finish`: worst first, input order among equals
    domains.sort_by(|(i, a), (j, b)| sort_key(a).cmp(&sort_key(b)).then(i.cmp(j)));
    report.domains = domains.into_iter().map(|(_, d)| d).collect();
    report
}

/// A domain's report as [`audit_files_with`] hands it over.
pub enum Streamed {
    /// The whole report.
    Whole(DomainReport),
    /// The findings of every rule but those that compare domains, of a domain whose vCPUs
    /// are each pinned to one host CPU: those rules run once every file is read. `worst` is
    /// of these findings only. The rest follows as [`Streamed::Rest`], after the last
    /// file; nothing of this part is kept until then.
    First(DomainReport),
    /// The end of a domain given as [`Streamed::First`]: `report` has its name, origin,
    /// profile and the whole report's `worst`, and no findings; `added` are the findings
    /// of the rules that compare domains, each with how many of the first part's findings
    /// precede it in the whole report ([`merged`]); `total` counts the whole report's
    /// findings.
    Rest {
        report: DomainReport,
        added: Vec<(usize, Finding)>,
        total: usize,
    },
}

/// Findings in a whole report's order from a [`Streamed::First`] and a [`Streamed::Rest`].
pub use kvmtune_rules::audit::merged;

/// [`audit_files`] handing each domain's report to `sink` (with its index in input order)
/// as soon as it is audited, instead of keeping it: the returned report has no `domains`
/// (its `summary` counts them all). A caller that wants the report's order sorts by
/// [`sort_key`] (of the whole report: the `worst` and `total` of a [`Streamed::Rest`]) and
/// the index. A sink error ends the audit with that error.
///
/// A domain whose findings depend on the others comes in two parts ([`Streamed`]), so that
/// nothing of its report but its name, origin, profile and the (severity, rule) of each
/// finding waits in memory for the last file.
pub fn audit_files_with<E>(
    paths: &[String],
    host: Option<&Host>,
    host_origin: String,
    mut profiles: Profiles,
    sink: &mut dyn FnMut(usize, Streamed) -> Result<(), E>,
) -> Result<AuditReport, E> {
    use kvmtune_host::fsio::{ReadError, read_input_text};
    let mut read_errors = Vec::new();
    let mut parse_errors = Vec::new();
    let mut profile_errors = Vec::new();
    // small views of the domains, in chunks of a fixed size: one vector of all would be
    // copied at each doubling, which an allocator without `mremap` (or one that keeps
    // freed blocks) pays for in peak memory
    let mut views = Chunked::<Domain>::default();
    let mut counts = Counts::default();
    // the domains whose findings wait for all the others: the report of every other rule
    // and what the rules that compare domains need (no document, no text)
    let mut deferred: Vec<(usize, Waiting)> = Vec::new();
    // the first domain, for the host-level rules' context (they read only the peers)
    let mut first: Option<(Document, Domain)> = None;
    for path in paths {
        let text = match read_input_text(std::path::Path::new(path)) {
            Ok(text) => text,
            Err(ReadError::NotText { .. }) => {
                read_errors.push(format!("{path}: not UTF-8 text"));
                continue;
            }
            Err(ReadError::Io { source, .. }) => {
                read_errors.push(format!("cannot read {path}: {source}"));
                continue;
            }
            Err(e) => {
                read_errors.push(e.to_string());
                continue;
            }
        };
        let origin = format!("file:{path}");
        let (doc, domain) = match Domain::parse_owned(text) {
            Ok(p) => p,
            Err(e) => {
                parse_errors.push(format!("{origin}: {e}"));
                continue;
            }
        };
        profiles.learn_metadata(&domain);
        let (profile, error) = profiles.resolve_domain(&domain, &origin);
        profile_errors.extend(error);
        let index = views.len();
        views.push(peer_view(&domain));
        let peers = [Peer {
            domain: &domain,
            active: false,
        }];
        let cx = Cx {
            doc: &doc,
            d: &domain,
            profile,
            host,
            caps: None,
            peers: &peers,
            memo: Default::default(),
        };
        // a domain's profile is known once its own metadata is read: later files change
        // nothing of it
        let (findings, wait) = audit::audit_deferring_peers(&cx);
        let report = DomainReport {
            name: domain.name.clone(),
            origin,
            profile: profile.name.clone(),
            worst: None,
            findings,
        };
        match wait {
            Some(wait) => {
                report.findings.iter().for_each(|f| counts.add(f.severity));
                let waiting = Waiting {
                    report: DomainReport {
                        name: report.name.clone(),
                        origin: report.origin.clone(),
                        profile: report.profile.clone(),
                        worst: report.findings.iter().map(|f| f.severity).max(),
                        findings: Vec::new(),
                    },
                    keys: report
                        .findings
                        .iter()
                        .map(|f| (f.severity, f.rule))
                        .collect(),
                    wait,
                };
                let mut report = report;
                report.worst = waiting.report.worst;
                sink(index, Streamed::First(report))?;
                deferred.push((index, waiting));
            }
            None => sink(index, Streamed::Whole(counted(report, &mut counts)))?,
        }
        if first.is_none() {
            first = Some((doc, domain));
        }
    }
    let peers: Vec<Peer> = views
        .iter()
        .map(|d| Peer {
            domain: d,
            active: false,
        })
        .collect();
    let index = audit::PeerIndex::new(&peers);
    for (i, w) in deferred {
        let added = w.wait.finish_added(&index, host, &w.keys);
        added.iter().for_each(|(_, f)| counts.add(f.severity));
        let mut report = w.report;
        report.worst = report
            .worst
            .max(added.iter().map(|(_, f)| f.severity).max());
        let total = w.keys.len() + added.len();
        sink(
            i,
            Streamed::Rest {
                report,
                added,
                total,
            },
        )?;
    }
    let mut errors = read_errors;
    errors.extend(parse_errors);
    errors.extend(profiles.unmatched_among(|n| views.iter().any(|d| d.name == n)));
    errors.extend(profile_errors);
    let profile = profiles.default_profile();
    let mut host_findings = match &first {
        Some((doc, d)) => audit::audit_host(&Cx {
            doc,
            d,
            profile,
            host,
            caps: None,
            peers: &peers,
            memo: Default::default(),
        }),
        None => Vec::new(),
    };
    partial_host(&mut host_findings, views.len());
    host_findings.iter().for_each(|f| counts.add(f.severity));
    Ok(AuditReport {
        profile: profile.name.clone(),
        host: host_origin,
        domain_capabilities: NO_CAPS.to_string(),
        summary: counts,
        domains: Vec::new(),
        host_findings,
        errors,
    })
}

/// How the report orders domains: worst first, then most findings, then by name (the
/// input order decides among equals).
pub fn sort_key(
    d: &DomainReport,
) -> (
    std::cmp::Reverse<Option<Severity>>,
    std::cmp::Reverse<usize>,
    &str,
) {
    (
        std::cmp::Reverse(d.worst),
        std::cmp::Reverse(d.findings.len()),
        d.name.as_str(),
    )
}

/// Domains in the report's order (a stable sort by [`sort_key`]).
fn sort_domains(domains: &mut [DomainReport]) {
    domains.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
}

/// A report with all its findings: its `worst` set, its findings counted into `counts`.
fn counted(mut report: DomainReport, counts: &mut Counts) -> DomainReport {
    report.findings.iter().for_each(|f| counts.add(f.severity));
    report.worst = report.findings.iter().map(|f| f.severity).max();
    report
}

/// A judgement of the host from some of its domains says so.
fn partial_host(host_findings: &mut [Finding], n: usize) {
    for f in host_findings {
        let partial = format!(
            "judged on the {n} given domain(s) only, not on every domain of the host (audit --all for that)"
        );
        f.assumed = Some(match f.assumed.take() {
            Some(a) => format!("{a}; {partial}"),
            None => partial,
        });
    }
}

/// The report: domains worst first, the summary counted.
fn finish(
    profile: String,
    host: String,
    domain_capabilities: String,
    mut domains: Vec<DomainReport>,
    host_findings: Vec<Finding>,
    errors: Vec<String>,
) -> AuditReport {
    sort_domains(&mut domains);
    let mut report = AuditReport {
        profile,
        host,
        domain_capabilities,
        summary: Counts::default(),
        domains,
        host_findings,
        errors,
    };
    report.summary = Counts::of(report.findings().map(|f| f.severity));
    report
}

/// A domain with the fixes of its findings applied.
#[derive(Debug, Clone)]
pub struct Fixed<'a> {
    pub input: &'a Parsed,
    /// The fixed document, serialized.
    pub xml: String,
    /// The rules whose fixes were applied.
    pub rules: BTreeSet<String>,
    /// One line per applied fix: `RULE: SUMMARY (when)`.
    pub reasons: Vec<String>,
}

impl Fixed<'_> {
    pub fn changed(&self) -> bool {
        self.xml != self.input.text
    }

    /// The file name for fixed XML: the input file's name, or `NAME.xml`.
    pub fn file_name(&self) -> String {
        match &self.input.path {
            Some(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "domain.xml".into()),
            None => format!("{}.xml", file_safe(&self.input.domain.name)),
        }
    }

    /// The name diffs show: the input path, or `NAME.xml`.
    pub fn display_name(&self) -> String {
        self.input
            .path
            .as_ref()
            .map(|x| x.display().to_string())
            .unwrap_or_else(|| format!("{}.xml", self.input.domain.name))
    }

    pub fn diff(&self) -> String {
        crate::unified_diff(&self.display_name(), &self.input.text, &self.xml, 3)
    }

    /// The diff with secrets replaced on both sides.
    pub fn redacted_diff(&self) -> String {
        crate::unified_diff(
            &self.display_name(),
            &kvmtune_domain::secrets::redact(&self.input.text),
            &kvmtune_domain::secrets::redact(&self.xml),
            3,
        )
    }
}

/// Characters safe in a file name; anything else becomes `_`.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The fixed XML of every audited domain: the fixes of its findings (only those of `only`
/// when it is not empty) applied to its document.
pub fn fixed<'a>(inv: &'a Inventory, report: &AuditReport, only: &[String]) -> Vec<Fixed<'a>> {
    fixed_by(inv, report, |f| {
        only.is_empty() || only.iter().any(|x| x == f.rule)
    })
}

/// The fixed XML of every audited domain: the fixes `take` accepts applied to its document.
pub fn fixed_by<'a>(
    inv: &'a Inventory,
    report: &AuditReport,
    take: impl Fn(&Finding) -> bool,
) -> Vec<Fixed<'a>> {
    let mut out = Vec::new();
    for p in &inv.domains {
        let Some(r) = report.domain(&p.origin) else {
            continue;
        };
        let mut edits = Vec::new();
        let mut rules = BTreeSet::new();
        let mut reasons = Vec::new();
        for f in &r.findings {
            let Some(fix) = &f.fix else { continue };
            if !take(f) {
                continue;
            }
            edits.extend(fix.edits.iter().cloned());
            rules.insert(f.rule.to_string());
            reasons.push(reason(f.rule, fix));
        }
        let mut doc = p.doc.clone();
        audit::apply(&mut doc, &edits);
        out.push(Fixed {
            input: p,
            xml: doc.serialize(),
            rules,
            reasons,
        });
    }
    out
}

/// One line for a fix: `RULE: SUMMARY (when; CLASS: RISK)`.
pub fn reason(rule: &str, fix: &Fix) -> String {
    let when = match fix.applies {
        Applies::Live => "live",
        Applies::NextBoot => "next start",
    };
    format!(
        "{rule}: {} ({when}; {}: {})",
        fix.summary,
        fix.class,
        fix.risk.trim_end_matches('.')
    )
}

/// Two inputs that would be written to the same file name, if any.
pub fn name_clash(fixed: &[Fixed]) -> Option<(String, String, String)> {
    let mut seen = std::collections::BTreeMap::new();
    for f in fixed {
        if let Some(other) = seen.insert(f.file_name(), f.input.origin.clone()) {
            return Some((other, f.input.origin.clone(), f.file_name()));
        }
    }
    None
}

/// Where fixed XML goes in `dir`.
pub fn output_paths(dir: &std::path::Path, fixed: &[Fixed]) -> Vec<(PathBuf, Vec<u8>)> {
    fixed
        .iter()
        .map(|f| (dir.join(f.file_name()), f.xml.clone().into_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Origin, Select};

    #[test]
    fn chunked_keeps_order_and_never_moves_what_it_holds() {
        let mut c = Chunked::<usize>::default();
        c.push(0);
        let first: *const usize = c.iter().next().expect("one item");
        for i in 1..1000 {
            c.push(i);
        }
        assert_eq!(c.len(), 1000);
        assert!(c.iter().copied().eq(0..1000));
        // the first item was not copied elsewhere as the others came
        let again: *const usize = c.iter().next().expect("items");
        assert_eq!(first, again);
        // close case: an empty one holds nothing
        let empty = Chunked::<usize>::default();
        assert_eq!((empty.len(), empty.iter().count()), (0, 0));
    }

    const UNTUNED: &str = "<domain type='kvm'><name>web/1</name><memory>1048576</memory>\
        <vcpu>2</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
        <disk type='file' device='disk'><driver name='qemu' type='raw' cache='writethrough'/>\
        <source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>";

    fn inventory(xml: &str) -> (tempfile::TempDir, Inventory) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vm.xml");
        std::fs::write(&f, xml).unwrap();
        let sel = Select {
            targets: vec![f.display().to_string()],
            ..Select::default()
        };
        let inv = Inventory::gather(&Origin::local("test:///default"), &sel).unwrap();
        (d, inv)
    }

    #[test]
    fn the_report_counts_what_it_lists_and_fixes_change_the_xml() {
        let (_d, inv) = inventory(UNTUNED);
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let r = audit(&inv, &profile);
        let n = r.findings().count();
        assert_eq!(r.summary.error + r.summary.warn + r.summary.info, n);
        assert!(r.findings().any(|f| f.rule == "disk-cache"));
        let fx = fixed(&inv, &r, &[]);
        assert_eq!(fx.len(), 1);
        assert!(fx[0].changed());
        assert!(fx[0].rules.contains("disk-cache"));
        assert_eq!(fx[0].file_name(), "vm.xml");
        assert!(fx[0].diff().contains("writethrough"));
        // only the rules asked for
        let only = fixed(&inv, &r, &["no-such-rule".to_string()]);
        assert!(!only[0].changed());
        assert!(only[0].rules.is_empty());
    }

    #[test]
    fn redacting_in_place_is_redacting() {
        for t in [
            "<graphics type='vnc' passwd='s3cret'/>",
            "cookie x passwd='s3cret' graphics",
            "<cookie name='a'>tok</cookie>",
            "",
            "plain text, no tag",
        ] {
            let mut s = t.to_string();
            redact_text(&mut s);
            assert_eq!(s, kvmtune_domain::secrets::redact(t), "{t}");
        }
    }

    #[test]
    fn names_without_a_file_are_made_file_safe() {
        let (_d, mut inv) = inventory(UNTUNED);
        inv.domains[0].path = None;
        let profile = kvmtune_rules::load_profile("server").unwrap();
        let r = audit(&inv, &profile);
        let fx = fixed(&inv, &r, &[]);
        assert_eq!(fx[0].file_name(), "web_1.xml");
        let two = vec![fx[0].clone(), fx[0].clone()];
        assert!(name_clash(&two).is_some());
        assert!(name_clash(&fx).is_none());
    }
}

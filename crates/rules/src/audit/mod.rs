//! The domain audit: rules that read a domain (and, when known, the host and the other
//! domains of the host) and report findings with evidence, a reason, a fix expressed as
//! edits on the domain document, and the fix's risk.

pub mod docs;
mod rules_clock;
mod rules_cpu;
mod rules_dev;
mod rules_gfx;
mod rules_host;
mod rules_io;
mod rules_mem;
mod rules_numa;
mod rules_qemu;
mod rules_sched;
#[cfg(test)]
pub(crate) mod testkit;

pub use kvmtune_domain::caps::DomainCaps;
pub use kvmtune_domain::edit::{Edit, Op, Seg, Target, apply};

use kvmtune_domain::{Document, Domain, NodeId};
use kvmtune_host::{CpuSet, Host};
use serde::Serialize;

pub use kvmtune_profile::Level;
use kvmtune_profile::Profile;

pub use kvmtune_profile::Severity;

/// When a fix takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applies {
    /// On the running domain at once (and in its persistent config).
    Live,
    /// In the persistent config; the running domain picks it up at its next cold boot
    /// (shut down and start; a reboot from inside the guest is not enough).
    NextBoot,
}

/// What a fix needs before it can be applied without harm: `kvmtune apply` applies `safe`
/// fixes unless asked for more (`--class`, `--rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixClass {
    /// No guest cooperation needed (an unused tablet removed, a cache mode, USB model none).
    Safe,
    /// The guest needs a driver first (virtio disk or NIC for Windows or an unknown guest);
    /// changing a disk's bus also renames the device inside a Linux guest.
    GuestDriver,
    /// The guest sees different hardware (CPU model or topology, clock, Hyper-V, machine
    /// type): usually fine, sometimes a Windows reactivation or a boot loop.
    GuestVisible,
    /// Needs a host resource (a hugepage pool, dedicated CPUs, free memory on a node).
    Capacity,
    /// Limits live migration (host-passthrough, host-specific pins).
    Migration,
}

impl FixClass {
    pub const ALL: [FixClass; 5] = [
        FixClass::Safe,
        FixClass::GuestDriver,
        FixClass::GuestVisible,
        FixClass::Capacity,
        FixClass::Migration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FixClass::Safe => "safe",
            FixClass::GuestDriver => "guest-driver",
            FixClass::GuestVisible => "guest-visible",
            FixClass::Capacity => "capacity",
            FixClass::Migration => "migration",
        }
    }

    /// A class by its name (`safe`, `guest-driver`, ...).
    pub fn parse(s: &str) -> Option<FixClass> {
        FixClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// One line: what the class means.
    pub fn meaning(self) -> &'static str {
        match self {
            FixClass::Safe => {
                "no guest cooperation needed (an unused tablet removed, a cache mode, USB model none)"
            }
            FixClass::GuestDriver => {
                "the guest needs a driver first (a virtio disk or NIC for Windows or an unknown guest); a disk moved to another bus is also renamed inside a Linux guest"
            }
            FixClass::GuestVisible => {
                "the guest sees different hardware (CPU model or topology, clock, Hyper-V, devices): usually fine, sometimes a Windows reactivation or a boot loop"
            }
            FixClass::Capacity => {
                "needs a host resource (a hugepage pool, dedicated CPUs, free memory on a node)"
            }
            FixClass::Migration => "limits live migration (host-passthrough, host-specific pins)",
        }
    }
}

impl std::fmt::Display for FixClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's description: what `kvmtune rules`, `explain` and docs/rules.md show.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub id: &'static str,
    pub title: &'static str,
    /// Default severity (a profile may override it).
    pub severity: Severity,
    /// Profiles the rule is on in by default; `["*"]` for all.
    pub profiles: &'static [&'static str],
    pub why: &'static str,
    pub fix: &'static str,
    pub risk: &'static str,
    /// What the rule's fix needs (a fix may declare another class where the guest decides
    /// it, e.g. a virtio NIC for a Windows guest).
    pub class: FixClass,
    pub source: &'static str,
    /// Whether the rule needs host facts (it is skipped without them).
    pub needs_host: bool,
}

/// Where a finding points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `/domain/devices/disk[2]/driver`, or a host path.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub path: String,
    pub line: Option<usize>,
    /// The current value: a start tag, an attribute value, a host fact.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// One sentence: what the fix does.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub summary: String,
    pub edits: Vec<Edit>,
    /// The equivalent command an admin would type.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub command: String,
    pub applies: Applies,
    /// What the fix needs: the rule's class unless the fix declares another.
    pub class: FixClass,
    /// The fix's risk: the rule's, or one in words for this guest.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub risk: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub rule: &'static str,
    pub severity: Severity,
    /// The domain's name, or "host".
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub subject: String,
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub title: &'static str,
    /// What was found, specifically.
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub message: String,
    pub evidence: Vec<Evidence>,
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub why: &'static str,
    pub fix: Option<Fix>,
    #[serde(serialize_with = "kvmtune_domain::json_text::text")]
    pub risk: &'static str,
    /// The XML only suggests the problem (e.g. the guest OS is inferred).
    pub suspect: bool,
    /// What the rule assumed for lack of host facts or domain capabilities.
    #[serde(serialize_with = "kvmtune_domain::json_text::opt_text")]
    pub assumed: Option<String>,
    /// The rule's fix class, for the fix this finding gets.
    #[serde(skip)]
    default_class: FixClass,
}

/// Another domain of the same host (for overlap and overcommit rules).
pub struct Peer<'a> {
    pub domain: &'a Domain,
    pub active: bool,
}

/// Everything a rule may read.
pub struct Cx<'a> {
    pub doc: &'a Document,
    pub d: &'a Domain,
    pub profile: &'a Profile,
    pub host: Option<&'a Host>,
    pub caps: Option<&'a DomainCaps>,
    /// All domains of the host, this one included.
    pub peers: &'a [Peer<'a>],
    /// What several rules find the same way, found once for this context
    /// (`Memo::default()`).
    pub memo: Memo,
}

/// Findings of a [`Cx`] that several rules share, each computed on first use.
#[derive(Default)]
pub struct Memo {
    /// The qemu:commandline `-cpu` that replaces libvirt's.
    cpu_override: std::cell::OnceCell<Option<rules_qemu::Arg>>,
    /// What hides the CPUID hypervisor bit.
    hypervisor_hider: std::cell::OnceCell<Option<rules_qemu::Hider>>,
    /// Why Windows does not get the XML's Hyper-V enlightenments.
    windows_blind: std::cell::OnceCell<Option<rules_qemu::Blind>>,
    /// The I/O threads some device's driver names.
    used_iothreads: std::cell::OnceCell<std::collections::BTreeSet<u32>>,
    /// The CPUs of one-to-one vCPU pins ([`rules_numa::dedicated`]).
    dedicated: std::cell::OnceCell<Option<CpuSet>>,
}

impl Cx<'_> {
    /// [`rules_numa::dedicated`] of this domain, found once (several rules ask).
    pub(crate) fn dedicated(&self) -> Option<&CpuSet> {
        self.memo
            .dedicated
            .get_or_init(|| rules_numa::dedicated(self.d))
            .as_ref()
    }

    pub fn ev(&self, node: NodeId) -> Evidence {
        Evidence {
            path: self.doc.path(node),
            line: self.doc.line(node),
            value: self.doc.start_tag(node),
        }
    }
    pub fn ev_attr(&self, node: NodeId, attr: &str) -> Evidence {
        Evidence {
            path: format!("{}/@{attr}", self.doc.path(node)),
            line: self.doc.line(node),
            value: self.doc.attr(node, attr).unwrap_or("(absent)").to_string(),
        }
    }
    pub fn ev_absent(&self, parent: NodeId, what: &str) -> Evidence {
        Evidence {
            path: format!("{}/{what}", self.doc.path(parent)),
            line: self.doc.line(parent),
            value: "(absent)".into(),
        }
    }
    /// The domain's name as one shell word, for the commands a fix suggests.
    pub fn shell_name(&self) -> String {
        kvmtune_domain::shell_quote(&self.d.name).into_owned()
    }
    /// The host's online CPUs, when known.
    pub fn host_cpus(&self) -> Option<CpuSet> {
        let h = self.host?;
        let s = h.online_cpus();
        (!s.is_empty()).then_some(s)
    }
    /// Host NUMA node of a CPU.
    pub fn node_of(&self, cpu: u32) -> Option<u32> {
        self.host?
            .numa
            .nodes
            .iter()
            .find(|n| n.cpus.contains(cpu))
            .map(|n| n.id)
    }
    pub fn multi_node(&self) -> bool {
        self.host.is_some_and(|h| h.numa.nodes.len() > 1)
    }
}

/// A rule: its description and its check.
pub struct Rule {
    pub meta: Meta,
    pub check: fn(&Cx, &mut Out),
}

/// Collects a rule's findings, filled in from its meta.
pub struct Out<'m> {
    meta: &'m Meta,
    level: Severity,
    subject: &'m str,
    pub findings: Vec<Finding>,
}

impl Out<'_> {
    /// A finding at the rule's level.
    pub fn finding(&mut self, message: impl Into<String>, evidence: Vec<Evidence>) -> &mut Finding {
        self.at(self.level, message, evidence)
    }
    /// A finding at another level than the rule's (e.g. info for a weaker case), still
    /// capped by a profile that lowers the rule.
    pub fn at(
        &mut self,
        sev: Severity,
        message: impl Into<String>,
        evidence: Vec<Evidence>,
    ) -> &mut Finding {
        let sev = if self.level < self.meta.severity {
            sev.min(self.level)
        } else {
            sev
        };
        self.findings.push(Finding {
            rule: self.meta.id,
            severity: sev,
            subject: self.subject.to_string(),
            title: self.meta.title,
            message: message.into(),
            evidence,
            why: self.meta.why,
            fix: None,
            risk: self.meta.risk,
            suspect: false,
            assumed: None,
            default_class: self.meta.class,
        });
        let n = self.findings.len() - 1;
        &mut self.findings[n]
    }
}

impl Finding {
    pub fn fix(
        &mut self,
        summary: impl Into<String>,
        edits: Vec<Edit>,
        command: impl Into<String>,
        applies: Applies,
    ) -> &mut Self {
        self.fix = Some(Fix {
            summary: summary.into(),
            edits,
            command: command.into(),
            applies,
            class: self.default_class,
            risk: self.risk.to_string(),
        });
        self
    }
    /// Declare the fix's class and risk where they differ from the rule's (the guest
    /// decides them). Call after [`Finding::fix`].
    pub fn class(&mut self, class: FixClass, risk: impl Into<String>) -> &mut Self {
        if let Some(f) = &mut self.fix {
            f.class = class;
            f.risk = risk.into();
        }
        self
    }
    pub fn suspect(&mut self) -> &mut Self {
        self.suspect = true;
        self
    }
    pub fn assumed(&mut self, what: impl Into<String>) -> &mut Self {
        self.assumed = Some(what.into());
        self
    }
    pub fn subject(&mut self, s: impl Into<String>) -> &mut Self {
        self.subject = s.into();
        self
    }
}

static RULES: std::sync::LazyLock<Vec<Rule>> = std::sync::LazyLock::new(build_rules);

/// Every domain rule, in catalogue order.
pub fn rules() -> &'static [Rule] {
    &RULES
}

/// Whether a rule is on (at any level) in the profile.
pub(crate) fn enabled(id: &str, profile: &Profile) -> bool {
    rules()
        .iter()
        .find(|r| r.meta.id == id)
        .is_some_and(|r| level(&r.meta, profile) != Level::Off)
}

fn build_rules() -> Vec<Rule> {
    let mut v = Vec::new();
    v.extend(rules_cpu::rules());
    v.extend(rules_numa::rules());
    v.extend(rules_mem::rules());
    v.extend(rules_dev::rules());
    v.extend(rules_clock::rules());
    v.extend(rules_host::rules());
    v.extend(rules_qemu::rules());
    v.extend(rules_sched::rules());
    v.extend(rules_io::rules());
    v.extend(rules_gfx::rules());
    v
}

/// The level of a rule in a profile: the profile's override, else the rule's default when
/// the profile is among its profiles, else off.
pub fn level(meta: &Meta, profile: &Profile) -> Level {
    if let Some(l) = profile.rules.get(meta.id) {
        return *l;
    }
    if meta.profiles.contains(&"*") || meta.profiles.contains(&profile.name.as_str()) {
        Level::from(meta.severity)
    } else {
        Level::Off
    }
}

/// Profile overrides (`[rules]`) naming no rule.
pub fn unknown_rule_overrides(profile: &Profile) -> Vec<String> {
    let ids: Vec<&str> = rules().iter().map(|r| r.meta.id).collect();
    profile
        .rules
        .keys()
        .filter(|k| !ids.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// Audit one domain. `peers` holds every domain of the host (this one included) for the
/// rules that compare domains; host-level rules (subject "host") run in [`audit_host`].
pub fn audit(cx: &Cx) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in rules() {
        if rule.meta.needs_host && cx.host.is_none() {
            continue;
        }
        if rules_host::HOST_LEVEL.contains(&rule.meta.id) {
            continue;
        }
        run(rule, cx, &cx.d.name, &mut out);
    }
    sort(&mut out);
    out
}

/// The rules that read `cx.peers` in [`audit`] (host-level rules aside).
const PEER_RULES: &[&str] = &["pin-overlap"];

/// [`audit`] in two steps, for an audit that reads one domain at a time: the findings of
/// every rule that does not read the peers now, and what the rules that do need of the
/// domain (a few hundred bytes, no document) to finish once every peer is known
/// ([`Deferred::finish`]). `None` when no such rule applies: the findings are complete.
pub fn audit_deferring_peers(cx: &Cx) -> (Vec<Finding>, Option<Deferred>) {
    let mut out = Vec::new();
    let mut deferred = None;
    for rule in rules() {
        if rule.meta.needs_host && cx.host.is_none() {
            continue;
        }
        if rules_host::HOST_LEVEL.contains(&rule.meta.id) {
            continue;
        }
        if PEER_RULES.contains(&rule.meta.id) {
            if let Some(level) = level(&rule.meta, cx.profile).severity()
                && let Some(pinned) = rules_numa::pinned(cx)
            {
                deferred = Some(Deferred {
                    meta: &rule.meta,
                    level,
                    pinned,
                });
            }
            continue;
        }
        run(rule, cx, &cx.d.name, &mut out);
    }
    sort(&mut out);
    (out, deferred)
}

/// The peers as the rules that compare domains read them, indexed once for many
/// [`Deferred::finish`] calls.
pub struct PeerIndex<'a>(rules_numa::PinIndex<'a>);

impl<'a> PeerIndex<'a> {
    /// All domains of the host (as [`Cx::peers`]).
    pub fn new(peers: &[Peer<'a>]) -> PeerIndex<'a> {
        PeerIndex(rules_numa::PinIndex::new(peers))
    }
}

/// The part of a domain's audit that waits for its peers ([`audit_deferring_peers`]).
pub struct Deferred {
    meta: &'static Meta,
    level: Severity,
    pinned: rules_numa::Pinned,
}

impl Deferred {
    /// The findings of the rules that compare the domain with `peers`, as they give them.
    fn compare(&self, peers: &PeerIndex, host: Option<&Host>) -> Vec<Finding> {
        let mut o = Out {
            meta: self.meta,
            level: self.level,
            subject: self.pinned.name(),
            findings: Vec::new(),
        };
        rules_numa::pin_overlap_indexed(&self.pinned, &peers.0, host, &mut o);
        o.findings
    }

    /// Add the findings of the rules that compare the domain with `peers` to `findings` (its
    /// other findings): the same findings, in the same order, as [`audit`] with these peers.
    pub fn finish(&self, peers: &PeerIndex, host: Option<&Host>, findings: &mut Vec<Finding>) {
        let mut added = self.compare(peers, host);
        if added.is_empty() {
            return;
        }
        findings.append(&mut added);
        // stable: the other rules' findings keep their order, and these follow their rule's
        // place among equals as in `audit`
        sort(findings);
    }

    /// [`Deferred::finish`] for a caller that no longer holds the other findings, only
    /// their (severity, rule) in order (`first`): the findings the rules that compare
    /// domains add, each with its place: how many of the first findings precede it in the
    /// report. Inserting each there gives `finish`'s order.
    pub fn finish_added(
        &self,
        peers: &PeerIndex,
        host: Option<&Host>,
        first: &[(Severity, &'static str)],
    ) -> Vec<(usize, Finding)> {
        let mut added = self.compare(peers, host);
        sort(&mut added);
        added
            .into_iter()
            .map(|f| {
                // a stable sort of the first findings followed by these: every first one that
                // does not sort after this one stays before it
                let at = first.partition_point(|&k| {
                    order(k, (f.severity, f.rule)) != std::cmp::Ordering::Greater
                });
                (at, f)
            })
            .collect()
    }
}

/// A domain's findings from the two parts [`Deferred::finish_added`] leaves them in:
/// `first` (the findings of the other rules, in order) with each of `added` inserted after
/// as many of `first` as it says. Works on any item: findings, or their rendered pieces.
pub fn merged<T>(first: Vec<T>, added: Vec<(usize, T)>) -> Vec<T> {
    let mut out = Vec::with_capacity(first.len() + added.len());
    let mut first = first.into_iter().enumerate().peekable();
    for (at, f) in added {
        while let Some((_, g)) = first.next_if(|(i, _)| *i < at) {
            out.push(g);
        }
        out.push(f);
    }
    out.extend(first.map(|(_, g)| g));
    out
}

/// Whether [`audit`] of `d` can depend on the other domains in `cx.peers`. Only
/// `pin-overlap` compares a domain with the others, and only one whose every vCPU is pinned
/// to a single host CPU; for any other domain the findings are the same whatever the peers.
/// A streaming audit (one file at a time) audits the others as they come and waits for all
/// domains only for these.
pub fn reads_peers(d: &Domain) -> bool {
    rules_numa::dedicated(d).is_some()
}

/// Host-level rules over all domains (overcommit, hugepage pools, KSM). `cx.d` is any one
/// of the domains; the rules read `cx.peers`.
pub fn audit_host(cx: &Cx) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in rules() {
        if !rules_host::HOST_LEVEL.contains(&rule.meta.id) || cx.host.is_none() {
            continue;
        }
        run(rule, cx, "host", &mut out);
    }
    sort(&mut out);
    out
}

fn run(rule: &Rule, cx: &Cx, subject: &str, out: &mut Vec<Finding>) {
    let Some(level) = level(&rule.meta, cx.profile).severity() else {
        return;
    };
    let mut o = Out {
        meta: &rule.meta,
        level,
        subject,
        findings: Vec::new(),
    };
    (rule.check)(cx, &mut o);
    out.append(&mut o.findings);
}

fn sort(v: &mut [Finding]) {
    v.sort_by(|a, b| order((a.severity, a.rule), (b.severity, b.rule)));
}

/// The order of a domain's findings by (severity, rule): the most severe first, then by rule.
fn order(a: (Severity, &str), b: (Severity, &str)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(b.1))
}

/// Parse a libvirt cpuset, `None` when it does not parse.
pub fn cpuset(s: &str) -> Option<CpuSet> {
    CpuSet::parse(s).ok()
}

/// Format KiB as a human size.
pub fn human_kib(kib: u64) -> String {
    const G: u64 = 1024 * 1024;
    if kib >= G && kib.is_multiple_of(G / 4) {
        format!("{} GiB", kib as f64 / G as f64)
    } else if kib >= G {
        format!("{:.1} GiB", kib as f64 / G as f64)
    } else if kib >= 1024 {
        format!("{} MiB", kib / 1024)
    } else {
        format!("{kib} KiB")
    }
}

/// The risk of moving a disk to virtio-blk, in words for the guest at hand.
pub(crate) fn virtio_disk_risk(d: &Domain) -> String {
    match d.guest_os() {
        kvmtune_domain::GuestOs::Windows(_) => "Windows needs the virtio-win storage driver (viostor) installed first, or it will not boot from this disk".into(),
        kvmtune_domain::GuestOs::Linux(_) => "the disk is renamed inside the guest (/dev/sdX or /dev/hdX becomes /dev/vdX): fstab and boot entries must use UUIDs or labels, and a boot disk needs virtio_blk in the initramfs".into(),
        kvmtune_domain::GuestOs::Unknown => "unknown guest OS: it needs a virtio-blk driver first (Windows: virtio-win), or it will not boot from this disk; a Linux guest sees the disk renamed to /dev/vdX".into(),
    }
}

/// The risk of moving a NIC to virtio-net, in words for the guest at hand.
pub(crate) fn virtio_nic_risk(d: &Domain) -> String {
    match d.guest_os() {
        kvmtune_domain::GuestOs::Windows(_) => "Windows needs the virtio-win network driver (netkvm) installed first, or it loses this network; it sees a new adapter, without the old one's static IP settings".into(),
        kvmtune_domain::GuestOs::Linux(_) => "the guest sees a new NIC (virtio_net): its interface name may change, and network config bound to the old name or driver must follow".into(),
        kvmtune_domain::GuestOs::Unknown => "unknown guest OS: it needs a virtio-net driver first (Windows: virtio-win), or it loses this network; a Linux guest may rename the interface".into(),
    }
}

/// What a fix's edits write, as the XML an admin would type in `virsh edit`: one element
/// per edit (`<timer name='hpet' present='yes'/>`, `<stimer state='on'/>`), removals as
/// `remove <sound>`. Only what changes, never settings already there.
pub fn edits_as_xml(edits: &[Edit]) -> String {
    // `timer[@name='hpet']` → ("timer", " name='hpet'"); `controller[3]` → ("controller", "")
    fn seg(s: &str) -> (&str, String) {
        match s.split_once('[') {
            Some((n, rest)) => {
                let key = rest
                    .trim_end_matches(']')
                    .strip_prefix('@')
                    .and_then(|kv| kv.split_once('='))
                    .map(|(k, v)| format!(" {k}={v}"));
                (n, key.unwrap_or_default())
            }
            None => (s, String::new()),
        }
    }
    // grouped by parent element, in order: `<hyperv><stimer state='on'/></hyperv>`
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for e in edits {
        let mut parts = e.path.rsplit('/');
        let (name, key) = seg(parts.next().unwrap_or(""));
        let (parent, pkey) = seg(parts.next().unwrap_or(""));
        let piece = match &e.op {
            Op::Ensure => format!("<{name}{key}/>"),
            Op::SetAttr { attr, value } => format!("<{name}{key} {attr}='{value}'/>"),
            Op::RemoveAttr { attr } => format!("remove {attr} from <{name}{key}>"),
            Op::SetText { text } => format!("<{name}{key}>{text}</{name}>"),
            Op::Remove => format!("remove <{name}{key}>"),
        };
        let open = if parent.is_empty() || parent == "domain" || piece.starts_with("remove") {
            String::new()
        } else {
            format!("{parent}{pkey}")
        };
        match groups.last_mut() {
            Some((p, v)) if *p == open => {
                if !v.contains(&piece) {
                    v.push(piece);
                }
            }
            _ => groups.push((open, vec![piece])),
        }
    }
    groups
        .into_iter()
        .map(|(open, v)| {
            if open.is_empty() {
                v.join(" ")
            } else {
                let close = open.split(' ').next().unwrap_or(&open);
                format!("<{open}>{}</{close}>", v.concat())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command to edit a domain's persistent XML.
pub fn virsh_edit(name: &str, what: &str) -> String {
    format!("virsh edit {name}   # {what}")
}

/// Fix classes: the rule's by default, the guest's where it decides them.
#[cfg(test)]
mod class_tests {
    use super::testkit::{dom, findings};
    use super::*;

    #[test]
    fn merged_puts_each_added_item_after_as_many_first_ones_as_it_says() {
        type Case<'a> = (&'a [char], &'a [(usize, char)], &'a str);
        let cases: &[Case] = &[
            // after the second, and at the end
            (&['a', 'b', 'c'], &[(2, 'X'), (3, 'Y')], "abXcY"),
            // before all, two at one place in their order
            (&['a', 'b'], &[(0, 'X'), (0, 'Y')], "XYab"),
            // nothing added: the first ones as they were
            (&['a', 'b'], &[], "ab"),
            // nothing first
            (&[], &[(0, 'X')], "X"),
        ];
        for (first, added, want) in cases {
            let got: String = merged(first.to_vec(), added.to_vec()).into_iter().collect();
            assert_eq!(&got, want, "{first:?} with {added:?}");
        }
    }

    const WIN: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://microsoft.com/win/10'/></libosinfo:libosinfo></metadata>";
    const LINUX: &str = "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>\
<libosinfo:os id='http://debian.org/debian/12'/></libosinfo:libosinfo></metadata>";
    const DEVICES: &str = "<vcpu>2</vcpu><devices><disk type='file' device='disk'>\
<driver name='qemu' type='raw'/><source file='/i/a.img'/><target dev='hda' bus='ide'/></disk>\
<interface type='bridge'><source bridge='br0'/><model type='e1000'/></interface>\
<interface type='bridge'><source bridge='br0'/><model type='virtio'/><driver name='qemu'/></interface>\
</devices>";

    fn fix<'a>(v: &'a [Finding], rule: &str) -> &'a Fix {
        v.iter()
            .find(|f| f.rule == rule)
            .and_then(|f| f.fix.as_ref())
            .unwrap_or_else(|| panic!("no {rule} fix in {v:#?}"))
    }

    #[test]
    fn every_fix_has_its_rules_class_unless_it_declares_one() {
        let v = findings(&[dom(&format!("{WIN}{DEVICES}"))], "server", None);
        for f in &v {
            let Some(x) = &f.fix else { continue };
            let meta = &rules().iter().find(|r| r.meta.id == f.rule).unwrap().meta;
            if x.class == meta.class {
                continue;
            }
            assert!(
                ["net-model"].contains(&f.rule),
                "{}: {:?} vs {:?}",
                f.rule,
                x.class,
                meta.class
            );
        }
        assert_eq!(fix(&v, "disk-cache").class, FixClass::Safe);
        assert_eq!(
            fix(&v, "disk-cache").risk,
            v.iter().find(|f| f.rule == "disk-cache").unwrap().risk
        );
    }

    #[test]
    fn virtio_moves_need_a_driver_and_say_so_for_the_guest() {
        let win = findings(&[dom(&format!("{WIN}{DEVICES}"))], "server", None);
        let bus = fix(&win, "disk-bus");
        assert_eq!(bus.class, FixClass::GuestDriver);
        assert!(
            bus.risk.contains("Windows needs the virtio-win"),
            "{}",
            bus.risk
        );
        let nic = win
            .iter()
            .filter(|f| f.rule == "net-model")
            .filter_map(|f| f.fix.as_ref())
            .collect::<Vec<_>>();
        assert_eq!(nic.len(), 2, "{win:#?}");
        let emulated = nic
            .iter()
            .find(|x| x.summary.starts_with("Use virtio-net"))
            .unwrap();
        assert_eq!(emulated.class, FixClass::GuestDriver);
        assert!(emulated.risk.contains("Windows"), "{}", emulated.risk);
        // vhost for a NIC that is virtio already: nothing for the guest to do
        let vhost = nic
            .iter()
            .find(|x| !x.summary.starts_with("Use virtio-net"))
            .unwrap();
        assert_eq!(vhost.class, FixClass::Safe);
        // no queues for the e1000 and no iothread for hda: net-model and disk-bus come first,
        // the advice for virtio devices follows once they are virtio
        assert!(!win.iter().any(|f| f.rule == "net-multiqueue"), "{win:#?}");
        assert!(!win.iter().any(|f| f.rule == "disk-io"), "{win:#?}");

        let linux = findings(&[dom(&format!("{LINUX}{DEVICES}"))], "server", None);
        let bus = fix(&linux, "disk-bus");
        assert_eq!(bus.class, FixClass::GuestDriver);
        assert!(bus.risk.contains("renamed"), "{}", bus.risk);
        let unknown = findings(&[dom(DEVICES)], "server", None);
        assert!(
            fix(&unknown, "disk-bus")
                .risk
                .starts_with("unknown guest OS")
        );
    }

    #[test]
    fn multiqueue_on_a_virtio_nic_is_guest_visible_and_passthrough_limits_migration() {
        let d = dom(
            "<vcpu>2</vcpu><devices><interface type='bridge'><source bridge='br0'/>\
<model type='virtio'/></interface></devices>",
        );
        let v = findings(&[d], "server", None);
        assert_eq!(fix(&v, "net-multiqueue").class, FixClass::GuestVisible);
        let d = dom("<vcpu>2</vcpu><cpu mode='host-model'/>");
        let v = findings(&[d], "latency", None);
        assert_eq!(fix(&v, "cpu-mode").class, FixClass::Migration);
        let d = dom("<vcpu>2</vcpu>");
        let v = findings(&[d], "server", None);
        assert_eq!(fix(&v, "cpu-mode").class, FixClass::GuestVisible);
    }

    #[test]
    fn class_names_round_trip() {
        for c in FixClass::ALL {
            assert_eq!(FixClass::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
        assert_eq!(FixClass::parse("all"), None);
    }
}

//! The collector on a live libvirt.
//!
//! Every scrape: one bulk statistics call and the /proc reads of each local QEMU process
//! (the [`Watch`] `kvmtune stat` uses, with its idle-domain rule on a local host: the vCPU
//! group only for the domains whose CPU time moved, and for all at every 10th scrape or
//! when a domain's reading is 60 s old), the affinity of pinned domains' threads, and every
//! 10th scrape the balloon group in one more bulk call. Every `--audit-interval`, or
//! when the running domains change (a domain started, stopped, restarted; at most every
//! 10 s): the inventory (every domain's XML), the audit with each domain's profile, and
//! the host figures.
//! Host facts of the local host (KSM, hugepages) are read again every 30 s.
//!
//! When libvirt cannot be reached the collection is `kvmtune_up 0` with the error, and the
//! next scrape connects again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use kvmtune_core::inventory::{Inventory, Origin, Select};
use kvmtune_core::profiles::Profiles;
use kvmtune_core::watch::Watch;
use kvmtune_host::process::USER_HZ;
use kvmtune_host::{CpuSet, Host};
use kvmtune_kvmstat::live::{DomSnap, Snapshot};

use crate::model::{Collection, DomainMetrics, FindingLine, HostMetrics, Pool, one_line};

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub origin: Origin,
    /// How often the audit and the host figures are recomputed.
    pub audit_interval: Duration,
}

/// How often the local host's facts (KSM, hugepages, THP) are read again.
const HOST_EVERY: Duration = Duration::from_secs(30);
/// The least time between two audits that a change of the running domains triggers.
const AUDIT_MIN_SPACING: Duration = Duration::from_secs(10);
/// How often the domains' stored XML is compared with what was audited (a `virsh edit`,
/// `define` or `undefine` is audited again at the next check, not at the next interval).
const XML_CHECK_EVERY: Duration = Duration::from_secs(15);
/// An idle local domain's vCPU group is read at every 10th scrape
/// ([`Watch::idle_rule`]), and at the latest when its last reading is this old.
const VCPU_IDLE_MAX_AGE: Duration = Duration::from_secs(60);
/// The balloon group is asked for every this many scrapes.
const BALLOON_EVERY: u64 = 10;

/// What the audit knows of one domain.
#[derive(Debug, Clone, Default)]
struct Facts {
    uuid: String,
    profile: String,
    current_memory_kib: Option<u64>,
    settings: Option<kvmtune_apply::settings::Settings>,
}

/// The slow part: recomputed every audit interval or when the running domains change.
#[derive(Debug, Clone)]
struct Audit {
    at: Instant,
    unix_s: f64,
    running_key: Vec<(String, Option<u32>)>,
    domains: BTreeMap<String, Facts>,
    findings: Vec<FindingLine>,
    defined: usize,
    vcpu_ratio: Option<f64>,
    committed_bytes: u64,
    host: Option<Host>,
    /// A fingerprint of every domain's name and stored XML when it was audited.
    xml_key: Option<u64>,
}

/// The collector: owns the libvirt connection (through the [`Watch`]) and what is kept
/// between scrapes.
pub struct Collector {
    opts: Options,
    watch: Option<Watch>,
    audit: Option<Audit>,
    host: Option<(Instant, Host)>,
    /// (domain, id) -> balloon.current in KiB, from the last balloon call.
    balloon: BTreeMap<(String, Option<u32>), u64>,
    scrapes: u64,
    last_error: Option<String>,
    /// (domain, id) -> the CPU counters last served (host, guest, emulator, delay): a counter
    /// of one domain instance never goes down, whatever the rounding of two /proc reads.
    served: BTreeMap<(String, Option<u32>), [Option<f64>; 4]>,
    /// When the audit was last tried, successful or not (a failing audit is retried every
    /// AUDIT_MIN_SPACING, not at every scrape).
    audit_tried: Option<Instant>,
    /// When the stored XML was last compared with the audited one.
    xml_checked: Option<Instant>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Collector {
    /// A collector; it connects at its first collection (and again after a failure).
    pub fn new(opts: Options) -> Collector {
        Collector {
            opts,
            watch: None,
            audit: None,
            host: None,
            balloon: BTreeMap::new(),
            scrapes: 0,
            last_error: None,
            served: BTreeMap::new(),
            audit_tried: None,
            xml_checked: None,
        }
    }

    fn is_local(&self) -> bool {
        !self.opts.origin.is_remote()
    }

    /// One collection.
    pub fn collect_now(&mut self) -> Collection {
        let t0 = Instant::now();
        // the last error is this collection's: one that has passed does not stay served
        self.last_error = None;
        let mut c = Collection {
            version: crate::VERSION.to_string(),
            ..Collection::default()
        };
        if self.watch.is_none() {
            match Watch::open(&self.opts.origin, Vec::new(), None) {
                Ok(mut w) => {
                    w.idle_rule(Some(VCPU_IDLE_MAX_AGE.as_secs_f64()));
                    self.watch = Some(w);
                }
                Err(e) => {
                    self.last_error = Some(one_line(&e.to_string()));
                }
            }
        }
        let snap = match self.watch.as_mut() {
            Some(w) => {
                let t = Instant::now();
                let r = w.take();
                c.libvirt_call_s = Some(t.elapsed().as_secs_f64());
                match r {
                    Ok(s) => Some(s),
                    Err(e) => {
                        // a closed connection: connect again at the next scrape
                        self.watch = None;
                        self.last_error = Some(one_line(&e.to_string()));
                        None
                    }
                }
            }
            None => None,
        };
        self.refresh_host();
        if let Some(snap) = &snap {
            c.up = true;
            self.refresh_audit(snap);
            self.refresh_balloon(snap);
            c.domains = self.domains(snap);
            self.monotonic(&mut c.domains, snap);
            if let Some(a) = &self.audit {
                c.findings = a.findings.clone();
                c.audit_timestamp_s = Some(a.unix_s);
            }
            // the running domains changed since the audit, which is not redone yet (at most
            // every AUDIT_MIN_SPACING): a domain that is gone altogether (a transient one
            // destroyed, one undefined) must not linger in the info and findings until then
            if self
                .audit
                .as_ref()
                .is_some_and(|a| a.running_key != running_key(snap))
                && let Some(present) = self.defined_names()
            {
                c.domains.retain(|d| d.running || present.contains(&d.name));
                c.findings
                    .retain(|f| f.domain.is_empty() || present.contains(&f.domain));
            }
        }
        c.host = self.host_metrics(snap.as_ref());
        c.last_error = self.last_error.clone();
        c.scrape_duration_s = Some(t0.elapsed().as_secs_f64());
        self.scrapes += 1;
        c
    }

    fn refresh_host(&mut self) {
        if !self.is_local() {
            return;
        }
        if self
            .host
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < HOST_EVERY)
        {
            return;
        }
        match self.opts.origin.host_source() {
            Ok(src) => self.host = Some((Instant::now(), kvmtune_host::collect(src.as_ref()))),
            Err(e) => self.last_error = Some(one_line(&e.to_string())),
        }
    }

    /// Serve each CPU counter of a domain instance (name, id) at least as high as the last
    /// time: the emulator's time is the process's minus its vCPU threads', two /proc reads
    /// rounded to ticks each, and may come out a tick lower than before; a counter that goes
    /// down is a reset to Prometheus, and `increase()` would count the whole value again.
    /// A restarted domain (a new id) starts afresh.
    fn monotonic(&mut self, domains: &mut [DomainMetrics], snap: &Snapshot) {
        let mut next = BTreeMap::new();
        for d in domains.iter_mut().filter(|d| d.running) {
            let id = snap.domains.get(&d.name).and_then(|s| s.raw.id);
            let key = (d.name.clone(), id);
            let prev = self.served.get(&key).copied().unwrap_or([None; 4]);
            let mut now = [
                d.cpu_host_s,
                d.cpu_guest_s,
                d.cpu_emulator_s,
                d.vcpu_delay_s,
            ];
            for (v, p) in now.iter_mut().zip(prev) {
                if let (Some(x), Some(p)) = (v.as_mut(), p) {
                    *x = x.max(p);
                }
            }
            [
                d.cpu_host_s,
                d.cpu_guest_s,
                d.cpu_emulator_s,
                d.vcpu_delay_s,
            ] = now;
            next.insert(key, now);
        }
        self.served = next;
    }

    /// Every domain's name and stored XML, hashed (one list call and one XML call per
    /// domain); `None` when libvirt does not answer.
    fn xml_fingerprint(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let lv = &self.watch.as_ref()?.sampler.source;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for d in lv.domains().ok()? {
            d.name.hash(&mut h);
            // a domain undefined between the list and its XML: part of the fingerprint too
            lv.domain_xml(&d.name, true).ok().hash(&mut h);
        }
        Some(h.finish())
    }

    /// Whether a stored definition changed since the audit (checked every XML_CHECK_EVERY).
    fn xml_changed(&mut self) -> bool {
        if self.audit.is_none()
            || self
                .xml_checked
                .is_some_and(|t| t.elapsed() < XML_CHECK_EVERY)
        {
            return false;
        }
        self.xml_checked = Some(Instant::now());
        let now = self.xml_fingerprint();
        match (self.audit.as_ref().and_then(|a| a.xml_key), now) {
            (Some(before), Some(now)) => before != now,
            _ => false,
        }
    }

    /// The names of every domain libvirt knows now (defined or running), one call; `None`
    /// when it fails (then nothing is filtered).
    fn defined_names(&self) -> Option<std::collections::BTreeSet<String>> {
        let w = self.watch.as_ref()?;
        let all = w.sampler.source.domains().ok()?;
        Some(all.into_iter().map(|d| d.name).collect())
    }

    fn refresh_audit(&mut self, snap: &Snapshot) {
        let key = running_key(snap);
        if self
            .audit_tried
            .is_some_and(|t| t.elapsed() < AUDIT_MIN_SPACING)
        {
            return;
        }
        let xml_changed = self.xml_changed();
        let due = match &self.audit {
            None => true,
            // a change of the running domains or of a stored definition is audited at once,
            // but not more often than every AUDIT_MIN_SPACING (a host where domains start and
            // stop all the time)
            Some(a) => {
                let age = a.at.elapsed();
                age >= self.opts.audit_interval
                    || ((a.running_key != key || xml_changed) && age >= AUDIT_MIN_SPACING)
            }
        };
        if !due {
            return;
        }
        self.audit_tried = Some(Instant::now());
        match audit(&self.opts.origin) {
            Ok(mut a) => {
                a.running_key = key;
                a.xml_key = self.xml_fingerprint();
                self.xml_checked = Some(Instant::now());
                self.audit = Some(a);
            }
            Err(e) => {
                self.last_error = Some(one_line(&format!("audit: {e}")));
                // try again at the next interval, not at every scrape
                if let Some(a) = &mut self.audit {
                    a.at = Instant::now();
                    a.running_key = key;
                }
            }
        }
    }

    fn refresh_balloon(&mut self, snap: &Snapshot) {
        let Some(w) = self.watch.as_mut() else {
            return;
        };
        // without /proc the sampler asks for the balloon group itself
        if w.sampler.local.is_none() || !self.scrapes.is_multiple_of(BALLOON_EVERY) {
            return;
        }
        match w
            .sampler
            .source
            .all_domain_stats(kvmtune_libvirt::STATS_BALLOON)
        {
            Ok(recs) => {
                self.balloon = recs
                    .iter()
                    .filter_map(|r| {
                        let cur = r
                            .params
                            .iter()
                            .find(|(k, _)| k == "balloon.current")
                            .and_then(|(_, v)| v.as_u64())?;
                        Some(((r.name.clone(), r.id), cur))
                    })
                    .collect();
            }
            Err(e) => self.last_error = Some(one_line(&format!("balloon statistics: {e}"))),
        }
        self.balloon
            .retain(|(n, id), _| snap.domains.get(n).is_some_and(|d| d.raw.id == *id));
    }

    fn domains(&self, snap: &Snapshot) -> Vec<DomainMetrics> {
        let cpu_node = self
            .watch
            .as_ref()
            .map(|w| w.cpu_node.clone())
            .unwrap_or_default();
        let procs = self.watch.as_ref().and_then(|w| w.sampler.local.as_ref());
        let all_cpus = self.host.as_ref().map(|(_, h)| h.online_cpus().to_string());
        let empty = BTreeMap::new();
        let facts = self.audit.as_ref().map_or(&empty, |a| &a.domains);
        let mut out = Vec::new();
        for (name, s) in &snap.domains {
            let f = facts.get(name);
            let mut d = from_snapshot(s, &cpu_node);
            if let Some(f) = f {
                d.uuid = f.uuid.clone();
                d.profile = f.profile.clone();
                d.balloon_target_bytes = f.current_memory_kib.map(|k| k * 1024);
                if let (Some(p), Some(set), Some(all)) = (procs, &f.settings, &all_cpus) {
                    d.pin_drift = pin_drift(p, name, set, all);
                }
            }
            if d.balloon_current_bytes.is_none() {
                d.balloon_current_bytes = self
                    .balloon
                    .get(&(name.clone(), s.raw.id))
                    .map(|k| k * 1024);
            }
            out.push(d);
        }
        // defined domains that do not run: their info only
        for (name, f) in facts {
            if snap.domains.contains_key(name) {
                continue;
            }
            out.push(DomainMetrics {
                name: name.clone(),
                uuid: f.uuid.clone(),
                profile: f.profile.clone(),
                ..DomainMetrics::default()
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn host_metrics(&self, snap: Option<&Snapshot>) -> HostMetrics {
        let audit = self.audit.as_ref();
        let host = self
            .host
            .as_ref()
            .map(|(_, h)| h)
            .or_else(|| audit.and_then(|a| a.host.as_ref()));
        let mut m = HostMetrics {
            domains_running: snap.map(|s| s.domains.len()),
            ..HostMetrics::default()
        };
        if let (Some(a), Some(_)) = (audit, snap) {
            m.domains_defined = Some(a.defined);
            m.vcpu_thread_ratio = a.vcpu_ratio;
            m.memory_committed_bytes = Some(a.committed_bytes);
        }
        if let Some(h) = host {
            if let Some(k) = &h.memory.ksm {
                m.ksm_pages_shared = k.pages_shared;
                m.ksm_pages_sharing = k.pages_sharing;
                m.ksm_saved_bytes = k.saved_bytes;
            }
            m.hugepages = pools(h);
            m.thp_mode = h.memory.thp.as_ref().and_then(|t| t.enabled.clone());
            m.numa_balancing = h.numa.balancing.map(|b| b != 0);
            m.memory_total_bytes = h.memory.total_kib.map(|k| k * 1024);
        }
        m
    }
}

impl crate::scrape::Collect for Collector {
    fn collect(&mut self) -> Collection {
        self.collect_now()
    }
}

/// Which domains run, and as which instance (name, id): a change means a domain started,
/// stopped or was restarted.
fn running_key(snap: &Snapshot) -> Vec<(String, Option<u32>)> {
    snap.domains
        .values()
        .map(|d| (d.raw.name.clone(), d.raw.id))
        .collect()
}

/// The hugepage pools: per NUMA node when known, else the host's (node `all`).
fn pools(h: &Host) -> Vec<Pool> {
    let per_node: Vec<Pool> = h
        .numa
        .nodes
        .iter()
        .flat_map(|n| {
            n.hugepages.iter().map(move |p| Pool {
                node: n.id.to_string(),
                size_bytes: p.size_kib * 1024,
                total: p.total,
                free: p.free,
            })
        })
        .collect();
    if !per_node.is_empty() {
        return per_node;
    }
    h.memory
        .hugepages
        .iter()
        .map(|p| Pool {
            node: "all".into(),
            size_bytes: p.size_kib * 1024,
            total: p.total,
            free: p.free,
        })
        .collect()
}

/// The inventory of every domain, audited with each domain's profile.
fn audit(origin: &Origin) -> Result<Audit, String> {
    let sel = Select {
        targets: Vec::new(),
        all: true,
        host_for_files: false,
    };
    let inv = Inventory::gather(origin, &sel).map_err(|e| e.to_string())?;
    let profiles = Profiles::from_args(&[])
        .map_err(|e| e.to_string())?
        .with_metadata(&inv);
    let report = kvmtune_core::audit::audit_with(&inv, &profiles);
    let figures = kvmtune_core::fleet::figures(&inv);
    let mut domains = BTreeMap::new();
    for p in &inv.domains {
        let profile = report
            .domains
            .iter()
            .find(|d| d.origin == p.origin)
            .map(|d| d.profile.clone())
            .unwrap_or_default();
        domains.insert(
            p.domain.name.clone(),
            Facts {
                uuid: p.domain.uuid.clone().unwrap_or_default(),
                profile,
                current_memory_kib: p.domain.current_memory_kib.or(p.domain.memory_kib),
                settings: Some({
                    let mut set = kvmtune_apply::settings::read(&p.doc, &p.domain);
                    // <vcpu placement='auto' cpuset=...>: libvirt ignores the cpuset and
                    // numad places the domain; the cpuset is no pin to drift from
                    if p.domain.vcpu.placement.as_deref() == Some("auto") {
                        set.vcpu_cpuset = None;
                    }
                    set
                }),
            },
        );
    }
    let mut findings: Vec<FindingLine> = report
        .domains
        .iter()
        .flat_map(|d| {
            d.findings.iter().map(|f| FindingLine {
                domain: d.name.clone(),
                rule: f.rule.to_string(),
                severity: f.severity.as_str().to_string(),
            })
        })
        .chain(report.host_findings.iter().map(|f| FindingLine {
            domain: String::new(),
            rule: f.rule.to_string(),
            severity: f.severity.as_str().to_string(),
        }))
        .collect();
    // one series per (domain, rule, severity): a rule that fires twice is one finding line
    findings.sort();
    findings.dedup();
    Ok(Audit {
        at: Instant::now(),
        unix_s: unix_now(),
        running_key: Vec::new(),
        domains,
        findings,
        defined: figures.defined,
        vcpu_ratio: figures.vcpu_ratio,
        committed_bytes: figures.memory_running_kib * 1024,
        host: inv.host,
        xml_key: None,
    })
}

/// Whether a running domain's threads may run elsewhere than its definition pins them:
/// `None` when it has no pins or its threads cannot be read.
fn pin_drift(
    procs: &kvmtune_host::process::QemuProcs,
    name: &str,
    set: &kvmtune_apply::settings::Settings,
    all: &str,
) -> Option<bool> {
    let pinned = !set.vcpupin.is_empty() || set.emulatorpin.is_some() || set.vcpu_cpuset.is_some();
    if !pinned {
        return None;
    }
    let pid = procs.pid(name)?;
    let aff = procs.affinity(pid).ok()?;
    let same = |a: &str, b: &str| match (CpuSet::parse(a), CpuSet::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    };
    for (v, allowed) in &aff.vcpus {
        if (set.vcpupin.contains_key(v) || set.vcpu_cpuset.is_some())
            && !same(allowed, &set.vcpu_affinity(*v, all))
        {
            return Some(true);
        }
    }
    if (set.emulatorpin.is_some() || set.vcpu_cpuset.is_some())
        && !same(&aff.emulator, &set.emulator_affinity(all))
    {
        return Some(true);
    }
    Some(false)
}

/// Per-vCPU KVM statistics that are instant values, not counters.
const VCPU_INSTANT: &[&str] = &["guest_mode", "blocking"];
/// VM-wide KVM statistics that are cumulative (`vm.NAME.sum`); the others are instant
/// values or peaks (pages_4k, mmu_unsync, max_mmu_page_hash_collisions, nx_lpage_splits).
const VM_CUMULATIVE: &[&str] = &[
    "remote_tlb_flush",
    "remote_tlb_flush_requests",
    "mmu_shadow_zapped",
    "mmu_pte_write",
    "mmu_pde_zapped",
    "mmu_flooded",
    "mmu_recycled",
    "mmu_cache_miss",
];

/// The exit kind of a per-vCPU KVM counter: `io_exits` is `io`; `insn_emulation` is
/// itself; `exits` (the total) is no kind.
pub fn exit_kind(stat: &str) -> Option<&str> {
    if stat == "insn_emulation" {
        return Some(stat);
    }
    stat.strip_suffix("_exits").filter(|k| !k.is_empty())
}

/// One running domain's metrics from its snapshot (cumulative values, no rates).
pub fn from_snapshot(s: &DomSnap, cpu_node: &BTreeMap<u32, u32>) -> DomainMetrics {
    let raw = &s.raw;
    let mut d = DomainMetrics {
        name: raw.name.clone(),
        running: true,
        vcpus: Some(raw.vcpus.len() as u32),
        vcpu_stats_age_s: (!raw.vcpus.is_empty()).then_some(raw.vcpu_age_s),
        balloon_current_bytes: raw.balloon_current_kib.map(|k| k * 1024),
        ..DomainMetrics::default()
    };
    let kvm = raw.has_kvm_counters();
    let ticks = |t: u64| t as f64 / USER_HZ;
    // host and vCPU-thread time from one source, so that their difference means something
    let (host, vcpu_threads) = match &s.proc {
        Some(p) => {
            // whole ticks summed first, divided once
            let threads: u64 = p
                .threads
                .iter()
                .filter(|t| t.vcpu.is_some())
                .map(|t| t.times.utime.saturating_add(t.times.stime))
                .fold(0u64, u64::saturating_add);
            (
                Some(ticks(p.process.utime.saturating_add(p.process.stime))),
                (!p.threads.is_empty()).then_some(ticks(threads)),
            )
        }
        None => {
            let times: Vec<u64> = raw.vcpus.values().filter_map(|v| v.time_ns).collect();
            (
                raw.cpu_time_ns.map(|n| n as f64 / 1e9),
                (!times.is_empty()).then(|| times.iter().map(|n| *n as f64 / 1e9).sum()),
            )
        }
    };
    d.cpu_host_s = host;
    d.cpu_guest_s = match &s.proc {
        Some(p) if kvm => Some(ticks(p.process.guest)),
        _ => vcpu_threads,
    };
    if let (Some(h), Some(v)) = (host, vcpu_threads) {
        d.cpu_emulator_s = Some((h - v).max(0.0));
    }
    let delays: Vec<u64> = raw.vcpus.values().filter_map(|v| v.delay_ns).collect();
    if !delays.is_empty() {
        d.vcpu_delay_s = Some(delays.iter().map(|n| *n as f64 / 1e9).sum());
    }
    // memory placement, as `stat` computes it (one snapshot is enough for it)
    let fig = kvmtune_kvmstat::live::figures(s, s, 1.0, cpu_node);
    if let Some(m) = fig.memory {
        d.memory_node_bytes = m.per_node_kib.iter().map(|(n, k)| (*n, k * 1024)).collect();
        d.memory_remote_ratio = m.remote_share;
    }
    // KVM statistics, summed over vCPUs
    let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
    for v in raw.vcpus.values() {
        for (k, n) in &v.counters {
            let e = sums.entry(k.as_str()).or_default();
            *e = e.saturating_add(*n);
        }
    }
    for (k, n) in sums {
        if let Some(kind) = exit_kind(k) {
            d.exits.insert(kind.to_string(), n);
        } else if k == "halt_poll_success_ns" {
            d.halt_poll_success_s = Some(n as f64 / 1e9);
        } else if k == "halt_poll_fail_ns" {
            d.halt_poll_fail_s = Some(n as f64 / 1e9);
        } else if VCPU_INSTANT.contains(&k) {
            d.kvm_gauges.insert(k.to_string(), n);
        } else {
            d.kvm_counters.insert(k.to_string(), n);
        }
    }
    for (k, n) in &raw.vm {
        if VM_CUMULATIVE.contains(&k.as_str()) {
            d.kvm_counters.entry(k.clone()).or_insert(*n);
        } else {
            d.kvm_gauges.entry(k.clone()).or_insert(*n);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_libvirt_is_up_0_with_its_error_and_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("no-libvirt-sock");
        let mut c = Collector::new(Options {
            origin: Origin::local(&format!("qemu+unix:///system?socket={}", sock.display())),
            audit_interval: Duration::from_secs(300),
        });
        for _ in 0..2 {
            let t = Instant::now();
            let col = c.collect_now();
            assert!(t.elapsed() < Duration::from_secs(10));
            assert!(!col.up);
            assert!(col.domains.is_empty() && col.findings.is_empty());
            let e = col.last_error.unwrap_or_default();
            assert!(!e.is_empty() && !e.contains('\n'), "{e}");
            // not connected: the next collection tries again
            assert!(c.watch.is_none());
        }
    }
}

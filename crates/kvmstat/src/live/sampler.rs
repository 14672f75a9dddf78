//! Collection: one libvirt call per interval for every domain, QEMU's `query-stats` when
//! libvirt has no per-vCPU KVM counters, and each local QEMU process's /proc accounting.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use kvmtune_host::process::{ProcSample, QemuProcs, VcpuThread};
use kvmtune_libvirt::StatsRecord;
use serde::{Deserialize, Serialize};

/// One vCPU as libvirt reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawVcpu {
    pub time_ns: Option<u64>,
    pub wait_ns: Option<u64>,
    pub delay_ns: Option<u64>,
    /// KVM's cumulative per-vCPU counters (`vcpu.N.NAME.sum`): exits, io_exits, ...
    pub counters: BTreeMap<String, u64>,
}

/// One domain's statistics record, decoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawDomain {
    pub name: String,
    pub id: Option<u32>,
    pub cpu_time_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub balloon_current_kib: Option<u64>,
    pub balloon_rss_kib: Option<u64>,
    pub vcpus: BTreeMap<u32, RawVcpu>,
    /// The VM's KVM statistics (`vm.NAME.sum|cur|max`), by NAME.
    pub vm: BTreeMap<String, u64>,
    /// How many seconds before this snapshot `vcpus` were read: 0 when read with it; more
    /// when the vCPU group was not asked for this domain (an idle domain, see
    /// [`Sampler::vcpu_idle_every`]) and `vcpus` is the last reading, kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vcpu_age_s: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl RawDomain {
    pub fn from_record(rec: &StatsRecord) -> RawDomain {
        let mut d = RawDomain {
            name: rec.name.clone(),
            id: rec.id,
            ..RawDomain::default()
        };
        for (k, v) in &rec.params {
            let Some(v) = v.as_u64() else { continue };
            match k.as_str() {
                "cpu.time" => d.cpu_time_ns = Some(v),
                "cpu.user" => d.cpu_user_ns = Some(v),
                "cpu.system" => d.cpu_system_ns = Some(v),
                "balloon.current" => d.balloon_current_kib = Some(v),
                "balloon.rss" => d.balloon_rss_kib = Some(v),
                _ => {}
            }
            if let Some(rest) = k.strip_prefix("vm.") {
                let base = rest
                    .strip_suffix(".sum")
                    .or_else(|| rest.strip_suffix(".cur"))
                    .or_else(|| rest.strip_suffix(".max"))
                    .unwrap_or(rest);
                d.vm.insert(base.to_string(), v);
            } else if let Some(rest) = k.strip_prefix("vcpu.")
                && let Some((n, field)) = rest.split_once('.')
                && let Ok(n) = n.parse::<u32>()
            {
                let c = d.vcpus.entry(n).or_default();
                match field {
                    "time" => c.time_ns = Some(v),
                    "wait" => c.wait_ns = Some(v),
                    "delay" => c.delay_ns = Some(v),
                    _ => {
                        if let Some(name) = field.strip_suffix(".sum") {
                            c.counters.insert(name.to_string(), v);
                        }
                    }
                }
            }
        }
        d
    }

    /// Whether libvirt gave KVM's per-vCPU counters (a KVM domain on libvirt ≥ 8.x).
    pub fn has_kvm_counters(&self) -> bool {
        self.vcpus
            .values()
            .any(|v| v.counters.contains_key("exits"))
    }
}

/// Per-vCPU counters from a QMP `query-stats` reply (target `vcpu`), in vCPU order.
pub fn parse_query_stats(reply: &str) -> Result<Vec<BTreeMap<String, u64>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(reply).map_err(|e| format!("query-stats reply: {e}"))?;
    let list = v
        .get("return")
        .and_then(|r| r.as_array())
        .ok_or("query-stats reply has no return list")?;
    let mut out = Vec::new();
    for entry in list {
        if entry.get("provider").and_then(|p| p.as_str()) != Some("kvm") {
            continue;
        }
        let mut m = BTreeMap::new();
        for s in entry
            .get("stats")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(val)) = (
                s.get("name").and_then(|n| n.as_str()),
                s.get("value").and_then(|v| v.as_u64()),
            ) {
                m.insert(n.to_string(), val);
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// One domain at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomSnap {
    pub raw: RawDomain,
    pub proc: Option<ProcSample>,
    /// Memory per NUMA node in KiB (refreshed less often than the rest).
    pub numa_kib: Option<BTreeMap<u32, u64>>,
    /// Why the /proc figures are missing, when they are.
    pub proc_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the sampler started (monotonic).
    pub mono_s: f64,
    pub unix_ms: u64,
    pub domains: BTreeMap<String, DomSnap>,
}

/// Where statistics come from: libvirt in the product, a fake in unit tests.
pub trait StatsSource {
    /// Every running domain's record, in one call, with these groups
    /// (`kvmtune_libvirt::STATS_*`).
    fn fetch(&mut self, groups: u32) -> Result<Vec<StatsRecord>, String>;
    /// A QMP command on a domain's monitor.
    fn qmp(&mut self, domain: &str, command: &str) -> Result<String, String>;
    /// These domains' records, with these groups (by default: every record, filtered).
    fn fetch_some(&mut self, names: &[String], groups: u32) -> Result<Vec<StatsRecord>, String> {
        let mut all = self.fetch(groups)?;
        all.retain(|r| names.contains(&r.name));
        Ok(all)
    }
}

impl StatsSource for kvmtune_libvirt::Libvirt {
    fn fetch(&mut self, groups: u32) -> Result<Vec<StatsRecord>, String> {
        self.all_domain_stats(groups).map_err(|e| e.to_string())
    }
    fn qmp(&mut self, domain: &str, command: &str) -> Result<String, String> {
        kvmtune_libvirt::Libvirt::qmp(self, domain, command).map_err(|e| e.to_string())
    }
    fn fetch_some(&mut self, names: &[String], groups: u32) -> Result<Vec<StatsRecord>, String> {
        self.domain_stats(names, groups).map_err(|e| e.to_string())
    }
}

/// A process's vCPU threads.
type VcpuThreads = Vec<VcpuThread>;

/// A domain's vCPU group, by vCPU.
type VcpuReading = BTreeMap<u32, RawVcpu>;

/// What `/proc` tells of a domain's QEMU process: the sample, its memory per NUMA node, and
/// why there is no sample.
type ProcOf = (
    Option<ProcSample>,
    Option<BTreeMap<u32, u64>>,
    Option<String>,
);

/// One clock tick of `/proc/PID/stat`, in ns.
const NS_PER_TICK: u64 = (1e9 / kvmtune_host::process::USER_HZ) as u64;

/// The CPU time the idle-domain rule compares, in ns: the QEMU process's on this host (the
/// same source between full snapshots and at them), libvirt's CPU total otherwise.
fn cpu_measure(libvirt_ns: Option<u64>, proc: Option<&ProcSample>) -> Option<u64> {
    match proc {
        Some(p) => Some(
            p.process
                .utime
                .saturating_add(p.process.stime)
                .saturating_mul(NS_PER_TICK),
        ),
        None => libvirt_ns,
    }
}

/// Adds the `prefix` statistics of `got` to the records of the same domains.
fn merge(records: &mut [StatsRecord], got: Vec<StatsRecord>, prefix: &str) {
    for v in got {
        if let Some(r) = records
            .iter_mut()
            .find(|r| r.name == v.name && r.id == v.id)
        {
            r.params
                .extend(v.params.into_iter().filter(|(k, _)| k.starts_with(prefix)));
        }
    }
}

/// Where the QEMU processes are, when they run on this host.
pub type Local = QemuProcs;

/// Takes snapshots; keeps what must persist between them (pids, the QMP fallback's
/// findings, the last NUMA reading).
pub struct Sampler<S: StatsSource> {
    pub source: S,
    pub local: Option<Local>,
    /// Only these domains (all when empty).
    pub only: Vec<String>,
    /// How often `/proc/PID/numa_maps` is read (it walks the page tables of the process;
    /// `None`: never).
    pub numa_every: Option<Duration>,
    /// How often the vCPU threads are listed again (also whenever one is gone).
    pub relist_every: Duration,
    start: Instant,
    pids: HashMap<(String, Option<u32>), u32>,
    /// (domain, id) -> whether QMP query-stats gives per-vCPU KVM counters libvirt did not.
    qmp: HashMap<(String, Option<u32>), bool>,
    numa: HashMap<(String, u32), (Instant, BTreeMap<u32, u64>)>,
    /// (domain, pid) -> its vCPU threads and when they were listed.
    threads: HashMap<(String, u32), (Instant, VcpuThreads)>,
    /// The VM group (`vm.*`, mostly gauges) is asked for every this many snapshots.
    pub vm_every: u64,
    snapshots: u64,
    /// (domain, id) -> the last VM group read.
    vm: HashMap<(String, Option<u32>), BTreeMap<String, u64>>,
    /// The idle-domain rule (`None`: the vCPU group for every domain at every snapshot).
    /// `Some(n)`: every snapshot asks all domains for state and CPU total, then the vCPU
    /// group (per-vCPU times and KVM counters: libvirt's QMP `query-stats`, a round trip to
    /// each QEMU) only for the domains whose CPU time moved by more than
    /// [`Self::vcpu_busy_pct`] of one host CPU since the previous snapshot, for new
    /// domains, and for all domains at the first two snapshots and every `n`th after. An idle domain's `vcpus` are
    /// then its last reading, with [`RawDomain::vcpu_age_s`] saying how old.
    pub vcpu_idle_every: Option<u64>,
    /// The CPU time a domain must use (in % of one host CPU over the interval) to be asked
    /// for its vCPU group at every snapshot under [`Self::vcpu_idle_every`].
    pub vcpu_busy_pct: f64,
    /// Under [`Self::vcpu_idle_every`]: an idle domain whose last vCPU reading is this many
    /// seconds old (or older) is asked again even between the `n`th snapshots, so that a
    /// slow caller (a Prometheus scrape every 15-60 s) does not keep figures for minutes.
    pub vcpu_idle_max_age_s: Option<f64>,
    /// (domain, id) -> (snapshot time, libvirt cpu.time) of the previous snapshot.
    cpu_seen: HashMap<(String, Option<u32>), (f64, u64)>,
    /// (domain, id) -> (when read, the vCPU group) of the last vCPU reading.
    vcpus_read: HashMap<(String, Option<u32>), (f64, VcpuReading)>,
}

/// The default of [`Sampler::vcpu_busy_pct`]: above what an idle guest's timers and
/// interrupts use (0.3-1.5% in the lab), below any real work.
pub const VCPU_BUSY_PCT: f64 = 2.0;

/// The usual `n` of [`Sampler::vcpu_idle_every`]: an idle domain's vCPU group is asked for
/// at every 10th snapshot.
pub const VCPU_IDLE_EVERY: u64 = 10;

impl<S: StatsSource> Sampler<S> {
    pub fn new(source: S, local: Option<Local>, only: Vec<String>) -> Self {
        Sampler {
            source,
            local,
            only,
            numa_every: Some(Duration::from_secs(10)),
            relist_every: Duration::from_secs(10),
            start: Instant::now(),
            pids: HashMap::new(),
            qmp: HashMap::new(),
            numa: HashMap::new(),
            threads: HashMap::new(),
            vm_every: 10,
            snapshots: 0,
            vm: HashMap::new(),
            vcpu_idle_every: None,
            vcpu_busy_pct: VCPU_BUSY_PCT,
            vcpu_idle_max_age_s: None,
            cpu_seen: HashMap::new(),
            vcpus_read: HashMap::new(),
        }
    }

    pub fn snapshot(&mut self) -> Result<Snapshot, String> {
        // one call; the costlier groups only when needed: the VM group every vm_every
        // snapshots, the balloon group only without /proc (remote hosts)
        // the first two snapshots ask all (the first figures are complete), then every nth
        let full = self
            .vcpu_idle_every
            .is_none_or(|n| self.snapshots < 2 || (self.snapshots - 1).is_multiple_of(n.max(1)));
        // on this host the CPU figures come from /proc: libvirt's CPU-total group, which
        // libvirt 9+ answers with a QMP query-stats to every vCPU of every domain (for
        // halt-poll times), is asked only for the domains whose process /proc cannot read
        let mut groups = match (self.local.is_some(), full) {
            (true, true) => kvmtune_libvirt::STATS_STATE | kvmtune_libvirt::STATS_VCPU,
            (true, false) => kvmtune_libvirt::STATS_STATE,
            (false, true) => kvmtune_libvirt::STATS_BASE,
            (false, false) => kvmtune_libvirt::STATS_STATE_CPU,
        };
        if self.snapshots.is_multiple_of(self.vm_every.max(1)) {
            groups |= kvmtune_libvirt::STATS_VM;
        }
        if self.local.is_none() {
            groups |= kvmtune_libvirt::STATS_BALLOON;
        }
        self.snapshots += 1;
        let mut records = self.source.fetch(groups)?;
        records.retain(|r| self.only.is_empty() || self.only.contains(&r.name));
        let mono_s = self.start.elapsed().as_secs_f64();
        let procs: Vec<ProcOf> = records
            .iter()
            .map(|r| self.proc_of(&r.name, r.id))
            .collect();
        if self.local.is_some() {
            let no_proc: Vec<String> = records
                .iter()
                .zip(&procs)
                .filter(|(_, p)| p.0.is_none())
                .map(|(r, _)| r.name.clone())
                .collect();
            merge(
                &mut records,
                self.fetch_some(&no_proc, kvmtune_libvirt::STATS_CPU_TOTAL)?,
                "cpu.",
            );
        }
        if !full {
            self.ask_busy_vcpus(&mut records, &procs, mono_s)?;
        }
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut domains = BTreeMap::new();
        for (rec, (proc, numa_kib, proc_note)) in records.iter().zip(procs) {
            let mut raw = RawDomain::from_record(rec);
            let key = (raw.name.clone(), raw.id);
            if let Some(cpu) = cpu_measure(raw.cpu_time_ns, proc.as_ref()) {
                self.cpu_seen.insert(key.clone(), (mono_s, cpu));
            }
            if self.vcpu_idle_every.is_some() {
                if !raw.vcpus.is_empty() {
                    self.vcpus_read
                        .insert(key.clone(), (mono_s, raw.vcpus.clone()));
                } else if let Some((at, v)) = self.vcpus_read.get(&key) {
                    raw.vcpus = v.clone();
                    raw.vcpu_age_s = (mono_s - at).max(0.0);
                }
            }
            if raw.vm.is_empty() {
                if let Some(vm) = self.vm.get(&key) {
                    raw.vm = vm.clone();
                }
            } else {
                self.vm.insert(key, raw.vm.clone());
            }
            self.qmp_fallback(&mut raw);
            domains.insert(
                raw.name.clone(),
                DomSnap {
                    raw,
                    proc,
                    numa_kib,
                    proc_note,
                },
            );
        }
        // forget what was kept for domains that stopped (a long `top` sees many restarts)
        self.pids.retain(|(n, _), _| domains.contains_key(n));
        self.qmp.retain(|(n, _), _| domains.contains_key(n));
        self.vm.retain(|(n, _), _| domains.contains_key(n));
        self.numa.retain(|(n, _), _| domains.contains_key(n));
        self.threads.retain(|(n, _), _| domains.contains_key(n));
        self.cpu_seen.retain(|(n, _), _| domains.contains_key(n));
        self.vcpus_read.retain(|(n, _), _| domains.contains_key(n));
        Ok(Snapshot {
            mono_s,
            unix_ms,
            domains,
        })
    }

    /// These domains' records with these groups; nothing to ask for none.
    fn fetch_some(&mut self, names: &[String], groups: u32) -> Result<Vec<StatsRecord>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.source.fetch_some(names, groups)
    }

    /// The idle-domain rule: the vCPU group for the domains whose CPU time moved by more
    /// than `vcpu_busy_pct` since the previous snapshot (and those not seen before), in one
    /// more call, merged into their records. On this host the CPU time is the QEMU
    /// process's (`/proc`, in clock ticks: one tick more is allowed for their 10 ms steps).
    fn ask_busy_vcpus(
        &mut self,
        records: &mut [StatsRecord],
        procs: &[ProcOf],
        now: f64,
    ) -> Result<(), String> {
        let busy: Vec<String> = records
            .iter()
            .zip(procs)
            .filter(|(r, (proc, _, _))| {
                let libvirt_cpu = r
                    .params
                    .iter()
                    .find(|(k, _)| k == "cpu.time")
                    .and_then(|(_, v)| v.as_u64());
                let cpu = cpu_measure(libvirt_cpu, proc.as_ref());
                let slack_ns = if proc.is_some() { NS_PER_TICK } else { 0 };
                let key = (r.name.clone(), r.id);
                match (cpu, self.cpu_seen.get(&key), self.vcpus_read.get(&key)) {
                    (Some(c), Some(&(at, prev)), Some((read_at, _))) if now > at => {
                        let moved = c.saturating_sub(prev).saturating_sub(slack_ns);
                        let pct = moved as f64 / 1e9 / (now - at) * 100.0;
                        let too_old = self
                            .vcpu_idle_max_age_s
                            .is_some_and(|max| now - read_at >= max);
                        c < prev || pct > self.vcpu_busy_pct || too_old
                    }
                    _ => true,
                }
            })
            .map(|(r, _)| r.name.clone())
            .collect();
        let got = self.fetch_some(&busy, kvmtune_libvirt::STATS_VCPU)?;
        merge(records, got, "vcpu.");
        Ok(())
    }

    /// libvirt before 8.x gives no per-vCPU KVM counters: ask QEMU (query-stats, QEMU 7.1+)
    /// once per domain start, and keep asking each interval only if it answers.
    fn qmp_fallback(&mut self, raw: &mut RawDomain) {
        if raw.has_kvm_counters() {
            return;
        }
        let key = (raw.name.clone(), raw.id);
        if self.qmp.get(&key) == Some(&false) {
            return;
        }
        let reply = self.source.qmp(
            &raw.name,
            r#"{"execute":"query-stats","arguments":{"target":"vcpu"}}"#,
        );
        let per_vcpu = reply
            .and_then(|r| parse_query_stats(&r))
            .unwrap_or_default();
        let useful = per_vcpu.iter().any(|m| m.contains_key("exits"));
        self.qmp.insert(key, useful);
        if useful {
            for (i, m) in per_vcpu.into_iter().enumerate() {
                raw.vcpus.entry(i as u32).or_default().counters = m;
            }
        }
    }

    fn proc_of(&mut self, name: &str, id: Option<u32>) -> ProcOf {
        let Some(local) = &self.local else {
            return (None, None, None);
        };
        let key = (name.to_string(), id);
        // a pid found is kept for this run of the domain; one not found (the pid file not
        // written yet, or unreadable) is looked for again next time
        let pid = match self.pids.get(&key) {
            Some(p) => Some(*p),
            None => {
                let p = local.pid(name);
                if let Some(p) = p {
                    self.pids.insert(key, p);
                }
                p
            }
        };
        let Some(pid) = pid else {
            return (
                None,
                None,
                Some(format!(
                    "no QEMU process of {} found on this host ({}/{}.pid missing, unreadable \
                     or stale): CPU figures from libvirt",
                    name,
                    local.run_dir.display(),
                    name
                )),
            );
        };
        // the vCPU threads are listed again every relist_every, or when one is gone; in
        // between only their stat files are read
        let nk = (name.to_string(), pid);
        let mut sample = None;
        for _ in 0..2 {
            let fresh = self
                .threads
                .get(&nk)
                .filter(|(at, _)| at.elapsed() < self.relist_every);
            let list = match fresh {
                Some((_, l)) => l.clone(),
                None => match local.vcpu_threads(pid) {
                    Ok(l) => {
                        self.threads.insert(nk.clone(), (Instant::now(), l.clone()));
                        l
                    }
                    Err(e) => return (None, None, Some(e.to_string())),
                },
            };
            match local.sample_threads(pid, &list) {
                Ok(Some(s)) => {
                    sample = Some(s);
                    break;
                }
                Ok(None) => {
                    self.threads.remove(&nk);
                }
                Err(e) => return (None, None, Some(e.to_string())),
            }
        }
        let Some(sample) = sample else {
            return (
                None,
                None,
                Some(format!("pid {pid}: vCPU threads changed while read")),
            );
        };
        if let Some(every) = self.numa_every {
            let due = self
                .numa
                .get(&nk)
                .is_none_or(|(at, _)| at.elapsed() >= every);
            if due && let Ok(m) = local.numa_kib(pid) {
                self.numa.insert(nk.clone(), (Instant::now(), m));
            }
        }
        let numa = self.numa.get(&nk).map(|(_, m)| m.clone());
        (Some(sample), numa, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixtures::rec;
    use kvmtune_libvirt::StatValue;

    #[test]
    fn decodes_a_record() {
        let d = RawDomain::from_record(&rec("a", 3, 10, 20, 5));
        assert_eq!(d.cpu_time_ns, Some(10));
        assert_eq!(d.vcpus[&0].counters["exits"], 20);
        assert!(!d.vcpus[&0].counters.contains_key("blocking"));
        assert_eq!(d.vm["pages_4k"], 7);
        assert!(d.has_kvm_counters());
    }

    #[test]
    fn query_stats_reply() {
        let reply = r#"{"return":[{"provider":"kvm","qom-path":"/machine/unattached/device[0]","stats":[{"name":"exits","value":12},{"name":"guest_mode","value":false},{"name":"halt_poll_fail_hist","value":[1,2]}]},{"provider":"kvm","stats":[{"name":"exits","value":3}]}],"id":"libvirt-1"}"#;
        let v = parse_query_stats(reply).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["exits"], 12);
        assert_eq!(v[0].len(), 1);
        assert!(parse_query_stats(r#"{"return":[]}"#).unwrap().is_empty());
        assert!(parse_query_stats("{").is_err());
    }

    struct Fake {
        fetches: Vec<Vec<StatsRecord>>,
        qmp_calls: usize,
        qmp_reply: String,
        groups: Vec<u32>,
    }
    impl StatsSource for Fake {
        fn fetch(&mut self, groups: u32) -> Result<Vec<StatsRecord>, String> {
            self.groups.push(groups);
            if self.fetches.is_empty() {
                return Err("libvirt: domain statistics: connection closed".into());
            }
            Ok(self.fetches.remove(0))
        }
        fn qmp(&mut self, _: &str, _: &str) -> Result<String, String> {
            self.qmp_calls += 1;
            Ok(self.qmp_reply.clone())
        }
    }

    #[test]
    fn qmp_fallback_is_asked_once_when_it_has_nothing() {
        let tcg = StatsRecord {
            name: "t".into(),
            id: Some(4),
            params: vec![("vcpu.0.time".into(), StatValue::UInt(5))],
        };
        let mut s = Sampler::new(
            Fake {
                fetches: vec![vec![tcg.clone()], vec![tcg.clone()], vec![tcg]],
                qmp_calls: 0,
                qmp_reply: r#"{"return":[]}"#.into(),
                groups: vec![],
            },
            None,
            vec![],
        );
        s.snapshot().unwrap();
        s.snapshot().unwrap();
        assert_eq!(s.source.qmp_calls, 1);
        // an old libvirt with a KVM domain: QMP fills the counters each time
        s.source.qmp_reply =
            r#"{"return":[{"provider":"kvm","stats":[{"name":"exits","value":9}]}]}"#.into();
        s.qmp.clear();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.domains["t"].raw.vcpus[&0].counters["exits"], 9);
        let e = s.snapshot().unwrap_err();
        assert!(e.contains("connection closed"));
        // what is kept per domain is forgotten once it stops running
        s.source.fetches = vec![vec![]];
        s.snapshot().unwrap();
        assert!(s.qmp.is_empty() && s.vm.is_empty());
        // the VM group on the first of every 10 snapshots; balloon without /proc (remote)
        let g = &s.source.groups[..5];
        assert_ne!(g[0] & kvmtune_libvirt::STATS_VM, 0);
        assert!(g[1..].iter().all(|x| x & kvmtune_libvirt::STATS_VM == 0));
        assert!(g.iter().all(|x| x & kvmtune_libvirt::STATS_BALLOON != 0));
    }

    /// Two KVM domains: `busy` uses a second of CPU per snapshot, `idle` none.
    struct TwoDomains {
        n: u64,
        calls: Vec<(u32, Vec<String>)>,
    }
    impl TwoDomains {
        fn records(&self, groups: u32) -> Vec<StatsRecord> {
            ["busy", "idle"]
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let cpu = if *name == "busy" {
                        self.n * 1_000_000_000
                    } else {
                        5
                    };
                    let mut params = vec![];
                    if groups & kvmtune_libvirt::STATS_CPU_TOTAL != 0 {
                        params.push(("cpu.time".to_string(), StatValue::UInt(cpu)));
                    }
                    if groups & kvmtune_libvirt::STATS_VCPU != 0 {
                        params.push(("vcpu.0.time".into(), StatValue::UInt(cpu)));
                        params.push(("vcpu.0.delay".into(), StatValue::UInt(self.n)));
                        params.push(("vcpu.0.exits.sum".into(), StatValue::UInt(100 * self.n)));
                    }
                    StatsRecord {
                        name: name.to_string(),
                        id: Some(i as u32 + 1),
                        params,
                    }
                })
                .collect()
        }
    }
    impl StatsSource for TwoDomains {
        fn fetch(&mut self, groups: u32) -> Result<Vec<StatsRecord>, String> {
            self.n += 1;
            self.calls.push((groups, vec![]));
            Ok(self.records(groups))
        }
        fn qmp(&mut self, _: &str, _: &str) -> Result<String, String> {
            Err("no QMP".into())
        }
        fn fetch_some(
            &mut self,
            names: &[String],
            groups: u32,
        ) -> Result<Vec<StatsRecord>, String> {
            self.calls.push((groups, names.to_vec()));
            let mut r = self.records(groups);
            r.retain(|r| names.contains(&r.name));
            Ok(r)
        }
    }

    fn two_domains() -> Sampler<TwoDomains> {
        Sampler::new(
            TwoDomains {
                n: 0,
                calls: vec![],
            },
            None,
            vec![],
        )
    }

    #[test]
    fn idle_domains_are_asked_for_their_vcpus_every_nth_snapshot() {
        let mut s = two_domains();
        s.vcpu_idle_every = Some(3);
        let snaps: Vec<Snapshot> = (0..5)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(5));
                s.snapshot().unwrap()
            })
            .collect();
        let base = kvmtune_libvirt::STATS_BASE | kvmtune_libvirt::STATS_BALLOON;
        let cheap = kvmtune_libvirt::STATS_STATE_CPU | kvmtune_libvirt::STATS_BALLOON;
        let c = &s.source.calls;
        // all domains' vCPUs on the 1st, 2nd and 5th snapshots; in between only the busy one's
        let vcpu_busy = (kvmtune_libvirt::STATS_VCPU, vec!["busy".to_string()]);
        assert_eq!(c[0].0 & !kvmtune_libvirt::STATS_VM, base);
        assert_eq!(c[1].0, base);
        assert_eq!(c[2], (cheap, vec![]));
        assert_eq!(c[3], vcpu_busy);
        assert_eq!(c[4], (cheap, vec![]));
        assert_eq!(c[5], vcpu_busy);
        assert_eq!(c[6].0, base);
        assert_eq!(c.len(), 7);
        // the idle domain keeps its last reading, marked with its age; the busy one is fresh
        let idle = &snaps[2].domains["idle"].raw;
        assert_eq!(idle.vcpus[&0].counters["exits"], 200);
        assert!(idle.vcpu_age_s > 0.0);
        assert_eq!(snaps[2].domains["busy"].raw.vcpu_age_s, 0.0);
        assert_eq!(
            snaps[2].domains["busy"].raw.vcpus[&0].counters["exits"],
            300
        );
        assert_eq!(snaps[4].domains["idle"].raw.vcpu_age_s, 0.0);
        assert_eq!(
            snaps[4].domains["idle"].raw.vcpus[&0].counters["exits"],
            500
        );
        // figures: no vCPU rates for the idle domain while its reading is old (never zeros
        // or the old rates), then rates over the whole time since its last reading
        let cpu_node = BTreeMap::new();
        let f = crate::live::frame(&snaps[0], &snaps[1], &cpu_node);
        assert!(
            f.domains.iter().all(|d| d.exits.is_some()),
            "the first figures are whole"
        );
        let f = crate::live::frame(&snaps[1], &snaps[2], &cpu_node);
        let idle = f.domains.iter().find(|d| d.name == "idle").unwrap();
        let busy = f.domains.iter().find(|d| d.name == "busy").unwrap();
        assert!(idle.exits.is_none() && idle.delay_pct.is_none());
        assert!(idle.vcpu[0].exits_per_s.is_none());
        assert_eq!(idle.vcpus, 1);
        assert!(busy.exits.as_ref().unwrap().total > 0.0);
        let f = crate::live::frame(&snaps[3], &snaps[4], &cpu_node);
        let idle = f.domains.iter().find(|d| d.name == "idle").unwrap();
        let span = snaps[4].mono_s - snaps[1].mono_s;
        let rate = idle.exits.as_ref().unwrap().total;
        assert!(
            (rate - 300.0 / span).abs() < 1e-6 * rate,
            "{rate} over {span}"
        );
        // without the rule: the vCPU group for all, every time
        let mut s = two_domains();
        s.snapshot().unwrap();
        s.snapshot().unwrap();
        assert!(
            s.source
                .calls
                .iter()
                .all(|(g, n)| g & kvmtune_libvirt::STATS_VCPU != 0 && n.is_empty())
        );
    }

    #[test]
    fn an_idle_domain_whose_reading_is_too_old_is_asked_between_the_nth_snapshots() {
        let mut s = two_domains();
        s.vcpu_idle_every = Some(100);
        // a close case first: a bound far away changes nothing
        s.vcpu_idle_max_age_s = Some(3600.0);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(5));
            s.snapshot().unwrap();
        }
        let vcpu_busy = (kvmtune_libvirt::STATS_VCPU, vec!["busy".to_string()]);
        assert_eq!(s.source.calls[3], vcpu_busy);
        // a bound already passed: the idle domain is asked again with the busy one
        s.vcpu_idle_max_age_s = Some(0.001);
        std::thread::sleep(Duration::from_millis(5));
        let snap = s.snapshot().unwrap();
        let last = s.source.calls.last().unwrap();
        assert_eq!(last.0, kvmtune_libvirt::STATS_VCPU);
        assert_eq!(last.1, vec!["busy".to_string(), "idle".to_string()]);
        assert_eq!(snap.domains["idle"].raw.vcpu_age_s, 0.0);
    }

    /// A /proc tree with the QEMU processes of `busy` (pid 100) and, when `idle_too`,
    /// `idle` (pid 200): one vCPU thread each.
    fn proc_tree(idle_too: bool) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run/libvirt/qemu");
        std::fs::create_dir_all(&run).unwrap();
        for (name, pid) in [("busy", 100), ("idle", 200)] {
            if name == "idle" && !idle_too {
                continue;
            }
            std::fs::write(run.join(format!("{name}.pid")), pid.to_string()).unwrap();
            let d = t.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(d.join(format!("task/{}", pid + 1))).unwrap();
            std::fs::write(d.join("cmdline"), format!("qemu\0-name\0guest={name}\0")).unwrap();
            std::fs::write(d.join(format!("task/{}/comm", pid + 1)), "CPU 0/KVM\n").unwrap();
            set_ticks(&t, pid, 0);
        }
        t
    }

    /// The process's and its vCPU thread's CPU time, in ticks.
    fn set_ticks(t: &tempfile::TempDir, pid: u32, ticks: u64) {
        let mut f = vec!["0".to_string(); 50];
        f[0] = "S".into();
        f[14 - 3] = ticks.to_string();
        let line = format!("{pid} (qemu) {}", f.join(" "));
        let d = t.path().join(format!("proc/{pid}"));
        std::fs::write(d.join("stat"), &line).unwrap();
        std::fs::write(d.join(format!("task/{}/stat", pid + 1)), &line).unwrap();
    }

    #[test]
    fn on_this_host_an_idle_domain_costs_qemu_nothing_between_full_snapshots() {
        let t = proc_tree(true);
        let mut s = two_domains();
        s.local = Some(QemuProcs::new(t.path()));
        s.vcpu_idle_every = Some(100);
        s.numa_every = None;
        let step = |s: &mut Sampler<TwoDomains>, busy: u64, idle: u64| {
            set_ticks(&t, 100, busy);
            set_ticks(&t, 200, idle);
            std::thread::sleep(Duration::from_millis(20));
            s.snapshot().unwrap()
        };
        step(&mut s, 0, 0);
        step(&mut s, 10, 0);
        // between full snapshots: the state group only (no CPU total: libvirt would ask
        // every QEMU for halt-poll times), then the vCPU group of the busy domain
        let snap = step(&mut s, 20, 0);
        let c = &s.source.calls;
        // the first two: state and vCPU groups, no CPU total either
        let all = kvmtune_libvirt::STATS_STATE | kvmtune_libvirt::STATS_VCPU;
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].0 & !kvmtune_libvirt::STATS_VM, all);
        assert_eq!(c[1].0, all);
        assert_eq!(
            c[2].0 & !kvmtune_libvirt::STATS_VM,
            kvmtune_libvirt::STATS_STATE
        );
        assert_eq!(
            c[3],
            (kvmtune_libvirt::STATS_VCPU, vec!["busy".to_string()])
        );
        assert!(snap.domains["idle"].raw.vcpu_age_s > 0.0);
        assert!(snap.domains["idle"].proc.is_some());
        // one tick (10 ms) is /proc's step, not work: still idle
        step(&mut s, 30, 1);
        assert_eq!(s.source.calls.last().unwrap().1, vec!["busy".to_string()]);
        // the close case: three ticks in 20 ms is work
        step(&mut s, 40, 4);
        assert_eq!(
            s.source.calls.last().unwrap().1,
            vec!["busy".to_string(), "idle".to_string()]
        );
        // a domain whose process cannot be read is asked for its CPU total with its vCPUs
        let t2 = proc_tree(false);
        let mut s = two_domains();
        s.local = Some(QemuProcs::new(t2.path()));
        s.vcpu_idle_every = Some(100);
        s.numa_every = None;
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            s.snapshot().unwrap();
        }
        let c = &s.source.calls;
        let idle = vec!["idle".to_string()];
        // every snapshot: the CPU total of `idle` alone, after the state (and vCPU) group
        assert_eq!(c.len(), 6, "{c:?}");
        for (groups, _) in [&c[0], &c[2], &c[4]] {
            assert_eq!(groups & kvmtune_libvirt::STATS_CPU_TOTAL, 0);
        }
        for call in [&c[1], &c[3], &c[5]] {
            assert_eq!(*call, (kvmtune_libvirt::STATS_CPU_TOTAL, idle.clone()));
        }
        let snap = s.snapshot().unwrap();
        assert!(snap.domains["idle"].raw.cpu_time_ns.is_some());
        assert!(snap.domains["idle"].proc.is_none());
    }
}

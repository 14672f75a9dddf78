//! Figures: what two snapshots of a domain say about the interval between them, and the
//! diagnosis input of those figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use kvmtune_host::process::USER_HZ;
use serde::{Deserialize, Serialize};

use super::sampler::{DomSnap, Snapshot};
use crate::exits::{Counter, CpuFigures, ExitKind, ExitProfile, counter};

pub const STAT_SCHEMA: &str = "kvmtune.stat";
pub const STAT_VERSION: u32 = 1;

/// Exits per second by counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitRates {
    pub total: f64,
    pub io: f64,
    pub mmio: f64,
    pub halt: f64,
    pub irq: f64,
    pub irq_window: f64,
    pub signal: f64,
    pub insn_emulation: f64,
    pub pf_fixed: f64,
    pub hypercalls: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VcpuFigures {
    pub id: u32,
    pub cpu_pct: Option<f64>,
    pub guest_pct: Option<f64>,
    pub delay_pct: Option<f64>,
    pub last_cpu: Option<u32>,
    pub exits_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemFigures {
    pub per_node_kib: BTreeMap<u32, u64>,
    /// The nodes of the CPUs the vCPUs last ran on.
    pub vcpu_nodes: Vec<u32>,
    /// Share (0..1) of the process's memory on other nodes.
    pub remote_share: Option<f64>,
}

/// One VM over one interval. CPU figures are in % of one host CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VmFigures {
    pub name: String,
    pub id: Option<u32>,
    pub pid: Option<u32>,
    pub vcpus: u32,
    /// CPU of the QEMU process (all threads).
    pub host_cpu_pct: Option<f64>,
    /// `proc` (/proc/PID/stat) or `libvirt` (cgroup cpu.time).
    pub host_cpu_source: Option<String>,
    pub guest_cpu_pct: Option<f64>,
    /// `guest-time` (the kernel's time in guest mode) or `vcpu-threads` (vCPU thread time,
    /// for TCG and remote hosts).
    pub guest_cpu_source: Option<String>,
    pub overhead_pct: Option<f64>,
    /// Threads other than vCPUs: the main loop, I/O threads, workers.
    pub emulator_cpu_pct: Option<f64>,
    /// Time vCPUs were runnable but waiting for a host CPU (steal-like), summed.
    pub delay_pct: Option<f64>,
    /// KVM exits per second (absent for TCG domains, which have no KVM statistics).
    pub exits: Option<ExitRates>,
    /// CPU spent in halt polling.
    pub halt_poll_pct: Option<f64>,
    /// Every per-vCPU KVM counter, summed over vCPUs, per second.
    pub kvm: BTreeMap<String, f64>,
    pub vcpu: Vec<VcpuFigures>,
    pub memory: Option<MemFigures>,
    pub balloon_kib: Option<u64>,
    /// Resident memory of the QEMU process (/proc, or libvirt's balloon.rss remotely).
    pub rss_kib: Option<u64>,
    /// The VM's KVM statistics (`vm.*`: pages_4k, pages_2m, pages_1g, mmu_*), refreshed
    /// every 10 intervals.
    #[serde(default)]
    pub vm_stats: BTreeMap<String, u64>,
    pub notes: Vec<String>,
}

/// One interval: every VM present at both ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub kind: String,
    pub version: u32,
    /// End of the interval, RFC 3339 UTC.
    pub time: String,
    pub interval_s: f64,
    pub domains: Vec<VmFigures>,
    /// Running now, not at the start of the interval (rates from the next one).
    pub appeared: Vec<String>,
    /// Running at the start of the interval, gone now.
    pub vanished: Vec<String>,
    /// Restarted during the interval (new id or process, counters reset).
    pub restarted: Vec<String>,
}

fn per_s(prev: Option<u64>, cur: Option<u64>, dt: f64) -> Option<f64> {
    let (p, c) = (prev?, cur?);
    (c >= p && dt > 0.0).then(|| (c - p) as f64 / dt)
}

fn pct_ns(prev: Option<u64>, cur: Option<u64>, dt: f64) -> Option<f64> {
    per_s(prev, cur, dt).map(|v| v / 1e9 * 100.0)
}

fn pct_ticks(prev: u64, cur: u64, dt: f64) -> Option<f64> {
    (cur >= prev && dt > 0.0).then(|| (cur - prev) as f64 / USER_HZ / dt * 100.0)
}

fn restarted(a: &DomSnap, b: &DomSnap) -> bool {
    if a.raw.id != b.raw.id {
        return true;
    }
    if let (Some(p), Some(q)) = (&a.proc, &b.proc)
        && p.pid != q.pid
    {
        return true;
    }
    matches!((a.raw.cpu_time_ns, b.raw.cpu_time_ns), (Some(x), Some(y)) if y < x)
}

/// Figures of one VM between two snapshots of it. `cpu_node` maps a host CPU to its node.
pub fn figures(a: &DomSnap, b: &DomSnap, dt: f64, cpu_node: &BTreeMap<u32, u32>) -> VmFigures {
    let mut f = VmFigures {
        name: b.raw.name.clone(),
        id: b.raw.id,
        pid: b.proc.as_ref().map(|p| p.pid),
        vcpus: b.raw.vcpus.len() as u32,
        balloon_kib: b.raw.balloon_current_kib,
        rss_kib: b
            .proc
            .as_ref()
            .map(|p| p.process.rss_pages * 4)
            .or(b.raw.balloon_rss_kib),
        vm_stats: b.raw.vm.clone(),
        ..VmFigures::default()
    };
    let kvm = b.raw.has_kvm_counters();
    let procs = match (&a.proc, &b.proc) {
        (Some(p), Some(q)) if p.pid == q.pid => Some((p, q)),
        _ => None,
    };
    if let Some(n) = &b.proc_note {
        f.notes.push(n.clone());
    }

    // host CPU
    if let Some((p, q)) = procs {
        f.host_cpu_pct = pct_ticks(
            p.process.utime + p.process.stime,
            q.process.utime + q.process.stime,
            dt,
        );
        f.host_cpu_source = Some("proc".into());
    }
    if f.host_cpu_pct.is_none() {
        f.host_cpu_pct = pct_ns(a.raw.cpu_time_ns, b.raw.cpu_time_ns, dt);
        f.host_cpu_source = f.host_cpu_pct.map(|_| "libvirt".into());
    }

    // per vCPU; libvirt's vCPU group may be an older reading for an idle domain (the
    // sampler's idle-domain rule): its figures are then over the time between the two
    // readings, and none when `b` has no new reading
    let vcpu_fresh = b.raw.vcpu_age_s == 0.0;
    let dt_v = if vcpu_fresh {
        dt + a.raw.vcpu_age_s
    } else {
        0.0
    };
    let mut vcpu_threads_pct: Option<f64> = None;
    let mut guest_ticks_pct: Option<f64> = None;
    for (&id, vb) in &b.raw.vcpus {
        let va = a.raw.vcpus.get(&id);
        let mut v = VcpuFigures {
            id,
            delay_pct: pct_ns(va.and_then(|x| x.delay_ns), vb.delay_ns, dt_v),
            exits_per_s: per_s(
                va.and_then(|x| x.counters.get("exits").copied()),
                vb.counters.get("exits").copied(),
                dt_v,
            ),
            ..VcpuFigures::default()
        };
        let thread = procs.and_then(|(p, q)| {
            let tq = q.threads.iter().find(|t| t.vcpu == Some(id))?;
            let tp = p.threads.iter().find(|t| t.tid == tq.tid)?;
            Some((tp, tq))
        });
        if let Some((tp, tq)) = thread {
            v.cpu_pct = pct_ticks(
                tp.times.utime + tp.times.stime,
                tq.times.utime + tq.times.stime,
                dt,
            );
            v.guest_pct = pct_ticks(tp.times.guest, tq.times.guest, dt);
            v.last_cpu = Some(tq.times.processor);
        } else {
            v.cpu_pct = pct_ns(va.and_then(|x| x.time_ns), vb.time_ns, dt_v);
        }
        if let Some(c) = v.cpu_pct {
            *vcpu_threads_pct.get_or_insert(0.0) += c;
        }
        if let Some(g) = v.guest_pct {
            *guest_ticks_pct.get_or_insert(0.0) += g;
        }
        if let Some(d) = v.delay_pct {
            *f.delay_pct.get_or_insert(0.0) += d;
        }
        f.vcpu.push(v);
    }

    // guest CPU: the kernel's guest time for KVM; vCPU thread time otherwise
    if kvm && let Some((p, q)) = procs {
        f.guest_cpu_pct = pct_ticks(p.process.guest, q.process.guest, dt);
        f.guest_cpu_source = Some("guest-time".into());
    } else if kvm && guest_ticks_pct.is_some() {
        f.guest_cpu_pct = guest_ticks_pct;
        f.guest_cpu_source = Some("guest-time".into());
    }
    if f.guest_cpu_pct.is_none() && vcpu_threads_pct.is_some() {
        f.guest_cpu_pct = vcpu_threads_pct;
        f.guest_cpu_source = Some("vcpu-threads".into());
    }
    if let (Some(h), Some(g)) = (f.host_cpu_pct, f.guest_cpu_pct) {
        f.overhead_pct = Some((h - g).max(0.0));
    }
    if let (Some(h), Some(v)) = (f.host_cpu_pct, vcpu_threads_pct) {
        f.emulator_cpu_pct = Some((h - v).max(0.0));
    }

    // KVM counters (none when the vCPU group was not read again: never zeros)
    if kvm && vcpu_fresh {
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for (id, vb) in &b.raw.vcpus {
            let Some(va) = a.raw.vcpus.get(id) else {
                continue;
            };
            for (k, &cur) in &vb.counters {
                if let Some(r) = per_s(va.counters.get(k).copied(), Some(cur), dt_v) {
                    *sums.entry(k.clone()).or_default() += r;
                }
            }
        }
        let g = |k: &str| sums.get(k).copied().unwrap_or(0.0);
        f.exits = Some(ExitRates {
            total: g("exits"),
            io: g("io_exits"),
            mmio: g("mmio_exits"),
            halt: g("halt_exits"),
            irq: g("irq_exits"),
            irq_window: g("irq_window_exits") + g("nmi_window_exits"),
            signal: g("signal_exits"),
            insn_emulation: g("insn_emulation"),
            pf_fixed: g("pf_fixed"),
            hypercalls: g("hypercalls"),
        });
        if sums.contains_key("halt_poll_success_ns") || sums.contains_key("halt_poll_fail_ns") {
            f.halt_poll_pct =
                Some((g("halt_poll_success_ns") + g("halt_poll_fail_ns")) / 1e9 * 100.0);
        }
        f.kvm = sums;
    }

    // memory placement; on a one-node host everything is on that node: its share is the
    // resident memory, and numa_maps need not be read
    let one_node = cpu_node
        .values()
        .next()
        .filter(|n| cpu_node.values().all(|m| m == *n))
        .copied();
    let numa = b.numa_kib.clone().or_else(|| {
        one_node
            .zip(f.rss_kib)
            .map(|(n, rss)| BTreeMap::from([(n, rss)]))
    });
    if let Some(numa) = &numa {
        let nodes: BTreeSet<u32> = f
            .vcpu
            .iter()
            .filter_map(|v| v.last_cpu)
            .filter_map(|c| cpu_node.get(&c).copied())
            .collect();
        let total: u64 = numa.values().sum();
        let remote: u64 = numa
            .iter()
            .filter(|(n, _)| !nodes.contains(n))
            .map(|(_, k)| k)
            .sum();
        f.memory = Some(MemFigures {
            per_node_kib: numa.clone(),
            remote_share: (!nodes.is_empty() && total > 0).then(|| remote as f64 / total as f64),
            vcpu_nodes: nodes.into_iter().collect(),
        });
    }
    f
}

/// RFC 3339 UTC time of a Unix time in milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(unix_ms))
        .to_string()
}

/// The frame between two snapshots.
pub fn frame(prev: &Snapshot, cur: &Snapshot, cpu_node: &BTreeMap<u32, u32>) -> Frame {
    let dt = cur.mono_s - prev.mono_s;
    let mut fr = Frame {
        kind: STAT_SCHEMA.into(),
        version: STAT_VERSION,
        time: rfc3339(cur.unix_ms),
        interval_s: (dt * 1000.0).round() / 1000.0,
        ..Frame::default()
    };
    for (name, b) in &cur.domains {
        match prev.domains.get(name) {
            None => fr.appeared.push(name.clone()),
            Some(a) if restarted(a, b) => fr.restarted.push(name.clone()),
            Some(a) => fr.domains.push(figures(a, b, dt, cpu_node)),
        }
    }
    fr.vanished = prev
        .domains
        .keys()
        .filter(|n| !cur.domains.contains_key(*n))
        .cloned()
        .collect();
    fr
}

/// The diagnosis input of one VM's figures.
pub fn profile(f: &VmFigures, source: &str) -> ExitProfile {
    let mut p = ExitProfile {
        source: source.to_string(),
        per_sec: true,
        ..ExitProfile::default()
    };
    let mut top: Vec<(String, f64)> = Vec::new();
    for (k, v) in &f.kvm {
        match counter(k) {
            Some(Counter::Total) => p.total = *v,
            Some(Counter::Kind(kind)) => {
                *p.kinds.entry(kind).or_default() += v;
                if kind != ExitKind::Emulation && kind != ExitKind::PageFault && *v > 0.0 {
                    top.push((k.clone(), *v));
                }
            }
            None => {}
        }
    }
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    p.top = top;
    if let (Some(h), Some(g)) = (f.host_cpu_pct, f.guest_cpu_pct) {
        p.cpu = Some(CpuFigures {
            host_pct: h,
            guest_pct: g,
            emulator_pct: f.emulator_cpu_pct,
            vcpus: f.vcpus,
        });
    }
    p.halt_poll_pct = f.halt_poll_pct;
    p.delay_pct = f.delay_pct;
    if let Some(m) = &f.memory {
        p.remote_share = m.remote_share;
        p.memory_kib = Some(m.per_node_kib.values().sum());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixtures::rec;
    use crate::live::sampler::RawDomain;
    use kvmtune_host::process::{ProcSample, Thread, Times};
    use kvmtune_libvirt::StatsRecord;

    fn snap(t: f64, recs: &[StatsRecord], proc: Option<ProcSample>) -> Snapshot {
        Snapshot {
            mono_s: t,
            unix_ms: 1_700_000_000_000,
            domains: recs
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        DomSnap {
                            raw: RawDomain::from_record(r),
                            proc: proc.clone(),
                            numa_kib: proc.as_ref().map(|_| BTreeMap::from([(0, 300), (1, 100)])),
                            proc_note: None,
                        },
                    )
                })
                .collect(),
        }
    }

    fn proc(pid: u32, host: u64, guest: u64, vcpu: u64, cpu: u32) -> ProcSample {
        ProcSample {
            pid,
            process: Times {
                utime: host,
                stime: 0,
                guest,
                processor: 0,
                rss_pages: 256,
            },
            threads: vec![Thread {
                tid: pid + 1,
                comm: "CPU 0/KVM".into(),
                vcpu: Some(0),
                times: Times {
                    utime: vcpu,
                    stime: 0,
                    guest,
                    processor: cpu,
                    rss_pages: 0,
                },
            }],
        }
    }

    #[test]
    fn rates_and_cpu_from_libvirt_only() {
        let a = snap(0.0, &[rec("a", 1, 0, 1000, 100)], None);
        let b = snap(2.0, &[rec("a", 1, 2_000_000_000, 5000, 3100)], None);
        let f = frame(&a, &b, &BTreeMap::new());
        assert_eq!(f.interval_s, 2.0);
        let d = &f.domains[0];
        assert_eq!(d.host_cpu_pct, Some(100.0));
        assert_eq!(d.host_cpu_source.as_deref(), Some("libvirt"));
        // no /proc: the guest is the vCPU threads' time
        assert_eq!(d.guest_cpu_pct, Some(50.0));
        assert_eq!(d.emulator_cpu_pct, Some(50.0));
        assert_eq!(d.delay_pct, Some(10.0));
        let e = d.exits.as_ref().unwrap();
        assert_eq!((e.total, e.io), (2000.0, 1500.0));
        assert_eq!(d.halt_poll_pct, Some(25.0));
        let p = profile(d, "a");
        assert_eq!(p.kind(ExitKind::Io), 1500.0);
        assert_eq!(p.total, 2000.0);
    }

    #[test]
    fn proc_figures_guest_time_and_remote_memory() {
        let a = snap(0.0, &[rec("a", 1, 0, 0, 0)], Some(proc(10, 0, 0, 0, 3)));
        let b = snap(
            1.0,
            &[rec("a", 1, 1_300_000_000, 10, 0)],
            Some(proc(10, 130, 5, 100, 3)),
        );
        let nodes = BTreeMap::from([(3, 1)]);
        let d = &frame(&a, &b, &nodes).domains[0];
        assert_eq!(d.host_cpu_pct, Some(130.0));
        assert_eq!(d.host_cpu_source.as_deref(), Some("proc"));
        assert_eq!(d.guest_cpu_pct, Some(5.0));
        assert_eq!(d.guest_cpu_source.as_deref(), Some("guest-time"));
        assert_eq!(d.overhead_pct, Some(125.0));
        assert_eq!(d.emulator_cpu_pct, Some(30.0));
        assert_eq!(d.vcpu[0].last_cpu, Some(3));
        assert_eq!(d.rss_kib, Some(1024));
        assert_eq!(d.vm_stats.get("pages_4k"), Some(&7));
        let m = d.memory.as_ref().unwrap();
        assert_eq!(m.vcpu_nodes, [1]);
        assert_eq!(m.remote_share, Some(0.75));
    }

    #[test]
    fn appear_vanish_restart_and_counter_reset() {
        let a = snap(0.0, &[rec("a", 1, 500, 10, 0), rec("b", 2, 0, 0, 0)], None);
        let b = snap(1.0, &[rec("a", 7, 100, 1, 0), rec("c", 3, 0, 0, 0)], None);
        let f = frame(&a, &b, &BTreeMap::new());
        assert!(f.domains.is_empty());
        assert_eq!(f.restarted, ["a"]);
        assert_eq!(f.appeared, ["c"]);
        assert_eq!(f.vanished, ["b"]);
        // same id, a counter went backwards: that rate is dropped, not negative
        let a = snap(0.0, &[rec("a", 1, 0, 100, 50)], None);
        let b = snap(1.0, &[rec("a", 1, 10, 200, 10)], None);
        let d = &frame(&a, &b, &BTreeMap::new()).domains[0];
        assert_eq!(d.kvm.get("io_exits"), None);
        assert_eq!(d.exits.as_ref().unwrap().total, 100.0);
    }
}

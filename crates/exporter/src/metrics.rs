//! The metric table: every metric the exporter serves, defined once (name, type, labels,
//! meaning). The encoder registers exactly these; docs/exporter.md is generated from it.

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric: its full name (counters end in `_total`), type, label names and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Meta {
    Meta {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter as C, Gauge as G};

const D: &[&str] = &["domain"];

/// Every metric, in the order they are served.
pub const METRICS: &[Meta] = &[
    // per domain
    m(
        "kvmtune_domain_info",
        G,
        &["domain", "uuid", "profile"],
        "1 for every domain libvirt defines or runs; profile is the kvmtune profile the domain is judged with (empty before the first audit).",
    ),
    m(
        "kvmtune_domain_cpu_host_seconds_total",
        C,
        D,
        "CPU time of the whole QEMU process (all threads) in seconds: /proc/PID/stat on the local host, libvirt's cpu.time otherwise.",
    ),
    m(
        "kvmtune_domain_cpu_guest_seconds_total",
        C,
        D,
        "CPU time spent running the guest in seconds: the kernel's guest time for KVM domains, the vCPU threads' time for TCG domains and remote hosts.",
    ),
    m(
        "kvmtune_domain_cpu_emulator_seconds_total",
        C,
        D,
        "CPU time of the QEMU threads that are not vCPUs (main loop, I/O threads, workers) in seconds: host time minus the vCPU threads' time.",
    ),
    m(
        "kvmtune_domain_vcpu_delay_seconds_total",
        C,
        D,
        "Time the vCPUs were runnable but waited for a host CPU, summed over vCPUs, in seconds (libvirt vcpu.N.delay).",
    ),
    m(
        "kvmtune_domain_vcpus",
        G,
        D,
        "vCPUs of the running domain, as libvirt's statistics list them.",
    ),
    m(
        "kvmtune_domain_vcpu_stats_age_seconds",
        G,
        D,
        "Age in seconds of the running domain's vCPU statistics (delay, exits, halt polling, vCPU KVM statistics): 0 when read at this scrape; an idle local domain's are read at every 10th scrape or when 60 s old.",
    ),
    m(
        "kvmtune_domain_memory_node_bytes",
        G,
        &["domain", "node"],
        "Memory of the QEMU process on each host NUMA node in bytes (/proc/PID/numa_maps, read every 10 s on multi-node hosts; the resident size on one-node hosts).",
    ),
    m(
        "kvmtune_domain_memory_remote_ratio",
        G,
        D,
        "Share (0..1) of the process's memory on NUMA nodes where none of its vCPUs last ran.",
    ),
    m(
        "kvmtune_domain_balloon_current_bytes",
        G,
        D,
        "The balloon's current size (the memory the guest has) in bytes, from libvirt's balloon statistics.",
    ),
    m(
        "kvmtune_domain_balloon_target_bytes",
        G,
        D,
        "The memory the domain definition gives the guest (<currentMemory>) in bytes: what the balloon is set to at start.",
    ),
    m(
        "kvmtune_domain_kvm_exits_total",
        C,
        &["domain", "kind"],
        "KVM exits by kind, summed over vCPUs (KVM's binary statistics: io_exits gives kind io, and so on; insn_emulation counts emulated instructions). The total of all exits is kvmtune_domain_kvm_stat_total{stat=\"exits\"}: kinds do not cover every exit.",
    ),
    m(
        "kvmtune_domain_halt_poll_success_seconds_total",
        C,
        D,
        "Time halted vCPUs spent polling before an event arrived, summed over vCPUs, in seconds (KVM halt_poll_success_ns).",
    ),
    m(
        "kvmtune_domain_halt_poll_fail_seconds_total",
        C,
        D,
        "Time halted vCPUs spent polling in vain before sleeping, summed over vCPUs, in seconds (KVM halt_poll_fail_ns).",
    ),
    m(
        "kvmtune_domain_kvm_stat_total",
        C,
        &["domain", "stat"],
        "Every other cumulative KVM binary statistic libvirt returns, by its KVM name, summed over vCPUs (per-vCPU statistics) or of the VM.",
    ),
    m(
        "kvmtune_domain_kvm_stat",
        G,
        &["domain", "stat"],
        "KVM binary statistics that are instant values or peaks (pages_4k, pages_2m, mmu_unsync, max_mmu_page_hash_collisions, ...), by their KVM name.",
    ),
    m(
        "kvmtune_audit_findings",
        G,
        &["domain", "rule", "severity"],
        "1 for each finding of kvmtune's audit of the domain (recomputed every --audit-interval and when the running domains change).",
    ),
    m(
        "kvmtune_pin_drift",
        G,
        D,
        "1 when a vCPU or emulator thread of the running domain may run elsewhere than its definition's vcpupin/emulatorpin say (/proc Cpus_allowed_list), else 0; only for local running domains with pins.",
    ),
    // host
    m(
        "kvmtune_host_ksm_pages_shared",
        G,
        &[],
        "KSM pages in use as shared copies (/sys/kernel/mm/ksm/pages_shared).",
    ),
    m(
        "kvmtune_host_ksm_pages_sharing",
        G,
        &[],
        "Pages that share a KSM page, i.e. pages saved (/sys/kernel/mm/ksm/pages_sharing).",
    ),
    m(
        "kvmtune_host_ksm_saved_bytes",
        G,
        &[],
        "Memory KSM saves in bytes (pages_sharing times the page size).",
    ),
    m(
        "kvmtune_host_hugepages",
        G,
        &["node", "size_bytes"],
        "Hugepages in the pool of each NUMA node and page size (node \"all\" on hosts without NUMA information).",
    ),
    m(
        "kvmtune_host_hugepages_free",
        G,
        &["node", "size_bytes"],
        "Free hugepages in the pool of each NUMA node and page size.",
    ),
    m(
        "kvmtune_host_thp_info",
        G,
        &["mode"],
        "1, with the selected transparent hugepage mode (always, madvise, never).",
    ),
    m(
        "kvmtune_host_numa_balancing",
        G,
        &[],
        "1 when automatic NUMA balancing (kernel.numa_balancing) is on, 0 when off.",
    ),
    m(
        "kvmtune_host_vcpu_thread_ratio",
        G,
        &[],
        "vCPUs of the running domains (from their definitions) per host hardware thread.",
    ),
    m(
        "kvmtune_host_memory_committed_bytes",
        G,
        &[],
        "Memory of the running domains' definitions (<memory>) in bytes.",
    ),
    m(
        "kvmtune_host_memory_total_bytes",
        G,
        &[],
        "The host's RAM in bytes (MemTotal).",
    ),
    m(
        "kvmtune_host_domains",
        G,
        &["state"],
        "Domains by state: running, and defined (every domain libvirt knows, running ones included).",
    ),
    // the exporter
    m(
        "kvmtune_up",
        G,
        &[],
        "1 when the last collection from libvirt succeeded, 0 when libvirt could not be reached (the exporter reconnects by itself).",
    ),
    m(
        "kvmtune_scrape_duration_seconds",
        G,
        &[],
        "Time the last collection took in seconds.",
    ),
    m(
        "kvmtune_libvirt_call_duration_seconds",
        G,
        &[],
        "Time of the last bulk statistics call (libvirt's GetAllDomainStats with the /proc reads of each QEMU process) in seconds.",
    ),
    m(
        "kvmtune_last_error_info",
        G,
        &["error"],
        "1, with the last error of the collection or of the audit, one line, at most 200 characters (absent when there was none).",
    ),
    m(
        "kvmtune_build_info",
        G,
        &["version"],
        "1, with the kvmtune version.",
    ),
    m(
        "kvmtune_audit_timestamp_seconds",
        G,
        &[],
        "Unix time of the last audit (findings, profiles, host figures).",
    ),
];

/// A metric of the table by name.
pub fn meta(name: &str) -> Option<&'static Meta> {
    METRICS.iter().find(|m| m.name == name)
}

/// The metric reference of docs/exporter.md: a Markdown table generated from [`METRICS`].
pub fn reference() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n");
    for m in METRICS {
        let labels = if m.labels.is_empty() {
            "-".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.name,
            m.kind.name(),
            labels,
            m.help
                .replace('|', "\\|")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("kvmtune_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            assert!(!m.help.is_empty() && !m.help.contains('\n'));
            for l in m.labels {
                assert!(!l.starts_with("__"), "{l}");
            }
        }
    }
}

//! What one collection found: plain data, encoded by [`crate::encode`](mod@crate::encode).

use std::collections::BTreeMap;

/// One domain's figures. Cumulative values are raw counters since the domain started
/// (Prometheus computes rates); `None` is "not known" and leaves the series out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainMetrics {
    pub name: String,
    /// Empty when not known.
    pub uuid: String,
    /// The kvmtune profile the domain is judged with (empty before the first audit).
    pub profile: String,
    pub running: bool,
    pub cpu_host_s: Option<f64>,
    pub cpu_guest_s: Option<f64>,
    pub cpu_emulator_s: Option<f64>,
    pub vcpu_delay_s: Option<f64>,
    pub vcpus: Option<u32>,
    /// How old the vCPU group's figures (delay, exits, halt polling, the vCPU KVM
    /// statistics) are, in seconds: 0 when read at this scrape; more for an idle domain,
    /// whose vCPU group is read less often (docs/exporter.md, "Idle domains").
    pub vcpu_stats_age_s: Option<f64>,
    pub memory_node_bytes: BTreeMap<u32, u64>,
    pub memory_remote_ratio: Option<f64>,
    pub balloon_current_bytes: Option<u64>,
    pub balloon_target_bytes: Option<u64>,
    /// KVM exits by kind (`io`, `mmio`, `halt`, ...), summed over vCPUs.
    pub exits: BTreeMap<String, u64>,
    pub halt_poll_success_s: Option<f64>,
    pub halt_poll_fail_s: Option<f64>,
    /// Other cumulative KVM statistics by name.
    pub kvm_counters: BTreeMap<String, u64>,
    /// KVM statistics that are instant values or peaks, by name.
    pub kvm_gauges: BTreeMap<String, u64>,
    /// `Some` only for running local domains with pins in their definition.
    pub pin_drift: Option<bool>,
}

/// One audit finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingLine {
    pub domain: String,
    pub rule: String,
    pub severity: String,
}

/// One hugepage pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The NUMA node id, or `all` for a host without NUMA information.
    pub node: String,
    pub size_bytes: u64,
    pub total: u64,
    pub free: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMetrics {
    pub ksm_pages_shared: Option<u64>,
    pub ksm_pages_sharing: Option<u64>,
    pub ksm_saved_bytes: Option<u64>,
    pub hugepages: Vec<Pool>,
    pub thp_mode: Option<String>,
    pub numa_balancing: Option<bool>,
    pub vcpu_thread_ratio: Option<f64>,
    pub memory_committed_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub domains_running: Option<usize>,
    pub domains_defined: Option<usize>,
}

/// Everything one scrape serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collection {
    pub up: bool,
    pub domains: Vec<DomainMetrics>,
    pub findings: Vec<FindingLine>,
    pub host: HostMetrics,
    pub scrape_duration_s: Option<f64>,
    pub libvirt_call_s: Option<f64>,
    pub last_error: Option<String>,
    pub audit_timestamp_s: Option<f64>,
    pub version: String,
}

impl Collection {
    /// A collection that found nothing: `kvmtune_up 0` and why.
    pub fn down(error: &str) -> Collection {
        Collection {
            up: false,
            last_error: Some(one_line(error)),
            version: crate::VERSION.to_string(),
            ..Collection::default()
        }
    }
}

/// An error as one bounded line: control characters become spaces, at most 200 characters.
pub fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if s.chars().count() > 200 {
        out.pop();
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_bounded_line() {
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), 200);
    }
}

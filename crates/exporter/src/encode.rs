//! A collection in the exposition formats, through the official `prometheus-client`
//! crate: the registry is rebuilt from each collection (a domain gone is gone from the next
//! scrape), with the families of [`crate::metrics::METRICS`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{Kind, METRICS, Meta};
use crate::model::Collection;

/// The exposition format of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// From an `Accept` header: OpenMetrics when asked for, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

type Labels = Vec<(String, String)>;

/// One sample: a metric of the table, its label values in the table's order, the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<String>,
    pub value: f64,
}

/// The samples of a collection.
pub fn samples(c: &Collection) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut s = |name: &'static str, labels: &[&str], value: f64| {
        if value.is_finite() {
            out.push(Sample {
                name,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                value,
            });
        }
    };
    for d in &c.domains {
        let n = d.name.as_str();
        s(
            "kvmtune_domain_info",
            &[n, d.uuid.as_str(), d.profile.as_str()],
            1.0,
        );
        let opt = |v: Option<f64>| v.unwrap_or(f64::NAN);
        s(
            "kvmtune_domain_cpu_host_seconds_total",
            &[n],
            opt(d.cpu_host_s),
        );
        s(
            "kvmtune_domain_cpu_guest_seconds_total",
            &[n],
            opt(d.cpu_guest_s),
        );
        s(
            "kvmtune_domain_cpu_emulator_seconds_total",
            &[n],
            opt(d.cpu_emulator_s),
        );
        s(
            "kvmtune_domain_vcpu_delay_seconds_total",
            &[n],
            opt(d.vcpu_delay_s),
        );
        s("kvmtune_domain_vcpus", &[n], opt(d.vcpus.map(f64::from)));
        s(
            "kvmtune_domain_vcpu_stats_age_seconds",
            &[n],
            opt(d.vcpu_stats_age_s),
        );
        for (node, b) in &d.memory_node_bytes {
            s(
                "kvmtune_domain_memory_node_bytes",
                &[n, &node.to_string()],
                *b as f64,
            );
        }
        s(
            "kvmtune_domain_memory_remote_ratio",
            &[n],
            opt(d.memory_remote_ratio),
        );
        s(
            "kvmtune_domain_balloon_current_bytes",
            &[n],
            opt(d.balloon_current_bytes.map(|b| b as f64)),
        );
        s(
            "kvmtune_domain_balloon_target_bytes",
            &[n],
            opt(d.balloon_target_bytes.map(|b| b as f64)),
        );
        for (kind, v) in &d.exits {
            s("kvmtune_domain_kvm_exits_total", &[n, kind], *v as f64);
        }
        s(
            "kvmtune_domain_halt_poll_success_seconds_total",
            &[n],
            opt(d.halt_poll_success_s),
        );
        s(
            "kvmtune_domain_halt_poll_fail_seconds_total",
            &[n],
            opt(d.halt_poll_fail_s),
        );
        for (k, v) in &d.kvm_counters {
            s("kvmtune_domain_kvm_stat_total", &[n, k], *v as f64);
        }
        for (k, v) in &d.kvm_gauges {
            s("kvmtune_domain_kvm_stat", &[n, k], *v as f64);
        }
        if let Some(drift) = d.pin_drift {
            s("kvmtune_pin_drift", &[n], if drift { 1.0 } else { 0.0 });
        }
    }
    for f in &c.findings {
        s(
            "kvmtune_audit_findings",
            &[&f.domain, &f.rule, &f.severity],
            1.0,
        );
    }
    let h = &c.host;
    let u = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
    s("kvmtune_host_ksm_pages_shared", &[], u(h.ksm_pages_shared));
    s(
        "kvmtune_host_ksm_pages_sharing",
        &[],
        u(h.ksm_pages_sharing),
    );
    s("kvmtune_host_ksm_saved_bytes", &[], u(h.ksm_saved_bytes));
    for p in &h.hugepages {
        let size = p.size_bytes.to_string();
        s("kvmtune_host_hugepages", &[&p.node, &size], p.total as f64);
        s(
            "kvmtune_host_hugepages_free",
            &[&p.node, &size],
            p.free as f64,
        );
    }
    if let Some(mode) = &h.thp_mode {
        s("kvmtune_host_thp_info", &[mode], 1.0);
    }
    if let Some(b) = h.numa_balancing {
        s(
            "kvmtune_host_numa_balancing",
            &[],
            if b { 1.0 } else { 0.0 },
        );
    }
    s(
        "kvmtune_host_vcpu_thread_ratio",
        &[],
        h.vcpu_thread_ratio.unwrap_or(f64::NAN),
    );
    s(
        "kvmtune_host_memory_committed_bytes",
        &[],
        u(h.memory_committed_bytes),
    );
    s(
        "kvmtune_host_memory_total_bytes",
        &[],
        u(h.memory_total_bytes),
    );
    s(
        "kvmtune_host_domains",
        &["running"],
        u(h.domains_running.map(|v| v as u64)),
    );
    s(
        "kvmtune_host_domains",
        &["defined"],
        u(h.domains_defined.map(|v| v as u64)),
    );
    s("kvmtune_up", &[], if c.up { 1.0 } else { 0.0 });
    s(
        "kvmtune_scrape_duration_seconds",
        &[],
        c.scrape_duration_s.unwrap_or(f64::NAN),
    );
    s(
        "kvmtune_libvirt_call_duration_seconds",
        &[],
        c.libvirt_call_s.unwrap_or(f64::NAN),
    );
    if let Some(e) = &c.last_error {
        s("kvmtune_last_error_info", &[e], 1.0);
    }
    s("kvmtune_build_info", &[&c.version], 1.0);
    s(
        "kvmtune_audit_timestamp_seconds",
        &[],
        c.audit_timestamp_s.unwrap_or(f64::NAN),
    );
    out
}

enum Fam {
    Counter(Family<Labels, Counter<f64, AtomicU64>>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
}

/// The registry of a collection: every metric of the table registered once, with the
/// collection's samples.
pub fn registry(c: &Collection) -> Registry {
    let mut fams: BTreeMap<&'static str, (&'static Meta, Fam)> = BTreeMap::new();
    for m in METRICS {
        let f = match m.kind {
            Kind::Counter => Fam::Counter(Family::default()),
            Kind::Gauge => Fam::Gauge(Family::default()),
        };
        fams.insert(m.name, (m, f));
    }
    for s in samples(c) {
        let Some((meta, fam)) = fams.get(s.name) else {
            continue;
        };
        if meta.labels.len() != s.labels.len() {
            continue;
        }
        let labels: Labels = meta
            .labels
            .iter()
            .map(|l| l.to_string())
            .zip(s.labels)
            .collect();
        match fam {
            Fam::Counter(f) => {
                f.get_or_create(&labels).inc_by(s.value.max(0.0));
            }
            Fam::Gauge(f) => {
                f.get_or_create(&labels).set(s.value);
            }
        }
    }
    let mut reg = Registry::default();
    for m in METRICS {
        let Some((_, fam)) = fams.remove(m.name) else {
            continue;
        };
        match fam {
            // prometheus-client appends `_total` to counters itself
            Fam::Counter(f) => reg.register(m.name.trim_end_matches("_total"), help(m), f),
            Fam::Gauge(f) => reg.register(m.name, help(m), f),
        }
    }
    reg
}

/// The help text without its final period (prometheus-client adds one).
fn help(m: &Meta) -> &'static str {
    m.help.strip_suffix('.').unwrap_or(m.help)
}

/// A collection in a format.
pub fn encode(c: &Collection, format: Format) -> String {
    let reg = registry(c);
    let mut out = String::new();
    let r = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &reg),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &reg),
    };
    // writing to a String cannot fail; an encoder error would be a bug: serve what we have
    if r.is_err() {
        out.push_str("# encoding error\n");
    }
    out
}

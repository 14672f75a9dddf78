//! Human text for `kvmtune host` and `kvmtune host --check`.

use std::fmt::Write;

use kvmtune_host::{CpuSet, Host, HugePool, Probe};
use kvmtune_rules::{Check, Verdict};

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn head(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn verdict(&self, v: Verdict) -> String {
        let code = match v {
            Verdict::Pass => "32",
            Verdict::Info => "36",
            Verdict::Warn => "33",
            Verdict::Fail => "1;31",
            Verdict::Unknown => "2",
        };
        self.paint(code, v.as_str())
    }
}

const UNKNOWN: &str = "unknown";

fn unknown() -> String {
    UNKNOWN.to_string()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| UNKNOWN.to_string())
}

fn set_or(v: &Option<CpuSet>, empty: &str) -> String {
    match v {
        Some(s) if s.is_empty() => empty.to_string(),
        Some(s) => s.to_string(),
        None => UNKNOWN.to_string(),
    }
}

/// KiB as a short human size.
pub fn kib(v: u64) -> String {
    let v = v as f64;
    if v >= 1024.0 * 1024.0 {
        format!("{:.1} GiB", v / 1024.0 / 1024.0)
    } else if v >= 1024.0 {
        format!("{:.0} MiB", v / 1024.0)
    } else {
        format!("{v} KiB")
    }
}

fn pools(p: &[HugePool]) -> String {
    if p.is_empty() {
        return "none".to_string();
    }
    p.iter()
        .map(|p| {
            format!(
                "{} {}/{} free",
                kvmtune_host::page_size(p.size_kib),
                p.free,
                p.total
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn probe(p: Probe) -> &'static str {
    match (p.exists, p.openable) {
        (true, true) => "present, opens read-write",
        (true, false) => "present, does not open read-write",
        _ => "missing",
    }
}

fn row(out: &mut String, label: &str, value: impl AsRef<str>) {
    let _ = writeln!(out, "  {label:<16} {}", value.as_ref());
}

/// Key KVM module parameters shown in text (all are in --json).
const KEY_PARAMS: &[&str] = &[
    "nested",
    "halt_poll_ns",
    "ept",
    "npt",
    "enable_apicv",
    "avic",
    "tdp_mmu",
    "nx_huge_pages",
    "ignore_msrs",
    "sev",
];

pub fn host(h: &Host, source: &str, color: bool, verbose: bool) -> String {
    let s = Style { color };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} {}  (kernel {}, read from {})",
        s.head("Host"),
        opt(&h.hostname),
        opt(&h.kernel),
        source
    );

    let c = &h.cpu;
    let _ = writeln!(o, "\n{}", s.head("CPU"));
    row(
        &mut o,
        "model",
        format!("{} ({})", opt(&c.model_name), opt(&c.vendor)),
    );
    row(
        &mut o,
        "virtualization",
        match &c.hw_virt {
            Some(f) => format!("{f}; flags: {}", c.virt_flags.join(" ")),
            None => format!("no vmx/svm; flags: {}", c.virt_flags.join(" ")),
        },
    );
    row(
        &mut o,
        "topology",
        format!(
            "{} socket(s), {} core(s), {} thread(s), {} thread(s) per core, SMT {}",
            opt(&c.sockets),
            opt(&c.cores),
            opt(&c.threads),
            opt(&c.threads_per_core),
            match c.smt_active {
                Some(true) => "active",
                Some(false) => "inactive",
                None => "unknown",
            }
        ),
    );
    row(
        &mut o,
        "online",
        format!(
            "{}  offline: {}",
            set_or(&c.online, "none"),
            set_or(&c.offline, "none")
        ),
    );
    let groups: Vec<String> = c
        .sibling_groups
        .iter()
        .filter(|g| g.len() > 1)
        .map(|g| g.to_string())
        .collect();
    row(
        &mut o,
        "SMT siblings",
        if groups.is_empty() {
            "none".to_string()
        } else {
            groups.join(" ")
        },
    );
    row(
        &mut o,
        "isolated",
        format!(
            "{}  nohz_full: {}",
            c.isolated
                .as_ref()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "none".into()),
            c.nohz_full
                .as_ref()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "none".into())
        ),
    );
    row(
        &mut o,
        "governor",
        if c.governors.is_empty() {
            "none (no cpufreq)".to_string()
        } else {
            c.governors
                .iter()
                .map(|(g, cpus)| format!("{g} on {cpus}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    if verbose {
        let _ = writeln!(
            o,
            "  {:<5} {:<7} {:<7} {:<6} {:<5} siblings",
            "cpu", "online", "socket", "core", "node"
        );
        let dash = || "-".to_string();
        for cpu in &c.cpus {
            let _ = writeln!(
                o,
                "  {:<5} {:<7} {:<7} {:<6} {:<5} {}",
                cpu.id,
                if cpu.online { "yes" } else { "no" },
                cpu.socket.map(|v| v.to_string()).unwrap_or_else(dash),
                cpu.core.map(|v| v.to_string()).unwrap_or_else(dash),
                cpu.node.map(|v| v.to_string()).unwrap_or_else(dash),
                cpu.siblings
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(dash)
            );
        }
    }
    let k = &h.cmdline;
    let mut cmd = Vec::new();
    if let Some(v) = &k.isolcpus {
        cmd.push(format!("isolcpus={v}"));
    }
    if let Some(v) = &k.nohz_full {
        cmd.push(format!("nohz_full={v}"));
    }
    if let Some(v) = &k.default_hugepagesz {
        cmd.push(format!("default_hugepagesz={v}"));
    }
    for (i, sz) in k.hugepagesz.iter().enumerate() {
        match k.hugepages.get(i) {
            Some(n) => cmd.push(format!("hugepagesz={sz} hugepages={n}")),
            None => cmd.push(format!("hugepagesz={sz}")),
        }
    }
    cmd.extend(k.iommu.iter().cloned());
    row(
        &mut o,
        "kernel cmdline",
        if cmd.is_empty() {
            "no CPU, hugepage or IOMMU switches".to_string()
        } else {
            cmd.join(" ")
        },
    );

    let n = &h.numa;
    let _ = writeln!(
        o,
        "\n{}  ({} node(s), numa_balancing {})",
        s.head("NUMA"),
        n.nodes.len(),
        opt(&n.balancing)
    );
    if !n.available {
        let _ = writeln!(o, "  no NUMA support in this kernel");
    } else {
        let _ = writeln!(
            o,
            "  {:<5} {:<16} {:>10} {:>10}  hugepages",
            "node", "cpus", "memory", "free"
        );
        for node in &n.nodes {
            let _ = writeln!(
                o,
                "  {:<5} {:<16} {:>10} {:>10}  {}",
                node.id,
                if node.cpus.is_empty() {
                    "(memory only)".to_string()
                } else {
                    node.cpus.to_string()
                },
                node.memory_total_kib
                    .map(kib)
                    .unwrap_or_else(|| UNKNOWN.into()),
                node.memory_free_kib
                    .map(kib)
                    .unwrap_or_else(|| UNKNOWN.into()),
                pools(&node.hugepages)
            );
        }
        let _ = write!(o, "  distances  ");
        for node in &n.nodes {
            let _ = write!(o, "{:>4}", node.id);
        }
        let _ = writeln!(o);
        for node in &n.nodes {
            let _ = write!(o, "  {:>9}: ", node.id);
            for d in &node.distances {
                let _ = write!(o, "{d:>4}");
            }
            let _ = writeln!(o);
        }
        let stat: Vec<String> = n
            .nodes
            .iter()
            .map(|node| {
                format!(
                    "node{} hit {} miss {} foreign {}",
                    node.id,
                    node.numastat.get("numa_hit").copied().unwrap_or(0),
                    node.numastat.get("numa_miss").copied().unwrap_or(0),
                    node.numastat.get("numa_foreign").copied().unwrap_or(0)
                )
            })
            .collect();
        row(&mut o, "numastat", stat.join("; "));
    }

    let m = &h.memory;
    let _ = writeln!(o, "\n{}", s.head("Memory"));
    row(
        &mut o,
        "RAM",
        format!(
            "{} total, {} free, {} available",
            m.total_kib.map_or_else(unknown, kib),
            m.free_kib.map_or_else(unknown, kib),
            m.available_kib.map_or_else(unknown, kib)
        ),
    );
    row(
        &mut o,
        "hugepages",
        format!(
            "{} (default size {})",
            pools(&m.hugepages),
            m.default_hugepage_kib
                .map(kvmtune_host::page_size)
                .unwrap_or_else(|| UNKNOWN.into())
        ),
    );
    row(
        &mut o,
        "hugetlbfs",
        if m.hugetlbfs.is_empty() {
            "not mounted".to_string()
        } else {
            m.hugetlbfs
                .iter()
                .map(|x| {
                    format!(
                        "{} ({})",
                        x.path,
                        x.pagesize_kib
                            .map(kvmtune_host::page_size)
                            .unwrap_or_else(|| "default".into())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row(
        &mut o,
        "AnonHugePages",
        m.anon_huge_kib.map_or_else(unknown, kib),
    );
    row(
        &mut o,
        "swap",
        match (m.swap_total_kib, m.swaps.len()) {
            (Some(0), _) | (_, 0) => "none".to_string(),
            (t, n) => format!(
                "{} total, {} free on {n} device(s)",
                t.map_or_else(unknown, kib),
                m.swap_free_kib.map_or_else(unknown, kib)
            ),
        },
    );
    row(
        &mut o,
        "KSM",
        match &m.ksm {
            None => "not available".to_string(),
            Some(ksm) => format!(
                "run={} merge_across_nodes={} pages_sharing={} saving {}",
                opt(&ksm.run),
                opt(&ksm.merge_across_nodes),
                opt(&ksm.pages_sharing),
                ksm.saved_bytes
                    .map(|b| kib(b / 1024))
                    .unwrap_or_else(|| UNKNOWN.into())
            ),
        },
    );
    row(
        &mut o,
        "THP",
        match &m.thp {
            None => "not available".to_string(),
            Some(t) => format!(
                "enabled={} defrag={} khugepaged defrag={}",
                opt(&t.enabled),
                opt(&t.defrag),
                t.khugepaged
                    .get("defrag")
                    .cloned()
                    .unwrap_or_else(|| UNKNOWN.into())
            ),
        },
    );

    let kv = &h.kvm;
    let _ = writeln!(o, "\n{}", s.head("KVM"));
    row(&mut o, "/dev/kvm", probe(kv.dev_kvm));
    row(&mut o, "/dev/vhost-net", probe(kv.dev_vhost_net));
    row(&mut o, "/dev/net/tun", probe(kv.dev_tun));
    if kv.modules.is_empty() {
        row(&mut o, "modules", "no kvm module loaded");
    }
    for (name, params) in &kv.modules {
        let shown: Vec<String> = if verbose {
            params.iter().map(|(p, v)| format!("{p}={v}")).collect()
        } else {
            KEY_PARAMS
                .iter()
                .filter_map(|p| params.get(*p).map(|v| format!("{p}={v}")))
                .collect()
        };
        row(
            &mut o,
            &format!("module {name}"),
            if shown.is_empty() {
                format!("{} parameters", params.len())
            } else {
                shown.join(" ")
            },
        );
    }
    row(
        &mut o,
        "IOMMU",
        format!(
            "{} group(s); ACPI tables: {}",
            kv.iommu_groups.len(),
            if kv.iommu_acpi_tables.is_empty() {
                "none".to_string()
            } else {
                kv.iommu_acpi_tables.join(" ")
            }
        ),
    );
    row(
        &mut o,
        "cgroups",
        format!(
            "{}: {}",
            opt(&kv.cgroup.mode),
            kv.cgroup.controllers.join(" ")
        ),
    );

    if h.remote.is_some() {
        o = remote_unknowns(&o);
    }
    let (remote, unreadable): (Vec<_>, Vec<_>) = h
        .unknown
        .iter()
        .partition(|u| h.remote.is_some() && u.error.starts_with("not known over a remote"));
    if !unreadable.is_empty() {
        let _ = writeln!(o, "\n{}  (shown above as unknown)", s.head("Unreadable"));
        for u in unreadable {
            let _ = writeln!(o, "  {:<16} {}: {}", u.field, u.path, u.error);
        }
    }
    if !remote.is_empty() {
        let fields: Vec<&str> = remote.iter().map(|u| u.field.as_str()).collect();
        let _ = writeln!(
            o,
            "\n{}  libvirt does not report: {}",
            s.head("Not known over a remote connection"),
            fields.join(", ")
        );
    }
    o
}

/// The rows of facts libvirt does not report, for a host read over a remote connection:
/// "unknown", never an empty value that would read as "none".
const REMOTE_ROWS: &[&str] = &[
    "isolated",
    "governor",
    "kernel cmdline",
    "hugetlbfs",
    "AnonHugePages",
    "swap",
    "THP",
    "/dev/vhost-net",
    "/dev/net/tun",
    "modules",
    "IOMMU",
    "cgroups",
    "numastat",
];

fn remote_unknowns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let label = line.get(2..18).map(str::trim_end);
        match label {
            Some(l) if line.starts_with("  ") && REMOTE_ROWS.contains(&l) => {
                let _ = writeln!(
                    out,
                    "  {l:<16} unknown (not reported over a remote connection)"
                );
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `host --check` as text: one block per check, wrapped at the width with a hanging indent.
pub fn checks(checks: &[Check], profile: &str, source: &str, st: &crate::output::Style) -> String {
    let s = Style { color: st.color };
    let mut o = String::new();
    o.push_str(&st.wrap(
        "",
        2,
        &format!(
            "{} (profile {profile}, read from {source})",
            s.head("Host checks")
        ),
    ));
    for c in checks {
        let first = format!("  {}  {} ", s.verdict(c.verdict), c.id);
        o.push_str(&st.wrap(&first, 8, &format!("{}: {}", c.title, c.detail)));
        if let Some(h) = &c.hint {
            o.push_str(&st.wrap("        hint: ", 14, h));
        }
    }
    let count = |v| checks.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        o,
        "\n{} pass, {} info, {} warn, {} fail{}",
        count(Verdict::Pass),
        count(Verdict::Info),
        count(Verdict::Warn),
        count(Verdict::Fail),
        match count(Verdict::Unknown) {
            0 => String::new(),
            n => format!(", {n} not judged (not known over a remote connection)"),
        }
    );
    o
}

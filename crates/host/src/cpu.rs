//! CPU facts: /proc/cpuinfo, /sys/devices/system/cpu, /proc/cmdline.

use std::collections::{BTreeMap, BTreeSet};

use crate::cpuset::CpuSet;
use crate::ctx::{Ctx, short};
use crate::model::{Cpu, KernelCmdline, LogicalCpu, Numa};

const SYS_CPU: &str = "/sys/devices/system/cpu";

/// CPU flags that matter for virtualization, in the order they are reported.
pub const VIRT_FLAGS: &[&str] = &[
    "vmx",
    "svm",
    "ept",
    "vpid",
    "npt",
    "nrip_save",
    "avic",
    "x2apic",
    "tsc_deadline_timer",
    "constant_tsc",
    "nonstop_tsc",
    "rdtscp",
    "pdpe1gb",
    "pcid",
    "invpcid",
    "hypervisor",
    "sev",
    "sev_es",
    "sev_snp",
];

/// The first processor block of /proc/cpuinfo.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    pub vendor: Option<String>,
    pub model_name: Option<String>,
    pub flags: BTreeSet<String>,
}

/// Parse /proc/cpuinfo (x86 keys; other architectures give what they have).
pub fn parse_cpuinfo(text: &str) -> Result<CpuInfo, String> {
    let mut info = CpuInfo::default();
    let mut seen_any = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            if seen_any {
                break; // only the first processor block
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line without a colon: {:?}", short(line)));
        };
        seen_any = true;
        let value = value.trim();
        match key.trim() {
            "vendor_id" | "CPU implementer" => info.vendor = Some(value.to_string()),
            "model name" => info.model_name = Some(value.to_string()),
            "flags" | "Features" => {
                info.flags = value.split_whitespace().map(str::to_string).collect()
            }
            _ => {}
        }
    }
    if !seen_any {
        return Err("empty".to_string());
    }
    if info.flags.is_empty() {
        return Err("no flags line".to_string());
    }
    Ok(info)
}

/// Parse the kernel command line for the switches kvmtune cares about.
pub fn parse_cmdline(raw: &str) -> KernelCmdline {
    let mut out = KernelCmdline {
        raw: Some(raw.trim().to_string()),
        ..KernelCmdline::default()
    };
    for word in raw.split_whitespace() {
        if word == "--" {
            break; // the rest belongs to init
        }
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, v.trim_matches('"')),
            None => (word, ""),
        };
        match key {
            "isolcpus" => {
                out.isolcpus = Some(value.to_string());
                let cpus: Vec<&str> = value
                    .split(',')
                    .filter(|t| t.starts_with(|c: char| c.is_ascii_digit() || c == '^'))
                    .collect();
                out.isolcpus_cpus = CpuSet::parse(&cpus.join(",")).ok();
            }
            "nohz_full" => out.nohz_full = Some(value.to_string()),
            "rcu_nocbs" => out.rcu_nocbs = Some(value.to_string()),
            "default_hugepagesz" => out.default_hugepagesz = Some(value.to_string()),
            "hugepagesz" => out.hugepagesz.push(value.to_string()),
            "hugepages" => out.hugepages.push(value.to_string()),
            "intel_iommu" | "amd_iommu" | "iommu" => out.iommu.push(word.to_string()),
            _ => {}
        }
    }
    out
}

pub(crate) fn read_cmdline(cx: &mut Ctx) -> KernelCmdline {
    match cx.value("cmdline", "/proc/cmdline") {
        Some(raw) => parse_cmdline(&raw),
        None => KernelCmdline::default(),
    }
}

fn cpuset(cx: &mut Ctx, field: &str, path: &str, optional: bool) -> Option<CpuSet> {
    let raw = if optional {
        cx.optional(field, path)
    } else {
        cx.value(field, path)
    };
    cx.parse(field, path, raw, |s| {
        CpuSet::parse(s).map_err(|e| crate::ctx::cpuset_error(&e))
    })
}

/// A plain identifier such as a governor name (`performance`, `schedutil`).
pub(crate) fn word(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_string())
    } else {
        Err(format!("not a plain word: {:?}", short(s)))
    }
}

fn int(cx: &mut Ctx, field: &str, path: &str) -> Option<i64> {
    let raw = cx.optional(field, path);
    cx.parse(field, path, raw, |s| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("not a number: {:?}", short(s)))
    })
}

pub(crate) fn read(cx: &mut Ctx, numa: &Numa) -> Cpu {
    let mut cpu = Cpu::default();
    let info_text = cx.text("cpu.flags", "/proc/cpuinfo");
    if let Some(info) = cx.parse("cpu.flags", "/proc/cpuinfo", info_text, parse_cpuinfo) {
        cpu.vendor = info.vendor;
        cpu.model_name = info.model_name;
        cpu.virt_flags = VIRT_FLAGS
            .iter()
            .filter(|f| info.flags.contains(**f))
            .map(|f| f.to_string())
            .collect();
        cpu.hw_virt = ["vmx", "svm"]
            .iter()
            .find(|f| info.flags.contains(**f))
            .map(|f| f.to_string());
    }

    cpu.possible = cpuset(cx, "cpu.possible", &format!("{SYS_CPU}/possible"), false);
    cpu.present = cpuset(cx, "cpu.present", &format!("{SYS_CPU}/present"), false);
    cpu.online = cpuset(cx, "cpu.online", &format!("{SYS_CPU}/online"), false);
    cpu.offline = cpuset(cx, "cpu.offline", &format!("{SYS_CPU}/offline"), true);
    cpu.isolated = cpuset(cx, "cpu.isolated", &format!("{SYS_CPU}/isolated"), true);
    cpu.nohz_full = cpuset(cx, "cpu.nohz_full", &format!("{SYS_CPU}/nohz_full"), true);
    let smt_path = format!("{SYS_CPU}/smt/active");
    let smt = cx.optional("cpu.smt_active", &smt_path);
    cpu.smt_active = cx.parse("cpu.smt_active", &smt_path, smt, |s| match s {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(format!("expected 0 or 1, got {:?}", short(other))),
    });

    // The CPUs to describe: present ones, or the cpuN directories when `present` is unknown.
    let ids: Vec<u32> = match &cpu.present {
        Some(p) => p.iter().collect(),
        None => {
            let mut v: Vec<u32> = cx
                .list_optional("cpu.present", SYS_CPU)
                .iter()
                .filter_map(|n| n.strip_prefix("cpu").and_then(|d| d.parse().ok()))
                .collect();
            v.sort_unstable();
            v
        }
    };
    let node_of: BTreeMap<u32, u32> = numa
        .nodes
        .iter()
        .flat_map(|n| n.cpus.iter().map(move |c| (c, n.id)))
        .collect();

    let mut governors: BTreeMap<String, CpuSet> = BTreeMap::new();
    for id in ids {
        let online = match (&cpu.online, &cpu.offline) {
            (Some(on), _) => on.contains(id),
            (None, Some(off)) => !off.contains(id),
            (None, None) => true,
        };
        let base = format!("{SYS_CPU}/cpu{id}");
        let field = format!("cpu.cpus[{id}]");
        let (socket, die, core, siblings) = if online {
            (
                int(cx, &field, &format!("{base}/topology/physical_package_id")),
                int(cx, &field, &format!("{base}/topology/die_id")),
                int(cx, &field, &format!("{base}/topology/core_id")),
                cpuset(
                    cx,
                    &field,
                    &format!("{base}/topology/thread_siblings_list"),
                    true,
                ),
            )
        } else {
            (None, None, None, None)
        };
        if online && let Some(g) = cx.optional(&field, &format!("{base}/cpufreq/scaling_governor"))
        {
            governors.entry(g).or_default().insert(id);
        }
        cpu.cpus.push(LogicalCpu {
            id,
            online,
            socket,
            die,
            core,
            node: node_of.get(&id).copied(),
            siblings,
        });
    }
    cpu.governors = governors;

    let online: Vec<&LogicalCpu> = cpu.cpus.iter().filter(|c| c.online).collect();
    if !online.is_empty() {
        let sockets: BTreeSet<i64> = online.iter().filter_map(|c| c.socket).collect();
        let cores: BTreeSet<(i64, i64, i64)> = online
            .iter()
            .filter_map(|c| Some((c.socket?, c.die.unwrap_or(0), c.core?)))
            .collect();
        if !sockets.is_empty() {
            cpu.sockets = Some(sockets.len() as u32);
        }
        if !cores.is_empty() {
            cpu.cores = Some(cores.len() as u32);
        }
        cpu.threads = Some(online.len() as u32);
        let groups: BTreeSet<CpuSet> = online.iter().filter_map(|c| c.siblings.clone()).collect();
        cpu.threads_per_core = groups.iter().map(|g| g.len() as u32).max();
        cpu.sibling_groups = groups.into_iter().collect();
    }
    cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_first_block() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2650\nflags\t\t: fpu vmx ept x2apic constant_tsc\n\nprocessor\t: 1\nvendor_id\t: Other\n";
        let info = parse_cpuinfo(text).unwrap();
        assert_eq!(info.vendor.as_deref(), Some("GenuineIntel"));
        assert_eq!(
            info.model_name.as_deref(),
            Some("Intel(R) Xeon(R) CPU E5-2650")
        );
        assert!(info.flags.contains("vmx") && info.flags.contains("ept"));
    }

    #[test]
    fn cpuinfo_garbage_is_an_error() {
        assert!(parse_cpuinfo("").is_err());
        assert!(parse_cpuinfo("\u{1}\u{2}garbage without colon").is_err());
        assert!(parse_cpuinfo("x: 1\n").is_err(), "no flags line");
    }

    #[test]
    fn cmdline_switches() {
        let c = parse_cmdline(
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 isolcpus=domain,managed_irq,2-7 nohz_full=2-7 \
             default_hugepagesz=1G hugepagesz=1G hugepages=8 hugepagesz=2M hugepages=512 \
             intel_iommu=on iommu=pt -- init-arg isolcpus=9",
        );
        assert_eq!(c.isolcpus.as_deref(), Some("domain,managed_irq,2-7"));
        assert_eq!(c.isolcpus_cpus.unwrap().to_string(), "2-7");
        assert_eq!(c.nohz_full.as_deref(), Some("2-7"));
        assert_eq!(c.default_hugepagesz.as_deref(), Some("1G"));
        assert_eq!(c.hugepagesz, vec!["1G", "2M"]);
        assert_eq!(c.hugepages, vec!["8", "512"]);
        assert_eq!(c.iommu, vec!["intel_iommu=on", "iommu=pt"]);
    }
}

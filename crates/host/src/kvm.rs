//! KVM facts: device nodes, KVM module parameters, IOMMU groups and cgroups.

use std::collections::{BTreeMap, BTreeSet};

use crate::ctx::{Ctx, short};
use crate::model::{Cgroup, IommuGroup, Kvm};

/// Parse /proc/cgroups into the v1 controllers the kernel has enabled.
pub fn parse_proc_cgroups(text: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            return Err(format!("short line: {:?}", short(line)));
        }
        if f[3] == "1" {
            out.insert(f[0].to_string());
        }
    }
    Ok(out)
}

/// cgroup mounts of /proc/mounts: (v1 mounts' option lists, v2 mount points).
fn cgroup_mounts(text: &str) -> (Vec<BTreeSet<String>>, Vec<String>) {
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        match f[2] {
            "cgroup" => v1.push(f[3].split(',').map(str::to_string).collect()),
            "cgroup2" => v2.push(f[1].to_string()),
            _ => {}
        }
    }
    (v1, v2)
}

/// The controllers libvirt's QEMU driver uses, as virt-host-validate names them.
pub const LIBVIRT_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"];

fn read_cgroup(cx: &mut Ctx) -> Cgroup {
    let Some(mounts) = cx.text("kvm.cgroup", "/proc/mounts") else {
        return Cgroup::default();
    };
    let (v1, v2) = cgroup_mounts(&mounts);
    let mut controllers = BTreeSet::new();
    if !v1.is_empty() {
        let raw = cx.optional("kvm.cgroup", "/proc/cgroups");
        let enabled = cx
            .parse("kvm.cgroup", "/proc/cgroups", raw, parse_proc_cgroups)
            .unwrap_or_default();
        for opts in &v1 {
            for c in opts.iter().filter(|c| enabled.contains(*c)) {
                controllers.insert(c.clone());
            }
        }
    }
    let pure_v2 = v1.is_empty() && !v2.is_empty();
    for point in &v2 {
        let path = format!("{}/cgroup.controllers", point.trim_end_matches('/'));
        let raw = cx.optional("kvm.cgroup", &path);
        let list = cx.parse("kvm.cgroup", &path, raw, |s| {
            s.split_whitespace()
                .map(crate::cpu::word)
                .collect::<Result<Vec<_>, _>>()
        });
        if let Some(list) = list {
            for c in list.iter().map(String::as_str) {
                match c {
                    "cpu" => {
                        controllers.insert("cpu".to_string());
                        controllers.insert("cpuacct".to_string());
                    }
                    "io" => {
                        controllers.insert("blkio".to_string());
                    }
                    other => {
                        controllers.insert(other.to_string());
                    }
                }
            }
        }
    }
    if pure_v2 {
        // cgroup v2 controls devices with eBPF programs; it has no controller file entry.
        controllers.insert("devices".to_string());
    }
    let mode = match (v1.is_empty(), v2.is_empty()) {
        (false, false) => Some("hybrid"),
        (false, true) => Some("v1"),
        (true, false) => Some("v2"),
        (true, true) => None,
    };
    Cgroup {
        mode: mode.map(str::to_string),
        controllers: controllers.into_iter().collect(),
    }
}

pub(crate) fn read(cx: &mut Ctx) -> Kvm {
    let mut kvm = Kvm {
        dev_kvm: cx.src.probe("/dev/kvm"),
        dev_vhost_net: cx.src.probe("/dev/vhost-net"),
        dev_tun: cx.src.probe("/dev/net/tun"),
        dev_sev: cx.src.probe("/dev/sev"),
        ..Kvm::default()
    };

    let modules: Vec<String> = cx
        .list_optional("kvm.modules", "/sys/module")
        .into_iter()
        .filter(|m| m == "kvm" || m.starts_with("kvm_") || m == "vhost_net")
        .collect();
    for module in modules {
        let dir = format!("/sys/module/{module}/parameters");
        let mut params = BTreeMap::new();
        for p in cx.list_optional("kvm.modules", &dir) {
            if let Some(v) = cx.value(&format!("kvm.modules.{module}"), &format!("{dir}/{p}")) {
                params.insert(p, v);
            }
        }
        kvm.modules.insert(module, params);
    }

    let groups = "/sys/kernel/iommu_groups";
    let mut ids: Vec<u32> = cx
        .list_optional("kvm.iommu_groups", groups)
        .iter()
        .filter_map(|g| g.parse().ok())
        .collect();
    ids.sort_unstable();
    for id in ids {
        let devices = cx.list_optional("kvm.iommu_groups", &format!("{groups}/{id}/devices"));
        kvm.iommu_groups.push(IommuGroup { id, devices });
    }
    for table in ["DMAR", "IVRS", "IORT"] {
        if cx
            .src
            .probe(&format!("/sys/firmware/acpi/tables/{table}"))
            .exists
        {
            kvm.iommu_acpi_tables.push(table.to_string());
        }
    }
    kvm.cgroup = read_cgroup(cx);
    kvm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroups_enabled_controllers() {
        let s = parse_proc_cgroups(
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t17\t1\ncpu\t1\t17\t1\nmemory\t4\t41\t0\n",
        )
        .unwrap();
        assert!(s.contains("cpu") && s.contains("cpuset") && !s.contains("memory"));
        assert!(parse_proc_cgroups("cpu 1").is_err());
    }

    #[test]
    fn cgroup_mount_kinds() {
        let (v1, v2) = cgroup_mounts(
            "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
        );
        assert_eq!(v1.len(), 1);
        assert!(v1[0].contains("cpu"));
        assert_eq!(v2, vec!["/sys/fs/cgroup/unified".to_string()]);
    }
}

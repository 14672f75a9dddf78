//! Memory facts: /proc/meminfo, hugepage pools, hugetlbfs mounts, swap, KSM and THP.

use std::collections::BTreeMap;

use crate::ctx::{Ctx, short, uint};
use crate::model::{HugePool, Ksm, Memory, Mount, Swap, Thp};

/// The base page size KSM counts in. x86_64 and most arm64 kernels use 4 KiB pages.
pub const PAGE_SIZE: u64 = 4096;

/// Parse /proc/meminfo into key → value (kB for sized keys, a count for HugePages_*).
pub fn parse_meminfo(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((key, rest)) = line.split_once(':') else {
            return Err(format!("line without a colon: {:?}", short(line)));
        };
        let number = rest.split_whitespace().next().unwrap_or_default();
        out.insert(key.trim().to_string(), uint(number)?);
    }
    if !out.contains_key("MemTotal") {
        return Err("no MemTotal line".to_string());
    }
    Ok(out)
}

/// Parse a size such as `2M`, `1G`, `2048k`, `1024K` or a plain byte count into KiB.
pub fn parse_size_kib(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1),
        (i, 'm' | 'M') => (&s[..i], 1024),
        (i, 'g' | 'G') => (&s[..i], 1024 * 1024),
        _ => return s.parse::<u64>().ok().map(|b| b / 1024),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The bracketed choice of a sysfs selector such as `always [madvise] never`.
pub fn selected(value: &str) -> Result<String, String> {
    match (value.find('['), value.find(']')) {
        (Some(a), Some(b)) if a < b => crate::cpu::word(&value[a + 1..b]),
        _ => Err(format!("no [selected] choice in {:?}", short(value))),
    }
}

/// Undo the octal escapes of /proc/mounts (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(oct) = bytes.get(i + 1..i + 4)
            && oct.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = oct
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(v as u8);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hugetlbfs mounts of /proc/mounts.
pub fn parse_hugetlbfs_mounts(text: &str) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            return Err(format!("short mount line: {:?}", short(line)));
        }
        if f[2] != "hugetlbfs" {
            continue;
        }
        let pagesize_kib = f[3]
            .split(',')
            .find_map(|o| o.strip_prefix("pagesize="))
            .and_then(parse_size_kib);
        out.push(Mount {
            source: unescape_mount(f[0]),
            path: unescape_mount(f[1]),
            options: f[3].to_string(),
            pagesize_kib,
        });
    }
    Ok(out)
}

/// Parse /proc/swaps.
pub fn parse_swaps(text: &str) -> Result<Vec<Swap>, String> {
    if !text.starts_with("Filename") {
        return Err(format!("no Filename header: {:?}", short(text)));
    }
    let mut out = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            return Err(format!("short swap line: {:?}", short(line)));
        }
        out.push(Swap {
            device: unescape_mount(f[0]),
            kind: f[1].to_string(),
            size_kib: uint(f[2])?,
            used_kib: uint(f[3])?,
            priority: f[4]
                .parse()
                .map_err(|_| format!("bad priority {:?}", short(f[4])))?,
        });
    }
    Ok(out)
}

/// Read the hugepage pools under `dir` (`hugepages-2048kB/nr_hugepages`, ...).
pub(crate) fn read_pools(cx: &mut Ctx, field: &str, dir: &str, global: bool) -> Vec<HugePool> {
    let mut pools = Vec::new();
    for name in cx.list_optional(field, dir) {
        let Some(size_kib) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let base = format!("{dir}/{name}");
        let mut get = |file: &str| {
            let path = format!("{base}/{file}");
            let raw = cx.value(field, &path);
            cx.parse(field, &path, raw, uint)
        };
        let (Some(total), Some(free), Some(surplus)) = (
            get("nr_hugepages"),
            get("free_hugepages"),
            get("surplus_hugepages"),
        ) else {
            continue;
        };
        let reserved = if global { get("resv_hugepages") } else { None };
        pools.push(HugePool {
            size_kib,
            total,
            free,
            surplus,
            reserved,
        });
    }
    pools.sort_by_key(|p| p.size_kib);
    pools
}

fn read_ksm(cx: &mut Ctx) -> Option<Ksm> {
    let dir = "/sys/kernel/mm/ksm";
    let names = match cx.src.list(dir) {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            cx.fail("memory.ksm", &e);
            return None;
        }
    };
    let mut files = BTreeMap::new();
    for name in names {
        if let Some(v) = cx.value("memory.ksm", &format!("{dir}/{name}")) {
            files.insert(name, v);
        }
    }
    let mut num = |key: &str| {
        let path = format!("{dir}/{key}");
        let raw = files.get(key).cloned();
        cx.parse("memory.ksm", &path, raw, uint)
    };
    let run = num("run").map(|v| v as u32);
    let merge_across_nodes = num("merge_across_nodes").map(|v| v as u32);
    let pages_shared = num("pages_shared");
    let pages_sharing = num("pages_sharing");
    Some(Ksm {
        run,
        merge_across_nodes,
        pages_shared,
        pages_sharing,
        saved_bytes: pages_sharing.map(|p| p.saturating_mul(PAGE_SIZE)),
        files,
    })
}

fn read_thp(cx: &mut Ctx) -> Option<Thp> {
    let dir = "/sys/kernel/mm/transparent_hugepage";
    let enabled_path = format!("{dir}/enabled");
    let enabled = match cx.src.read_value(&enabled_path) {
        Ok(v) => cx.parse("memory.thp.enabled", &enabled_path, Some(v), selected),
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            cx.fail("memory.thp.enabled", &e);
            None
        }
    };
    let defrag_path = format!("{dir}/defrag");
    let raw = cx.value("memory.thp.defrag", &defrag_path);
    let defrag = cx.parse("memory.thp.defrag", &defrag_path, raw, selected);
    let shmem_path = format!("{dir}/shmem_enabled");
    let raw = cx.optional("memory.thp.shmem_enabled", &shmem_path);
    let shmem_enabled = cx.parse("memory.thp.shmem_enabled", &shmem_path, raw, selected);
    let mut khugepaged = BTreeMap::new();
    let kdir = format!("{dir}/khugepaged");
    for name in cx.list_optional("memory.thp.khugepaged", &kdir) {
        if let Some(v) = cx.value("memory.thp.khugepaged", &format!("{kdir}/{name}")) {
            khugepaged.insert(name, v);
        }
    }
    Some(Thp {
        enabled,
        defrag,
        shmem_enabled,
        khugepaged,
    })
}

pub(crate) fn read(cx: &mut Ctx) -> Memory {
    let mut m = Memory::default();
    let raw = cx.text("memory", "/proc/meminfo");
    if let Some(info) = cx.parse("memory", "/proc/meminfo", raw, parse_meminfo) {
        m.total_kib = info.get("MemTotal").copied();
        m.free_kib = info.get("MemFree").copied();
        m.available_kib = info.get("MemAvailable").copied();
        m.anon_huge_kib = info.get("AnonHugePages").copied();
        m.default_hugepage_kib = info.get("Hugepagesize").copied();
        m.swap_total_kib = info.get("SwapTotal").copied();
        m.swap_free_kib = info.get("SwapFree").copied();
    }
    m.hugepages = read_pools(cx, "memory.hugepages", "/sys/kernel/mm/hugepages", true);
    let raw = cx.text("memory.hugetlbfs", "/proc/mounts");
    m.hugetlbfs = cx
        .parse(
            "memory.hugetlbfs",
            "/proc/mounts",
            raw,
            parse_hugetlbfs_mounts,
        )
        .unwrap_or_default();
    let raw = cx.text("memory.swaps", "/proc/swaps");
    m.swaps = cx
        .parse("memory.swaps", "/proc/swaps", raw, parse_swaps)
        .unwrap_or_default();
    m.ksm = read_ksm(cx);
    m.thp = read_thp(cx);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values() {
        let m = parse_meminfo(
            "MemTotal:       24567892 kB\nMemFree:        1000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        assert_eq!(m["MemTotal"], 24567892);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m["Hugepagesize"], 2048);
        assert!(parse_meminfo("MemFree: x kB").is_err());
        assert!(parse_meminfo("MemFree: 1 kB").is_err());
    }

    #[test]
    fn sizes_and_selectors() {
        assert_eq!(parse_size_kib("2M"), Some(2048));
        assert_eq!(parse_size_kib("1G"), Some(1048576));
        assert_eq!(parse_size_kib("2048k"), Some(2048));
        assert_eq!(parse_size_kib("2097152"), Some(2048));
        assert_eq!(parse_size_kib("M"), None);
        assert_eq!(selected("always [madvise] never").unwrap(), "madvise");
        assert_eq!(selected("[never]").unwrap(), "never");
        assert!(selected("1").is_err());
        assert!(selected("a [\u{1}] b").is_err());
    }

    #[test]
    fn mounts_and_swaps() {
        let m = parse_hugetlbfs_mounts(
            "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages1G hugetlbfs rw,relatime,pagesize=1024M 0 0\nnone /mnt/huge\\040x hugetlbfs rw 0 0\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].pagesize_kib, Some(1048576));
        assert_eq!(m[1].path, "/mnt/huge x");
        let s = parse_swaps(
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2 partition\t8388604\t0\t-2\n",
        )
        .unwrap();
        assert_eq!(s[0].size_kib, 8388604);
        assert_eq!(s[0].priority, -2);
        assert!(parse_swaps("Filename\n/dev/x partition zz 0 1\n").is_err());
        assert!(parse_swaps("garbage").is_err());
    }
}

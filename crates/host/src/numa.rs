//! NUMA facts: /sys/devices/system/node and kernel.numa_balancing.

use std::collections::BTreeMap;

use crate::cpuset::CpuSet;
use crate::ctx::{Ctx, short, uint};
use crate::memory::read_pools;
use crate::model::{Node, Numa};

const SYS_NODE: &str = "/sys/devices/system/node";

/// Parse a node's `meminfo` (`Node 0 MemTotal:  65501 kB` lines) into key → KiB.
pub fn parse_node_meminfo(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((left, right)) = line.split_once(':') else {
            return Err(format!("line without a colon: {:?}", short(line)));
        };
        let key = left
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        let number = right.split_whitespace().next().unwrap_or_default();
        out.insert(key, uint(number)?);
    }
    if out.is_empty() {
        return Err("empty".to_string());
    }
    Ok(out)
}

/// Parse `key value` lines (numastat, vmstat-like files).
pub fn parse_counters(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("expected `name value`: {:?}", short(line)));
        };
        out.insert(k.to_string(), uint(v)?);
    }
    Ok(out)
}

/// Parse a node's `distance` file.
pub fn parse_distances(text: &str) -> Result<Vec<u32>, String> {
    text.split_whitespace()
        .map(|w| {
            w.parse::<u32>()
                .map_err(|_| format!("not a distance: {:?}", short(w)))
        })
        .collect()
}

pub(crate) fn read(cx: &mut Ctx) -> Numa {
    let mut numa = Numa::default();
    let raw = cx.optional("numa.balancing", "/proc/sys/kernel/numa_balancing");
    numa.balancing = cx.parse(
        "numa.balancing",
        "/proc/sys/kernel/numa_balancing",
        raw,
        |s| uint(s).map(|v| v as u32),
    );

    let entries = match cx.src.list(SYS_NODE) {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return numa, // no NUMA support in this kernel
        Err(e) => {
            cx.fail("numa.nodes", &e);
            return numa;
        }
    };
    numa.available = true;
    let online_path = format!("{SYS_NODE}/online");
    let raw = cx.value("numa.online", &online_path);
    numa.online = cx.parse("numa.online", &online_path, raw, |s| {
        CpuSet::parse(s).map_err(|e| crate::ctx::cpuset_error(&e))
    });

    let mut ids: Vec<u32> = entries
        .iter()
        .filter_map(|n| n.strip_prefix("node").and_then(|d| d.parse().ok()))
        .collect();
    ids.sort_unstable();
    for id in ids {
        let base = format!("{SYS_NODE}/node{id}");
        let field = format!("numa.nodes[{id}]");
        let cpulist = format!("{base}/cpulist");
        let raw = cx.value(&field, &cpulist);
        let cpus = cx
            .parse(&field, &cpulist, raw, |s| {
                CpuSet::parse(s).map_err(|e| crate::ctx::cpuset_error(&e))
            })
            .unwrap_or_default();

        let meminfo_path = format!("{base}/meminfo");
        let raw = cx.text(&format!("{field}.memory"), &meminfo_path);
        let meminfo = cx.parse(
            &format!("{field}.memory"),
            &meminfo_path,
            raw,
            parse_node_meminfo,
        );
        let (total, free) = match &meminfo {
            Some(m) => (m.get("MemTotal").copied(), m.get("MemFree").copied()),
            None => (None, None),
        };

        let numastat_path = format!("{base}/numastat");
        let raw = cx.src.read_text(&numastat_path);
        let numastat = match raw {
            Ok(t) => cx
                .parse(
                    &format!("{field}.numastat"),
                    &numastat_path,
                    Some(t),
                    parse_counters,
                )
                .unwrap_or_default(),
            Err(e) if e.is_not_found() => BTreeMap::new(),
            Err(e) => {
                cx.fail(&format!("{field}.numastat"), &e);
                BTreeMap::new()
            }
        };

        let distance_path = format!("{base}/distance");
        let raw = cx.value(&format!("{field}.distances"), &distance_path);
        let distances = cx
            .parse(
                &format!("{field}.distances"),
                &distance_path,
                raw,
                parse_distances,
            )
            .unwrap_or_default();

        let hugepages = read_pools(
            cx,
            &format!("{field}.hugepages"),
            &format!("{base}/hugepages"),
            false,
        );
        numa.nodes.push(Node {
            id,
            cpus,
            memory_total_kib: total,
            memory_free_kib: free,
            hugepages,
            numastat,
            distances,
        });
    }
    numa
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_meminfo() {
        let m = parse_node_meminfo(
            "Node 0 MemTotal:       67073024 kB\nNode 0 MemFree:          705536 kB\nNode 0 HugePages_Total:     0\n",
        )
        .unwrap();
        assert_eq!(m["MemTotal"], 67073024);
        assert_eq!(m["MemFree"], 705536);
        assert_eq!(m["HugePages_Total"], 0);
        assert!(parse_node_meminfo("garbage").is_err());
    }

    #[test]
    fn counters_and_distances() {
        let c = parse_counters("numa_hit 4911255660\nnuma_miss 20552767\n").unwrap();
        assert_eq!(c["numa_hit"], 4911255660);
        assert!(parse_counters("numa_hit x").is_err());
        assert_eq!(parse_distances("10 20\n").unwrap(), vec![10, 20]);
        assert!(parse_distances("10 ?").is_err());
    }
}

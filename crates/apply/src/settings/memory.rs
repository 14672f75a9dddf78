//! Memory: the maximum and current (balloon) size, and `<memtune>` limits.

use kvmtune_domain::Domain;
use kvmtune_libvirt::{MEMTUNE_UNLIMITED_KIB, MemTuneSet};

use super::{LiveOp, Settings};

/// Read the memory sizes and limits.
pub(super) fn read(d: &Domain, s: &mut Settings) {
    s.memory_kib = d.memory_kib;
    s.current_memory_kib = d.current_memory_kib;
    if let Some(mt) = &d.memtune {
        s.hard_limit_kib = mt.hard_limit_kib;
        s.soft_limit_kib = mt.soft_limit_kib;
        s.swap_hard_limit_kib = mt.swap_hard_limit_kib;
    }
}

/// A limit as libvirt reports it: none is unlimited.
fn lim(v: Option<u64>) -> u64 {
    v.unwrap_or(MEMTUNE_UNLIMITED_KIB)
}

/// The memtune and balloon operations from `cur` to `want`. The maximum changes only at
/// the next start, and the balloon cannot go above the running maximum.
pub(super) fn diff(
    cur: &Settings,
    want: &Settings,
    ops: &mut Vec<LiveOp>,
    later: &mut Vec<String>,
) {
    let mut m = MemTuneSet::default();
    if lim(cur.hard_limit_kib) != lim(want.hard_limit_kib) {
        m.hard_limit_kib = Some(lim(want.hard_limit_kib));
    }
    if lim(cur.soft_limit_kib) != lim(want.soft_limit_kib) {
        m.soft_limit_kib = Some(lim(want.soft_limit_kib));
    }
    if lim(cur.swap_hard_limit_kib) != lim(want.swap_hard_limit_kib) {
        m.swap_hard_limit_kib = Some(lim(want.swap_hard_limit_kib));
    }
    if m != MemTuneSet::default() {
        ops.push(LiveOp::Memtune(m));
    }
    if want.memory_kib != cur.memory_kib {
        later.push("maximum memory: at the next start".into());
    }
    if let (Some(w), Some(c)) = (want.current_memory_kib, cur.current_memory_kib)
        && w != c
    {
        if w <= cur.memory_kib.unwrap_or(u64::MAX) {
            ops.push(LiveOp::Balloon { kib: w });
        } else {
            later.push(format!(
                "current memory {w} KiB is above the running maximum: at the next start"
            ));
        }
    }
}

/// `virsh memtune` for a set of limits.
pub(super) fn memtune_command(dom: &str, m: &MemTuneSet) -> String {
    let mut s = format!("virsh memtune {dom}");
    for (flag, v) in [
        ("--hard-limit", m.hard_limit_kib),
        ("--soft-limit", m.soft_limit_kib),
        ("--swap-hard-limit", m.swap_hard_limit_kib),
    ] {
        match v {
            Some(MEMTUNE_UNLIMITED_KIB) => s.push_str(&format!(" {flag} -1")),
            Some(k) => s.push_str(&format!(" {flag} {k}")),
            None => {}
        }
    }
    s + " --live"
}

/// After `Memtune`.
pub(super) fn verify_memtune(live: &Settings, m: &MemTuneSet, problems: &mut Vec<String>) {
    for (what, want, got) in [
        ("hard_limit", m.hard_limit_kib, live.hard_limit_kib),
        ("soft_limit", m.soft_limit_kib, live.soft_limit_kib),
        (
            "swap_hard_limit",
            m.swap_hard_limit_kib,
            live.swap_hard_limit_kib,
        ),
    ] {
        if let Some(w) = want
            && w != lim(got)
        {
            let got = match got {
                Some(k) => format!("{k} KiB"),
                None => "unlimited".to_string(),
            };
            problems.push(format!("running {what} is {got}, not {w} KiB"));
        }
    }
}

/// After `Balloon`.
pub(super) fn verify_balloon(live: &Settings, kib: u64, problems: &mut Vec<String>) {
    if live.current_memory_kib != Some(kib) {
        problems.push(format!("the balloon target is not {kib} KiB"));
    }
}

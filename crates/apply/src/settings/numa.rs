//! NUMA: the memory policy of `<numatune><memory>` (mode and nodeset). The guest cells
//! (`<cpu><numa>`, `<numatune><memnode>`) change only through the stored definition
//! (see [`crate::plan::apply_to_xml`]).

use kvmtune_domain::Domain;

use super::{LiveOp, Settings, norm};

/// Read the memory mode and nodeset.
pub(super) fn read(d: &Domain, s: &mut Settings) {
    if let Some(m) = d.numatune.as_ref().and_then(|n| n.memory.as_ref()) {
        s.numa_mode = m.mode.clone().or(Some("strict".into()));
        s.numa_nodeset = m.nodeset.as_deref().map(norm);
    }
}

/// The nodeset operation from `cur` to `want`. libvirt changes a running domain's nodeset
/// only in strict or restrictive mode, and never its mode.
pub(super) fn diff(
    cur: &Settings,
    want: &Settings,
    ops: &mut Vec<LiveOp>,
    later: &mut Vec<String>,
) {
    match (&cur.numa_mode, &want.numa_mode) {
        (a, b) if a == b => {
            if let (Some(n), true) = (&want.numa_nodeset, cur.numa_nodeset != want.numa_nodeset) {
                if matches!(want.numa_mode.as_deref(), Some("strict" | "restrictive")) {
                    ops.push(LiveOp::NumaNodeset { nodeset: n.clone() });
                } else {
                    later.push(format!(
                        "NUMA nodeset -> {n}: at the next start (libvirt changes a running \
                         domain's nodeset only in strict or restrictive mode)"
                    ));
                }
            }
        }
        (a, b) => later.push(format!(
            "numatune mode {} -> {}: at the next start",
            a.as_deref().unwrap_or("(none)"),
            b.as_deref().unwrap_or("(none)")
        )),
    }
}

/// After `NumaNodeset`.
pub(super) fn verify_nodeset(live: &Settings, nodeset: &str, problems: &mut Vec<String>) {
    if live.numa_nodeset.as_deref() != Some(nodeset) {
        problems.push(format!("the running nodeset is not {nodeset}"));
    }
}

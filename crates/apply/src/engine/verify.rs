//! Verification after a unit of steps: what libvirt, /proc and the host files say now.

use super::{Env, Prepared};
use crate::hostset;
use crate::journal::{Action, Step};
use crate::settings::{self, LiveOp};
use kvmtune_host::process::Affinity;

/// Check the host after its steps: every setting reads back as written, every persistent
/// file holds what was written.
pub(super) fn host(env: &Env, steps: &[&Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Host(w) => env.verify_setting(w).err(),
            Action::File(f) => hostset::verify_file(&env.root, f).err(),
            _ => None,
        })
        .collect()
}

/// Check a domain after its steps: the stored definition holds the new settings (and
/// `check` has nothing to say about it), the running domain holds its target settings, and
/// every pinned thread's affinity in /proc is its pin.
pub(super) fn domain(
    env: &Env,
    prep: &Prepared,
    name: &str,
    steps: &[&Step],
    check: &dyn Fn(&str, &str) -> Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if steps
        .iter()
        .any(|s| matches!(s.action, Action::Define { .. }))
    {
        match env.virt.xml(name, true) {
            Ok(xml) => {
                match (settings::read_xml(&xml), prep.new_settings.get(name)) {
                    (Ok(got), Some(want)) if &got != want => problems.push(format!(
                        "the stored definition does not hold the new settings (libvirt stored {})",
                        settings::differences(&got, want)
                    )),
                    (Err(e), _) => problems.push(format!("stored XML: {e}")),
                    _ => {}
                }
                problems.extend(check(name, &xml));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let live: Vec<&LiveOp> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Live(op) => Some(op),
            _ => None,
        })
        .collect();
    if live.is_empty() {
        return problems;
    }
    let cur = match super::live_settings(env, name) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("live XML: {e}"));
            return problems;
        }
    };
    let aff = env
        .proc
        .as_ref()
        .and_then(|p| p.pid(name).map(|pid| p.affinity(pid)));
    let aff: Option<Affinity> = match aff {
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    for op in live {
        problems.extend(op.verify(&cur, aff.as_ref(), &env.host_cpus));
    }
    problems
}

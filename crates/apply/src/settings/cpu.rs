//! vCPUs and their pins: the vCPU count (online and maximum), `<vcpu cpuset>`, `<cputune>`
//! `vcpupin` and `emulatorpin`, and where the kernel lets the QEMU threads run.

use kvmtune_domain::{Document, Domain};
use kvmtune_host::CpuSet;
use kvmtune_libvirt::LibvirtError;

use super::{LiveOp, Settings, norm};
use kvmtune_host::process::{Affinity, QemuProcs as Proc};

/// Read the vCPU count and the pins.
pub(super) fn read(doc: &Document, d: &Domain, s: &mut Settings) {
    let root = doc.root();
    s.vcpus = match doc.child(root, "vcpus") {
        Some(list) => doc
            .children(list, "vcpu")
            .filter(|&v| doc.attr(v, "enabled") == Some("yes"))
            .count() as u32,
        None => d.vcpu.current.unwrap_or(d.vcpu.max),
    };
    s.max_vcpus = d.vcpu.max;
    s.vcpu_cpuset = d.vcpu.cpuset.as_deref().map(norm);
    if let Some(ct) = &d.cputune {
        for p in &ct.vcpupin {
            if let Some(id) = p.id {
                s.vcpupin.insert(id, norm(&p.cpuset));
            }
        }
        s.emulatorpin = ct.emulatorpin.as_ref().map(|p| norm(&p.cpuset));
    }
}

impl Settings {
    /// Where vCPU `v` may run: its pin, else `<vcpu cpuset>`, else every host CPU.
    pub fn vcpu_affinity(&self, v: u32, all: &str) -> String {
        self.vcpupin
            .get(&v)
            .or(self.vcpu_cpuset.as_ref())
            .cloned()
            .unwrap_or_else(|| norm(all))
    }
    /// Where the emulator threads may run.
    pub fn emulator_affinity(&self, all: &str) -> String {
        self.emulatorpin
            .as_ref()
            .or(self.vcpu_cpuset.as_ref())
            .cloned()
            .unwrap_or_else(|| norm(all))
    }
}

/// The vCPU count and pin operations from `cur` to `want`: grow before pinning (the new
/// vCPUs get pinned), shrink after. A vCPU or the emulator is re-pinned only when where it
/// may run changes (`cur_affinity`: where the threads actually run now).
pub(super) fn diff(
    cur: &Settings,
    want: &Settings,
    all: &str,
    cur_affinity: Option<&Affinity>,
    ops: &mut Vec<LiveOp>,
    later: &mut Vec<String>,
) {
    if want.max_vcpus != cur.max_vcpus {
        later.push(format!(
            "maximum vCPUs {} -> {}: at the next start",
            cur.max_vcpus, want.max_vcpus
        ));
    }
    let target = want.vcpus.min(cur.max_vcpus);
    if target > cur.vcpus {
        ops.push(LiveOp::SetVcpus { count: target });
    }
    for v in 0..target {
        let now = cur_affinity
            .and_then(|a| a.vcpus.get(&v).cloned())
            .unwrap_or_else(|| cur.vcpu_affinity(v, all));
        let to = want.vcpu_affinity(v, all);
        if now != to || (v < cur.vcpus && cur.vcpu_affinity(v, all) != to) {
            ops.push(LiveOp::PinVcpu { vcpu: v, cpus: to });
        }
    }
    let now = cur_affinity
        .map(|a| a.emulator.clone())
        .unwrap_or_else(|| cur.emulator_affinity(all));
    let to = want.emulator_affinity(all);
    if now != to || cur.emulator_affinity(all) != to {
        ops.push(LiveOp::PinEmulator { cpus: to });
    }
    if target < cur.vcpus {
        ops.push(LiveOp::SetVcpus { count: target });
    }
}

/// The CPUs of a cpuset, for libvirt's pin calls.
pub(super) fn cpus_of(s: &str) -> Result<Vec<u32>, LibvirtError> {
    CpuSet::parse(s)
        .map(|c| c.iter().collect())
        .map_err(|e| LibvirtError {
            op: format!("cpuset {s}"),
            message: e.to_string(),
        })
}

/// After `SetVcpus`: libvirt's count and, when known, QEMU's vCPU threads.
pub(super) fn verify_count(
    live: &Settings,
    aff: Option<&Affinity>,
    count: u32,
    problems: &mut Vec<String>,
) {
    if live.vcpus != count {
        problems.push(format!("libvirt reports {} vCPUs, not {count}", live.vcpus));
    }
    if let Some(a) = aff
        && a.vcpus.len() != count as usize
    {
        problems.push(format!(
            "QEMU runs {} vCPU threads, not {count}",
            a.vcpus.len()
        ));
    }
}

/// After `PinVcpu`: libvirt's record first, then the kernel's (when this host runs the
/// domain).
pub(super) fn verify_vcpu_pin(
    live: &Settings,
    aff: Option<&Affinity>,
    all: &str,
    vcpu: u32,
    cpus: &str,
    problems: &mut Vec<String>,
) {
    let recorded = live.vcpu_affinity(vcpu, all);
    if recorded != cpus {
        problems.push(format!(
            "libvirt's live XML pins vCPU {vcpu} to {recorded}, not {cpus}"
        ));
    }
    if let Some(a) = aff {
        match a.vcpus.get(&vcpu) {
            Some(got) if got == cpus => {}
            Some(got) => problems.push(format!(
                "vCPU {vcpu} thread may run on {got} (/proc Cpus_allowed_list), not {cpus}"
            )),
            None => problems.push(format!("no thread for vCPU {vcpu} in /proc")),
        }
    }
}

/// After `PinEmulator`.
pub(super) fn verify_emulator_pin(
    live: &Settings,
    aff: Option<&Affinity>,
    all: &str,
    cpus: &str,
    problems: &mut Vec<String>,
) {
    let recorded = live.emulator_affinity(all);
    if recorded != cpus {
        problems.push(format!(
            "libvirt's live XML pins the emulator to {recorded}, not {cpus}"
        ));
    }
    if let Some(a) = aff
        && a.emulator != cpus
    {
        problems.push(format!(
            "the emulator thread may run on {} (/proc), not {cpus}",
            a.emulator
        ));
    }
}

/// What a rollback takes the running domain back to: the pins go back to where the
/// threads actually ran before (`before`, journaled from /proc).
pub(crate) fn restore_target(want: &mut Settings, before: &Affinity, all: &str) {
    for (v, cpus) in &before.vcpus {
        if want.vcpu_affinity(*v, all) != *cpus {
            want.vcpupin.insert(*v, cpus.clone());
        }
    }
    if want.emulator_affinity(all) != before.emulator {
        want.emulatorpin = Some(before.emulator.clone());
    }
}

/// What to add to a failed restore operation's error.
pub(crate) fn restore_hint(op: &LiveOp, during_apply: bool) -> &'static str {
    if matches!(op, LiveOp::SetVcpus { .. }) && during_apply {
        " (the vCPU count returns with the next start)"
    } else {
        ""
    }
}

/// libvirt 9.0 can time out on a vCPU unplug that QEMU carries out (seen with TCG guests):
/// when the error is that timeout, wait up to 3 s for QEMU's vCPU threads to number the
/// target.
pub(crate) fn unplug_done_anyway(
    proc: Option<&Proc>,
    name: &str,
    op: &LiveOp,
    e: &LibvirtError,
) -> bool {
    let (LiveOp::SetVcpus { count }, Some(p)) = (op, proc) else {
        return false;
    };
    if !e.message.contains("unplug") {
        return false;
    }
    for _ in 0..30 {
        if let Some(a) = p.pid(name).and_then(|pid| p.affinity(pid).ok())
            && a.vcpus.len() == *count as usize
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// After a restore: every thread's affinity in /proc is the journaled one.
pub(crate) fn verify_restored(
    name: &str,
    before: &Affinity,
    proc: &Proc,
    pid: u32,
    errors: &mut Vec<String>,
) {
    match proc.affinity(pid) {
        Ok(now) => {
            if now.emulator != before.emulator {
                errors.push(format!(
                    "{name}: emulator thread may run on {}, was {}",
                    now.emulator, before.emulator
                ));
            }
            for (v, cpus) in &before.vcpus {
                match now.vcpus.get(v) {
                    Some(c) if c == cpus => {}
                    Some(c) => errors.push(format!("{name}: vCPU {v} may run on {c}, was {cpus}")),
                    None => errors.push(format!("{name}: vCPU {v} thread is gone")),
                }
            }
        }
        Err(e) => errors.push(format!("{name}: {e}")),
    }
}

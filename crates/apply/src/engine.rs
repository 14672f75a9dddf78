//! The transaction behind `kvmtune apply` and `kvmtune rollback`.
//!
//! [`prepare`] reads the state (each domain's stored and live XML, its threads' affinity,
//! each host setting) and turns the request into numbered steps, changing nothing; it refuses
//! a domain whose stored XML is no longer the one the request was computed from.
//! [`execute`] journals the state before (fsynced), makes the steps in order, verifies each
//! domain and the host after its steps, and on any failure restores everything from the
//! journal. [`rollback`] restores a journal entry on request, also after a crash.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kvmtune_domain::Document;
use kvmtune_libvirt::Virt;
use serde::Serialize;

use crate::hostset::{self, FileWrite, HostWrite};
use crate::journal::{
    Action, DomainBefore, Entry, FileBefore, HostBefore, Journal, JournalError, Lock, Outcome,
    RollbackRecord, Status, Step,
};
use crate::procfs::{Affinity, Proc};
use crate::settings::{self, LiveOp, Settings};
use crate::{inject, sha256};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("domain {name}: {why}")]
    Domain { name: String, why: String },
    #[error("{0}")]
    Libvirt(#[from] kvmtune_libvirt::LibvirtError),
    #[error("host setting {path}: {why}")]
    Host { path: String, why: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What to change on one domain.
#[derive(Debug, Clone, Default)]
pub struct DomainChange {
    pub name: String,
    /// SHA-256 of the stored XML the change was computed from; the apply refuses if the
    /// stored XML is different now.
    pub base_sha256: String,
    /// The new persistent definition (`None`: leave it).
    pub new_inactive: Option<String>,
    /// The settings the running domain should end with (`None`: leave the running domain).
    pub live_target: Option<Settings>,
    /// Why (rule ids and fix summaries, or "plan").
    pub reasons: Vec<String>,
}

/// Everything one apply changes.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub domains: Vec<DomainChange>,
    pub host: Vec<HostWrite>,
    /// Also write the persistent files for the host settings.
    pub persist: bool,
    /// The command line, for the journal.
    pub command: Vec<String>,
}

/// Where the engine works.
pub struct Env<'a> {
    pub virt: &'a dyn Virt,
    /// Host settings are read and written under this root.
    pub root: PathBuf,
    /// The local /proc and libvirt run directory; `None` when the domains run elsewhere
    /// (a remote URI): thread affinities are then neither recorded nor verified.
    pub proc: Option<Proc>,
    /// Every online host CPU (`0-63`): where an unpinned vCPU may run.
    pub host_cpus: String,
}

/// A prepared apply: the journal entry to write (state before and steps) and what waits
/// for a domain's next start.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    pub entry: Entry,
    /// Per domain: changes that take effect at its next start.
    pub later: BTreeMap<String, Vec<String>>,
    /// Per domain: why it changes.
    pub reasons: BTreeMap<String, Vec<String>>,
    /// The new definitions, for verification.
    #[serde(skip)]
    new_settings: BTreeMap<String, Settings>,
}

impl Prepared {
    pub fn is_empty(&self) -> bool {
        self.entry.steps.is_empty()
    }
}

fn dom_err(name: &str, why: impl Into<String>) -> ApplyError {
    ApplyError::Domain {
        name: name.into(),
        why: why.into(),
    }
}

fn canonical(xml: &str) -> Option<String> {
    Document::parse(xml).ok().map(|d| d.canonical())
}

/// Read the state and compute the steps. Changes nothing.
pub fn prepare(env: &Env, req: &Request) -> Result<Prepared, ApplyError> {
    let mut entry = Entry {
        kind: crate::journal::KIND.into(),
        version: crate::journal::VERSION,
        id: String::new(),
        created: crate::journal::now(),
        command: req.command.clone(),
        uri: env.virt.uri().to_string(),
        root: env.root.display().to_string(),
        domains: Vec::new(),
        host: Vec::new(),
        files: Vec::new(),
        steps: Vec::new(),
    };
    let mut later = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let mut new_settings = BTreeMap::new();
    let mut steps: Vec<(String, Action)> = Vec::new();
    let listed = env.virt.list()?;
    for ch in &req.domains {
        let Some(r) = listed.iter().find(|d| d.name == ch.name) else {
            return Err(dom_err(&ch.name, "no such domain"));
        };
        let xml = env.virt.xml(&ch.name, true)?;
        let sha = sha256(&xml);
        if !ch.base_sha256.is_empty() && sha != ch.base_sha256 {
            return Err(dom_err(
                &ch.name,
                "its stored XML changed since the audit or plan was made (hash differs); \
                 audit or plan again",
            ));
        }
        let active = env.virt.is_active(&ch.name)?;
        let live_xml = if active {
            Some(env.virt.xml(&ch.name, false)?)
        } else {
            None
        };
        let affinity = match (&env.proc, active) {
            (Some(p), true) => p.pid(&ch.name).and_then(|pid| p.affinity(pid).ok()),
            _ => None,
        };
        if let Some(new) = &ch.new_inactive {
            let (Some(a), Some(b)) = (canonical(&xml), canonical(new)) else {
                return Err(dom_err(
                    &ch.name,
                    "the new definition is not well-formed XML",
                ));
            };
            if a != b {
                let s = settings::read_xml(new).map_err(|e| dom_err(&ch.name, e.to_string()))?;
                new_settings.insert(ch.name.clone(), s);
                steps.push((ch.name.clone(), Action::Define { xml: new.clone() }));
            }
        }
        let mut notes = Vec::new();
        if let (Some(target), Some(lx)) = (&ch.live_target, &live_xml) {
            let cur = settings::read_xml(lx).map_err(|e| dom_err(&ch.name, e.to_string()))?;
            let (ops, wait) = settings::live_ops(&cur, target, &env.host_cpus, affinity.as_ref());
            notes.extend(wait);
            for op in ops {
                steps.push((ch.name.clone(), Action::Live(op)));
            }
        } else if !active && ch.new_inactive.is_some() {
            // nothing runs: the new definition is what the next start uses
        } else if active && ch.live_target.is_none() && ch.new_inactive.is_some() {
            notes.push("the running domain is left as it is (--config)".into());
        }
        if !notes.is_empty() {
            later.insert(ch.name.clone(), notes);
        }
        reasons.insert(ch.name.clone(), ch.reasons.clone());
        entry.domains.push(DomainBefore {
            name: ch.name.clone(),
            uuid: r.uuid.clone(),
            active,
            inactive_sha256: sha,
            inactive_xml: xml,
            live_xml,
            affinity,
        });
    }
    for w in &req.host {
        let old = hostset::read(&env.root, &w.path).map_err(|e| ApplyError::Host {
            path: w.path.clone(),
            why: e.to_string(),
        })?;
        if old != w.value {
            steps.push(("host".into(), Action::Host(w.clone())));
        }
        entry.host.push(HostBefore {
            key: w.key.clone(),
            path: w.path.clone(),
            old,
        });
    }
    if req.persist && !req.host.is_empty() {
        let mut olds: BTreeMap<String, Option<String>> = BTreeMap::new();
        for p in [hostset::SYSCTL_FILE, hostset::TMPFILES_FILE] {
            let path = hostset::under(&env.root, p);
            let old = match std::fs::read_to_string(&path) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(ApplyError::Host {
                        path: p.into(),
                        why: e.to_string(),
                    });
                }
            };
            olds.insert(p.to_string(), old);
        }
        let files = hostset::persist_files(&req.host, &|p| olds.get(p).cloned().flatten());
        for f in files {
            let old = olds.get(&f.path).cloned().flatten();
            if old.as_deref() != Some(f.content.as_str()) {
                entry.files.push(FileBefore {
                    path: f.path.clone(),
                    old,
                });
                steps.push(("host".into(), Action::File(f)));
            }
        }
    }
    entry.steps = steps
        .into_iter()
        .enumerate()
        .map(|(i, (subject, action))| Step {
            n: i + 1,
            subject,
            action,
        })
        .collect();
    Ok(Prepared {
        entry,
        later,
        reasons,
        new_settings,
    })
}

fn run_step(env: &Env, step: &Step) -> Result<(), String> {
    match &step.action {
        Action::Define { xml } => env.virt.define_xml(xml).map_err(|e| e.to_string()),
        Action::Live(op) => op.run(env.virt, &step.subject).map_err(|e| e.to_string()),
        Action::Host(w) => hostset::write(&env.root, &w.path, &w.value)
            .map_err(|e| format!("cannot write {} to {}: {e}", w.value, w.path)),
        Action::File(f) => write_file(env, &f.path, Some(&f.content)),
    }
}

/// Write (or, with `None`, remove) a file under the root, atomically.
fn write_file(env: &Env, path: &str, content: Option<&str>) -> Result<(), String> {
    let dest = hostset::under(&env.root, path);
    let Some(content) = content else {
        return match std::fs::remove_file(&dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {path}: {e}")),
        };
    };
    let tmp = dest.with_extension("kvmtune-tmp");
    let r = (|| -> std::io::Result<()> {
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&tmp, content)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {path}: {e}")
    })
}

/// Check a domain after its steps: the stored definition holds the new settings (and
/// `check` has nothing to say about it), the running domain holds its target settings, and
/// every pinned thread's affinity in /proc is its pin.
fn verify_domain(
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
                        "the stored definition does not hold the new settings (libvirt stored {got:?})"
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
    let cur = match env
        .virt
        .xml(name, false)
        .map_err(|e| e.to_string())
        .and_then(|x| settings::read_xml(&x).map_err(|e| e.to_string()))
    {
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
            problems.push(e);
            None
        }
        None => None,
    };
    for op in live {
        match op {
            LiveOp::SetVcpus { count } => {
                if cur.vcpus != *count {
                    problems.push(format!("libvirt reports {} vCPUs, not {count}", cur.vcpus));
                }
                if let Some(a) = &aff
                    && a.vcpus.len() != *count as usize
                {
                    problems.push(format!(
                        "QEMU runs {} vCPU threads, not {count}",
                        a.vcpus.len()
                    ));
                }
            }
            LiveOp::PinVcpu { vcpu, cpus } => {
                // libvirt's record first, then the kernel's (when this host runs the domain)
                let recorded = cur.vcpu_affinity(*vcpu, &env.host_cpus);
                if &recorded != cpus {
                    problems.push(format!(
                        "libvirt's live XML pins vCPU {vcpu} to {recorded}, not {cpus}"
                    ));
                }
                if let Some(a) = &aff {
                    match a.vcpus.get(vcpu) {
                        Some(got) if got == cpus => {}
                        Some(got) => problems.push(format!(
                            "vCPU {vcpu} thread may run on {got} (/proc Cpus_allowed_list), not {cpus}"
                        )),
                        None => problems.push(format!("no thread for vCPU {vcpu} in /proc")),
                    }
                }
            }
            LiveOp::PinEmulator { cpus } => {
                let recorded = cur.emulator_affinity(&env.host_cpus);
                if &recorded != cpus {
                    problems.push(format!(
                        "libvirt's live XML pins the emulator to {recorded}, not {cpus}"
                    ));
                }
                if let Some(a) = &aff
                    && &a.emulator != cpus
                {
                    problems.push(format!(
                        "the emulator thread may run on {} (/proc), not {cpus}",
                        a.emulator
                    ));
                }
            }
            LiveOp::NumaNodeset { nodeset } => {
                if cur.numa_nodeset.as_deref() != Some(nodeset.as_str()) {
                    problems.push(format!("the running nodeset is not {nodeset}"));
                }
            }
            LiveOp::Memtune(m) => {
                let lim = |v: Option<u64>| v.unwrap_or(kvmtune_libvirt::MEMTUNE_UNLIMITED_KIB);
                for (what, want, got) in [
                    ("hard_limit", m.hard_limit_kib, cur.hard_limit_kib),
                    ("soft_limit", m.soft_limit_kib, cur.soft_limit_kib),
                    (
                        "swap_hard_limit",
                        m.swap_hard_limit_kib,
                        cur.swap_hard_limit_kib,
                    ),
                ] {
                    if let Some(w) = want
                        && w != lim(got)
                    {
                        problems.push(format!("running {what} is {:?} KiB, not {w}", got));
                    }
                }
            }
            LiveOp::Balloon { kib } => {
                if cur.current_memory_kib != Some(*kib) {
                    problems.push(format!("the balloon target is not {kib} KiB"));
                }
            }
        }
    }
    problems
}

/// How an apply ended.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub id: String,
    pub status: Status,
    pub error: Option<String>,
    pub steps: usize,
    pub steps_done: usize,
    pub rollback_errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Journal, then make every step; verify; roll everything back on a failure.
/// `check(domain, stored_xml)` adds verification of a new definition (the re-audit).
pub fn execute(
    env: &Env,
    journal: &Journal,
    _lock: &Lock,
    prep: &Prepared,
    check: &dyn Fn(&str, &str) -> Vec<String>,
) -> Result<Applied, ApplyError> {
    let handle = journal.begin(prep.entry.clone())?;
    let entry = &handle.entry;
    let mut done = 0;
    let mut failure: Option<String> = None;
    // units: each domain's steps, then the host's
    let mut units: Vec<(String, Vec<&Step>)> = Vec::new();
    for s in &entry.steps {
        match units.last_mut() {
            Some((subj, v)) if *subj == s.subject => v.push(s),
            _ => units.push((s.subject.clone(), vec![s])),
        }
    }
    'units: for (subject, steps) in &units {
        for s in steps {
            inject(s.n);
            if let Err(e) = handle.log(&format!("begin {}", s.n)) {
                failure = Some(e.to_string());
                break 'units;
            }
            if let Err(e) = run_step(env, s) {
                let _ = handle.log(&format!("fail {}: {e}", s.n));
                failure = Some(format!("step {} ({subject}): {e}", s.n));
                break 'units;
            }
            if let Err(e) = handle.log(&format!("ok {}", s.n)) {
                failure = Some(e.to_string());
                break 'units;
            }
            done += 1;
        }
        let problems = if subject == "host" {
            steps
                .iter()
                .filter_map(|s| match &s.action {
                    Action::Host(w) => hostset::verify(&env.root, w).err(),
                    Action::File(f) => {
                        match std::fs::read_to_string(hostset::under(&env.root, &f.path)) {
                            Ok(t) if t == f.content => None,
                            Ok(_) => Some(format!("{}: content differs after writing", f.path)),
                            Err(e) => Some(format!("{}: {e}", f.path)),
                        }
                    }
                    _ => None,
                })
                .collect()
        } else {
            verify_domain(env, prep, subject, steps, check)
        };
        if !problems.is_empty() {
            let msg = format!("verifying {subject}: {}", problems.join("; "));
            let _ = handle.log(&format!("fail verify {subject}: {}", problems.join("; ")));
            failure = Some(msg);
            break;
        }
    }
    inject(entry.steps.len() + 1);
    let mut notes: Vec<String> = prep
        .later
        .iter()
        .flat_map(|(d, v)| v.iter().map(move |n| format!("{d}: {n}")))
        .collect();
    let (status, rollback_errors) = match &failure {
        None => (Status::Applied, Vec::new()),
        Some(_) => {
            let rb = restore(env, entry, true);
            notes.extend(rb.notes.iter().cloned());
            if rb.errors.is_empty() {
                (Status::Failed, Vec::new())
            } else {
                (Status::FailedRollbackIncomplete, rb.errors)
            }
        }
    };
    let mut after = BTreeMap::new();
    for d in &entry.domains {
        if let Ok(x) = env.virt.xml(&d.name, true) {
            after.insert(d.name.clone(), sha256(&x));
        }
    }
    let error = match (&failure, rollback_errors.is_empty()) {
        (Some(f), true) => Some(f.clone()),
        (Some(f), false) => Some(format!("{f}; rollback: {}", rollback_errors.join("; "))),
        (None, _) => None,
    };
    handle.finish(&Outcome {
        status,
        finished: crate::journal::now(),
        error: error.clone(),
        after_sha256: after,
        notes: notes.clone(),
    })?;
    Ok(Applied {
        id: entry.id.clone(),
        status,
        error,
        steps: entry.steps.len(),
        steps_done: done,
        rollback_errors,
        notes,
    })
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Restored {
    pub actions: Vec<String>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Restore every domain, host setting and file of an entry to its recorded old value, and
/// verify. Values already as recorded are left alone, so restoring twice is harmless.
fn restore(env: &Env, entry: &Entry, during_apply: bool) -> Restored {
    let mut r = Restored::default();
    // persistent files and host settings first undo in reverse order
    for f in entry.files.iter().rev() {
        let now = std::fs::read_to_string(hostset::under(&env.root, &f.path)).ok();
        if now != f.old {
            match write_file(env, &f.path, f.old.as_deref()) {
                Ok(()) => r.actions.push(match &f.old {
                    Some(_) => format!("host: restored {}", f.path),
                    None => format!("host: removed {}", f.path),
                }),
                Err(e) => r.errors.push(e),
            }
        }
    }
    for h in entry.host.iter().rev() {
        match hostset::read(&env.root, &h.path) {
            Ok(v) if v == h.old => {}
            _ => match hostset::write(&env.root, &h.path, &h.old) {
                Ok(()) => {
                    r.actions.push(format!("host: {} = {}", h.key, h.old));
                    let w = HostWrite {
                        key: h.key.clone(),
                        path: h.path.clone(),
                        value: h.old.clone(),
                    };
                    if let Err(e) = hostset::verify(&env.root, &w) {
                        r.errors.push(e);
                    }
                }
                Err(e) => r
                    .errors
                    .push(format!("cannot write {} to {}: {e}", h.old, h.path)),
            },
        }
    }
    for d in entry.domains.iter().rev() {
        restore_domain(env, d, during_apply, &mut r);
    }
    r
}

fn restore_domain(env: &Env, d: &DomainBefore, during_apply: bool, r: &mut Restored) {
    let name = &d.name;
    let exists = env.virt.list().map(|l| l.iter().any(|x| x.name == *name));
    let now = match exists {
        Ok(true) => env.virt.xml(name, true).ok(),
        Ok(false) => None,
        Err(e) => {
            r.errors.push(e.to_string());
            return;
        }
    };
    if now.as_deref().and_then(canonical) != canonical(&d.inactive_xml) {
        match env.virt.define_xml(&d.inactive_xml) {
            Ok(()) => r
                .actions
                .push(format!("{name}: restored the stored definition")),
            Err(e) => {
                r.errors.push(format!("{name}: {e}"));
                return;
            }
        }
        match env.virt.xml(name, true) {
            Ok(x) if canonical(&x) == canonical(&d.inactive_xml) => {}
            Ok(_) => r.errors.push(format!(
                "{name}: the restored definition differs from the journaled one"
            )),
            Err(e) => r.errors.push(format!("{name}: {e}")),
        }
    }
    let (true, Some(before_live)) = (d.active, &d.live_xml) else {
        return;
    };
    match env.virt.is_active(name) {
        Ok(true) => {}
        Ok(false) => {
            r.notes.push(format!(
                "{name}: not running any more; its next start uses the restored definition"
            ));
            return;
        }
        Err(e) => {
            r.errors.push(format!("{name}: {e}"));
            return;
        }
    }
    let pid_now = env.proc.as_ref().and_then(|p| p.pid(name));
    if let (Some(a), Some(p)) = (&d.affinity, pid_now)
        && a.pid != p
    {
        r.notes.push(format!(
            "{name}: restarted since the apply (pid {} -> {p}); it runs the restored definition",
            a.pid
        ));
        return;
    }
    let cur = match env
        .virt
        .xml(name, false)
        .map_err(|e| e.to_string())
        .and_then(|x| settings::read_xml(&x).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            r.errors.push(format!("{name}: live XML: {e}"));
            return;
        }
    };
    let mut want = match settings::read_xml(before_live) {
        Ok(s) => s,
        Err(e) => {
            r.errors.push(format!("{name}: journaled live XML: {e}"));
            return;
        }
    };
    // pins go back to where the threads actually ran before
    if let Some(a) = &d.affinity {
        for (v, cpus) in &a.vcpus {
            if want.vcpu_affinity(*v, &env.host_cpus) != *cpus {
                want.vcpupin.insert(*v, cpus.clone());
            }
        }
        if want.emulator_affinity(&env.host_cpus) != a.emulator {
            want.emulatorpin = Some(a.emulator.clone());
        }
    }
    let aff_now = env
        .proc
        .as_ref()
        .and_then(|p| pid_now.and_then(|pid| p.affinity(pid).ok()));
    let (ops, _) = settings::live_ops(&cur, &want, &env.host_cpus, aff_now.as_ref());
    for op in &ops {
        match op.run(env.virt, name) {
            Ok(()) => r.actions.push(format!("{name}: {}", op.command(name))),
            Err(e) if unplug_done_anyway(env, name, op, &e) => {
                r.actions.push(format!("{name}: {}", op.command(name)));
                r.notes.push(format!(
                    "{name}: libvirt gave up waiting for the vCPU unplug ({}), but QEMU did \
                     release the vCPU (its thread is gone from /proc); libvirt's running vCPU \
                     count stays stale until the domain restarts",
                    e.message
                ));
            }
            Err(e) => {
                let hint = if matches!(op, LiveOp::SetVcpus { .. }) && during_apply {
                    " (the vCPU count returns with the next start)"
                } else {
                    ""
                };
                r.errors.push(format!("{name}: {e}{hint}"));
            }
        }
    }
    // verify the affinities against the journal
    if let (Some(a), Some(p), Some(pid)) = (&d.affinity, &env.proc, pid_now) {
        match p.affinity(pid) {
            Ok(now) => {
                if now.emulator != a.emulator {
                    r.errors.push(format!(
                        "{name}: emulator thread may run on {}, was {}",
                        now.emulator, a.emulator
                    ));
                }
                for (v, cpus) in &a.vcpus {
                    match now.vcpus.get(v) {
                        Some(c) if c == cpus => {}
                        Some(c) => r
                            .errors
                            .push(format!("{name}: vCPU {v} may run on {c}, was {cpus}")),
                        None => r.errors.push(format!("{name}: vCPU {v} thread is gone")),
                    }
                }
            }
            Err(e) => r.errors.push(format!("{name}: {e}")),
        }
    }
}

/// libvirt 9.0 can time out on a vCPU unplug that QEMU carries out (seen with TCG guests):
/// when the error is that timeout, wait up to 3 s for QEMU's vCPU threads to number the
/// target.
fn unplug_done_anyway(
    env: &Env,
    name: &str,
    op: &LiveOp,
    e: &kvmtune_libvirt::LibvirtError,
) -> bool {
    let (LiveOp::SetVcpus { count }, Some(p)) = (op, &env.proc) else {
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

/// What `kvmtune rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub id: String,
    pub ok: bool,
    pub actions: Vec<String>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Roll a journal entry back. Refuses a domain changed by someone else since a completed
/// apply (its stored XML is neither the one before nor the one after) unless `force`.
pub fn rollback(
    env: &Env,
    journal: &Journal,
    _lock: &Lock,
    id: &str,
    force: bool,
) -> Result<RolledBack, ApplyError> {
    let entry = journal.load(id)?;
    let outcome = journal.outcome(id)?;
    if let (Some(o), false) = (&outcome, force) {
        for d in &entry.domains {
            let Ok(x) = env.virt.xml(&d.name, true) else {
                continue;
            };
            let sha = sha256(&x);
            let after = o.after_sha256.get(&d.name);
            if sha != d.inactive_sha256 && Some(&sha) != after {
                return Err(dom_err(
                    &d.name,
                    format!(
                        "its stored XML changed after apply {id}; rolling back would undo \
                         that change too (use --force to roll back anyway)"
                    ),
                ));
            }
        }
    }
    let r = restore(env, &entry, false);
    let rec = RollbackRecord {
        at: crate::journal::now(),
        ok: r.errors.is_empty(),
        errors: r.errors.clone(),
        notes: r.notes.clone(),
    };
    journal.record_rollback(id, &rec)?;
    Ok(RolledBack {
        id: id.to_string(),
        ok: rec.ok,
        actions: r.actions,
        errors: r.errors,
        notes: r.notes,
    })
}

/// One line describing a step (dry run, history).
pub fn describe_step(step: &Step) -> String {
    match &step.action {
        Action::Define { .. } => format!("{}: define the new stored XML", step.subject),
        Action::Live(op) => format!("{}: {}", step.subject, op.command(&step.subject)),
        Action::Host(w) => format!("host: {} = {}  ({})", w.key, w.value, w.path),
        Action::File(FileWrite { path, .. }) => format!("host: write {path}"),
    }
}

#[cfg(test)]
mod tests {
    //! The transaction logic against an in-memory libvirt. The real daemon is exercised by
    //! crates/kvmtune/tests/apply.rs.
    use super::*;
    use kvmtune_libvirt::{DomainRef, LibvirtError, MemTuneSet};
    use std::cell::RefCell;

    struct Fake {
        inactive: RefCell<BTreeMap<String, String>>,
        live: RefCell<BTreeMap<String, String>>,
        calls: RefCell<Vec<String>>,
        fail_on: Option<String>,
    }

    impl Fake {
        fn new(name: &str, xml: &str, running: bool) -> Fake {
            let f = Fake {
                inactive: RefCell::new(BTreeMap::new()),
                live: RefCell::new(BTreeMap::new()),
                calls: RefCell::new(Vec::new()),
                fail_on: None,
            };
            f.inactive.borrow_mut().insert(name.into(), xml.into());
            if running {
                f.live.borrow_mut().insert(name.into(), xml.into());
            }
            f
        }
        fn call(&self, c: String) -> Result<(), LibvirtError> {
            let fail = self.fail_on.as_deref() == Some(c.as_str());
            self.calls.borrow_mut().push(c.clone());
            if fail {
                return Err(LibvirtError {
                    op: c,
                    message: "injected failure".into(),
                });
            }
            Ok(())
        }
    }

    fn missing(name: &str) -> LibvirtError {
        LibvirtError {
            op: format!("look up domain {name}"),
            message: "Domain not found".into(),
        }
    }

    impl Virt for Fake {
        fn uri(&self) -> &str {
            "fake:///"
        }
        fn list(&self) -> Result<Vec<DomainRef>, LibvirtError> {
            Ok(self
                .inactive
                .borrow()
                .keys()
                .map(|n| DomainRef {
                    state: String::new(),
                    name: n.clone(),
                    uuid: "u".into(),
                    active: self.live.borrow().contains_key(n),
                    id: None,
                })
                .collect())
        }
        fn xml(&self, name: &str, inactive: bool) -> Result<String, LibvirtError> {
            let m = if inactive { &self.inactive } else { &self.live };
            m.borrow().get(name).cloned().ok_or_else(|| missing(name))
        }
        fn is_active(&self, name: &str) -> Result<bool, LibvirtError> {
            Ok(self.live.borrow().contains_key(name))
        }
        fn define_xml(&self, xml: &str) -> Result<(), LibvirtError> {
            let (_, d) = kvmtune_domain::Domain::parse(xml).map_err(|e| LibvirtError {
                op: "define".into(),
                message: e.to_string(),
            })?;
            self.call(format!("define {}", d.name))?;
            self.inactive.borrow_mut().insert(d.name, xml.into());
            Ok(())
        }
        fn pin_vcpu(&self, name: &str, vcpu: u32, cpus: &[u32]) -> Result<(), LibvirtError> {
            self.call(format!("pin {name} {vcpu} {cpus:?}"))?;
            // like libvirt, record the pin in the live definition
            let list: Vec<String> = cpus.iter().map(u32::to_string).collect();
            let p = crate::plan::PlanDomain {
                vcpupin: [(vcpu, list.join(","))].into(),
                ..Default::default()
            };
            let mut live = self.live.borrow_mut();
            if let Some(x) = live.get_mut(name) {
                *x = crate::plan::apply_to_xml(x, &p).map_err(|e| LibvirtError {
                    op: "pin".into(),
                    message: e,
                })?;
            }
            Ok(())
        }
        fn pin_emulator(&self, name: &str, cpus: &[u32]) -> Result<(), LibvirtError> {
            self.call(format!("emulatorpin {name} {cpus:?}"))
        }
        fn set_vcpus(&self, name: &str, count: u32) -> Result<(), LibvirtError> {
            self.call(format!("setvcpus {name} {count}"))
        }
        fn set_numa_nodeset(&self, name: &str, n: &str) -> Result<(), LibvirtError> {
            self.call(format!("nodeset {name} {n}"))
        }
        fn set_memtune(&self, name: &str, _s: MemTuneSet) -> Result<(), LibvirtError> {
            self.call(format!("memtune {name}"))
        }
        fn set_memory(&self, name: &str, kib: u64) -> Result<(), LibvirtError> {
            self.call(format!("setmem {name} {kib}"))
        }
    }

    const OLD: &str = "<domain type='kvm'><name>a</name><memory unit='KiB'>1024</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>";
    const NEW: &str = "<domain type='kvm'><name>a</name><memory unit='KiB'>1024</memory><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='2'/></cputune><os><type>hvm</type></os></domain>";

    fn request(base: &str) -> Request {
        let want = settings::read_xml(NEW).unwrap();
        Request {
            domains: vec![DomainChange {
                name: "a".into(),
                base_sha256: sha256(base),
                new_inactive: Some(NEW.into()),
                live_target: Some(want),
                reasons: vec!["test".into()],
            }],
            ..Request::default()
        }
    }

    fn env(f: &Fake) -> Env<'_> {
        Env {
            virt: f,
            root: PathBuf::from("/nonexistent"),
            proc: None,
            host_cpus: "0-3".into(),
        }
    }

    #[test]
    fn applies_in_order_then_rolls_back() {
        let f = Fake::new("a", OLD, true);
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let lock = j.lock().unwrap();
        let e = env(&f);
        let prep = prepare(&e, &request(OLD)).unwrap();
        assert_eq!(prep.entry.steps.len(), 3);
        let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
        assert_eq!(r.status, Status::Applied, "{r:?}");
        assert_eq!(
            *f.calls.borrow(),
            vec!["define a", "pin a 0 [1]", "pin a 1 [2]"]
        );
        assert_eq!(f.inactive.borrow()["a"], NEW);
        f.calls.borrow_mut().clear();
        let rb = rollback(&e, &j, &lock, &r.id, false).unwrap();
        assert!(rb.ok, "{rb:?}");
        assert_eq!(f.inactive.borrow()["a"], OLD);
        // the stored definition first, then the pins go back to every CPU
        assert_eq!(
            *f.calls.borrow(),
            vec!["define a", "pin a 0 [0, 1, 2, 3]", "pin a 1 [0, 1, 2, 3]"]
        );
    }

    #[test]
    fn a_failed_step_restores_everything_and_says_which() {
        let mut f = Fake::new("a", OLD, true);
        f.fail_on = Some("pin a 1 [2]".into());
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let lock = j.lock().unwrap();
        let e = env(&f);
        let prep = prepare(&e, &request(OLD)).unwrap();
        let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
        assert_eq!(r.status, Status::Failed);
        assert!(r.error.unwrap().contains("step 3 (a)"));
        assert_eq!(f.inactive.borrow()["a"], OLD, "stored XML restored");
        assert_eq!(r.steps_done, 2);
        assert_eq!(j.describe(&r.id, false).status, "failed");
    }

    #[test]
    fn a_failed_verification_also_rolls_back() {
        let f = Fake::new("a", OLD, false);
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let lock = j.lock().unwrap();
        let e = env(&f);
        let prep = prepare(&e, &request(OLD)).unwrap();
        let r = execute(&e, &j, &lock, &prep, &|_, _| {
            vec!["cpu-mode: not in effect".into()]
        })
        .unwrap();
        assert_eq!(r.status, Status::Failed);
        assert!(r.error.unwrap().contains("cpu-mode"));
        assert_eq!(f.inactive.borrow()["a"], OLD);
    }

    #[test]
    fn a_domain_changed_since_the_plan_is_refused() {
        let f = Fake::new("a", OLD, false);
        let e = env(&f);
        let err = prepare(&e, &request("<domain>other</domain>")).unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
        assert!(f.calls.borrow().is_empty());
        let mut missing = request(OLD);
        missing.domains[0].name = "b".into();
        assert!(
            prepare(&e, &missing)
                .unwrap_err()
                .to_string()
                .contains("no such domain")
        );
    }

    #[test]
    fn rollback_refuses_to_undo_someone_elses_later_change() {
        let f = Fake::new("a", OLD, false);
        let t = tempfile::tempdir().unwrap();
        let j = Journal::open(t.path()).unwrap();
        let lock = j.lock().unwrap();
        let e = env(&f);
        let prep = prepare(&e, &request(OLD)).unwrap();
        let r = execute(&e, &j, &lock, &prep, &|_, _| Vec::new()).unwrap();
        let edited = NEW.replace("<memory unit='KiB'>1024", "<memory unit='KiB'>2048");
        f.inactive.borrow_mut().insert("a".into(), edited.clone());
        let err = rollback(&e, &j, &lock, &r.id, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(f.inactive.borrow()["a"], edited);
        assert!(rollback(&e, &j, &lock, &r.id, true).unwrap().ok);
        assert_eq!(f.inactive.borrow()["a"], OLD);
    }
}

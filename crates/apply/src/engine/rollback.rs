//! [`rollback`]: restore a journal entry's recorded state, on request or after a failed
//! apply.

use serde::Serialize;

use super::{ApplyError, Env, canonical, dom_err};
use crate::hostset::{self, HostWrite};
use crate::journal::{DomainBefore, Entry, Journal, Lock, RollbackRecord};
use crate::settings::{self, cpu};
use crate::sha256;

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

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Restored {
    pub actions: Vec<String>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Restore every domain, host setting and file of an entry to its recorded old value, and
/// verify. Values already as recorded are left alone, so restoring twice is harmless.
pub(super) fn restore(env: &Env, entry: &Entry, during_apply: bool) -> Restored {
    let mut r = Restored::default();
    // persistent files and host settings first undo in reverse order
    for f in entry.files.iter().rev() {
        if env.remote {
            r.errors.push(format!(
                "{}: a file of a remote host; not restored from here",
                f.path
            ));
            continue;
        }
        let now = hostset::read_file(&env.root, &f.path).ok().flatten();
        if now != f.old {
            match hostset::write_file(&env.root, &f.path, f.old.as_deref()) {
                Ok(()) => r.actions.push(match &f.old {
                    Some(_) => format!("host: restored {}", f.path),
                    None => format!("host: removed {}", f.path),
                }),
                Err(e) => r.errors.push(e),
            }
        }
    }
    for h in entry.host.iter().rev() {
        match env.read_setting(&h.key, &h.path) {
            Ok(v) if v == h.old => {}
            _ => match env.write_setting(&h.key, &h.path, &h.old) {
                Ok(()) => {
                    r.actions.push(format!("host: {} = {}", h.key, h.old));
                    let w = HostWrite {
                        key: h.key.clone(),
                        path: h.path.clone(),
                        value: h.old.clone(),
                    };
                    if let Err(e) = env.verify_setting(&w) {
                        r.errors.push(e);
                    }
                }
                Err(e) => r.errors.push(e),
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
    let cur = match super::live_settings(env, name) {
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
        cpu::restore_target(&mut want, a, &env.host_cpus);
    }
    let aff_now = env
        .proc
        .as_ref()
        .and_then(|p| pid_now.and_then(|pid| p.affinity(pid).ok()));
    let (ops, _) = settings::live_ops(&cur, &want, &env.host_cpus, aff_now.as_ref());
    for op in &ops {
        match op.run(env.virt, name) {
            Ok(()) => r.actions.push(format!("{name}: {}", op.command(name))),
            Err(e) if cpu::unplug_done_anyway(env.proc.as_ref(), name, op, &e) => {
                r.actions.push(format!("{name}: {}", op.command(name)));
                r.notes.push(format!(
                    "{name}: libvirt gave up waiting for the vCPU unplug ({}), but QEMU did \
                     release the vCPU (its thread is gone from /proc); libvirt's running vCPU \
                     count stays stale until the domain restarts",
                    e.message
                ));
            }
            Err(e) => {
                let hint = cpu::restore_hint(op, during_apply);
                r.errors.push(format!("{name}: {e}{hint}"));
            }
        }
    }
    // verify the affinities against the journal
    if let (Some(a), Some(p), Some(pid)) = (&d.affinity, &env.proc, pid_now) {
        cpu::verify_restored(name, a, p, pid, &mut r.errors);
    }
}

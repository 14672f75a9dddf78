//! [`execute`]: journal, make the steps, verify, and roll back on a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::{ApplyError, Env, Prepared, rollback, verify};
use crate::hostset;
use crate::journal::{Action, Journal, Lock, Outcome, Status, Step};
use crate::{inject, sha256};

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

/// Why an apply stopped.
enum Stop {
    /// A step or a verification failed.
    Failed,
    /// A signal asked it to stop.
    Interrupted,
    /// A domain's stored XML is not the one the change was computed from any more.
    Conflict,
}

/// Journal, then make every step; verify; roll everything back on a failure.
/// `check(domain, stored_xml)` adds verification of a new definition (the re-audit).
pub fn execute(
    env: &Env,
    journal: &Journal,
    lock: &Lock,
    prep: &Prepared,
    check: &dyn Fn(&str, &str) -> Vec<String>,
) -> Result<Applied, ApplyError> {
    execute_until(env, journal, lock, prep, check, &AtomicBool::new(false))
}

/// [`execute`], stopping before the next step once `stop` is set (by a SIGINT or SIGTERM
/// handler): what was done is rolled back and the entry says it was interrupted.
pub fn execute_until(
    env: &Env,
    journal: &Journal,
    _lock: &Lock,
    prep: &Prepared,
    check: &dyn Fn(&str, &str) -> Vec<String>,
    stop: &AtomicBool,
) -> Result<Applied, ApplyError> {
    let handle = journal.begin(prep.entry.clone())?;
    let entry = &handle.entry;
    let mut done = 0;
    let mut failure: Option<String> = None;
    let mut why = Stop::Failed;
    // the domains whose steps have begun: the only ones a failed apply restores (another
    // domain may have been changed by someone else meanwhile, which is not ours to undo)
    let mut touched: BTreeSet<String> = BTreeSet::new();
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
            if stop.load(Ordering::SeqCst) {
                let _ = handle.log(&format!("interrupted before {}", s.n));
                failure = Some(format!("interrupted by a signal before step {}", s.n));
                why = Stop::Interrupted;
                break 'units;
            }
            if let Action::Define { .. } = &s.action
                && let Err(e) = unchanged_since_prepare(env, entry, subject)
            {
                let _ = handle.log(&format!("conflict before {}: {e}", s.n));
                failure = Some(format!("step {} ({subject}): {e}", s.n));
                why = Stop::Conflict;
                break 'units;
            }
            if subject != "host" {
                touched.insert(subject.clone());
            }
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
            verify::host(env, steps)
        } else {
            verify::domain(env, prep, subject, steps, check)
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
            let mut undo = entry.clone();
            undo.domains.retain(|d| touched.contains(&d.name));
            let rb = rollback::restore(env, &undo, true);
            notes.extend(rb.notes.iter().cloned());
            if !rb.errors.is_empty() {
                (Status::FailedRollbackIncomplete, rb.errors)
            } else {
                match why {
                    Stop::Failed => (Status::Failed, Vec::new()),
                    Stop::Interrupted => (Status::Interrupted, Vec::new()),
                    Stop::Conflict => (Status::Conflict, Vec::new()),
                }
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

/// Re-read a domain's stored XML just before its define: it must still be the one the
/// change was computed from (the hash journaled at prepare), or the define would lose
/// someone else's change.
fn unchanged_since_prepare(
    env: &Env,
    entry: &crate::journal::Entry,
    name: &str,
) -> Result<(), String> {
    let Some(d) = entry.domains.iter().find(|d| d.name == name) else {
        return Err("not in the journal entry".into());
    };
    let now = env.virt.xml(name, true).map_err(|e| e.to_string())?;
    if sha256(&now) != d.inactive_sha256 {
        return Err(
            "its stored XML changed during the apply (someone else defined it); stopped \
             before the define, nothing further changed"
                .into(),
        );
    }
    Ok(())
}

fn run_step(env: &Env, step: &Step) -> Result<(), String> {
    match &step.action {
        Action::Define { xml } => env.virt.define_xml(xml).map_err(|e| e.to_string()),
        Action::Live(op) => op.run(env.virt, &step.subject).map_err(|e| e.to_string()),
        Action::Host(w) => env.write_setting(&w.key, &w.path, &w.value),
        Action::File(_) if env.remote => Err("a file on a remote host: not written".into()),
        Action::File(f) => hostset::write_file(&env.root, &f.path, Some(&f.content)),
    }
}

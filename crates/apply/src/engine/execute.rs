//! [`execute`]: journal, make the steps, verify, and roll back on a failure.

use std::collections::BTreeMap;

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
            let rb = rollback::restore(env, entry, true);
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

fn run_step(env: &Env, step: &Step) -> Result<(), String> {
    match &step.action {
        Action::Define { xml } => env.virt.define_xml(xml).map_err(|e| e.to_string()),
        Action::Live(op) => op.run(env.virt, &step.subject).map_err(|e| e.to_string()),
        Action::Host(w) => hostset::write(&env.root, &w.path, &w.value)
            .map_err(|e| format!("cannot write {} to {}: {e}", w.value, w.path)),
        Action::File(f) => hostset::write_file(&env.root, &f.path, Some(&f.content)),
    }
}
